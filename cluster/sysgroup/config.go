package sysgroup

import (
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/coffer-dev/coffer/internal/raftgroup"
	"github.com/hashicorp/raft"
)

// Config configures the system group's replica on one node. The caller owns
// and closes the Pebble DB, the transport and the three Raft stores. The
// zero value of every optional field means its default.
type Config struct {
	// GroupID identifies the group (the cluster uses 0); it prefixes every
	// key of the group's state.
	GroupID uint64
	// LocalID is this replica's Raft server ID.
	LocalID raft.ServerID

	DB            *pebble.DB
	Transport     raft.Transport
	LogStore      raft.LogStore
	StableStore   raft.StableStore
	SnapshotStore raft.SnapshotStore

	// Logger receives the group's and Raft's logs (nil: discard).
	Logger *slog.Logger

	// Raft timing (defaults are raft.DefaultConfig's).
	HeartbeatTimeout   time.Duration
	ElectionTimeout    time.Duration
	LeaderLeaseTimeout time.Duration
	CommitTimeout      time.Duration
	// SnapshotInterval and SnapshotThreshold: how often Raft checks, and how
	// many new entries make it take a snapshot (defaults 2m and 1024).
	SnapshotInterval  time.Duration
	SnapshotThreshold uint64
	// TrailingLogs is how many entries Raft keeps after a snapshot
	// (default 1024).
	TrailingLogs uint64

	// ApplyTimeout bounds how long a command or barrier waits to be
	// enqueued and committed (default 10s).
	ApplyTimeout time.Duration

	// Now is the clock stamped on proposed commands (default time.Now).
	Now func() time.Time

	// dedupLimit overrides DedupLimit (tests only; it shapes replicated
	// state, so every replica must agree).
	dedupLimit int
}

func (c *Config) setDefaults() {
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	raftgroup.Default(&c.ApplyTimeout, 10*time.Second)
	if c.Now == nil {
		c.Now = time.Now
	}
	raftgroup.Default(&c.dedupLimit, DedupLimit)
}

// timing returns c's Raft timing with the defaults filled in.
func (c Config) timing() raftgroup.Timing {
	t := raftgroup.Timing{
		HeartbeatTimeout:   c.HeartbeatTimeout,
		ElectionTimeout:    c.ElectionTimeout,
		LeaderLeaseTimeout: c.LeaderLeaseTimeout,
		CommitTimeout:      c.CommitTimeout,
		SnapshotInterval:   c.SnapshotInterval,
		SnapshotThreshold:  c.SnapshotThreshold,
		TrailingLogs:       c.TrailingLogs,
	}
	// raft.DefaultConfig's, but for a small state: snapshots and the log
	// kept after them stay short.
	def := raftgroup.DefaultTiming()
	def.SnapshotInterval = 2 * time.Minute
	def.SnapshotThreshold = 1024
	def.TrailingLogs = 1024
	return t.WithDefaults(def)
}

// Validate reports every problem with the configuration at once, wrapping
// ErrInvalidArgument. Timings are checked with the defaults filled in, so a
// value that clashes with another field's default is reported too.
func (c Config) Validate() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	errs = append(errs, raftgroup.Required(c.LocalID, c.DB, c.Transport, c.LogStore, c.StableStore, c.SnapshotStore)...)
	if c.dedupLimit < 0 {
		bad("dedup limit %d: must not be negative", c.dedupLimit)
	}
	c.setDefaults()
	t := c.timing()
	for _, d := range []struct {
		name string
		v    time.Duration
		min  time.Duration
	}{
		{"HeartbeatTimeout", t.HeartbeatTimeout, 5 * time.Millisecond},
		{"ElectionTimeout", t.ElectionTimeout, 5 * time.Millisecond},
		{"LeaderLeaseTimeout", t.LeaderLeaseTimeout, 5 * time.Millisecond},
		{"CommitTimeout", t.CommitTimeout, time.Millisecond},
		{"SnapshotInterval", t.SnapshotInterval, 5 * time.Millisecond},
		{"ApplyTimeout", c.ApplyTimeout, time.Millisecond},
	} {
		if d.v < d.min {
			bad("%s %v: must be at least %v", d.name, d.v, d.min)
		}
	}
	// Every timing is set now, so every pair is compared.
	errs = append(errs, t.Problems()...)
	if len(errs) > 0 {
		return fmt.Errorf("%w: sysgroup config: %w", ErrInvalidArgument, errors.Join(errs...))
	}
	return nil
}
