package blocktest

import (
	"bytes"
	"context"
	"errors"
	"hash/fnv"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/coffer-dev/coffer/blockstore"
)

// start is where every case's clock starts. Its nanoseconds are not zero,
// so a store that rounds StoredAt (to ms, µs or s) fails.
var start = time.Date(2024, time.February, 29, 12, 34, 56, 123456789, time.UTC)

// waitTimeout bounds every wait for something asynchronous (an OnCorrupt
// call, goroutines finishing). It is generous: the machine may be busy.
const waitTimeout = 30 * time.Second

// fixture is one case's store, clock and model of what the store holds.
type fixture struct {
	t     *testing.T
	ctx   context.Context
	h     Harness
	store blockstore.Store // the open store (changes on reopen)
	clock *Clock
	max   int // the effective MaxBlockSize
	rng   *rand.Rand

	corrupt       *corruptLog
	expectCorrupt bool // the case corrupts blocks on purpose
	wedged        bool // a call never returned: do not Close at cleanup

	// model is what the store must hold: ref → data and StoredAt.
	model map[blockstore.Ref]modelBlock
}

type modelBlock struct {
	data     []byte
	storedAt time.Time
}

// newFixture opens a fresh store with the given MaxBlockSize (0 = default)
// and arranges for it to be closed when the case ends.
func newFixture(t *testing.T, open opener, maxBlockSize int) *fixture {
	t.Helper()
	clock := NewClock(start)
	clog := newCorruptLog()
	h := open(t, Options{MaxBlockSize: maxBlockSize, Now: clock.Now, OnCorrupt: clog.record})
	if h.Store == nil {
		t.Fatal("blocktest: open returned a Harness with a nil Store")
	}
	seed := fnv.New64a()
	seed.Write([]byte(t.Name()))
	f := &fixture{
		t:       t,
		ctx:     t.Context(),
		h:       h,
		store:   h.Store,
		clock:   clock,
		max:     maxBlockSize,
		rng:     rand.New(rand.NewPCG(seed.Sum64(), 0x626c6f636b)),
		corrupt: clog,
		model:   make(map[blockstore.Ref]modelBlock),
	}
	if f.max == 0 {
		f.max = blockstore.DefaultMaxBlockSize
	}
	t.Cleanup(func() {
		if f.wedged {
			t.Log("blocktest: a store call never returned; not closing the store")
			return
		}
		if err := f.store.Close(); err != nil && !errors.Is(err, blockstore.ErrClosed) {
			t.Errorf("Close at the end of the case: %v (want nil or ErrClosed)", err)
		}
		if !f.expectCorrupt {
			if refs := f.corrupt.all(); len(refs) > 0 {
				t.Errorf("OnCorrupt called %d times (first for %s) though nothing was corrupted", len(refs), refs[0].Short())
			}
		}
	})
	return f
}

// block returns a new random block of the given size.
func (f *fixture) block(size int) (blockstore.Ref, []byte) { return RandomBlock(f.rng, size) }

// put stores data under ref, failing the case on error, and records it in
// the model with the clock's time as StoredAt.
func (f *fixture) put(ref blockstore.Ref, data []byte) {
	f.t.Helper()
	if err := f.store.Put(f.ctx, ref, data); err != nil {
		f.t.Fatalf("Put(%s, %d bytes): %v", ref.Short(), len(data), err)
	}
	f.model[ref] = modelBlock{data: slices.Clone(data), storedAt: f.clock.Now()}
}

// putNew stores a new random block of the given size and returns it.
func (f *fixture) putNew(size int) (blockstore.Ref, []byte) {
	f.t.Helper()
	ref, data := f.block(size)
	f.put(ref, data)
	return ref, data
}

// mustGet checks that Get returns exactly want.
func (f *fixture) mustGet(ref blockstore.Ref, want []byte) []byte {
	f.t.Helper()
	got, err := f.store.Get(f.ctx, ref)
	if err != nil {
		f.t.Fatalf("Get(%s): %v (want %d bytes)", ref.Short(), err, len(want))
	}
	if !bytes.Equal(got, want) {
		f.t.Fatalf("Get(%s) returned %d bytes that differ from the %d bytes put", ref.Short(), len(got), len(want))
	}
	return got
}

// getFails checks that Get fails with an error wrapping one of wants and
// returns no data.
func (f *fixture) getFails(ctx context.Context, ref blockstore.Ref, wants ...error) {
	f.t.Helper()
	got, err := f.store.Get(ctx, ref)
	if !isAny(err, wants...) {
		f.t.Fatalf("Get(%s) = %d bytes, %v; want an error wrapping %v", ref.Short(), len(got), err, wants)
	}
	if len(got) != 0 {
		f.t.Fatalf("Get(%s) failed with %v but returned %d bytes", ref.Short(), err, len(got))
	}
}

// has returns Has(refs), checking its length.
func (f *fixture) has(refs ...blockstore.Ref) []bool {
	f.t.Helper()
	got, err := f.store.Has(f.ctx, refs)
	if err != nil {
		f.t.Fatalf("Has(%d refs): %v", len(refs), err)
	}
	if len(got) != len(refs) {
		f.t.Fatalf("Has(%d refs) returned %d results", len(refs), len(got))
	}
	return got
}

// delete calls Delete and checks its answer; on success the block leaves
// the model.
func (f *fixture) delete(ref blockstore.Ref, storedBefore time.Time, want bool) {
	f.t.Helper()
	got, err := f.store.Delete(f.ctx, ref, storedBefore)
	if err != nil {
		f.t.Fatalf("Delete(%s, %s): %v", ref.Short(), storedBefore.Format(time.RFC3339Nano), err)
	}
	if got != want {
		f.t.Fatalf("Delete(%s, storedBefore %s) = %v, want %v (model StoredAt %s)", ref.Short(),
			storedBefore.Format(time.RFC3339Nano), got, want, f.model[ref].storedAt.Format(time.RFC3339Nano))
	}
	if got {
		delete(f.model, ref)
	}
}

// stats returns the store's Stats.
func (f *fixture) stats() blockstore.Stats {
	f.t.Helper()
	st, err := f.store.Stats(f.ctx)
	if err != nil {
		f.t.Fatalf("Stats: %v", err)
	}
	return st
}

// enumerate returns every BlockInfo Enumerate visits from from.
func (f *fixture) enumerate(from blockstore.Ref) []blockstore.BlockInfo {
	f.t.Helper()
	var infos []blockstore.BlockInfo
	err := f.store.Enumerate(f.ctx, from, func(bi blockstore.BlockInfo) error {
		infos = append(infos, bi)
		return nil
	})
	if err != nil {
		f.t.Fatalf("Enumerate(from %s): %v", from.Short(), err)
	}
	return infos
}

// storedAt returns the StoredAt Enumerate reports for ref.
func (f *fixture) storedAt(ref blockstore.Ref) time.Time {
	f.t.Helper()
	var at time.Time
	found := false
	err := f.store.Enumerate(f.ctx, ref, func(bi blockstore.BlockInfo) error {
		if bi.Ref == ref {
			at, found = bi.StoredAt, true
		}
		return blockstore.ErrStop
	})
	if err != nil {
		f.t.Fatalf("Enumerate(from %s): %v", ref.Short(), err)
	}
	if !found {
		f.t.Fatalf("Enumerate(from %s) does not start with that block", ref.Short())
	}
	return at
}

// modelRefs returns the model's refs in Enumerate order.
func (f *fixture) modelRefs() []blockstore.Ref {
	refs := make([]blockstore.Ref, 0, len(f.model))
	for r := range f.model {
		refs = append(refs, r)
	}
	return sortedRefs(refs)
}

// checkInfos checks infos against the model: the same blocks in ascending
// Ref order, each with the right Size and StoredAt (exact to the
// nanosecond: time.Time.Equal).
func (f *fixture) checkInfos(what string, infos []blockstore.BlockInfo, want []blockstore.Ref) {
	f.t.Helper()
	for i, bi := range infos {
		if i > 0 && compareRefs(infos[i-1].Ref, bi.Ref) >= 0 {
			f.t.Fatalf("%s: block %d (%s) does not come after block %d (%s): want strictly ascending Ref order",
				what, i, bi.Ref.Short(), i-1, infos[i-1].Ref.Short())
		}
		m, ok := f.model[bi.Ref]
		if !ok {
			f.t.Fatalf("%s: visits %s, which is not stored", what, bi.Ref.Short())
		}
		if bi.Size != int64(len(m.data)) {
			f.t.Fatalf("%s: %s has Size %d, want %d", what, bi.Ref.Short(), bi.Size, len(m.data))
		}
		if !bi.StoredAt.Equal(m.storedAt) {
			f.t.Fatalf("%s: %s has StoredAt %s, want %s (exact to the nanosecond)", what, bi.Ref.Short(),
				bi.StoredAt.Format(time.RFC3339Nano), m.storedAt.Format(time.RFC3339Nano))
		}
	}
	if len(infos) != len(want) {
		f.t.Fatalf("%s: visited %d blocks, want %d", what, len(infos), len(want))
	}
	for i := range want {
		if infos[i].Ref != want[i] {
			f.t.Fatalf("%s: block %d is %s, want %s", what, i, infos[i].Ref.Short(), want[i].Short())
		}
	}
}

// checkContents checks that the store holds exactly the model: Enumerate,
// Stats.Blocks and Bytes, Has and Get all agree with it.
func (f *fixture) checkContents() {
	f.t.Helper()
	refs := f.modelRefs()
	f.checkInfos("Enumerate", f.enumerate(blockstore.Ref{}), refs)
	var bytesTotal int64
	for _, r := range refs {
		bytesTotal += int64(len(f.model[r].data))
	}
	st := f.stats()
	if st.Blocks != int64(len(refs)) || st.Bytes != bytesTotal {
		f.t.Fatalf("Stats: Blocks %d, Bytes %d; want %d, %d", st.Blocks, st.Bytes, len(refs), bytesTotal)
	}
	for i, ok := range f.has(refs...) {
		if !ok {
			f.t.Fatalf("Has(%s) = false for a stored block", refs[i].Short())
		}
	}
	for _, r := range refs {
		f.mustGet(r, f.model[r].data)
	}
}

// isAny reports whether err wraps one of targets.
func isAny(err error, targets ...error) bool {
	for _, t := range targets {
		if errors.Is(err, t) {
			return true
		}
	}
	return false
}

// corruptLog records OnCorrupt calls.
type corruptLog struct {
	mu     sync.Mutex
	refs   []blockstore.Ref
	signal chan struct{} // gets a token after every call
}

func newCorruptLog() *corruptLog { return &corruptLog{signal: make(chan struct{}, 1)} }

func (l *corruptLog) record(r blockstore.Ref) {
	l.mu.Lock()
	l.refs = append(l.refs, r)
	l.mu.Unlock()
	select {
	case l.signal <- struct{}{}:
	default:
	}
}

func (l *corruptLog) all() []blockstore.Ref {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.refs)
}

// waitFor waits until OnCorrupt has been called with ref, or the timeout.
func (l *corruptLog) waitFor(ref blockstore.Ref, timeout time.Duration) bool {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		if slices.Contains(l.all(), ref) {
			return true
		}
		select {
		case <-l.signal:
		case <-deadline.C:
			return slices.Contains(l.all(), ref)
		}
	}
}

// wait waits for wg with a deadline; on timeout the case fails and the
// store is left open (a call is stuck in it).
func (f *fixture) wait(wg *sync.WaitGroup, what string) {
	f.t.Helper()
	done := make(chan struct{})
	go func() {
		wg.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(waitTimeout):
		f.wedged = true
		f.t.Fatalf("%s did not finish within %v: deadlock?", what, waitTimeout)
	}
}
