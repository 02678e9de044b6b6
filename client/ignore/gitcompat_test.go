package ignore

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestAgainstGit runs every table row that git can judge through
// `git check-ignore` in a fresh repository whose .gitignore holds the rules
// and whose info/exclude holds the built-in patterns, so the table is
// checked against git's behaviour and not only against its documentation.
// It is skipped when git is not installed, and with -short.
func TestAgainstGit(t *testing.T) {
	if testing.Short() {
		t.Skip("runs git once per row")
	}
	gitBin, err := exec.LookPath("git")
	if err != nil {
		t.Skip("git not installed")
	}
	home := t.TempDir()
	env := append(os.Environ(),
		"HOME="+home,
		"XDG_CONFIG_HOME="+home,
		"GIT_CONFIG_GLOBAL="+os.DevNull,
		"GIT_CONFIG_NOSYSTEM=1",
		"GIT_CONFIG_SYSTEM="+os.DevNull,
		"LC_ALL=C",
	)
	git := func(dir string, args ...string) error {
		cmd := exec.Command(gitBin, append([]string{"-c", "core.ignoreCase=false"}, args...)...)
		cmd.Dir = dir
		cmd.Env = env
		out, err := cmd.CombinedOutput()
		if err != nil && len(out) > 0 {
			return errors.New(err.Error() + ": " + strings.TrimSpace(string(out)))
		}
		return err
	}
	for _, tc := range ignoreCases {
		if tc.notGit != "" {
			continue
		}
		repo := t.TempDir()
		if err := git(repo, "init", "-q", "."); err != nil {
			t.Fatalf("git init: %v", err)
		}
		mustWrite(t, filepath.Join(repo, ".gitignore"), tc.rules)
		mustWrite(t, filepath.Join(repo, ".git", "info", "exclude"), builtinPatterns)
		full := filepath.Join(repo, filepath.FromSlash(tc.path))
		if tc.dir {
			if err := os.MkdirAll(full, 0o755); err != nil {
				t.Fatal(err)
			}
		} else {
			if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
				t.Fatal(err)
			}
			mustWrite(t, full, "x")
		}
		// "./" keeps a leading ":" from being read as pathspec magic.
		err := git(repo, "check-ignore", "--no-index", "-q", "--", "./"+tc.path)
		var exit *exec.ExitError
		var gitSays bool
		switch {
		case err == nil:
			gitSays = true
		case errors.As(err, &exit) && exit.ExitCode() == 1:
			gitSays = false
		default:
			t.Fatalf("git check-ignore %q: %v", tc.path, err)
		}
		if gitSays != tc.want {
			t.Errorf("rules %q, path %q (dir=%v): git says ignored=%v, table says %v", tc.rules, tc.path, tc.dir, gitSays, tc.want)
		}
	}
}

func mustWrite(t *testing.T, name, data string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(name), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(name, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
}
