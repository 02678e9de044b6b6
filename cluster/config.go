package cluster

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"regexp"
	"slices"
	"strconv"
	"time"

	"github.com/coffer-dev/coffer/gateway"
	"github.com/coffer-dev/coffer/raftmeta"
)

// The roles a node can play.
const (
	RoleMeta    = "meta"    // hosts replicas of Raft groups
	RoleBlock   = "block"   // stores blocks
	RoleGateway = "gateway" // serves the user-facing HTTP API
)

// AllRoles is the default: a node plays every role.
var AllRoles = []string{RoleMeta, RoleBlock, RoleGateway}

// Defaults.
const (
	DefaultShards        = 8
	DefaultGroupReplicas = 3
	DefaultBlockR        = 3
	DefaultBlockW        = 2
	MaxShards            = 1024
)

var nameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$`)

// Config configures one node. The zero value of every field but Name, Dir
// and the four addresses means its default.
type Config struct {
	// Name is the node's unique, stable name: its Raft server ID in every
	// group and its block node ID. Letters, digits, '.', '_', '-'; at most
	// 63 bytes.
	Name string
	// Dir is the data directory (see DESIGN.md for its layout).
	Dir string
	// Roles the node plays (default AllRoles).
	Roles []string

	// The node's four listeners, each HOST:PORT. HOST must be an IP the
	// other nodes can reach (it is what the node advertises); port 0 picks
	// a free port (for tests).
	RaftAddr   string
	GRPCAddr   string
	GossipAddr string
	HTTPAddr   string

	// Join lists other nodes' gossip addresses.
	Join []string
	// BootstrapExpect is how many nodes (with the meta role) must have met
	// before a new cluster forms; 0 means this node never bootstraps and
	// only joins an existing cluster.
	BootstrapExpect int
	// Shards is the number of shard groups, fixed when the cluster is
	// created (default 8; ignored when the cluster exists).
	Shards int
	// GroupReplicas is the number of voters per group (default 3; fewer
	// while the cluster has fewer meta nodes).
	GroupReplicas int
	// BlockR and BlockW: replicas per block and how many acknowledge a
	// write (defaults 3 and 2).
	BlockR, BlockW int

	// AdminPassword is the first admin's password, used by the node that
	// bootstraps the cluster; empty means generate one (written to the log
	// and to Dir/admin-password).
	AdminPassword string
	// Password is the argon2id cost (default raftmeta's).
	Password raftmeta.PasswordParams

	// GossipKey, if set, encrypts gossip (16, 24 or 32 bytes, the same on
	// every node).
	GossipKey []byte
	// TLS, if set, is mutual TLS for gRPC and Raft.
	TLS *TLSFiles

	// Timing. Zero values mean production defaults; Fast picks short
	// timings for tests on one machine.
	Fast bool
	// ControlInterval is how often the placement controller runs (default
	// 2s, Fast 200ms).
	ControlInterval time.Duration
	// DeadAfter is how long a node must have been dead in gossip before its
	// replicas are moved (default 30s, Fast 2s).
	DeadAfter time.Duration

	// BlockMinFreeBytes is the block store's free-space reserve (default
	// the store's; -1 off).
	BlockMinFreeBytes int64

	// Gateway tunes the gateway (login limits, overload limits, block
	// cache, file size limit, ...; zero fields take gateway's defaults).
	// Its Meta, Blocks, Cluster and Logger are the node's own and must be
	// left nil.
	Gateway gateway.Config

	// Logger receives the node's logs (default: discard).
	Logger *slog.Logger
}

// TLSFiles names the PEM files for mutual TLS between nodes.
type TLSFiles struct {
	CAFile   string // the cluster CA
	CertFile string // this node's certificate, signed by the CA
	KeyFile  string // its key
}

func (c *Config) setDefaults() {
	if len(c.Roles) == 0 {
		c.Roles = AllRoles
	}
	if c.Shards == 0 {
		c.Shards = DefaultShards
	}
	if c.GroupReplicas == 0 {
		c.GroupReplicas = DefaultGroupReplicas
	}
	if c.BlockR == 0 {
		c.BlockR = DefaultBlockR
	}
	if c.BlockW == 0 {
		c.BlockW = DefaultBlockW
	}
	if c.Password == (raftmeta.PasswordParams{}) {
		c.Password = raftmeta.DefaultPasswordParams
	}
	if c.ControlInterval == 0 {
		c.ControlInterval = pick(c.Fast, 200*time.Millisecond, 2*time.Second)
	}
	if c.DeadAfter == 0 {
		c.DeadAfter = pick(c.Fast, 2*time.Second, 30*time.Second)
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
}

func pick[T any](fast bool, f, slow T) T {
	if fast {
		return f
	}
	return slow
}

// HasRole reports whether the node plays role (with defaults applied).
func (c *Config) HasRole(role string) bool {
	if len(c.Roles) == 0 {
		return true
	}
	return slices.Contains(c.Roles, role)
}

// Validate reports every problem with the configuration at once; the error
// wraps ErrInvalidConfig.
func (c Config) Validate() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if c.Name == "" {
		bad("name is required")
	} else if !nameRE.MatchString(c.Name) {
		bad("name %q: use 1 to 63 letters, digits, '.', '_' or '-', starting with a letter or digit", c.Name)
	}
	if c.Dir == "" {
		bad("dir is required")
	}
	for _, r := range c.Roles {
		if !slices.Contains(AllRoles, r) {
			bad("role %q: must be one of meta, block, gateway", r)
		}
	}
	ports := map[string]string{}
	for _, a := range []struct{ flag, addr string }{
		{"raft-addr", c.RaftAddr}, {"grpc-addr", c.GRPCAddr},
		{"gossip-addr", c.GossipAddr}, {"http-addr", c.HTTPAddr},
	} {
		if a.addr == "" {
			bad("%s is required", a.flag)
			continue
		}
		host, port, err := net.SplitHostPort(a.addr)
		if err != nil {
			bad("%s %q: %v", a.flag, a.addr, err)
			continue
		}
		if ip := net.ParseIP(host); ip == nil {
			bad("%s %q: the host must be an IP address", a.flag, a.addr)
		} else if ip.IsUnspecified() {
			bad("%s %q: the node advertises this address to the others, so it must be one they can reach (not %s)", a.flag, a.addr, host)
		}
		p, err := strconv.Atoi(port)
		if err != nil || p < 0 || p > 65535 {
			bad("%s %q: bad port", a.flag, a.addr)
			continue
		}
		if p == 0 {
			continue
		}
		if other, ok := ports[port]; ok {
			bad("%s and %s both use port %s", other, a.flag, port)
		}
		ports[port] = a.flag
	}
	for _, j := range c.Join {
		if _, _, err := net.SplitHostPort(j); err != nil {
			bad("join %q: %v", j, err)
		}
	}
	if c.BootstrapExpect < 0 {
		bad("bootstrap-expect %d: must not be negative", c.BootstrapExpect)
	}
	if c.Shards < 0 || c.Shards > MaxShards {
		bad("shards %d: must be 1 to %d", c.Shards, MaxShards)
	}
	if c.GroupReplicas < 0 || c.GroupReplicas > 7 {
		bad("group replicas %d: must be 1 to 7", c.GroupReplicas)
	}
	r, w := c.BlockR, c.BlockW
	if r == 0 {
		r = DefaultBlockR
	}
	if w == 0 {
		w = DefaultBlockW
	}
	if r < 1 || w < 1 || w > r {
		bad("block replicas R=%d W=%d: need 1 <= W <= R", r, w)
	}
	if c.BootstrapExpect > 0 && r > c.BootstrapExpect {
		bad("block replicas R=%d is larger than bootstrap-expect %d: the cluster could never hold R copies", r, c.BootstrapExpect)
	}
	if n := len(c.GossipKey); n != 0 && n != 16 && n != 24 && n != 32 {
		bad("gossip key: %d bytes, must be 16, 24 or 32", n)
	}
	if c.TLS != nil && (c.TLS.CAFile == "" || c.TLS.CertFile == "" || c.TLS.KeyFile == "") {
		bad("tls: the CA, certificate and key files are all required")
	}
	if c.Gateway.Meta != nil || c.Gateway.Blocks != nil || c.Gateway.Cluster != nil {
		bad("gateway: Meta, Blocks and Cluster are the node's own; leave them nil")
	}
	if err := c.Gateway.ValidateTunables(); err != nil {
		bad("%v", err)
	}
	if c.ControlInterval < 0 || c.DeadAfter < 0 {
		bad("control interval and dead-after must not be negative")
	}
	if len(errs) > 0 {
		return fmt.Errorf("%w: %w", ErrInvalidConfig, errors.Join(errs...))
	}
	return nil
}
