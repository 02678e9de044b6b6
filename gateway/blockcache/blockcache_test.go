package blockcache

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func ref(i int) [32]byte {
	var r [32]byte
	r[0], r[1], r[31] = byte(i), byte(i>>8), 0xcc
	return r
}

// block returns n bytes that depend on i, so a mix-up shows.
func block(i, n int) []byte {
	b := make([]byte, n)
	for k := range b {
		b[k] = byte(i*7 + k)
	}
	return b
}

func mustNew(t testing.TB, cfg Config) *Cache {
	t.Helper()
	c, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// check verifies the cache's invariants: the list and the map hold the
// same entries, the byte count is their sum and within the bound.
func (c *Cache) check(t testing.TB) {
	t.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	n, bytes := 0, int64(0)
	for e := c.lru.next; e != &c.lru; e = e.next {
		if c.entries[e.ref] != e || e.next.prev != e {
			t.Fatalf("entry %x: list and map disagree", e.ref[:2])
		}
		n++
		bytes += int64(len(e.data)) + EntryOverhead
	}
	if n != len(c.entries) || bytes != c.bytes {
		t.Fatalf("list has %d entries, %d bytes; map %d, count %d", n, bytes, len(c.entries), c.bytes)
	}
	if c.max >= 0 && c.bytes > c.max {
		t.Fatalf("%d bytes cached, bound %d", c.bytes, c.max)
	}
}

// waitFor polls cond until it holds, failing t after a long while.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(100 * time.Microsecond)
	}
}

// waiters returns how many Loads wait for a fetch of r (0: no fetch).
func (c *Cache) waiters(r [32]byte) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	if f := c.flights[r]; f != nil {
		return f.waiters
	}
	return 0
}

func TestValidate(t *testing.T) {
	tests := []struct {
		max   int64
		valid bool
	}{
		{0, true},
		{-1, true},
		{MinMaxBytes, true},
		{1 << 40, true},
		{MinMaxBytes - 1, false},
		{1, false},
		{256, false},
	}
	for _, tt := range tests {
		err := Config{MaxBytes: tt.max}.Validate()
		if (err == nil) != tt.valid || err != nil && !errors.Is(err, ErrInvalidConfig) {
			t.Errorf("MaxBytes %d: Validate = %v, want valid %v", tt.max, err, tt.valid)
		}
		if _, err2 := New(Config{MaxBytes: tt.max}); (err2 == nil) != tt.valid {
			t.Errorf("MaxBytes %d: New = %v, want valid %v", tt.max, err2, tt.valid)
		}
	}
}

func TestEvictionOrder(t *testing.T) {
	// 8 entries of 8 KiB (data + overhead) fill the 64 KiB cache.
	const size = 8<<10 - EntryOverhead
	c := mustNew(t, Config{MaxBytes: 64 << 10})
	for i := range 8 {
		c.Add(ref(i), block(i, size))
	}
	if s := c.Stats(); s.Entries != 8 || s.Bytes != 64<<10 || s.Evictions != 0 {
		t.Fatalf("after 8 adds: %+v", s)
	}
	// Use 0 and 2 (by Get), 3 (by Add): LRU order is now 1 4 5 6 7 0 2 3.
	c.Get(ref(0))
	c.Get(ref(2))
	c.Add(ref(3), block(3, size))
	for k, i := range []int{8, 9, 10} {
		c.Add(ref(i), block(i, size))
		if s := c.Stats(); s.Entries != 8 || s.Evictions != uint64(k+1) {
			t.Fatalf("after adding %d: %+v", i, s)
		}
	}
	want := map[int]bool{0: true, 2: true, 3: true, 6: true, 7: true, 8: true, 9: true, 10: true}
	for i := range 11 {
		got, ok := c.Get(ref(i))
		if ok != want[i] {
			t.Errorf("block %d cached %v, want %v", i, ok, want[i])
		}
		if ok && !bytes.Equal(got, block(i, size)) {
			t.Errorf("block %d: wrong data", i)
		}
	}
	c.check(t)
}

func TestSizes(t *testing.T) {
	c := mustNew(t, Config{MaxBytes: 64 << 10})
	c.Add(ref(1), block(1, 8<<10))   // the largest cached: MaxBytes/8
	c.Add(ref(2), block(2, 8<<10+1)) // too large
	c.Add(ref(3), nil)               // the empty block
	c.Add(ref(1), block(1, 8<<10))   // again: no double count
	for i, want := range map[int]bool{1: true, 2: false, 3: true} {
		if _, ok := c.Get(ref(i)); ok != want {
			t.Errorf("block %d cached %v, want %v", i, ok, want)
		}
	}
	if s := c.Stats(); s.Entries != 2 || s.Bytes != 8<<10+2*EntryOverhead {
		t.Errorf("Stats = %+v", s)
	}
	c.check(t)

	d := mustNew(t, Config{})
	d.Add(ref(1), make([]byte, DefaultMaxBytes/8))
	d.Add(ref(2), make([]byte, DefaultMaxBytes/8+1))
	if s := d.Stats(); s.Entries != 1 {
		t.Errorf("default cache: %d entries, want the one of 32 MiB only", s.Entries)
	}
}

func TestDisabled(t *testing.T) {
	c := mustNew(t, Config{MaxBytes: -1})
	c.Add(ref(1), block(1, 10))
	if _, ok := c.Get(ref(1)); ok {
		t.Error("disabled cache returned a block")
	}
	calls := 0
	for range 2 {
		b, err := c.Load(context.Background(), ref(1), func(context.Context) ([]byte, error) {
			calls++
			return block(1, 10), nil
		})
		if err != nil || !bytes.Equal(b, block(1, 10)) {
			t.Fatalf("Load = %v, %v", b, err)
		}
	}
	if s := c.Stats(); calls != 2 || s.Entries != 0 || s.Hits != 0 || s.Misses != 3 {
		t.Errorf("%d fetches, Stats %+v; want 2 fetches, nothing cached, 3 misses", calls, s)
	}
}

// TestModel compares the cache with a plain LRU list under random use.
func TestModel(t *testing.T) {
	const max = 64 << 10
	c := mustNew(t, Config{MaxBytes: max})
	rnd := rand.New(rand.NewPCG(1, 1))
	var model []int // most recently used last
	sizes := map[int]int{}
	var evictions uint64
	used := func(i int) {
		for k, m := range model {
			if m == i {
				model = append(model[:k], model[k+1:]...)
				break
			}
		}
		model = append(model, i)
	}
	for range 20000 {
		i := rnd.IntN(40)
		if _, ok := sizes[i]; !ok {
			sizes[i] = rnd.IntN(12 << 10) // some too large to cache
		}
		if rnd.IntN(2) == 0 {
			_, ok := c.Get(ref(i))
			cached := false
			for _, m := range model {
				cached = cached || m == i
			}
			if ok != cached {
				t.Fatalf("Get(%d) = %v, model %v", i, ok, cached)
			}
			if ok {
				used(i)
			}
			continue
		}
		c.Add(ref(i), block(i, sizes[i]))
		if sizes[i] > max/8 {
			continue
		}
		used(i)
		total := 0
		for _, m := range model {
			total += sizes[m] + EntryOverhead
		}
		for total > max {
			total -= sizes[model[0]] + EntryOverhead
			model = model[1:]
			evictions++
		}
		if s := c.Stats(); s.Entries != len(model) || s.Bytes != int64(total) || s.Evictions != evictions {
			t.Fatalf("Stats %+v; model %d entries, %d bytes, %d evictions", s, len(model), total, evictions)
		}
	}
	c.check(t)
}

func TestLoadSingleflight(t *testing.T) {
	const n = 10
	c := mustNew(t, Config{})
	var calls atomic.Int32
	release := make(chan struct{})
	fetch := func(context.Context) ([]byte, error) {
		calls.Add(1)
		<-release
		return block(5, 1000), nil
	}
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for range n {
		wg.Go(func() {
			b, err := c.Load(context.Background(), ref(5), fetch)
			if err == nil && !bytes.Equal(b, block(5, 1000)) {
				err = errors.New("wrong data")
			}
			errs <- err
		})
	}
	waitFor(t, "all loads to wait", func() bool { return c.waiters(ref(5)) == n })
	close(release)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	if got := calls.Load(); got != 1 {
		t.Errorf("fetch called %d times for %d concurrent loads", got, n)
	}
	if _, err := c.Load(context.Background(), ref(5), fetch); err != nil || calls.Load() != 1 {
		t.Errorf("Load after the fetch: %v, %d calls; want a hit", err, calls.Load())
	}
	if s := c.Stats(); s.Hits != 1 || s.Misses != n || s.Entries != 1 {
		t.Errorf("Stats = %+v", s)
	}
}

func TestLoadErrorNotCached(t *testing.T) {
	c := mustNew(t, Config{})
	errBoom := errors.New("boom")
	var calls atomic.Int32
	release := make(chan struct{})
	failing := func(context.Context) ([]byte, error) {
		calls.Add(1)
		<-release
		return nil, fmt.Errorf("fetch: %w", errBoom)
	}
	errs := make(chan error, 2)
	for range 2 {
		go func() {
			_, err := c.Load(context.Background(), ref(1), failing)
			errs <- err
		}()
	}
	waitFor(t, "both loads to wait", func() bool { return c.waiters(ref(1)) == 2 })
	close(release)
	for range 2 {
		if err := <-errs; !errors.Is(err, errBoom) {
			t.Errorf("Load = %v, want errBoom", err)
		}
	}
	if _, ok := c.Get(ref(1)); ok {
		t.Fatal("failed fetch cached")
	}
	b, err := c.Load(context.Background(), ref(1), func(context.Context) ([]byte, error) {
		calls.Add(1)
		return block(1, 10), nil
	})
	if err != nil || !bytes.Equal(b, block(1, 10)) || calls.Load() != 2 {
		t.Errorf("Load after a failure = %v, %v after %d fetches; want a second fetch", b, err, calls.Load())
	}
}

type ctxKey struct{}

func TestLoadCancel(t *testing.T) {
	t.Run("one caller leaves", func(t *testing.T) {
		c := mustNew(t, Config{})
		release := make(chan struct{})
		fetchErr := make(chan error, 1)
		fetch := func(ctx context.Context) ([]byte, error) {
			<-release
			fetchErr <- ctx.Err()
			return block(2, 10), nil
		}
		ctxA, cancelA := context.WithCancel(context.Background())
		resA, resB := make(chan error, 1), make(chan error, 1)
		go func() { _, err := c.Load(ctxA, ref(2), fetch); resA <- err }()
		waitFor(t, "A to wait", func() bool { return c.waiters(ref(2)) == 1 })
		go func() { _, err := c.Load(context.Background(), ref(2), fetch); resB <- err }()
		waitFor(t, "B to wait", func() bool { return c.waiters(ref(2)) == 2 })
		cancelA()
		if err := <-resA; !errors.Is(err, context.Canceled) {
			t.Errorf("A: %v, want context.Canceled", err)
		}
		close(release)
		if err := <-resB; err != nil {
			t.Errorf("B: %v", err)
		}
		if err := <-fetchErr; err != nil {
			t.Errorf("fetch's context ended (%v) while B waited", err)
		}
		if _, ok := c.Get(ref(2)); !ok {
			t.Error("block not cached")
		}
	})
	t.Run("every caller leaves", func(t *testing.T) {
		c := mustNew(t, Config{})
		var calls atomic.Int32
		value := make(chan any, 1)
		stopped := make(chan struct{})
		ctx, cancel := context.WithCancel(context.WithValue(context.Background(), ctxKey{}, "v"))
		res := make(chan error, 1)
		go func() {
			_, err := c.Load(ctx, ref(3), func(ctx context.Context) ([]byte, error) {
				calls.Add(1)
				value <- ctx.Value(ctxKey{})
				<-ctx.Done()
				close(stopped)
				return nil, ctx.Err()
			})
			res <- err
		}()
		if v := <-value; v != "v" {
			t.Errorf("fetch's context has value %v, want the caller's", v)
		}
		cancel()
		if err := <-res; !errors.Is(err, context.Canceled) {
			t.Errorf("Load = %v, want context.Canceled", err)
		}
		<-stopped // the abandoned fetch's context is canceled
		b, err := c.Load(context.Background(), ref(3), func(context.Context) ([]byte, error) {
			calls.Add(1)
			return block(3, 10), nil
		})
		if err != nil || !bytes.Equal(b, block(3, 10)) || calls.Load() != 2 {
			t.Errorf("Load after = %v, %v after %d fetches; want a new fetch", b, err, calls.Load())
		}
	})
	t.Run("ended context", func(t *testing.T) {
		c := mustNew(t, Config{})
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		called := false
		fetch := func(context.Context) ([]byte, error) { called = true; return nil, nil }
		if _, err := c.Load(ctx, ref(4), fetch); !errors.Is(err, context.Canceled) || called {
			t.Errorf("Load = %v, fetch called %v; want context.Canceled and no fetch", err, called)
		}
		c.Add(ref(4), block(4, 10))
		if b, err := c.Load(ctx, ref(4), fetch); err != nil || !bytes.Equal(b, block(4, 10)) {
			t.Errorf("Load of a cached block with an ended ctx = %v, %v", b, err)
		}
	})
}

// TestConcurrent mixes Get, Add and Load from many goroutines (run it
// with -race) while a watcher checks the byte bound.
func TestConcurrent(t *testing.T) {
	const max = 256 << 10
	c := mustNew(t, Config{MaxBytes: max})
	size := func(i int) int { return (i * 997) % (max / 8) }
	stop := make(chan struct{})
	var watcher sync.WaitGroup
	watcher.Go(func() {
		for {
			select {
			case <-stop:
				return
			default:
			}
			if s := c.Stats(); s.Bytes > max {
				t.Errorf("Stats.Bytes %d > %d", s.Bytes, max)
				return
			}
		}
	})
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			rnd := rand.New(rand.NewPCG(uint64(g), 7))
			for range 2000 {
				i := rnd.IntN(100)
				switch rnd.IntN(3) {
				case 0:
					if b, ok := c.Get(ref(i)); ok && !bytes.Equal(b, block(i, size(i))) {
						t.Errorf("Get(%d): wrong data", i)
					}
				case 1:
					c.Add(ref(i), block(i, size(i)))
				case 2:
					b, err := c.Load(context.Background(), ref(i), func(context.Context) ([]byte, error) {
						return block(i, size(i)), nil
					})
					if err != nil || !bytes.Equal(b, block(i, size(i))) {
						t.Errorf("Load(%d) = %v", i, err)
					}
				}
			}
		})
	}
	wg.Wait()
	close(stop)
	watcher.Wait()
	c.check(t)
	if s := c.Stats(); s.Hits == 0 || s.Evictions == 0 {
		t.Errorf("Stats = %+v: the test should both hit and evict", s)
	}
}

func BenchmarkGetHit(b *testing.B) {
	c := mustNew(b, Config{})
	const n = 1000
	for i := range n {
		c.Add(ref(i), block(i, 4096))
	}
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			if _, ok := c.Get(ref(i % n)); !ok {
				b.Fatal("miss")
			}
			i++
		}
	})
}
