package gc

import (
	"context"
	"errors"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/coffer-dev/coffer/blockstore"
)

func TestRunKeepsLiveAndYoungDeletesOld(t *testing.T) {
	clk := newClock()
	s := newStore(t, clk)
	live := NewExactSet()

	liveOld := put(t, s, blockData("live-old", 1))
	live.Add(liveOld)
	garbageData := blockData("garbage", 2)
	garbage := put(t, s, garbageData)
	clk.Advance(time.Hour)
	edge := put(t, s, blockData("edge", 3)) // StoredAt will equal the cutoff exactly
	clk.Advance(DefaultGrace)
	young := put(t, s, blockData("young", 4))
	liveYoung := put(t, s, blockData("live-young", 5))
	live.Add(liveYoung)
	live.Add(blockstore.Sum([]byte("a live ref this store does not hold")))

	rep, err := Run(context.Background(), s, live, Config{Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	if want := clk.Now().Add(-DefaultGrace); !rep.Cutoff.Equal(want) {
		t.Errorf("Cutoff = %v, want %v", rep.Cutoff, want)
	}
	want := Report{Scanned: 5, Live: 2, Young: 2, Deleted: 1, BytesFreed: int64(len(garbageData)), Cutoff: rep.Cutoff, Duration: rep.Duration}
	if rep != want {
		t.Errorf("report = %+v, want %+v", rep, want)
	}
	for _, c := range []struct {
		name string
		ref  blockstore.Ref
		want bool
	}{{"live old", liveOld, true}, {"garbage", garbage, false}, {"StoredAt == cutoff", edge, true}, {"young", young, true}, {"live young", liveYoung, true}} {
		if got := has(t, s, c.ref); got != c.want {
			t.Errorf("%s: stored = %v, want %v", c.name, got, c.want)
		}
	}
}

// populate stores n blocks with random ages (nine tenths older than the
// grace period) and marks about a third of them live. It returns the live set and
// the refs a run at the clock's time with the default grace must delete,
// with their total size.
func populate(t testing.TB, s blockstore.Store, clk *clock, n int, seed uint64) (*ExactSet, map[blockstore.Ref]bool, int64) {
	rng := rand.New(rand.NewPCG(seed, 1))
	type entry struct {
		ref  blockstore.Ref
		size int64
		at   time.Time
		live bool
	}
	var entries []entry
	for i := range n {
		data := blockData("pop", i)
		entries = append(entries, entry{ref: put(t, s, data), size: int64(len(data)), at: clk.Now(), live: rng.IntN(3) == 0})
		clk.Advance(time.Duration(1 + rng.IntN(int(10*time.Second))))
	}
	// Put the cutoff at the 90th percentile of the blocks' ages.
	cutoff := entries[n*9/10].at
	clk.Advance(cutoff.Add(DefaultGrace).Sub(clk.Now()))
	live := NewExactSet()
	garbage := make(map[blockstore.Ref]bool)
	var bytes int64
	for _, e := range entries {
		switch {
		case e.live:
			live.Add(e.ref)
		case e.at.Before(cutoff):
			garbage[e.ref] = true
			bytes += e.size
		}
	}
	if len(garbage) == 0 || len(garbage) == n-live.Len() {
		t.Fatalf("populate: %d garbage of %d unmarked: want some young and some old", len(garbage), n-live.Len())
	}
	return live, garbage, bytes
}

func TestDryRunReportsWhatRunDeletes(t *testing.T) {
	for _, maxDeletes := range []int{0, 7} {
		clk := newClock()
		s := newStore(t, clk)
		live, garbage, bytes := populate(t, s, clk, 500, 42)
		before := count(t, s)

		dry, err := Run(context.Background(), s, live, Config{Now: clk.Now, DryRun: true, MaxDeletes: maxDeletes})
		if err != nil {
			t.Fatal(err)
		}
		if got := count(t, s); got != before {
			t.Fatalf("MaxDeletes %d: dry run changed the store: %d blocks, want %d", maxDeletes, got, before)
		}
		if !dry.DryRun || dry.Deleted != 0 || dry.BytesFreed != 0 || dry.Raced != 0 {
			t.Errorf("MaxDeletes %d: dry report %+v: want DryRun and nothing deleted", maxDeletes, dry)
		}
		if maxDeletes == 0 && (dry.WouldDelete != int64(len(garbage)) || dry.BytesWouldFree != bytes) {
			t.Errorf("dry run would delete %d (%d bytes), want %d (%d bytes)", dry.WouldDelete, dry.BytesWouldFree, len(garbage), bytes)
		}

		real, err := Run(context.Background(), s, live, Config{Now: clk.Now, MaxDeletes: maxDeletes})
		if err != nil {
			t.Fatal(err)
		}
		if real.Deleted != dry.WouldDelete || real.BytesFreed != dry.BytesWouldFree || real.Truncated != dry.Truncated ||
			real.Scanned != dry.Scanned || real.Live != dry.Live || real.Young != dry.Young {
			t.Errorf("MaxDeletes %d: real run %+v does not match dry run %+v", maxDeletes, real, dry)
		}
		if real.DryRun || real.WouldDelete != 0 || real.BytesWouldFree != 0 {
			t.Errorf("MaxDeletes %d: real report %+v: want no dry-run counts", maxDeletes, real)
		}
		if got := count(t, s); got != before-real.Deleted {
			t.Errorf("MaxDeletes %d: store holds %d blocks, want %d", maxDeletes, got, before-real.Deleted)
		}
		if maxDeletes > 0 && (real.Deleted != int64(maxDeletes) || !real.Truncated) {
			t.Errorf("MaxDeletes %d: deleted %d, truncated %v", maxDeletes, real.Deleted, real.Truncated)
		}
	}
}

// TestRunManyBatches crosses several delete batches: every block is
// scanned once and every old unmarked block goes.
func TestRunManyBatches(t *testing.T) {
	clk := newClock()
	s := newStore(t, clk)
	n := 2*deleteBatch + 500
	live, garbage, bytes := populate(t, s, clk, n, 7)
	if len(garbage) <= deleteBatch {
		t.Fatalf("only %d candidates: want more than one batch", len(garbage))
	}
	rep, err := Run(context.Background(), s, live, Config{Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Scanned != int64(n) || rep.Live != int64(live.Len()) || rep.Deleted != int64(len(garbage)) || rep.BytesFreed != bytes ||
		rep.Scanned != rep.Live+rep.Young+rep.Deleted {
		t.Errorf("report %+v: want %d scanned, %d live, %d deleted (%d bytes)", rep, n, live.Len(), len(garbage), bytes)
	}
	for ref := range garbage {
		if has(t, s, ref) {
			t.Fatalf("garbage %s survived", ref.Short())
		}
	}
}

func TestRePutDuringRunSurvives(t *testing.T) {
	clk := newClock()
	mem := newStore(t, clk)
	targetData := blockData("target", 1)
	target := put(t, mem, targetData)
	other := put(t, mem, blockData("other", 2))
	clk.Advance(2 * DefaultGrace)

	seen := 0
	s := &hookStore{Store: mem, onSee: func(bi blockstore.BlockInfo) {
		if bi.Ref != target {
			return
		}
		seen++
		// The walk has read the old StoredAt; an upload now dedups
		// against the block before the collector deletes it.
		clk.Advance(time.Second)
		if err := mem.Put(context.Background(), target, targetData); err != nil {
			t.Errorf("re-put: %v", err)
		}
	}}
	rep, err := Run(context.Background(), s, NewExactSet(), Config{Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	if seen != 1 {
		t.Fatalf("walk saw the target %d times", seen)
	}
	if rep.Raced != 1 || rep.Deleted != 1 || rep.Young != 0 || rep.Errors != 0 {
		t.Errorf("report %+v: want 1 raced (target), 1 deleted (other)", rep)
	}
	if !has(t, mem, target) {
		t.Error("re-put block was deleted")
	}
	if has(t, mem, other) {
		t.Error("other old block survived")
	}
}

func TestDeleteErrorCountedAndRunContinues(t *testing.T) {
	clk := newClock()
	mem := newStore(t, clk)
	var refs []blockstore.Ref
	for i := range 5 {
		refs = append(refs, put(t, mem, blockData("old", i)))
	}
	clk.Advance(2 * DefaultGrace)
	failing := refs[2]
	boom := errors.New("disk on fire")
	s := &hookStore{Store: mem, onDelete: func(ctx context.Context, ref blockstore.Ref, _ time.Time, next func() (bool, error)) (bool, error) {
		if ref == failing {
			return false, boom
		}
		return next()
	}}
	rep, err := Run(context.Background(), s, NewExactSet(), Config{Now: clk.Now})
	if err != nil {
		t.Fatalf("Run: %v (a delete error must not fail the run)", err)
	}
	if rep.Errors != 1 || !errors.Is(rep.FirstErr, boom) || rep.Deleted != 4 {
		t.Errorf("report %+v: want 1 error (disk on fire), 4 deleted", rep)
	}
	for _, ref := range refs {
		if got, want := has(t, mem, ref), ref == failing; got != want {
			t.Errorf("%s stored = %v, want %v", ref.Short(), got, want)
		}
	}
}

func TestRunStopsOnClosedStore(t *testing.T) {
	clk := newClock()
	s := newStore(t, clk)
	put(t, s, blockData("x", 1))
	s.Close()
	_, err := Run(context.Background(), s, NewExactSet(), Config{Now: clk.Now})
	if !errors.Is(err, blockstore.ErrClosed) {
		t.Fatalf("Run on a closed store: %v, want ErrClosed", err)
	}
}

func TestCancelDuringWalk(t *testing.T) {
	clk := newClock()
	mem := newStore(t, clk)
	for i := range 20 {
		put(t, mem, blockData("old", i))
	}
	clk.Advance(2 * DefaultGrace)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	s := &hookStore{Store: mem, onSee: func(blockstore.BlockInfo) { cancel() }}
	rep, err := Run(ctx, s, NewExactSet(), Config{Now: clk.Now})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Run = %v, want context.Canceled", err)
	}
	if rep.Scanned == 0 || rep.Scanned >= 20 || rep.Deleted != 0 || count(t, mem) != 20 {
		t.Errorf("report %+v, %d blocks left: want a partial walk and nothing deleted", rep, count(t, mem))
	}
	if _, err := Run(ctx, mem, NewExactSet(), Config{Now: clk.Now}); !errors.Is(err, context.Canceled) {
		t.Errorf("Run with a done ctx = %v, want context.Canceled", err)
	}
}

func TestMaxDeletesTruncates(t *testing.T) {
	clk := newClock()
	s := newStore(t, clk)
	for i := range 10 {
		put(t, s, blockData("old", i))
	}
	clk.Advance(2 * DefaultGrace)
	cfg := Config{Now: clk.Now, MaxDeletes: 4}
	for i, want := range []struct {
		deleted   int64
		truncated bool
	}{{4, true}, {4, true}, {2, false}, {0, false}} {
		rep, err := Run(context.Background(), s, NewExactSet(), cfg)
		if err != nil {
			t.Fatal(err)
		}
		if rep.Deleted != want.deleted || rep.Truncated != want.truncated {
			t.Errorf("run %d: deleted %d truncated %v, want %d %v", i, rep.Deleted, rep.Truncated, want.deleted, want.truncated)
		}
	}
	if n := count(t, s); n != 0 {
		t.Errorf("%d blocks left", n)
	}
}

func TestDeleteRate(t *testing.T) {
	const tiny = 1e-4 // one delete per 10 000 s: a second delete never comes in time

	t.Run("first delete is not delayed", func(t *testing.T) {
		clk := newClock()
		s := newStore(t, clk)
		for i := range 3 {
			put(t, s, blockData("old", i))
		}
		clk.Advance(2 * DefaultGrace)
		rep, err := Run(context.Background(), s, NewExactSet(), Config{Now: clk.Now, DeleteRate: tiny, MaxDeletes: 1})
		if err != nil || rep.Deleted != 1 || !rep.Truncated {
			t.Fatalf("Run = %+v, %v: want 1 deleted, truncated", rep, err)
		}
	})

	t.Run("waiting honours ctx", func(t *testing.T) {
		clk := newClock()
		mem := newStore(t, clk)
		for i := range 3 {
			put(t, mem, blockData("old", i))
		}
		clk.Advance(2 * DefaultGrace)
		deleted := make(chan struct{}, 3)
		s := &hookStore{Store: mem, onDelete: func(_ context.Context, _ blockstore.Ref, _ time.Time, next func() (bool, error)) (bool, error) {
			ok, err := next()
			deleted <- struct{}{}
			return ok, err
		}}
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		type result struct {
			rep Report
			err error
		}
		done := make(chan result, 1)
		go func() {
			rep, err := Run(ctx, s, NewExactSet(), Config{Now: clk.Now, DeleteRate: tiny})
			done <- result{rep, err}
		}()
		<-deleted // the first token is free; the run now waits for the second
		cancel()
		var r result
		select {
		case r = <-done:
		case <-time.After(30 * time.Second):
			t.Fatal("Run did not return after ctx was cancelled")
		}
		if !errors.Is(r.err, context.Canceled) || r.rep.Deleted != 1 || count(t, mem) != 2 {
			t.Errorf("Run = %+v, %v, %d blocks left: want context.Canceled after 1 delete", r.rep, r.err, count(t, mem))
		}
	})

	t.Run("dry run is not limited", func(t *testing.T) {
		clk := newClock()
		s := newStore(t, clk)
		for i := range 3 {
			put(t, s, blockData("old", i))
		}
		clk.Advance(2 * DefaultGrace)
		rep, err := Run(context.Background(), s, NewExactSet(), Config{Now: clk.Now, DeleteRate: tiny, DryRun: true})
		if err != nil || rep.WouldDelete != 3 {
			t.Fatalf("Run = %+v, %v: want 3 would-delete", rep, err)
		}
	})
}

// TestCutoffThenRunAt follows the preferred order: the cutoff is taken,
// then the live set is built (slowly), then RunAt sweeps. A block uploaded
// while the mark was being built is not in it but is younger than the
// cutoff.
func TestCutoffThenRunAt(t *testing.T) {
	clk := newClock()
	s := newStore(t, clk)
	old := put(t, s, blockData("old", 1))
	clk.Advance(2 * DefaultGrace)
	cfg := Config{Now: clk.Now}
	cutoff, err := Cutoff(cfg)
	if err != nil {
		t.Fatal(err)
	}
	inFlight := put(t, s, blockData("in-flight", 2))
	clk.Advance(3 * DefaultGrace) // a very slow mark
	rep, err := RunAt(context.Background(), s, NewExactSet(), cutoff, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if !rep.Cutoff.Equal(cutoff) || rep.Deleted != 1 || rep.Young != 1 {
		t.Errorf("report %+v: want cutoff %v, 1 deleted, 1 young", rep, cutoff)
	}
	if has(t, s, old) || !has(t, s, inFlight) {
		t.Errorf("old stored %v (want false), in-flight stored %v (want true)", has(t, s, old), has(t, s, inFlight))
	}
}

func TestRunArguments(t *testing.T) {
	clk := newClock()
	s := newStore(t, clk)
	ctx := context.Background()
	cfg := Config{Now: clk.Now}
	now := clk.Now()
	for _, c := range []struct {
		name string
		run  func() (Report, error)
		want error
	}{
		{"nil store", func() (Report, error) { return Run(ctx, nil, NewExactSet(), cfg) }, blockstore.ErrInvalidArgument},
		{"nil live set", func() (Report, error) { return Run(ctx, s, nil, cfg) }, blockstore.ErrInvalidArgument},
		{"bad config", func() (Report, error) { return Run(ctx, s, NewExactSet(), Config{Grace: -1}) }, blockstore.ErrInvalidConfig},
		{"RunAt bad config", func() (Report, error) { return RunAt(ctx, s, NewExactSet(), now, Config{MaxDeletes: -1}) }, blockstore.ErrInvalidConfig},
		{"RunAt zero cutoff", func() (Report, error) { return RunAt(ctx, s, NewExactSet(), time.Time{}, cfg) }, blockstore.ErrInvalidArgument},
		{"RunAt cutoff inside the grace period", func() (Report, error) {
			return RunAt(ctx, s, NewExactSet(), now.Add(-DefaultGrace+time.Nanosecond), cfg)
		}, blockstore.ErrInvalidArgument},
		{"RunAt cutoff in the future", func() (Report, error) { return RunAt(ctx, s, NewExactSet(), now.Add(time.Hour), cfg) }, blockstore.ErrInvalidArgument},
		{"RunAt cutoff = Now() - Grace", func() (Report, error) { return RunAt(ctx, s, NewExactSet(), now.Add(-DefaultGrace), cfg) }, nil},
	} {
		if _, err := c.run(); !errors.Is(err, c.want) || (c.want == nil) != (err == nil) {
			t.Errorf("%s: err = %v, want %v", c.name, err, c.want)
		}
	}
	if _, err := Cutoff(Config{Grace: time.Second}); !errors.Is(err, blockstore.ErrInvalidConfig) {
		t.Errorf("Cutoff with a 1 s grace: %v, want ErrInvalidConfig", err)
	}
}

func TestRunWithMergedBloomFilters(t *testing.T) {
	clk := newClock()
	s := newStore(t, clk)
	shards := make([]*BloomFilter, 3)
	for i := range shards {
		f, err := NewBloomFilter(1000, 1e-6)
		if err != nil {
			t.Fatal(err)
		}
		shards[i] = f
	}
	var liveRefs, garbage []blockstore.Ref
	for i := range 300 {
		ref := put(t, s, blockData("b", i))
		if i%2 == 0 {
			shards[i%3].Add(ref)
			liveRefs = append(liveRefs, ref)
		} else {
			garbage = append(garbage, ref)
		}
	}
	clk.Advance(2 * DefaultGrace)
	// Each shard's filter travels encoded to the collector.
	var live BloomFilter
	for i, f := range shards {
		b, err := f.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		var g BloomFilter
		if err := g.UnmarshalBinary(b); err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			live = g
		} else if err := live.Merge(&g); err != nil {
			t.Fatal(err)
		}
	}
	rep, err := Run(context.Background(), s, &live, Config{Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	for _, ref := range liveRefs {
		if !has(t, s, ref) {
			t.Fatalf("live block %s deleted", ref.Short())
		}
	}
	// At a 1e-6 rate, keeping more than one garbage block is not chance.
	if rep.Deleted < int64(len(garbage))-1 {
		t.Errorf("deleted %d of %d garbage blocks", rep.Deleted, len(garbage))
	}
}

func TestExactSet(t *testing.T) {
	var zero ExactSet
	a, b := blockstore.Sum([]byte("a")), blockstore.Sum([]byte("b"))
	if zero.Contains(a) || zero.Len() != 0 {
		t.Error("zero ExactSet is not empty")
	}
	zero.Add(a)
	s := NewExactSet()
	s.Add(a)
	s.Add(a)
	for _, set := range []*ExactSet{&zero, s} {
		if !set.Contains(a) || set.Contains(b) || set.Len() != 1 {
			t.Errorf("set with a: Contains(a) %v, Contains(b) %v, Len %d", set.Contains(a), set.Contains(b), set.Len())
		}
	}
}

func TestSuccessor(t *testing.T) {
	var zero, one, ff, carry, carried blockstore.Ref
	one[31] = 1
	for i := range ff {
		ff[i] = 0xff
	}
	carry[30], carry[31] = 0x01, 0xff
	carried[30] = 0x02
	for _, c := range []struct {
		in, want blockstore.Ref
		ok       bool
	}{{zero, one, true}, {carry, carried, true}, {ff, zero, false}} {
		if got, ok := c.in.Next(); got != c.want || ok != c.ok {
			t.Errorf("%s.Next() = %s, %v; want %s, %v", c.in, got, ok, c.want, c.ok)
		}
	}
}
