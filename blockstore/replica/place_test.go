package replica

import (
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/coffer-dev/coffer/blockstore"
)

func ids(nodes []Node) []NodeID {
	out := make([]NodeID, len(nodes))
	for i, n := range nodes {
		out[i] = n.ID
	}
	return out
}

func numberedNodes(n int) []Node {
	out := make([]Node, n)
	for i := range out {
		out[i] = Node{ID: NodeID(fmt.Sprintf("node-%02d", i+1)), Addr: fmt.Sprintf("10.0.0.%d:7000", i+1)}
	}
	return out
}

func refN(i int) blockstore.Ref {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], uint64(i))
	return blockstore.Sum(b[:])
}

// TestPlaceGolden pins the hash: placement must agree across processes and
// versions, or every block would look misplaced after an upgrade. (The
// expected orders were checked against an independent implementation of
// FNV-1a-64 + splitmix64.)
func TestPlaceGolden(t *testing.T) {
	nodes := []Node{{ID: "a"}, {ID: "b"}, {ID: "c"}, {ID: "d"}, {ID: "e"}}
	for _, tc := range []struct {
		content string
		want    []NodeID
		scoreA  uint64
	}{
		{"coffer", []NodeID{"b", "d", "a", "e", "c"}, 0x9bd030c80fdc63f0},
		{"block", []NodeID{"c", "e", "d", "a", "b"}, 0x6974b471fa6714a2},
		{"", []NodeID{"b", "c", "a", "e", "d"}, 0xb0c31c041373b57d},
	} {
		ref := blockstore.Sum([]byte(tc.content))
		if got := ids(Place(ref, nodes, -1)); !slices.Equal(got, tc.want) {
			t.Errorf("Place(%q) = %v, want %v", tc.content, got, tc.want)
		}
		if got := score("a", ref); got != tc.scoreA {
			t.Errorf("score(a, %q) = %#x, want %#x", tc.content, got, tc.scoreA)
		}
	}
}

// TestPlaceProperties checks, on random node sets and refs: the result is
// a deterministic function of the set (not of input order or duplicates),
// has distinct nodes, has the requested length, and each n is a prefix of
// the full order.
func TestPlaceProperties(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for iter := range 2000 {
		size := rng.IntN(13)
		nodes := numberedNodes(size)
		ref := refN(iter)
		full := Place(ref, nodes, -1)
		if len(full) != size {
			t.Fatalf("len(Place(-1)) = %d, want %d", len(full), size)
		}
		seen := make(map[NodeID]bool)
		for _, n := range full {
			if seen[n.ID] {
				t.Fatalf("duplicate node %s in %v", n.ID, ids(full))
			}
			seen[n.ID] = true
		}
		// Input order and duplicates do not matter.
		shuffled := slices.Clone(nodes)
		if size > 0 {
			shuffled = append(shuffled, nodes[rng.IntN(size)])
		}
		rng.Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
		if got := Place(ref, shuffled, -1); !slices.Equal(got, full) {
			t.Fatalf("Place depends on input order: %v vs %v", ids(got), ids(full))
		}
		for _, n := range []int{0, 1, 2, 3, size, size + 3} {
			got := Place(ref, nodes, n)
			if want := full[:min(n, size)]; !slices.Equal(got, want) {
				t.Fatalf("Place(n=%d) = %v, want prefix %v", n, ids(got), ids(want))
			}
		}
	}
}

// TestPlaceBalance: with 10 nodes and 100k refs, each node is the first
// choice for 10% ± 1% of the refs, and among the 3 placement nodes for
// 30% ± 3%.
func TestPlaceBalance(t *testing.T) {
	const refs = 100_000
	nodes := numberedNodes(10)
	first := make(map[NodeID]int)
	inR := make(map[NodeID]int)
	for i := range refs {
		pl := Place(refN(i), nodes, 3)
		first[pl[0].ID]++
		for _, n := range pl {
			inR[n.ID]++
		}
	}
	for _, n := range nodes {
		if c := first[n.ID]; c < 9000 || c > 11000 {
			t.Errorf("node %s is first choice for %d of %d refs, want 10%% ± 10%%", n.ID, c, refs)
		}
		if c := inR[n.ID]; c < 27000 || c > 33000 {
			t.Errorf("node %s places %d of %d refs, want 30%% ± 10%%", n.ID, c, refs)
		}
	}
}

// TestPlaceMinimalMovement: adding a node changes the R-set only of refs
// whose new R-set includes it (the rest keep their order too); removing a
// node changes only the refs that had it.
func TestPlaceMinimalMovement(t *testing.T) {
	const refs, R = 20_000, 3
	nodes := numberedNodes(11)
	ten, eleven := nodes[:10], nodes
	added := nodes[10].ID
	moved := 0
	for i := range refs {
		ref := refN(i)
		before, after := Place(ref, ten, R), Place(ref, eleven, R)
		k := nodeIndex(after, added)
		if k < 0 {
			if !slices.Equal(before, after) {
				t.Fatalf("ref %d: R-set changed without the new node: %v -> %v", i, ids(before), ids(after))
			}
			continue
		}
		moved++
		// The new node took one slot; the others keep their relative order.
		rest := slices.Delete(slices.Clone(after), k, k+1)
		if !slices.Equal(rest, before[:R-1]) {
			t.Fatalf("ref %d: %v -> %v moves more than the new node", i, ids(before), ids(after))
		}
	}
	// The new node takes about R/11 of the placements.
	if lo, hi := refs*R/11*8/10, refs*R/11*12/10; moved < lo || moved > hi {
		t.Errorf("adding a node moved %d of %d refs, want about %d", moved, refs, refs*R/11)
	}

	// Remove node-04 from the ten.
	removed := ten[3].ID
	nine := slices.Delete(slices.Clone(ten), 3, 4)
	changed := 0
	for i := range refs {
		ref := refN(i)
		before, after := Place(ref, ten, R), Place(ref, nine, R)
		k := nodeIndex(before, removed)
		if k < 0 {
			if !slices.Equal(before, after) {
				t.Fatalf("ref %d: R-set changed though it did not hold the removed node: %v -> %v", i, ids(before), ids(after))
			}
			continue
		}
		changed++
		rest := slices.Delete(slices.Clone(before), k, k+1)
		if !slices.Equal(after[:R-1], rest) {
			t.Fatalf("ref %d: %v -> %v moves more than the removed node's copy", i, ids(before), ids(after))
		}
	}
	if changed == 0 {
		t.Error("removing a node changed no placement")
	}
}
