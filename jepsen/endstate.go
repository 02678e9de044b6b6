package jepsen

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/coffer-dev/coffer/jepsen/check"
)

// endState checks the healed cluster: every live node ready, the replicas
// of every group identical, every block with R verified copies.
func endState(ctx context.Context, tb *testbed) []check.Result {
	var out []check.Result
	if err := tb.waitHealthy(ctx, 60*time.Second); err != nil {
		out = append(out, check.Result{Name: "nodes-healthy", Summary: err.Error()})
	} else {
		out = append(out, check.Result{Name: "nodes-healthy", Valid: true, Summary: fmt.Sprintf("%d nodes ready", len(tb.live))})
	}
	out = append(out, replicaHashes(ctx, tb))
	out = append(out, blockAudit(ctx, tb))
	return out
}

// replicaHashes waits, per group, until every replica reports the same
// applied index (the cluster is quiet; followers may lag by a heartbeat),
// then compares their state hashes.
func replicaHashes(ctx context.Context, tb *testbed) check.Result {
	hashes := map[string]map[string]string{}
	var problems []string
	for g := 0; g <= tb.shards; g++ {
		var got map[string]string
		err := retry(ctx, 60*time.Second, func() error {
			gh, err := tb.admin.GroupHashes(ctx, uint64(g))
			if err != nil {
				return err
			}
			got = map[string]string{}
			var applied uint64
			for i, r := range gh.Replicas {
				if r.Error != "" {
					return fmt.Errorf("group %d: %s: %s", g, r.Node, r.Error)
				}
				if i > 0 && r.Applied != applied {
					return fmt.Errorf("group %d: replicas at different applied indexes", g)
				}
				applied = r.Applied
				got[r.Node] = r.StateHash
			}
			if len(got) < 3 {
				return fmt.Errorf("group %d: %d replicas", g, len(got))
			}
			return nil
		})
		if err != nil {
			problems = append(problems, err.Error())
		}
		if got != nil {
			hashes["group "+strconv.Itoa(g)] = got
		}
	}
	r := check.Replicas(hashes)
	if len(problems) > 0 {
		r.Valid = false
		r.Details = append(problems, r.Details...)
	}
	return r
}

// blockAudit has every block node scrub and repair its blocks and checks
// that every block then has R verified copies.
func blockAudit(ctx context.Context, tb *testbed) check.Result {
	const name = "block-replicas"
	var res check.Result
	err := retry(ctx, 2*time.Minute, func() error {
		a, err := tb.admin.AuditBlocks(ctx)
		if err != nil {
			return err
		}
		var details []string
		for _, n := range a.Nodes {
			if n.Error != "" {
				details = append(details, fmt.Sprintf("node %s: %s", n.Node, n.Error))
			}
			if n.Corrupt > 0 {
				details = append(details, fmt.Sprintf("node %s had %d corrupt copies (repaired)", n.Node, n.Corrupt))
			}
		}
		for _, u := range a.UnderReplicated {
			details = append(details, fmt.Sprintf("block %s: %d of %d copies", u.Ref, u.Copies, a.R))
		}
		res = check.Result{Name: name, Valid: a.UnderReplicatedTotal == 0 && a.Blocks > 0,
			Summary: fmt.Sprintf("%d blocks, R=%d, %d under-replicated", a.Blocks, a.R, a.UnderReplicatedTotal), Details: details}
		if !res.Valid {
			return fmt.Errorf("%s", res.Summary) // a repair may still be catching up: audit again
		}
		return nil
	})
	if err != nil && res.Name == "" {
		return check.Result{Name: name, Summary: err.Error()}
	}
	return res
}
