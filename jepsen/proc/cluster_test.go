//go:build linux

package proc

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/coffer-dev/coffer/client"
	"github.com/coffer-dev/coffer/cluster"
)

const testPassword = "proc test password"

// Three real cofferd processes on loopback (the third behind a wrapper
// that execs): they form a cluster; a SIGKILLed node restarts on its data
// and is ready again; a SIGSTOPped node stops answering and answers again
// after SIGCONT; a node is added and removed; a node that dies behind the
// harness's back is noticed; Close leaves no process.
func TestClusterFaults(t *testing.T) {
	bin := needBinary(t)
	t.Parallel()
	root := t.TempDir()
	noLeftovers(t, root)
	specs, err := LoopbackSpecs(3, "")
	if err != nil {
		t.Fatal(err)
	}
	for i := range specs {
		specs[i].AdminPassword = testPassword
		specs[i].Shards = 2
	}
	specs[2].Wrap = []string{"env"} // runs its command in place, as ip netns exec does
	c, err := New(Config{Binary: bin, Dir: root, Nodes: specs, Logger: slog.New(slog.NewTextHandler(t.Output(), nil)),
		ReadyTimeout: 2 * time.Minute, KillTimeout: 20 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := c.Close(); err != nil {
			t.Error(err)
		}
		if t.Failed() {
			for i := range c.Len() {
				t.Logf("--- %s:\n%s", c.LogPath(i), tail(c.LogPath(i), 30))
			}
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()

	began := time.Now()
	if err := c.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Logf("3 nodes ready in %.1fs", time.Since(began).Seconds())
	admin := adminClient(t, ctx, c)
	waitFormed(t, ctx, admin, 3)
	t.Logf("cluster formed %.1fs after the start", time.Since(began).Seconds())

	// The wrapped node's PID, which the signals go to, is cofferd's own
	// and this process's child.
	pid := c.PID(2)
	if err := checkExe(pid, bin); err != nil {
		t.Fatal(err)
	}
	if comm, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid)); strings.TrimSpace(string(comm)) != "cofferd" {
		t.Fatalf("pid %d of the wrapped node runs %q, want cofferd", pid, comm)
	}
	if pp := parentOf(t, pid); pp != os.Getpid() {
		t.Fatalf("pid %d's parent is %d, want this test (%d)", pid, pp, os.Getpid())
	}

	// SIGKILL node 0 and restart it on its data.
	pid0 := c.PID(0)
	if err := c.Kill(0); err != nil {
		t.Fatal(err)
	}
	if c.Running(0) || c.PID(0) != 0 {
		t.Fatalf("after Kill: running %v, pid %d", c.Running(0), c.PID(0))
	}
	if exited, code := c.Exited(0); exited {
		t.Fatalf("a node the harness killed counts as exited on its own (code %d)", code)
	}
	if st := procState(pid0); st != 0 {
		t.Fatalf("killed pid %d still exists (state %c)", pid0, st)
	}
	if err := healthz(c.HTTPURL(0), time.Second); err == nil {
		t.Fatal("a killed node answers /healthz")
	}
	if err := c.Kill(0); !errors.Is(err, ErrNotRunning) {
		t.Fatalf("Kill of a dead node: %v, want ErrNotRunning", err)
	}
	if err := c.Restart(ctx, 0); err != nil {
		t.Fatal(err)
	}
	if err := c.Restart(ctx, 0); !errors.Is(err, ErrRunning) {
		t.Fatalf("Restart of a running node: %v, want ErrRunning", err)
	}
	if p := c.PID(0); p == 0 || p == pid0 {
		t.Fatalf("restarted pid %d (was %d)", p, pid0)
	}
	if args := cmdline(t, c.PID(0)); slices.Contains(args, "--bootstrap-expect") {
		t.Fatalf("the restart bootstraps: %q", args)
	}
	logText := readFile(t, c.LogPath(0))
	if n := strings.Count(logText, "=== proc: n1 start "); n != 2 {
		t.Fatalf("%d start markers in n1's log, want 2:\n%s", n, logText)
	}
	exitAt, start2At := strings.Index(logText, "(killed by the harness)"), strings.Index(logText, "=== proc: n1 start 2 ")
	if exitAt < 0 || exitAt > start2At || !strings.Contains(logText, `"--bootstrap-expect" "3"`) {
		t.Fatalf("n1's log lacks the kill marker before the restart's, or the first boot's --bootstrap-expect 3:\n%s", logText)
	}
	if strings.Contains(logText, testPassword) {
		t.Fatal("the admin password is in the log")
	}

	// SIGSTOP the wrapped node: it stops answering; SIGCONT: it answers.
	if err := c.Stop(2); err != nil {
		t.Fatal(err)
	}
	if !c.Paused(2) || !c.Running(2) {
		t.Fatalf("after Stop: paused %v, running %v", c.Paused(2), c.Running(2))
	}
	if st := procState(c.PID(2)); st != 'T' {
		t.Fatalf("stopped node's state %c, want T", st)
	}
	if err := healthz(c.HTTPURL(2), time.Second); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("/healthz of a stopped node: %v, want a time-out", err)
	}
	if err := healthz(c.HTTPURL(1), 5*time.Second); err != nil {
		t.Fatalf("/healthz of a running node: %v", err)
	}
	if err := c.Cont(2); err != nil {
		t.Fatal(err)
	}
	if c.Paused(2) {
		t.Fatal("paused after Cont")
	}
	if err := healthz(c.HTTPURL(2), 5*time.Second); err != nil {
		t.Fatalf("/healthz after SIGCONT: %v", err)
	}

	// Add a fourth node; it joins the cluster; then forget it.
	s4, err := LoopbackSpec("n4", "")
	if err != nil {
		t.Fatal(err)
	}
	i4, err := c.Add(ctx, s4)
	if err != nil {
		t.Fatal(err)
	}
	if i4 != 3 || c.Len() != 4 {
		t.Fatalf("Add returned %d, Len %d; want 3 and 4", i4, c.Len())
	}
	waitUntil(t, "n4 in the cluster", time.Minute, func() error {
		st, err := admin.ClusterStatus(ctx)
		if err != nil {
			return err
		}
		for _, n := range st.Nodes {
			if n.Name == "n4" && n.State == "alive" {
				return nil
			}
		}
		return fmt.Errorf("nodes %+v", st.Nodes)
	})
	if err := c.Remove(i4); err != nil {
		t.Fatal(err)
	}
	if !c.Removed(i4) || c.Running(i4) {
		t.Fatalf("after Remove: removed %v, running %v", c.Removed(i4), c.Running(i4))
	}
	if err := c.Kill(i4); !errors.Is(err, ErrNoNode) {
		t.Fatalf("Kill of a removed node: %v, want ErrNoNode", err)
	}
	if _, err := c.Add(ctx, s4); !errors.Is(err, ErrInvalidConfig) {
		t.Fatalf("Add of a removed node's name again: %v, want ErrInvalidConfig", err)
	}

	// A node killed behind the harness's back is noticed.
	if err := syscall.Kill(c.PID(1), syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "n2's exit noticed", 20*time.Second, func() error {
		if exited, code := c.Exited(1); !exited || code != -1 {
			return fmt.Errorf("exited %v code %d", exited, code)
		}
		return nil
	})
	if log := readFile(t, c.LogPath(1)); !strings.Contains(log, "signal: killed (unexpectedly)") {
		t.Fatalf("n2's log does not record the exit:\n%s", tail(c.LogPath(1), 5))
	}

	// Close kills the rest (one of them paused) and leaves no process.
	if err := c.Stop(0); err != nil {
		t.Fatal(err)
	}
	pids := []int{c.PID(0), c.PID(2)}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	for _, p := range pids {
		if st := procState(p); st != 0 {
			t.Errorf("pid %d still exists after Close (state %c)", p, st)
		}
	}
	if left := procsWithArg(t, root); len(left) > 0 {
		t.Errorf("processes left after Close: %v", left)
	}
	if err := c.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if err := c.Restart(ctx, 0); !errors.Is(err, ErrClosed) {
		t.Errorf("Restart after Close: %v, want ErrClosed", err)
	}
}

// A node that exits at once (a configuration cofferd refuses) fails
// Start with ErrExited and its log's tail, and is noticed by Exited.
func TestStartReportsEarlyExit(t *testing.T) {
	bin := needBinary(t)
	t.Parallel()
	specs, err := LoopbackSpecs(1, "")
	if err != nil {
		t.Fatal(err)
	}
	specs[0].ExtraArgs = []string{"--group-replicas", "9"}
	dir := t.TempDir()
	noLeftovers(t, dir)
	c, err := New(Config{Binary: bin, Dir: dir, Nodes: specs, ReadyTimeout: 30 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	err = c.Start(context.Background())
	if !errors.Is(err, ErrExited) || !strings.Contains(err.Error(), "group replicas 9") {
		t.Fatalf("Start: %v; want ErrExited quoting cofferd's complaint", err)
	}
	if exited, code := c.Exited(0); !exited || code != 2 {
		t.Fatalf("Exited: %v, %d; want true, 2", exited, code)
	}
	if err := c.Start(context.Background()); !errors.Is(err, ErrStarted) {
		t.Fatalf("second Start: %v, want ErrStarted", err)
	}
}

// A wrapper that forks instead of exec'ing would have the harness signal
// the wrapper: Start refuses it, and Close still kills cofferd (it is in
// the wrapper's process group).
func TestForkingWrapperRefused(t *testing.T) {
	bin := needBinary(t)
	t.Parallel()
	dir := t.TempDir()
	noLeftovers(t, dir)
	c, err := oneNodeCluster(dir, bin, []string{"sh", "-c", `"$@"; exit $?`, "sh"})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	err = c.Start(ctx)
	if !errors.Is(err, ErrNotCofferd) {
		c.Close()
		t.Fatalf("Start behind a forking wrapper: %v, want ErrNotCofferd", err)
	}
	if len(procsWithArg(t, dir)) != 2 {
		t.Errorf("want the wrapper and cofferd running, have %v", procsWithArg(t, dir))
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	// cofferd, the wrapper's child, is reaped by whoever adopted it.
	waitUntil(t, "no process left", 20*time.Second, func() error {
		if left := procsWithArg(t, dir); len(left) > 0 {
			return fmt.Errorf("left: %v", left)
		}
		return nil
	})
}

// A harness killed with SIGKILL takes its nodes with it (Linux's
// parent-death signal).
func TestParentDeathKillsNodes(t *testing.T) {
	bin := needBinary(t)
	t.Parallel()
	dir := t.TempDir()
	noLeftovers(t, dir) // the node, if it outlived the helper
	helper := exec.Command(os.Args[0], "-test.run=^$")
	helper.Env = append(os.Environ(), helperDirEnv+"="+dir, helperBinEnv+"="+bin)
	helper.Stderr = os.Stderr
	stdin, err := helper.StdinPipe() // open until the helper dies
	if err != nil {
		t.Fatal(err)
	}
	defer stdin.Close()
	out, err := helper.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := helper.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		helper.Process.Kill() // if a check failed before the test killed it
		helper.Wait()
	})
	var node int
	line := make(chan string, 1)
	go func() {
		s := bufio.NewScanner(out)
		s.Scan()
		line <- s.Text()
	}()
	select {
	case l := <-line:
		p, ok := strings.CutPrefix(l, "pid ")
		if node, err = strconv.Atoi(p); !ok || err != nil {
			t.Fatalf("helper said %q", l)
		}
	case <-time.After(2 * time.Minute):
		t.Fatal("the helper's node did not become ready")
	}
	if err := checkExe(node, bin); err != nil {
		t.Fatal(err)
	}
	if pp := parentOf(t, node); pp != helper.Process.Pid {
		t.Fatalf("node %d's parent is %d, want the helper %d", node, pp, helper.Process.Pid)
	}
	if err := helper.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	helper.Wait() // a helper that did not die would keep its node: fail below
	waitUntil(t, "the node dies with its harness", 20*time.Second, func() error {
		if st := procState(node); st != 0 && st != 'Z' {
			return fmt.Errorf("pid %d state %c", node, st)
		}
		return nil
	})
}

// adminClient logs in as admin through node 0 and returns a client with
// the session's token that may use any node.
func adminClient(t *testing.T, ctx context.Context, c *Cluster) *client.Client {
	t.Helper()
	var urls []string
	for i := range c.Len() {
		urls = append(urls, c.HTTPURL(i))
	}
	anon, err := client.New(client.Config{Servers: urls, Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	var s *client.Session
	waitUntil(t, "admin login", time.Minute, func() error {
		s, err = anon.Login(ctx, "admin", testPassword)
		return err
	})
	if !s.Admin {
		t.Fatalf("session %+v is not an admin's", s)
	}
	cl, err := client.New(client.Config{Servers: urls, Token: s.Token, Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	return cl
}

// waitFormed waits until every group has a leader and voters voters.
func waitFormed(t *testing.T, ctx context.Context, cl *client.Client, voters int) {
	t.Helper()
	waitUntil(t, "cluster formed", 2*time.Minute, func() error {
		st, err := cl.ClusterStatus(ctx)
		if err != nil {
			return err
		}
		return cluster.CheckFormed(st, voters)
	})
}

// healthz GETs base/healthz within timeout: nil if it answers 200.
func healthz(base string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/healthz", nil)
	if err != nil {
		return err
	}
	hc := &http.Client{Transport: &http.Transport{Proxy: nil, DisableKeepAlives: true}}
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("HTTP %d", resp.StatusCode)
	}
	return nil
}

// parentOf is pid's parent PID.
func parentOf(t *testing.T, pid int) int {
	t.Helper()
	b := readFile(t, fmt.Sprintf("/proc/%d/stat", pid))
	f := strings.Fields(b[strings.LastIndexByte(b, ')')+1:])
	pp, err := strconv.Atoi(f[1])
	if err != nil {
		t.Fatalf("/proc/%d/stat: %q", pid, b)
	}
	return pp
}

// cmdline is pid's arguments.
func cmdline(t *testing.T, pid int) []string {
	t.Helper()
	return strings.Split(strings.TrimRight(readFile(t, fmt.Sprintf("/proc/%d/cmdline", pid)), "\x00"), "\x00")
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
