package main

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/coffer-dev/coffer/cluster"
	"github.com/coffer-dev/coffer/cluster/metarpc"
	"github.com/coffer-dev/coffer/internal/wire"
	"github.com/coffer-dev/coffer/raftmeta"
)

// procNode is one cofferd process of the test cluster.
type procNode struct {
	name                     string
	dir                      string
	raft, grpc, gossip, http string
	args                     []string
	cmd                      *exec.Cmd
	log                      *os.File
	exited                   chan error
}

func (p *procNode) start(t *testing.T, bin string) {
	t.Helper()
	p.cmd = exec.Command(bin, p.args...)
	p.cmd.Env = append(os.Environ(), "COFFER_ADMIN_PASSWORD=proc test password")
	var err error
	p.log, err = os.OpenFile(filepath.Join(filepath.Dir(p.dir), p.name+".log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	p.cmd.Stdout, p.cmd.Stderr = p.log, p.log
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p.exited = make(chan error, 1)
	go func() { p.exited <- p.cmd.Wait() }()
}

func (p *procNode) signal(sig syscall.Signal) { _ = p.cmd.Process.Signal(sig) }

// stop sends sig and waits for the exit, returning the exit error.
func (p *procNode) stop(sig syscall.Signal, timeout time.Duration) error {
	p.signal(sig)
	select {
	case err := <-p.exited:
		p.log.Close()
		return err
	case <-time.After(timeout):
		p.signal(syscall.SIGKILL)
		<-p.exited
		p.log.Close()
		return fmt.Errorf("%s did not stop within %v", p.name, timeout)
	}
}

// buildCofferd builds the server binary once for the test.
func buildCofferd(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "cofferd")
	cmd := exec.Command("go", "build", "-o", bin, ".")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// Three real cofferd processes on loopback. Commits flow to the admin's
// shard; its leader is SIGKILLed; the shard elects a new leader and keeps
// serving; no acknowledged commit is lost; the killed node restarts and
// catches up; SIGTERM stops every node cleanly.
func TestProcessesSurviveLeaderKill(t *testing.T) {
	if testing.Short() {
		t.Skip("real processes")
	}
	bin := buildCofferd(t)
	root := t.TempDir()
	var nodes []*procNode
	addrs, err := freeAddrs(12)
	if err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= 3; i++ {
		p := &procNode{name: fmt.Sprintf("p%d", i), dir: filepath.Join(root, fmt.Sprintf("p%d", i))}
		for j, a := range []*string{&p.raft, &p.grpc, &p.gossip, &p.http} {
			*a = addrs[4*(i-1)+j]
		}
		nodes = append(nodes, p)
	}
	for _, p := range nodes {
		p.args = []string{"--name", p.name, "--dir", p.dir, "--raft-addr", p.raft, "--grpc-addr", p.grpc,
			"--gossip-addr", p.gossip, "--http-addr", p.http, "--bootstrap-expect", "3", "--log-level", "info"}
		for _, o := range nodes {
			if o != p {
				p.args = append(p.args, "--join", o.gossip)
			}
		}
		p.start(t, bin)
	}
	t.Cleanup(func() {
		for _, p := range nodes {
			if p.cmd.ProcessState == nil {
				p.stop(syscall.SIGKILL, 10*time.Second)
			}
		}
		if t.Failed() {
			for _, p := range nodes {
				b, _ := os.ReadFile(filepath.Join(root, p.name+".log"))
				lines := strings.Split(string(b), "\n")
				t.Logf("--- %s log (last 40 lines):\n%s", p.name, strings.Join(lines[max(0, len(lines)-40):], "\n"))
			}
		}
	})
	const password = "proc test password"
	st := waitProcFormed(t, nodes, password, 3*time.Minute)
	shard, err := raftmeta.ShardOf("admin", st.Shards)
	if err != nil {
		t.Fatal(err)
	}

	conns := map[string]*metarpc.Client{}
	for _, p := range nodes {
		conn, err := grpc.NewClient(p.grpc, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		conns[p.grpc] = metarpc.NewClient(conn, metarpc.ClientConfig{CallTimeout: 5 * time.Second})
	}
	w := &procWriter{conns: conns, shard: shard}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	user, err := w.user(ctx)
	if err != nil {
		t.Fatal(err)
	}
	w.ns = user.Namespace

	// Commits flow from 4 writers until told to stop.
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for wr := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				w.commit(ctx, fmt.Sprintf("/w%d/f%05d", wr, i))
			}
		}()
	}
	waitAcks := func(n int, what string) {
		t.Helper()
		deadline := time.Now().Add(90 * time.Second)
		for w.acked() < n {
			if time.Now().After(deadline) {
				t.Fatalf("%s: only %d commits acknowledged, want %d", what, w.acked(), n)
			}
			time.Sleep(20 * time.Millisecond) // poll interval
		}
	}
	waitAcks(40, "before the kill")
	leaderGRPC := w.leaderAddr()
	var victim *procNode
	for _, p := range nodes {
		if p.grpc == leaderGRPC {
			victim = p
		}
	}
	if victim == nil {
		t.Fatalf("leader %q of shard %d is not one of the nodes", leaderGRPC, shard)
	}
	before := w.acked()
	killedAt := time.Now()
	victim.stop(syscall.SIGKILL, 10*time.Second)
	t.Logf("SIGKILLed %s, leader of shard %d, after %d acknowledged commits", victim.name, shard, before)
	waitAcks(before+40, "after the kill")
	t.Logf("40 more commits acknowledged %.1fs after the kill (new leader %s)", time.Since(killedAt).Seconds(), w.leaderAddr())
	close(stop)
	wg.Wait()

	// No acknowledged commit is lost: each is on the new leader.
	acked := w.ackedPaths()
	for _, path := range acked {
		var e *raftmeta.Entry
		err := w.do(ctx, func(c *metarpc.Client) error {
			var err error
			e, err = c.Stat(ctx, shard, w.ns, raftmeta.Target{Path: path}, raftmeta.StatOptions{})
			return err
		})
		if err != nil || e == nil {
			t.Fatalf("acknowledged %s: stat %v", path, err)
		}
	}
	t.Logf("%d acknowledged commits all present; %d attempts ended with an unknown outcome or error", len(acked), w.failures())

	// The new leader timed the commits it served.
	series := fmt.Sprintf(`coffer_raft_commit_seconds_count{group="%d"}`, shard)
	seen := false
	for _, p := range nodes {
		if p == victim {
			continue
		}
		if body, err := getText("http://" + p.http + "/metrics"); err == nil && strings.Contains(body, series) {
			seen = true
		}
	}
	if !seen {
		t.Errorf("no live node's /metrics has %s", series)
	}

	// The killed node restarts and catches up with the shard's leader.
	victim.start(t, bin)
	waitFor := func(what string, timeout time.Duration, cond func() error) {
		t.Helper()
		deadline := time.Now().Add(timeout)
		for {
			err := cond()
			if err == nil {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: %v", what, err)
			}
			time.Sleep(100 * time.Millisecond) // poll interval
		}
	}
	waitFor("the restarted node catches up", 2*time.Minute, func() error {
		var st wire.ClusterStatus
		if err := getJSON("http://"+nodes[0].http+"/v1/admin/cluster", "admin", password, &st); err != nil {
			if victim == nodes[0] {
				err = getJSON("http://"+nodes[1].http+"/v1/admin/cluster", "admin", password, &st)
			}
			if err != nil {
				return err
			}
		}
		for _, g := range st.Groups {
			if g.ID != shard {
				continue
			}
			for _, r := range g.Replicas {
				if r.Node == victim.name {
					// Applied indexes count the entries the state machine
					// sees (Raft's no-op and configuration entries are not
					// among them), so compare with the leader's.
					if r.Applied < g.Applied || g.Applied == 0 {
						return fmt.Errorf("%s applied %d, the leader %d", victim.name, r.Applied, g.Applied)
					}
					return nil
				}
			}
			return fmt.Errorf("%s is not a replica of shard %d any more", victim.name, shard)
		}
		return fmt.Errorf("no shard %d in status", shard)
	})

	// SIGTERM drains and stops every node cleanly (exit status 0).
	for _, p := range nodes {
		if err := p.stop(syscall.SIGTERM, 30*time.Second); err != nil {
			t.Errorf("%s: SIGTERM exit: %v", p.name, err)
		}
	}
}

// waitProcFormed waits until every group has three voters and a leader.
func waitProcFormed(t *testing.T, nodes []*procNode, password string, timeout time.Duration) *wire.ClusterStatus {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var last error
	for time.Now().Before(deadline) {
		for _, p := range nodes {
			select {
			case err := <-p.exited:
				t.Fatalf("%s exited during formation: %v", p.name, err)
			default:
			}
		}
		var st wire.ClusterStatus
		err := getJSON("http://"+nodes[0].http+"/v1/admin/cluster", "admin", password, &st)
		if err == nil {
			err = cluster.CheckFormed(&st, 3)
		}
		if err == nil {
			return &st
		}
		last = err
		time.Sleep(200 * time.Millisecond) // poll interval
	}
	t.Fatalf("cluster not formed in %v: %v", timeout, last)
	return nil
}

// procWriter commits to one shard through whichever node leads it,
// following not-leader answers, and records what was acknowledged.
type procWriter struct {
	conns map[string]*metarpc.Client
	shard uint64
	ns    uint64

	mu     sync.Mutex
	leader string
	paths  []string
	fails  int
}

func (w *procWriter) leaderAddr() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.leader
}

func (w *procWriter) acked() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.paths)
}

func (w *procWriter) ackedPaths() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]string(nil), w.paths...)
}

func (w *procWriter) failures() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.fails
}

// do runs f on the leader, following not-leader answers and trying every
// node when the leader is unknown or unreachable, for up to 30 s.
func (w *procWriter) do(ctx context.Context, f func(*metarpc.Client) error) error {
	deadline := time.Now().Add(30 * time.Second)
	var err error
	for time.Now().Before(deadline) {
		addr := w.leaderAddr()
		cands := []string{addr}
		if addr == "" {
			cands = nil
			for a := range w.conns {
				cands = append(cands, a)
			}
		}
		for _, a := range cands {
			c := w.conns[a]
			if c == nil {
				continue
			}
			err = f(c)
			var nl *raftmeta.NotLeaderError
			switch {
			case err == nil:
				w.mu.Lock()
				w.leader = a
				w.mu.Unlock()
				return nil
			case errors.As(err, &nl):
				w.mu.Lock()
				w.leader = nl.Leader
				w.mu.Unlock()
			case errors.Is(err, raftmeta.ErrUnknownOutcome), errors.Is(err, metarpc.ErrUnavailable), errors.Is(err, context.DeadlineExceeded):
				w.mu.Lock()
				w.leader = ""
				w.mu.Unlock()
			default:
				return err
			}
		}
		time.Sleep(50 * time.Millisecond) // back off before the next round
	}
	return err
}

func (w *procWriter) user(ctx context.Context) (*raftmeta.User, error) {
	var u *raftmeta.User
	err := w.do(ctx, func(c *metarpc.Client) error {
		var err error
		u, err = c.User(ctx, w.shard, "admin", raftmeta.ReadOptions{})
		return err
	})
	return u, err
}

// commit puts one small file at path, retrying with the same request ID
// (safe: applied at most once) until it is acknowledged or 30 s pass.
func (w *procWriter) commit(ctx context.Context, path string) {
	body := []byte(path)
	sum := raftmeta.Sum(sha256.Sum256(body))
	req := raftmeta.CommitRequest{RequestID: "proc-" + path, Namespace: w.ns, Ops: []raftmeta.Op{{
		Kind: raftmeta.OpPut, Path: path, Size: int64(len(body)), Hash: sum, Mode: 0o644,
		Blocks: []raftmeta.Block{{Ref: sum, Size: int64(len(body))}},
	}}}
	err := w.do(ctx, func(c *metarpc.Client) error {
		_, err := c.Commit(ctx, w.shard, req)
		return err
	})
	w.mu.Lock()
	defer w.mu.Unlock()
	if err != nil {
		w.fails++
		return
	}
	w.paths = append(w.paths, path)
}
