package cluster

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/hashicorp/raft"

	"github.com/coffer-dev/coffer/cluster/adminrpc"
	"github.com/coffer-dev/coffer/cluster/members"
	"github.com/coffer-dev/coffer/cluster/sysgroup"
	"github.com/coffer-dev/coffer/raftmeta"
)

// AdminUser is the name of the first admin user, created with the cluster.
const AdminUser = "admin"

// tick runs f every interval until ctx ends.
func tick(ctx context.Context, interval time.Duration, f func(ctx context.Context)) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		f(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// publish gossips the node's current meta: addresses, cluster, the groups
// it leads, and whether it is draining.
func (n *Node) publish(leads []uint64) {
	meta := members.Meta{
		Roles: n.cfg.Roles, GRPCAddr: n.cfg.GRPCAddr, RaftAddr: n.cfg.RaftAddr, HTTPAddr: n.cfg.HTTPAddr,
		ClusterID: n.clusterID(), Shards: n.Shards(), Leads: leads, Draining: n.draining.Load(),
		Stopping: n.closing.Load(), BootstrapExpect: n.cfg.BootstrapExpect,
	}
	old := n.members.Local()
	if old.ClusterID == meta.ClusterID && old.Shards == meta.Shards && old.Draining == meta.Draining &&
		old.Stopping == meta.Stopping && slices.Equal(old.Leads, meta.Leads) {
		return
	}
	if err := n.members.SetMeta(meta, time.Second); err != nil && !errors.Is(err, members.ErrClosed) {
		n.log.Debug("gossip meta update incomplete", "err", err)
	}
}

// leadsLoop gossips which groups this node leads, for routing.
func (n *Node) leadsLoop(ctx context.Context) {
	tick(ctx, pick(n.cfg.Fast, 100*time.Millisecond, time.Second), func(context.Context) {
		n.publish(n.leads())
	})
}

func (n *Node) leads() []uint64 {
	var out []uint64
	for id, g := range n.hosted() {
		if g.raft().State() == raft.Leader {
			out = append(out, id)
		}
	}
	slices.Sort(out)
	return out
}

// identityLoop learns (or, on the bootstrapping node, creates) the
// cluster's identity and records it in the data directory.
func (n *Node) identityLoop(ctx context.Context) {
	tick(ctx, pick(n.cfg.Fast, 100*time.Millisecond, time.Second), func(ctx context.Context) {
		if n.clusterID() != "" && n.Shards() > 0 {
			return
		}
		// This node began a bootstrap that has not finished (a failure, or
		// a restart in the middle): finish creating the groups.
		n.idMu.Lock()
		resume := n.id.Bootstrapping
		n.idMu.Unlock()
		if resume {
			n.bootstrapGroups()
		}
		// From the system group, if this node hosts it.
		if g := n.group(SystemGroup); g != nil {
			if info, err := g.sys.Info(); err == nil {
				n.adopt(info.ClusterID, info.Shards)
				return
			}
		}
		// From the gossip of formed nodes.
		ids := map[string]int{}
		for _, m := range n.members.Nodes() {
			if m.Meta.ClusterID != "" {
				if m.Meta.Shards > ids[m.Meta.ClusterID] {
					ids[m.Meta.ClusterID] = m.Meta.Shards
				} else if _, ok := ids[m.Meta.ClusterID]; !ok {
					ids[m.Meta.ClusterID] = 0
				}
			}
		}
		if len(ids) == 1 {
			for id, shards := range ids {
				if mine := n.clusterID(); mine == "" || mine == id {
					n.adopt(id, shards)
				}
			}
			return
		}
		if len(ids) > 1 || n.clusterID() != "" {
			return
		}
		n.maybeBootstrap()
	})
}

// adopt records the cluster's identity (shards may still be 0: learnt later).
func (n *Node) adopt(clusterID string, shards int) {
	n.idMu.Lock()
	changed := n.id.ClusterID != clusterID
	done := shards > 0 && n.id.Bootstrapping
	if changed || done {
		n.id.ClusterID = clusterID
		if done {
			n.id.Bootstrapping = false // the system group is initialised
		}
		if err := n.dir.saveIdentity(n.id); err != nil {
			n.log.Error("could not record the cluster ID", "err", err)
		}
	}
	n.idMu.Unlock()
	if shards > 0 {
		n.shards.Store(int64(shards))
	}
	if changed {
		n.log.Info("member of cluster", "cluster", clusterID, "shards", shards)
	}
	n.publish(n.leads())
}

// maybeBootstrap forms a new cluster once BootstrapExpect meta nodes, none
// of them in a cluster yet, have met. Only the node with the smallest name
// acts: it creates every group with itself as the only voter, and the
// placement controller (which it then runs, as group 0's leader) adds the
// others. So no two nodes ever write conflicting first configurations.
func (n *Node) maybeBootstrap() {
	if n.cfg.BootstrapExpect == 0 || !n.cfg.HasRole(RoleMeta) {
		return
	}
	ok, why := shouldBootstrap(n.cfg.Name, n.cfg.BootstrapExpect, n.members.Nodes())
	if !ok {
		if why != "" {
			n.warnOnce(why, "not bootstrapping: "+why)
		}
		return
	}
	// Take the cluster's ID first, record that this node is bootstrapping
	// it, and gossip the ID, so that a fresh node arriving now joins this
	// cluster instead of bootstrapping its own.
	idb := make([]byte, 8)
	rand.Read(idb)
	n.idMu.Lock()
	n.id.Bootstrapping = true
	n.idMu.Unlock()
	n.adopt(hex.EncodeToString(idb), 0)
	n.log.Info("bootstrapping a new cluster", "cluster", n.clusterID(), "shards", n.cfg.Shards)
	n.bootstrapGroups()
}

// shouldBootstrap decides whether node self forms a new cluster now: the
// new meta nodes it sees that are to bootstrap (no cluster ID yet, a
// --bootstrap-expect; itself included) are exactly expect, all with the
// same --bootstrap-expect, and self has the smallest name. A reason is given when the nodes' state is wrong (not merely
// incomplete).
func shouldBootstrap(self string, expect int, nodes []members.Member) (bool, string) {
	var cands []string
	for _, m := range nodes {
		if m.Meta.ClusterID != "" || !m.Meta.HasRole(RoleMeta) || m.Meta.BootstrapExpect == 0 {
			continue // formed, not a meta node, or join-only
		}
		cands = append(cands, m.Name)
		if m.Meta.BootstrapExpect != expect {
			return false, fmt.Sprintf("new meta node %s has --bootstrap-expect %d, this node %d", m.Name, m.Meta.BootstrapExpect, expect)
		}
	}
	sort.Strings(cands)
	switch {
	case len(cands) > expect:
		// Which ones form the cluster would be a guess, and two guesses
		// make two clusters.
		return false, fmt.Sprintf("%d new meta nodes %v, more than --bootstrap-expect %d", len(cands), cands, expect)
	case len(cands) < expect:
		return false, ""
	}
	return cands[0] == self, ""
}

// bootstrapGroups creates every group with this node as its only voter
// (groups that exist already are left alone). It runs again after a
// restart until the system group is initialised.
func (n *Node) bootstrapGroups() {
	self := []raft.Server{{Suffrage: raft.Voter, ID: raft.ServerID(n.cfg.Name), Address: raft.ServerAddress(n.cfg.RaftAddr)}}
	n.groupsMu.Lock()
	defer n.groupsMu.Unlock()
	for id := uint64(0); id <= uint64(n.cfg.Shards); id++ {
		g, err := n.openGroupLocked(id)
		if err == nil {
			err = g.bootstrap(self)
		}
		if err != nil && !errors.Is(err, raftmeta.ErrExists) && !errors.Is(err, sysgroup.ErrExists) {
			n.log.Error("bootstrap failed; retrying", "group", id, "err", err)
			return
		}
	}
}

// warnOnce logs a warning once per key.
func (n *Node) warnOnce(key, msg string, args ...any) {
	if _, loaded := n.warned.LoadOrStore(key, true); !loaded {
		n.log.Warn(msg, args...)
	}
}

// controlLoop runs the placement controller while this node leads group 0:
// every ControlInterval at rest, and every busyControlInterval while its
// rounds still change something (forming the cluster, moving replicas).
func (n *Node) controlLoop(ctx context.Context) {
	for {
		wait := n.cfg.ControlInterval
		if g := n.group(SystemGroup); g != nil && g.raft().State() == raft.Leader {
			changed, err := n.controlOnce(ctx, g.sys)
			if err != nil && ctx.Err() == nil {
				n.log.Debug("placement round incomplete", "err", err)
			}
			if changed || err != nil {
				wait = min(wait, busyControlInterval)
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
	}
}

// busyControlInterval is the controller's pace while it has work.
const busyControlInterval = 200 * time.Millisecond

// controlOnce is one round of the controller on group 0's leader.
func (n *Node) controlOnce(ctx context.Context, sys *sysgroup.Group) (changed bool, err error) {
	info, err := sys.Info()
	if errors.Is(err, sysgroup.ErrNotInitialised) {
		return true, n.initCluster(ctx, sys)
	}
	if err != nil {
		return false, err
	}
	n.adopt(info.ClusterID, info.Shards)
	records, err := sys.Nodes()
	if err != nil {
		return false, err
	}
	state := map[string]sysgroup.NodeState{}
	for _, r := range records {
		state[r.Name] = r.State
	}
	in := placementInput{Target: n.cfg.GroupReplicas, Gone: map[string]bool{}, Draining: map[string]bool{}, Stopping: map[string]bool{}}
	now := time.Now()
	for _, m := range n.members.All() {
		if m.State == members.StateAlive || m.State == members.StateSuspect {
			in.Up = append(in.Up, m.Name)
		}
		switch st := state[m.Name]; {
		case st == sysgroup.NodeRemoved:
			in.Gone[m.Name] = true
		case st == sysgroup.NodeRemoving:
			in.Draining[m.Name] = true
		case m.State == members.StateAlive || m.State == members.StateSuspect:
			if m.Meta.HasRole(RoleMeta) && !m.Meta.Draining {
				in.Healthy = append(in.Healthy, m.Name)
			}
			if m.Meta.Stopping {
				in.Stopping[m.Name] = true
			}
		case now.Sub(m.Since) > n.cfg.DeadAfter:
			in.Gone[m.Name] = true
		}
	}
	for name, st := range state {
		if st == sysgroup.NodeRemoved {
			in.Gone[name] = true
		}
	}
	sort.Strings(in.Healthy)
	var problems []error
	// Record every node that takes part, so it can later be removed.
	for _, h := range in.Healthy {
		if _, ok := state[h]; !ok {
			if _, err := sys.SetNodeState(ctx, "active-"+h, h, sysgroup.NodeActive); err != nil {
				problems = append(problems, err)
			}
		}
	}
	raftAddrs := map[string]string{} // gossiped Raft addresses, read once per round
	for _, m := range n.members.Nodes() {
		raftAddrs[m.Name] = m.Meta.RaftAddr
	}
	for id := uint64(0); id <= uint64(info.Shards); id++ {
		gv, err := n.viewGroup(ctx, id, raftAddrs)
		if err != nil {
			problems = append(problems, fmt.Errorf("group %d: %w", id, err))
			continue
		}
		in.Groups = append(in.Groups, *gv)
	}
	plan := planPlacement(in)
	changed = len(plan) > 0
	for _, c := range plan {
		n.log.Info("placement change", "group", c.Group, "kind", c.Kind, "node", c.Node, "why", c.Why)
		if err := n.applyChange(ctx, c.GroupChange, c.Leader); err != nil {
			problems = append(problems, fmt.Errorf("group %d %s %s: %w", c.Group, c.Kind, c.Node, err))
		}
	}
	// Finish removals: a draining node that holds no replica is removed;
	// a live one — or a removed one that came back — is told to drain (its
	// blocks go to their other owners, and block placement leaves it out).
	for name, st := range state {
		if st == sysgroup.NodeRemoved {
			n.tellDrain(ctx, name)
			continue
		}
		if st != sysgroup.NodeRemoving {
			continue
		}
		holds := false
		for _, g := range in.Groups {
			holds = holds || g.has(name)
		}
		if !holds && len(in.Groups) == info.Shards+1 {
			changed = true
			if _, err := sys.SetNodeState(ctx, "removed-"+name, name, sysgroup.NodeRemoved); err != nil {
				problems = append(problems, err)
			} else {
				n.log.Info("node removed from the cluster", "node", name)
			}
		}
		n.tellDrain(ctx, name)
	}
	if !info.AdminCreated {
		changed = true
		if err := n.createAdmin(ctx, sys, info.Shards); err != nil {
			problems = append(problems, fmt.Errorf("create admin: %w", err))
		}
	}
	return changed, errors.Join(problems...)
}

// initCluster creates the cluster's identity in the system group.
func (n *Node) initCluster(ctx context.Context, sys *sysgroup.Group) error {
	key := make([]byte, 32)
	rand.Read(key)
	id := n.clusterID() // chosen when this node bootstrapped
	if id == "" {
		idb := make([]byte, 8)
		rand.Read(idb)
		id = hex.EncodeToString(idb)
	}
	info, err := sys.Init(ctx, "init-cluster", sysgroup.Info{
		ClusterID: id, Shards: n.cfg.Shards, CreatedAt: time.Now().UTC(), SigningKey: key,
	})
	if err != nil {
		return err
	}
	n.log.Info("cluster created", "cluster", info.ClusterID, "shards", info.Shards)
	n.adopt(info.ClusterID, info.Shards)
	return nil
}

// createAdmin creates the first admin user in its shard (once). A
// generated password is written to DIR/admin-password before it is
// proposed, and reused if this runs again, so a retry (the request ID makes
// the creation itself happen once) never reports a password that is not
// the admin's. Before reporting a password the node checks that it works:
// if another node created the admin first, with its own password, this
// node says so instead.
func (n *Node) createAdmin(ctx context.Context, sys *sysgroup.Group, shards int) error {
	shard, err := raftmeta.ShardOf(AdminUser, shards)
	if err != nil {
		return err
	}
	path := filepath.Join(n.cfg.Dir, "admin-password")
	password, fromFile := n.cfg.AdminPassword, false
	if password == "" {
		fromFile = true
		if b, err := os.ReadFile(path); err == nil && len(strings.TrimSpace(string(b))) > 0 {
			password = strings.TrimSpace(string(b))
		} else {
			b := make([]byte, 12)
			rand.Read(b)
			password = hex.EncodeToString(b)
			if err := writeFileSync(path, []byte(password+"\n"), 0o600); err != nil {
				return fmt.Errorf("record the admin password: %w", err)
			}
		}
	}
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	_, err = n.router.CreateUser(cctx, shard, raftmeta.CreateUserRequest{RequestID: "create-first-admin", Name: AdminUser, Password: password, Admin: true})
	if err != nil && !errors.Is(err, raftmeta.ErrExists) {
		return err
	}
	_, err = n.router.Authenticate(cctx, shard, AdminUser, password)
	works := err == nil
	if err != nil && !errors.Is(err, raftmeta.ErrBadCredentials) {
		return err
	}
	switch {
	case !works && fromFile:
		_ = os.Remove(path)
		n.log.Warn("the first admin user was created earlier by another node, with the password that node generated (see its log or data directory)")
	case !works:
		n.log.Warn("the first admin user exists with another password than --admin-password")
	case fromFile:
		n.log.Warn("first admin user ready with a generated password", "user", AdminUser, "password", password, "file", path)
	default:
		n.log.Info("first admin user ready", "user", AdminUser)
	}
	return sys.MarkAdminCreated(ctx, "admin-created")
}

// viewGroup asks a group's leader for its configuration, and each
// nonvoter for how far it has applied.
func (n *Node) viewGroup(ctx context.Context, id uint64, raftAddrs map[string]string) (*groupView, error) {
	info, err := n.leaderGroupInfo(ctx, id)
	if err != nil {
		return nil, err
	}
	gv := &groupView{ID: id, Leader: info.Node, ConfigIndex: info.ConfigIndex, Committed: info.ConfigCommitted,
		Commit: info.Commit, Applied: map[string]uint64{}, Addrs: raftAddrs, ConfigAddrs: map[string]string{}}
	for _, r := range info.Config {
		gv.ConfigAddrs[r.Node] = r.Addr
		if r.Suffrage == "voter" {
			gv.Voters = append(gv.Voters, r.Node)
		} else {
			gv.Nonvoters = append(gv.Nonvoters, r.Node)
		}
	}
	for _, nv := range gv.Nonvoters {
		rctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		r, err := n.nodeGroupInfo(rctx, nv, id)
		cancel()
		if err == nil {
			gv.Applied[nv] = r.Applied
		}
	}
	return gv, nil
}

// leaderGroupInfo returns the group's leader's report.
func (n *Node) leaderGroupInfo(ctx context.Context, id uint64) (*adminrpc.GroupReplica, error) {
	leader := n.leaderName(id)
	if leader == "" {
		return nil, fmt.Errorf("no known leader")
	}
	rctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	info, err := n.nodeGroupInfo(rctx, leader, id)
	if err != nil {
		return nil, err
	}
	if info.State != raft.Leader.String() {
		return nil, fmt.Errorf("%s no longer leads it", leader)
	}
	return info, nil
}

// leaderName returns the node that leads group id: this node if it does,
// else the one whose gossip says so.
func (n *Node) leaderName(id uint64) string {
	if g := n.group(id); g != nil {
		if g.raft().State() == raft.Leader {
			return n.cfg.Name
		}
		if _, lid := g.raft().LeaderWithID(); lid != "" {
			return string(lid)
		}
	}
	for _, m := range n.members.Nodes() {
		if slices.Contains(m.Meta.Leads, id) {
			return m.Name
		}
	}
	return ""
}

// nodeGroupInfo asks node for its replica of group id.
func (n *Node) nodeGroupInfo(ctx context.Context, node string, id uint64) (*adminrpc.GroupReplica, error) {
	if node == n.cfg.Name {
		return n.GroupInfo(ctx, id)
	}
	c, err := n.adminClient(node)
	if err != nil {
		return nil, err
	}
	return c.GroupInfo(ctx, id)
}

// applyChange sends one change to the group's leader.
func (n *Node) applyChange(ctx context.Context, c adminrpc.GroupChange, leader string) error {
	cctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	if leader == n.cfg.Name {
		return n.ChangeGroup(cctx, c)
	}
	cl, err := n.adminClient(leader)
	if err != nil {
		return err
	}
	return cl.ChangeGroup(cctx, c)
}

// tellDrain tells a node being removed to hand its blocks over.
func (n *Node) tellDrain(ctx context.Context, name string) {
	for _, m := range n.members.Nodes() {
		if m.Name != name || m.Meta.Draining {
			continue
		}
		_ = n.applyChange(ctx, adminrpc.GroupChange{Kind: adminrpc.Drain, Node: name}, name)
	}
}

// orphanLoop drops replicas this node keeps but whose group no longer
// counts it as a member (it was removed while down or partitioned, and
// never saw the configuration that removed it).
func (n *Node) orphanLoop(ctx context.Context) {
	_, election, _, _ := n.cfg.raftTiming()
	tick(ctx, pick(n.cfg.Fast, time.Second, 10*time.Second), func(ctx context.Context) {
		for id, g := range n.hosted() {
			r := g.raft()
			if r.State() == raft.Leader {
				continue
			}
			cfg, idx, err := configuration(r)
			if err != nil {
				continue
			}
			_, member := inConfig(cfg, n.cfg.Name)
			_, lid := r.LeaderWithID()
			suspicious := (idx > 0 && !member) || (lid == "" && time.Since(g.opened) > 5*election)
			if !suspicious {
				continue
			}
			info, err := n.leaderGroupInfo(ctx, id)
			// Trust only a leader at least as recent as this replica's
			// own term: a deposed leader may hold an older configuration.
			if err != nil || !info.ConfigCommitted || info.Term < statUint(r.Stats(), "term") || info.ConfigIndex < idx {
				continue
			}
			listed := false
			for _, rs := range info.Config {
				listed = listed || rs.Node == n.cfg.Name
			}
			if !listed {
				if err := n.dropGroup(id); err != nil {
					n.log.Error("could not drop a replica this node no longer holds", "group", id, "err", err)
				}
			}
		}
	})
}
