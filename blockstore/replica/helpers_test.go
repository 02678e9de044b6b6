package replica

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coffer-dev/coffer/blockstore"
	"github.com/coffer-dev/coffer/blockstore/memstore"
)

// errDown is what a node that is down answers: a transport failure.
var errDown = errors.New("test: node unreachable")

// fakeNode is one in-process block node: a memstore behind fault
// injection.
type fakeNode struct {
	id    NodeID
	store *memstore.Store

	mu         sync.Mutex
	down       bool
	putErr     error         // Put fails with it instead of storing
	putGate    chan struct{} // non-nil: Put waits until it is closed
	wrongBytes bool          // Get returns the block with one bit flipped
	onHas      func()        // called by every Has

	puts, gets, hasCalls atomic.Int64
	putsWaiting          atomic.Int64 // Puts waiting at putGate
}

func (n *fakeNode) node() Node { return Node{ID: n.id, Addr: string(n.id) + ":7000"} }

func (n *fakeNode) setDown(down bool) {
	n.mu.Lock()
	n.down = down
	n.mu.Unlock()
}

func (n *fakeNode) setPutErr(err error) {
	n.mu.Lock()
	n.putErr = err
	n.mu.Unlock()
}

// blockPuts makes Puts wait until the returned func is called.
func (n *fakeNode) blockPuts() (release func()) {
	gate := make(chan struct{})
	n.mu.Lock()
	n.putGate = gate
	n.mu.Unlock()
	return func() {
		n.mu.Lock()
		n.putGate = nil
		n.mu.Unlock()
		close(gate)
	}
}

func (n *fakeNode) setWrongBytes(v bool) {
	n.mu.Lock()
	n.wrongBytes = v
	n.mu.Unlock()
}

func (n *fakeNode) setOnHas(fn func()) {
	n.mu.Lock()
	n.onHas = fn
	n.mu.Unlock()
}

// has reports whether the node's store holds ref (fault injection aside).
func (n *fakeNode) has(ref blockstore.Ref) bool {
	ok, err := n.store.Has(context.Background(), []blockstore.Ref{ref})
	if err != nil {
		panic(err)
	}
	return ok[0]
}

// hasGood reports whether the node's store returns want for ref.
func (n *fakeNode) hasGood(ref blockstore.Ref, want []byte) bool {
	got, err := n.store.Get(context.Background(), ref)
	return err == nil && string(got) == string(want)
}

// fakePeer is the Peer of a fakeNode.
type fakePeer struct{ n *fakeNode }

func (p fakePeer) state() (down bool, putErr error, gate chan struct{}, wrong bool, onHas func()) {
	p.n.mu.Lock()
	defer p.n.mu.Unlock()
	return p.n.down, p.n.putErr, p.n.putGate, p.n.wrongBytes, p.n.onHas
}

func (p fakePeer) Put(ctx context.Context, ref blockstore.Ref, data []byte) error {
	down, putErr, gate, _, _ := p.state()
	if down {
		return errDown
	}
	p.n.puts.Add(1)
	if gate != nil {
		p.n.putsWaiting.Add(1)
		select {
		case <-gate:
			p.n.putsWaiting.Add(-1)
		case <-ctx.Done():
			p.n.putsWaiting.Add(-1)
			return ctx.Err()
		}
	}
	if putErr != nil {
		return putErr
	}
	return p.n.store.Put(ctx, ref, data)
}

func (p fakePeer) Get(ctx context.Context, ref blockstore.Ref) ([]byte, error) {
	down, _, _, wrong, _ := p.state()
	if down {
		return nil, errDown
	}
	p.n.gets.Add(1)
	data, err := p.n.store.Get(ctx, ref)
	if err != nil {
		return nil, err
	}
	if wrong {
		data[len(data)/2] ^= 0x80
	}
	return data, nil
}

func (p fakePeer) Has(ctx context.Context, refs []blockstore.Ref) ([]bool, error) {
	down, _, _, _, onHas := p.state()
	if down {
		return nil, errDown
	}
	p.n.hasCalls.Add(1)
	if onHas != nil {
		onHas()
	}
	return p.n.store.Has(ctx, refs)
}

// faultDialer dials fakeNodes; an unknown or down node is unreachable.
type faultDialer struct {
	mu    sync.Mutex
	nodes map[NodeID]*fakeNode
}

func (d *faultDialer) Peer(ctx context.Context, n Node) (Peer, error) {
	d.mu.Lock()
	fn := d.nodes[n.ID]
	d.mu.Unlock()
	if fn == nil {
		return nil, fmt.Errorf("no node %s: %w", n.ID, errDown)
	}
	fn.mu.Lock()
	down := fn.down
	fn.mu.Unlock()
	if down {
		return nil, errDown
	}
	return fakePeer{fn}, nil
}

// cluster is an in-process set of block nodes sharing one membership and
// one dialer.
type cluster struct {
	t       *testing.T
	members *Static
	dialer  *faultDialer
	nodes   []*fakeNode
	byID    map[NodeID]*fakeNode
	reps    map[NodeID]*Replicator
	live    map[NodeID]bool
}

func newCluster(t *testing.T, n int) *cluster {
	t.Helper()
	c := &cluster{
		t:       t,
		members: NewStatic(),
		dialer:  &faultDialer{nodes: make(map[NodeID]*fakeNode)},
		byID:    make(map[NodeID]*fakeNode),
		reps:    make(map[NodeID]*Replicator),
		live:    make(map[NodeID]bool),
	}
	for range n {
		c.addNode()
	}
	return c
}

// addNode creates a node, adds it to the dialer and to the membership.
func (c *cluster) addNode() *fakeNode {
	c.t.Helper()
	id := NodeID(fmt.Sprintf("n%d", len(c.nodes)+1))
	fn := &fakeNode{id: id}
	store, err := memstore.New(memstore.Config{OnCorrupt: func(ref blockstore.Ref) {
		if r := c.rep(id); r != nil {
			r.OnCorrupt(ref)
		}
	}})
	if err != nil {
		c.t.Fatal(err)
	}
	fn.store = store
	c.dialer.mu.Lock()
	c.dialer.nodes[id] = fn
	c.dialer.mu.Unlock()
	c.nodes = append(c.nodes, fn)
	c.byID[id] = fn
	c.live[id] = true
	c.setMembers()
	return fn
}

// removeNode takes the node down and out of the membership.
func (c *cluster) removeNode(id NodeID) {
	c.byID[id].setDown(true)
	delete(c.live, id)
	c.setMembers()
}

func (c *cluster) setMembers() {
	c.members.Set(c.liveNodes()...)
}

func (c *cluster) liveNodes() []Node {
	var out []Node
	for _, n := range c.nodes {
		if c.live[n.id] {
			out = append(out, n.node())
		}
	}
	return out
}

var repsMu sync.Mutex

func (c *cluster) rep(id NodeID) *Replicator {
	repsMu.Lock()
	defer repsMu.Unlock()
	return c.reps[id]
}

// config is the base test Config: fast retries, timers off, no rate limits.
func (c *cluster) config() Config {
	return Config{
		R:               3,
		W:               2,
		Membership:      c.members,
		Dialer:          c.dialer,
		RetryBackoffMin: 5 * time.Millisecond,
		RetryBackoffMax: 50 * time.Millisecond,
		RepairInterval:  -1,
		RepairDebounce:  -1,
		ScrubInterval:   -1,
		RepairRate:      -1,
		ScrubRate:       -1,
	}
}

// gateway returns a started gateway-only Replicator, closed at cleanup.
func (c *cluster) gateway(mod func(*Config)) *Replicator {
	c.t.Helper()
	cfg := c.config()
	if mod != nil {
		mod(&cfg)
	}
	r, err := New(cfg)
	if err != nil {
		c.t.Fatal(err)
	}
	r.Start(context.Background())
	c.t.Cleanup(func() { r.Close() })
	return r
}

// replicator returns a Replicator for node id (Self, Local), wired as its
// store's OnCorrupt target, closed at cleanup. It is not started.
func (c *cluster) replicator(id NodeID, mod func(*Config)) *Replicator {
	c.t.Helper()
	cfg := c.config()
	cfg.Self = id
	cfg.Local = c.byID[id].store
	if mod != nil {
		mod(&cfg)
	}
	r, err := New(cfg)
	if err != nil {
		c.t.Fatal(err)
	}
	repsMu.Lock()
	c.reps[id] = r
	repsMu.Unlock()
	c.t.Cleanup(func() { r.Close() })
	return r
}

// placement returns the R placement nodes of ref over the live nodes.
func (c *cluster) placement(ref blockstore.Ref) []*fakeNode {
	var out []*fakeNode
	for _, n := range Place(ref, c.liveNodes(), 3) {
		out = append(out, c.byID[n.ID])
	}
	return out
}

// order returns all live nodes in placement order of ref.
func (c *cluster) order(ref blockstore.Ref) []*fakeNode {
	var out []*fakeNode
	for _, n := range Place(ref, c.liveNodes(), -1) {
		out = append(out, c.byID[n.ID])
	}
	return out
}

// holders returns the IDs of the nodes whose store holds ref, sorted.
func (c *cluster) holders(ref blockstore.Ref) []NodeID {
	var out []NodeID
	for _, n := range c.nodes {
		if n.has(ref) {
			out = append(out, n.id)
		}
	}
	slices.Sort(out)
	return out
}

// wantPlaced fails unless every block is held by exactly its live placement
// nodes, with the right bytes.
func (c *cluster) wantPlaced(blocks []testBlock) {
	c.t.Helper()
	for _, b := range blocks {
		var want []NodeID
		for _, n := range c.placement(b.ref) {
			want = append(want, n.id)
			if !n.hasGood(b.ref, b.data) {
				c.t.Errorf("block %s: placement node %s has no good copy", b.ref.Short(), n.id)
			}
		}
		slices.Sort(want)
		var got []NodeID
		for _, id := range c.holders(b.ref) {
			if c.live[id] {
				got = append(got, id)
			}
		}
		if !slices.Equal(got, want) {
			c.t.Errorf("block %s: held by %v, want exactly %v", b.ref.Short(), got, want)
		}
	}
}

type testBlock struct {
	ref  blockstore.Ref
	data []byte
}

func makeBlock(seed string, size int) testBlock {
	data := make([]byte, size)
	for i := range data {
		data[i] = seed[i%len(seed)] ^ byte(i/len(seed))
	}
	copy(data, seed)
	return testBlock{blockstore.Sum(data), data}
}

func makeBlocks(prefix string, n, size int) []testBlock {
	out := make([]testBlock, n)
	for i := range out {
		out[i] = makeBlock(fmt.Sprintf("%s-%d-", prefix, i), size)
	}
	return out
}

// waitFor polls cond until it holds, failing the test after 30 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// putAll puts every block through r and waits until each is on all its
// placement nodes (the background writes are done).
func (c *cluster) putAll(r *Replicator, blocks []testBlock) {
	c.t.Helper()
	ctx := context.Background()
	for _, b := range blocks {
		if err := r.Put(ctx, b.ref, b.data); err != nil {
			c.t.Fatalf("put %s: %v", b.ref.Short(), err)
		}
	}
	waitFor(c.t, "background writes", func() bool {
		for _, b := range blocks {
			for _, n := range c.placement(b.ref) {
				if !n.has(b.ref) {
					return false
				}
			}
		}
		return true
	})
}

// hookStore is a local store with fault injection: a blockstore.Store
// (the node's memstore) behind hooks. Set the hooks before the store is
// used.
type hookStore struct {
	blockstore.Store
	// getErr, if set, is the error of Get for ref (nil: no fault).
	getErr func(ref blockstore.Ref) error
	// onEnumerate and onHas, if set, run first in every Enumerate and
	// Has call; an error they return is the call's.
	onEnumerate func(ctx context.Context) error
	onHas       func(ctx context.Context) error
}

func (s *hookStore) Get(ctx context.Context, ref blockstore.Ref) ([]byte, error) {
	if s.getErr != nil {
		if err := s.getErr(ref); err != nil {
			return nil, err
		}
	}
	return s.Store.Get(ctx, ref)
}

func (s *hookStore) Has(ctx context.Context, refs []blockstore.Ref) ([]bool, error) {
	if s.onHas != nil {
		if err := s.onHas(ctx); err != nil {
			return nil, err
		}
	}
	return s.Store.Has(ctx, refs)
}

func (s *hookStore) Enumerate(ctx context.Context, from blockstore.Ref, fn func(blockstore.BlockInfo) error) error {
	if s.onEnumerate != nil {
		if err := s.onEnumerate(ctx); err != nil {
			return err
		}
	}
	return s.Store.Enumerate(ctx, from, fn)
}

// signal returns a channel closed by the first call of the returned func.
func signal() (<-chan struct{}, func()) {
	ch := make(chan struct{})
	var once sync.Once
	return ch, func() { once.Do(func() { close(ch) }) }
}

// flightWaiters returns how many RepairBlock calls wait for the one in
// progress for ref (-1 if none is).
func (r *Replicator) flightWaiters(ref blockstore.Ref) int {
	r.flightMu.Lock()
	defer r.flightMu.Unlock()
	f, ok := r.flights[ref]
	if !ok {
		return -1
	}
	return f.waiters
}
