package netns

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// These tests build real namespaces and need root, ip and nft; without them
// they skip, saying why.

// needNetns skips t unless this machine can build test networks, then
// makes it parallel.
func needNetns(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := Available(ctx); err != nil {
		t.Skipf("network namespaces unavailable, skipping: %v", err)
	}
	t.Parallel()
}

// testLogger writes to the test log.
func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(&testWriter{t: t}, &slog.HandlerOptions{Level: slog.LevelInfo}))
}

// newNet creates a Net that is closed (and checked) at cleanup. Each test
// has its own prefix, so that one test's names never reappear in another's
// (a subnet freed by one test is soon taken by the next).
func newNet(t *testing.T, prefix string, hosts int) *Net {
	t.Helper()
	n, err := Create(context.Background(), Config{Hosts: hosts, Prefix: prefix, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := n.Close(context.Background()); err != nil {
			t.Error(err)
		}
	})
	return n
}

// serve starts the echo helper on host's address, port 7000.
func serve(t *testing.T, n *Net, host int) (*helper, string) {
	addr := netip.AddrPortFrom(n.Hosts()[host].Addr, 7000).String()
	return startHelper(t, n, host, "serve", "COFFER_NETNS_ADDR="+addr), addr
}

// waitFor polls cond until it holds, failing the test after timeout.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// A short timeout is for a probe expected to fail (a dropped packet only
// shows as silence); a long one for a probe expected to succeed.
const (
	short = 300 * time.Millisecond
	long  = 5 * time.Second
)

func TestPartitionCutsHostsButNotHarness(t *testing.T) {
	needNetns(t)
	ctx := context.Background()
	n := newNet(t, "cjp", 3)
	_, srv := serve(t, n, 0)

	// The harness's own echo server, reached from host 1.
	ln, err := net.Listen("tcp", netip.AddrPortFrom(n.HarnessAddr(), 0).String())
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go echoTCP(ln)

	p := startHelper(t, n, 1, "probe")
	check := func(what, got, want string) {
		t.Helper()
		if got != want {
			t.Errorf("%s: got %q, want %q", what, got, want)
		}
	}
	check("harness→n1 tcp", tcpEcho(srv, long), "ok")
	check("harness→n1 udp", udpEcho(srv, long), "ok")
	check("n2→n1 tcp", p.ask("tcp %s %v", srv, long), "ok")
	check("n2→n1 udp", p.ask("udp %s %v", srv, long), "ok")
	check("n2→n1 open", p.ask("open %s %v", srv, long), "ok")
	check("n2→n1 established", p.ask("conn a %v", long), "ok")

	g, desc := IsolateOne(3, 0)
	if desc != "isolate n1 | n2 n3" {
		t.Errorf("description %q", desc)
	}
	if err := n.Partition(ctx, g); err != nil {
		t.Fatal(err)
	}
	check("partitioned n2→n1 tcp", p.ask("tcp %s %v", srv, short), "timeout")
	check("partitioned n2→n1 udp", p.ask("udp %s %v", srv, short), "timeout")
	check("partitioned n2→n1 established", p.ask("conn b %v", short), "timeout")
	check("partitioned harness→n1 tcp", tcpEcho(srv, long), "ok")
	check("partitioned harness→n1 udp", udpEcho(srv, long), "ok")
	check("partitioned n2→harness tcp", p.ask("tcp %s %v", ln.Addr(), long), "ok")

	if err := n.Heal(ctx); err != nil {
		t.Fatal(err)
	}
	check("healed n2→n1 tcp", p.ask("tcp %s %v", srv, long), "ok")
	check("healed n2→n1 udp", p.ask("udp %s %v", srv, long), "ok")
	// The connection survived: TCP retransmits b, then c gets through.
	check("healed n2→n1 established", p.ask("conn c %v", 10*time.Second), "ok")

	for _, bad := range []Grudge{{3: {0}}, {0: {0}}, {1: {-1}}} {
		if err := n.Partition(ctx, bad); !errors.Is(err, ErrInvalidArgument) {
			t.Errorf("Partition(%v) = %v, want ErrInvalidArgument", bad, err)
		}
	}
}

func TestHostsRouteNothingBeyondTheSubnet(t *testing.T) {
	needNetns(t)
	ctx := context.Background()
	n := newNet(t, "cjr", 2)
	h := n.Hosts()[0]
	ip := n.r.t.ip
	out := func(args ...string) (string, error) {
		b, err := exec.CommandContext(ctx, ip, args...).CombinedOutput()
		return strings.TrimSpace(string(b)), err
	}

	// Only the connected route of the subnet, in every table.
	routes, err := out("-n", h.NS, "-4", "route", "show", "table", "main")
	if err != nil {
		t.Fatal(routes, err)
	}
	if lines := strings.Split(routes, "\n"); len(lines) != 1 || !strings.HasPrefix(lines[0], n.Subnet().String()+" dev eth0 ") {
		t.Errorf("IPv4 routes of %s:\n%s\nwant only the connected %v", h.NS, routes, n.Subnet())
	}
	// Route lookups only: nothing is sent.
	for _, dst := range []string{"192.0.2.1", "198.51.100.7", "8.8.8.8", "2001:db8::1"} {
		if got, err := out("-n", h.NS, "route", "get", dst); err == nil {
			t.Errorf("%s has a route to %s: %s", h.NS, dst, got)
		}
	}
	if got, _ := out("-n", h.NS, "-6", "addr", "show", "dev", "eth0"); got != "" {
		t.Errorf("eth0 of %s has IPv6 addresses:\n%s", h.NS, got)
	}
	if got, _ := out("-n", n.hub, "-4", "addr"); got != "" {
		t.Errorf("the hub namespace has IPv4 addresses:\n%s", got)
	}
	fwd, err := os.ReadFile("/proc/sys/net/ipv4/conf/" + n.rootLink + "/forwarding")
	if err != nil || strings.TrimSpace(string(fwd)) != "0" {
		t.Errorf("forwarding on %s = %q, %v; want 0", n.rootLink, fwd, err)
	}
	// The harness address is on the subnet and reachable.
	_, srv := serve(t, n, 0)
	if got := tcpEcho(srv, long); got != "ok" {
		t.Errorf("harness→n1: %s", got)
	}
}

// connectRTT is the fastest of k TCP connects to addr: one round trip.
func connectRTT(t *testing.T, addr string, k int) time.Duration {
	t.Helper()
	best := time.Duration(math.MaxInt64)
	for range k {
		start := time.Now()
		c, err := net.DialTimeout("tcp", addr, long)
		if err != nil {
			t.Fatal(err)
		}
		best = min(best, time.Since(start))
		c.Close()
	}
	return best
}

// udpCount sends rounds×per datagrams to addr, a round at a time, and
// counts the distinct echoes. A round ends when the echo of a marker sent
// after it comes back (markers are resent until one does): the echo server
// answers in order, so by then every surviving echo of the round is in, and
// the count does not depend on how fast a loaded machine answers.
func udpCount(t *testing.T, addr string, rounds, per int) int {
	t.Helper()
	c, err := net.Dial("udp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	got := map[string]bool{}
	buf := make([]byte, 64)
	send := func(format string, args ...any) {
		if _, err := fmt.Fprintf(c, format, args...); err != nil {
			t.Fatal(err)
		}
	}
	for r := range rounds {
		for i := range per {
			send("d%d.%d", r, i)
		}
		deadline := time.Now().Add(long)
		for done := false; !done; {
			if time.Now().After(deadline) {
				t.Fatalf("no marker echo in %v", long)
			}
			send("m%d", r)
			_ = c.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
			for !done {
				n, err := c.Read(buf)
				if err != nil {
					break // resend the marker
				}
				msg := string(buf[:n])
				done = msg == fmt.Sprintf("m%d", r)
				if msg[0] == 'd' {
					got[msg] = true
				}
			}
		}
	}
	return len(got)
}

func TestLinkFaults(t *testing.T) {
	needNetns(t)
	ctx := context.Background()
	n := newNet(t, "cjl", 2)
	_, srv := serve(t, n, 0)

	for _, bad := range []func() error{
		func() error { return n.Slow(ctx, 0, -time.Millisecond, 0) },
		func() error { return n.Slow(ctx, 0, time.Millisecond, 2*time.Millisecond) },
		func() error { return n.Slow(ctx, 2, time.Millisecond, 0) },
		func() error { return n.Lossy(ctx, 0, 101) },
		func() error { return n.Lossy(ctx, 0, math.NaN()) },
		func() error { return n.Lossy(ctx, -1, 5) },
	} {
		if err := bad(); !errors.Is(err, ErrInvalidArgument) {
			t.Errorf("got %v, want ErrInvalidArgument", err)
		}
	}

	const delay = 200 * time.Millisecond
	if rtt := connectRTT(t, srv, 3); rtt >= delay/2 {
		t.Fatalf("round trip %v before any fault", rtt)
	}
	method, err := n.DelayMethod(ctx)
	if errors.Is(err, ErrUnsupported) {
		t.Logf("Slow untested: %v", err)
	} else {
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("delay method: %s", method)
		if err := n.Slow(ctx, 0, delay, 0); err != nil {
			t.Fatal(err)
		}
		if rtt := connectRTT(t, srv, 3); rtt < delay {
			t.Errorf("round trip %v with a %v delay", rtt, delay)
		}
		start := time.Now()
		if got := udpEcho(srv, long); got != "ok" || time.Since(start) < delay {
			t.Errorf("UDP echo %s after %v with a %v delay", got, time.Since(start), delay)
		}
		if err := n.Slow(ctx, 0, delay, delay/4); err != nil {
			t.Fatal(err)
		}
		if rtt := connectRTT(t, srv, 3); rtt < delay-delay/4 {
			t.Errorf("round trip %v with a %v±%v delay", rtt, delay, delay/4)
		}
		if err := n.ClearLinks(ctx); err != nil {
			t.Fatal(err)
		}
		if rtt := connectRTT(t, srv, 5); rtt >= delay/2 {
			t.Errorf("round trip %v after ClearLinks", rtt)
		}
	}

	if err := n.Lossy(ctx, 0, 100); err != nil {
		t.Fatal(err)
	}
	if got := udpEcho(srv, short); got != "timeout" {
		t.Errorf("UDP echo through 100%% loss: %s", got)
	}
	if got := tcpEcho(srv, short); got != "timeout" {
		t.Errorf("TCP echo through 100%% loss: %s", got)
	}
	if err := n.Lossy(ctx, 0, 30); err != nil {
		t.Fatal(err)
	}
	// 200 datagrams at 30% loss: about 140 echoes; 80..190 is beyond any
	// doubt (more than 7 standard deviations either way).
	if got := udpCount(t, srv, 8, 25); got < 80 || got > 190 {
		t.Errorf("%d of 200 echoes at 30%% loss", got)
	}
	if method != "" {
		if err := n.Slow(ctx, 0, delay, 0); err != nil { // delay and loss together
			t.Fatal(err)
		}
	}
	if err := n.ClearLinks(ctx); err != nil {
		t.Fatal(err)
	}
	if got := udpCount(t, srv, 8, 25); got != 200 {
		t.Errorf("%d of 200 echoes after ClearLinks", got)
	}
	if rtt := connectRTT(t, srv, 5); rtt >= delay/2 {
		t.Errorf("round trip %v after ClearLinks", rtt)
	}
}

// procState is the state letter of /proc/PID/stat (R, S, T, Z, …).
func procState(pid int) string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return ""
	}
	s := string(b)
	if i := strings.LastIndexByte(s, ')'); i >= 0 && i+2 < len(s) {
		return s[i+2 : i+3]
	}
	return ""
}

func sameFile(t *testing.T, a, b string) bool {
	t.Helper()
	sa, err := os.Stat(a)
	if err != nil {
		t.Fatal(err)
	}
	sb, err := os.Stat(b)
	if err != nil {
		t.Fatal(err)
	}
	return os.SameFile(sa, sb)
}

func TestCommandPIDTakesSignals(t *testing.T) {
	needNetns(t)
	n := newNet(t, "cjk", 1)
	srv, addr := serve(t, n, 0)
	pid := srv.cmd.Process.Pid

	// The PID is the program itself, inside the host's namespace.
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	if !sameFile(t, fmt.Sprintf("/proc/%d/exe", pid), exe) {
		t.Errorf("pid %d is not the test binary but %v", pid, srv.cmd.Args)
	}
	if !sameFile(t, fmt.Sprintf("/proc/%d/ns/net", pid), filepath.Join(netnsDir, n.Hosts()[0].NS)) {
		t.Errorf("pid %d is not in namespace %s", pid, n.Hosts()[0].NS)
	}

	if err := srv.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	waitFor(t, long, "SIGSTOP", func() bool { return procState(pid) == "T" })
	if got := tcpEcho(addr, short); got != "timeout" {
		t.Errorf("a stopped server answered: %s", got)
	}
	if err := srv.cmd.Process.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	waitFor(t, long, "SIGCONT", func() bool { return procState(pid) != "T" })
	if got := tcpEcho(addr, long); got != "ok" {
		t.Errorf("a continued server: %s", got)
	}
	if err := srv.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	var ee *exec.ExitError
	if err := srv.wait(); !errors.As(err, &ee) || !ee.Sys().(syscall.WaitStatus).Signaled() || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Errorf("after SIGKILL, Wait = %v", err)
	}
	if err := n.Command(context.Background(), 1, "true").Run(); !errors.Is(err, ErrInvalidArgument) {
		t.Errorf("Command on host 1 of 1: %v", err)
	}
}

// leftovers lists which of names still exist as namespaces, root links or
// (paths) files.
func leftovers(t *testing.T, oi ownerInfo) []string {
	t.Helper()
	var out []string
	for _, ns := range oi.NS {
		if nsExists(ns) {
			out = append(out, "netns "+ns)
		}
	}
	if linkExists(oi.Link) {
		out = append(out, "link "+oi.Link)
	}
	list, err := exec.Command(lookTool("ip"), "-o", "link", "show").CombinedOutput()
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(list), " "+oi.Link+":") || strings.Contains(string(list), " "+oi.Link+"@") {
		out = append(out, "ip link shows "+oi.Link)
	}
	if _, err := os.Stat(oi.Lock); err == nil {
		out = append(out, "file "+oi.Lock)
	}
	return out
}

func TestCloseLeavesNothing(t *testing.T) {
	needNetns(t)
	ctx := context.Background()
	n, err := Create(ctx, Config{Hosts: 3, Prefix: "cjc", Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	oi := n.info()
	if got := leftovers(t, oi); len(got) != len(oi.NS)+3 {
		t.Fatalf("before Close, found only %v", got)
	}
	srv, _ := serve(t, n, 1) // still running at Close: Close kills it
	if err := n.Lossy(ctx, 0, 10); err != nil {
		t.Fatal(err)
	}
	if err := n.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if got := leftovers(t, oi); len(got) > 0 {
		t.Errorf("after Close: %v", got)
	}
	if err := srv.wait(); err == nil {
		t.Error("a process left in a namespace survived Close")
	}
	if err := n.Close(ctx); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if err := n.Heal(ctx); !errors.Is(err, ErrClosed) {
		t.Errorf("Heal after Close: %v", err)
	}
	if err := n.Command(ctx, 0, "true").Run(); !errors.Is(err, ErrClosed) {
		t.Errorf("Command after Close: %v", err)
	}
}

// cancelOn cancels a context when a log record's cmd attribute contains
// match: a deterministic way to make Create fail half way.
type cancelOn struct {
	match  string
	cancel context.CancelFunc
}

func (h cancelOn) Enabled(context.Context, slog.Level) bool { return true }
func (h cancelOn) WithAttrs([]slog.Attr) slog.Handler       { return h }
func (h cancelOn) WithGroup(string) slog.Handler            { return h }
func (h cancelOn) Handle(_ context.Context, r slog.Record) error {
	r.Attrs(func(a slog.Attr) bool {
		if a.Key == "stdin" && strings.Contains(a.Value.String(), h.match) {
			h.cancel()
		}
		return true
	})
	return nil
}

func TestCreateFailureRemovesWhatItMade(t *testing.T) {
	needNetns(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	// Cancel as the hub's bridge is about to be made: the namespaces and the
	// root link exist by then.
	_, err := Create(ctx, Config{Hosts: 2, Prefix: "cjf", Logger: slog.New(cancelOn{match: "link add br0", cancel: cancel})})
	if err == nil || !errors.Is(err, context.Canceled) && !errors.Is(err, ErrCommand) {
		t.Fatalf("Create = %v, want a failure", err)
	}
	for _, ns := range listNetns("cjf", "") {
		t.Errorf("namespace %s left behind", ns)
	}
	ifs, _ := net.Interfaces()
	for _, ifc := range ifs {
		if strings.HasPrefix(ifc.Name, "cjf") {
			t.Errorf("link %s left behind", ifc.Name)
		}
	}
	matches, _ := filepath.Glob(filepath.Join(StateDir, "run-*.lock"))
	for _, m := range matches {
		if readStateFile(m).Prefix == "cjf" {
			t.Errorf("lock file %s left behind", m)
		}
	}
}

// startOwner runs the "own" helper (outside any namespace): a process that
// creates a 2-host Net with prefix and holds it.
func startOwner(t *testing.T, prefix string) (*helper, ownerInfo) {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	h := runHelperCmd(t, exec.Command(exe), "own", "COFFER_NETNS_PREFIX="+prefix)
	var oi ownerInfo
	if err := json.Unmarshal([]byte(h.first), &oi); err != nil {
		t.Fatalf("owner said %q: %v", h.first, err)
	}
	return h, oi
}

func TestSweepRemovesDeadRunsOnly(t *testing.T) {
	needNetns(t)
	ctx := context.Background()
	const prefix = "cjs"
	dead, deadInfo := startOwner(t, prefix)
	live, liveInfo := startOwner(t, prefix)
	mine, err := Create(ctx, Config{Hosts: 1, Prefix: prefix})
	if err != nil {
		t.Fatal(err)
	}
	defer mine.Close(ctx)
	mineInfo := mine.info()

	if err := dead.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = dead.wait()
	if got := leftovers(t, deadInfo); len(got) != len(deadInfo.NS)+3 {
		t.Fatalf("a killed owner left only %v", got)
	}
	if err := Sweep(ctx, prefix, testLogger(t)); err != nil {
		t.Fatal(err)
	}
	if got := leftovers(t, deadInfo); len(got) > 0 {
		t.Errorf("Sweep left the dead run's %v", got)
	}
	for _, oi := range []ownerInfo{liveInfo, mineInfo} {
		if got := leftovers(t, oi); len(got) != len(oi.NS)+3 {
			t.Errorf("Sweep took from a live run: only %v left of %+v", got, oi)
		}
	}
	if err := mine.Partition(ctx, nil); err != nil {
		t.Errorf("a live Net after Sweep: %v", err)
	}

	// The live owner closes its Net cleanly when told to.
	live.stdin.Close()
	if err := live.wait(); err != nil {
		t.Errorf("live owner: %v", err)
	}
	if got := leftovers(t, liveInfo); len(got) > 0 {
		t.Errorf("after the owner's Close: %v", got)
	}
}

func TestTwoNetsAreSeparate(t *testing.T) {
	needNetns(t)
	ctx := context.Background()
	var (
		nets [2]*Net
		errs [2]error
		wg   sync.WaitGroup
	)
	for i := range nets { // at the same time
		wg.Go(func() { nets[i], errs[i] = Create(ctx, Config{Hosts: 1, Prefix: "cjt", Logger: testLogger(t)}) })
	}
	wg.Wait()
	for i, n := range nets {
		if n != nil {
			t.Cleanup(func() {
				if err := n.Close(ctx); err != nil {
					t.Error(err)
				}
			})
		}
		if errs[i] != nil {
			t.Fatal(errs[i])
		}
	}
	a, b := nets[0], nets[1]
	if a.Subnet().Overlaps(b.Subnet()) || a.Hosts()[0].NS == b.Hosts()[0].NS {
		t.Fatalf("two nets share %v/%v, %s/%s", a.Subnet(), b.Subnet(), a.Hosts()[0].NS, b.Hosts()[0].NS)
	}
	if _, err := Create(ctx, Config{Hosts: 1, Prefix: "cjx", Subnet: a.Subnet()}); !errors.Is(err, ErrSubnetInUse) {
		t.Errorf("Create on a live subnet: %v", err)
	}
	_, srvA := serve(t, a, 0)
	_, srvB := serve(t, b, 0)
	for _, srv := range []string{srvA, srvB} {
		if got := tcpEcho(srv, long); got != "ok" {
			t.Errorf("harness→%s: %s", srv, got)
		}
	}
	// B's host has no route to A's host nor to A's harness address, so the
	// probe fails at once without sending anything.
	p := startHelper(t, b, 0, "probe")
	for _, dst := range []string{srvA, netip.AddrPortFrom(a.HarnessAddr(), 7000).String()} {
		if got := p.ask("tcp %s %v", dst, short); !strings.Contains(got, "network is unreachable") {
			t.Errorf("B's host → %s: %s", dst, got)
		}
	}
	if got := p.ask("tcp %s %v", srvB, long); got != "ok" {
		t.Errorf("B's host → itself: %s", got)
	}
}
