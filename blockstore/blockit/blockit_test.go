package blockit

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"os"
	"testing"

	"github.com/coffer-dev/coffer/blockstore"
	"github.com/coffer-dev/coffer/blockstore/blockrpc"
	"github.com/coffer-dev/coffer/blockstore/blocktest"
	"github.com/coffer-dev/coffer/blockstore/localstore"
)

func blocks(seed uint64, n, maxSize int) (refs []blockstore.Ref, data map[blockstore.Ref][]byte) {
	rng := rand.New(rand.NewPCG(seed, seed+1))
	data = make(map[blockstore.Ref][]byte)
	for range n {
		ref, b := blocktest.RandomBlock(rng, 1+rng.IntN(maxSize))
		refs = append(refs, ref)
		data[ref] = b
	}
	return refs, data
}

// flipOnDisk flips one byte of the node's stored copy of ref, in the
// segment file itself.
func flipOnDisk(t *testing.T, n *node, ref blockstore.Ref) {
	t.Helper()
	loc, err := n.store.Locate(ctx, ref)
	if err != nil {
		t.Fatalf("Locate on %s: %v", n.id, err)
	}
	f, err := os.OpenFile(loc.Path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b := []byte{0}
	off := loc.Offset + loc.Length/2
	if _, err := f.ReadAt(b, off); err != nil {
		t.Fatal(err)
	}
	b[0] ^= 0xff
	if _, err := f.WriteAt(b, off); err != nil {
		t.Fatal(err)
	}
}

func (c *cluster) putAll(t *testing.T, refs []blockstore.Ref, data map[blockstore.Ref][]byte) {
	t.Helper()
	for _, ref := range refs {
		if err := c.gw.Put(ctx, ref, data[ref]); err != nil {
			t.Fatalf("Put %s: %v", ref.Short(), err)
		}
	}
}

// waitPlaced waits until every ref is on each of its R placement nodes.
func (c *cluster) waitPlaced(t *testing.T, refs []blockstore.Ref) {
	t.Helper()
	for _, ref := range refs {
		for _, n := range c.placement(ref) {
			waitFor(t, "copy of "+ref.Short()+" on "+string(n.id), func() bool { return n.has(t, ref) })
		}
	}
}

// A write through a gateway reaches all R block nodes (W synchronously,
// the rest in the background) and reads back byte for byte.
func TestReplicatedWriteRead(t *testing.T) {
	c := newCluster(t, options{nodes: 3})
	refs, data := blocks(1, 20, 1<<20)
	c.putAll(t, refs, data)
	c.waitPlaced(t, refs)
	for _, ref := range refs {
		got, err := c.gw.Get(ctx, ref)
		if err != nil || !bytes.Equal(got, data[ref]) {
			t.Fatalf("Get %s: %v", ref.Short(), err)
		}
	}
	// Bad input through the whole stack.
	ref, b := refs[0], data[refs[0]]
	if err := c.gw.Put(ctx, ref, append([]byte{1}, b...)); !errors.Is(err, blockstore.ErrHashMismatch) {
		t.Fatalf("mismatched Put: %v, want ErrHashMismatch", err)
	}
	if _, err := c.gw.Get(ctx, blockstore.Sum([]byte("never stored"))); !errors.Is(err, blockstore.ErrNotFound) {
		t.Fatalf("Get unknown: %v, want ErrNotFound", err)
	}
	big := make([]byte, blockstore.DefaultMaxBlockSize+1)
	if err := c.gw.Put(ctx, blockstore.Sum(big), big); !errors.Is(err, blockstore.ErrTooLarge) {
		t.Fatalf("oversize Put: %v, want ErrTooLarge", err)
	}
}

// A byte flipped in a segment file on disk is found by the scrubber and
// repaired from a replica.
func TestScrubRepairsFlippedByte(t *testing.T) {
	c := newCluster(t, options{nodes: 3})
	refs, data := blocks(2, 10, 256<<10)
	c.putAll(t, refs, data)
	c.waitPlaced(t, refs)
	victim := c.placement(refs[3])[1]
	flipOnDisk(t, victim, refs[3])
	rep, err := victim.repl.ScrubNow(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Corrupt != 1 || rep.Repaired != 1 {
		t.Fatalf("scrub report %+v, want 1 corrupt and 1 repaired", rep)
	}
	got, err := victim.store.Get(ctx, refs[3])
	if err != nil || !bytes.Equal(got, data[refs[3]]) {
		t.Fatalf("local copy after scrub: %v", err)
	}
	if st, _ := victim.store.Stats(ctx); st.Corrupt != 1 {
		t.Fatalf("store counted %d corrupt copies, want 1", st.Corrupt)
	}
}

// A read that meets a corrupt copy on the first placement node falls back
// to the next, returns the right bytes, and the bad copy is repaired.
func TestReadFallsBackAndRepairsFlippedByte(t *testing.T) {
	c := newCluster(t, options{nodes: 3})
	refs, data := blocks(3, 5, 512<<10)
	c.putAll(t, refs, data)
	c.waitPlaced(t, refs)
	ref := refs[0]
	first := c.placement(ref)[0]
	flipOnDisk(t, first, ref)
	got, err := c.gw.Get(ctx, ref)
	if err != nil || !bytes.Equal(got, data[ref]) {
		t.Fatalf("Get with a corrupt first replica: %v", err)
	}
	if st := c.gw.Stats(); st.Fallbacks < 1 {
		t.Fatalf("gateway stats %+v: want a fallback", st)
	}
	waitFor(t, "the corrupt copy to be repaired", func() bool {
		b, err := first.store.Get(ctx, ref)
		return err == nil && bytes.Equal(b, data[ref])
	})
}

// A node that is down during a write gets its copy once it is back: from
// the writer's retry queue, or, if the writer has gone too, from the
// repairer of a node that holds the block.
func TestNodeDownDuringWriteGetsCopyWhenBack(t *testing.T) {
	for _, via := range []string{"retry", "repair"} {
		t.Run(via, func(t *testing.T) {
			c := newCluster(t, options{nodes: 3, noRetry: via == "repair"})
			down := c.nodes[2]
			c.stop(down)
			refs, data := blocks(4, 8, 300<<10)
			c.putAll(t, refs, data) // W=2 of the two live nodes
			for _, ref := range refs {
				for _, n := range c.nodes[:2] {
					if !n.has(t, ref) {
						t.Fatalf("acknowledged block %s missing on %s", ref.Short(), n.id)
					}
				}
			}
			if via == "repair" {
				_ = c.gw.Close() // the writer and its retry queue are gone
			}
			c.start(down)
			// The other nodes' connections to it reconnect with backoff.
			waitFor(t, "the node to be reachable again", func() bool {
				p, err := c.dial.Peer(ctx, down.self())
				if err != nil {
					return false
				}
				_, err = p.Has(ctx, refs[:1])
				return err == nil
			})
			if via == "repair" {
				rep, err := c.nodes[0].repl.RepairNow(ctx)
				if err != nil {
					t.Fatal(err)
				}
				if rep.Pushed != int64(len(refs)) {
					t.Fatalf("repair report %+v, want %d pushed", rep, len(refs))
				}
			}
			for _, ref := range refs {
				waitFor(t, "copy on the returned node", func() bool { return down.has(t, ref) })
				b, err := down.store.Get(ctx, ref)
				if err != nil || !bytes.Equal(b, data[ref]) {
					t.Fatalf("copy on returned node: %v", err)
				}
			}
		})
	}
}

// When a node joins, repair moves every block to its new placement and
// the old holders hand their extra copies off; when a node leaves, repair
// restores R copies.
func TestMembershipChangeRebalances(t *testing.T) {
	c := newCluster(t, options{nodes: 3})
	refs, data := blocks(5, 40, 64<<10)
	c.putAll(t, refs, data)
	c.waitPlaced(t, refs)
	c.addNode(3)
	c.join(nil)
	repairAll := func() {
		for _, n := range c.nodes {
			if !n.up {
				continue
			}
			if _, err := n.repl.RepairNow(ctx); err != nil {
				t.Fatal(err)
			}
		}
	}
	// Two rounds: the first pushes copies to the new placement, the
	// second (once all R confirm) lets the old holders hand off.
	repairAll()
	repairAll()
	exact := func() {
		t.Helper()
		for _, ref := range refs {
			want := map[*node]bool{}
			for _, n := range c.placement(ref) {
				want[n] = true
			}
			for _, n := range c.nodes {
				if !n.up {
					continue
				}
				if got := n.has(t, ref); got != want[n] {
					t.Fatalf("%s on %s: has=%v, placed=%v", ref.Short(), n.id, got, want[n])
				}
			}
		}
	}
	exact()
	moved := 0
	for _, ref := range refs {
		for _, n := range c.placement(ref) {
			if n == c.nodes[3] {
				moved++
			}
		}
	}
	if moved == 0 {
		t.Fatal("no block placed on the new node: the test proves nothing")
	}
	// A node leaves for good.
	gone := c.nodes[1]
	c.stop(gone)
	var live []*node
	for _, n := range c.nodes {
		if n != gone {
			live = append(live, n)
		}
	}
	c.members.Set(live[0].self(), live[1].self(), live[2].self())
	repairAll()
	repairAll()
	exact()
	for _, ref := range refs {
		got, err := c.gw.Get(ctx, ref)
		if err != nil || !bytes.Equal(got, data[ref]) {
			t.Fatalf("Get after rebalancing: %v", err)
		}
	}
}

// A full block node refuses with a clear error through gRPC, and the
// replicated write goes to the next node in rendezvous order instead.
func TestDiskFullNode(t *testing.T) {
	full := 0
	c := newCluster(t, options{nodes: 4, storeTweak: func(i int, cfg *localstore.Config) {
		if i == full {
			cfg.MinFreeBytes = 1 << 62
		}
	}})
	refs, data := blocks(6, 12, 128<<10)
	cl, err := blockrpc.Dial(ctx, c.nodes[full].addr, blockrpc.ClientConfig{})
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if err := cl.Put(ctx, refs[0], data[refs[0]]); !errors.Is(err, blockstore.ErrDiskFull) {
		t.Fatalf("Put to a full node over gRPC: %v, want ErrDiskFull", err)
	}
	c.putAll(t, refs, data)
	onFull := 0
	for _, ref := range refs {
		if c.nodes[full].has(t, ref) {
			t.Fatalf("full node stored %s", ref.Short())
		}
		holders := 0
		for _, n := range c.nodes {
			if n.has(t, ref) {
				holders++
			}
		}
		for _, n := range c.placement(ref) {
			if n == c.nodes[full] {
				onFull++
			}
		}
		if holders < 2 {
			t.Fatalf("%s acknowledged with %d copies", ref.Short(), holders)
		}
	}
	if onFull == 0 {
		t.Fatal("no block was placed on the full node: the test proves nothing")
	}
}
