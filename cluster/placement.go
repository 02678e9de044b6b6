package cluster

import (
	"slices"

	"github.com/coffer-dev/coffer/cluster/adminrpc"
)

// catchUpSlack is how far (in log entries) behind the leader's commit index
// a nonvoter may be and still count as caught up for promotion.
const catchUpSlack = 16

// groupView is what the placement planner knows of one group: its leader's
// view of the configuration.
type groupView struct {
	ID uint64
	// Leader is the leading node; ConfigIndex and Committed describe the
	// latest configuration (a change is planned only on a committed one).
	Leader      string
	ConfigIndex uint64
	Committed   bool
	Voters      []string
	Nonvoters   []string
	// Commit is the leader's commit index; Applied holds the applied index
	// each nonvoter reported (missing: unknown).
	Commit  uint64
	Applied map[string]uint64
	// Addrs maps nodes to the Raft addresses they gossip; ConfigAddrs maps
	// the members of the configuration to the addresses it holds for them.
	Addrs       map[string]string
	ConfigAddrs map[string]string
}

func (g groupView) has(node string) bool {
	return slices.Contains(g.Voters, node) || slices.Contains(g.Nonvoters, node)
}

// placementInput is the planner's whole input.
type placementInput struct {
	// Target is the number of voters each group should have.
	Target int
	// Healthy are the nodes that may take replicas (alive, meta role, not
	// being removed), sorted. Gone are nodes whose replicas must move:
	// dead for longer than DeadAfter, or removed. Draining are nodes being
	// removed on purpose: they are drained even when no replacement exists.
	Healthy []string
	// Up are the nodes that answer (alive or suspect in gossip, draining
	// ones included): they count towards a group's quorum.
	Up       []string
	Gone     map[string]bool
	Draining map[string]bool
	// Stopping nodes are shutting down: they get no new replica and no
	// leadership (they keep the replicas they have).
	Stopping map[string]bool
	Groups   []groupView
}

// plannedChange is one change for a group's leader to apply.
type plannedChange struct {
	adminrpc.GroupChange
	Why string
	// Leader is the group's leader, the node that applies the change.
	Leader string
}

// planPlacement decides the next membership changes: at most one per
// group, and at most one leadership transfer for balance per call. It is
// pure: the controller calls it again after every round, so each decision
// is made on fresh state (add a nonvoter, wait until it has caught up,
// promote it, then remove the replica it replaces).
func planPlacement(in placementInput) []plannedChange {
	healthy, up := map[string]bool{}, map[string]bool{}
	for _, h := range in.Healthy {
		healthy[h] = true
	}
	for _, u := range in.Up {
		up[u] = true
	}
	load := map[string]int{}
	leads := map[string]int{}
	for _, h := range in.Healthy {
		load[h], leads[h] = 0, 0
	}
	for _, g := range in.Groups {
		for _, v := range append(slices.Clone(g.Voters), g.Nonvoters...) {
			load[v]++
		}
		if g.Leader != "" {
			leads[g.Leader]++
		}
	}
	bad := func(n string) bool { return in.Gone[n] || in.Draining[n] }
	// stuck: a group whose voters that are up are not a majority can
	// commit no change (it waits for its nodes to return), so nothing is
	// planned for it.
	stuck := func(g groupView) bool {
		u := 0
		for _, v := range g.Voters {
			if up[v] {
				u++
			}
		}
		return 2*u <= len(g.Voters)
	}
	var out []plannedChange
	changed := map[uint64]bool{}
	emit := func(g groupView, kind adminrpc.ChangeKind, node, why string) {
		addr := g.Addrs[node]
		out = append(out, plannedChange{adminrpc.GroupChange{Group: g.ID, Kind: kind, Node: node, Addr: addr, PrevIndex: g.ConfigIndex}, why, g.Leader})
		changed[g.ID] = true
		switch kind {
		case adminrpc.AddNonvoter:
			load[node]++
		case adminrpc.Remove:
			load[node]--
		}
	}
	// leastLoaded returns the healthy node outside g with the fewest
	// replicas ("" if none).
	leastLoaded := func(g groupView) string {
		best := ""
		for _, h := range in.Healthy {
			if g.has(h) || in.Stopping[h] {
				continue
			}
			if best == "" || load[h] < load[best] {
				best = h
			}
		}
		return best
	}
	// removeVoter removes v, or first moves leadership off it — but only if
	// the voters left that are up keep a strict majority, so the group
	// keeps serving.
	removeVoter := func(g groupView, v, why string) {
		left, upLeft := 0, 0
		for _, o := range g.Voters {
			if o != v {
				left++
				if up[o] {
					upLeft++
				}
			}
		}
		if left == 0 || 2*upLeft <= left {
			return
		}
		if v != g.Leader {
			emit(g, adminrpc.Remove, v, why)
			return
		}
		for _, o := range g.Voters {
			if o != v && healthy[o] && !in.Stopping[o] {
				emit(g, adminrpc.Transfer, o, "move leadership off "+v+" before removing it: "+why)
				return
			}
		}
	}

	for _, g := range in.Groups {
		if !g.Committed || g.Leader == "" || stuck(g) {
			continue
		}
		// 0. A member that restarted with another Raft address: give the
		// configuration its new address (same ID and suffrage).
		for _, m := range append(slices.Clone(g.Voters), g.Nonvoters...) {
			if changed[g.ID] || !healthy[m] || m == g.Leader {
				continue
			}
			if now, was := g.Addrs[m], g.ConfigAddrs[m]; now != "" && was != "" && now != was {
				kind := adminrpc.AddVoter
				if slices.Contains(g.Nonvoters, m) {
					kind = adminrpc.AddNonvoter
				}
				emit(g, kind, m, "its Raft address changed from "+was)
			}
		}
		if changed[g.ID] {
			continue
		}
		// 1. Nonvoters: promote the caught-up, drop the unwanted.
		waiting := false
		for _, nv := range g.Nonvoters {
			if changed[g.ID] {
				break
			}
			switch {
			case bad(nv) || !healthy[nv]:
				emit(g, adminrpc.Remove, nv, "nonvoter on a node that cannot take replicas")
			default:
				if a, ok := g.Applied[nv]; ok && a+catchUpSlack >= g.Commit {
					emit(g, adminrpc.AddVoter, nv, "caught up")
				} else {
					waiting = true
				}
			}
		}
		if changed[g.ID] || waiting {
			continue
		}
		var good, gone []string
		for _, v := range g.Voters {
			if bad(v) {
				gone = append(gone, v)
			} else if healthy[v] {
				good = append(good, v)
			}
		}
		// 2. Too many voters and one of them must go: remove it.
		if len(gone) > 0 && len(g.Voters) > in.Target {
			removeVoter(g, gone[0], "its node is gone or being removed")
			continue
		}
		// 3. Too few healthy voters: add a replica (as a nonvoter first).
		if len(good) < in.Target {
			if c := leastLoaded(g); c != "" {
				emit(g, adminrpc.AddNonvoter, c, "group has fewer healthy voters than the target")
				continue
			}
			// No replacement exists: a node removed on purpose leaves
			// anyway (a dead one stays a voter until a replacement joins).
			for _, v := range gone {
				if in.Draining[v] && len(g.Voters) > 1 {
					removeVoter(g, v, "draining with no replacement available")
					break
				}
			}
			continue
		}
		// 4. More voters than the target: remove one that is down (dead,
		// not yet for DeadAfter), else the most loaded.
		if len(g.Voters) > in.Target {
			victim := ""
			for _, v := range g.Voters {
				switch {
				case victim == "":
					victim = v
				case up[victim] != up[v]:
					if !up[v] {
						victim = v
					}
				case load[v] > load[victim] || (load[v] == load[victim] && victim == g.Leader):
					victim = v
				}
			}
			removeVoter(g, victim, "more voters than the target")
			continue
		}
		// 5. Balance replicas: move one from the most loaded voter to the
		// least loaded node, if that evens them out.
		var heavy string
		for _, v := range g.Voters {
			if heavy == "" || load[v] > load[heavy] {
				heavy = v
			}
		}
		if c := leastLoaded(g); c != "" && load[heavy]-load[c] >= 2 {
			emit(g, adminrpc.AddNonvoter, c, "balance replicas: "+heavy+" holds more")
		}
	}

	// 6. Balance leaders: one transfer, from a group's leader to one of its
	// voters that leads at least two groups fewer (the widest such gap).
	// Repeated rounds reach a state where no group has such a voter.
	var best *groupView
	bestTo, bestGap := "", 1
	for i := range in.Groups {
		g := &in.Groups[i]
		if changed[g.ID] || !g.Committed || g.Leader == "" || stuck(*g) {
			continue
		}
		for _, v := range g.Voters {
			if v == g.Leader || !healthy[v] || in.Stopping[v] {
				continue
			}
			if gap := leads[g.Leader] - leads[v]; gap > bestGap || (gap == bestGap && best != nil && gap > 1 && v < bestTo) {
				best, bestTo, bestGap = g, v, gap
			}
		}
	}
	if best != nil && bestGap >= 2 {
		emit(*best, adminrpc.Transfer, bestTo, "balance leaders")
	}
	return out
}
