package gc

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/coffer-dev/coffer/blockstore"
	"github.com/coffer-dev/coffer/blockstore/blocktest"
	"github.com/coffer-dev/coffer/blockstore/memstore"
)

// clock is the conformance suite's manual clock.
type clock = blocktest.Clock

func newClock() *clock { return blocktest.NewClock(time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)) }

func newStore(t testing.TB, clk *clock) *memstore.Store {
	t.Helper()
	s, err := memstore.New(memstore.Config{Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// blockData returns distinct contents of a size that depends on i.
func blockData(tag string, i int) []byte {
	b := fmt.Appendf(nil, "%s-%d|", tag, i)
	for len(b) < 10+i%97 {
		b = append(b, byte(i))
	}
	return b
}

// put stores data and returns its ref.
func put(t testing.TB, s blockstore.Store, data []byte) blockstore.Ref {
	t.Helper()
	ref := blockstore.Sum(data)
	if err := s.Put(context.Background(), ref, data); err != nil {
		t.Fatalf("Put: %v", err)
	}
	return ref
}

// has reports whether s stores ref.
func has(t testing.TB, s blockstore.Store, ref blockstore.Ref) bool {
	t.Helper()
	ok, err := s.Has(context.Background(), []blockstore.Ref{ref})
	if err != nil {
		t.Fatalf("Has: %v", err)
	}
	return ok[0]
}

// count returns the number of blocks s stores.
func count(t testing.TB, s blockstore.Store) int64 {
	t.Helper()
	st, err := s.Stats(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return st.Blocks
}

// hookStore wraps a store with test hooks.
type hookStore struct {
	blockstore.Store
	// onSee runs in the Enumerate callback, before the collector sees bi.
	onSee func(bi blockstore.BlockInfo)
	// onDelete runs instead of Delete when set; it may call next.
	onDelete func(ctx context.Context, ref blockstore.Ref, before time.Time, next func() (bool, error)) (bool, error)
}

func (h *hookStore) Enumerate(ctx context.Context, from blockstore.Ref, fn func(blockstore.BlockInfo) error) error {
	return h.Store.Enumerate(ctx, from, func(bi blockstore.BlockInfo) error {
		if h.onSee != nil {
			h.onSee(bi)
		}
		return fn(bi)
	})
}

func (h *hookStore) Delete(ctx context.Context, ref blockstore.Ref, before time.Time) (bool, error) {
	next := func() (bool, error) { return h.Store.Delete(ctx, ref, before) }
	if h.onDelete != nil {
		return h.onDelete(ctx, ref, before, next)
	}
	return next()
}
