package blocktest

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coffer-dev/coffer/blockstore"
)

// testConcurrency: goroutines Put overlapping sets of blocks (each block
// from several at once, from the same shared slice) while they and an
// observer Get, Has, Enumerate and read Stats. Run it under -race.
func testConcurrency(t *testing.T, open opener) {
	f := newFixture(t, open, testMaxBlockSize)
	const (
		workers   = 8
		distinct  = 96
		stride    = distinct / workers // each block is put by perWorker/stride workers
		perWorker = 3 * stride
	)
	refs := make([]blockstore.Ref, distinct)
	datas := make([][]byte, distinct)
	index := make(map[blockstore.Ref]int)
	var totalBytes int64
	for i := range distinct {
		size := 1 + f.rng.IntN(2047)
		if i == 0 {
			size = 0 // the empty block too
		}
		refs[i], datas[i] = f.block(size)
		index[refs[i]] = i
		totalBytes += int64(size)
	}

	var putCalls, gets, bytesRead atomic.Int64
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(w), 0x636f6e63))
			mine := make(map[int]bool) // blocks this goroutine has put
			for i := range perWorker {
				idx := (w*stride + i) % distinct
				if err := f.store.Put(f.ctx, refs[idx], datas[idx]); err != nil {
					t.Errorf("worker %d: Put(%s): %v", w, refs[idx].Short(), err)
					return
				}
				putCalls.Add(1)
				mine[idx] = true

				j := rng.IntN(distinct)
				got, err := f.store.Get(f.ctx, refs[j])
				switch {
				case err == nil:
					if !bytes.Equal(got, datas[j]) {
						t.Errorf("worker %d: Get(%s) returned wrong bytes", w, refs[j].Short())
						return
					}
					gets.Add(1)
					bytesRead.Add(int64(len(got)))
				case errors.Is(err, blockstore.ErrNotFound) && !mine[j]:
					// Nobody may have put it yet.
				default:
					t.Errorf("worker %d: Get(%s) (put by this worker: %v): %v", w, refs[j].Short(), mine[j], err)
					return
				}

				batch := make([]blockstore.Ref, 8)
				for k := range batch {
					batch[k] = refs[rng.IntN(distinct)]
				}
				has, err := f.store.Has(f.ctx, batch)
				if err != nil || len(has) != len(batch) {
					t.Errorf("worker %d: Has(%d refs) = %d results, %v", w, len(batch), len(has), err)
					return
				}
				for k, ok := range has {
					if !ok && mine[index[batch[k]]] {
						t.Errorf("worker %d: Has(%s) = false after this worker put it", w, batch[k].Short())
						return
					}
				}
			}
		})
	}

	// An observer walks and reads counters until the workers are done.
	workersDone := make(chan struct{})
	var observer sync.WaitGroup
	observer.Go(func() {
		for walks := 0; ; walks++ {
			var prev blockstore.Ref
			n := 0
			err := f.store.Enumerate(f.ctx, blockstore.Ref{}, func(bi blockstore.BlockInfo) error {
				i, ok := index[bi.Ref]
				if !ok || bi.Size != int64(len(datas[i])) {
					return errors.New("Enumerate visited " + bi.Ref.Short() + " with a wrong size or that was never put")
				}
				if n > 0 && compareRefs(prev, bi.Ref) >= 0 {
					return errors.New("Enumerate out of order at " + bi.Ref.Short())
				}
				prev = bi.Ref
				n++
				return nil
			})
			if err != nil {
				t.Errorf("observer: %v", err)
				return
			}
			st, err := f.store.Stats(f.ctx)
			if err != nil || st.Blocks < 0 || st.Blocks > distinct || st.Bytes > totalBytes {
				t.Errorf("observer: Stats = %+v, %v", st, err)
				return
			}
			select {
			case <-workersDone:
				if walks > 0 {
					return
				}
			default:
			}
		}
	})
	f.wait(&wg, "the workers")
	close(workersDone)
	f.wait(&observer, "the observer")
	if t.Failed() {
		t.FailNow()
	}

	st := f.stats()
	if want := int64(workers * perWorker); putCalls.Load() != want || st.Puts+st.Dedups != want {
		t.Fatalf("Stats: Puts %d + Dedups %d != %d Put calls", st.Puts, st.Dedups, putCalls.Load())
	}
	if st.Puts != distinct || st.BytesPut != totalBytes {
		t.Fatalf("Stats: Puts %d, BytesPut %d; want %d, %d (each distinct block stored once)", st.Puts, st.BytesPut, distinct, totalBytes)
	}
	if st.Gets != gets.Load() || st.BytesRead != bytesRead.Load() {
		t.Fatalf("Stats: Gets %d, BytesRead %d; want %d, %d", st.Gets, st.BytesRead, gets.Load(), bytesRead.Load())
	}
	for i := range refs {
		f.model[refs[i]] = modelBlock{data: datas[i], storedAt: f.clock.Now()}
	}
	f.checkContents()
}

// testConcurrentDeleteAndPut: the collector's race run for real. Blocks
// stored at t0 are re-put at t1 while collectors delete them with cutoff
// t1. Whatever the interleaving, Delete's check is atomic with Put's
// refresh, so every block ends up stored: either the re-put came first (the
// Delete is refused) or the Delete did (a later re-put stores it anew).
func testConcurrentDeleteAndPut(t *testing.T, open opener) {
	f := newFixture(t, open, testMaxBlockSize)
	const n = 128
	refs := make([]blockstore.Ref, n)
	datas := make([][]byte, n)
	for i := range n {
		refs[i], datas[i] = f.putNew(1 + f.rng.IntN(1000))
	}
	// Several rounds, as the interleaving differs from run to run.
	const rounds = 4
	var total int64
	for round := range rounds {
		f.clock.Advance(time.Hour)
		cutoff := f.clock.Now()
		d := reputWhileCollecting(f, refs, datas, cutoff)
		total += d
		for i := range refs {
			f.model[refs[i]] = modelBlock{data: datas[i], storedAt: cutoff}
		}
		f.checkContents()
		t.Logf("round %d: %d of %d blocks were deleted before being re-put", round, d, n)
	}
	if st := f.stats(); st.Deletes != total {
		t.Fatalf("Stats.Deletes = %d, Delete returned true %d times", st.Deletes, total)
	}
}

// reputWhileCollecting re-puts every block from two goroutines while two
// collectors Delete them with cutoff, checks the outcome and returns how
// many Deletes succeeded.
func reputWhileCollecting(f *fixture, refs []blockstore.Ref, datas [][]byte, cutoff time.Time) int64 {
	f.t.Helper()
	t := f.t
	n := len(refs)
	before := f.stats()
	var deleted atomic.Int64
	var wg sync.WaitGroup
	ready := make(chan struct{}) // all four start together
	order := func(backward bool, i int) int {
		if backward {
			return n - 1 - i
		}
		return i
	}
	for _, backward := range []bool{false, true} {
		wg.Go(func() { // a re-putter
			<-ready
			for i := range n {
				k := order(backward, i)
				if err := f.store.Put(f.ctx, refs[k], datas[k]); err != nil {
					t.Errorf("Put(%s): %v", refs[k].Short(), err)
					return
				}
				runtime.Gosched() // let the others interleave
			}
		})
		wg.Go(func() { // a collector
			<-ready
			for i := range n {
				k := order(!backward, i)
				ok, err := f.store.Delete(f.ctx, refs[k], cutoff)
				if err != nil {
					t.Errorf("Delete(%s): %v", refs[k].Short(), err)
					return
				}
				if ok {
					deleted.Add(1)
				}
				runtime.Gosched()
			}
		})
	}
	close(ready)
	f.wait(&wg, "the re-putters and collectors")
	if t.Failed() {
		t.FailNow()
	}
	d := deleted.Load()
	st := f.stats()
	if st.Deletes-before.Deletes != d {
		t.Fatalf("Stats.Deletes grew by %d, but Delete returned true %d times", st.Deletes-before.Deletes, d)
	}
	// Each block was deleted at most once, before both its re-puts; the
	// first re-put after a delete stores it anew, every other one dedups.
	if st.Puts-before.Puts != d || st.Dedups-before.Dedups != int64(2*n)-d {
		t.Fatalf("Stats: Puts grew by %d, Dedups by %d; with %d blocks deleted before their re-put want %d and %d",
			st.Puts-before.Puts, st.Dedups-before.Dedups, d, d, int64(2*n)-d)
	}
	return d
}

// testConcurrentDelete: collectors racing to delete the same blocks delete
// each exactly once.
func testConcurrentDelete(t *testing.T, open opener) {
	f := newFixture(t, open, testMaxBlockSize)
	const n, collectors = 64, 4
	var refs []blockstore.Ref
	for range n {
		ref, _ := f.putNew(f.rng.IntN(500))
		refs = append(refs, ref)
	}
	cutoff := f.clock.Now().Add(time.Nanosecond)
	var deleted atomic.Int64
	var wg sync.WaitGroup
	for c := range collectors {
		wg.Go(func() {
			for i := range n {
				r := refs[(i+c*n/collectors)%n]
				ok, err := f.store.Delete(f.ctx, r, cutoff)
				if err != nil {
					t.Errorf("Delete(%s): %v", r.Short(), err)
					return
				}
				if ok {
					deleted.Add(1)
				}
			}
		})
	}
	f.wait(&wg, "the collectors")
	if t.Failed() {
		t.FailNow()
	}
	if d := deleted.Load(); d != n {
		t.Fatalf("Delete returned true %d times for %d blocks, want exactly once per block", d, n)
	}
	if st := f.stats(); st.Deletes != n || st.Blocks != 0 || st.Bytes != 0 {
		t.Fatalf("Stats: Deletes %d, Blocks %d, Bytes %d; want %d, 0, 0", st.Deletes, st.Blocks, st.Bytes, n)
	}
	clear(f.model)
	f.checkContents()
}
