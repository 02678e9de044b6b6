package sysgroup

import (
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/cockroachdb/pebble/v2"
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
	d := raft.DefaultConfig()
	setDur(&c.HeartbeatTimeout, d.HeartbeatTimeout)
	setDur(&c.ElectionTimeout, d.ElectionTimeout)
	setDur(&c.LeaderLeaseTimeout, d.LeaderLeaseTimeout)
	setDur(&c.CommitTimeout, d.CommitTimeout)
	setDur(&c.SnapshotInterval, 2*time.Minute)
	setDur(&c.ApplyTimeout, 10*time.Second)
	if c.SnapshotThreshold == 0 {
		c.SnapshotThreshold = 1024
	}
	if c.TrailingLogs == 0 {
		c.TrailingLogs = 1024
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.dedupLimit == 0 {
		c.dedupLimit = DedupLimit
	}
}

func setDur(d *time.Duration, def time.Duration) {
	if *d == 0 {
		*d = def
	}
}

// Validate reports every problem with the configuration at once, wrapping
// ErrInvalidArgument. Timings are checked with the defaults filled in, so a
// value that clashes with another field's default is reported too.
func (c Config) Validate() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if c.LocalID == "" {
		bad("LocalID is required")
	}
	if c.DB == nil {
		bad("DB is required")
	}
	if c.Transport == nil {
		bad("Transport is required")
	}
	if c.LogStore == nil {
		bad("LogStore is required")
	}
	if c.StableStore == nil {
		bad("StableStore is required")
	}
	if c.SnapshotStore == nil {
		bad("SnapshotStore is required")
	}
	if c.dedupLimit < 0 {
		bad("dedup limit %d: must not be negative", c.dedupLimit)
	}
	c.setDefaults()
	for _, d := range []struct {
		name string
		v    time.Duration
		min  time.Duration
	}{
		{"HeartbeatTimeout", c.HeartbeatTimeout, 5 * time.Millisecond},
		{"ElectionTimeout", c.ElectionTimeout, 5 * time.Millisecond},
		{"LeaderLeaseTimeout", c.LeaderLeaseTimeout, 5 * time.Millisecond},
		{"CommitTimeout", c.CommitTimeout, time.Millisecond},
		{"SnapshotInterval", c.SnapshotInterval, 5 * time.Millisecond},
		{"ApplyTimeout", c.ApplyTimeout, time.Millisecond},
	} {
		if d.v < d.min {
			bad("%s %v: must be at least %v", d.name, d.v, d.min)
		}
	}
	if c.ElectionTimeout < c.HeartbeatTimeout {
		bad("ElectionTimeout %v is below HeartbeatTimeout %v", c.ElectionTimeout, c.HeartbeatTimeout)
	}
	if c.LeaderLeaseTimeout > c.HeartbeatTimeout {
		bad("LeaderLeaseTimeout %v is above HeartbeatTimeout %v", c.LeaderLeaseTimeout, c.HeartbeatTimeout)
	}
	if len(errs) > 0 {
		return fmt.Errorf("%w: sysgroup config: %w", ErrInvalidArgument, errors.Join(errs...))
	}
	return nil
}
