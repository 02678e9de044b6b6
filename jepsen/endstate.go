package jepsen

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
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
		out = append(out, check.Result{Name: "nodes-healthy", Valid: true, Summary: fmt.Sprintf("%d nodes ready", len(tb.liveNodes()))})
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
// that every block then has R verified copies, every block node answered,
// and no pass found a corrupt copy (no fault here damages disks: a corrupt
// copy is a durability bug, even once repaired). A pass that leaves blocks
// under-replicated or a node unanswered is repeated while a repair may
// still be catching up.
func blockAudit(ctx context.Context, tb *testbed) check.Result {
	const name = "block-replicas"
	var res check.Result
	corrupt := map[string]int64{} // node → corrupt copies found, over every pass
	passes := 0
	err := retry(ctx, 2*time.Minute, func() error {
		a, err := tb.admin.AuditBlocks(ctx)
		if err != nil {
			return err
		}
		passes++
		var details []string
		nodeErrs := 0
		removed := tb.removedNames()
		for _, n := range a.Nodes {
			if n.Error != "" && removed[n.Node] {
				continue // removed on purpose and killed: it holds nothing the cluster counts on
			}
			if n.Error != "" {
				nodeErrs++
				details = append(details, fmt.Sprintf("node %s: %s", n.Node, n.Error))
			}
			corrupt[n.Node] += n.Corrupt
		}
		for _, u := range a.UnderReplicated {
			details = append(details, fmt.Sprintf("block %s: %d of %d copies", u.Ref, u.Copies, a.R))
		}
		res = check.Result{Name: name, Valid: a.UnderReplicatedTotal == 0 && nodeErrs == 0 && a.Blocks > 0,
			Summary: fmt.Sprintf("%d blocks, R=%d, %d under-replicated, %d block nodes, %d did not answer (pass %d)",
				a.Blocks, a.R, a.UnderReplicatedTotal, len(a.Nodes), nodeErrs, passes), Details: details}
		if !res.Valid {
			return errors.New(res.Summary)
		}
		return nil
	})
	if err != nil && res.Name == "" {
		return check.Result{Name: name, Summary: err.Error()}
	}
	for _, node := range slices.Sorted(maps.Keys(corrupt)) {
		if c := corrupt[node]; c > 0 {
			res.Valid = false
			res.Details = append(res.Details, fmt.Sprintf("node %s held %d corrupt copies (repaired by the audit, but no fault damages disks)", node, c))
		}
	}
	return res
}

// noCrashes scans every node's log (removed nodes too) for exits the
// harness did not cause and for Go panics: restarting a crashed node must
// not hide the crash.
func noCrashes(tb *testbed) check.Result {
	const name = "no-crashes"
	var details []string
	for i := range tb.pc.Len() {
		path := tb.pc.LogPath(i)
		f, err := os.Open(path)
		if err != nil {
			details = append(details, fmt.Sprintf("%s: %v", path, err))
			continue
		}
		lines, err := crashLines(f)
		f.Close()
		if err != nil {
			details = append(details, fmt.Sprintf("%s: %v", path, err))
		}
		for _, l := range lines {
			details = append(details, fmt.Sprintf("%s: %s", filepath.Base(path), l))
		}
	}
	if len(details) > 0 {
		return check.Result{Name: name, Summary: fmt.Sprintf("%d crashes or panics in the node logs", len(details)), Details: details}
	}
	return check.Result{Name: name, Valid: true, Summary: fmt.Sprintf("%d node logs: no unexpected exit, no panic", tb.pc.Len())}
}

// crashLines returns the lines of a node log that show a crash: proc's
// marker of an exit the harness did not cause, or the start of a Go panic
// or fatal runtime error.
func crashLines(r io.Reader) ([]string, error) {
	var out []string
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 4<<20)
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "=== proc:") && strings.HasSuffix(line, "(unexpectedly)"),
			strings.HasPrefix(line, "panic:"), strings.HasPrefix(line, "fatal error:"):
			out = append(out, line)
		}
	}
	return out, sc.Err()
}
