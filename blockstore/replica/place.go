package replica

import (
	"cmp"
	"slices"

	"github.com/coffer-dev/coffer/blockstore"
)

// Place returns the nodes that should hold ref, in preference order, by
// rendezvous (highest random weight) hashing: each node scores
// splitmix64(FNV-1a-64(nodeID || ref)) and nodes are sorted by score,
// highest first, ties broken by ID. The result depends only on ref and the
// set of node IDs (not on the order of nodes, and not on the process), so
// adding a node moves only the blocks whose placement now includes it, and
// removing one moves only the blocks it held.
//
// It returns the first n nodes; all of them, in order, when n < 0 or
// n >= the number of distinct nodes (reads use the full order to fall
// back). Nodes with a duplicate ID are ignored after the first.
func Place(ref blockstore.Ref, nodes []Node, n int) []Node {
	type scored struct {
		node  Node
		score uint64
	}
	ss := make([]scored, 0, len(nodes))
	for _, nd := range nodes {
		ss = append(ss, scored{nd, score(nd.ID, ref)})
	}
	slices.SortFunc(ss, func(a, b scored) int {
		if c := cmp.Compare(b.score, a.score); c != 0 {
			return c
		}
		return cmp.Compare(a.node.ID, b.node.ID)
	})
	// Equal IDs score equally, so duplicates are adjacent.
	ss = slices.CompactFunc(ss, func(a, b scored) bool { return a.node.ID == b.node.ID })
	if n < 0 || n > len(ss) {
		n = len(ss)
	}
	out := make([]Node, n)
	for i := range out {
		out[i] = ss[i].node
	}
	return out
}

const (
	fnvOffset64 = 14695981039346656037
	fnvPrime64  = 1099511628211
)

// score is the rendezvous weight of node id for ref.
func score(id NodeID, ref blockstore.Ref) uint64 {
	h := uint64(fnvOffset64)
	for i := 0; i < len(id); i++ {
		h ^= uint64(id[i])
		h *= fnvPrime64
	}
	for _, b := range ref {
		h ^= uint64(b)
		h *= fnvPrime64
	}
	return splitmix64(h)
}

// splitmix64 is the finalizer of the SplitMix64 generator: a bijection that
// spreads every input bit over the whole output.
func splitmix64(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9
	x = (x ^ (x >> 27)) * 0x94d049bb133111eb
	return x ^ (x >> 31)
}
