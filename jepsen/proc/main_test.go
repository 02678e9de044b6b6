//go:build linux

package proc

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// testBinary is the cofferd built once for this test binary ("" with
// -short: the tests that need it skip).
var testBinary string

// Environment of the helper process of TestParentDeathKillsNodes.
const (
	helperDirEnv = "PROC_TEST_HELPER_DIR"
	helperBinEnv = "PROC_TEST_HELPER_BINARY"
)

func TestMain(m *testing.M) {
	if dir := os.Getenv(helperDirEnv); dir != "" {
		os.Exit(helperMain(dir, os.Getenv(helperBinEnv)))
	}
	flag.Parse()
	tmp := ""
	if !testing.Short() {
		var err error
		tmp, err = os.MkdirTemp("", "proc-test-bin-")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		start := time.Now()
		testBinary, err = Build(ctx, tmp)
		cancel()
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.RemoveAll(tmp)
			os.Exit(1)
		}
		fmt.Fprintf(os.Stderr, "built %s in %.1fs\n", testBinary, time.Since(start).Seconds())
	}
	code := m.Run()
	if tmp != "" {
		os.RemoveAll(tmp)
	}
	os.Exit(code)
}

// helperMain runs a one-node cluster, prints "pid N" (the node's PID),
// and waits for its stdin to close. TestParentDeathKillsNodes SIGKILLs it
// instead, and checks that the node dies with it.
func helperMain(dir, bin string) int {
	c, err := oneNodeCluster(dir, bin, nil)
	if err == nil {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		err = c.Start(ctx)
		cancel()
	}
	if err != nil {
		fmt.Println("error", strings.ReplaceAll(err.Error(), "\n", " | "))
		if c != nil {
			c.Close()
		}
		return 1
	}
	fmt.Println("pid", c.PID(0))
	io.Copy(io.Discard, os.Stdin)
	c.Close()
	return 0
}

// oneNodeCluster is a Cluster of one node that forms a cluster alone.
func oneNodeCluster(dir, bin string, wrap []string) (*Cluster, error) {
	specs, err := LoopbackSpecs(1, "")
	if err != nil {
		return nil, err
	}
	specs[0].Shards = 1
	specs[0].Wrap = wrap
	specs[0].ExtraArgs = []string{"--group-replicas", "1", "--block-replicas", "1", "--block-write-quorum", "1"}
	return New(Config{Binary: bin, Dir: dir, Nodes: specs, ReadyTimeout: time.Minute, KillTimeout: 10 * time.Second})
}

// needBinary skips tests of real processes under -short.
func needBinary(t *testing.T) string {
	t.Helper()
	if testBinary == "" {
		t.Skip("real processes (not with -short)")
	}
	return testBinary
}

// procsWithArg lists the PIDs of live processes (not zombies) one of
// whose arguments contains s: a test's data directory names its nodes.
func procsWithArg(t *testing.T, s string) []int {
	t.Helper()
	ents, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatal(err)
	}
	var out []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil || !strings.Contains(string(b), s) {
			continue
		}
		if procState(pid) == 'Z' {
			continue
		}
		out = append(out, pid)
	}
	return out
}

// noLeftovers makes sure, when the test ends, that no process whose
// arguments name dir (the test's own directory) still runs: any such
// process is an error, and is killed by its PID.
func noLeftovers(t *testing.T, dir string) {
	t.Cleanup(func() {
		for _, pid := range procsWithArg(t, dir) {
			t.Errorf("pid %d outlived the test: killing it", pid)
			syscall.Kill(pid, syscall.SIGKILL)
		}
	})
}

// procState is the state letter of pid ('Z' zombie, 'T' stopped, ...), or
// 0 if it does not exist.
func procState(pid int) byte {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	i := strings.LastIndexByte(string(b), ')')
	if i < 0 || i+2 >= len(b) {
		return 0
	}
	return b[i+2]
}

// waitUntil polls cond every interval until it returns nil or timeout
// passes (then it fails the test with cond's last error).
func waitUntil(t *testing.T, what string, timeout time.Duration, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v: %v", what, timeout, err)
		}
		time.Sleep(50 * time.Millisecond) // poll interval
	}
}
