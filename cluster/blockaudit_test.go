package cluster

import (
	"context"
	"errors"
	"slices"
	"testing"

	"github.com/coffer-dev/coffer/blockstore"
	"github.com/coffer-dev/coffer/internal/wire"
)

// listStore is an enumerator over a sorted list of refs that fails after
// failAfter refs (when > 0).
type listStore struct {
	refs      []blockstore.Ref
	failAfter int
	calls     int
}

func (s *listStore) Enumerate(ctx context.Context, from blockstore.Ref, fn func(blockstore.BlockInfo) error) error {
	s.calls++
	i, _ := slices.BinarySearchFunc(s.refs, from, func(a, b blockstore.Ref) int { return compareRefs(a, b) })
	for ; i < len(s.refs); i++ {
		if s.failAfter > 0 && i >= s.failAfter {
			return errors.New("connection reset")
		}
		if err := fn(blockstore.BlockInfo{Ref: s.refs[i]}); err != nil {
			if errors.Is(err, blockstore.ErrStop) {
				return nil
			}
			return err
		}
	}
	return ctx.Err()
}

func compareRefs(a, b blockstore.Ref) int {
	switch {
	case refLess(a, b):
		return -1
	case refLess(b, a):
		return 1
	}
	return 0
}

// refsOf returns the refs of block numbers, sorted.
func refsOf(nums ...int) []blockstore.Ref {
	var out []blockstore.Ref
	for _, n := range nums {
		out = append(out, blockstore.Sum([]byte{byte(n), byte(n >> 8), byte(n >> 16)}))
	}
	slices.SortFunc(out, compareRefs)
	return slices.Compact(out)
}

func span(from, to int) []int {
	var out []int
	for i := from; i < to; i++ {
		out = append(out, i)
	}
	return out
}

// TestMergeCounts covers page boundaries (more refs than a page), blocks
// on some nodes only, the cap on the listed blocks, a node failing half
// way and the largest ref.
func TestMergeCounts(t *testing.T) {
	ctx := context.Background()
	n := 2*auditPage + 10
	all := refsOf(span(0, n)...)
	last := blockstore.Ref{}
	for i := range last {
		last[i] = 0xff
	}
	tests := []struct {
		name       string
		nodes      [][]blockstore.Ref
		failAfter  []int
		blocks     int64
		under      int64
		perNode    []int64
		failed     []bool
		firstUnder int // copies of the first listed block
	}{
		{"all on all", [][]blockstore.Ref{all, all, all}, nil, int64(n), 0, []int64{int64(n), int64(n), int64(n)}, nil, 0},
		{"one node short", [][]blockstore.Ref{all, all, all[1:]}, nil, int64(n), 1, []int64{int64(n), int64(n), int64(n - 1)}, nil, 2},
		{"disjoint halves", [][]blockstore.Ref{all[:n/2], all[n/2:], all}, nil, int64(n), int64(n), []int64{int64(n / 2), int64(n - n/2), int64(n)}, nil, 2},
		// The page that failed is not counted.
		{"one node fails", [][]blockstore.Ref{all, all, all}, []int{0, 0, auditPage + 5}, int64(n), int64(n - auditPage),
			[]int64{int64(n), int64(n), auditPage}, []bool{false, false, true}, 2},
		{"the largest ref", [][]blockstore.Ref{{last}, {last}, append(slices.Clone(all[:3]), last)}, nil, 4, 3, []int64{1, 1, 4}, nil, 1},
		{"no blocks", [][]blockstore.Ref{nil, nil}, nil, 0, 0, []int64{0, 0}, nil, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			audit := &wire.BlockAudit{R: 3}
			var pagers []*refPager
			for i, refs := range tc.nodes {
				s := &listStore{refs: refs}
				if tc.failAfter != nil {
					s.failAfter = tc.failAfter[i]
				}
				pagers = append(pagers, &refPager{node: &auditNode{}, src: s})
			}
			if err := mergeCounts(ctx, audit, pagers); err != nil {
				t.Fatal(err)
			}
			if audit.Blocks != tc.blocks || audit.UnderReplicatedTotal != tc.under ||
				int64(len(audit.UnderReplicated)) != min(tc.under, wire.MaxAuditList) {
				t.Fatalf("blocks %d, under-replicated %d (%d listed); want %d, %d", audit.Blocks,
					audit.UnderReplicatedTotal, len(audit.UnderReplicated), tc.blocks, tc.under)
			}
			if tc.under > 0 && audit.UnderReplicated[0].Copies != tc.firstUnder {
				t.Errorf("first under-replicated %+v, want %d copies", audit.UnderReplicated[0], tc.firstUnder)
			}
			for i, p := range pagers {
				failed := tc.failed != nil && tc.failed[i]
				if p.node.Blocks != tc.perNode[i] || (len(p.node.errs) > 0) != failed {
					t.Errorf("node %d: blocks %d, errors %v; want %d, failed %v", i, p.node.Blocks, p.node.errs, tc.perNode[i], failed)
				}
			}
			if s := pagers[0].src.(*listStore); len(tc.nodes[0]) > auditPage && s.calls < 2 {
				t.Errorf("%d refs read in %d calls: pages of %d expected", len(tc.nodes[0]), s.calls, auditPage)
			}
		})
	}

	ctx, cancel := context.WithCancel(ctx)
	cancel()
	audit := &wire.BlockAudit{R: 3}
	err := mergeCounts(ctx, audit, []*refPager{{node: &auditNode{}, src: &listStore{refs: all}}})
	if !errors.Is(err, context.Canceled) {
		t.Errorf("with a cancelled ctx: %v", err)
	}
}
