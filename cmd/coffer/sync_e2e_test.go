package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io/fs"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/coffer-dev/coffer/internal/testcluster"
)

// buildCoffer builds the client binary for tests that run it as a process.
func buildCoffer(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "coffer")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// hashTree maps every file below dir (but .coffer) to its SHA-256.
func hashTree(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		if rel == ".coffer" {
			return filepath.SkipDir
		}
		if d.IsDir() {
			return nil
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		s := sha256.Sum256(data)
		out[filepath.ToSlash(rel)] = hex.EncodeToString(s[:])
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// A `coffer sync` process is SIGKILLed at random moments of its first
// upload; each run resumes from its state database, and the last run
// completes. Another device then gets exactly the same files, and the
// server never held a torn or partial file.
func TestSyncSurvivesSIGKILL(t *testing.T) {
	if testing.Short() {
		t.Skip("real processes")
	}
	bin := buildCoffer(t)
	cl := testcluster.Start(t, 1)
	cl.AddUser(t, "dora", "dora password")
	env := append(os.Environ(),
		"COFFER_SERVER="+strings.Join(cl.Addrs, ","), "COFFER_USER=dora", "COFFER_PASSWORD=dora password",
		"XDG_CONFIG_HOME="+t.TempDir(), "HOME="+t.TempDir())
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 1))
	a := t.TempDir()
	for i := range 150 {
		data := make([]byte, 20<<10+rng.IntN(200<<10))
		for j := range data {
			data[j] = byte(rng.Uint32())
		}
		p := filepath.Join(a, "dir"+strconv.Itoa(i%7), "f"+strconv.Itoa(i))
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	big := make([]byte, 40<<20)
	for j := range big {
		big[j] = byte(rng.Uint32())
	}
	if err := os.WriteFile(filepath.Join(a, "big.bin"), big, 0o644); err != nil {
		t.Fatal(err)
	}

	killed := 0
	// killRun starts `coffer sync dir` and SIGKILLs it once its state
	// database exists, after a random part of maxDelay of work.
	killRun := func(dir string, maxDelay time.Duration) {
		cmd := exec.Command(bin, "sync", dir)
		cmd.Env = env
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		deadline := time.Now().Add(30 * time.Second)
		for {
			if _, err := os.Stat(filepath.Join(dir, ".coffer", "state.db")); err == nil || time.Now().After(deadline) {
				break
			}
			time.Sleep(5 * time.Millisecond) // poll interval
		}
		time.Sleep(time.Duration(rng.Int64N(int64(maxDelay)))) // the moment of the crash, not a wait
		cmd.Process.Signal(syscall.SIGKILL)
		err := <-done
		if err != nil {
			killed++
		}
		t.Logf("sync %s: %v", filepath.Base(dir), err)
	}
	for round := range 3 {
		killRun(a, time.Duration(round+1)*time.Second)
	}
	// The last run completes.
	out, err := runProc(t, bin, env, "sync", "--json", a)
	if err != nil {
		t.Fatalf("sync after the kills: %v\n%s", err, out)
	}
	var rep syncReport
	if err := json.Unmarshal(out, &rep); err != nil || rep.Pending != 0 {
		t.Fatalf("bad report %s: %v", out, err)
	}
	t.Logf("%d runs killed; the last: %+v", killed, rep.Summary)

	b := t.TempDir()
	killRun(b, 2*time.Second)
	if out, err := runProc(t, bin, env, "sync", b); err != nil {
		t.Fatalf("sync on b: %v\n%s", err, out)
	}
	wa, wb := hashTree(t, a), hashTree(t, b)
	if len(wa) != 151 || len(wb) != len(wa) {
		t.Fatalf("a has %d files, b %d; want 151", len(wa), len(wb))
	}
	for p, h := range wa {
		if wb[p] != h {
			t.Fatalf("%s differs: %s vs %s", p, h, wb[p])
		}
	}
	// Nothing is pending on either side.
	for _, dir := range []string{a, b} {
		out, err := runProc(t, bin, env, "status", "--json", dir)
		if err != nil {
			t.Fatalf("status: %v\n%s", err, out)
		}
		var st statusReport
		if err := json.Unmarshal(out, &st); err != nil || len(st.Pending) != 0 || st.Running {
			t.Fatalf("status of %s: %s (%v)", dir, out, err)
		}
	}
}

func runProc(t *testing.T, bin string, env []string, args ...string) ([]byte, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = env
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return append(out, []byte(stderr.String())...), err
	}
	return out, nil
}
