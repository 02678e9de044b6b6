//go:build unix

package proc

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"time"
)

// Polling of /readyz: each attempt is bounded, and the pause between
// attempts doubles up to a ceiling.
const (
	readyAttemptTimeout = 2 * time.Second
	readyFirstDelay     = 50 * time.Millisecond
	readyMaxDelay       = time.Second
	// logTailLines of a node's log are quoted when it exits before it is
	// ready: enough for cofferd's complaint and its usage text.
	logTailLines = 60
)

// launch starts one process of node n (whose launching flag the caller
// set, and launch clears) and tracks it as n's latest process.
func (c *Cluster) launch(n *node, bootstrap int) (*process, error) {
	defer func() {
		c.mu.Lock()
		n.launching = false
		c.mu.Unlock()
	}()
	c.mu.Lock()
	join := c.joinFor(n)
	n.starts++
	start := n.starts
	c.mu.Unlock()
	s := n.spec
	argv := append(append(append([]string(nil), s.Wrap...), c.cfg.Binary), s.args(bootstrap, join)...)

	if err := os.MkdirAll(filepath.Dir(n.logPath), 0o755); err != nil {
		return nil, fmt.Errorf("%s: log: %w", s.Name, err)
	}
	logf, err := os.OpenFile(n.logPath, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return nil, fmt.Errorf("%s: log: %w", s.Name, err)
	}
	fmt.Fprintf(logf, "=== proc: %s start %d at %s: %q\n", s.Name, start, stamp(), argv)

	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = nodeEnv(os.Environ(), s.AdminPassword)
	cmd.Stdout, cmd.Stderr = logf, logf // the child writes the file itself
	cmd.SysProcAttr = sysProcAttr()
	p := &process{done: make(chan struct{})}
	err = c.fk.start(cmd, func() {
		p.os, p.pid = cmd.Process, cmd.Process.Pid
		c.mu.Lock()
		n.p = p
		c.mu.Unlock()
	})
	if err != nil {
		fmt.Fprintf(logf, "=== proc: %s start %d failed: %v\n", s.Name, start, err)
		logf.Close()
		return nil, fmt.Errorf("%s: start: %w", s.Name, err)
	}
	c.log.Info("node started", "node", s.Name, "pid", p.pid, "start", start, "bootstrap_expect", bootstrap)
	go c.reap(n, p, cmd, logf)
	return p, nil
}

// reap waits for p's exit, records it, and notes it in the log.
func (c *Cluster) reap(n *node, p *process, cmd *exec.Cmd, logf *os.File) {
	_ = cmd.Wait() // the state says what happened
	code, status := -1, "unknown exit"
	if st := cmd.ProcessState; st != nil {
		code, status = st.ExitCode(), st.String()
	}
	c.mu.Lock()
	killed := p.killed // set before the harness signals
	c.mu.Unlock()
	how := "unexpectedly"
	if killed {
		how = "killed by the harness"
	}
	// The marker goes in before the exit is known, so that it precedes a
	// restart's start marker.
	fmt.Fprintf(logf, "=== proc: %s pid %d exited at %s: %s (%s)\n", n.spec.Name, p.pid, stamp(), status, how)
	logf.Close()
	c.mu.Lock()
	p.exited, p.code, p.status, p.paused = true, code, status, false
	c.mu.Unlock()
	if killed {
		c.log.Info("node exited", "node", n.spec.Name, "pid", p.pid, "status", status)
	} else {
		c.log.Warn("node exited unexpectedly", "node", n.spec.Name, "pid", p.pid, "status", status, "log", n.logPath)
	}
	close(p.done)
}

func stamp() string { return time.Now().UTC().Format(time.RFC3339Nano) }

// nodeEnv is the environment of a node: the harness's own, without any
// COFFER_ variable (which cofferd would read as configuration), plus the
// admin password (kept off the command line and the log).
func nodeEnv(env []string, password string) []string {
	var out []string
	for _, kv := range env {
		if !strings.HasPrefix(kv, "COFFER_") {
			out = append(out, kv)
		}
	}
	if password != "" {
		out = append(out, "COFFER_ADMIN_PASSWORD="+password)
	}
	return out
}

// waitReady polls n's /readyz until it answers 200, p exits, or ctx
// ends; then checks that p's PID is cofferd's.
func (c *Cluster) waitReady(ctx context.Context, n *node, p *process) error {
	url := n.spec.HTTPURL() + "/readyz"
	delay := readyFirstDelay
	var last error
	for {
		last = c.probe(ctx, url)
		if last == nil {
			break
		}
		t := time.NewTimer(delay)
		select {
		case <-p.done:
			t.Stop()
			return c.exitedError(n, p)
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("%w: %s (pid %d): %v; last answer: %v", ErrNotReady, n.spec.Name, p.pid, ctx.Err(), last)
		case <-t.C:
		}
		delay = min(2*delay, readyMaxDelay)
	}
	if err := checkExe(p.pid, c.cfg.Binary); err != nil {
		select {
		case <-p.done:
			return c.exitedError(n, p)
		default:
			return fmt.Errorf("%s: %w", n.spec.Name, err)
		}
	}
	c.mu.Lock()
	n.everReady = true
	c.mu.Unlock()
	c.log.Info("node ready", "node", n.spec.Name, "pid", p.pid)
	return nil
}

// probe GETs url once: nil if it answers 200.
func (c *Cluster) probe(ctx context.Context, url string) error {
	ctx, cancel := context.WithTimeout(ctx, readyAttemptTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("HTTP %d: %s", resp.StatusCode, bytes.TrimSpace(body))
	}
	return nil
}

// exitedError describes p's exit before readiness, with its log's tail.
func (c *Cluster) exitedError(n *node, p *process) error {
	c.mu.Lock()
	status := p.status
	c.mu.Unlock()
	return fmt.Errorf("%w: %s (pid %d) %s before it was ready; %s ends:\n%s",
		ErrExited, n.spec.Name, p.pid, status, n.logPath, tail(n.logPath, logTailLines))
}

// tail is the last lines of the file at path (at most 16 KiB of it).
func tail(path string, lines int) string {
	f, err := os.Open(path)
	if err != nil {
		return err.Error()
	}
	defer f.Close()
	const most = 16 << 10
	if fi, err := f.Stat(); err == nil && fi.Size() > most {
		if _, err := f.Seek(fi.Size()-most, io.SeekStart); err != nil {
			return err.Error()
		}
	}
	b, err := io.ReadAll(f)
	if err != nil {
		return err.Error()
	}
	ls := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	return strings.Join(ls[max(0, len(ls)-lines):], "\n")
}

// forker starts processes from one goroutine locked to its OS thread.
// On Linux a node's parent-death signal fires when the thread that forked
// it ends, not the process: Go may end a thread that another goroutine
// locked and left locked (as network-namespace code does to discard a
// thread), so forking from an arbitrary thread could kill a node at a
// random moment. This thread is never handed to anyone else; it ends
// after close (when every node has been killed anyway), or with the
// harness.
type forker struct {
	mu     sync.Mutex
	reqs   chan forkReq
	closed bool
}

type forkReq struct {
	cmd   *exec.Cmd
	reply chan error
}

// start runs cmd.Start on the forking thread and then, still holding the
// lock that close takes, calls track: a process is tracked before close
// returns, so Close kills it.
func (f *forker) start(cmd *exec.Cmd, track func()) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return ErrClosed
	}
	if f.reqs == nil {
		f.reqs = make(chan forkReq)
		go forkLoop(f.reqs)
	}
	r := forkReq{cmd: cmd, reply: make(chan error, 1)}
	f.reqs <- r
	if err := <-r.reply; err != nil {
		return err
	}
	track()
	return nil
}

// close ends the forking goroutine; later starts fail with ErrClosed.
func (f *forker) close() {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.closed && f.reqs != nil {
		close(f.reqs)
	}
	f.closed = true
}

func forkLoop(reqs <-chan forkReq) {
	// Never unlocked: the thread ends with this goroutine, and with it
	// goes the parent-death signal of anything it forked that still runs.
	runtime.LockOSThread()
	for r := range reqs {
		r.reply <- r.cmd.Start()
	}
}
