package netns

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"
)

// The test binary doubles as the programs the tests run inside namespaces:
// with COFFER_NETNS_HELPER set, TestMain runs that helper instead of tests.
const helperEnv = "COFFER_NETNS_HELPER"

func TestMain(m *testing.M) {
	if mode := os.Getenv(helperEnv); mode != "" {
		os.Exit(runHelper(mode))
	}
	os.Exit(m.Run())
}

// runHelper runs one helper mode; each prints "ready" (or its state) on
// stdout once it works and exits when stdin closes.
func runHelper(mode string) int {
	switch mode {
	case "serve":
		return serveEcho(os.Getenv("COFFER_NETNS_ADDR"))
	case "probe":
		return probeLoop(os.Stdin, os.Stdout)
	case "own":
		return ownNet(os.Getenv("COFFER_NETNS_PREFIX"))
	}
	fmt.Fprintln(os.Stderr, "unknown helper mode", mode)
	return 2
}

// serveEcho echoes lines over TCP and datagrams over UDP on addr.
func serveEcho(addr string) int {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	pc, err := net.ListenPacket("udp", addr)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	go echoTCP(ln)
	go echoUDP(pc)
	fmt.Println("ready")
	_, _ = io.Copy(io.Discard, os.Stdin)
	return 0
}

func echoTCP(ln net.Listener) {
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		go func() {
			defer c.Close()
			_, _ = io.Copy(c, c)
		}()
	}
}

func echoUDP(pc net.PacketConn) {
	buf := make([]byte, 2048)
	for {
		n, from, err := pc.ReadFrom(buf)
		if err != nil {
			return
		}
		_, _ = pc.WriteTo(buf[:n], from)
	}
}

// outcome classifies a network error as the probes report it.
func outcome(err error) string {
	var ne net.Error
	switch {
	case err == nil:
		return "ok"
	case errors.As(err, &ne) && ne.Timeout():
		return "timeout"
	default:
		return "error: " + err.Error()
	}
}

// tcpEcho dials addr, sends a line and waits for its echo.
func tcpEcho(addr string, timeout time.Duration) string {
	c, err := net.DialTimeout("tcp", addr, timeout)
	if err != nil {
		return outcome(err)
	}
	defer c.Close()
	return outcome(echoLine(c, bufio.NewReader(c), "ping", timeout))
}

// echoLine writes token and reads lines until it comes back.
func echoLine(c net.Conn, r *bufio.Reader, token string, timeout time.Duration) error {
	if err := c.SetDeadline(time.Now().Add(timeout)); err != nil {
		return err
	}
	if _, err := io.WriteString(c, token+"\n"); err != nil {
		return err
	}
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return err
		}
		if strings.TrimSpace(line) == token {
			return nil
		}
	}
}

// udpEcho sends a datagram to addr and waits for its echo.
func udpEcho(addr string, timeout time.Duration) string {
	c, err := net.Dial("udp", addr)
	if err != nil {
		return outcome(err)
	}
	defer c.Close()
	if err := c.SetDeadline(time.Now().Add(timeout)); err != nil {
		return outcome(err)
	}
	if _, err := c.Write([]byte("ping")); err != nil {
		return outcome(err)
	}
	buf := make([]byte, 64)
	n, err := c.Read(buf)
	if err == nil && string(buf[:n]) != "ping" {
		err = fmt.Errorf("echo %q", buf[:n])
	}
	return outcome(err)
}

// probeLoop answers one line per command read from in:
//
//	tcp ADDR TIMEOUT     TCP connect + echo on a new connection
//	udp ADDR TIMEOUT     UDP echo
//	open ADDR TIMEOUT    open the persistent TCP connection
//	conn TOKEN TIMEOUT   echo TOKEN on the persistent connection
func probeLoop(in io.Reader, out io.Writer) int {
	var (
		conn *net.TCPConn
		rd   *bufio.Reader
	)
	fmt.Fprintln(out, "ready")
	sc := bufio.NewScanner(in)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) != 3 {
			fmt.Fprintln(out, "error: bad command")
			continue
		}
		timeout, err := time.ParseDuration(f[2])
		if err != nil {
			fmt.Fprintln(out, "error:", err)
			continue
		}
		switch f[0] {
		case "tcp":
			fmt.Fprintln(out, tcpEcho(f[1], timeout))
		case "udp":
			fmt.Fprintln(out, udpEcho(f[1], timeout))
		case "open":
			c, err := net.DialTimeout("tcp", f[1], timeout)
			if err == nil {
				conn, rd = c.(*net.TCPConn), bufio.NewReader(c)
			}
			fmt.Fprintln(out, outcome(err))
		case "conn":
			if conn == nil {
				fmt.Fprintln(out, "error: no connection")
				continue
			}
			fmt.Fprintln(out, outcome(echoLine(conn, rd, f[1], timeout)))
		default:
			fmt.Fprintln(out, "error: unknown command")
		}
	}
	return 0
}

// ownerInfo is what the "own" helper prints about the Net it made.
type ownerInfo struct {
	Subnet string   `json:"subnet"`
	NS     []string `json:"ns"`
	Link   string   `json:"link"`
	Lock   string   `json:"lock"`
}

// ownNet creates a 2-host Net, prints its names, and closes it when stdin
// closes (a SIGKILL instead leaves it behind for Sweep).
func ownNet(prefix string) int {
	ctx := context.Background()
	n, err := Create(ctx, Config{Hosts: 2, Prefix: prefix})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	b, _ := json.Marshal(n.info())
	fmt.Println(string(b))
	_, _ = io.Copy(io.Discard, os.Stdin)
	if err := n.Close(ctx); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

func (n *Net) info() ownerInfo {
	oi := ownerInfo{Subnet: n.subnet.String(), NS: []string{n.hub}, Link: n.rootLink, Lock: lockPath(n.run)}
	for _, h := range n.hosts {
		oi.NS = append(oi.NS, h.NS)
	}
	return oi
}

// helper is a running helper process.
type helper struct {
	t     *testing.T
	cmd   *exec.Cmd
	stdin io.WriteCloser
	lines chan string
	first string // the line it printed when ready

	waitOnce sync.Once
	waitErr  error
	waited   chan struct{}
}

// startHelper runs mode inside host's namespace and waits until it is
// ready. It is stopped (stdin closed, then killed if need be) at cleanup.
func startHelper(t *testing.T, n *Net, host int, mode string, env ...string) *helper {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	return runHelperCmd(t, n.Command(context.Background(), host, exe), mode, env...)
}

func runHelperCmd(t *testing.T, cmd *exec.Cmd, mode string, env ...string) *helper {
	t.Helper()
	cmd.Env = append(append(os.Environ(), helperEnv+"="+mode), env...)
	cmd.Stderr = &testWriter{t: t, prefix: mode + ": "}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	h := &helper{t: t, cmd: cmd, stdin: stdin, lines: make(chan string, 16), waited: make(chan struct{})}
	go func() {
		defer close(h.lines)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			h.lines <- sc.Text()
		}
	}()
	t.Cleanup(h.stop)
	h.first = h.next()
	return h
}

// next returns the helper's next output line.
func (h *helper) next() string {
	h.t.Helper()
	select {
	case l, ok := <-h.lines:
		if !ok {
			h.t.Fatalf("helper %v ended: %v", h.cmd.Args, h.wait())
		}
		return l
	case <-time.After(30 * time.Second):
		h.t.Fatalf("helper %v: no answer in 30s", h.cmd.Args)
	}
	return ""
}

// ask sends a probe command and returns the answer.
func (h *helper) ask(format string, args ...any) string {
	h.t.Helper()
	if _, err := fmt.Fprintf(h.stdin, format+"\n", args...); err != nil {
		h.t.Fatal(err)
	}
	return h.next()
}

func (h *helper) wait() error {
	h.waitOnce.Do(func() {
		// Drain stdout first: Wait closes the pipe.
		for range h.lines {
		}
		h.waitErr = h.cmd.Wait()
		close(h.waited)
	})
	<-h.waited
	return h.waitErr
}

// stop closes stdin, and kills the helper if it has not ended 10s later.
func (h *helper) stop() {
	h.stdin.Close()
	done := make(chan struct{})
	go func() { _ = h.wait(); close(done) }() // the exit status of a stopped helper does not matter
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		_ = h.cmd.Process.Kill()
		<-done
	}
}

// testWriter copies a helper's stderr to the test log.
type testWriter struct {
	t      *testing.T
	prefix string
}

func (w *testWriter) Write(p []byte) (int, error) {
	w.t.Log(w.prefix + strings.TrimRight(string(p), "\n"))
	return len(p), nil
}
