package raftgroup

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/hashicorp/raft"
)

func TestTimingWithDefaults(t *testing.T) {
	def := Timing{HeartbeatTimeout: 1, ElectionTimeout: 2, LeaderLeaseTimeout: 3, CommitTimeout: 4,
		SnapshotInterval: 5, SnapshotThreshold: 6, TrailingLogs: 7, MaxAppendEntries: 8}
	if got := (Timing{}).WithDefaults(def); got != def {
		t.Errorf("zero timing with defaults = %+v, want %+v", got, def)
	}
	set := Timing{HeartbeatTimeout: 10, ElectionTimeout: 20, LeaderLeaseTimeout: -1, CommitTimeout: 40,
		SnapshotInterval: 50, SnapshotThreshold: 60, TrailingLogs: 70, MaxAppendEntries: 80}
	if got := set.WithDefaults(def); got != set {
		t.Errorf("set timing with defaults = %+v, want it unchanged", got)
	}
	part := Timing{ElectionTimeout: 20, TrailingLogs: 70}
	want := def
	want.ElectionTimeout, want.TrailingLogs = 20, 70
	if got := part.WithDefaults(def); got != want {
		t.Errorf("partial timing with defaults = %+v, want %+v", got, want)
	}
	d := raft.DefaultConfig()
	if got := DefaultTiming(); got.HeartbeatTimeout != d.HeartbeatTimeout || got.SnapshotThreshold != d.SnapshotThreshold ||
		got.TrailingLogs != d.TrailingLogs || got.MaxAppendEntries != d.MaxAppendEntries || got.SnapshotInterval != d.SnapshotInterval {
		t.Errorf("DefaultTiming = %+v, not raft.DefaultConfig's", got)
	}
}

func TestTimingProblems(t *testing.T) {
	s := time.Second
	tests := []struct {
		name string
		t    Timing
		want []string
	}{
		{"zero", Timing{}, nil},
		{"ordered", Timing{HeartbeatTimeout: s, ElectionTimeout: 2 * s, LeaderLeaseTimeout: s / 2}, nil},
		{"equal", Timing{HeartbeatTimeout: s, ElectionTimeout: s, LeaderLeaseTimeout: s}, nil},
		{"election below", Timing{HeartbeatTimeout: 2 * s, ElectionTimeout: s}, []string{"ElectionTimeout 1s is below HeartbeatTimeout 2s"}},
		{"lease above", Timing{HeartbeatTimeout: s, LeaderLeaseTimeout: 2 * s}, []string{"LeaderLeaseTimeout 2s is above HeartbeatTimeout 1s"}},
		{"both", Timing{HeartbeatTimeout: 2 * s, ElectionTimeout: s, LeaderLeaseTimeout: 3 * s}, []string{"ElectionTimeout", "LeaderLeaseTimeout"}},
		{"heartbeat unset", Timing{ElectionTimeout: s, LeaderLeaseTimeout: 9 * s}, nil},
	}
	for _, tt := range tests {
		errs := tt.t.Problems()
		if len(errs) != len(tt.want) {
			t.Errorf("%s: %v, want %d problems", tt.name, errs, len(tt.want))
			continue
		}
		for i, w := range tt.want {
			if !strings.Contains(errs[i].Error(), w) {
				t.Errorf("%s: problem %q does not mention %q", tt.name, errs[i], w)
			}
		}
	}
}

func TestRequired(t *testing.T) {
	db, err := pebble.Open(filepath.Join(t.TempDir(), "db"), &pebble.Options{FS: vfs.NewMem()})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	_, tr := raft.NewInmemTransport("a")
	defer tr.Close()
	st := raft.NewInmemStore()
	snaps := raft.NewInmemSnapshotStore()
	if errs := Required("n1", db, tr, st, st, snaps); len(errs) != 0 {
		t.Errorf("all parts: %v", errs)
	}
	errs := Required("", nil, nil, nil, nil, nil)
	want := []string{"LocalID is required", "DB is required", "Transport is required",
		"LogStore is required", "StableStore is required", "SnapshotStore is required"}
	if len(errs) != len(want) {
		t.Fatalf("no parts: %v, want %d problems", errs, len(want))
	}
	for i, w := range want {
		if errs[i].Error() != w {
			t.Errorf("problem %d = %q, want %q", i, errs[i], w)
		}
	}
	if errs := Required("n1", db, tr, st, nil, snaps); len(errs) != 1 || errs[0].Error() != "StableStore is required" {
		t.Errorf("no stable store: %v", errs)
	}
}

func TestDefault(t *testing.T) {
	d := time.Duration(0)
	Default(&d, time.Second)
	n := 5
	Default(&n, 7)
	neg := -1
	Default(&neg, 7)
	if d != time.Second || n != 5 || neg != -1 {
		t.Errorf("Default: %v %d %d, want 1s 5 -1", d, n, neg)
	}
}

func TestRaftConfig(t *testing.T) {
	tm := Timing{HeartbeatTimeout: 300 * time.Millisecond, ElectionTimeout: 400 * time.Millisecond,
		LeaderLeaseTimeout: 100 * time.Millisecond, CommitTimeout: 5 * time.Millisecond, TrailingLogs: 77}
	rc, err := RaftConfig("n1", 3, tm, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	d := raft.DefaultConfig()
	if rc.LocalID != "n1" || rc.HeartbeatTimeout != tm.HeartbeatTimeout || rc.ElectionTimeout != tm.ElectionTimeout ||
		rc.LeaderLeaseTimeout != tm.LeaderLeaseTimeout || rc.CommitTimeout != tm.CommitTimeout || rc.TrailingLogs != 77 {
		t.Errorf("set fields not copied: %+v", rc)
	}
	if rc.SnapshotThreshold != d.SnapshotThreshold || rc.SnapshotInterval != d.SnapshotInterval || rc.MaxAppendEntries != d.MaxAppendEntries {
		t.Errorf("zero fields do not keep raft's defaults: %+v", rc)
	}
	if !rc.BatchApplyCh || !rc.NoSnapshotRestoreOnStart || rc.Logger == nil {
		t.Errorf("BatchApplyCh %v, NoSnapshotRestoreOnStart %v, logger %v", rc.BatchApplyCh, rc.NoSnapshotRestoreOnStart, rc.Logger)
	}
	if rc, err := RaftConfig("n1", 3, Timing{MaxAppendEntries: 256}, true, nil); err != nil || rc.NoSnapshotRestoreOnStart || rc.MaxAppendEntries != 256 {
		t.Errorf("restore: %v, %+v", err, rc)
	}
	if _, err := RaftConfig("n1", 3, Timing{LeaderLeaseTimeout: 5 * time.Second}, false, nil); err == nil {
		t.Error("a lease above the heartbeat timeout passed raft's validation")
	}
	if _, err := RaftConfig("", 3, Timing{}, false, nil); err == nil {
		t.Error("an empty LocalID passed raft's validation")
	}
}
