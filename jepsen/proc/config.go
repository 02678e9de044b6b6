//go:build unix

package proc

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"path/filepath"
	"regexp"
	"strconv"
	"time"
)

// Defaults of Config.
const (
	DefaultReadyTimeout = 2 * time.Minute
	DefaultKillTimeout  = 30 * time.Second
)

// NodeSpec describes one cofferd node: its identity, its four listeners
// and how it is launched.
type NodeSpec struct {
	// Name is the node's --name, also its log file's name: letters,
	// digits, '.', '_' and '-'.
	Name string
	// Dir is the node's data directory (default Config.Dir/nodes/<Name>).
	Dir string
	// RaftAddr, GRPCAddr, GossipAddr and HTTPAddr are the node's
	// listeners, IP:PORT (what other nodes dial, so not 0.0.0.0).
	RaftAddr, GRPCAddr, GossipAddr, HTTPAddr string
	// Join lists gossip addresses to join. Empty: the gossip addresses of
	// every other node the Cluster tracks, computed at each start.
	Join []string
	// BootstrapExpect is --bootstrap-expect on the node's first boot by
	// Cluster.Start (0: the number of nodes in Config.Nodes). Nodes added
	// later use it as given (0: join only). A restart passes it only if
	// the node never became ready (it may not have joined the cluster).
	BootstrapExpect int
	// AdminPassword is the first admin's password, passed in the
	// environment (COFFER_ADMIN_PASSWORD), not on the command line. Empty:
	// cofferd generates one into the node's DIR/admin-password.
	AdminPassword string
	// Shards is --shards (0: cofferd's default).
	Shards int
	// ExtraArgs are appended to the command line (e.g. --log-level debug).
	ExtraArgs []string
	// Wrap is a command prefix, e.g. {"ip", "netns", "exec", "ns1"}. It must
	// exec cofferd in place, so that the PID signalled is cofferd's.
	Wrap []string
}

// HTTPURL is the base URL of the node's HTTP API.
func (s NodeSpec) HTTPURL() string { return "http://" + s.HTTPAddr }

// Config configures a Cluster.
type Config struct {
	// Binary is the cofferd executable (see Build).
	Binary string
	// Dir is the run's root: node data in Dir/nodes/<name> (unless the
	// spec names a Dir), logs in Dir/logs/<name>.log.
	Dir string
	// Nodes are the initial nodes, started by Cluster.Start.
	Nodes []NodeSpec
	// Logger receives the package's events (default: discarded).
	Logger *slog.Logger
	// ReadyTimeout bounds the wait for /readyz after Start (all nodes),
	// Restart or Add (default DefaultReadyTimeout).
	ReadyTimeout time.Duration
	// KillTimeout bounds the wait for a process to exit after SIGKILL
	// (default DefaultKillTimeout).
	KillTimeout time.Duration
}

// withDefaults returns c with its zero fields set to their defaults.
func (c Config) withDefaults() Config {
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.ReadyTimeout == 0 {
		c.ReadyTimeout = DefaultReadyTimeout
	}
	if c.KillTimeout == 0 {
		c.KillTimeout = DefaultKillTimeout
	}
	return c
}

// Validate reports every problem with the configuration at once; the
// error wraps ErrInvalidConfig.
func (c Config) Validate() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if c.Binary == "" {
		bad("binary: not set")
	}
	if c.Dir == "" {
		bad("dir: not set")
	}
	if len(c.Nodes) == 0 {
		bad("nodes: none")
	}
	if c.ReadyTimeout < 0 {
		bad("ready timeout %v: must not be negative", c.ReadyTimeout)
	}
	if c.KillTimeout < 0 {
		bad("kill timeout %v: must not be negative", c.KillTimeout)
	}
	errs = append(errs, checkSpecs(c.Nodes, nil)...)
	if len(errs) > 0 {
		return fmt.Errorf("%w: %w", ErrInvalidConfig, errors.Join(errs...))
	}
	return nil
}

var nameRE = regexp.MustCompile(`^[A-Za-z0-9._-]+$`)

// Validate reports every problem with the spec at once; the error wraps
// ErrInvalidConfig.
func (s NodeSpec) Validate() error {
	if errs := s.problems(); len(errs) > 0 {
		return fmt.Errorf("%w: %w", ErrInvalidConfig, errors.Join(errs...))
	}
	return nil
}

// problems lists the spec's problems, each prefixed with the node's name.
func (s NodeSpec) problems() []error {
	var errs []error
	who := "node " + strconv.Quote(s.Name)
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf(who+": "+format, args...))
	}
	if !nameRE.MatchString(s.Name) || s.Name == "." || s.Name == ".." {
		bad("name must be letters, digits, '.', '_' or '-'")
	}
	for _, a := range []struct{ flag, val string }{
		{"raft addr", s.RaftAddr}, {"grpc addr", s.GRPCAddr}, {"gossip addr", s.GossipAddr}, {"http addr", s.HTTPAddr},
	} {
		if err := checkAddr(a.val); err != nil {
			bad("%s %q: %v", a.flag, a.val, err)
		}
	}
	for _, j := range s.Join {
		if _, _, err := net.SplitHostPort(j); err != nil {
			bad("join %q: %v", j, err)
		}
	}
	if s.BootstrapExpect < 0 {
		bad("bootstrap expect %d: must not be negative", s.BootstrapExpect)
	}
	if s.Shards < 0 {
		bad("shards %d: must not be negative", s.Shards)
	}
	for k, w := range s.Wrap {
		if w == "" {
			bad("wrap[%d]: empty", k)
		}
	}
	return errs
}

// checkAddr accepts IP:PORT with a specific IP and a port 1-65535.
func checkAddr(a string) error {
	host, port, err := net.SplitHostPort(a)
	if err != nil {
		return err
	}
	ip := net.ParseIP(host)
	switch {
	case ip == nil:
		return errors.New("not an IP address")
	case ip.IsUnspecified():
		return errors.New("other nodes cannot dial an unspecified address")
	}
	if p, err := strconv.Atoi(port); err != nil || p < 1 || p > 65535 {
		return errors.New("port must be 1 to 65535")
	}
	return nil
}

// checkSpecs reports the problems of specs, and names or addresses that
// clash among them or with those of have.
func checkSpecs(specs, have []NodeSpec) []error {
	var errs []error
	names := map[string]bool{}
	addrs := map[string]string{}
	dirs := map[string]string{}
	note := func(s NodeSpec) []error {
		var errs []error
		if names[s.Name] {
			errs = append(errs, fmt.Errorf("node %q: name used twice", s.Name))
		}
		names[s.Name] = true
		for _, a := range []string{s.RaftAddr, s.GRPCAddr, s.GossipAddr, s.HTTPAddr} {
			if a == "" {
				continue
			}
			if o, ok := addrs[a]; ok {
				if o == s.Name {
					errs = append(errs, fmt.Errorf("node %q: address %s used twice", s.Name, a))
				} else {
					errs = append(errs, fmt.Errorf("node %q: address %s is also node %q's", s.Name, a, o))
				}
				continue
			}
			addrs[a] = s.Name
		}
		if s.Dir != "" {
			d := filepath.Clean(s.Dir)
			if o, ok := dirs[d]; ok {
				errs = append(errs, fmt.Errorf("node %q: data dir %s is also node %q's", s.Name, s.Dir, o))
			}
			dirs[d] = s.Name
		}
		return errs
	}
	for _, s := range have {
		note(s)
	}
	for _, s := range specs {
		errs = append(errs, s.problems()...)
		errs = append(errs, note(s)...)
	}
	return errs
}
