package blocktest

import (
	"slices"
	"testing"

	"github.com/coffer-dev/coffer/blockstore"
)

// testCorruption: a copy that fails verification is never returned; it is
// counted, reported to OnCorrupt and dropped (Has false, Get ErrNotFound,
// Blocks and Bytes no longer count it, Enumerate skips it), other blocks are
// unaffected, and a re-Put stores it again.
func testCorruption(t *testing.T, open opener) {
	f := newFixture(t, open, testMaxBlockSize)
	if f.h.Corrupt == nil {
		t.Skip("Harness.Corrupt is nil: the implementation cannot corrupt a block")
	}
	f.expectCorrupt = true
	a, dataA := f.putNew(1000)
	b, dataB := f.putNew(1)
	c, dataC := f.putNew(f.max)
	for range 5 {
		f.putNew(1 + f.rng.IntN(3000))
	}
	f.putNew(0)

	var corrupted []blockstore.Ref
	for _, blk := range []struct {
		ref  blockstore.Ref
		data []byte
	}{{a, dataA}, {b, dataB}, {c, dataC}} {
		before := f.stats()
		f.h.Corrupt(t, blk.ref)
		// Stricter reading of "verified on every read": a damaged copy is
		// detected by the first Get after the damage, not by a later scrub.
		f.getFails(f.ctx, blk.ref, blockstore.ErrCorrupt)
		corrupted = append(corrupted, blk.ref)
		delete(f.model, blk.ref)
		if !f.corrupt.waitFor(blk.ref, waitTimeout) {
			t.Fatalf("OnCorrupt was not called with %s within %v", blk.ref.Short(), waitTimeout)
		}
		st := f.stats()
		if st.Corrupt != before.Corrupt+1 {
			t.Fatalf("Stats.Corrupt = %d after one corrupt read, was %d", st.Corrupt, before.Corrupt)
		}
		if f.has(blk.ref)[0] {
			t.Fatalf("Has(%s) = true after its copy was found corrupt", blk.ref.Short())
		}
		// Stricter reading of "dropped from the index": the block is no
		// longer stored, so Get says ErrNotFound and the totals drop.
		f.getFails(f.ctx, blk.ref, blockstore.ErrNotFound)
		if st.Blocks != before.Blocks-1 || st.Bytes != before.Bytes-int64(len(blk.data)) {
			t.Fatalf("Stats after dropping a corrupt %d-byte copy: Blocks %d, Bytes %d; want %d, %d",
				len(blk.data), st.Blocks, st.Bytes, before.Blocks-1, before.Bytes-int64(len(blk.data)))
		}
		f.checkContents() // the others are intact, Enumerate skips the dropped one
	}
	if got := f.corrupt.all(); !sameRefs(got, corrupted) {
		t.Fatalf("OnCorrupt was called for %d refs, want exactly one call for each of the %d corrupted blocks", len(got), len(corrupted))
	}
	if st := f.stats(); st.Corrupt != int64(len(corrupted)) {
		t.Fatalf("Stats.Corrupt = %d, want %d", st.Corrupt, len(corrupted))
	}

	// A re-Put (what repair does) stores the block again, as a new block.
	before := f.stats()
	f.put(a, dataA)
	f.mustGet(a, dataA)
	if !f.has(a)[0] {
		t.Fatal("Has = false after the corrupt block was put again")
	}
	if st := f.stats(); st.Puts != before.Puts+1 || st.Dedups != before.Dedups {
		t.Fatalf("Stats after re-putting a dropped block: Puts %d, Dedups %d; want %d, %d", st.Puts, st.Dedups, before.Puts+1, before.Dedups)
	}
	f.checkContents()
}

// sameRefs reports whether a and b hold the same refs, ignoring order.
func sameRefs(a, b []blockstore.Ref) bool {
	return slices.Equal(sortedRefs(a), sortedRefs(b))
}
