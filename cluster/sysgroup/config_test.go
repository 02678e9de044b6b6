package sysgroup_test

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/coffer-dev/coffer/cluster/sysgroup"
	"github.com/coffer-dev/coffer/raftmeta"
	"github.com/hashicorp/raft"
)

func TestConfigValidate(t *testing.T) {
	db, err := raftmeta.OpenPebble(filepath.Join(t.TempDir(), "state"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	_, tr := raft.NewInmemTransport("a")
	defer tr.Close()
	logs := raft.NewInmemStore()
	valid := func() sysgroup.Config {
		return sysgroup.Config{LocalID: "n1", DB: db, Transport: tr,
			LogStore: logs, StableStore: logs, SnapshotStore: raft.NewInmemSnapshotStore()}
	}
	tests := []struct {
		name string
		mod  func(*sysgroup.Config)
		want []string // substrings of the error; nil: valid
	}{
		{"defaults", func(*sysgroup.Config) {}, nil},
		{"fast timing", func(c *sysgroup.Config) {
			c.HeartbeatTimeout, c.ElectionTimeout, c.LeaderLeaseTimeout = 200*time.Millisecond, 300*time.Millisecond, 100*time.Millisecond
		}, nil},
		{"empty", func(c *sysgroup.Config) { *c = sysgroup.Config{} },
			[]string{"LocalID", "DB", "Transport", "LogStore", "StableStore", "SnapshotStore"}},
		{"no DB", func(c *sysgroup.Config) { c.DB = nil }, []string{"DB is required"}},
		{"no snapshots", func(c *sysgroup.Config) { c.SnapshotStore = nil }, []string{"SnapshotStore"}},
		{"election below heartbeat", func(c *sysgroup.Config) {
			c.HeartbeatTimeout, c.ElectionTimeout = 2*time.Second, time.Second
		}, []string{"ElectionTimeout 1s is below HeartbeatTimeout 2s"}},
		{"lease above default heartbeat", func(c *sysgroup.Config) { c.LeaderLeaseTimeout = 2 * time.Second },
			[]string{"LeaderLeaseTimeout 2s is above HeartbeatTimeout 1s"}},
		{"negative apply timeout", func(c *sysgroup.Config) { c.ApplyTimeout = -time.Second }, []string{"ApplyTimeout"}},
		{"tiny commit timeout", func(c *sysgroup.Config) { c.CommitTimeout = time.Microsecond }, []string{"CommitTimeout"}},
		{"tiny snapshot interval", func(c *sysgroup.Config) { c.SnapshotInterval = time.Millisecond }, []string{"SnapshotInterval"}},
		{"several at once", func(c *sysgroup.Config) {
			c.LocalID = ""
			c.Transport = nil
			c.HeartbeatTimeout = time.Millisecond
		}, []string{"LocalID", "Transport", "HeartbeatTimeout 1ms: must be at least 5ms", "LeaderLeaseTimeout"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := valid()
			tt.mod(&c)
			err := c.Validate()
			if tt.want == nil {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				return
			}
			if !errors.Is(err, sysgroup.ErrInvalidArgument) {
				t.Fatalf("Validate: %v, want ErrInvalidArgument", err)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
			if _, err := sysgroup.Open(c); !errors.Is(err, sysgroup.ErrInvalidArgument) {
				t.Fatalf("Open with an invalid config: %v", err)
			}
		})
	}
}
