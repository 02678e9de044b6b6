// Package metatest runs an in-process metadata group of several replicas,
// with real on-disk stores, over raft's in-memory transport, with controls
// to partition, heal, stop and restart replicas: for tests of raftmeta and
// of the packages built on it.
package metatest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/coffer-dev/coffer/raftmeta"
	"github.com/hashicorp/raft"
)

// Options configure a test cluster.
type Options struct {
	// Replicas in the group (default 3).
	Replicas int
	// GroupID of the group (default 1).
	GroupID uint64
	// Dir holds each replica's stores (default t.TempDir()).
	Dir string
	// Logger for every replica (default: discard).
	Logger *slog.Logger
	// Configure, if set, adjusts each replica's config before it opens.
	Configure func(*raftmeta.Config)
}

// Replica is one member of the group.
type Replica struct {
	ID    raft.ServerID
	Addr  raft.ServerAddress
	Dir   string
	Shard *raftmeta.Shard // nil while stopped

	trans  *raft.InmemTransport
	stores *raftmeta.RaftStores
	db     *pebble.DB
}

// Stores returns the replica's Raft stores (nil while stopped).
func (r *Replica) Stores() *raftmeta.RaftStores { return r.stores }

// Cluster is a running test group.
type Cluster struct {
	t        testing.TB
	o        Options
	mu       sync.Mutex
	replicas []*Replica
	cut      map[[2]int]bool // cut[i,j]: i cannot send to j
}

// FastTiming is the Raft timing test clusters use: quick elections, but
// slack enough for fsyncs and -race on two cores.
func FastTiming(c *raftmeta.Config) {
	c.HeartbeatTimeout = 400 * time.Millisecond
	c.ElectionTimeout = 400 * time.Millisecond
	c.LeaderLeaseTimeout = 200 * time.Millisecond
	c.CommitTimeout = 5 * time.Millisecond
	c.ApplyTimeout = 5 * time.Second
	c.Password = raftmeta.PasswordParams{Time: 1, MemoryKiB: 64, Threads: 1}
	c.PruneInterval = -1
}

// New starts a group, bootstraps it and waits for a leader. It is closed
// with t.Cleanup.
func New(t testing.TB, o Options) *Cluster {
	t.Helper()
	if o.Replicas == 0 {
		o.Replicas = 3
	}
	if o.GroupID == 0 {
		o.GroupID = 1
	}
	if o.Dir == "" {
		o.Dir = t.TempDir()
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	c := &Cluster{t: t, o: o, cut: make(map[[2]int]bool)}
	var servers []raft.Server
	for i := 0; i < o.Replicas; i++ {
		r := &Replica{
			ID:   raft.ServerID(fmt.Sprintf("r%d", i)),
			Addr: raft.ServerAddress(fmt.Sprintf("replica-%d", i)),
			Dir:  filepath.Join(o.Dir, fmt.Sprintf("r%d", i)),
		}
		c.replicas = append(c.replicas, r)
		servers = append(servers, raft.Server{ID: r.ID, Address: r.Addr, Suffrage: raft.Voter})
	}
	t.Cleanup(c.Close)
	for i := range c.replicas {
		if err := c.Start(i); err != nil {
			t.Fatalf("start replica %d: %v", i, err)
		}
	}
	if err := c.replicas[0].Shard.Bootstrap(servers); err != nil {
		t.Fatalf("bootstrap: %v", err)
	}
	if _, err := c.WaitLeader(30 * time.Second); err != nil {
		t.Fatal(err)
	}
	return c
}

// Replica returns replica i. Its Shard field changes when the replica is
// stopped or started: tests that stop replicas while other goroutines run
// use Shard(i) instead.
func (c *Cluster) Replica(i int) *Replica {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.replicas[i]
}

// Shard returns replica i's running shard, or nil while it is stopped.
func (c *Cluster) Shard(i int) *raftmeta.Shard {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.replicas[i].Shard
}

// Len is the number of replicas.
func (c *Cluster) Len() int { return len(c.replicas) }

// Config returns the config replica i is (re)started with.
func (c *Cluster) config(r *Replica) raftmeta.Config {
	cfg := raftmeta.Config{
		GroupID: c.o.GroupID, LocalID: r.ID, DB: r.db, Transport: r.trans,
		LogStore: r.stores.Bolt, StableStore: r.stores.Bolt, SnapshotStore: r.stores.Snapshots,
		Logger: c.o.Logger.With("replica", string(r.ID)),
	}
	FastTiming(&cfg)
	if c.o.Configure != nil {
		c.o.Configure(&cfg)
	}
	return cfg
}

// Start opens replica i's stores and starts it (after New, only a stopped
// replica can be started: that is a restart from its disk state).
func (c *Cluster) Start(i int) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	r := c.replicas[i]
	if r.Shard != nil {
		return errors.New("replica is running")
	}
	var err error
	if r.stores, err = raftmeta.OpenRaftStores(filepath.Join(r.Dir, "raft"), c.o.Logger); err != nil {
		return err
	}
	if r.db, err = raftmeta.OpenPebble(filepath.Join(r.Dir, "state"), c.o.Logger); err != nil {
		r.stores.Close()
		return err
	}
	_, r.trans = raft.NewInmemTransportWithTimeout(r.Addr, 500*time.Millisecond)
	if r.Shard, err = raftmeta.Open(c.config(r)); err != nil {
		r.db.Close()
		r.stores.Close()
		return err
	}
	c.rewire()
	return nil
}

// Stop shuts replica i down and closes its stores, as a crash would leave
// them (nothing is flushed beyond what each write already synced).
func (c *Cluster) Stop(i int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.stopLocked(i)
}

func (c *Cluster) stopLocked(i int) {
	r := c.replicas[i]
	if r.Shard == nil {
		return
	}
	if err := r.Shard.Close(); err != nil {
		c.t.Logf("stop replica %d: %v", i, err)
	}
	r.trans.DisconnectAll()
	r.trans.Close()
	r.db.Close()
	r.stores.Close()
	r.Shard, r.db, r.stores = nil, nil, nil
	c.rewire()
}

// rewire connects every running pair that is not cut.
func (c *Cluster) rewire() {
	for i, a := range c.replicas {
		if a.Shard == nil {
			continue
		}
		for j, b := range c.replicas {
			if i == j {
				continue
			}
			if b.Shard == nil || c.cut[[2]int{i, j}] {
				a.trans.Disconnect(b.Addr)
			} else {
				a.trans.Connect(b.Addr, b.trans)
			}
		}
	}
}

// Isolate cuts replica i off from every other replica, both ways.
func (c *Cluster) Isolate(i int) {
	var rest []int
	for j := range c.replicas {
		if j != i {
			rest = append(rest, j)
		}
	}
	c.Partition([]int{i}, rest)
}

// Partition splits the replicas into sides that cannot reach each other.
func (c *Cluster) Partition(sides ...[]int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	side := make(map[int]int)
	for s, members := range sides {
		for _, m := range members {
			side[m] = s
		}
	}
	for i := range c.replicas {
		for j := range c.replicas {
			si, iok := side[i]
			sj, jok := side[j]
			if i != j && iok && jok && si != sj {
				c.cut[[2]int{i, j}] = true
			}
		}
	}
	c.rewire()
}

// Heal removes every partition.
func (c *Cluster) Heal() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.cut = make(map[[2]int]bool)
	c.rewire()
}

// Leader returns the index of the running replica that is leader, or -1.
func (c *Cluster) Leader() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	for i, r := range c.replicas {
		if r.Shard != nil && r.Shard.IsLeader() {
			return i
		}
	}
	return -1
}

// WaitLeader waits until exactly one running replica is leader and can
// serve a linearizable read, and returns its index.
func (c *Cluster) WaitLeader(timeout time.Duration) (int, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	for {
		if i := c.Leader(); i >= 0 {
			if s := c.Shard(i); s != nil {
				rctx, rcancel := context.WithTimeout(ctx, 2*time.Second)
				_, err := s.User(rctx, "nobody", raftmeta.ReadOptions{})
				rcancel()
				if err == nil || errors.Is(err, raftmeta.ErrNotFound) {
					return i, nil
				}
			}
		}
		select {
		case <-ctx.Done():
			return -1, fmt.Errorf("no leader within %v", timeout)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// LeaderShard returns the running leader's shard, waiting for one.
func (c *Cluster) LeaderShard(timeout time.Duration) (*raftmeta.Shard, error) {
	i, err := c.WaitLeader(timeout)
	if err != nil {
		return nil, err
	}
	s := c.Shard(i)
	if s == nil {
		return nil, raftmeta.ErrClosed
	}
	return s, nil
}

// WaitConverged waits until every running replica has applied exactly what
// the leader has, then compares their state hashes. It returns the common
// hash, or an error naming the difference. Call it when no commits are in
// flight.
//
// Raft's own AppliedIndex moves when entries are handed to the state
// machine, not when it has applied them, so it cannot tell that a replica
// is done: a Raft barrier on the leader does (it completes once the
// leader's state machine has applied everything before it), and the other
// replicas are done when their state machine's applied index equals the
// leader's.
func (c *Cluster) WaitConverged(ctx context.Context) (raftmeta.Sum, error) {
	for {
		sum, done, err := c.tryConverged(ctx)
		if done || err != nil {
			return sum, err
		}
		select {
		case <-ctx.Done():
			return raftmeta.Sum{}, fmt.Errorf("replicas did not converge: %w", ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

func (c *Cluster) tryConverged(ctx context.Context) (raftmeta.Sum, bool, error) {
	l := c.Leader()
	if l < 0 {
		return raftmeta.Sum{}, false, nil
	}
	leader := c.Shard(l)
	if leader == nil || leader.Raft().Barrier(5*time.Second).Error() != nil {
		return raftmeta.Sum{}, false, nil
	}
	target := leader.FSM().AppliedIndex()
	c.mu.Lock()
	var shards []*raftmeta.Shard
	for _, r := range c.replicas {
		if r.Shard != nil {
			shards = append(shards, r.Shard)
		}
	}
	c.mu.Unlock()
	for _, s := range shards {
		wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		err := s.WaitApplied(wctx, target)
		cancel()
		if err != nil {
			return raftmeta.Sum{}, false, nil
		}
	}
	hashes := make([]raftmeta.Sum, len(shards))
	for k, s := range shards {
		h, idx, err := s.StateHash()
		if err != nil {
			return raftmeta.Sum{}, false, nil // stopped meanwhile: try again
		}
		if idx != target {
			return raftmeta.Sum{}, false, nil // more was committed: try again
		}
		hashes[k] = h
	}
	for k := range hashes {
		if hashes[k] != hashes[0] {
			return raftmeta.Sum{}, true, fmt.Errorf("replica states differ at applied index %d: %v", target, hashes)
		}
	}
	return hashes[0], true, nil
}

// Close stops every replica.
func (c *Cluster) Close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for i := range c.replicas {
		c.stopLocked(i)
	}
}
