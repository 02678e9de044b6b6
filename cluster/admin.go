package cluster

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/hashicorp/raft"

	"github.com/coffer-dev/coffer/cluster/adminrpc"
	"github.com/coffer-dev/coffer/cluster/members"
	"github.com/coffer-dev/coffer/cluster/metarpc"
	"github.com/coffer-dev/coffer/cluster/route"
	"github.com/coffer-dev/coffer/cluster/sysgroup"
	"github.com/coffer-dev/coffer/internal/wire"
	"github.com/coffer-dev/coffer/raftmeta"
)

var (
	_ adminrpc.Service = (*Node)(nil)
	_ metarpc.Shards   = (*Node)(nil)
)

// Shard implements metarpc.Shards: this node's replica of a shard group.
func (n *Node) Shard(group uint64) (metarpc.Shard, error) {
	if group == SystemGroup {
		return nil, fmt.Errorf("%w: group 0 is the system group, not a shard", raftmeta.ErrNotFound)
	}
	g := n.group(group)
	if g == nil || g.shard == nil {
		// ErrNoReplica, not ErrNotFound: the router then asks another node.
		// Answering not_found made a read that reached a node without a
		// replica (a cluster of more nodes than replicas, after a leader
		// died) report an existing file or user as missing.
		return nil, fmt.Errorf("%w: node %s hosts no replica of group %d", metarpc.ErrNoReplica, n.cfg.Name, group)
	}
	return timedShard{Shard: g.shard, commit: n.metrics.commit.WithLabelValues(strconv.FormatUint(group, 10))}, nil
}

// GRPCAddr implements metarpc.Shards: a node's gRPC address from gossip.
func (n *Node) GRPCAddr(nodeID string) string {
	for _, m := range n.members.Nodes() {
		if m.Name == nodeID {
			return m.Meta.GRPCAddr
		}
	}
	return ""
}

// routeLeaders feeds the metadata router from gossip: the leader each
// node says it has, and every live meta node as a fallback.
type routeLeaders struct{ n *Node }

func (l routeLeaders) Leader(group uint64) string {
	if name := l.n.leaderName(group); name != "" {
		return l.n.GRPCAddr(name)
	}
	return ""
}

func (l routeLeaders) Addrs() []string {
	var out []string
	for _, m := range l.n.members.Nodes() {
		if m.Meta.HasRole(RoleMeta) && m.Meta.GRPCAddr != "" {
			out = append(out, m.Meta.GRPCAddr)
		}
	}
	return out
}

// Meta returns the node's metadata router: calls to any shard's leader,
// through failovers (what the gateway uses).
func (n *Node) Meta() *route.Router { return n.router }

func (n *Node) adminClient(node string) (*adminrpc.Client, error) {
	addr := n.GRPCAddr(node)
	if addr == "" {
		return nil, fmt.Errorf("%w: %s (no gRPC address in gossip)", ErrUnknownNode, node)
	}
	conn, err := n.conns.get(addr)
	if err != nil {
		return nil, err
	}
	return adminrpc.NewClient(conn), nil
}

// GroupInfo implements adminrpc.Service: this node's replica of a group.
func (n *Node) GroupInfo(ctx context.Context, id uint64) (*adminrpc.GroupReplica, error) {
	g := n.group(id)
	if g == nil {
		return nil, fmt.Errorf("%w: node %s hosts no replica of group %d", adminrpc.ErrNotFound, n.cfg.Name, id)
	}
	r := g.raft()
	st := r.Stats()
	cfg, idx, err := configuration(r)
	if err != nil {
		return nil, fmt.Errorf("%w: group %d: %v", adminrpc.ErrUnavailable, id, err)
	}
	_, lid := r.LeaderWithID()
	info := &adminrpc.GroupReplica{
		Group: id, Node: n.cfg.Name, State: r.State().String(), Leader: string(lid),
		Term: statUint(st, "term"), Commit: statUint(st, "commit_index"), Applied: g.applied(),
		LastLog: statUint(st, "last_log_index"), ConfigIndex: idx,
	}
	info.ConfigCommitted = idx <= info.Commit
	if r.State() == raft.Leader {
		info.LastContact = 0
	} else if lc := r.LastContact(); !lc.IsZero() {
		info.LastContact = time.Since(lc)
	}
	for _, s := range cfg.Servers {
		suf := "voter"
		if s.Suffrage != raft.Voter {
			suf = "nonvoter"
		}
		info.Config = append(info.Config, wire.ReplicaStatus{Node: string(s.ID), Addr: string(s.Address), Suffrage: suf})
	}
	return info, nil
}

// ChangeGroup implements adminrpc.Service: one membership change of a group
// this node leads, or (Drain) the news that this node is being removed.
func (n *Node) ChangeGroup(ctx context.Context, c adminrpc.GroupChange) error {
	if c.Kind == adminrpc.Drain {
		if c.Node != n.cfg.Name {
			return fmt.Errorf("%w: drain for %s sent to %s", adminrpc.ErrInvalidArgument, c.Node, n.cfg.Name)
		}
		if !n.draining.Swap(true) {
			n.log.Warn("this node is being removed from the cluster: handing its replicas and blocks over")
			n.publish(n.leads())
		}
		return nil
	}
	g := n.group(c.Group)
	if g == nil {
		return fmt.Errorf("%w: node %s hosts no replica of group %d", adminrpc.ErrNotFound, n.cfg.Name, c.Group)
	}
	r := g.raft()
	if r.State() != raft.Leader {
		_, id := r.LeaderWithID()
		return &adminrpc.NotLeaderError{LeaderID: string(id), Leader: n.GRPCAddr(string(id))}
	}
	_, idx, err := configuration(r)
	if err != nil {
		return fmt.Errorf("%w: %v", adminrpc.ErrUnavailable, err)
	}
	if c.PrevIndex != 0 && c.PrevIndex != idx {
		return fmt.Errorf("%w: group %d configuration is at %d, the change was planned at %d", adminrpc.ErrStale, c.Group, idx, c.PrevIndex)
	}
	timeout := 10 * time.Second
	if dl, ok := ctx.Deadline(); ok {
		timeout = time.Until(dl)
	}
	id, addr := raft.ServerID(c.Node), raft.ServerAddress(c.Addr)
	var f raft.Future
	switch c.Kind {
	case adminrpc.AddNonvoter:
		if c.Addr == "" {
			return fmt.Errorf("%w: add needs the node's Raft address", adminrpc.ErrInvalidArgument)
		}
		f = r.AddNonvoter(id, addr, idx, timeout)
	case adminrpc.AddVoter:
		cfg, _, _ := configuration(r)
		s, ok := inConfig(cfg, c.Node)
		if !ok {
			return fmt.Errorf("%w: %s is not in group %d", adminrpc.ErrInvalidArgument, c.Node, c.Group)
		}
		if addr == "" {
			addr = s.Address // a promotion keeps the address
		}
		f = r.AddVoter(id, addr, idx, timeout)
	case adminrpc.Remove:
		f = r.RemoveServer(id, idx, timeout)
	case adminrpc.Transfer:
		cfg, _, _ := configuration(r)
		s, ok := inConfig(cfg, c.Node)
		if !ok || s.Suffrage != raft.Voter {
			return fmt.Errorf("%w: %s is not a voter of group %d", adminrpc.ErrInvalidArgument, c.Node, c.Group)
		}
		f = r.LeadershipTransferToServer(id, s.Address)
	default:
		return fmt.Errorf("%w: unknown change %q", adminrpc.ErrInvalidArgument, c.Kind)
	}
	done := make(chan error, 1)
	go func() { done <- f.Error() }()
	select {
	case err = <-done:
	case <-ctx.Done():
		return ctx.Err()
	}
	if errors.Is(err, raft.ErrNotLeader) || errors.Is(err, raft.ErrLeadershipLost) {
		return &adminrpc.NotLeaderError{}
	}
	return err
}

// RemoveNode implements adminrpc.Service: mark a node for removal in the
// system group (on its leader); the controller drains it, then records it
// as removed.
func (n *Node) RemoveNode(ctx context.Context, name string) error {
	g := n.group(SystemGroup)
	if g == nil || g.raft().State() != raft.Leader {
		leader := n.leaderName(SystemGroup)
		if leader == "" || leader == n.cfg.Name {
			return fmt.Errorf("%w: the system group has no leader", adminrpc.ErrUnavailable)
		}
		c, err := n.adminClient(leader)
		if err != nil {
			return fmt.Errorf("%w: %v", adminrpc.ErrUnavailable, err)
		}
		return c.RemoveNode(ctx, name)
	}
	known := false
	for _, m := range n.members.All() {
		known = known || m.Name == name
	}
	if rec, err := g.sys.Node(name); err == nil {
		known = true
		if rec.State == sysgroup.NodeRemoved || rec.State == sysgroup.NodeRemoving {
			return nil
		}
	}
	if !known {
		return fmt.Errorf("%w: no node named %q in the cluster", adminrpc.ErrNotFound, name)
	}
	if _, err := g.sys.SetNodeState(ctx, "remove-"+name+"-active", name, sysgroup.NodeActive); err != nil && !errors.Is(err, sysgroup.ErrInvalidArgument) {
		return err
	}
	if _, err := g.sys.SetNodeState(ctx, "remove-"+name+"-draining", name, sysgroup.NodeRemoving); err != nil {
		return err
	}
	n.log.Warn("node marked for removal: draining it", "node", name)
	return nil
}

// Status implements adminrpc.Service: the cluster as this node sees it.
func (n *Node) Status(ctx context.Context) (*wire.ClusterStatus, error) {
	st := &wire.ClusterStatus{ClusterID: n.clusterID(), Node: n.cfg.Name, Shards: n.Shards()}
	removing := map[string]bool{}
	if g := n.group(SystemGroup); g != nil {
		if recs, err := g.sys.Nodes(); err == nil {
			for _, r := range recs {
				removing[r.Name] = r.State == sysgroup.NodeRemoving
			}
		}
	}
	var mu sync.Mutex
	var wg sync.WaitGroup
	all := n.members.All()
	for _, m := range all {
		st.Nodes = append(st.Nodes, wire.NodeStatus{
			Name: m.Name, State: m.State.String(), Roles: m.Meta.Roles, Gossip: m.Addr,
			GRPC: m.Meta.GRPCAddr, Raft: m.Meta.RaftAddr, HTTP: m.Meta.HTTPAddr, Leads: m.Meta.Leads,
			Removing: removing[m.Name] || m.Meta.Draining,
		})
	}
	usage := make([]*wire.BlockUsage, len(all))
	for i, m := range all {
		if m.Meta.HasRole(RoleBlock) && (m.State == members.StateAlive || m.State == members.StateSuspect) {
			wg.Add(1)
			go func() {
				defer wg.Done()
				u, err := n.blockUsage(ctx, m.Name, m.Meta.GRPCAddr)
				if err != nil {
					mu.Lock()
					st.Problems = append(st.Problems, fmt.Sprintf("block usage of %s: %v", m.Name, err))
					mu.Unlock()
					return
				}
				usage[i] = u
			}()
		}
	}
	groups := make([]*wire.GroupStatus, st.Shards+1)
	for id := 0; id <= st.Shards; id++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			gs, err := n.groupStatus(ctx, uint64(id))
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				st.Problems = append(st.Problems, fmt.Sprintf("group %d: %v", id, err))
			}
			groups[id] = gs
		}()
	}
	wg.Wait()
	for i := range st.Nodes {
		st.Nodes[i].Block = usage[i]
	}
	for _, g := range groups {
		if g != nil {
			st.Groups = append(st.Groups, *g)
		}
	}
	if st.ClusterID == "" {
		st.Problems = append(st.Problems, "the cluster is not formed yet")
	}
	slices.Sort(st.Problems)
	return st, nil
}

func (n *Node) blockUsage(ctx context.Context, name, addr string) (*wire.BlockUsage, error) {
	cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	if name == n.cfg.Name && n.blocks != nil {
		bs, err := n.blocks.Stats(cctx)
		if err != nil {
			return nil, err
		}
		return &wire.BlockUsage{Blocks: bs.Blocks, LiveBytes: bs.Bytes, DiskBytes: bs.DiskBytes, FreeBytes: bs.FreeBytes}, nil
	}
	if n.blockPool == nil {
		return nil, errors.New("this node has no block client")
	}
	c, err := n.blockPool.Client(cctx, addr)
	if err != nil {
		return nil, err
	}
	bs, err := c.Stats(cctx)
	if err != nil {
		return nil, err
	}
	return &wire.BlockUsage{Blocks: bs.Blocks, LiveBytes: bs.Bytes, DiskBytes: bs.DiskBytes, FreeBytes: bs.FreeBytes}, nil
}

// groupStatus asks the group's leader and each replica for their view.
func (n *Node) groupStatus(ctx context.Context, id uint64) (*wire.GroupStatus, error) {
	kind := "shard"
	if id == SystemGroup {
		kind = "system"
	}
	gs := &wire.GroupStatus{ID: id, Kind: kind}
	info, err := n.leaderGroupInfo(ctx, id)
	if err != nil {
		return gs, err
	}
	gs.Leader, gs.Term, gs.Commit, gs.Applied = info.Node, info.Term, info.Commit, info.Applied
	gs.Replicas = make([]wire.ReplicaStatus, len(info.Config))
	var wg sync.WaitGroup
	for i, r := range info.Config {
		gs.Replicas[i] = r
		wg.Add(1)
		go func() {
			defer wg.Done()
			cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
			defer cancel()
			if ri, err := n.nodeGroupInfo(cctx, r.Node, id); err == nil {
				gs.Replicas[i].Applied = ri.Applied
			}
		}()
	}
	wg.Wait()
	return gs, nil
}

// ClusterKeys implements adminrpc.Service: the system group's identity and
// signing key, from this node's replica of it, else from its leader.
func (n *Node) ClusterKeys(ctx context.Context) (*adminrpc.ClusterKeys, error) {
	if k := n.keys.Load(); k != nil {
		return k, nil
	}
	var k *adminrpc.ClusterKeys
	if g := n.group(SystemGroup); g != nil {
		info, err := g.sys.Info()
		switch {
		case err == nil:
			k = &adminrpc.ClusterKeys{ClusterID: info.ClusterID, SigningKey: info.SigningKey}
		case errors.Is(err, sysgroup.ErrNotInitialised):
			return nil, fmt.Errorf("%w: the cluster is not formed yet", adminrpc.ErrUnavailable)
		}
	}
	if k == nil {
		leader := n.leaderName(SystemGroup)
		if leader == "" || leader == n.cfg.Name {
			return nil, fmt.Errorf("%w: the system group has no known leader", adminrpc.ErrUnavailable)
		}
		c, err := n.adminClient(leader)
		if err != nil {
			return nil, fmt.Errorf("%w: %v", adminrpc.ErrUnavailable, err)
		}
		if k, err = c.ClusterKeys(ctx); err != nil {
			return nil, err
		}
	}
	if len(k.SigningKey) == 0 || (n.clusterID() != "" && k.ClusterID != n.clusterID()) {
		return nil, fmt.Errorf("%w: keys of cluster %q, this node is in %q", adminrpc.ErrUnavailable, k.ClusterID, n.clusterID())
	}
	n.keys.Store(k) // the key never changes once the cluster exists
	return k, nil
}

// CheckFormed says why a status does not show a formed cluster: every group
// answered, has a leader and at least minVoters voters (nil when it does).
func CheckFormed(st *wire.ClusterStatus, minVoters int) error {
	if st.Shards == 0 || len(st.Groups) != st.Shards+1 {
		return fmt.Errorf("%d of %d groups answer; problems %v", len(st.Groups), st.Shards+1, st.Problems)
	}
	for _, g := range st.Groups {
		voters := 0
		for _, r := range g.Replicas {
			if r.Suffrage == "voter" {
				voters++
			}
		}
		if g.Leader == "" || voters < minVoters {
			return fmt.Errorf("group %d: leader %q, %d voters", g.ID, g.Leader, voters)
		}
	}
	return nil
}

// serviceOf returns the admin service of node: this node itself, or a
// client of the named node's.
func (n *Node) serviceOf(node string) (adminrpc.Service, error) {
	if node == n.cfg.Name {
		return n, nil
	}
	return n.adminClient(node)
}

// checkGroupID refuses a group ID the cluster does not have.
func (n *Node) checkGroupID(id uint64) error {
	s := n.Shards()
	if s == 0 {
		return fmt.Errorf("%w: the cluster is not formed yet", adminrpc.ErrUnavailable)
	}
	if id > uint64(s) {
		return fmt.Errorf("%w: no group %d (the groups are 0 to %d)", adminrpc.ErrNotFound, id, s)
	}
	return nil
}

// StateHash implements adminrpc.Service: the hash of this node's replica
// of a group and its applied index, both read from one Pebble snapshot.
func (n *Node) StateHash(ctx context.Context, id uint64) (*adminrpc.StateHash, error) {
	g := n.group(id)
	if g == nil {
		return nil, fmt.Errorf("%w: node %s hosts no replica of group %d", adminrpc.ErrNotFound, n.cfg.Name, id)
	}
	var sum [32]byte
	var applied uint64
	var err error
	if g.sys != nil {
		sum, applied, err = g.sys.StateHash()
	} else {
		var s raftmeta.Sum
		s, applied, err = g.shard.StateHash()
		sum = s
	}
	if err != nil {
		return nil, fmt.Errorf("%w: group %d on %s: state hash: %v", adminrpc.ErrUnavailable, id, n.cfg.Name, err)
	}
	return &adminrpc.StateHash{Group: id, Node: n.cfg.Name, Applied: applied, Hash: hex.EncodeToString(sum[:])}, nil
}

// replicaCallTimeout bounds one call to one replica of an admin request
// that asks every replica of a group.
const replicaCallTimeout = 5 * time.Second

// GroupHashes asks every replica in group id's configuration (the
// leader's, else this node's replica's) for its state hash.
func (n *Node) GroupHashes(ctx context.Context, id uint64) (*wire.GroupHashes, error) {
	if err := n.checkGroupID(id); err != nil {
		return nil, err
	}
	out := &wire.GroupHashes{Group: id}
	info, err := n.leaderGroupInfo(ctx, id)
	if err == nil {
		out.Leader = info.Node
	} else if own, oerr := n.GroupInfo(ctx, id); oerr == nil {
		info = own
	} else {
		return nil, fmt.Errorf("%w: group %d: %v", adminrpc.ErrUnavailable, id, err)
	}
	out.Replicas = make([]wire.ReplicaHash, len(info.Config))
	var wg sync.WaitGroup
	for i, r := range info.Config {
		out.Replicas[i] = wire.ReplicaHash{Node: r.Node, Suffrage: r.Suffrage}
		wg.Go(func() {
			cctx, cancel := context.WithTimeout(ctx, replicaCallTimeout)
			defer cancel()
			h, err := n.replicaHash(cctx, r.Node, id)
			if err != nil {
				out.Replicas[i].Error = err.Error()
				return
			}
			out.Replicas[i].Applied, out.Replicas[i].StateHash = h.Applied, h.Hash
		})
	}
	wg.Wait()
	return out, nil
}

func (n *Node) replicaHash(ctx context.Context, node string, id uint64) (*adminrpc.StateHash, error) {
	svc, err := n.serviceOf(node)
	if err != nil {
		return nil, err
	}
	h, err := svc.StateHash(ctx, id)
	if err == nil && h == nil {
		err = errors.New("empty answer")
	}
	return h, err
}

// transferWait bounds how long a leadership transfer waits for the new
// leader to be known after the old one stepped down.
const transferWait = 15 * time.Second

// TransferLeader moves the leadership of group id to the voter to (""
// picks the voter that is up and leads the fewest groups), through the
// leader's ChangeGroup, and returns once a new leader is known. Naming the
// current leader changes nothing.
func (n *Node) TransferLeader(ctx context.Context, id uint64, to string) (*wire.TransferResult, error) {
	if err := n.checkGroupID(id); err != nil {
		return nil, err
	}
	info, err := n.leaderGroupInfo(ctx, id)
	if err != nil {
		return nil, fmt.Errorf("%w: group %d: %v", adminrpc.ErrUnavailable, id, err)
	}
	res := &wire.TransferResult{Group: id, Previous: info.Node}
	if to == "" {
		if to = n.transferTarget(info); to == "" {
			return nil, fmt.Errorf("%w: group %d has no other voter that is up", adminrpc.ErrUnavailable, id)
		}
	} else if !slices.ContainsFunc(info.Config, func(r wire.ReplicaStatus) bool { return r.Node == to && r.Suffrage == "voter" }) {
		return nil, fmt.Errorf("%w: %s is not a voter of group %d", adminrpc.ErrInvalidArgument, to, id)
	}
	if to == info.Node {
		res.Leader, res.Term = info.Node, info.Term
		return res, nil
	}
	if err := n.applyChange(ctx, adminrpc.GroupChange{Group: id, Kind: adminrpc.Transfer, Node: to}, info.Node); err != nil {
		return nil, fmt.Errorf("group %d: transfer from %s to %s: %w", id, info.Node, to, err)
	}
	// Ask the target first: it is the likely winner.
	ask := append([]string{to}, slices.DeleteFunc(voters(info.Config), func(v string) bool { return v == to })...)
	wctx, cancel := context.WithTimeout(ctx, transferWait)
	defer cancel()
	for {
		for _, node := range ask {
			cctx, ccancel := context.WithTimeout(wctx, time.Second)
			ri, err := n.nodeGroupInfo(cctx, node, id)
			ccancel()
			if err == nil && ri.State == raft.Leader.String() && ri.Term > info.Term {
				res.Leader, res.Term = ri.Node, ri.Term
				n.log.Info("leadership transferred", "group", id, "from", info.Node, "to", ri.Node, "term", ri.Term)
				return res, nil
			}
		}
		select {
		case <-wctx.Done():
			if err := ctx.Err(); err != nil {
				return nil, err
			}
			return nil, fmt.Errorf("%w: group %d: %s stepped down but no new leader was known within %v", adminrpc.ErrUnavailable, id, info.Node, transferWait)
		case <-time.After(50 * time.Millisecond): // poll interval
		}
	}
}

// transferTarget picks the voter of a group (not its leader) that is up,
// neither draining nor stopping, and leads the fewest groups (ties: by
// name), so that the placement controller's balancing does not move the
// leadership straight back. "" if there is none.
func (n *Node) transferTarget(info *adminrpc.GroupReplica) string {
	leads := map[string]int{}
	usable := map[string]bool{}
	for _, m := range n.members.Nodes() {
		leads[m.Name] = len(m.Meta.Leads)
		usable[m.Name] = !m.Meta.Draining && !m.Meta.Stopping
	}
	best := ""
	for _, v := range voters(info.Config) {
		if v == info.Node || !usable[v] {
			continue
		}
		if best == "" || leads[v] < leads[best] || (leads[v] == leads[best] && v < best) {
			best = v
		}
	}
	return best
}

// voters returns the voters of a configuration.
func voters(cfg []wire.ReplicaStatus) []string {
	var out []string
	for _, r := range cfg {
		if r.Suffrage == "voter" {
			out = append(out, r.Node)
		}
	}
	return out
}
