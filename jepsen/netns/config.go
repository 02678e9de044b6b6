package netns

import (
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
)

const (
	// MaxHosts is the largest Config.Hosts.
	MaxHosts = 50
	// DefaultPrefix is the name prefix used when Config.Prefix is empty.
	DefaultPrefix = "cj"
	// StateDir holds one lock and state file per live run
	// (run-<run>.lock) and the allocation lock. All runs on a machine share
	// it; that is how they keep out of each other's way.
	StateDir = "/run/coffer-jepsen"
	// maxPrefixLen keeps "<prefix><run>" (the root-side link name) within
	// IFNAMSIZ-1 = 15 bytes with room to spare.
	maxPrefixLen = 8
)

// Config describes a test network. The zero value of every field but Hosts
// means "default".
type Config struct {
	// Hosts is the number of test hosts, 1..MaxHosts. Required.
	Hosts int
	// Subnet is the IPv4 network of the hosts: a masked prefix of /16 to /24
	// inside 10.0.0.0/8. Host i gets the address network+i+1, the harness
	// the last address below the broadcast address (.254 in a /24). The zero
	// value picks the first free 10.213.X.0/24: free means no live run holds
	// its lock and no route on this machine overlaps it, so concurrent runs
	// never share one.
	Subnet netip.Prefix
	// Prefix starts every name this run creates: a lower-case letter, then
	// up to 7 lower-case letters or digits. Default DefaultPrefix ("cj").
	Prefix string
	// Logger receives progress at Info and every command at Debug, with
	// component=netns. Default: discard.
	Logger *slog.Logger
}

func (c Config) withDefaults() Config {
	if c.Prefix == "" {
		c.Prefix = DefaultPrefix
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	c.Logger = c.Logger.With("component", "netns")
	return c
}

// Validate reports every problem at once, wrapped in ErrInvalidConfig.
func (c Config) Validate() error {
	var errs []error
	if c.Hosts < 1 || c.Hosts > MaxHosts {
		errs = append(errs, fmt.Errorf("Hosts %d is not in 1..%d", c.Hosts, MaxHosts))
	}
	if c.Subnet.IsValid() {
		if err := validSubnet(c.Subnet); err != nil {
			errs = append(errs, err)
		}
	}
	if c.Prefix != "" {
		if err := validPrefix(c.Prefix); err != nil {
			errs = append(errs, err)
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("%w: %w", ErrInvalidConfig, errors.Join(errs...))
	}
	return nil
}

func validSubnet(p netip.Prefix) error {
	ten := netip.PrefixFrom(netip.AddrFrom4([4]byte{10}), 8)
	switch {
	case !p.Addr().Is4():
		return fmt.Errorf("Subnet %v is not IPv4", p)
	case p.Bits() < 16 || p.Bits() > 24:
		return fmt.Errorf("Subnet %v must be a /16 to /24", p)
	case p != p.Masked():
		return fmt.Errorf("Subnet %v has host bits set (want %v)", p, p.Masked())
	case !ten.Contains(p.Addr()):
		return fmt.Errorf("Subnet %v is not inside %v", p, ten)
	}
	return nil
}

func validPrefix(s string) error {
	bad := len(s) == 0 || len(s) > maxPrefixLen || s[0] < 'a' || s[0] > 'z'
	for _, r := range s {
		if (r < 'a' || r > 'z') && (r < '0' || r > '9') {
			bad = true
		}
	}
	if bad {
		return fmt.Errorf("Prefix %q must be a lower-case letter then up to %d lower-case letters or digits", s, maxPrefixLen-1)
	}
	return nil
}

// runID names a run after its subnet: the second and third octets in hex.
// Two live runs never overlap (their subnets are routed on this machine), so
// two live runs never share a run ID.
func runID(p netip.Prefix) string {
	a := p.Addr().As4()
	return fmt.Sprintf("%02x%02x", a[1], a[2])
}

// hostName is the name of host i: n1, n2, … matching its address's last
// octet in a /24.
func hostName(i int) string { return fmt.Sprintf("n%d", i+1) }

// nsName is the namespace of host i: <prefix><run>-n<i+1>.
func nsName(prefix, run string, i int) string { return prefix + run + "-" + hostName(i) }

// hubPort is host i's port on the bridge, in the hub namespace.
func hubPort(i int) string { return fmt.Sprintf("v%d", i+1) }

// hubName is the namespace that holds the bridge.
func hubName(prefix, run string) string { return prefix + run + "-hub" }

// rootLinkName is the harness's veth in the caller's namespace.
func rootLinkName(prefix, run string) string { return prefix + run }

// parseRun returns the run ID of a name this package gives (a namespace or
// the root link) for prefix, and whether name is one.
func parseRun(prefix, name string) (string, bool) {
	if len(name) < len(prefix)+4 || name[:len(prefix)] != prefix {
		return "", false
	}
	run, rest := name[len(prefix):len(prefix)+4], name[len(prefix)+4:]
	for _, r := range run {
		if (r < '0' || r > '9') && (r < 'a' || r > 'f') {
			return "", false
		}
	}
	switch {
	case rest == "" || rest == "-hub":
		return run, true
	case len(rest) > 2 && rest[:2] == "-n":
		for _, r := range rest[2:] {
			if r < '0' || r > '9' {
				return "", false
			}
		}
		return run, true
	}
	return "", false
}

// nthAddr is the address n after the network address of p.
func nthAddr(p netip.Prefix, n uint32) netip.Addr {
	a := p.Masked().Addr().As4()
	binary.BigEndian.PutUint32(a[:], binary.BigEndian.Uint32(a[:])+n)
	return netip.AddrFrom4(a)
}

// harnessAddr is the last address below p's broadcast address.
func harnessAddr(p netip.Prefix) netip.Addr {
	return nthAddr(p, uint32(1)<<(32-p.Bits())-2)
}
