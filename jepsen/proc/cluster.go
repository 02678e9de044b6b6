//go:build unix

package proc

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"time"
)

// Cluster runs the cofferd processes of one test. Nodes are named by
// index: the initial nodes are 0..len(Config.Nodes)-1 in order, and each
// Add appends one; an index never changes (Remove only marks it). Methods
// taking an index panic if it is out of range, like a slice, and return
// ErrNoNode for a removed node. A Cluster is safe for concurrent use.
type Cluster struct {
	cfg Config
	log *slog.Logger
	hc  *http.Client
	fk  forker

	mu      sync.Mutex
	nodes   []*node
	started bool
	closed  bool
}

// node is one tracked node and its latest process.
type node struct {
	spec      NodeSpec // Dir is absolute
	logPath   string
	bootstrap int // --bootstrap-expect of its first boot
	starts    int
	everReady bool // a restart need not bootstrap
	launching bool // a start is under way
	removed   bool
	p         *process // nil before the first start
}

// process is one run of a node. Its fields after done are guarded by
// Cluster.mu; done is closed once the process has exited and been
// waited for.
type process struct {
	pid  int
	os   *os.Process
	done chan struct{}

	exited bool
	code   int    // exit code, -1 if ended by a signal
	status string // as os.ProcessState says it
	killed bool   // the harness ended it: an expected exit
	paused bool
}

func (p *process) running() bool { return p != nil && !p.exited }

// New checks cfg and returns a Cluster that has not started anything yet.
func New(cfg Config) (*Cluster, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	dir, err := filepath.Abs(cfg.Dir)
	if err != nil {
		return nil, fmt.Errorf("%w: dir: %v", ErrInvalidConfig, err)
	}
	cfg.Dir = dir
	c := &Cluster{
		cfg: cfg,
		log: cfg.Logger.With("component", "proc"),
		// No proxy: the nodes' addresses are loopback or in the harness's
		// own namespaces, and nothing else may be contacted.
		hc: &http.Client{Transport: &http.Transport{Proxy: nil, DisableKeepAlives: true}},
	}
	for _, s := range cfg.Nodes {
		n, err := c.newNode(s)
		if err != nil {
			return nil, err
		}
		c.nodes = append(c.nodes, n)
	}
	return c, nil
}

func (c *Cluster) newNode(s NodeSpec) (*node, error) {
	if s.Dir == "" {
		s.Dir = filepath.Join(c.cfg.Dir, "nodes", s.Name)
	}
	dir, err := filepath.Abs(s.Dir)
	if err != nil {
		return nil, fmt.Errorf("%w: node %q: dir: %v", ErrInvalidConfig, s.Name, err)
	}
	s.Dir = dir
	return &node{spec: s, logPath: filepath.Join(c.cfg.Dir, "logs", s.Name+".log")}, nil
}

// Start starts every initial node — the first boot, with
// --bootstrap-expect set to the number of initial nodes unless a spec
// says otherwise — and waits until each answers 200 on /readyz, within
// Config.ReadyTimeout. On an error, processes may still run: call Close.
func (c *Cluster) Start(ctx context.Context) error {
	c.mu.Lock()
	switch {
	case c.closed:
		c.mu.Unlock()
		return ErrClosed
	case c.started:
		c.mu.Unlock()
		return ErrStarted
	}
	c.started = true
	initial := append([]*node(nil), c.nodes...)
	for _, n := range initial {
		n.launching = true
		n.bootstrap = n.spec.BootstrapExpect
		if n.bootstrap == 0 {
			n.bootstrap = len(initial)
		}
	}
	c.mu.Unlock()

	procs := make([]*process, len(initial))
	for k, n := range initial {
		var err error
		if procs[k], err = c.launch(n, n.bootstrap); err != nil {
			c.mu.Lock()
			for _, rest := range initial[k+1:] {
				rest.launching = false
			}
			c.mu.Unlock()
			return err
		}
	}
	ctx, cancel := context.WithTimeout(ctx, c.cfg.ReadyTimeout)
	defer cancel()
	for k, n := range initial {
		if err := c.waitReady(ctx, n, procs[k]); err != nil {
			return err
		}
	}
	c.log.Info("cluster ready", "nodes", len(initial))
	return nil
}

// Restart starts node i again on its data directory, joining the other
// nodes' gossip addresses (or its spec's Join), and waits for its
// /readyz within Config.ReadyTimeout. It passes --bootstrap-expect only if
// the node never became ready (it may have died before the cluster
// formed). ErrRunning if its process still runs.
func (c *Cluster) Restart(ctx context.Context, i int) error {
	c.mu.Lock()
	n, err := c.nodeLocked(i)
	if err == nil && !c.started {
		err = ErrNotStarted
	}
	if err == nil && (n.launching || n.p.running()) {
		err = fmt.Errorf("%w: %s", ErrRunning, n.spec.Name)
	}
	if err != nil {
		c.mu.Unlock()
		return err
	}
	n.launching = true
	bootstrap := n.bootstrap
	if n.everReady {
		bootstrap = 0
	}
	c.mu.Unlock()
	return c.startAndWait(ctx, n, bootstrap)
}

// startAndWait launches n and waits for its readiness within
// Config.ReadyTimeout.
func (c *Cluster) startAndWait(ctx context.Context, n *node, bootstrap int) error {
	p, err := c.launch(n, bootstrap)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, c.cfg.ReadyTimeout)
	defer cancel()
	return c.waitReady(ctx, n, p)
}

// Add starts a new node that joins the running cluster (its spec's Join,
// or every tracked node's gossip address; --bootstrap-expect only if the
// spec sets it) and waits for its /readyz within Config.ReadyTimeout. It
// returns the node's index, also with an error once the node is tracked
// (so that its log and exit can be inspected).
func (c *Cluster) Add(ctx context.Context, spec NodeSpec) (int, error) {
	c.mu.Lock()
	switch {
	case c.closed:
		c.mu.Unlock()
		return -1, ErrClosed
	case !c.started:
		c.mu.Unlock()
		return -1, ErrNotStarted
	}
	var have []NodeSpec
	for _, n := range c.nodes {
		have = append(have, n.spec)
	}
	if errs := checkSpecs([]NodeSpec{spec}, have); len(errs) > 0 {
		c.mu.Unlock()
		return -1, fmt.Errorf("%w: %w", ErrInvalidConfig, errors.Join(errs...))
	}
	n, err := c.newNode(spec)
	if err != nil {
		c.mu.Unlock()
		return -1, err
	}
	n.bootstrap = spec.BootstrapExpect
	n.launching = true
	c.nodes = append(c.nodes, n)
	i := len(c.nodes) - 1
	c.mu.Unlock()
	return i, c.startAndWait(ctx, n, n.bootstrap)
}

// WaitReady waits until node i's running process answers 200 on
// /readyz, within ctx and Config.ReadyTimeout.
func (c *Cluster) WaitReady(ctx context.Context, i int) error {
	c.mu.Lock()
	n, err := c.nodeLocked(i)
	if err == nil && !n.p.running() {
		err = fmt.Errorf("%w: %s", ErrNotRunning, n.spec.Name)
	}
	c.mu.Unlock()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, c.cfg.ReadyTimeout)
	defer cancel()
	return c.waitReady(ctx, n, n.p)
}

// Kill sends SIGKILL to node i's process and waits for it to exit.
func (c *Cluster) Kill(i int) error {
	n, p, err := c.runningProc(i)
	if err != nil {
		return err
	}
	c.log.Info("SIGKILL", "node", n.spec.Name, "pid", p.pid)
	return c.kill(n, p)
}

// Stop sends SIGSTOP to node i's process and, on Linux, waits until all
// its threads are stopped. Stopping a paused node does nothing.
func (c *Cluster) Stop(i int) error {
	return c.pause(i, true)
}

// Cont sends SIGCONT to node i's paused process and, on Linux, waits
// until it runs again. Continuing a node that is not paused does nothing.
func (c *Cluster) Cont(i int) error {
	return c.pause(i, false)
}

func (c *Cluster) pause(i int, stop bool) error {
	c.mu.Lock()
	n, err := c.nodeLocked(i)
	if err != nil {
		c.mu.Unlock()
		return err
	}
	p := n.p
	switch {
	case !p.running():
		c.mu.Unlock()
		return fmt.Errorf("%w: %s", ErrNotRunning, n.spec.Name)
	case p.paused == stop:
		c.mu.Unlock()
		return nil
	}
	p.paused = stop
	c.mu.Unlock()
	sig, name := syscall.SIGCONT, "SIGCONT"
	if stop {
		sig, name = syscall.SIGSTOP, "SIGSTOP"
	}
	c.log.Info(name, "node", n.spec.Name, "pid", p.pid)
	if err := p.os.Signal(sig); err != nil {
		return fmt.Errorf("%w: %s pid %d: %v", ErrNotRunning, n.spec.Name, p.pid, err)
	}
	return c.waitStopped(n, p, stop)
}

// waitStopped waits until p's threads are all stopped (or not), where
// that can be seen; ErrStuck after Config.KillTimeout.
func (c *Cluster) waitStopped(n *node, p *process, stop bool) error {
	deadline := time.NewTimer(c.cfg.KillTimeout)
	defer deadline.Stop()
	tick := time.NewTicker(2 * time.Millisecond)
	defer tick.Stop()
	for {
		all, known := stopped(p.pid)
		if !known || all == stop {
			return nil
		}
		select {
		case <-p.done:
			return fmt.Errorf("%w: %s pid %d exited", ErrNotRunning, n.spec.Name, p.pid)
		case <-deadline.C:
			return fmt.Errorf("%w: %s pid %d: stopped=%v after %v", ErrStuck, n.spec.Name, p.pid, all, c.cfg.KillTimeout)
		case <-tick.C:
		}
	}
}

// Remove stops tracking node i, after the harness removed it from the
// cluster through the admin API. A process still running is killed
// first. Its spec and log stay readable; its name and addresses are not
// reused by Add.
func (c *Cluster) Remove(i int) error {
	c.mu.Lock()
	n, err := c.nodeLocked(i)
	if err != nil {
		c.mu.Unlock()
		return err
	}
	n.removed = true
	p := n.p
	running := p.running()
	if running {
		p.killed = true
	}
	c.mu.Unlock()
	c.log.Info("removed", "node", n.spec.Name)
	if running {
		return c.kill(n, p)
	}
	return nil
}

// Close kills every process still running (SIGCONT first for paused
// ones), waits for them, and refuses further starts. It may be called
// more than once.
func (c *Cluster) Close() error {
	c.mu.Lock()
	c.closed = true
	c.mu.Unlock()
	// After this no process can start; one forked just now is tracked.
	c.fk.close()
	c.mu.Lock()
	var victims []*node
	for _, n := range c.nodes {
		if n.p.running() {
			n.p.killed = true
			victims = append(victims, n)
		}
	}
	c.mu.Unlock()
	for _, n := range victims {
		c.signalKill(n.p)
	}
	var errs []error
	for _, n := range victims {
		if err := c.waitExit(n, n.p); err != nil {
			errs = append(errs, err)
		}
	}
	c.hc.CloseIdleConnections()
	if len(victims) > 0 {
		c.log.Info("cluster closed", "killed", len(victims))
	}
	return errors.Join(errs...)
}

// Len is the number of nodes ever tracked, removed ones included.
func (c *Cluster) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.nodes)
}

// Spec is node i's spec, with its data directory filled in.
func (c *Cluster) Spec(i int) NodeSpec {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.nodes[i].spec
}

// HTTPURL is the base URL of node i's HTTP API (http://IP:PORT).
func (c *Cluster) HTTPURL(i int) string { return c.Spec(i).HTTPURL() }

// LogPath is node i's log file: its stdout and stderr of every start.
func (c *Cluster) LogPath(i int) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.nodes[i].logPath
}

// PID is the process ID of node i's running process (0 if none).
func (c *Cluster) PID(i int) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	if p := c.nodes[i].p; p.running() {
		return p.pid
	}
	return 0
}

// Running reports whether node i has a process that has not exited
// (paused or not).
func (c *Cluster) Running(i int) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.nodes[i].p.running()
}

// Paused reports whether node i's running process is stopped by Stop.
func (c *Cluster) Paused(i int) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	p := c.nodes[i].p
	return p.running() && p.paused
}

// Exited reports whether node i's latest process exited without the
// harness ending it (a crash, a refused configuration), and its exit code
// (-1 if a signal ended it).
func (c *Cluster) Exited(i int) (bool, int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	p := c.nodes[i].p
	if p == nil || !p.exited || p.killed {
		return false, 0
	}
	return true, p.code
}

// Removed reports whether node i was removed.
func (c *Cluster) Removed(i int) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.nodes[i].removed
}

// nodeLocked returns node i, ErrNoNode if it was removed, ErrClosed after
// Close. c.mu is held.
func (c *Cluster) nodeLocked(i int) (*node, error) {
	n := c.nodes[i]
	switch {
	case c.closed:
		return nil, ErrClosed
	case n.removed:
		return nil, fmt.Errorf("%w: %s was removed", ErrNoNode, n.spec.Name)
	}
	return n, nil
}

// runningProc returns node i and its running process, marked as killed
// by the harness.
func (c *Cluster) runningProc(i int) (*node, *process, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	n, err := c.nodeLocked(i)
	if err != nil {
		return nil, nil, err
	}
	if !n.p.running() {
		return nil, nil, fmt.Errorf("%w: %s", ErrNotRunning, n.spec.Name)
	}
	n.p.killed = true
	return n, n.p, nil
}

// kill sends SIGKILL to p (marked killed) and waits for its exit.
func (c *Cluster) kill(n *node, p *process) error {
	c.signalKill(p)
	return c.waitExit(n, p)
}

// signalKill continues p if it is paused, then sends SIGKILL to its
// process group (each node has its own: a wrapper that forked instead of
// exec'ing left cofferd there) and to p itself. A process that has exited
// meanwhile is no error (its waiter reports it).
func (c *Cluster) signalKill(p *process) {
	c.mu.Lock()
	paused, exited := p.paused, p.exited
	c.mu.Unlock()
	if exited {
		return
	}
	if paused {
		_ = p.os.Signal(syscall.SIGCONT)
	}
	// p was not seen to exit, so its PID names its group (the window
	// between its reaping and exited being set is microseconds).
	_ = syscall.Kill(-p.pid, syscall.SIGKILL)
	_ = p.os.Signal(syscall.SIGKILL)
}

// waitExit waits up to Config.KillTimeout for p to have exited.
func (c *Cluster) waitExit(n *node, p *process) error {
	t := time.NewTimer(c.cfg.KillTimeout)
	defer t.Stop()
	select {
	case <-p.done:
		return nil
	case <-t.C:
		return fmt.Errorf("%w: %s pid %d still runs %v after SIGKILL", ErrStuck, n.spec.Name, p.pid, c.cfg.KillTimeout)
	}
}

// joinFor is the gossip addresses node n joins: its spec's, or every
// other tracked node's. c.mu is held.
func (c *Cluster) joinFor(n *node) []string {
	if len(n.spec.Join) > 0 {
		return n.spec.Join
	}
	var out []string
	for _, o := range c.nodes {
		if o != n && !o.removed {
			out = append(out, o.spec.GossipAddr)
		}
	}
	return out
}

// args is the command line of a node's start, after the binary.
func (s NodeSpec) args(bootstrap int, join []string) []string {
	a := []string{
		"--name", s.Name, "--dir", s.Dir,
		"--raft-addr", s.RaftAddr, "--grpc-addr", s.GRPCAddr,
		"--gossip-addr", s.GossipAddr, "--http-addr", s.HTTPAddr,
	}
	for _, j := range join {
		a = append(a, "--join", j)
	}
	if bootstrap > 0 {
		a = append(a, "--bootstrap-expect", strconv.Itoa(bootstrap))
	}
	if s.Shards > 0 {
		a = append(a, "--shards", strconv.Itoa(s.Shards))
	}
	return append(a, s.ExtraArgs...)
}
