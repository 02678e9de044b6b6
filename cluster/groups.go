package cluster

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"

	"github.com/coffer-dev/coffer/cluster/sysgroup"
	"github.com/coffer-dev/coffer/raftmeta"
	"github.com/coffer-dev/coffer/raftmeta/hclogslog"
)

// SystemGroup is the ID of the cluster's system group; shard groups are
// 1..Shards.
const SystemGroup uint64 = 0

// group is this node's replica of one Raft group.
type group struct {
	id     uint64
	stores *raftmeta.RaftStores
	trans  *raft.NetworkTransport
	sys    *sysgroup.Group // group 0
	shard  *raftmeta.Shard // groups > 0
	opened time.Time
}

func (g *group) raft() *raft.Raft {
	if g.sys != nil {
		return g.sys.Raft()
	}
	return g.shard.Raft()
}

func (g *group) applied() uint64 {
	if g.sys != nil {
		return g.sys.AppliedIndex()
	}
	return g.shard.FSM().AppliedIndex()
}

func (g *group) bootstrap(servers []raft.Server) error {
	if g.sys != nil {
		return g.sys.Bootstrap(servers)
	}
	return g.shard.Bootstrap(servers)
}

// close stops the replica and closes its transport and stores.
func (g *group) close() error {
	var errs []error
	if g.sys != nil {
		errs = append(errs, g.sys.Close())
	}
	if g.shard != nil {
		errs = append(errs, g.shard.Close())
	}
	if g.trans != nil {
		errs = append(errs, g.trans.Close())
	}
	if g.stores != nil {
		errs = append(errs, g.stores.Close())
	}
	return errors.Join(errs...)
}

// raftTiming returns the Raft timeouts of every group on this node.
func (c *Config) raftTiming() (heartbeat, election, lease, commit time.Duration) {
	if c.Fast {
		return 400 * time.Millisecond, 400 * time.Millisecond, 200 * time.Millisecond, 20 * time.Millisecond
	}
	// Raft's defaults are 1s/1s/500ms/50ms. A leader heartbeats each
	// follower every HeartbeatTimeout/10, and sends it an (often empty)
	// AppendEntries every CommitTimeout when no command is flowing: with
	// many groups per node those dominate the idle cost. A 2s timeout
	// still fails over in a few seconds; a 500ms commit timeout only
	// delays when an idle follower learns the last commit index (under
	// load, entries carry it at once; the leader's commit is not delayed).
	return 2 * time.Second, 2 * time.Second, time.Second, 500 * time.Millisecond
}

// openGroup opens (creating if need be) this node's replica of group id.
// The caller holds n.groupsMu.
func (n *Node) openGroupLocked(id uint64) (*group, error) {
	if g, ok := n.groups[id]; ok {
		return g, nil
	}
	if n.closing.Load() {
		return nil, ErrClosed
	}
	dir := n.dir.groupPath(id)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("group %d: %w", id, err)
	}
	g := &group{id: id, opened: time.Now()}
	var err error
	defer func() {
		if err != nil {
			_ = g.close()
		}
	}()
	glog := n.log.With("group", id)
	if g.stores, err = raftmeta.OpenRaftStores(dir, glog); err != nil {
		return nil, fmt.Errorf("group %d: %w", id, err)
	}
	layer, err := n.mux.Group(id)
	if err != nil {
		return nil, fmt.Errorf("group %d: %w", id, err)
	}
	g.trans = raft.NewNetworkTransportWithConfig(&raft.NetworkTransportConfig{
		Stream:  layer,
		MaxPool: 3,
		Timeout: 10 * time.Second,
		// No pipelined replication: in raft v1.7.3 a pipeline whose
		// decoder stopped (a follower answered !Success or a newer term)
		// can leave the sender blocked on a full in-flight queue that
		// nothing drains, and then Shutdown waits for it forever (seen in
		// CI: a node's Close hung in the system group's raft Shutdown,
		// replicate stuck in netPipeline.AppendEntries for minutes). raft's
		// own benchmarks (PR #541) show pipelining buys little with
		// batching; with 1 every AppendEntries is synchronous and bounded
		// by Timeout.
		MaxRPCsInFlight: 1,
		Logger:          hclogslog.New(glog.With("component", "raft-transport"), hclog.Warn),
	})
	hb, el, lease, commit := n.cfg.raftTiming()
	if id == SystemGroup {
		g.sys, err = sysgroup.Open(sysgroup.Config{
			GroupID: id, LocalID: raft.ServerID(n.cfg.Name), DB: n.db, Transport: g.trans,
			LogStore: g.stores.Bolt, StableStore: g.stores.Bolt, SnapshotStore: g.stores.Snapshots,
			Logger: n.cfg.Logger, HeartbeatTimeout: hb, ElectionTimeout: el, LeaderLeaseTimeout: lease,
			CommitTimeout: commit,
		})
	} else {
		g.shard, err = raftmeta.Open(raftmeta.Config{
			GroupID: id, LocalID: raft.ServerID(n.cfg.Name), DB: n.db, Transport: g.trans,
			LogStore: g.stores.Bolt, StableStore: g.stores.Bolt, SnapshotStore: g.stores.Snapshots,
			Logger: n.cfg.Logger, HeartbeatTimeout: hb, ElectionTimeout: el, LeaderLeaseTimeout: lease,
			CommitTimeout: commit, Password: n.cfg.Password,
		})
	}
	if err != nil {
		return nil, fmt.Errorf("group %d: %w", id, err)
	}
	n.groups[id] = g
	n.metrics.watchGroup(g)
	glog.Info("group replica opened")
	return g, nil
}

// onUnknownGroup is the Raft mux's hook: a leader has added this node to a
// group it does not host yet, so open an empty replica for it.
func (n *Node) onUnknownGroup(id uint64) bool {
	// Refused until Start has opened the stores (the Raft port listens
	// first, to claim it) and after Close began.
	if !n.started.Load() || !n.cfg.HasRole(RoleMeta) || n.closing.Load() || n.draining.Load() {
		return false
	}
	// Before the shard count is known (the cluster is forming) any valid
	// ID may come; after, only the cluster's groups.
	if limit := uint64(n.Shards()); id > MaxShards || (limit > 0 && id > limit) {
		return false
	}
	n.groupsMu.Lock()
	defer n.groupsMu.Unlock()
	_, err := n.openGroupLocked(id)
	if err != nil {
		n.log.Warn("could not open a replica a leader asked for", "group", id, "err", err)
		return false
	}
	return true
}

// dropGroup closes this node's replica of id and deletes its state: the
// group's leader no longer counts it as a member.
func (n *Node) dropGroup(id uint64) error {
	n.groupsMu.Lock()
	defer n.groupsMu.Unlock()
	g, ok := n.groups[id]
	if !ok {
		return nil
	}
	delete(n.groups, id)
	n.metrics.unwatchGroup(id)
	err := g.close()
	if id == SystemGroup {
		err = errors.Join(err, sysgroup.DropState(n.db, id))
	} else {
		err = errors.Join(err, raftmeta.DropGroup(n.db, id))
	}
	err = errors.Join(err, os.RemoveAll(n.dir.groupPath(id)))
	if err == nil {
		n.dropped.Add(1)
		n.log.Info("group replica dropped: this node is no longer a member", "group", id)
	}
	return err
}

// group returns this node's replica of id, nil if it hosts none.
func (n *Node) group(id uint64) *group {
	n.groupsMu.Lock()
	defer n.groupsMu.Unlock()
	return n.groups[id]
}

// hosted returns the node's replicas, by group ID.
func (n *Node) hosted() map[uint64]*group {
	n.groupsMu.Lock()
	defer n.groupsMu.Unlock()
	out := make(map[uint64]*group, len(n.groups))
	for id, g := range n.groups {
		out[id] = g
	}
	return out
}

// configuration returns a group's latest configuration and its index.
func configuration(r *raft.Raft) (raft.Configuration, uint64, error) {
	f := r.GetConfiguration()
	if err := f.Error(); err != nil {
		return raft.Configuration{}, 0, err
	}
	return f.Configuration(), f.Index(), nil
}

func inConfig(c raft.Configuration, id string) (raft.Server, bool) {
	for _, s := range c.Servers {
		if string(s.ID) == id {
			return s, true
		}
	}
	return raft.Server{}, false
}

func statUint(stats map[string]string, key string) uint64 {
	v, _ := strconv.ParseUint(stats[key], 10, 64)
	return v
}
