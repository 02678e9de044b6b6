package replica

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coffer-dev/coffer/blockstore"
)

// TestPutReturnsAfterWAcks: Put returns once W=2 of 3 have the block while
// the third write is still blocked; that write completes in the
// background.
func TestPutReturnsAfterWAcks(t *testing.T) {
	c := newCluster(t, 3)
	gw := c.gateway(nil)
	b := makeBlock("quorum", 1000)
	slow := c.placement(b.ref)[1]
	release := slow.blockPuts()

	done := make(chan error, 1)
	go func() { done <- gw.Put(context.Background(), b.ref, b.data) }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Put = %v", err)
		}
	case <-time.After(30 * time.Second):
		release()
		t.Fatal("Put did not return while one of three writes was blocked")
	}
	if slow.has(b.ref) {
		t.Fatal("blocked node has the block before its write was released")
	}
	for _, n := range c.placement(b.ref) {
		if n != slow && !n.hasGood(b.ref, b.data) {
			t.Errorf("acknowledging node %s lacks the block", n.id)
		}
	}
	release()
	waitFor(t, "the blocked replica to get its copy", func() bool { return slow.hasGood(b.ref, b.data) })
	waitFor(t, "the background fill to be counted", func() bool { return gw.Stats().FillsOK == 1 })
	if s := gw.Stats(); s.Puts != 1 || s.SloppyWrites != 0 || s.QuorumFailures != 0 {
		t.Errorf("stats %+v", s)
	}
}

// TestPutReturnsWhenCallerGivesUp: a Put whose ctx ends before the quorum
// returns ctx's error; the writes continue.
func TestPutReturnsWhenCallerGivesUp(t *testing.T) {
	c := newCluster(t, 3)
	gw := c.gateway(nil)
	b := makeBlock("give-up", 100)
	var releases []func()
	for _, n := range c.nodes {
		releases = append(releases, n.blockPuts())
	}
	putThenGiveUp(t, c, gw, b)
	for _, release := range releases {
		release()
	}
	waitFor(t, "the detached writes to land", func() bool { return len(c.holders(b.ref)) == 3 })
}

func TestPutQuorumFailure(t *testing.T) {
	c := newCluster(t, 3)
	gw := c.gateway(nil)
	b := makeBlock("no-quorum", 100)
	pl := c.placement(b.ref)
	pl[0].setDown(true)
	pl[2].setDown(true)
	err := gw.Put(context.Background(), b.ref, b.data)
	if !errors.Is(err, blockstore.ErrUnavailable) {
		t.Fatalf("Put = %v, want ErrUnavailable", err)
	}
	if !strings.Contains(err.Error(), "1 of 2") {
		t.Errorf("error %q does not say how many acknowledged", err)
	}
	if s := gw.Stats(); s.QuorumFailures != 1 {
		t.Errorf("QuorumFailures = %d, want 1", s.QuorumFailures)
	}
}

func TestPutTooFewLiveNodes(t *testing.T) {
	c := newCluster(t, 2)
	gw := c.gateway(nil)
	c.removeNode("n2")
	b := makeBlock("lonely", 100)
	if err := gw.Put(context.Background(), b.ref, b.data); !errors.Is(err, blockstore.ErrUnavailable) {
		t.Fatalf("Put = %v, want ErrUnavailable", err)
	}
	if n := c.byID["n1"].puts.Load(); n != 0 {
		t.Errorf("n1 got %d puts, want none", n)
	}
}

func TestPutHashMismatch(t *testing.T) {
	c := newCluster(t, 3)
	gw := c.gateway(nil)
	b := makeBlock("mismatch", 100)
	err := gw.Put(context.Background(), b.ref, append([]byte("x"), b.data...))
	if !errors.Is(err, blockstore.ErrHashMismatch) {
		t.Fatalf("Put = %v, want ErrHashMismatch", err)
	}
	for _, n := range c.nodes {
		if n.puts.Load() != 0 {
			t.Errorf("node %s was contacted", n.id)
		}
	}
}

// TestPutRefusedAsIs: a node's ErrTooLarge is the caller's fault and is
// returned as is, not as ErrUnavailable.
func TestPutRefusedAsIs(t *testing.T) {
	c := newCluster(t, 3)
	gw := c.gateway(nil)
	for _, n := range c.nodes {
		n.setPutErr(fmt.Errorf("%w: 100 bytes > 10", blockstore.ErrTooLarge))
	}
	b := makeBlock("big", 100)
	err := gw.Put(context.Background(), b.ref, b.data)
	if !errors.Is(err, blockstore.ErrTooLarge) || errors.Is(err, blockstore.ErrUnavailable) {
		t.Fatalf("Put = %v, want ErrTooLarge only", err)
	}
}

// TestPutSloppyQuorumConverges: with 2 of the 3 placement nodes down, the
// write goes to the next nodes in rendezvous order; once the placement
// nodes are back, the retry queue fills them, and the repairers of the
// nodes that took the sloppy copies hand them off.
func TestPutSloppyQuorumConverges(t *testing.T) {
	c := newCluster(t, 5)
	gw := c.gateway(nil)
	b := makeBlock("sloppy", 2000)
	order := c.order(b.ref)
	order[0].setDown(true)
	order[1].setDown(true)
	if err := gw.Put(context.Background(), b.ref, b.data); err != nil {
		t.Fatalf("Put = %v", err)
	}
	// The first failure comes before the quorum, so the first spare
	// (order[3]) surely gets a copy; the second spare does if the second
	// failure also came first.
	waitFor(t, "the reachable placement node and the sloppy write", func() bool {
		return order[2].has(b.ref) && order[3].has(b.ref)
	})

	order[0].setDown(false)
	order[1].setDown(false)
	// The retry entries are queued once all of the Put's writes have
	// ended, so once these copies arrive the spares' writes are done.
	waitFor(t, "the placement nodes to get their copies once back", func() bool {
		return order[0].hasGood(b.ref, b.data) && order[1].hasGood(b.ref, b.data)
	})
	waitFor(t, "the retry queue to empty", func() bool { return gw.Stats().RetryQueueLen == 0 })
	spares := int64(0)
	for _, n := range order[3:] {
		if n.has(b.ref) {
			spares++
		}
	}
	if s := gw.Stats(); s.SloppyWrites != spares {
		t.Errorf("SloppyWrites = %d, want %d", s.SloppyWrites, spares)
	}

	handedOff := int64(0)
	for _, n := range c.nodes {
		rep, err := c.replicator(n.id, nil).RepairNow(context.Background())
		if err != nil {
			t.Fatalf("RepairNow on %s: %v", n.id, err)
		}
		handedOff += rep.HandedOff
	}
	if handedOff != spares {
		t.Errorf("handed off %d copies, want %d", handedOff, spares)
	}
	c.wantPlaced([]testBlock{b})
}

// TestPutNodeDownGetsCopyWhenBack: a placement node that is down during a
// write gets its copy once it is back.
func TestPutNodeDownGetsCopyWhenBack(t *testing.T) {
	c := newCluster(t, 5)
	gw := c.gateway(nil)
	blocks := makeBlocks("down", 20, 500)
	down := c.placement(blocks[0].ref)[0]
	down.setDown(true)
	for _, b := range blocks {
		if err := gw.Put(context.Background(), b.ref, b.data); err != nil {
			t.Fatalf("Put = %v", err)
		}
	}
	waitFor(t, "retries to fail at least once", func() bool { return gw.Stats().RetriesFailed > 0 })
	down.setDown(false)
	waitFor(t, "the node to get its copies once back", func() bool {
		for _, b := range blocks {
			for _, n := range c.placement(b.ref) {
				if !n.hasGood(b.ref, b.data) {
					return false
				}
			}
		}
		return true
	})
}

// TestRetryReplacesWhenNodeLeaves: a retry entry whose node left the
// membership is re-placed on the new placement.
func TestRetryReplacesWhenNodeLeaves(t *testing.T) {
	c := newCluster(t, 5)
	gw := c.gateway(nil)
	b := makeBlock("leaver", 300)
	order := c.order(b.ref)
	// order[0]'s write fails only after the quorum is reached, so no spare
	// is written and order[0] goes to the retry queue.
	release := order[0].blockPuts()
	order[0].setPutErr(errDown)
	if err := gw.Put(context.Background(), b.ref, b.data); err != nil {
		t.Fatalf("Put = %v", err)
	}
	release()
	waitFor(t, "the failed background write", func() bool { return gw.Stats().FillsFailed == 1 })
	if order[3].has(b.ref) {
		t.Fatal("a spare got a copy")
	}
	c.removeNode(order[0].id)
	// order[3] is now a placement node; only the re-placed retry fills it.
	waitFor(t, "the new placement node to be filled", func() bool { return order[3].hasGood(b.ref, b.data) })
	waitFor(t, "the retry queue to empty", func() bool { return gw.Stats().RetryQueueLen == 0 })
	if s := gw.Stats(); s.SloppyWrites != 0 {
		t.Errorf("SloppyWrites = %d, want 0", s.SloppyWrites)
	}
}

func TestClosed(t *testing.T) {
	c := newCluster(t, 3)
	gw := c.gateway(nil)
	if err := gw.Close(); err != nil {
		t.Fatal(err)
	}
	b := makeBlock("closed", 10)
	if err := gw.Put(context.Background(), b.ref, b.data); !errors.Is(err, blockstore.ErrClosed) {
		t.Errorf("Put after Close = %v", err)
	}
	if _, err := gw.Get(context.Background(), b.ref); !errors.Is(err, blockstore.ErrClosed) {
		t.Errorf("Get after Close = %v", err)
	}
	if err := gw.Close(); err != nil {
		t.Errorf("second Close = %v", err)
	}
}

// TestPutNodeHashMismatchIsNodeFailure: Put verified the bytes itself, so
// a node that answers ErrHashMismatch (its fault, or the network's) is a
// failed node: the write moves on to the next node and succeeds, and the
// node gets its copy from the retry queue once it behaves.
func TestPutNodeHashMismatchIsNodeFailure(t *testing.T) {
	c := newCluster(t, 4)
	gw := c.gateway(nil)
	b := makeBlock("node-mismatch", 500)
	order := c.order(b.ref)
	order[0].setPutErr(fmt.Errorf("%w: flipped on the wire", blockstore.ErrHashMismatch))
	// order[1] acknowledges only after order[0] has failed, so the quorum
	// needs the spare.
	release := order[1].blockPuts()
	done := make(chan error, 1)
	go func() { done <- gw.Put(context.Background(), b.ref, b.data) }()
	var err error
	select {
	case err = <-done:
	case <-time.After(30 * time.Second):
		release()
		t.Fatal("Put did not return")
	}
	release()
	if err != nil {
		t.Fatalf("Put = %v, want success through the spare", err)
	}
	if !order[3].hasGood(b.ref, b.data) {
		t.Error("the spare did not get the block")
	}
	if s := gw.Stats(); s.SloppyWrites != 1 || s.QuorumFailures != 0 {
		t.Errorf("stats %+v, want 1 sloppy write", s)
	}
	order[0].setPutErr(nil)
	waitFor(t, "the retry queue to give the node its copy", func() bool { return order[0].hasGood(b.ref, b.data) })
}

// TestBackgroundBytesBounded: with one placement node hanging, the writes
// that go on after Put returned hold at most BackgroundBytes of data; the
// others are cancelled and their node queued for retry, which holds no
// data.
func TestBackgroundBytesBounded(t *testing.T) {
	const size, n, fit = 1000, 10, 3
	c := newCluster(t, 3)
	gw := c.gateway(func(cfg *Config) {
		cfg.BackgroundBytes = fit * size
		cfg.RetryBackoffMin, cfg.RetryBackoffMax = time.Hour, time.Hour // keep the retries queued
	})
	hung := c.nodes[0]
	release := sync.OnceFunc(hung.blockPuts())
	defer release()
	blocks := makeBlocks("budget", n, size)
	for _, b := range blocks {
		if err := gw.Put(context.Background(), b.ref, b.data); err != nil {
			t.Fatalf("Put = %v", err)
		}
	}
	// The budget is settled before Put returns.
	s := gw.Stats()
	if s.BackgroundSkipped != n-fit || s.BackgroundBytesHeld != fit*size {
		t.Fatalf("stats %+v: want %d writes skipped and %d bytes held", s, n-fit, fit*size)
	}
	waitFor(t, "the skipped writes to be cancelled", func() bool { return hung.putsWaiting.Load() == fit })
	waitFor(t, "the skipped nodes to be queued", func() bool { return gw.Stats().RetryQueueLen == n-fit })

	release()
	waitFor(t, "the budgeted writes to land", func() bool { return gw.Stats().FillsOK == fit })
	waitFor(t, "the budget to be returned", func() bool { return gw.Stats().BackgroundBytesHeld == 0 })
	held := 0
	for _, b := range blocks {
		if hung.has(b.ref) {
			held++
		}
	}
	if held != fit {
		t.Errorf("the hung node holds %d blocks, want the %d budgeted", held, fit)
	}
	// The repairers are the backstop of the queue.
	c.repairAll()
	c.wantPlaced(blocks)
}

// TestBackgroundBytesCallerGone: a Put whose caller gave up before the
// quorum holds no data without budget: its writes are cancelled.
func TestBackgroundBytesCallerGone(t *testing.T) {
	c := newCluster(t, 3)
	gw := c.gateway(func(cfg *Config) { cfg.BackgroundBytes = 10 })
	b := makeBlock("gone", 100)
	for _, n := range c.nodes {
		defer n.blockPuts()()
	}
	putThenGiveUp(t, c, gw, b)
	waitFor(t, "the writes to be cancelled", func() bool {
		for _, n := range c.nodes {
			if n.putsWaiting.Load() != 0 {
				return false
			}
		}
		return true
	})
	if s := gw.Stats(); s.BackgroundSkipped != 3 || s.BackgroundBytesHeld != 0 || s.RetryQueueLen != 0 {
		t.Errorf("stats %+v: want 3 skipped, nothing held, nothing queued (no node has the block)", s)
	}
}

// putThenGiveUp starts a Put of b through gw, waits until every node's
// (blocked) write has started, cancels the caller's ctx and checks that Put
// returns context.Canceled.
func putThenGiveUp(t *testing.T, c *cluster, gw *Replicator, b testBlock) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- gw.Put(ctx, b.ref, b.data) }()
	waitFor(t, "writes to start", func() bool {
		for _, n := range c.nodes {
			if n.putsWaiting.Load() == 0 {
				return false
			}
		}
		return true
	})
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("Put = %v, want context.Canceled", err)
	}
}
