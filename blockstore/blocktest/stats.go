package blocktest

import (
	"testing"
	"time"

	"github.com/coffer-dev/coffer/blockstore"
)

// testStats: the counters match the calls made.
func testStats(t *testing.T, open opener) {
	f := newFixture(t, open, testMaxBlockSize)
	st := f.stats()
	if st != (blockstore.Stats{DiskBytes: st.DiskBytes, BytesWritten: st.BytesWritten, Syncs: st.Syncs, Compaction: st.Compaction, FreeBytes: st.FreeBytes}) {
		t.Fatalf("Stats of a fresh store: %+v; want zero Blocks, Bytes and call counters", st)
	}

	a, dataA := f.putNew(1000)
	b, dataB := f.putNew(37)
	f.putNew(0)
	f.put(a, dataA) // dedup
	f.put(a, dataA) // dedup
	f.mustGet(a, dataA)
	f.mustGet(b, dataB)
	f.mustGet(b, dataB)
	f.mustGet(blockstore.Sum(nil), nil)
	unknown, _ := f.block(10)
	f.getFails(f.ctx, unknown, blockstore.ErrNotFound) // not counted
	f.has(a, b, unknown)                               // not counted
	f.clock.Advance(time.Second)
	f.delete(b, f.clock.Now(), true)
	f.delete(b, f.clock.Now(), false)       // not counted
	f.delete(unknown, f.clock.Now(), false) // not counted
	tooBig, big := f.block(f.max + 1)
	if err := f.store.Put(f.ctx, tooBig, big); err == nil { // not counted
		t.Fatal("Put of a too large block succeeded")
	}
	if err := f.store.Put(f.ctx, unknown, dataA); err == nil { // not counted
		t.Fatal("Put with mismatched data succeeded")
	}

	st = f.stats()
	want := []struct {
		name      string
		got, want int64
	}{
		{"Blocks", st.Blocks, 2},
		{"Bytes", st.Bytes, 1000},
		{"Puts", st.Puts, 3},
		{"Dedups", st.Dedups, 2},
		{"BytesPut", st.BytesPut, 1037},
		{"Gets", st.Gets, 4},
		{"BytesRead", st.BytesRead, 1000 + 37 + 37},
		{"Deletes", st.Deletes, 1},
		{"Corrupt", st.Corrupt, 0},
	}
	for _, w := range want {
		if w.got != w.want {
			t.Errorf("Stats.%s = %d, want %d", w.name, w.got, w.want)
		}
	}
	if st.BytesWritten < st.BytesPut {
		t.Errorf("Stats.BytesWritten = %d < BytesPut %d", st.BytesWritten, st.BytesPut)
	}
	if st.WriteAmplification() < 1 {
		t.Errorf("Stats.WriteAmplification() = %v, want >= 1", st.WriteAmplification())
	}
	for _, c := range []struct {
		name string
		v    int64
	}{{"DiskBytes", st.DiskBytes}, {"Syncs", st.Syncs}, {"Compaction", st.Compaction}} {
		if c.v < 0 {
			t.Errorf("Stats.%s = %d < 0", c.name, c.v)
		}
	}
	if t.Failed() {
		t.FailNow()
	}
	f.checkContents()
}
