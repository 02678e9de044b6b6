package replica

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/coffer-dev/coffer/blockstore"
)

// TestGetFallbackAndReadRepair: Get falls back past a first placement node
// that is down, returns wrong bytes, has a corrupt copy or none; it
// read-repairs the node in the last three cases.
func TestGetFallbackAndReadRepair(t *testing.T) {
	for _, tc := range []struct {
		name   string
		fault  func(c *cluster, n *fakeNode, b testBlock)
		repair bool
	}{
		{"down", func(c *cluster, n *fakeNode, b testBlock) { n.setDown(true) }, false},
		{"wrong bytes", func(c *cluster, n *fakeNode, b testBlock) { n.setWrongBytes(true) }, true},
		{"corrupt", func(c *cluster, n *fakeNode, b testBlock) {
			if !n.store.Corrupt(b.ref) {
				t.Fatal("block not stored")
			}
		}, true},
		{"not found", func(c *cluster, n *fakeNode, b testBlock) {
			if ok, err := n.store.Delete(context.Background(), b.ref, time.Now().Add(time.Hour)); !ok || err != nil {
				t.Fatalf("Delete = %v, %v", ok, err)
			}
		}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := newCluster(t, 4)
			gw := c.gateway(nil)
			b := makeBlock("get-"+tc.name, 3000)
			c.putAll(gw, []testBlock{b})
			first := c.placement(b.ref)[0]
			putsBefore := first.puts.Load()
			tc.fault(c, first, b)

			got, err := gw.Get(context.Background(), b.ref)
			if err != nil || string(got) != string(b.data) {
				t.Fatalf("Get = %d bytes, %v; want the block", len(got), err)
			}
			if s := gw.Stats(); s.Fallbacks != 1 || s.Gets != 1 || s.GetFailures != 0 {
				t.Errorf("stats %+v, want 1 get, 1 fallback", s)
			}
			if !tc.repair {
				return
			}
			waitFor(t, "the read repair", func() bool {
				return gw.Stats().ReadRepairs == 1 && first.puts.Load() == putsBefore+1
			})
			first.setWrongBytes(false)
			if !first.hasGood(b.ref, b.data) {
				t.Error("the repaired node has no good copy")
			}
			// Only the bad node was rewritten.
			for _, n := range c.placement(b.ref)[1:] {
				if n.puts.Load() != 1 {
					t.Errorf("node %s got %d puts, want 1", n.id, n.puts.Load())
				}
			}
		})
	}
}

// TestGetBeyondPlacement: a block held only outside its placement (a
// sloppy copy) is still found.
func TestGetBeyondPlacement(t *testing.T) {
	c := newCluster(t, 5)
	gw := c.gateway(nil)
	b := makeBlock("outside", 100)
	spare := c.order(b.ref)[4]
	if err := spare.store.Put(context.Background(), b.ref, b.data); err != nil {
		t.Fatal(err)
	}
	got, err := gw.Get(context.Background(), b.ref)
	if err != nil || string(got) != string(b.data) {
		t.Fatalf("Get = %v", err)
	}
	waitFor(t, "read repair of all three placement nodes", func() bool {
		for _, n := range c.placement(b.ref) {
			if !n.hasGood(b.ref, b.data) {
				return false
			}
		}
		return true
	})
}

func TestGetErrors(t *testing.T) {
	c := newCluster(t, 3)
	gw := c.gateway(nil)
	b := makeBlock("missing", 100)
	if _, err := gw.Get(context.Background(), b.ref); !errors.Is(err, blockstore.ErrNotFound) {
		t.Errorf("Get of a missing block = %v, want ErrNotFound", err)
	}
	c.nodes[0].setDown(true)
	if _, err := gw.Get(context.Background(), b.ref); !errors.Is(err, blockstore.ErrUnavailable) {
		t.Errorf("Get of a missing block with a node down = %v, want ErrUnavailable", err)
	}
	if s := gw.Stats(); s.Gets != 2 || s.GetFailures != 2 {
		t.Errorf("stats %+v", s)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := gw.Get(ctx, b.ref); !errors.Is(err, context.Canceled) {
		t.Errorf("Get with a canceled ctx = %v", err)
	}
}

func TestHas(t *testing.T) {
	c := newCluster(t, 4)
	gw := c.gateway(nil)
	blocks := makeBlocks("has", 10, 100)
	c.putAll(gw, blocks[:5])
	refs := make([]blockstore.Ref, len(blocks))
	for i, b := range blocks {
		refs[i] = b.ref
	}
	// One node down: every ref still has two placement nodes to answer.
	c.nodes[0].setDown(true)
	got, err := gw.Has(context.Background(), refs)
	if err != nil {
		t.Fatal(err)
	}
	for i := range refs {
		if got[i] != (i < 5) {
			t.Errorf("Has[%d] = %v, want %v", i, got[i], i < 5)
		}
	}
	for _, n := range c.nodes {
		n.setDown(true)
	}
	if _, err := gw.Has(context.Background(), refs); !errors.Is(err, blockstore.ErrUnavailable) {
		t.Errorf("Has with all nodes down = %v, want ErrUnavailable", err)
	}
}

// TestBlockNodeUsesLocalStore: on a block node, Put and Get use the local
// store directly for Self, and Get reads the local copy first.
func TestBlockNodeUsesLocalStore(t *testing.T) {
	c := newCluster(t, 4)
	b := makeBlock("local", 100)
	self := c.placement(b.ref)[2] // a placement node, but not the first
	r := c.replicator(self.id, nil)
	if err := r.Put(context.Background(), b.ref, b.data); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "background writes", func() bool { return len(c.holders(b.ref)) == 3 })
	if !self.has(b.ref) {
		t.Fatal("the local store did not get the block")
	}
	if self.puts.Load() != 0 {
		t.Error("Self was dialled for Put")
	}
	got, err := r.Get(context.Background(), b.ref)
	if err != nil || string(got) != string(b.data) {
		t.Fatalf("Get = %v", err)
	}
	for _, n := range c.nodes {
		if n.gets.Load() != 0 {
			t.Errorf("Get asked node %s instead of the local store", n.id)
		}
	}
	if s := r.Stats(); s.Fallbacks != 0 {
		t.Errorf("Fallbacks = %d", s.Fallbacks)
	}
}

// TestReadRepairWithoutBudget: a read repair that finds BackgroundBytes
// spent does not keep the data; the node is queued for retry, which
// restores the copy.
func TestReadRepairWithoutBudget(t *testing.T) {
	c := newCluster(t, 4)
	gw := c.gateway(func(cfg *Config) { cfg.BackgroundBytes = 100 })
	b := makeBlock("no-budget-repair", 3000)
	// The first placement node misses its copy. (Stored directly: a Put
	// through gw, with this budget, would queue retries of its own.)
	pl := c.placement(b.ref)
	first := pl[0]
	for _, n := range pl[1:] {
		if err := n.store.Put(context.Background(), b.ref, b.data); err != nil {
			t.Fatal(err)
		}
	}
	got, err := gw.Get(context.Background(), b.ref)
	if err != nil || string(got) != string(b.data) {
		t.Fatalf("Get = %v", err)
	}
	if s := gw.Stats(); s.ReadRepairsSkipped != 1 || s.ReadRepairs != 0 {
		t.Errorf("stats %+v: want the read repair skipped", s)
	}
	waitFor(t, "the retry to restore the copy", func() bool { return first.hasGood(b.ref, b.data) })
	waitFor(t, "the retry to be counted", func() bool { return gw.Stats().RetriesOK == 1 })
}
