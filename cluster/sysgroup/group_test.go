package sysgroup_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/coffer-dev/coffer/cluster/sysgroup"
	"github.com/coffer-dev/coffer/raftmeta"
	"github.com/hashicorp/raft"
)

// TestInitReplicates initialises the cluster through the leader and reads
// the identity back on every replica.
func TestInitReplicates(t *testing.T) {
	c := newCluster(t, 3, nil)
	for _, r := range c.running() {
		if _, err := r.g.Info(); !errors.Is(err, sysgroup.ErrNotInitialised) {
			t.Fatalf("%s: Info before Init: %v, want ErrNotInitialised", r.id, err)
		}
	}
	in := testInfo("c-1")
	got := mustInit(t, c, "init-1", in)
	if got.ClusterID != "c-1" || got.Shards != 8 || !bytes.Equal(got.SigningKey, in.SigningKey) || got.AdminCreated {
		t.Fatalf("Init returned %+v", got)
	}
	if got.CreatedAt.IsZero() || got.CreatedAt.Location() != time.UTC {
		t.Fatalf("CreatedAt %v: want the proposer's clock, in UTC", got.CreatedAt)
	}
	c.converge()
	for _, r := range c.running() {
		info, err := r.g.Info()
		if err != nil {
			t.Fatalf("%s: Info: %v", r.id, err)
		}
		if !reflect.DeepEqual(info, got) {
			t.Fatalf("%s: Info = %+v, leader returned %+v", r.id, info, got)
		}
	}

	// MarkAdminCreated sets the flag everywhere, and is idempotent.
	for _, rid := range []string{"admin-1", "admin-2"} {
		if err := c.do(func(ctx context.Context, g *sysgroup.Group) error { return g.MarkAdminCreated(ctx, rid) }); err != nil {
			t.Fatalf("MarkAdminCreated %s: %v", rid, err)
		}
	}
	c.converge()
	for _, r := range c.running() {
		info, err := r.g.Info()
		if err != nil || !info.AdminCreated || info.ClusterID != "c-1" {
			t.Fatalf("%s: after MarkAdminCreated: %+v, %v", r.id, info, err)
		}
	}
}

func TestInitIdempotentAndConflicting(t *testing.T) {
	c := newCluster(t, 3, nil)
	if err := c.do(func(ctx context.Context, g *sysgroup.Group) error { return g.MarkAdminCreated(ctx, "early") }); !errors.Is(err, sysgroup.ErrNotInitialised) {
		t.Fatalf("MarkAdminCreated before Init: %v, want ErrNotInitialised", err)
	}
	first := mustInit(t, c, "init-1", testInfo("c-1"))

	// Same cluster ID, other fields differ, new request ID: the stored Info.
	again := testInfo("c-1")
	again.Shards = 99
	again.SigningKey = bytes.Repeat([]byte{7}, 32)
	got := mustInit(t, c, "init-2", again)
	if !reflect.DeepEqual(got, first) {
		t.Fatalf("repeated Init returned %+v, want the stored %+v", got, first)
	}

	// Another cluster ID: ErrExists, and a retry of that request ID keeps
	// answering with its first result.
	for i := 0; i < 2; i++ {
		err := c.do(func(ctx context.Context, g *sysgroup.Group) error {
			_, err := g.Init(ctx, "init-3", testInfo("c-2"))
			return err
		})
		if !errors.Is(err, sysgroup.ErrExists) {
			t.Fatalf("conflicting Init (try %d): %v, want ErrExists", i, err)
		}
	}
	c.converge()
	for _, r := range c.running() {
		info, err := r.g.Info()
		if err != nil || !reflect.DeepEqual(info, first) {
			t.Fatalf("%s: Info = %+v, %v; want %+v", r.id, info, err, first)
		}
	}

	// Invalid identities are refused before they are proposed.
	long := testInfo(string(bytes.Repeat([]byte("x"), 65)))
	for name, in := range map[string]sysgroup.Info{
		"empty id":      {Shards: 1, SigningKey: make([]byte, 32)},
		"long id":       long,
		"no shards":     {ClusterID: "c", SigningKey: make([]byte, 32)},
		"many shards":   {ClusterID: "c", Shards: 1025, SigningKey: make([]byte, 32)},
		"short key":     {ClusterID: "c", Shards: 1, SigningKey: make([]byte, 31)},
		"admin created": {ClusterID: "c", Shards: 1, SigningKey: make([]byte, 32), AdminCreated: true},
	} {
		g := c.group(c.leader())
		before := sysgroup.Executed(g)
		if _, err := g.Init(context.Background(), "bad-"+name[:2], in); !errors.Is(err, sysgroup.ErrInvalidArgument) {
			t.Errorf("Init(%s): %v, want ErrInvalidArgument", name, err)
		}
		if after := sysgroup.Executed(g); after != before {
			t.Errorf("Init(%s) was proposed", name)
		}
	}
}

// TestRequestIDDedup checks a retried request is applied once and answered
// with its first result.
func TestRequestIDDedup(t *testing.T) {
	c := newCluster(t, 3, nil)
	f := c.follower()
	c.converge()
	exec0 := sysgroup.Executed(c.group(f))

	if err := setSetting(c, "a", "k", "v1"); err != nil {
		t.Fatal(err)
	}
	if err := setSetting(c, "b", "k", "v2"); err != nil {
		t.Fatal(err)
	}
	// A retry of "a" (even with another value) must not apply again.
	if err := setSetting(c, "a", "k", "v3"); err != nil {
		t.Fatalf("retry of a: %v", err)
	}
	rec1, err := setNode(c, "n-1", "node-a", sysgroup.NodeActive)
	if err != nil {
		t.Fatal(err)
	}
	rec2, err := setNode(c, "n-1", "node-a", sysgroup.NodeActive)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(rec1, rec2) {
		t.Fatalf("retry returned %+v, first result %+v", rec2, rec1)
	}
	c.converge()
	for _, r := range c.running() {
		s, err := r.g.Settings()
		if err != nil {
			t.Fatal(err)
		}
		if s["k"] != "v2" {
			t.Fatalf("%s: k = %q, want v2 (the retry of a was applied again)", r.id, s["k"])
		}
	}
	// Every replica executes each distinct request once: a, b and n-1.
	if got := sysgroup.Executed(c.group(f)) - exec0; got != 3 {
		t.Fatalf("follower executed %d commands, want 3", got)
	}

	// A request ID reused for another kind of command is refused.
	if _, err := setNode(c, "a", "node-b", sysgroup.NodeActive); !errors.Is(err, sysgroup.ErrInvalidArgument) {
		t.Fatalf("request ID reused for another command: %v, want ErrInvalidArgument", err)
	}
	if _, err := c.group(f).Node("node-b"); !errors.Is(err, sysgroup.ErrNotFound) {
		t.Fatalf("node-b: %v, want ErrNotFound", err)
	}
	// Malformed request IDs never reach Raft.
	for _, rid := range []string{"", "has space", string(bytes.Repeat([]byte("r"), 129))} {
		if err := setSetting(c, rid, "k", "v"); !errors.Is(err, sysgroup.ErrInvalidArgument) {
			t.Errorf("request ID %q: %v, want ErrInvalidArgument", rid, err)
		}
	}
	// An empty value deletes a setting.
	if err := setSetting(c, "del", "k", ""); err != nil {
		t.Fatal(err)
	}
	c.converge()
	if s, err := c.group(f).Settings(); err != nil || len(s) != 0 {
		t.Fatalf("settings after delete: %v, %v", s, err)
	}
}

// TestDedupLimit checks that only the newest request IDs are remembered.
func TestDedupLimit(t *testing.T) {
	const limit = 3
	c := newCluster(t, 3, func(cfg *sysgroup.Config) { sysgroup.SetDedupLimit(cfg, limit) })
	steps := []struct{ rid, key, val string }{
		{"r0", "a", "1"}, {"r1", "a", "2"}, {"r2", "b", "x"}, {"r3", "b", "y"}, {"r4", "b", "z"},
	}
	for _, s := range steps {
		if err := setSetting(c, s.rid, s.key, s.val); err != nil {
			t.Fatal(err)
		}
	}
	// r0 was evicted (r2..r4 are the newest three): its retry applies again.
	if err := setSetting(c, "r0", "a", "1"); err != nil {
		t.Fatal(err)
	}
	// r4 is still remembered: its retry changes nothing.
	if err := setSetting(c, "r4", "a", "9"); err != nil {
		t.Fatal(err)
	}
	c.converge()
	for _, r := range c.running() {
		s, err := r.g.Settings()
		if err != nil {
			t.Fatal(err)
		}
		if s["a"] != "1" || s["b"] != "z" {
			t.Fatalf("%s: settings %v, want a=1 (r0 re-applied, r4 deduplicated), b=z", r.id, s)
		}
		n, err := sysgroup.DedupRecords(r.g)
		if err != nil {
			t.Fatal(err)
		}
		if n != limit {
			t.Fatalf("%s: %d dedup records, want %d", r.id, n, limit)
		}
	}
}

func TestNodeLifecycle(t *testing.T) {
	c := newCluster(t, 3, nil)
	steps := []struct {
		name string
		to   sysgroup.NodeState
		ok   bool
	}{
		{"n1", sysgroup.NodeRemoving, false}, // unknown -> removing
		{"n1", sysgroup.NodeRemoved, false},  // unknown -> removed
		{"n1", "bogus", false},
		{"n1", sysgroup.NodeActive, true},
		{"n1", sysgroup.NodeActive, true}, // no-op
		{"n1", sysgroup.NodeRemoved, false},
		{"n1", sysgroup.NodeRemoving, true},
		{"n1", sysgroup.NodeActive, false},
		{"n1", sysgroup.NodeRemoving, true}, // no-op
		{"n1", sysgroup.NodeRemoved, true},
		{"n1", sysgroup.NodeActive, false},
		{"n1", sysgroup.NodeRemoving, false},
		{"n1", sysgroup.NodeRemoved, true}, // no-op
		{"", sysgroup.NodeActive, false},
		{string(bytes.Repeat([]byte("n"), 64)), sysgroup.NodeActive, false},
		{"n0", sysgroup.NodeActive, true},
		{"n2", sysgroup.NodeActive, true},
	}
	var last *sysgroup.NodeRecord
	for i, s := range steps {
		rec, err := setNode(c, fmt.Sprintf("step-%d", i), s.name, s.to)
		if !s.ok {
			if !errors.Is(err, sysgroup.ErrInvalidArgument) {
				t.Fatalf("step %d: %s -> %q: %v, want ErrInvalidArgument", i, s.name, s.to, err)
			}
			continue
		}
		if err != nil {
			t.Fatalf("step %d: %s -> %q: %v", i, s.name, s.to, err)
		}
		if rec.Name != s.name || rec.State != s.to {
			t.Fatalf("step %d: record %+v", i, rec)
		}
		if s.name == "n1" && last != nil {
			if last.State == s.to && !rec.Since.Equal(last.Since) {
				t.Fatalf("step %d: a no-op moved Since from %v to %v", i, last.Since, rec.Since)
			}
			if last.State != s.to && !rec.Since.After(last.Since) {
				t.Fatalf("step %d: Since %v not after %v", i, rec.Since, last.Since)
			}
		}
		if s.name == "n1" {
			last = rec
		}
	}
	c.converge()
	for _, r := range c.running() {
		nodes, err := r.g.Nodes()
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, n := range nodes {
			names = append(names, n.Name+"="+string(n.State))
		}
		if want := []string{"n0=active", "n1=removed", "n2=active"}; !reflect.DeepEqual(names, want) {
			t.Fatalf("%s: nodes %v, want %v", r.id, names, want)
		}
		n1, err := r.g.Node("n1")
		if err != nil || !reflect.DeepEqual(n1, last) {
			t.Fatalf("%s: Node(n1) = %+v, %v; want %+v", r.id, n1, err, last)
		}
		if _, err := r.g.Node("n9"); !errors.Is(err, sysgroup.ErrNotFound) {
			t.Fatalf("%s: Node(n9): %v, want ErrNotFound", r.id, err)
		}
	}
}

func TestNotLeader(t *testing.T) {
	c := newCluster(t, 3, nil)
	l := c.leader()
	leader := c.rep(l)
	f := c.group(c.follower())
	ctx := context.Background()
	check := func(what string, err error) {
		t.Helper()
		var nl *raftmeta.NotLeaderError
		if !errors.As(err, &nl) || !errors.Is(err, raftmeta.ErrNotLeader) {
			t.Fatalf("%s on a follower: %v, want a *raftmeta.NotLeaderError", what, err)
		}
		if nl.LeaderID != string(leader.id) || nl.Leader != string(leader.addr) {
			t.Fatalf("%s: NotLeaderError names %s at %s, want %s at %s", what, nl.LeaderID, nl.Leader, leader.id, leader.addr)
		}
	}
	// The follower must know the leader before it can name it.
	deadline := time.Now().Add(10 * time.Second)
	for _, id := f.Leader(); id != string(leader.id); _, id = f.Leader() {
		if time.Now().After(deadline) {
			t.Fatal("follower does not learn the leader")
		}
		time.Sleep(10 * time.Millisecond)
	}
	_, err := f.Init(ctx, "i", testInfo("c"))
	check("Init", err)
	check("SetSetting", f.SetSetting(ctx, "s", "k", "v"))
	_, err = f.SetNodeState(ctx, "n", "a", sysgroup.NodeActive)
	check("SetNodeState", err)
	check("MarkAdminCreated", f.MarkAdminCreated(ctx, "m"))
	check("Barrier", f.Barrier(ctx))
	if err := leader.g.Barrier(ctx); err != nil {
		t.Fatalf("Barrier on the leader: %v", err)
	}
	if f.IsLeader() || !leader.g.IsLeader() {
		t.Fatal("IsLeader disagrees with the leader found")
	}
	// Nothing the follower refused was applied anywhere.
	c.converge()
	if s, err := leader.g.Settings(); err != nil || len(s) != 0 {
		t.Fatalf("settings %v, %v: want none", s, err)
	}
	// Reads are served on followers.
	if _, err := f.Nodes(); err != nil {
		t.Fatal(err)
	}
}

// TestRestart restarts a follower, then the whole group, from their disks:
// the state survives and entries already applied are not applied again.
func TestRestart(t *testing.T) {
	c := newCluster(t, 3, nil)
	first := mustInit(t, c, "init", testInfo("c-1"))
	for i := 0; i < 5; i++ {
		if err := setSetting(c, fmt.Sprintf("s%d", i), fmt.Sprintf("k%d", i), "v"); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := setNode(c, "n", "node-a", sysgroup.NodeActive); err != nil {
		t.Fatal(err)
	}
	c.converge()

	f := c.follower()
	before := c.group(f).AppliedIndex()
	c.stop(f)
	if err := c.start(f); err != nil {
		t.Fatal(err)
	}
	g := c.group(f)
	if got := g.AppliedIndex(); got != before {
		t.Fatalf("reopened at applied index %d, want %d", got, before)
	}
	if err := setSetting(c, "after", "k-after", "v"); err != nil {
		t.Fatal(err)
	}
	c.converge()
	if sysgroup.Skipped(g) == 0 {
		t.Fatal("the restarted replica skipped nothing: Raft did not replay, or the state was re-applied")
	}
	if got := sysgroup.Executed(g); got != 1 {
		t.Fatalf("the restarted replica executed %d commands, want 1 (only the new one)", got)
	}
	checkState := func(g *sysgroup.Group) {
		t.Helper()
		info, err := g.Info()
		if err != nil || !reflect.DeepEqual(info, first) {
			t.Fatalf("Info after restart: %+v, %v", info, err)
		}
		s, err := g.Settings()
		if err != nil || len(s) != 6 {
			t.Fatalf("settings after restart: %v, %v", s, err)
		}
		if n, err := g.Node("node-a"); err != nil || n.State != sysgroup.NodeActive {
			t.Fatalf("node-a after restart: %+v, %v", n, err)
		}
	}
	checkState(g)

	// The whole group down and up again.
	hash := c.converge()
	for i := range 3 {
		c.stop(i)
	}
	for i := range 3 {
		if err := c.start(i); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 3 {
		if got := sysgroup.Executed(c.group(i)); got != 0 {
			t.Fatalf("replica %d re-executed %d commands at start", i, got)
		}
		sum, _, err := c.group(i).StateHash()
		if err != nil || sum != hash {
			t.Fatalf("replica %d: state hash changed across the restart (%v)", i, err)
		}
		checkState(c.group(i))
	}
	if err := setSetting(c, "after-2", "k-after-2", "v"); err != nil {
		t.Fatal(err)
	}
	c.converge()
	for i := range 3 {
		if got := sysgroup.Executed(c.group(i)); got != 1 {
			t.Fatalf("replica %d executed %d commands after the full restart, want 1", i, got)
		}
	}

	// A state that is ahead of its Raft log (the log store lost or swapped)
	// is refused, not silently reset.
	r := c.rep(f)
	c.stop(f)
	db, err := raftmeta.OpenPebble(filepath.Join(r.dir, "state"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	st, err := raftmeta.OpenRaftStores(t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	_, tr := raft.NewInmemTransport("lost")
	defer tr.Close()
	_, err = sysgroup.Open(sysgroup.Config{LocalID: r.id, DB: db, Transport: tr,
		LogStore: st.Bolt, StableStore: st.Bolt, SnapshotStore: st.Snapshots})
	if !errors.Is(err, sysgroup.ErrCorruptStore) {
		t.Fatalf("open with an empty Raft log under applied state: %v, want ErrCorruptStore", err)
	}
}

// TestSnapshotToNewReplica adds a replica after the log was compacted, so
// it can only catch up by installing a snapshot.
func TestSnapshotToNewReplica(t *testing.T) {
	c := newCluster(t, 3, func(cfg *sysgroup.Config) { cfg.TrailingLogs = 2 })
	mustInit(t, c, "init", testInfo("c-1"))
	for i := 0; i < 8; i++ {
		if err := setSetting(c, fmt.Sprintf("s%d", i), fmt.Sprintf("k%d", i), fmt.Sprint(i)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := setNode(c, "n", "node-a", sysgroup.NodeActive); err != nil {
		t.Fatal(err)
	}
	l := c.leader()
	if err := c.group(l).Raft().Snapshot().Error(); err != nil {
		t.Fatalf("snapshot: %v", err)
	}
	if err := setSetting(c, "post", "after-snapshot", "yes"); err != nil {
		t.Fatal(err)
	}
	if err := c.group(l).Raft().Snapshot().Error(); err != nil {
		t.Fatalf("snapshot: %v", err)
	}
	if first, _ := c.rep(l).stores.Bolt.FirstIndex(); first <= 1 {
		t.Fatalf("the leader's log still starts at %d: nothing to force a snapshot install", first)
	}

	r := c.newReplica()
	if err := c.start(3); err != nil {
		t.Fatal(err)
	}
	err := c.do(func(ctx context.Context, g *sysgroup.Group) error {
		return g.Raft().AddVoter(r.id, r.addr, 0, 5*time.Second).Error()
	})
	if err != nil {
		t.Fatalf("add voter: %v", err)
	}
	if err := setSetting(c, "post-add", "after-add", "yes"); err != nil {
		t.Fatal(err)
	}
	hash := c.converge()
	snaps, err := r.stores.Snapshots.List()
	if err != nil || len(snaps) == 0 {
		t.Fatalf("the new replica holds no snapshot (%v): it was not caught up by one", err)
	}
	lsum, _, err := c.group(c.leader()).StateHash()
	if err != nil || lsum != hash {
		t.Fatalf("leader hash %x, converged %x, %v", lsum[:8], hash[:8], err)
	}
	s, err := r.g.Settings()
	if err != nil || len(s) != 10 || s["after-snapshot"] != "yes" || s["k7"] != "7" {
		t.Fatalf("new replica's settings: %v, %v", s, err)
	}
	if info, err := r.g.Info(); err != nil || info.ClusterID != "c-1" {
		t.Fatalf("new replica's Info: %+v, %v", info, err)
	}

	// The restored replica restarts from its own state.
	c.stop(3)
	if err := c.start(3); err != nil {
		t.Fatalf("restart the restored replica: %v", err)
	}
	if got := c.converge(); got != hash {
		t.Fatal("state changed across the restart of the restored replica")
	}

	// With its state dropped but its Raft stores kept, the replica restores
	// its latest snapshot at start and replays the log after it.
	c.stop(3)
	db, err := raftmeta.OpenPebble(filepath.Join(r.dir, "state"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := sysgroup.DropState(db, testGroup); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	if err := c.start(3); err != nil {
		t.Fatalf("start after DropState: %v", err)
	}
	if c.group(3).AppliedIndex() == 0 {
		t.Fatal("the snapshot was not restored at start")
	}
	if got := c.converge(); got != hash {
		t.Fatal("state differs after rebuilding from the snapshot and the log")
	}
}

// TestDropState drops one group's state from a shared DB and checks every
// other key survives.
func TestDropState(t *testing.T) {
	c := newCluster(t, 1, nil)
	mustInit(t, c, "init", testInfo("c-1"))
	if err := setSetting(c, "s", "k", "v"); err != nil {
		t.Fatal(err)
	}
	r := c.rep(0)
	others := map[string]string{
		"g\x00\x00\x00\x00\x00\x00\x00\x00a": "raftmeta group 0",
		"S\x00\x00\x00\x00\x00\x00\x00\x01a": "system group 1",
		"R":                                  "before the prefix",
		"T":                                  "after the prefix",
		"S\x00\x00\x00\x00\x00\x00\x00":      "a shorter key",
	}
	for k, v := range others {
		if err := r.db.Set([]byte(k), []byte(v), pebble.Sync); err != nil {
			t.Fatal(err)
		}
	}
	if err := r.g.Close(); err != nil {
		t.Fatal(err)
	}
	if err := r.g.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if _, err := r.g.Info(); !errors.Is(err, sysgroup.ErrClosed) {
		t.Fatalf("Info after Close: %v, want ErrClosed", err)
	}
	if err := sysgroup.DropState(r.db, testGroup); err != nil {
		t.Fatal(err)
	}
	it, err := r.db.NewIter(nil)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for ok := it.First(); ok; ok = it.Next() {
		got[string(it.Key())] = string(it.Value())
	}
	if err := it.Close(); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, others) {
		t.Fatalf("after DropState the DB holds %q, want only %q", got, others)
	}
}

// TestStateHashDiffers makes sure the state hash is not constant: replicas
// at different applied indexes disagree.
func TestStateHashDiffers(t *testing.T) {
	c := newCluster(t, 1, nil)
	h0, i0, err := c.group(0).StateHash()
	if err != nil {
		t.Fatal(err)
	}
	if err := setSetting(c, "s", "k", "v"); err != nil {
		t.Fatal(err)
	}
	h1, i1, err := c.group(0).StateHash()
	if err != nil {
		t.Fatal(err)
	}
	if h0 == h1 || i1 <= i0 {
		t.Fatalf("hash %x at %d, then %x at %d", h0[:8], i0, h1[:8], i1)
	}
	if err := c.group(0).Bootstrap([]raft.Server{{ID: c.rep(0).id, Address: c.rep(0).addr}}); !errors.Is(err, sysgroup.ErrExists) {
		t.Fatalf("second Bootstrap: %v, want ErrExists", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := c.group(0).WaitApplied(ctx, i1+100); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("WaitApplied for a future index: %v", err)
	}
}
