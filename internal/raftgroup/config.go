package raftgroup

import (
	"fmt"
	"log/slog"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/coffer-dev/coffer/raftmeta/hclogslog"
	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
)

// Timing is a group's Raft timing and log retention. A zero field means
// its default.
type Timing struct {
	HeartbeatTimeout   time.Duration
	ElectionTimeout    time.Duration
	LeaderLeaseTimeout time.Duration
	CommitTimeout      time.Duration
	// SnapshotInterval is how often Raft checks whether to take a snapshot;
	// SnapshotThreshold how many new entries make it take one.
	SnapshotInterval  time.Duration
	SnapshotThreshold uint64
	// TrailingLogs is how many entries Raft keeps after a snapshot.
	TrailingLogs uint64
	// MaxAppendEntries bounds entries per append and per fsync batch.
	MaxAppendEntries int
}

// DefaultTiming returns raft.DefaultConfig's timing.
func DefaultTiming() Timing {
	d := raft.DefaultConfig()
	return Timing{
		HeartbeatTimeout:   d.HeartbeatTimeout,
		ElectionTimeout:    d.ElectionTimeout,
		LeaderLeaseTimeout: d.LeaderLeaseTimeout,
		CommitTimeout:      d.CommitTimeout,
		SnapshotInterval:   d.SnapshotInterval,
		SnapshotThreshold:  d.SnapshotThreshold,
		TrailingLogs:       d.TrailingLogs,
		MaxAppendEntries:   d.MaxAppendEntries,
	}
}

// WithDefaults returns t with every zero field set to def's.
func (t Timing) WithDefaults(def Timing) Timing {
	Default(&t.HeartbeatTimeout, def.HeartbeatTimeout)
	Default(&t.ElectionTimeout, def.ElectionTimeout)
	Default(&t.LeaderLeaseTimeout, def.LeaderLeaseTimeout)
	Default(&t.CommitTimeout, def.CommitTimeout)
	Default(&t.SnapshotInterval, def.SnapshotInterval)
	Default(&t.SnapshotThreshold, def.SnapshotThreshold)
	Default(&t.TrailingLogs, def.TrailingLogs)
	Default(&t.MaxAppendEntries, def.MaxAppendEntries)
	return t
}

// Problems returns one error for each pair of timeouts in the wrong order:
// an election timeout below the heartbeat timeout, or a leader lease above
// it. A zero (unset) field is not compared.
func (t Timing) Problems() []error {
	var errs []error
	if t.ElectionTimeout != 0 && t.HeartbeatTimeout != 0 && t.ElectionTimeout < t.HeartbeatTimeout {
		errs = append(errs, fmt.Errorf("ElectionTimeout %v is below HeartbeatTimeout %v", t.ElectionTimeout, t.HeartbeatTimeout))
	}
	if t.LeaderLeaseTimeout != 0 && t.HeartbeatTimeout != 0 && t.LeaderLeaseTimeout > t.HeartbeatTimeout {
		errs = append(errs, fmt.Errorf("LeaderLeaseTimeout %v is above HeartbeatTimeout %v", t.LeaderLeaseTimeout, t.HeartbeatTimeout))
	}
	return errs
}

// Required returns one error for each part of a replica that its caller
// must supply but did not.
func Required(id raft.ServerID, db *pebble.DB, tr raft.Transport, logs raft.LogStore, stable raft.StableStore, snaps raft.SnapshotStore) []error {
	var errs []error
	for _, p := range []struct {
		name    string
		missing bool
	}{
		{"LocalID", id == ""},
		{"DB", db == nil},
		{"Transport", tr == nil},
		{"LogStore", logs == nil},
		{"StableStore", stable == nil},
		{"SnapshotStore", snaps == nil},
	} {
		if p.missing {
			errs = append(errs, fmt.Errorf("%s is required", p.name))
		}
	}
	return errs
}

// Default sets *v to def if *v is the zero value.
func Default[T comparable](v *T, def T) {
	var zero T
	if *v == zero {
		*v = def
	}
}

// RaftConfig returns the Raft configuration of replica id of group, with
// timing t (zero fields keep raft.DefaultConfig's values). Entries reach
// the state machine in batches. The state is durable on its own, so Raft
// restores the newest snapshot at start only if restore is set (see
// CheckStores). Raft logs to log (nil: discard), tagged with the group.
// The error is raft.ValidateConfig's.
func RaftConfig(id raft.ServerID, group uint64, t Timing, restore bool, log *slog.Logger) (*raft.Config, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	t = t.WithDefaults(DefaultTiming())
	rc := raft.DefaultConfig()
	rc.LocalID = id
	rc.HeartbeatTimeout = t.HeartbeatTimeout
	rc.ElectionTimeout = t.ElectionTimeout
	rc.LeaderLeaseTimeout = t.LeaderLeaseTimeout
	rc.CommitTimeout = t.CommitTimeout
	rc.SnapshotInterval = t.SnapshotInterval
	rc.SnapshotThreshold = t.SnapshotThreshold
	rc.TrailingLogs = t.TrailingLogs
	rc.MaxAppendEntries = t.MaxAppendEntries
	rc.BatchApplyCh = true
	rc.NoSnapshotRestoreOnStart = !restore
	rc.Logger = hclogslog.New(log.With("component", "raft", "group", group), hclog.Info)
	if err := raft.ValidateConfig(rc); err != nil {
		return nil, err
	}
	return rc, nil
}
