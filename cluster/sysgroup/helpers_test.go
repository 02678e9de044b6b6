package sysgroup_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/coffer-dev/coffer/cluster/sysgroup"
	"github.com/coffer-dev/coffer/raftmeta"
	"github.com/hashicorp/raft"
)

const testGroup = 0

// clock is a fake clock that moves one second on every reading, so every
// command gets its own, predictable time.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func newClock() *clock { return &clock{now: time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(time.Second)
	return c.now
}

// replica is one member of a test group, with its own Raft stores and its
// own Pebble DB on disk.
type replica struct {
	id   raft.ServerID
	addr raft.ServerAddress
	dir  string

	stores *raftmeta.RaftStores
	db     *pebble.DB
	trans  *raft.InmemTransport
	g      *sysgroup.Group // nil while stopped
}

// cluster is an in-process system group over raft's in-memory transport.
type cluster struct {
	t         *testing.T
	dir       string
	clock     *clock
	configure func(*sysgroup.Config)

	mu   sync.Mutex
	reps []*replica
}

// newCluster starts n replicas, bootstraps the group on the first and
// waits for a leader. configure, if not nil, adjusts every replica's config.
func newCluster(t *testing.T, n int, configure func(*sysgroup.Config)) *cluster {
	t.Helper()
	c := &cluster{t: t, dir: t.TempDir(), clock: newClock(), configure: configure}
	t.Cleanup(c.close)
	var servers []raft.Server
	for i := 0; i < n; i++ {
		r := c.newReplica()
		servers = append(servers, raft.Server{ID: r.id, Address: r.addr, Suffrage: raft.Voter})
	}
	for i := range n {
		if err := c.start(i); err != nil {
			t.Fatalf("start replica %d: %v", i, err)
		}
	}
	if err := c.group(0).Bootstrap(servers); err != nil {
		t.Fatalf("bootstrap: %v", err)
	}
	c.leader()
	return c
}

func (c *cluster) newReplica() *replica {
	c.mu.Lock()
	defer c.mu.Unlock()
	i := len(c.reps)
	r := &replica{
		id:   raft.ServerID(fmt.Sprintf("n%d", i)),
		addr: raft.ServerAddress(fmt.Sprintf("addr-%d", i)),
		dir:  filepath.Join(c.dir, fmt.Sprintf("n%d", i)),
	}
	c.reps = append(c.reps, r)
	return r
}

func (c *cluster) config(r *replica) sysgroup.Config {
	cfg := sysgroup.Config{
		GroupID: testGroup, LocalID: r.id, DB: r.db, Transport: r.trans,
		LogStore: r.stores.Bolt, StableStore: r.stores.Bolt, SnapshotStore: r.stores.Snapshots,
		HeartbeatTimeout:   300 * time.Millisecond,
		ElectionTimeout:    300 * time.Millisecond,
		LeaderLeaseTimeout: 100 * time.Millisecond,
		CommitTimeout:      5 * time.Millisecond,
		ApplyTimeout:       5 * time.Second,
		Now:                c.clock.Now,
	}
	if c.configure != nil {
		c.configure(&cfg)
	}
	return cfg
}

// start opens replica i's stores from its directory and starts it.
func (c *cluster) start(i int) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	r := c.reps[i]
	if r.g != nil {
		return errors.New("replica is running")
	}
	var err error
	if r.stores, err = raftmeta.OpenRaftStores(filepath.Join(r.dir, "raft"), nil); err != nil {
		return err
	}
	if r.db, err = raftmeta.OpenPebble(filepath.Join(r.dir, "state"), nil); err != nil {
		r.stores.Close()
		return err
	}
	_, r.trans = raft.NewInmemTransportWithTimeout(r.addr, 500*time.Millisecond)
	if r.g, err = sysgroup.Open(c.config(r)); err != nil {
		r.db.Close()
		r.stores.Close()
		r.db, r.stores = nil, nil
		return err
	}
	c.rewire()
	return nil
}

// stop shuts replica i down and closes its stores.
func (c *cluster) stop(i int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	r := c.reps[i]
	if r.g == nil {
		return
	}
	if err := r.g.Close(); err != nil {
		c.t.Logf("close replica %d: %v", i, err)
	}
	r.trans.DisconnectAll()
	r.trans.Close()
	if err := r.db.Close(); err != nil {
		c.t.Errorf("close replica %d db: %v", i, err)
	}
	if err := r.stores.Close(); err != nil {
		c.t.Errorf("close replica %d stores: %v", i, err)
	}
	r.g, r.db, r.stores = nil, nil, nil
	c.rewire()
}

// rewire connects every pair of running replicas.
func (c *cluster) rewire() {
	for _, a := range c.reps {
		if a.g == nil {
			continue
		}
		a.trans.DisconnectAll()
		for _, b := range c.reps {
			if b != a && b.g != nil {
				a.trans.Connect(b.addr, b.trans)
			}
		}
	}
}

func (c *cluster) close() {
	for i := range c.reps {
		c.stop(i)
	}
}

func (c *cluster) rep(i int) *replica {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.reps[i]
}

func (c *cluster) group(i int) *sysgroup.Group { return c.rep(i).g }

func (c *cluster) running() []*replica {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []*replica
	for _, r := range c.reps {
		if r.g != nil {
			out = append(out, r)
		}
	}
	return out
}

// leader waits for a running replica that leads, and returns its index.
func (c *cluster) leader() int {
	c.t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		c.mu.Lock()
		for i, r := range c.reps {
			if r.g != nil && r.g.IsLeader() {
				c.mu.Unlock()
				return i
			}
		}
		c.mu.Unlock()
		time.Sleep(10 * time.Millisecond) // polling, not synchronisation
	}
	c.t.Fatal("no leader within 15s")
	return -1
}

// follower returns the index of a running replica that does not lead.
func (c *cluster) follower() int {
	c.t.Helper()
	l := c.leader()
	for i, r := range c.reps {
		if i != l && r.g != nil {
			return i
		}
	}
	c.t.Fatal("no follower")
	return -1
}

// retryable reports whether the request should be retried, with the same
// request ID, at the (new) leader.
func retryable(err error) bool {
	return errors.Is(err, raftmeta.ErrNotLeader) || errors.Is(err, raftmeta.ErrUnknownOutcome) ||
		errors.Is(err, sysgroup.ErrClosed) || errors.Is(err, context.DeadlineExceeded)
}

// do runs fn on the leader, retrying (fn must reuse its request ID) while
// the outcome is unknown or the leader moved, and returns fn's last error.
func (c *cluster) do(fn func(ctx context.Context, g *sysgroup.Group) error) error {
	c.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		g := c.group(c.leader())
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		err := fn(ctx, g)
		cancel()
		if err == nil || !retryable(err) || time.Now().After(deadline) {
			return err
		}
	}
}

// converge waits until every running replica has applied what the leader
// has and checks their state hashes agree. It returns the hash.
func (c *cluster) converge() [32]byte {
	c.t.Helper()
	// After a barrier the leader has applied everything committed so far.
	var want uint64
	err := c.do(func(ctx context.Context, g *sysgroup.Group) error {
		if err := g.Barrier(ctx); err != nil {
			return err
		}
		want = g.AppliedIndex()
		return nil
	})
	if err != nil {
		c.t.Fatalf("barrier: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	var first [32]byte
	for i, r := range c.running() {
		if err := r.g.WaitApplied(ctx, want); err != nil {
			c.t.Fatalf("replica %s: wait for index %d (at %d): %v", r.id, want, r.g.AppliedIndex(), err)
		}
		sum, applied, err := r.g.StateHash()
		if err != nil {
			c.t.Fatalf("replica %s: state hash: %v", r.id, err)
		}
		if applied != want {
			c.t.Fatalf("replica %s: hash at index %d, want %d (a write arrived while converging?)", r.id, applied, want)
		}
		if i == 0 {
			first = sum
		} else if sum != first {
			c.t.Fatalf("replica %s: state hash %x differs from %s's %x at index %d", r.id, sum[:8], c.running()[0].id, first[:8], want)
		}
	}
	return first
}

func testInfo(id string) sysgroup.Info {
	key := make([]byte, sysgroup.SigningKeyLen)
	for i := range key {
		key[i] = byte(i + len(id))
	}
	return sysgroup.Info{ClusterID: id, Shards: 8, SigningKey: key}
}

func mustInit(t *testing.T, c *cluster, rid string, in sysgroup.Info) *sysgroup.Info {
	t.Helper()
	var out *sysgroup.Info
	err := c.do(func(ctx context.Context, g *sysgroup.Group) error {
		var err error
		out, err = g.Init(ctx, rid, in)
		return err
	})
	if err != nil {
		t.Fatalf("init %s: %v", rid, err)
	}
	return out
}

func setSetting(c *cluster, rid, key, value string) error {
	return c.do(func(ctx context.Context, g *sysgroup.Group) error {
		return g.SetSetting(ctx, rid, key, value)
	})
}

func setNode(c *cluster, rid, name string, st sysgroup.NodeState) (*sysgroup.NodeRecord, error) {
	var rec *sysgroup.NodeRecord
	err := c.do(func(ctx context.Context, g *sysgroup.Group) error {
		var err error
		rec, err = g.SetNodeState(ctx, rid, name, st)
		return err
	})
	return rec, err
}
