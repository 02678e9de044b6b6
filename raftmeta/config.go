package raftmeta

import (
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/coffer-dev/coffer/internal/raftgroup"
	"github.com/hashicorp/raft"
)

// Config configures one shard (one Raft group) on one node. The caller owns
// and closes the Pebble DB, the transport and the stores: several groups
// can share one DB (each under its own key prefix) and one transport mux.
type Config struct {
	// GroupID identifies the group; it prefixes every key of its state.
	GroupID uint64
	// LocalID is this replica's Raft server ID.
	LocalID raft.ServerID

	DB            *pebble.DB
	Transport     raft.Transport
	LogStore      raft.LogStore
	StableStore   raft.StableStore
	SnapshotStore raft.SnapshotStore

	// Logger receives the shard's and Raft's logs (default: slog.Default()).
	Logger *slog.Logger

	// Raft timing (defaults are raft.DefaultConfig's).
	HeartbeatTimeout   time.Duration
	ElectionTimeout    time.Duration
	LeaderLeaseTimeout time.Duration
	CommitTimeout      time.Duration
	// SnapshotInterval and SnapshotThreshold: how often Raft checks, and how
	// many new entries make it take a snapshot (defaults 2m and 8192).
	SnapshotInterval  time.Duration
	SnapshotThreshold uint64
	// TrailingLogs kept after a snapshot (default 10240).
	TrailingLogs uint64
	// MaxAppendEntries bounds entries per append and per fsync batch
	// (default 256).
	MaxAppendEntries int

	// ApplyTimeout bounds how long a command waits to be enqueued and
	// committed (default 10s).
	ApplyTimeout time.Duration

	// Retention: keep every revision for KeepFor (default 30 days) and at
	// least the newest KeepLast (default 10). PruneInterval is how often the
	// leader applies it (default 1h; negative disables), PruneBatch how many
	// nodes one prune entry visits (default 1000).
	KeepFor       time.Duration
	KeepLast      int
	PruneInterval time.Duration
	PruneBatch    int

	// Password hashing parameters (default DefaultPasswordParams).
	Password PasswordParams

	// Now is the clock stamped on proposed commands (default time.Now).
	Now func() time.Time
}

func (c *Config) setDefaults() {
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	raftgroup.Default(&c.ApplyTimeout, 10*time.Second)
	raftgroup.Default(&c.KeepFor, 30*24*time.Hour)
	raftgroup.Default(&c.PruneInterval, time.Hour)
	raftgroup.Default(&c.KeepLast, 10)
	raftgroup.Default(&c.PruneBatch, 1000)
	raftgroup.Default(&c.Password, DefaultPasswordParams)
	if c.Now == nil {
		c.Now = time.Now
	}
}

// timing returns c's Raft timing as set (a zero field means its default,
// see defaultTiming).
func (c Config) timing() raftgroup.Timing {
	return raftgroup.Timing{
		HeartbeatTimeout:   c.HeartbeatTimeout,
		ElectionTimeout:    c.ElectionTimeout,
		LeaderLeaseTimeout: c.LeaderLeaseTimeout,
		CommitTimeout:      c.CommitTimeout,
		SnapshotInterval:   c.SnapshotInterval,
		SnapshotThreshold:  c.SnapshotThreshold,
		TrailingLogs:       c.TrailingLogs,
		MaxAppendEntries:   c.MaxAppendEntries,
	}
}

// defaultTiming is raft.DefaultConfig's timing, but for MaxAppendEntries.
func defaultTiming() raftgroup.Timing {
	t := raftgroup.DefaultTiming()
	t.MaxAppendEntries = 256
	return t
}

// Validate reports every problem with the configuration at once.
func (c Config) Validate() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	errs = append(errs, raftgroup.Required(c.LocalID, c.DB, c.Transport, c.LogStore, c.StableStore, c.SnapshotStore)...)
	if c.MaxAppendEntries < 0 || c.MaxAppendEntries > 1024 {
		bad("MaxAppendEntries %d: must be 1 to 1024", c.MaxAppendEntries)
	}
	if c.KeepFor < 0 {
		bad("KeepFor %v: must not be negative", c.KeepFor)
	}
	if c.KeepLast < 0 {
		bad("KeepLast %d: must not be negative", c.KeepLast)
	}
	if c.PruneBatch < 0 {
		bad("PruneBatch %d: must not be negative", c.PruneBatch)
	}
	if c.ApplyTimeout < 0 {
		bad("ApplyTimeout %v: must not be negative", c.ApplyTimeout)
	}
	if c.Password != (PasswordParams{}) {
		if err := c.Password.validate(); err != nil {
			bad("Password: %v", err)
		}
	}
	errs = append(errs, c.timing().Problems()...)
	if len(errs) > 0 {
		return fmt.Errorf("%w: %w", ErrInvalidArgument, errors.Join(errs...))
	}
	return nil
}
