package jepsen

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"
	"strings"
	"time"

	"github.com/coffer-dev/coffer/cluster"
	"github.com/coffer-dev/coffer/jepsen/history"
	"github.com/coffer-dev/coffer/jepsen/netns"
)

// nemesis injects the scenario's faults on a seeded schedule and heals
// each after a bounded hold.
type nemesis struct {
	tb    *testbed
	rng   *rand.Rand
	tl    *history.Timeline
	log   *slog.Logger
	kinds []string
	// membersDone: the one member change of a run has happened.
	membersDone bool
	// skipped counts faults that could not be injected (e.g. no leader
	// known), by kind.
	skipped map[string]int
	// failures are faults that were not healed and member changes that
	// did not complete: each fails the run.
	failures []string
}

// Hold and gap bounds.
const (
	minHold = 3 * time.Second
	maxHold = 6 * time.Second
	minGap  = 1 * time.Second
	maxGap  = 3 * time.Second
)

func (n *nemesis) between(lo, hi time.Duration) time.Duration {
	return lo + time.Duration(n.rng.Int64N(int64(hi-lo)+1))
}

// run injects faults until the deadline: the kinds in a shuffled round,
// then another round, and so on. A fault is never started after the
// deadline, and every fault is healed before run returns. A fault that
// could not be injected (nothing changed) is counted in skipped and its
// kind tried again at the end of the round; a fault that could not be
// healed stops the nemesis after a full heal is tried, and is a failure.
func (n *nemesis) run(ctx context.Context, until time.Time) {
	var round []string
	retried := map[string]bool{}
	for {
		gap := n.between(minGap, maxGap)
		if time.Now().Add(gap + minHold).After(until) {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(gap):
		}
		if len(round) == 0 {
			round = slices.DeleteFunc(slices.Clone(n.kinds), func(k string) bool { return k == FaultMembers && n.membersDone })
			n.rng.Shuffle(len(round), func(i, j int) { round[i], round[j] = round[j], round[i] })
			clear(retried)
		}
		if len(round) == 0 {
			continue // only a member change was left, and it happened
		}
		kind := round[0]
		round = round[1:]
		hold := min(n.between(minHold, maxHold), time.Until(until))
		injected, err := n.inject(ctx, kind, hold)
		switch {
		case err == nil:
		case !injected:
			n.log.Warn("fault not injected", "kind", kind, "err", err)
			n.skipped[kind]++
			if !retried[kind] {
				retried[kind] = true
				round = append(round, kind)
			}
		default:
			n.log.Error("fault not healed; healing everything and stopping the nemesis", "kind", kind, "err", err)
			n.failures = append(n.failures, fmt.Sprintf("%s: %v", kind, err))
			healCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 3*time.Minute)
			if herr := heal(healCtx, n.tb); herr != nil {
				n.failures = append(n.failures, "full heal: "+herr.Error())
			}
			cancel()
			return
		}
	}
}

// hold waits d or until ctx ends.
func hold(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}

// inject runs one fault of kind for about d and heals it. injected is
// false when the fault did not happen (nothing changed); an error with
// injected true is a fault that was not healed. The timeline gets the
// fault once it is in place. Healing uses a context of its own: it must
// happen even when the run is ending.
func (n *nemesis) inject(ctx context.Context, kind string, d time.Duration) (injected bool, err error) {
	tb := n.tb
	heal, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Minute)
	defer cancel()
	name := func(i int) string { return tb.pc.Spec(i).Name }
	live := tb.liveNodes()
	pick := func() int { return live[n.rng.IntN(len(live))] }
	switch kind {
	case FaultKill, FaultKillLeader:
		i := pick()
		desc := "SIGKILL " + name(i)
		if kind == FaultKillLeader {
			g, leader, err := n.leaderOfShard(ctx, live)
			if err != nil {
				return false, err
			}
			i, desc = leader, fmt.Sprintf("SIGKILL %s, leader of shard %d", name(leader), g)
		}
		if err := tb.pc.Kill(i); err != nil {
			return false, err
		}
		f := n.tl.Begin(kind, desc, name(i))
		n.log.Info("fault", "kind", kind, "what", desc, "hold", d)
		hold(ctx, d)
		err := tb.pc.Restart(heal, i)
		f.End()
		return true, err
	case FaultPause:
		i := pick()
		if err := tb.pc.Stop(i); err != nil {
			return false, err
		}
		f := n.tl.Begin(kind, "SIGSTOP "+name(i), name(i))
		n.log.Info("fault", "kind", kind, "node", name(i), "hold", d)
		hold(ctx, d)
		err := tb.pc.Cont(i)
		f.End()
		return true, err
	case FaultIsolate, FaultMajority, FaultBridge:
		g, desc, targets := n.grudge(kind, live)
		if err := tb.net.Partition(heal, g); err != nil {
			return false, errors.Join(err, tb.net.Heal(heal))
		}
		f := n.tl.Begin(kind, desc, targets...)
		n.log.Info("fault", "kind", kind, "what", desc, "hold", d)
		hold(ctx, d)
		err := tb.net.Heal(heal)
		f.End()
		return true, err
	case FaultSlow, FaultLossy:
		i := pick()
		var desc string
		var err error
		if kind == FaultSlow {
			delay, jitter := n.between(50*time.Millisecond, 300*time.Millisecond), 20*time.Millisecond
			desc = fmt.Sprintf("packets %s sends delayed %v ± %v", name(i), delay.Round(time.Millisecond), jitter)
			err = tb.net.Slow(heal, tb.hostOf(i), delay, jitter)
		} else {
			loss := float64(10 + n.rng.IntN(30))
			desc = fmt.Sprintf("%.0f%% of the packets %s sends dropped", loss, name(i))
			err = tb.net.Lossy(heal, tb.hostOf(i), loss)
		}
		if err != nil {
			return false, errors.Join(err, tb.net.ClearLinks(heal))
		}
		f := n.tl.Begin(kind, desc, name(i))
		n.log.Info("fault", "kind", kind, "what", desc, "hold", d)
		hold(ctx, d)
		err = tb.net.ClearLinks(heal)
		f.End()
		return true, err
	case FaultTransfer:
		g := uint64(n.rng.IntN(tb.shards + 1))
		res, err := tb.admin.TransferLeader(ctx, g, "")
		if err != nil {
			return false, err
		}
		n.tl.Begin(kind, fmt.Sprintf("leadership of group %d moved from %s to %s", g, res.Previous, res.Leader), res.Previous, res.Leader).End()
		n.log.Info("fault", "kind", kind, "group", g, "from", res.Previous, "to", res.Leader)
		hold(ctx, d)
		return true, nil
	case FaultMembers:
		if n.membersDone {
			return false, errors.New("once per run: a second one would need another spare host")
		}
		n.membersDone = true
		return n.memberChange(ctx, heal)
	}
	return false, fmt.Errorf("unknown fault %q", kind)
}

// leaderOfShard picks a random shard and returns it and its leader's index.
func (n *nemesis) leaderOfShard(ctx context.Context, live []int) (uint64, int, error) {
	st, err := n.tb.admin.ClusterStatus(ctx)
	if err != nil {
		return 0, 0, err
	}
	g := uint64(1 + n.rng.IntN(n.tb.shards))
	for _, gs := range st.Groups {
		if gs.ID != g {
			continue
		}
		for _, i := range live {
			if n.tb.pc.Spec(i).Name == gs.Leader {
				return g, i, nil
			}
		}
		return 0, 0, fmt.Errorf("shard %d: leader %q is not a live node", g, gs.Leader)
	}
	return 0, 0, fmt.Errorf("shard %d not in the cluster status", g)
}

// grudge builds a partition of the live nodes' hosts.
func (n *nemesis) grudge(kind string, live []int) (netns.Grudge, string, []string) {
	return partition(kind, live, n.tb.hostMap(), func(i int) string { return n.tb.pc.Spec(i).Name }, n.rng)
}

// partition cuts the nodes (indices; host maps them to network hosts)
// into the sides of kind, shuffled by rng, and returns the grudge, a
// description and the nodes involved.
func partition(kind string, live []int, host map[int]int, name func(int) string, rng *rand.Rand) (netns.Grudge, string, []string) {
	nodes := slices.Clone(live)
	rng.Shuffle(len(nodes), func(i, j int) { nodes[i], nodes[j] = nodes[j], nodes[i] })
	names := func(ix []int) []string {
		var s []string
		for _, i := range ix {
			s = append(s, name(i))
		}
		return s
	}
	g := netns.Grudge{}
	cut := func(a, b []int) {
		for _, x := range a {
			for _, y := range b {
				g[host[x]] = append(g[host[x]], host[y])
				g[host[y]] = append(g[host[y]], host[x])
			}
		}
	}
	switch kind {
	case FaultIsolate:
		cut(nodes[:1], nodes[1:])
		return g, name(nodes[0]) + " isolated", names(nodes[:1])
	case FaultMajority:
		k := len(nodes)/2 + 1
		cut(nodes[:k], nodes[k:])
		return g, fmt.Sprintf("majority %s | minority %s", strings.Join(names(nodes[:k]), ","), strings.Join(names(nodes[k:]), ",")),
			names(nodes)
	default: // bridge: the first node sees both halves of the rest
		rest := nodes[1:]
		h := len(rest) / 2
		cut(rest[:h], rest[h:])
		return g, fmt.Sprintf("%s | %s, bridged by %s", strings.Join(names(rest[:h]), ","), strings.Join(names(rest[h:]), ","),
			name(nodes[0])), names(nodes)
	}
}

// memberChange adds the spare node, marks a random old node for removal
// through the admin API, waits until it is drained (no group lists it and
// every group has 3 voters), then kills it. Once the spare has started,
// any failure is a failure of the run (injected is true).
func (n *nemesis) memberChange(ctx, heal context.Context) (injected bool, err error) {
	tb := n.tb
	live := tb.liveNodes()
	victim := live[n.rng.IntN(len(live))]
	vname := tb.pc.Spec(victim).Name
	spare := tb.spare
	spare.BootstrapExpect = 0
	i, err := tb.pc.Add(heal, spare)
	if err != nil {
		return true, fmt.Errorf("adding %s: %w", spare.Name, err)
	}
	f := n.tl.Begin(FaultMembers, fmt.Sprintf("%s joins, then %s is removed", tb.spare.Name, vname), tb.spare.Name, vname)
	defer f.End()
	n.log.Info("fault", "kind", FaultMembers, "add", tb.spare.Name, "remove", vname)
	tb.addLive(i, tb.spareHost)
	res, err := tb.admin.RemoveNode(heal, vname)
	if err != nil {
		return true, fmt.Errorf("removing %s: %w", vname, err)
	}
	n.log.Info("node marked for removal", "node", vname, "state", res.State)
	err = retry(heal, 2*time.Minute, func() error {
		st, err := tb.admin.ClusterStatus(heal)
		if err != nil {
			return err
		}
		for _, g := range st.Groups {
			for _, r := range g.Replicas {
				if r.Node == vname {
					return fmt.Errorf("group %d still has a replica on %s", g.ID, vname)
				}
			}
		}
		return cluster.CheckFormed(st, 3)
	})
	if err != nil {
		return true, fmt.Errorf("draining %s: %w", vname, err)
	}
	if err := tb.pc.Remove(victim); err != nil { // kills it
		return true, err
	}
	tb.removeLive(victim)
	return true, nil
}
