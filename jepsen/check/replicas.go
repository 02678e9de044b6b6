package check

import (
	"fmt"
	"strings"
)

// Replicas checks that all replicas of each group hold the same state.
// hashes maps a group (a Raft group, a block set) to its nodes' state
// hashes: group → node → hash. A node without a hash ("") or a group
// without nodes is a problem; no groups at all is invalid (nothing was
// compared).
func Replicas(hashes map[string]map[string]string) Result {
	const name = "replicas"
	var p problems
	if len(hashes) == 0 {
		p.add("no groups given")
		return p.result(name, "not checked")
	}
	agree, nodes := 0, 0
	for _, g := range sortedKeys(hashes) {
		byHash := map[string][]string{} // hash → nodes holding it
		for _, n := range sortedKeys(hashes[g]) {
			nodes++
			h := hashes[g][n]
			if h == "" {
				p.add("group %s: node %s reported no state hash", g, n)
				continue
			}
			byHash[h] = append(byHash[h], n)
		}
		switch {
		case len(hashes[g]) == 0:
			p.add("group %s: no replicas reported", g)
		case len(byHash) > 1:
			var parts []string
			for _, h := range sortedKeys(byHash) {
				parts = append(parts, fmt.Sprintf("%s on %s", h, strings.Join(byHash[h], ", ")))
			}
			p.add("group %s: replicas disagree: %s", g, strings.Join(parts, "; "))
		case len(byHash) == 1 && len(byHash[sortedKeys(byHash)[0]]) == len(hashes[g]):
			agree++
		}
	}
	return p.result(name, fmt.Sprintf("%d groups, %d replicas: %d groups identical", len(hashes), nodes, agree))
}

// BlockReplicas checks that every block has at least r verified replicas.
// counts maps a block reference to its number of verified replicas. r
// below 1, or no blocks, is invalid.
func BlockReplicas(counts map[string]int, r int) Result {
	const name = "block-replicas"
	var p problems
	if r < 1 {
		p.add("%v: r is %d, want at least 1", ErrInvalidOptions, r)
		return p.result(name, "not checked")
	}
	if len(counts) == 0 {
		p.add("no blocks given")
		return p.result(name, "not checked")
	}
	under := 0
	for _, ref := range sortedKeys(counts) {
		if n := counts[ref]; n < r {
			under++
			p.add("block %s has %d verified %s, want %d", ref, n, plural(n, "replica", "replicas"), r)
		}
	}
	return p.result(name, fmt.Sprintf("%d blocks, %d with fewer than %d verified replicas", len(counts), under, r))
}
