package blocktest

import (
	"testing"
	"time"

	"github.com/coffer-dev/coffer/blockstore"
)

// testDelete: Delete removes a block if, and only if, its StoredAt is
// strictly before the cutoff; a re-Put after the collector chose its cutoff
// protects the block; a deleted block can be stored again.
func testDelete(t *testing.T, open opener) {
	f := newFixture(t, open, testMaxBlockSize)
	t0 := f.clock.Now()
	a, dataA := f.putNew(2000)
	b, dataB := f.putNew(700)
	keep, _ := f.putNew(10)

	// Not before: StoredAt == cutoff, StoredAt after the cutoff, zero time.
	f.delete(a, t0, false)
	f.delete(a, t0.Add(-time.Nanosecond), false)
	f.delete(a, time.Time{}, false)
	f.mustGet(a, dataA)
	if st := f.stats(); st.Deletes != 0 || st.Blocks != 3 {
		t.Fatalf("Stats after refused Deletes: Deletes %d, Blocks %d; want 0, 3", st.Deletes, st.Blocks)
	}

	// One nanosecond later is strictly after StoredAt.
	before := f.stats()
	f.delete(a, t0.Add(time.Nanosecond), true)
	f.getFails(f.ctx, a, blockstore.ErrNotFound)
	if f.has(a)[0] {
		t.Fatal("Has = true for a deleted block")
	}
	st := f.stats()
	if st.Blocks != before.Blocks-1 || st.Bytes != before.Bytes-int64(len(dataA)) || st.Deletes != before.Deletes+1 {
		t.Fatalf("Stats after Delete: Blocks %d, Bytes %d, Deletes %d; want %d, %d, %d",
			st.Blocks, st.Bytes, st.Deletes, before.Blocks-1, before.Bytes-int64(len(dataA)), before.Deletes+1)
	}

	// Deleting what is not stored: (false, nil), not counted.
	f.delete(a, t0.Add(time.Hour), false)
	missing, _ := f.block(50)
	f.delete(missing, t0.Add(time.Hour), false)
	// The zero Ref: (false, nil) or ErrInvalidArgument.
	if ok, err := f.store.Delete(f.ctx, blockstore.Ref{}, t0.Add(time.Hour)); ok || (err != nil && !isAny(err, blockstore.ErrInvalidArgument)) {
		t.Fatalf("Delete(zero ref) = %v, %v; want false and nil or ErrInvalidArgument", ok, err)
	}
	if st := f.stats(); st.Deletes != 1 {
		t.Fatalf("Stats.Deletes = %d after one successful Delete", st.Deletes)
	}

	// The collector's race: it judged b garbage with cutoff t0+1ns, then an
	// upload re-put b before the Delete. The refreshed StoredAt saves it.
	cutoff := t0.Add(time.Nanosecond)
	f.clock.Advance(time.Hour)
	f.put(b, dataB)
	f.delete(b, cutoff, false)
	f.mustGet(b, dataB)

	// A deleted block can be put again; it is a new block (a Put, not a
	// Dedup) with a new StoredAt.
	before = f.stats()
	f.put(a, dataA)
	f.mustGet(a, dataA)
	st = f.stats()
	if st.Puts != before.Puts+1 || st.Dedups != before.Dedups || st.Blocks != before.Blocks+1 {
		t.Fatalf("Stats after re-putting a deleted block: Puts %d, Dedups %d, Blocks %d; want %d, %d, %d",
			st.Puts, st.Dedups, st.Blocks, before.Puts+1, before.Dedups, before.Blocks+1)
	}
	f.delete(a, cutoff, false) // its new StoredAt is after the old cutoff

	// The empty block can be deleted too.
	f.put(blockstore.Sum(nil), nil)
	f.clock.Advance(time.Nanosecond)
	f.delete(blockstore.Sum(nil), f.clock.Now(), true)
	f.delete(keep, t0, false)
	f.checkContents()
}
