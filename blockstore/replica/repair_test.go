package replica

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/coffer-dev/coffer/blockstore"
)

// repairAll runs RepairNow once on every live node and sums the reports.
func (c *cluster) repairAll() RepairReport {
	c.t.Helper()
	var sum RepairReport
	for _, n := range c.nodes {
		if !c.live[n.id] {
			continue
		}
		r := c.rep(n.id)
		if r == nil {
			r = c.replicator(n.id, nil)
		}
		rep, err := r.RepairNow(context.Background())
		if err != nil {
			c.t.Fatalf("RepairNow on %s: %v", n.id, err)
		}
		sum.Scanned += rep.Scanned
		sum.Pushed += rep.Pushed
		sum.BytesPushed += rep.BytesPushed
		sum.HandedOff += rep.HandedOff
		sum.Failed += rep.Failed
		sum.Unreachable = append(sum.Unreachable, rep.Unreachable...)
	}
	return sum
}

// TestRepairAfterMembershipChange: after a node joins, one repair pass on
// every node leaves each block on exactly its R placement nodes (copies
// pushed to the newcomer, surplus copies handed off); after a node leaves,
// one pass restores R copies.
func TestRepairAfterMembershipChange(t *testing.T) {
	c := newCluster(t, 4)
	gw := c.gateway(nil)
	blocks := makeBlocks("member", 200, 700)
	c.putAll(gw, blocks)
	c.wantPlaced(blocks)

	// A fifth node joins.
	n5 := c.addNode()
	moved := 0
	for _, b := range blocks {
		if nodeIndex(Place(b.ref, c.liveNodes(), 3), n5.id) >= 0 {
			moved++
		}
	}
	if moved == 0 {
		t.Fatal("no block moves to the new node; pick more blocks")
	}
	rep := c.repairAll()
	if rep.Pushed != int64(moved) || rep.HandedOff != int64(moved) || rep.BytesPushed != int64(moved*700) {
		t.Errorf("report %+v: want %d pushed and handed off", rep, moved)
	}
	if rep.Failed != 0 || len(rep.Unreachable) != 0 {
		t.Errorf("report %+v: want no failures", rep)
	}
	c.wantPlaced(blocks)

	// A second pass has nothing to do.
	if rep := c.repairAll(); rep.Pushed != 0 || rep.HandedOff != 0 {
		t.Errorf("second pass %+v, want no work", rep)
	}

	// n2 leaves (its disk is gone with it).
	c.removeNode("n2")
	rep = c.repairAll()
	if rep.Failed != 0 || rep.Pushed == 0 {
		t.Errorf("report %+v: want pushes and no failures", rep)
	}
	c.wantPlaced(blocks)
	for _, b := range blocks {
		got, err := gw.Get(context.Background(), b.ref)
		if err != nil || string(got) != string(b.data) {
			t.Fatalf("Get %s = %v", b.ref.Short(), err)
		}
	}
}

// TestRepairRefillsWipedNode: a node that lost its disk is refilled by the
// repairers of the other nodes.
func TestRepairRefillsWipedNode(t *testing.T) {
	c := newCluster(t, 4)
	gw := c.gateway(nil)
	blocks := makeBlocks("wipe", 50, 300)
	c.putAll(gw, blocks)
	wiped := c.nodes[2]
	for _, b := range blocks {
		if _, err := wiped.store.Delete(context.Background(), b.ref, time.Now().Add(time.Hour)); err != nil {
			t.Fatal(err)
		}
	}
	c.repairAll()
	c.wantPlaced(blocks)
}

// TestRepairSkipsUnreachable: a placement node that does not answer is
// reported, and no copy is handed off on its account.
func TestRepairSkipsUnreachable(t *testing.T) {
	c := newCluster(t, 4)
	gw := c.gateway(nil)
	blocks := makeBlocks("unreach", 50, 300)
	c.putAll(gw, blocks)
	n5 := c.addNode()
	n5.setDown(true)
	rep := c.repairAll()
	if rep.HandedOff != 0 || rep.Failed == 0 {
		t.Errorf("report %+v: want failures and no handoff", rep)
	}
	for _, id := range rep.Unreachable {
		if id != n5.id {
			t.Errorf("unreachable %v, want only %s", rep.Unreachable, n5.id)
		}
	}
	for _, b := range blocks {
		if len(c.holders(b.ref)) != 3 {
			t.Errorf("block %s held by %v", b.ref.Short(), c.holders(b.ref))
		}
	}
	n5.setDown(false)
	c.repairAll()
	c.wantPlaced(blocks)
}

// TestRepairOnMembershipChange: started replicators repair by themselves
// after a membership change.
func TestRepairOnMembershipChange(t *testing.T) {
	c := newCluster(t, 3)
	gw := c.gateway(nil)
	blocks := makeBlocks("auto", 60, 200)
	c.putAll(gw, blocks)
	n4 := c.addNode()
	for _, n := range c.nodes {
		c.replicator(n.id, func(cfg *Config) { cfg.RepairDebounce = time.Millisecond }).Start(context.Background())
	}
	c.setMembers() // the change the replicators see
	waitFor(t, "the repairers to place every block on its nodes", func() bool {
		for _, b := range blocks {
			want := Place(b.ref, c.liveNodes(), 3)
			if len(c.holders(b.ref)) != 3 {
				return false
			}
			for _, n := range want {
				if !c.byID[n.ID].has(b.ref) {
					return false
				}
			}
		}
		return true
	})
	c.wantPlaced(blocks)
	if c.rep(n4.id).Stats().Handoffs != 0 {
		t.Error("the new node handed off blocks")
	}
}

// TestRepairRateLimitCanceled: a repair held up by its rate limit stops
// when its ctx is canceled.
func TestRepairRateLimitCanceled(t *testing.T) {
	c := newCluster(t, 4)
	blocks := makeBlocks("rate", 10, 1024)
	n1 := c.nodes[0]
	for _, b := range blocks {
		if err := n1.store.Put(context.Background(), b.ref, b.data); err != nil {
			t.Fatal(err)
		}
	}
	// 1 byte/s: no 1 KiB block can be pushed before the cancel.
	r := c.replicator(n1.id, func(cfg *Config) { cfg.RepairRate = 1 })
	asked := make(chan struct{})
	var once sync.Once
	for _, n := range c.nodes[1:] {
		n.setOnHas(func() { once.Do(func() { close(asked) }) })
	}
	ctx, cancel := context.WithCancel(context.Background())
	type result struct {
		rep RepairReport
		err error
	}
	done := make(chan result, 1)
	go func() {
		rep, err := r.RepairNow(ctx)
		done <- result{rep, err}
	}()
	<-asked
	cancel()
	res := <-done
	if !errors.Is(res.err, context.Canceled) {
		t.Fatalf("RepairNow = %v, want context.Canceled", res.err)
	}
	if res.rep.Pushed != 0 {
		t.Errorf("pushed %d blocks at 1 byte/s", res.rep.Pushed)
	}
	for _, n := range c.nodes[1:] {
		if n.puts.Load() != 0 {
			t.Errorf("node %s got a push", n.id)
		}
	}
}

func TestRepairNeedsLocal(t *testing.T) {
	c := newCluster(t, 3)
	gw := c.gateway(nil)
	if _, err := gw.RepairNow(context.Background()); !errors.Is(err, blockstore.ErrInvalidArgument) {
		t.Errorf("RepairNow on a gateway = %v", err)
	}
	if _, err := gw.ScrubNow(context.Background()); !errors.Is(err, blockstore.ErrInvalidArgument) {
		t.Errorf("ScrubNow on a gateway = %v", err)
	}
	if err := gw.RepairBlock(context.Background(), blockstore.Sum(nil)); !errors.Is(err, blockstore.ErrInvalidArgument) {
		t.Errorf("RepairBlock on a gateway = %v", err)
	}
}

// TestScrub: the scrubber finds a corrupt local copy and restores it.
func TestScrub(t *testing.T) {
	c := newCluster(t, 3)
	gw := c.gateway(nil)
	blocks := makeBlocks("scrub", 20, 500)
	c.putAll(gw, blocks)
	n1 := c.nodes[0]
	bad := blocks[7]
	if !n1.store.Corrupt(bad.ref) {
		t.Fatal("block not stored")
	}
	r := c.replicator(n1.id, nil)
	r.Start(context.Background()) // also runs the OnCorrupt repair; both share the work
	rep, err := r.ScrubNow(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	want := ScrubReport{Scanned: 20, Bytes: 19 * 500, Corrupt: 1, Repaired: 1}
	if rep != want {
		t.Errorf("report %+v, want %+v", rep, want)
	}
	if !n1.hasGood(bad.ref, bad.data) {
		t.Error("the corrupt copy was not repaired")
	}
	if s := r.Stats(); s.CorruptFound != 1 || s.Scrubbed != 20 || s.Repaired != 1 {
		t.Errorf("stats %+v", s)
	}
	// A clean pass.
	if rep, err := r.ScrubNow(context.Background()); err != nil || rep != (ScrubReport{Scanned: 20, Bytes: 20 * 500}) {
		t.Errorf("second scrub = %+v, %v", rep, err)
	}
}

// TestScrubUnrepairable: a corrupt block no other node has is counted as
// failed.
func TestScrubUnrepairable(t *testing.T) {
	c := newCluster(t, 3)
	n1 := c.nodes[0]
	b := makeBlock("only-here", 100)
	if err := n1.store.Put(context.Background(), b.ref, b.data); err != nil {
		t.Fatal(err)
	}
	n1.store.Corrupt(b.ref)
	rep, err := c.replicator(n1.id, nil).ScrubNow(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if rep != (ScrubReport{Scanned: 1, Corrupt: 1, Failed: 1}) {
		t.Errorf("report %+v", rep)
	}
}

// TestOnCorruptRepairs: the store's OnCorrupt callback queues a repair
// that restores the copy in the background.
func TestOnCorruptRepairs(t *testing.T) {
	c := newCluster(t, 3)
	gw := c.gateway(nil)
	b := makeBlock("callback", 800)
	c.putAll(gw, []testBlock{b})
	n2 := c.nodes[1]
	r := c.replicator(n2.id, nil)
	r.Start(context.Background())
	n2.store.Corrupt(b.ref)
	if _, err := n2.store.Get(context.Background(), b.ref); !errors.Is(err, blockstore.ErrCorrupt) {
		t.Fatalf("Get of the corrupted copy = %v", err)
	}
	waitFor(t, "the background repair", func() bool { return n2.hasGood(b.ref, b.data) })
	waitFor(t, "the repair to be counted", func() bool { return r.Stats().Repaired == 1 })
}

// TestRepairAndScrubTimers: with repair-on-change off, the RepairInterval
// timer still repairs, and the ScrubInterval timer scrubs.
func TestRepairAndScrubTimers(t *testing.T) {
	c := newCluster(t, 3)
	gw := c.gateway(nil)
	blocks := makeBlocks("timer", 30, 200)
	c.putAll(gw, blocks)
	c.addNode()
	for _, n := range c.nodes {
		c.replicator(n.id, func(cfg *Config) {
			cfg.RepairInterval = 5 * time.Millisecond
			cfg.ScrubInterval = 5 * time.Millisecond
		}).Start(context.Background())
	}
	waitFor(t, "the timed repairs to place every block", func() bool {
		for _, b := range blocks {
			if len(c.holders(b.ref)) != 3 {
				return false
			}
			for _, n := range c.placement(b.ref) {
				if !n.has(b.ref) {
					return false
				}
			}
		}
		return true
	})
	c.wantPlaced(blocks)
	waitFor(t, "a timed scrub", func() bool { return c.rep("n1").Stats().Scrubbed > 0 })
}

func TestSuccessor(t *testing.T) {
	var ff blockstore.Ref
	for i := range ff {
		ff[i] = 0xff
	}
	for _, tc := range []struct {
		in, want string
		ok       bool
	}{
		{"0000000000000000000000000000000000000000000000000000000000000000", "0000000000000000000000000000000000000000000000000000000000000001", true},
		{"00000000000000000000000000000000000000000000000000000000000000ff", "0000000000000000000000000000000000000000000000000000000000000100", true},
		{"12ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff", "1300000000000000000000000000000000000000000000000000000000000000", true},
		{ff.String(), "", false},
	} {
		got, ok := blockstore.MustParseRef(tc.in).Next()
		if ok != tc.ok || (ok && got.String() != tc.want) {
			t.Errorf("%s.Next() = %s, %v; want %s, %v", tc.in, got, ok, tc.want, tc.ok)
		}
	}
}

// TestWalkLocalBatches: the walk sees every local block once, in order, in
// batches of at most repairBatch.
func TestWalkLocalBatches(t *testing.T) {
	c := newCluster(t, 1)
	n1 := c.nodes[0]
	const count = 2*repairBatch + 345
	for i := range count {
		b := makeBlock(fmt.Sprintf("walk-%d", i), 16)
		if err := n1.store.Put(context.Background(), b.ref, b.data); err != nil {
			t.Fatal(err)
		}
	}
	r := c.replicator(n1.id, nil)
	var seen []blockstore.Ref
	batches := 0
	err := r.walkLocal(context.Background(), func(_ context.Context, infos []blockstore.BlockInfo) error {
		batches++
		if len(infos) > repairBatch {
			t.Errorf("batch of %d", len(infos))
		}
		for _, info := range infos {
			seen = append(seen, info.Ref)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(seen) != count || batches != 3 {
		t.Errorf("saw %d blocks in %d batches, want %d in 3", len(seen), batches, count)
	}
	if !slices.IsSortedFunc(seen, func(a, b blockstore.Ref) int { return bytes.Compare(a[:], b[:]) }) {
		t.Error("blocks not in Ref order")
	}
	if len(slices.Compact(slices.Clone(seen))) != len(seen) {
		t.Error("a block was seen twice")
	}
}

// TestWalkLocalReadErrors: a local block that cannot be read is counted as
// failed and the walk goes on with the next one; only a closed store (or
// ctx) ends it.
func TestWalkLocalReadErrors(t *testing.T) {
	errIO := errors.New("test: read error")
	for _, tc := range []struct {
		name    string
		scrub   bool
		err     error
		wantErr error // nil: the walk completes
	}{
		{"repair, read error", false, errIO, nil},
		{"repair, store closed", false, fmt.Errorf("%w: test", blockstore.ErrClosed), blockstore.ErrClosed},
		{"scrub, read error", true, errIO, nil},
		{"scrub, store closed", true, fmt.Errorf("%w: test", blockstore.ErrClosed), blockstore.ErrClosed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := newCluster(t, 3)
			n1 := c.nodes[0]
			blocks := makeBlocks("unreadable", 20, 300)
			for _, b := range blocks {
				if err := n1.store.Put(context.Background(), b.ref, b.data); err != nil {
					t.Fatal(err)
				}
			}
			// The first block of the walk cannot be read.
			slices.SortFunc(blocks, func(a, b testBlock) int { return bytes.Compare(a.ref[:], b.ref[:]) })
			bad := blocks[0].ref
			r := c.replicator(n1.id, func(cfg *Config) {
				cfg.Local = &hookStore{Store: n1.store, getErr: func(ref blockstore.Ref) error {
					if ref == bad {
						return tc.err
					}
					return nil
				}}
			})
			var failed int64
			var err error
			if tc.scrub {
				var rep ScrubReport
				rep, err = r.ScrubNow(context.Background())
				failed = rep.Failed
				if tc.wantErr == nil && rep.Scanned != int64(len(blocks)-1) {
					t.Errorf("scanned %d, want %d", rep.Scanned, len(blocks)-1)
				}
			} else {
				var rep RepairReport
				rep, err = r.RepairNow(context.Background())
				failed = rep.Failed
				if tc.wantErr == nil && rep.Pushed != int64(2*(len(blocks)-1)) {
					t.Errorf("pushed %d, want %d", rep.Pushed, 2*(len(blocks)-1))
				}
			}
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("walk = %v, want %v", err, tc.wantErr)
				}
				if c.nodes[1].puts.Load()+c.nodes[2].puts.Load() != 0 {
					t.Error("the walk went on after the store closed")
				}
				return
			}
			if err != nil {
				t.Fatalf("walk = %v, want it to go on past the unreadable block", err)
			}
			if failed == 0 {
				t.Error("the unreadable block was not counted as failed")
			}
			if !tc.scrub {
				c.wantPlaced(blocks[1:])
			}
		})
	}
}

// TestCloseCancelsManualCalls: Close does not wait for a RepairNow,
// ScrubNow or RepairBlock that a caller started with a ctx that never
// ends: it cancels them.
func TestCloseCancelsManualCalls(t *testing.T) {
	for _, tc := range []struct {
		name string
		call func(r *Replicator, ctx context.Context, ref blockstore.Ref) error
		mod  func(cfg *Config)
	}{
		{"RepairNow at 1 byte/s", func(r *Replicator, ctx context.Context, _ blockstore.Ref) error {
			_, err := r.RepairNow(ctx)
			return err
		}, func(cfg *Config) { cfg.RepairRate = 1 }},
		{"ScrubNow at 1 byte/s", func(r *Replicator, ctx context.Context, _ blockstore.Ref) error {
			_, err := r.ScrubNow(ctx)
			return err
		}, func(cfg *Config) { cfg.ScrubRate = 1 }},
		{"RepairBlock stuck in the store", func(r *Replicator, ctx context.Context, ref blockstore.Ref) error {
			return r.RepairBlock(ctx, ref)
		}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := newCluster(t, 3)
			n1 := c.nodes[0]
			b := makeBlock("close-"+tc.name, 1024)
			if err := n1.store.Put(context.Background(), b.ref, b.data); err != nil {
				t.Fatal(err)
			}
			entered, enter := signal()
			r := c.replicator(n1.id, func(cfg *Config) {
				cfg.Local = &hookStore{
					Store:       n1.store,
					onEnumerate: func(context.Context) error { enter(); return nil },
					onHas: func(ctx context.Context) error {
						enter()
						<-ctx.Done()
						return ctx.Err()
					},
				}
				if tc.mod != nil {
					tc.mod(cfg)
				}
			})
			// The caller's ctx ends only if the test fails, so that the
			// cleanup's Close can return.
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			called := make(chan error, 1)
			go func() { called <- tc.call(r, ctx, b.ref) }()
			<-entered
			closed := make(chan struct{})
			go func() {
				r.Close()
				close(closed)
			}()
			select {
			case <-closed:
			case <-time.After(10 * time.Second):
				cancel()
				<-closed
				t.Fatal("Close waited for the call")
			}
			if err := <-called; !errors.Is(err, blockstore.ErrClosed) {
				t.Errorf("the call returned %v, want ErrClosed", err)
			}
		})
	}
}

// TestRepairBlockCallersKeepTheirCtx: concurrent RepairBlock calls for one
// ref share the work, but the first caller going away does not fail the
// others: each waits on its own ctx.
func TestRepairBlockCallersKeepTheirCtx(t *testing.T) {
	c := newCluster(t, 3)
	gw := c.gateway(nil)
	b := makeBlock("shared-repair", 700)
	c.putAll(gw, []testBlock{b})
	n1 := c.nodes[0]
	if ok, err := n1.store.Delete(context.Background(), b.ref, time.Now().Add(time.Hour)); !ok || err != nil {
		t.Fatalf("Delete = %v, %v", ok, err)
	}
	entered, enter := signal()
	release := make(chan struct{})
	r := c.replicator(n1.id, func(cfg *Config) {
		cfg.Local = &hookStore{Store: n1.store, onHas: func(ctx context.Context) error {
			enter()
			select {
			case <-release:
				return nil
			case <-ctx.Done():
				return ctx.Err()
			}
		}}
	})
	ctxA, cancelA := context.WithCancel(context.Background())
	defer cancelA()
	doneA := make(chan error, 1)
	go func() { doneA <- r.RepairBlock(ctxA, b.ref) }()
	<-entered
	doneB := make(chan error, 1)
	go func() { doneB <- r.RepairBlock(context.Background(), b.ref) }()
	waitFor(t, "the second call to join the first", func() bool { return r.flightWaiters(b.ref) == 1 })

	cancelA()
	if err := <-doneA; !errors.Is(err, context.Canceled) {
		t.Errorf("the canceled caller got %v, want context.Canceled", err)
	}
	close(release)
	if err := <-doneB; err != nil {
		t.Fatalf("the second caller got %v, want the shared repair's success", err)
	}
	if !n1.hasGood(b.ref, b.data) {
		t.Error("the local copy was not restored")
	}
}
