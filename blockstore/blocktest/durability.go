package blocktest

import (
	"testing"
	"time"

	"github.com/coffer-dev/coffer/blockstore"
)

// testDurability: what a store acknowledged survives Reopen: live blocks
// with their bytes, sizes and StoredAt (exact to the nanosecond: stores
// must keep nanoseconds, not round to milliseconds), deletes and StoredAt
// refreshes, Enumerate order and the Blocks and Bytes totals. The call
// counters start again from zero (they "count since the store was opened").
func testDurability(t *testing.T, open opener) {
	f := newFixture(t, open, testMaxBlockSize)
	if f.h.Reopen == nil {
		t.Skip("Harness.Reopen is nil: the implementation is not durable")
	}
	t0 := f.clock.Now()
	f.putNew(0)
	f.putNew(f.max)
	var old []blockstore.Ref
	for range 40 {
		ref, _ := f.putNew(1 + f.rng.IntN(5000))
		old = append(old, ref)
	}
	f.clock.Advance(time.Minute + 3*time.Nanosecond)
	for range 10 {
		f.putNew(1 + f.rng.IntN(5000))
	}
	// One block deleted, one refreshed by a re-put.
	deleted, deletedData := old[0], f.model[old[0]].data
	f.delete(deleted, t0.Add(time.Nanosecond), true)
	f.clock.Advance(time.Hour + 5*time.Nanosecond)
	refreshed := old[1]
	f.put(refreshed, f.model[refreshed].data)
	f.checkContents()

	f.reopen()
	f.getFails(f.ctx, deleted, blockstore.ErrNotFound)
	if f.has(deleted)[0] {
		t.Fatal("Has = true after reopening for a block deleted before")
	}
	f.delete(refreshed, t0.Add(time.Hour), false) // the refresh survived
	f.checkContents()

	// The reopened store takes writes, deletes and refreshes that survive a
	// second reopen.
	f.clock.Advance(time.Second + 7*time.Nanosecond)
	f.putNew(777)
	f.put(deleted, deletedData)
	f.put(old[2], f.model[old[2]].data)
	f.delete(old[3], f.clock.Now(), true)
	f.reopen()
	f.checkContents()
}

// reopen reopens the store through the Harness and checks the totals and
// counters of the reopened store.
func (f *fixture) reopen() {
	f.t.Helper()
	before := f.stats()
	infos := f.enumerate(blockstore.Ref{})
	s := f.h.Reopen(f.t)
	if s == nil {
		f.t.Fatal("Harness.Reopen returned a nil Store")
	}
	f.store = s
	st := f.stats()
	if st.Blocks != before.Blocks || st.Bytes != before.Bytes {
		f.t.Fatalf("Stats after Reopen: Blocks %d, Bytes %d; before: %d, %d", st.Blocks, st.Bytes, before.Blocks, before.Bytes)
	}
	if st.Puts != 0 || st.Dedups != 0 || st.BytesPut != 0 || st.Gets != 0 || st.BytesRead != 0 || st.Deletes != 0 || st.Corrupt != 0 {
		f.t.Fatalf("Stats right after Reopen: %+v; want the call counters (Puts, Dedups, BytesPut, Gets, BytesRead, Deletes, Corrupt) at zero", st)
	}
	f.checkInfos("Enumerate after Reopen", f.enumerate(blockstore.Ref{}), f.modelRefs())
	if len(infos) != len(f.model) {
		f.t.Fatalf("Enumerate visited %d blocks before Reopen, the model holds %d", len(infos), len(f.model))
	}
}
