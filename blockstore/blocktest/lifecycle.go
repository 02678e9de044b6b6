package blocktest

import (
	"context"
	"errors"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coffer-dev/coffer/blockstore"
)

// testClosed: after Close every method fails with ErrClosed, and a second
// Close is harmless.
func testClosed(t *testing.T, open opener) {
	f := newFixture(t, open, testMaxBlockSize)
	a, dataA := f.putNew(100)
	if err := f.store.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := f.store.Close(); err != nil && !errors.Is(err, blockstore.ErrClosed) {
		t.Fatalf("second Close: %v, want nil or ErrClosed", err)
	}
	checkClosed(t, f.ctx, f.store, a, dataA)
}

// checkClosed checks that every method of the closed store s fails with
// ErrClosed; a is a block that was stored before Close.
func checkClosed(t *testing.T, ctx context.Context, s blockstore.Store, a blockstore.Ref, dataA []byte) {
	t.Helper()
	b, dataB := RandomBlock(rand.New(rand.NewPCG(1, 2)), 50)
	if err := s.Put(ctx, b, dataB); !errors.Is(err, blockstore.ErrClosed) {
		t.Errorf("Put of a new block after Close = %v, want ErrClosed", err)
	}
	if err := s.Put(ctx, a, dataA); !errors.Is(err, blockstore.ErrClosed) {
		t.Errorf("Put of a stored block after Close = %v, want ErrClosed", err)
	}
	if data, err := s.Get(ctx, a); !errors.Is(err, blockstore.ErrClosed) || data != nil {
		t.Errorf("Get after Close = %d bytes, %v; want ErrClosed", len(data), err)
	}
	if has, err := s.Has(ctx, []blockstore.Ref{a, b}); !errors.Is(err, blockstore.ErrClosed) {
		t.Errorf("Has after Close = %v, %v; want ErrClosed", has, err)
	}
	if ok, err := s.Delete(ctx, a, start.Add(1000*time.Hour)); !errors.Is(err, blockstore.ErrClosed) || ok {
		t.Errorf("Delete after Close = %v, %v; want false, ErrClosed", ok, err)
	}
	calls := 0
	if err := s.Enumerate(ctx, blockstore.Ref{}, func(blockstore.BlockInfo) error { calls++; return nil }); !errors.Is(err, blockstore.ErrClosed) || calls != 0 {
		t.Errorf("Enumerate after Close = %v after %d callbacks; want ErrClosed and none", err, calls)
	}
	if _, err := s.Stats(ctx); !errors.Is(err, blockstore.ErrClosed) {
		t.Errorf("Stats after Close = %v, want ErrClosed", err)
	}
}

// testCloseWhileBusy: Close while goroutines call every method: calls in
// flight succeed or fail with ErrClosed, Close returns, and every call
// after it fails with ErrClosed.
func testCloseWhileBusy(t *testing.T, open opener) {
	f := newFixture(t, open, testMaxBlockSize)
	const blocks, workers, opsBeforeClose = 32, 4, 200
	refs := make([]blockstore.Ref, blocks)
	datas := make([][]byte, blocks)
	for i := range blocks {
		refs[i], datas[i] = f.putNew(1 + f.rng.IntN(1000))
	}

	var ops atomic.Int64
	busy := make(chan struct{}) // closed once opsBeforeClose calls succeeded
	var busyOnce sync.Once
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(w), 0x62757379))
			for {
				i := rng.IntN(blocks)
				var err error
				switch rng.IntN(5) {
				case 0:
					ref, data := RandomBlock(rng, rng.IntN(500))
					err = f.store.Put(f.ctx, ref, data)
				case 1:
					err = f.store.Put(f.ctx, refs[i], datas[i])
				case 2:
					var data []byte
					data, err = f.store.Get(f.ctx, refs[i])
					if err == nil && string(data) != string(datas[i]) {
						t.Errorf("Get(%s) while closing returned wrong bytes", refs[i].Short())
						return
					}
				case 3:
					_, err = f.store.Has(f.ctx, refs[:8])
				case 4:
					n := 0
					err = f.store.Enumerate(f.ctx, refs[i], func(blockstore.BlockInfo) error {
						if n++; n == 5 {
							return blockstore.ErrStop
						}
						return nil
					})
				}
				switch {
				case err == nil:
					if ops.Add(1) == opsBeforeClose {
						busyOnce.Do(func() { close(busy) })
					}
				case errors.Is(err, blockstore.ErrClosed):
					return
				default:
					t.Errorf("worker %d: call while closing failed with %v, want nil or ErrClosed", w, err)
					return
				}
			}
		})
	}
	select {
	case <-busy:
	case <-time.After(waitTimeout):
		t.Fatalf("the workers did not make %d calls within %v", opsBeforeClose, waitTimeout)
	}
	closed := make(chan error, 1)
	go func() { closed <- f.store.Close() }()
	select {
	case err := <-closed:
		if err != nil {
			t.Fatalf("Close while busy: %v", err)
		}
	case <-time.After(waitTimeout):
		f.wedged = true
		t.Fatalf("Close while busy did not return within %v", waitTimeout)
	}
	f.wait(&wg, "the workers after Close")
	checkClosed(t, f.ctx, f.store, refs[0], datas[0])
}

// testContext: a done ctx makes every call fail with ctx's error, and a
// call that failed so changed nothing.
func testContext(t *testing.T, open opener) {
	f := newFixture(t, open, testMaxBlockSize)
	a, dataA := f.putNew(100)
	b, dataB := f.block(200)
	before := f.stats()

	cancelled, cancel := context.WithCancel(f.ctx)
	cancel()
	expired, cancel2 := context.WithDeadline(f.ctx, time.Now().Add(-time.Second))
	defer cancel2()
	for _, c := range []struct {
		name string
		ctx  context.Context
		want error
	}{
		{"cancelled", cancelled, context.Canceled},
		{"expired", expired, context.DeadlineExceeded},
	} {
		if err := f.store.Put(c.ctx, b, dataB); !errors.Is(err, c.want) {
			t.Errorf("Put(%s ctx) = %v, want %v", c.name, err, c.want)
		}
		// Stricter reading: a Put that failed with ctx's error stored nothing.
		if f.has(b)[0] {
			t.Fatalf("after Put(%s ctx) the block is stored", c.name)
		}
		if err := f.store.Put(c.ctx, a, dataA); !errors.Is(err, c.want) {
			t.Errorf("Put(%s ctx) of a stored block = %v, want %v", c.name, err, c.want)
		}
		if data, err := f.store.Get(c.ctx, a); !errors.Is(err, c.want) || data != nil {
			t.Errorf("Get(%s ctx) = %d bytes, %v; want %v", c.name, len(data), err, c.want)
		}
		if has, err := f.store.Has(c.ctx, []blockstore.Ref{a, b}); !errors.Is(err, c.want) {
			t.Errorf("Has(%s ctx) = %v, %v; want %v", c.name, has, err, c.want)
		}
		if ok, err := f.store.Delete(c.ctx, a, start.Add(1000*time.Hour)); !errors.Is(err, c.want) || ok {
			t.Errorf("Delete(%s ctx) = %v, %v; want false, %v", c.name, ok, err, c.want)
		}
		calls := 0
		if err := f.store.Enumerate(c.ctx, blockstore.Ref{}, func(blockstore.BlockInfo) error { calls++; return nil }); !errors.Is(err, c.want) || calls != 0 {
			t.Errorf("Enumerate(%s ctx) = %v after %d callbacks; want %v and none", c.name, err, calls, c.want)
		}
	}
	if t.Failed() {
		t.FailNow()
	}
	after := f.stats()
	checkUnchanged(f, "after calls with a done ctx", before, after)
	if after.Gets != before.Gets || after.BytesRead != before.BytesRead {
		t.Fatalf("Stats: Gets %d, BytesRead %d after Gets with a done ctx; were %d, %d", after.Gets, after.BytesRead, before.Gets, before.BytesRead)
	}
	f.checkContents() // a is still there, with its old StoredAt
}
