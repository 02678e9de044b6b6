package main

import (
	"bytes"
	"encoding/json"
	"github.com/coffer-dev/coffer/internal/testcluster"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/coffer-dev/coffer/client"
)

const e2eAdminPassword = testcluster.AdminPassword

// startE2ECluster starts an in-process cluster of three Fast nodes and
// returns their HTTP addresses.
func startE2ECluster(t *testing.T) []string {
	return testcluster.Start(t, 3).Addrs
}

func TestFilesEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a 3-node cluster")
	}
	addrs := startE2ECluster(t)
	cfgDir := t.TempDir()
	env := map[string]string{"COFFER_SERVER": strings.Join(addrs, ","), "XDG_CONFIG_HOME": cfgDir}
	coffer := func(want int, stdin string, args ...string) result {
		t.Helper()
		r := runCoffer(t, env, stdin, args...)
		if r.code != want {
			t.Fatalf("coffer %s: exit %d, want %d\nstdout %s\nstderr %s", strings.Join(args, " "), r.code, want, r.stdout, r.stderr)
		}
		return r
	}

	coffer(0, e2eAdminPassword+"\n", "login", "admin", "--password-stdin")
	st, err := os.Stat(filepath.Join(cfgDir, "coffer", sessionFile))
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Errorf("session file mode %v, want 0600", st.Mode().Perm())
	}
	if r := coffer(0, "", "whoami"); !strings.HasPrefix(r.stdout, "admin (admin)") {
		t.Errorf("whoami: %q", r.stdout)
	}

	dir := t.TempDir()
	data := make([]byte, 3<<20)
	rnd := rand.New(rand.NewPCG(1, 2))
	for i := range data {
		data[i] = byte(rnd.Uint32())
	}
	local := filepath.Join(dir, "big.bin")
	if err := os.WriteFile(local, data, 0o644); err != nil {
		t.Fatal(err)
	}
	coffer(0, "", "put", local, "/docs/big.bin")
	if r := coffer(0, "", "ls", "/docs"); !strings.Contains(r.stdout, "big.bin") || !strings.Contains(r.stdout, "3.0 MiB") {
		t.Errorf("ls: %q", r.stdout)
	}
	back := filepath.Join(dir, "back.bin")
	coffer(0, "", "get", "/docs/big.bin", back)
	if got, err := os.ReadFile(back); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("got back %d bytes (err %v), not the %d put", len(got), err, len(data))
	}

	// A change in the middle: a second revision.
	changed := bytes.Clone(data)
	copy(changed[len(changed)/2:], "an edit in the middle")
	if err := os.WriteFile(local, changed, 0o644); err != nil {
		t.Fatal(err)
	}
	var puts []struct {
		Rev          uint64
		Blocks, Sent int
	}
	r := coffer(0, "", "--json", "put", "--if-match", "1", local, "/docs/big.bin")
	if err := json.Unmarshal([]byte(r.stdout), &puts); err != nil || len(puts) != 1 {
		t.Fatalf("put --json: %v\n%s", err, r.stdout)
	}
	if p := puts[0]; p.Rev != 2 || p.Blocks < 2 || p.Sent < 1 || p.Sent >= p.Blocks {
		t.Errorf("a small edit re-sent %d of %d blocks (rev %d)", p.Sent, p.Blocks, p.Rev)
	}
	history := func() []revisionJSON {
		t.Helper()
		r := coffer(0, "", "history", "--json", "/docs/big.bin")
		var revs []revisionJSON
		if err := json.Unmarshal([]byte(r.stdout), &revs); err != nil {
			t.Fatalf("history --json: %v\n%s", err, r.stdout)
		}
		return revs
	}
	revs := history()
	if len(revs) != 2 || revs[0].Rev != 2 || revs[1].Rev != 1 || revs[0].Size != int64(len(data)) ||
		revs[0].ContentHash == revs[1].ContentHash || revs[0].Deleted || revs[0].Mtime == 0 {
		t.Fatalf("history after two puts: %+v", revs)
	}

	// A put expecting the stale revision 1 conflicts: exit 3.
	if r := coffer(3, "", "put", "--if-match", "1", local, "/docs/big.bin"); !strings.Contains(r.stderr, "conflict") {
		t.Errorf("stale put: stderr %q", r.stderr)
	}

	coffer(0, "", "restore", "/docs/big.bin", "--rev", "1")
	coffer(0, "", "get", "/docs/big.bin", back)
	if got, _ := os.ReadFile(back); !bytes.Equal(got, data) {
		t.Error("after restore --rev 1 the file is not the first revision")
	}

	coffer(0, "", "rm", "/docs/big.bin")
	revs = history()
	if len(revs) != 4 || !revs[0].Deleted || revs[0].Rev != 4 {
		t.Fatalf("history after rm: %+v", revs)
	}
	if r := coffer(0, "", "ls", "/docs"); strings.Contains(r.stdout, "big.bin") {
		t.Errorf("ls after rm: %q", r.stdout)
	}
	if r := coffer(0, "", "ls", "--deleted", "/docs"); !strings.Contains(r.stdout, "big.bin (deleted)") {
		t.Errorf("ls --deleted after rm: %q", r.stdout)
	}

	// A folder with -r.
	tree := filepath.Join(dir, "tree")
	for name, body := range map[string]string{"a.txt": "alpha", "sub/b.txt": "beta"} {
		p := filepath.Join(tree, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	coffer(2, "", "put", tree, "/tree")
	coffer(0, "", "put", "-r", tree, "/tree")
	r = coffer(0, "", "--json", "ls", "-r", "/tree")
	var entries []client.Entry
	if err := json.Unmarshal([]byte(r.stdout), &entries); err != nil {
		t.Fatalf("ls --json: %v\n%s", err, r.stdout)
	}
	var paths []string
	for _, e := range entries {
		paths = append(paths, e.Path)
	}
	if got := strings.Join(paths, " "); got != "/tree/a.txt /tree/sub /tree/sub/b.txt" {
		t.Errorf("ls -r /tree: %s", got)
	}

	if r := coffer(0, "", "ls", "/tree/a.txt"); !strings.Contains(r.stdout, "5 B") || !strings.Contains(r.stdout, "a.txt") {
		t.Errorf("ls of a file: %q", r.stdout)
	}
	coffer(0, "", "mv", "/tree/a.txt", "/tree/c.txt")
	coffer(0, "", "mkdir", "/empty")
	coffer(1, "", "get", "/tree/a.txt", filepath.Join(dir, "a.txt"))
	if left, _ := filepath.Glob(filepath.Join(dir, ".*.coffer-*")); len(left) > 0 {
		t.Errorf("a failed get left %v", left)
	}
	coffer(0, "", "get", "/tree/c.txt", dir)
	if got, err := os.ReadFile(filepath.Join(dir, "c.txt")); err != nil || string(got) != "alpha" {
		t.Errorf("get after mv: %q, %v", got, err)
	}
	if r := coffer(0, "", "ls"); !strings.Contains(r.stdout, "empty/") || !strings.Contains(r.stdout, "tree/") {
		t.Errorf("ls /: %q", r.stdout)
	}

	coffer(0, "", "logout")
	if _, err := os.Stat(filepath.Join(cfgDir, "coffer", sessionFile)); !os.IsNotExist(err) {
		t.Errorf("session file after logout: %v", err)
	}
}
