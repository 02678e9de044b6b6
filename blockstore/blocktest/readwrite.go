package blocktest

import (
	"slices"
	"testing"
	"time"

	"github.com/coffer-dev/coffer/blockstore"
)

// testRoundTrip: what Put stores, Get returns, for every size from the
// empty block to exactly MaxBlockSize; StoredAt is the clock's time.
func testRoundTrip(t *testing.T, open opener) {
	f := newFixture(t, open, testMaxBlockSize)
	// The empty block is a valid block; nil data is the empty block.
	empty := blockstore.Sum(nil)
	f.put(empty, nil)
	if got := f.mustGet(empty, nil); len(got) != 0 {
		t.Fatalf("Get(empty block) returned %d bytes", len(got))
	}
	for _, size := range []int{1, 2, 3, 7, 31, 255, 1000, 4097, 33333, f.max - 1, f.max} {
		ref, data := f.block(size)
		f.put(ref, data)
		f.mustGet(ref, data)
		f.clock.Advance(time.Second + time.Nanosecond)
	}
	f.checkContents()
}

// testTooLarge: MaxBlockSize bytes are accepted, one more is refused with
// ErrTooLarge and nothing is stored.
func testTooLarge(t *testing.T, open opener) {
	f := newFixture(t, open, testMaxBlockSize)
	f.putNew(f.max)
	checkTooLarge(f)
	f.checkContents()
}

// testDefaultMaxBlockSize: MaxBlockSize 0 means DefaultMaxBlockSize.
func testDefaultMaxBlockSize(t *testing.T, open opener) {
	f := newFixture(t, open, 0)
	ref, data := f.putNew(blockstore.DefaultMaxBlockSize)
	f.mustGet(ref, data)
	checkTooLarge(f)
	f.checkContents()
}

// checkTooLarge puts a block of f.max+1 bytes and checks it is refused.
func checkTooLarge(f *fixture) {
	f.t.Helper()
	before := f.stats()
	ref, data := f.block(f.max + 1)
	if err := f.store.Put(f.ctx, ref, data); !isAny(err, blockstore.ErrTooLarge) {
		f.t.Fatalf("Put(%d bytes, MaxBlockSize %d) = %v, want ErrTooLarge", len(data), f.max, err)
	}
	if f.has(ref)[0] {
		f.t.Fatalf("Has(too large block) = true after Put failed")
	}
	f.getFails(f.ctx, ref, blockstore.ErrNotFound)
	checkUnchanged(f, "after a refused Put", before, f.stats())
}

// checkUnchanged checks that a refused call changed none of the logical
// counters. (BytesWritten, DiskBytes, Syncs and Compaction are left out: a
// store may flush or compact in the background.)
func checkUnchanged(f *fixture, what string, before, after blockstore.Stats) {
	f.t.Helper()
	type counter struct {
		name          string
		before, after int64
	}
	for _, c := range []counter{
		{"Blocks", before.Blocks, after.Blocks},
		{"Bytes", before.Bytes, after.Bytes},
		{"Puts", before.Puts, after.Puts},
		{"Dedups", before.Dedups, after.Dedups},
		{"BytesPut", before.BytesPut, after.BytesPut},
		{"Deletes", before.Deletes, after.Deletes},
		{"Corrupt", before.Corrupt, after.Corrupt},
	} {
		if c.before != c.after {
			f.t.Errorf("Stats.%s %s: %d, was %d", c.name, what, c.after, c.before)
		}
	}
	if f.t.Failed() {
		f.t.FailNow()
	}
}

// testHashMismatch: data that does not hash to ref is refused with
// ErrHashMismatch and stores nothing, even when ref itself is stored.
func testHashMismatch(t *testing.T, open opener) {
	f := newFixture(t, open, testMaxBlockSize)
	refA, dataA := f.block(1000)
	refB, dataB := f.block(1000)
	refC, dataC := f.block(3)

	mismatch := func(what string, ref blockstore.Ref, data []byte, also ...error) {
		t.Helper()
		before := f.stats()
		err := f.store.Put(f.ctx, ref, data)
		if !isAny(err, append([]error{blockstore.ErrHashMismatch}, also...)...) {
			t.Fatalf("Put(%s) = %v, want ErrHashMismatch", what, err)
		}
		checkUnchanged(f, "after Put("+what+")", before, f.stats())
		if _, stored := f.model[blockstore.Sum(data)]; !stored && f.has(blockstore.Sum(data))[0] {
			t.Fatalf("Put(%s) failed but the data was stored under its own ref", what)
		}
	}
	mismatch("ref A, data B", refA, dataB)
	mismatch("ref A, data A truncated", refA, dataA[:len(dataA)-1])
	mismatch("ref A, no data", refA, nil)
	mismatch("ref of the empty block, data C", blockstore.Sum(nil), dataC)
	// The zero Ref names no block: whatever the data, it is refused. Either
	// ErrHashMismatch or ErrInvalidArgument is right.
	mismatch("zero ref, no data", blockstore.Ref{}, nil, blockstore.ErrInvalidArgument)
	mismatch("zero ref, data C", blockstore.Ref{}, dataC, blockstore.ErrInvalidArgument)
	for i, ok := range f.has(refA, refB, refC, blockstore.Sum(nil), blockstore.Ref{}) {
		if ok {
			t.Fatalf("Has: block %d is stored after only refused Puts", i)
		}
	}
	f.checkContents()

	// A stored ref with wrong data is still refused (stricter reading:
	// verification comes before the dedup check, so wrong bytes can neither
	// refresh StoredAt nor reveal that the block is stored), and the stored
	// copy is untouched.
	f.put(refA, dataA)
	f.clock.Advance(time.Hour)
	mismatch("stored ref A, data B", refA, dataB)
	mismatch("stored ref A, data A truncated", refA, dataA[:len(dataA)-1])
	f.mustGet(refA, dataA)
	f.checkContents() // StoredAt not refreshed
}

// testNotFound: Get of a block that is not stored is ErrNotFound.
func testNotFound(t *testing.T, open opener) {
	f := newFixture(t, open, testMaxBlockSize)
	unknown, _ := f.block(100)
	f.getFails(f.ctx, unknown, blockstore.ErrNotFound)
	f.getFails(f.ctx, blockstore.Sum(nil), blockstore.ErrNotFound)
	for range 5 {
		f.putNew(f.rng.IntN(500))
	}
	f.getFails(f.ctx, unknown, blockstore.ErrNotFound)
	// The zero Ref names no block: ErrNotFound or ErrInvalidArgument.
	f.getFails(f.ctx, blockstore.Ref{}, blockstore.ErrNotFound, blockstore.ErrInvalidArgument)
	// A ref sharing all but its last byte with a stored one.
	near := f.modelRefs()[0]
	near[len(near)-1] ^= 1
	f.getFails(f.ctx, near, blockstore.ErrNotFound)
	f.checkContents()
}

// testIdempotent: putting a stored block again succeeds, stores nothing new
// (a Dedup, not a Put) and refreshes StoredAt.
func testIdempotent(t *testing.T, open opener) {
	f := newFixture(t, open, testMaxBlockSize)
	ref, data := f.putNew(5000)
	first := f.stats()
	if first.Puts != 1 || first.Dedups != 0 || first.Blocks != 1 || first.Bytes != 5000 || first.BytesPut != 5000 {
		t.Fatalf("Stats after one Put: %+v", first)
	}
	if at := f.storedAt(ref); !at.Equal(start) {
		t.Fatalf("StoredAt after Put = %s, want the clock's %s", at.Format(time.RFC3339Nano), start.Format(time.RFC3339Nano))
	}

	f.clock.Advance(90*time.Minute + 7*time.Nanosecond)
	f.put(ref, slices.Clone(data))
	st := f.stats()
	if st.Puts != 1 || st.Dedups != 1 || st.Blocks != 1 || st.Bytes != 5000 || st.BytesPut != 5000 {
		t.Fatalf("Stats after putting the same block twice: Puts %d, Dedups %d, Blocks %d, Bytes %d, BytesPut %d; want 1, 1, 1, 5000, 5000",
			st.Puts, st.Dedups, st.Blocks, st.Bytes, st.BytesPut)
	}
	if at := f.storedAt(ref); !at.Equal(f.clock.Now()) {
		t.Fatalf("StoredAt after re-Put = %s, want the refreshed %s", at.Format(time.RFC3339Nano), f.clock.Now().Format(time.RFC3339Nano))
	}
	f.mustGet(ref, data)

	// The empty block dedups too.
	f.put(blockstore.Sum(nil), nil)
	f.clock.Advance(time.Nanosecond)
	f.put(blockstore.Sum(nil), []byte{})
	f.put(ref, data)
	st = f.stats()
	if st.Puts != 2 || st.Dedups != 3 || st.Blocks != 2 || st.Bytes != 5000 || st.BytesPut != 5000 {
		t.Fatalf("Stats: Puts %d, Dedups %d, Blocks %d, Bytes %d, BytesPut %d; want 2, 3, 2, 5000, 5000",
			st.Puts, st.Dedups, st.Blocks, st.Bytes, st.BytesPut)
	}
	f.checkContents()
}

// testOwnership: Get's result belongs to the caller and Put keeps no
// reference to its argument.
func testOwnership(t *testing.T, open opener) {
	f := newFixture(t, open, testMaxBlockSize)
	ref, data := f.block(3000)
	in := slices.Clone(data)
	f.put(ref, in)
	scribble(in)
	f.mustGet(ref, data)

	got1 := f.mustGet(ref, data)
	scribble(got1)
	got2 := f.mustGet(ref, data)
	scribble(got2)
	f.mustGet(ref, data)

	// The dedup path must not keep the slice either.
	in2 := slices.Clone(data)
	f.put(ref, in2)
	scribble(in2)
	f.mustGet(ref, data)

	// Nor a block put after a delete.
	f.clock.Advance(time.Second)
	f.delete(ref, f.clock.Now(), true)
	in3 := slices.Clone(data)
	f.put(ref, in3)
	scribble(in3)
	f.checkContents()
}

// scribble overwrites every byte of b.
func scribble(b []byte) {
	for i := range b {
		b[i] = ^b[i]
	}
}

// testHas: Has answers for each ref in a batch, in order, duplicates
// included.
func testHas(t *testing.T, open opener) {
	f := newFixture(t, open, testMaxBlockSize)
	for _, refs := range [][]blockstore.Ref{nil, {}} {
		got, err := f.store.Has(f.ctx, refs)
		if err != nil || len(got) != 0 {
			t.Fatalf("Has(%#v) = %v, %v; want no results and no error", refs, got, err)
		}
	}
	a, _ := f.putNew(100)
	b, _ := f.putNew(0)
	c, _ := f.putNew(f.max)
	x, _ := f.block(100)
	y, _ := f.block(0)
	y[0] ^= 1 // not the empty block's ref

	refs := []blockstore.Ref{a, x, a, b, y, x, c, a}
	want := []bool{true, false, true, true, false, false, true, true}
	if got := f.has(refs...); !slices.Equal(got, want) {
		t.Fatalf("Has(a x a b y x c a) = %v, want %v", got, want)
	}
	if got := f.has(x); !slices.Equal(got, []bool{false}) {
		t.Fatalf("Has(x) = %v, want [false]", got)
	}

	// A large batch, stored and unknown refs shuffled together.
	for range 100 {
		f.putNew(f.rng.IntN(64))
	}
	var big []blockstore.Ref
	var bigWant []bool
	for r := range f.model {
		big = append(big, r, r)
		bigWant = append(bigWant, true, true)
		u, _ := f.block(8)
		big = append(big, u)
		bigWant = append(bigWant, false)
	}
	perm := f.rng.Perm(len(big))
	shuffled := make([]blockstore.Ref, len(big))
	shuffledWant := make([]bool, len(big))
	for i, p := range perm {
		shuffled[i], shuffledWant[i] = big[p], bigWant[p]
	}
	if got := f.has(shuffled...); !slices.Equal(got, shuffledWant) {
		for i := range got {
			if got[i] != shuffledWant[i] {
				t.Fatalf("Has(%d refs): result %d (%s) = %v, want %v", len(shuffled), i, shuffled[i].Short(), got[i], shuffledWant[i])
			}
		}
	}
	f.checkContents()
}
