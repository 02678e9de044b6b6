package members

import (
	"errors"
	"fmt"
	"log"
	"log/slog"
	"net"
	"strconv"
	"time"

	"github.com/hashicorp/memberlist"
)

// Config configures a node's membership.
type Config struct {
	// Name is the node's unique, stable name (required). It is the
	// replica.NodeID of a block node.
	Name string
	// BindAddr is the gossip address, HOST:PORT with HOST an IP (required).
	// Port 0 picks a free port; Members.Addr reports it.
	BindAddr string
	// Meta is what the node publishes about itself.
	Meta Meta
	// Join lists gossip addresses of existing members to join at Start.
	Join []string
	// Logger receives the membership's logs, memberlist's included (nil:
	// discard).
	Logger *slog.Logger
	// Fast shortens memberlist's timings for tests on one machine (probe
	// every 100ms); the default is memberlist's LAN configuration.
	Fast bool
	// SecretKey, if set, encrypts and authenticates gossip (AES, 16, 24
	// or 32 bytes; the same on every node).
	SecretKey []byte
}

// Validate reports every problem with the configuration at once; the error
// wraps ErrInvalidConfig.
func (c Config) Validate() error {
	var errs []error
	if c.Name == "" {
		errs = append(errs, errors.New("Name is required"))
	}
	if c.BindAddr == "" {
		errs = append(errs, errors.New("BindAddr is required"))
	} else if _, _, err := splitBindAddr(c.BindAddr); err != nil {
		errs = append(errs, err)
	}
	for i, r := range c.Meta.Roles {
		if r == "" {
			errs = append(errs, fmt.Errorf("Meta.Roles[%d] is empty", i))
		}
	}
	if b, err := encodeMeta(c.Meta); err != nil {
		errs = append(errs, err)
	} else if len(b) > MaxMetaSize {
		errs = append(errs, fmt.Errorf("Meta encodes to %d bytes, more than the limit of %d", len(b), MaxMetaSize))
	}
	if n := len(c.SecretKey); n != 0 && n != 16 && n != 24 && n != 32 {
		errs = append(errs, fmt.Errorf("SecretKey is %d bytes, must be 16, 24 or 32", n))
	}
	for i, a := range c.Join {
		if a == "" {
			errs = append(errs, fmt.Errorf("Join[%d] is empty", i))
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("members: %w: %w", ErrInvalidConfig, errors.Join(errs...))
	}
	return nil
}

// splitBindAddr parses HOST:PORT where HOST is an IP address.
func splitBindAddr(addr string) (string, int, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, fmt.Errorf("BindAddr %q: %v", addr, err)
	}
	if net.ParseIP(host) == nil {
		return "", 0, fmt.Errorf("BindAddr %q: host must be an IP address", addr)
	}
	p, err := strconv.Atoi(port)
	if err != nil || p < 0 || p > 65535 {
		return "", 0, fmt.Errorf("BindAddr %q: bad port", addr)
	}
	return host, p, nil
}

// memberlistConfig builds memberlist's configuration; c must be valid.
func (c Config) memberlistConfig(log *slog.Logger, d *delegate) *memberlist.Config {
	var mc *memberlist.Config
	if c.Fast {
		mc = memberlist.DefaultLocalConfig()
		mc.ProbeInterval = 100 * time.Millisecond
		mc.ProbeTimeout = 50 * time.Millisecond
		mc.SuspicionMult = 2
		mc.GossipInterval = 20 * time.Millisecond
		mc.PushPullInterval = time.Second
		mc.GossipToTheDeadTime = time.Second
	} else {
		mc = memberlist.DefaultLANConfig()
	}
	host, port, _ := splitBindAddr(c.BindAddr)
	mc.Name = c.Name
	mc.BindAddr = host
	mc.BindPort = port
	mc.AdvertisePort = port
	mc.SecretKey = c.SecretKey
	mc.Delegate = d
	mc.Events = d
	mc.Logger = newStdLogger(log)
	return mc
}

func newStdLogger(l *slog.Logger) *log.Logger { return log.New(logWriter{l}, "", 0) }
