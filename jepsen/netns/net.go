package netns

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// netnsDir is where iproute2 keeps named network namespaces.
const netnsDir = "/run/netns"

// closeTimeout bounds Close, which ignores its ctx's cancellation: cleanup
// must also run when the run's context has ended.
const closeTimeout = time.Minute

// Host is one test host.
type Host struct {
	// Name is n1, n2, …: host i is n<i+1>, like its address's last octet.
	Name string
	// NS is its network namespace (for `ip netns exec NS …`).
	NS string
	// Addr is its only address, on eth0 inside NS.
	Addr netip.Addr
}

// Net is a private test network: one namespace per host, all on one bridge
// that the harness reaches through its own address. Methods are safe for
// concurrent use; faults are applied one at a time.
type Net struct {
	r        runner
	log      *slog.Logger
	prefix   string
	run      string
	subnet   netip.Prefix
	harness  netip.Addr
	hosts    []Host
	hub      string
	rootLink string

	mu     sync.Mutex
	lock   *os.File // flock on lockPath(run); nil once released
	closed bool
	links  []linkState // per host
	delay  delayProbe
}

// Create builds a network of cfg.Hosts hosts:
//
//   - a namespace <prefix><run>-hub holding a bridge br0 (no address) and
//     the nftables table bridge coffer_jepsen that partitions and loss use;
//   - a veth pair from the caller's namespace to the bridge; the caller's
//     end, named <prefix><run>, has the harness address (HarnessAddr) and
//     forwards nothing;
//   - per host i a namespace <prefix><run>-n<i+1> with lo up and eth0 (a veth
//     whose other end, v<i+1>, is on the bridge) holding the host's address.
//
// <run> is four hex digits naming the subnet. Hosts have only the connected
// route of the subnet: no default route, no NAT, so they reach each other
// and the harness address and nothing else. IPv6 addresses are not
// generated. On any failure Create removes what it made and returns the
// error.
func Create(ctx context.Context, cfg Config) (*Net, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	t, err := findTools()
	if err != nil {
		return nil, err
	}
	r := runner{t: t, log: cfg.Logger}
	if err := os.MkdirAll(StateDir, 0o755); err != nil {
		return nil, fmt.Errorf("state dir: %w", err)
	}
	// The allocation lock is held until our route exists, so that two
	// Creates never both find an overlapping subnet free.
	alloc, err := lockWait(ctx, filepath.Join(StateDir, "alloc.lock"))
	if err != nil {
		return nil, err
	}
	defer alloc.Close()
	subnet, lock, err := pickSubnet(ctx, r, cfg.Subnet)
	if err != nil {
		return nil, err
	}
	run := runID(subnet)
	n := &Net{
		r: r, log: cfg.Logger, prefix: cfg.Prefix, run: run, subnet: subnet,
		harness: harnessAddr(subnet), hub: hubName(cfg.Prefix, run),
		rootLink: rootLinkName(cfg.Prefix, run), lock: lock,
		links: make([]linkState, cfg.Hosts),
	}
	for i := range cfg.Hosts {
		n.hosts = append(n.hosts, Host{Name: hostName(i), NS: nsName(cfg.Prefix, run, i), Addr: nthAddr(subnet, uint32(i+1))})
	}
	err = writeState(lock, state{PID: os.Getpid(), Prefix: cfg.Prefix, Run: run, Subnet: subnet.String(), Hosts: cfg.Hosts, Created: time.Now().UTC()})
	if err == nil {
		err = n.build(ctx)
	}
	if err != nil {
		if cerr := n.Close(ctx); cerr != nil {
			return nil, errors.Join(err, fmt.Errorf("cleanup: %w", cerr))
		}
		return nil, err
	}
	n.log.Info("test network created", "subnet", subnet, "harness", n.harness, "hosts", cfg.Hosts, "run", n.prefix+n.run)
	return n, nil
}

// build creates the namespaces, links, addresses and tables.
func (n *Net) build(ctx context.Context) error {
	// We hold the run's lock: anything already carrying our names is a
	// dead run's leftover.
	if err := n.r.removeRun(ctx, n.log, n.prefix, n.run); err != nil {
		return err
	}
	bits := n.subnet.Bits()
	root := []string{"netns add " + n.hub}
	for _, h := range n.hosts {
		root = append(root, "netns add "+h.NS)
	}
	root = append(root,
		fmt.Sprintf("link add %s type veth peer name up0 netns %s", n.rootLink, n.hub),
		"link set "+n.rootLink+" addrgenmode none",
		fmt.Sprintf("addr add %s/%d dev %s", n.harness, bits, n.rootLink))
	if err := n.r.ipBatch(ctx, "", root...); err != nil {
		return err
	}
	// The harness's end forwards nothing, so even a host that adds a route
	// via the harness address reaches nothing beyond it.
	if err := os.WriteFile("/proc/sys/net/ipv4/conf/"+n.rootLink+"/forwarding", []byte("0\n"), 0); err != nil {
		return fmt.Errorf("%w: disable forwarding on %s: %w", ErrUnsupported, n.rootLink, err)
	}
	// The filter table goes in before any host is on the bridge.
	if err := n.r.nft(ctx, n.hub, nftTable); err != nil {
		return err
	}
	hub := []string{"link add br0 type bridge", "link set br0 addrgenmode none", "link set br0 up",
		"link set up0 addrgenmode none", "link set up0 master br0 up"}
	for i, h := range n.hosts {
		v := hubPort(i)
		hub = append(hub, fmt.Sprintf("link add %s type veth peer name eth0 netns %s", v, h.NS),
			"link set "+v+" addrgenmode none", "link set "+v+" master br0 up")
	}
	if err := n.r.ipBatch(ctx, n.hub, hub...); err != nil {
		return err
	}
	for _, h := range n.hosts {
		if err := n.r.ipBatch(ctx, h.NS, "link set lo up", "link set eth0 addrgenmode none",
			fmt.Sprintf("addr add %s/%d dev eth0", h.Addr, bits), "link set eth0 up"); err != nil {
			return err
		}
	}
	return n.r.ip(ctx, "link", "set", n.rootLink, "up")
}

// Hosts returns the hosts; host i is Hosts()[i].
func (n *Net) Hosts() []Host { return append([]Host(nil), n.hosts...) }

// HarnessAddr is the caller's address on the test network (.254 in a /24).
// Partitions never drop traffic between it and any host.
func (n *Net) HarnessAddr() netip.Addr { return n.harness }

// Subnet is the network's prefix.
func (n *Net) Subnet() netip.Prefix { return n.subnet }

// Command returns a command that runs program name with args inside host's
// namespace, as `ip netns exec NS name args…`. ip execs the program in its
// own process, so once started cmd.Process is the program itself: signals
// (SIGKILL, SIGSTOP, SIGCONT) sent to it reach the program. An invalid host
// or a closed Net makes Start fail (cmd.Err wraps ErrInvalidArgument or
// ErrClosed). Close kills whatever still runs in the namespaces.
func (n *Net) Command(ctx context.Context, host int, name string, args ...string) *exec.Cmd {
	ns := "invalid"
	if host >= 0 && host < len(n.hosts) {
		ns = n.hosts[host].NS
	}
	cmd := exec.CommandContext(ctx, n.r.t.ip, append([]string{"netns", "exec", ns, name}, args...)...)
	n.mu.Lock()
	closed := n.closed
	n.mu.Unlock()
	switch {
	case host < 0 || host >= len(n.hosts):
		cmd.Err = fmt.Errorf("%w: host %d of %d", ErrInvalidArgument, host, len(n.hosts))
	case closed:
		cmd.Err = ErrClosed
	}
	return cmd
}

// Close kills the processes left in the hosts' namespaces, removes every
// namespace, link and lock file of the run, and releases the run. It ignores
// ctx's cancellation (cleanup must also happen after a failure) but not its
// values; it gives up after a minute. If removal fails, Close still releases
// the run and returns the error: Sweep will finish the job. Later calls
// return nil.
func (n *Net) Close(ctx context.Context) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.lock == nil {
		return nil
	}
	n.closed = true
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), closeTimeout)
	defer cancel()
	for i := range n.links {
		if d := n.links[i].delayer; d != nil {
			d.stop()
			n.links[i].delayer = nil
		}
	}
	err := n.r.removeRun(ctx, n.log, n.prefix, n.run)
	if err == nil {
		if rerr := os.Remove(lockPath(n.run)); rerr != nil && !errors.Is(rerr, os.ErrNotExist) {
			err = rerr
		}
	}
	n.lock.Close() // releases the flock
	n.lock = nil
	if err != nil {
		return fmt.Errorf("removing run %s%s (Sweep will retry): %w", n.prefix, n.run, err)
	}
	n.log.Info("test network removed", "subnet", n.subnet, "run", n.prefix+n.run)
	return nil
}

// removeRun kills the processes in, and deletes, every namespace and root
// link named for (prefix, run). The caller holds the run's lock. Names that
// vanish meanwhile are not errors.
func (r runner) removeRun(ctx context.Context, log *slog.Logger, prefix, run string) error {
	var errs []error
	nss := listNetns(prefix, run)
	for _, ns := range nss {
		out, err := r.run(ctx, "", r.t.ip, "netns", "pids", ns)
		if err != nil {
			continue // gone, or nothing we can do: deleting the name still works
		}
		killed := 0
		for _, f := range strings.Fields(string(out)) {
			if pid, err := strconv.Atoi(f); err == nil && pid != os.Getpid() && unix.Kill(pid, unix.SIGKILL) == nil {
				killed++
			}
		}
		if killed > 0 {
			log.Warn("killed processes left in a test namespace", "ns", ns, "count", killed)
		}
	}
	link := rootLinkName(prefix, run)
	if linkExists(link) {
		if err := r.ip(ctx, "link", "del", link); err != nil && linkExists(link) {
			errs = append(errs, err)
		}
	}
	for _, ns := range nss {
		if err := r.ip(ctx, "netns", "del", ns); err != nil && nsExists(ns) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// listNetns lists the namespaces named for (prefix, run), or every run of
// prefix if run is "".
func listNetns(prefix, run string) []string {
	ents, err := os.ReadDir(netnsDir)
	if err != nil {
		return nil
	}
	var out []string
	for _, e := range ents {
		if got, ok := parseRun(prefix, e.Name()); ok && (run == "" || got == run) && e.Name() != rootLinkName(prefix, got) {
			out = append(out, e.Name())
		}
	}
	return out
}

func nsExists(ns string) bool {
	_, err := os.Stat(filepath.Join(netnsDir, ns))
	return err == nil
}

func linkExists(name string) bool {
	_, err := net.InterfaceByName(name)
	return err == nil
}

// pickSubnet returns want, or the first free 10.213.X.0/24 if want is the
// zero Prefix, with its run lock held.
func pickSubnet(ctx context.Context, r runner, want netip.Prefix) (netip.Prefix, *os.File, error) {
	routes, err := r.routes(ctx)
	if err != nil {
		return netip.Prefix{}, nil, err
	}
	if want.IsValid() {
		if p, ok := overlaps(routes, want); ok {
			return netip.Prefix{}, nil, fmt.Errorf("%w: %v overlaps the route to %v on this machine", ErrSubnetInUse, want, p)
		}
		f, err := tryLock(lockPath(runID(want)))
		if errors.Is(err, errBusy) {
			st := readStateFile(lockPath(runID(want)))
			return netip.Prefix{}, nil, fmt.Errorf("%w: %v is held by run %s%s of pid %d", ErrSubnetInUse, want, st.Prefix, st.Run, st.PID)
		}
		return want, f, err
	}
	for x := range 256 {
		p := netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 213, byte(x), 0}), 24)
		if _, ok := overlaps(routes, p); ok {
			continue
		}
		f, err := tryLock(lockPath(runID(p)))
		if errors.Is(err, errBusy) {
			continue
		}
		return p, f, err
	}
	return netip.Prefix{}, nil, fmt.Errorf("%w: 10.213.0.0/16 is used up (Sweep removes dead runs)", ErrNoFreeSubnet)
}

// routes lists the IPv4 destinations of every routing table of the caller's
// namespace (addresses show up as local routes).
func (r runner) routes(ctx context.Context) ([]netip.Prefix, error) {
	out, err := r.run(ctx, "", r.t.ip, "-j", "-4", "route", "show", "table", "all")
	if err != nil {
		return nil, err
	}
	var rs []struct {
		Dst string `json:"dst"`
	}
	if err := json.Unmarshal(out, &rs); err != nil {
		return nil, fmt.Errorf("%w: parsing ip -j route: %w", ErrUnsupported, err)
	}
	var ps []netip.Prefix
	for _, rt := range rs {
		if p, err := netip.ParsePrefix(rt.Dst); err == nil {
			ps = append(ps, p)
		} else if a, err := netip.ParseAddr(rt.Dst); err == nil {
			ps = append(ps, netip.PrefixFrom(a, a.BitLen()))
		}
	}
	return ps, nil
}

// overlaps returns a route that overlaps p. Routes shorter than /8 (the
// default route, VPN catch-alls) do not count: a more specific route to a
// private test subnet takes nothing from them that the machine needs.
func overlaps(routes []netip.Prefix, p netip.Prefix) (netip.Prefix, bool) {
	for _, rt := range routes {
		if rt.Bits() >= 8 && rt.Overlaps(p) {
			return rt, true
		}
	}
	return netip.Prefix{}, false
}
