package route

import (
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/coffer-dev/coffer/cluster/metarpc"
)

// ErrInvalidConfig: a Config failed validation.
var ErrInvalidConfig = errors.New("invalid route config")

// Defaults of the Config durations left zero.
const (
	DefaultMaxWait    = 15 * time.Second
	DefaultBackoffMin = 50 * time.Millisecond
	DefaultBackoffMax = time.Second
)

// Leaders is where the router learns leaders: the node's gossip (cluster
// wires it to members: each node gossips the groups it leads and its gRPC
// address). Its methods must be safe for concurrent use.
type Leaders interface {
	// Leader returns the gRPC address of the node that gossip says leads
	// group ("" if none known).
	Leader(group uint64) string
	// Addrs returns the gRPC addresses of all live nodes (tried in turn
	// when no leader is known).
	Addrs() []string
}

// Config configures a Router.
type Config struct {
	// Leaders tells leaders and live nodes (required).
	Leaders Leaders
	// Pool holds the connections to the nodes (required; it stays the
	// caller's, who closes it).
	Pool *metarpc.Pool
	// MaxWait bounds the retries of one call (default 15s): a call that
	// found no leader to answer it by then returns its last error. The
	// long-poll of WaitChanges does not count against it.
	MaxWait time.Duration
	// BackoffMin and BackoffMax (defaults 50ms and 1s) bound the pause
	// before a retry when no leader answered; the pause doubles, with
	// jitter, from BackoffMin up to BackoffMax.
	BackoffMin, BackoffMax time.Duration
	// Logger receives a debug line per retry (nil: discard).
	Logger *slog.Logger
}

// withDefaults returns c with zero durations set to their defaults.
func (c Config) withDefaults() Config {
	if c.MaxWait == 0 {
		c.MaxWait = DefaultMaxWait
	}
	if c.BackoffMin == 0 {
		c.BackoffMin = DefaultBackoffMin
	}
	if c.BackoffMax == 0 {
		c.BackoffMax = DefaultBackoffMax
	}
	return c
}

// Validate reports every problem with c (after defaults) at once; the
// error wraps ErrInvalidConfig.
func (c Config) Validate() error {
	c = c.withDefaults()
	var errs []error
	if c.Leaders == nil {
		errs = append(errs, errors.New("Leaders is required"))
	}
	if c.Pool == nil {
		errs = append(errs, errors.New("Pool is required"))
	}
	if c.MaxWait < 0 {
		errs = append(errs, fmt.Errorf("MaxWait %v: must not be negative", c.MaxWait))
	}
	if c.BackoffMin < 0 {
		errs = append(errs, fmt.Errorf("BackoffMin %v: must not be negative", c.BackoffMin))
	}
	if c.BackoffMax < 0 {
		errs = append(errs, fmt.Errorf("BackoffMax %v: must not be negative", c.BackoffMax))
	}
	if c.BackoffMin > 0 && c.BackoffMax > 0 && c.BackoffMin > c.BackoffMax {
		errs = append(errs, fmt.Errorf("BackoffMin %v is more than BackoffMax %v", c.BackoffMin, c.BackoffMax))
	}
	if len(errs) == 0 {
		return nil
	}
	return fmt.Errorf("route: %w: %w", ErrInvalidConfig, errors.Join(errs...))
}
