package blocktest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/coffer-dev/coffer/blockstore"
)

// enumerateBlocks is how many blocks the Enumerate cases store: enough
// that an implementation walking in pages crosses at least one page
// boundary for page sizes up to 1024.
const enumerateBlocks = 1100

// fillForEnumerate stores enumerateBlocks small blocks of varied sizes, in
// groups with different StoredAt, and returns their refs in Enumerate order.
func fillForEnumerate(f *fixture) []blockstore.Ref {
	f.t.Helper()
	const groups = 4
	for g := range groups {
		f.clock.Advance(time.Second + time.Duration(g)*time.Nanosecond)
		batch := make(map[blockstore.Ref][]byte)
		for len(batch) < enumerateBlocks/groups {
			ref, data := f.block(f.rng.IntN(300))
			if _, dup := f.model[ref]; !dup {
				batch[ref] = data
			}
		}
		f.putConcurrently(batch)
	}
	refs := f.modelRefs()
	if len(refs) != enumerateBlocks {
		f.t.Fatalf("stored %d distinct blocks, want %d", len(refs), enumerateBlocks)
	}
	return refs
}

// putConcurrently puts the blocks from a few goroutines (a durable store
// can then share fsyncs) and records them in the model.
func (f *fixture) putConcurrently(blocks map[blockstore.Ref][]byte) {
	f.t.Helper()
	work := make(chan blockstore.Ref)
	var wg sync.WaitGroup
	errs := make(chan error, len(blocks))
	for range 8 {
		wg.Go(func() {
			for ref := range work {
				if err := f.store.Put(f.ctx, ref, blocks[ref]); err != nil {
					errs <- err
				}
			}
		})
	}
	for ref := range blocks {
		work <- ref
	}
	close(work)
	f.wait(&wg, "concurrent Puts")
	close(errs)
	for err := range errs {
		f.t.Fatalf("Put: %v", err)
	}
	now := f.clock.Now()
	for ref, data := range blocks {
		f.model[ref] = modelBlock{data: data, storedAt: now}
	}
}

// testEnumerate: Enumerate visits every block once, in ascending Ref order,
// from the first Ref >= from, with the right Size and StoredAt, and stops as
// the contract says.
func testEnumerate(t *testing.T, open opener) {
	f := newFixture(t, open, testMaxBlockSize)
	if infos := f.enumerate(blockstore.Ref{}); len(infos) != 0 {
		t.Fatalf("Enumerate of an empty store visited %d blocks", len(infos))
	}
	refs := fillForEnumerate(f)

	t.Run("All", func(t *testing.T) {
		f := f.sub(t)
		f.checkInfos("Enumerate(zero Ref)", f.enumerate(blockstore.Ref{}), refs)
	})
	t.Run("FromStoredRef", func(t *testing.T) {
		f := f.sub(t)
		for _, i := range []int{0, 1, 57, 199, 200, 511, 512, 1023, 1024, enumerateBlocks - 1} {
			f.checkInfos("Enumerate(from a stored ref)", f.enumerate(refs[i]), refs[i:])
		}
	})
	t.Run("FromBetween", func(t *testing.T) {
		f := f.sub(t)
		for _, i := range []int{0, 99, 199, 511, 1023, enumerateBlocks - 2} {
			between, ok := refs[i].Next()
			if !ok || between == refs[i+1] {
				t.Fatalf("refs %d and %d are adjacent", i, i+1)
			}
			f.checkInfos("Enumerate(from a ref between two stored ones)", f.enumerate(between), refs[i+1:])
		}
		before, _ := blockstore.Ref{}.Next()
		if before != refs[0] {
			f.checkInfos("Enumerate(from 00..01)", f.enumerate(before), refs)
		}
	})
	t.Run("FromPastEnd", func(t *testing.T) {
		f := f.sub(t)
		var last blockstore.Ref
		for i := range last {
			last[i] = 0xff
		}
		want := []blockstore.Ref{}
		if refs[len(refs)-1] == last {
			want = refs[len(refs)-1:]
		}
		f.checkInfos("Enumerate(from ff..ff)", f.enumerate(last), want)
		after, _ := refs[len(refs)-1].Next()
		f.checkInfos("Enumerate(from after the last block)", f.enumerate(after), nil)
	})
	t.Run("Stop", func(t *testing.T) {
		for _, n := range []int{1, 10, 200, 1024, 1025, enumerateBlocks} {
			var seen []blockstore.Ref
			err := f.store.Enumerate(f.ctx, blockstore.Ref{}, func(bi blockstore.BlockInfo) error {
				seen = append(seen, bi.Ref)
				if len(seen) == n {
					return blockstore.ErrStop
				}
				return nil
			})
			if err != nil {
				t.Fatalf("Enumerate with a callback returning ErrStop after %d blocks = %v, want nil", n, err)
			}
			if len(seen) != n {
				t.Fatalf("callback returned ErrStop at block %d but was called %d times", n, len(seen))
			}
			for i := range seen {
				if seen[i] != refs[i] {
					t.Fatalf("block %d is %s, want %s", i, seen[i].Short(), refs[i].Short())
				}
			}
		}
	})
	t.Run("CallbackError", func(t *testing.T) {
		errBoom := errors.New("boom")
		calls := 0
		err := f.store.Enumerate(f.ctx, blockstore.Ref{}, func(blockstore.BlockInfo) error {
			calls++
			if calls == 5 {
				return errBoom
			}
			return nil
		})
		if !errors.Is(err, errBoom) {
			t.Fatalf("Enumerate with a callback failing = %v, want the callback's error", err)
		}
		if calls != 5 {
			t.Fatalf("callback failed on call 5 but was called %d times", calls)
		}
	})
	t.Run("NilCallback", func(t *testing.T) {
		if err := f.store.Enumerate(f.ctx, blockstore.Ref{}, nil); !errors.Is(err, blockstore.ErrInvalidArgument) {
			t.Fatalf("Enumerate(nil callback) = %v, want ErrInvalidArgument", err)
		}
	})
	t.Run("Cancelled", func(t *testing.T) {
		ctx, cancel := context.WithCancel(f.ctx)
		cancel()
		calls := 0
		err := f.store.Enumerate(ctx, blockstore.Ref{}, func(blockstore.BlockInfo) error { calls++; return nil })
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("Enumerate(cancelled ctx) = %v, want context.Canceled", err)
		}
		if calls != 0 {
			t.Fatalf("Enumerate(cancelled ctx) called the callback %d times", calls)
		}
	})
	t.Run("CancelledDuringWalk", func(t *testing.T) {
		// Stricter reading of "until ... ctx is done": once ctx is done the
		// callback is not called again.
		ctx, cancel := context.WithCancel(f.ctx)
		defer cancel()
		calls := 0
		err := f.store.Enumerate(ctx, blockstore.Ref{}, func(blockstore.BlockInfo) error {
			calls++
			if calls == 3 {
				cancel()
			}
			return nil
		})
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("Enumerate with ctx cancelled during the walk = %v, want context.Canceled", err)
		}
		if calls != 3 {
			t.Fatalf("callback cancelled ctx on call 3 but was called %d times", calls)
		}
	})
	// None of that changed the store.
	f.checkContents()
}

// sub returns a copy of f that reports to the subtest t.
func (f *fixture) sub(t *testing.T) *fixture {
	g := *f
	g.t = t
	return &g
}

// testEnumerateWhileMutating: the callback may Delete and Put (as a garbage
// collector does) without deadlocking; blocks not touched are still visited
// exactly once, in order. (Stricter reading: "blocks put or deleted during
// the walk" includes those changed by the callback itself.)
func testEnumerateWhileMutating(t *testing.T, open opener) {
	f := newFixture(t, open, testMaxBlockSize)
	refs := fillForEnumerate(f)
	f.clock.Advance(time.Minute)
	cutoff := f.clock.Now()

	type added struct {
		ref  blockstore.Ref
		data []byte
	}
	var (
		seen         []blockstore.Ref
		deleted      = make(map[blockstore.Ref]bool) // by the callback
		deletedAhead = make(map[blockstore.Ref]bool) // deleted before being visited
		puts         []added
	)
	newBlocks := make([]added, 0, enumerateBlocks)
	for range enumerateBlocks / 10 {
		ref, data := f.block(1 + f.rng.IntN(100)) // never one of the stored blocks
		newBlocks = append(newBlocks, added{ref, data})
	}
	var wg sync.WaitGroup
	var walkErr error
	wg.Go(func() {
		walkErr = f.store.Enumerate(f.ctx, blockstore.Ref{}, func(bi blockstore.BlockInfo) error {
			i := len(seen)
			seen = append(seen, bi.Ref)
			if _, orig := f.model[bi.Ref]; orig && !deleted[bi.Ref] && i%2 == 0 {
				ok, err := f.store.Delete(f.ctx, bi.Ref, cutoff)
				if err != nil || !ok {
					return fmt.Errorf("Delete(%s) of the visited block in the callback = %v, %v; want true, nil", bi.Ref.Short(), ok, err)
				}
				deleted[bi.Ref] = true
			}
			if i%7 == 3 {
				// Delete the next original block, not visited yet.
				j, found := slices.BinarySearchFunc(refs, bi.Ref, compareRefs)
				if found {
					j++
				}
				if j < len(refs) && !deleted[refs[j]] {
					ok, err := f.store.Delete(f.ctx, refs[j], cutoff)
					if err != nil || !ok {
						return fmt.Errorf("Delete(%s) of a block not visited yet in the callback = %v, %v; want true, nil", refs[j].Short(), ok, err)
					}
					deleted[refs[j]], deletedAhead[refs[j]] = true, true
				}
			}
			if i%10 == 5 && len(puts) < len(newBlocks) {
				nb := newBlocks[len(puts)]
				if err := f.store.Put(f.ctx, nb.ref, nb.data); err != nil {
					return err
				}
				puts = append(puts, nb)
			}
			if _, err := f.store.Get(f.ctx, bi.Ref); err != nil && !(deleted[bi.Ref] && errors.Is(err, blockstore.ErrNotFound)) {
				return err
			}
			return nil
		})
	})
	f.wait(&wg, "Enumerate whose callback calls Delete, Put and Get")
	if walkErr != nil {
		t.Fatalf("Enumerate whose callback calls Delete, Put and Get: %v", walkErr)
	}

	// Every visit in order, once; every original block not deleted ahead
	// visited; new blocks and blocks deleted ahead may or may not be seen.
	isNew := make(map[blockstore.Ref]bool)
	for _, nb := range puts {
		isNew[nb.ref] = true
	}
	for i := range seen {
		if i > 0 && compareRefs(seen[i-1], seen[i]) >= 0 {
			t.Fatalf("visit %d (%s) does not come after visit %d (%s)", i, seen[i].Short(), i-1, seen[i-1].Short())
		}
	}
	visited := make(map[blockstore.Ref]bool)
	for _, r := range seen {
		visited[r] = true
		if _, orig := f.model[r]; !orig && !isNew[r] {
			t.Fatalf("visited %s, which was never stored", r.Short())
		}
	}
	for _, r := range refs {
		if !visited[r] && !deletedAhead[r] {
			t.Fatalf("block %s, stored and not deleted before its turn, was not visited", r.Short())
		}
	}
	if len(deleted) == 0 || len(puts) == 0 {
		t.Fatalf("the callback deleted %d and put %d blocks; the case needs both", len(deleted), len(puts))
	}

	for r := range deleted {
		delete(f.model, r)
	}
	now := f.clock.Now()
	for _, nb := range puts {
		f.model[nb.ref] = modelBlock{data: nb.data, storedAt: now}
	}
	f.checkContents()
}
