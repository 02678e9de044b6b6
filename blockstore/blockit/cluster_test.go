package blockit

import (
	"context"
	"fmt"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"

	"github.com/coffer-dev/coffer/blockstore"
	"github.com/coffer-dev/coffer/blockstore/blockrpc"
	"github.com/coffer-dev/coffer/blockstore/localstore"
	"github.com/coffer-dev/coffer/blockstore/replica"
)

var ctx = context.Background()

// node is one block node: a localstore, its gRPC server and its
// replicator (repairer, scrubber, OnCorrupt repair).
type node struct {
	id      replica.NodeID
	addr    string
	dir     string
	cfg     localstore.Config
	store   *localstore.Store
	srv     *grpc.Server
	repl    *replica.Replicator
	replPtr atomic.Pointer[replica.Replicator]
	up      bool
}

func (n *node) self() replica.Node { return replica.Node{ID: n.id, Addr: n.addr} }

type cluster struct {
	t       testing.TB
	nodes   []*node
	members *replica.Static
	pool    *blockrpc.Pool
	dial    replica.Dialer
	gw      *replica.Replicator // a gateway: no local store
	opts    options
}

type options struct {
	R, W       int
	nodes      int
	maxBlock   int
	noRetry    bool // gateway retry backoff so long it never fires during a test
	storeTweak func(i int, c *localstore.Config)
}

func newCluster(t testing.TB, o options) *cluster {
	t.Helper()
	if o.R == 0 {
		o.R, o.W = 3, 2
	}
	if o.maxBlock == 0 {
		o.maxBlock = blockstore.DefaultMaxBlockSize
	}
	p, err := blockrpc.NewPool(blockrpc.ClientConfig{})
	if err != nil {
		t.Fatal(err)
	}
	c := &cluster{t: t, members: replica.NewStatic(), pool: p, opts: o}
	c.dial = replica.DialerFunc(func(ctx context.Context, n replica.Node) (replica.Peer, error) {
		return p.Client(ctx, n.Addr)
	})
	var all []replica.Node
	for i := range o.nodes {
		n := c.addNode(i)
		all = append(all, n.self())
	}
	c.members.Set(all...)
	c.gw = c.newReplicator("", nil, !o.noRetry)
	t.Cleanup(func() {
		_ = c.gw.Close()
		for _, n := range c.nodes {
			c.stop(n)
		}
		_ = c.pool.Close()
	})
	return c
}

func (c *cluster) replicaConfig(self replica.NodeID, local blockstore.Store, retry bool) replica.Config {
	cfg := replica.Config{
		Self:            self,
		Local:           local,
		R:               c.opts.R,
		W:               c.opts.W,
		Membership:      c.members,
		Dialer:          c.dial,
		PutTimeout:      20 * time.Second,
		GetTimeout:      10 * time.Second,
		RetryBackoffMin: 20 * time.Millisecond,
		RetryBackoffMax: 200 * time.Millisecond,
		RepairInterval:  -1, // tests call RepairNow
		RepairDebounce:  -1,
		RepairRate:      -1,
		ScrubInterval:   -1,
		ScrubRate:       -1,
	}
	if !retry {
		cfg.RetryBackoffMin, cfg.RetryBackoffMax = time.Hour, time.Hour
	}
	return cfg
}

func (c *cluster) newReplicator(self replica.NodeID, local blockstore.Store, retry bool) *replica.Replicator {
	r, err := replica.New(c.replicaConfig(self, local, retry))
	if err != nil {
		c.t.Fatal(err)
	}
	r.Start(ctx)
	return r
}

// addNode creates and starts node i (not yet in the membership).
func (c *cluster) addNode(i int) *node {
	n := &node{id: replica.NodeID(fmt.Sprintf("n%d", i)), addr: "127.0.0.1:0"}
	n.dir = c.t.TempDir()
	n.cfg = localstore.Config{
		Dir:          n.dir,
		MaxBlockSize: c.opts.maxBlock,
		MinFreeBytes: -1,
		OnCorrupt: func(ref blockstore.Ref) {
			if r := n.replPtr.Load(); r != nil {
				r.OnCorrupt(ref)
			}
		},
	}
	if c.opts.storeTweak != nil {
		c.opts.storeTweak(i, &n.cfg)
	}
	c.nodes = append(c.nodes, n)
	c.start(n)
	return n
}

// start opens the node's store and serves it on its address (the same one
// after a restart).
func (c *cluster) start(n *node) {
	c.t.Helper()
	var err error
	if n.store, err = localstore.Open(n.cfg); err != nil {
		c.t.Fatal(err)
	}
	var lis net.Listener
	deadline := time.Now().Add(10 * time.Second)
	for {
		if lis, err = net.Listen("tcp", n.addr); err == nil {
			break
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("listen %s: %v", n.addr, err)
		}
		time.Sleep(20 * time.Millisecond) // the old listener's port is being released
	}
	n.addr = lis.Addr().String()
	n.srv = grpc.NewServer(blockrpc.ServerOptions()...)
	s, err := blockrpc.NewServer(n.store, blockrpc.ServerConfig{MaxBlockSize: c.opts.maxBlock})
	if err != nil {
		c.t.Fatal(err)
	}
	s.Register(n.srv)
	go func() { _ = n.srv.Serve(lis) }()
	n.repl = c.newReplicator(n.id, n.store, true)
	n.replPtr.Store(n.repl)
	n.up = true
}

// stop takes the node down: its replicator, server and store stop; it
// stays in the membership (nobody has noticed yet).
func (c *cluster) stop(n *node) {
	if !n.up {
		return
	}
	n.up = false
	n.replPtr.Store(nil)
	_ = n.repl.Close()
	n.srv.Stop()
	_ = n.store.Close()
}

func (c *cluster) join(n *node) {
	var all []replica.Node
	for _, m := range c.nodes {
		all = append(all, m.self())
	}
	_ = n
	c.members.Set(all...)
}

func (c *cluster) byID(id replica.NodeID) *node {
	for _, n := range c.nodes {
		if n.id == id {
			return n
		}
	}
	c.t.Fatalf("no node %s", id)
	return nil
}

// placement returns the nodes that should hold ref.
func (c *cluster) placement(ref blockstore.Ref) []*node {
	var out []*node
	for _, p := range replica.Place(ref, c.members.BlockNodes(), c.opts.R) {
		out = append(out, c.byID(p.ID))
	}
	return out
}

func (n *node) has(t testing.TB, ref blockstore.Ref) bool {
	t.Helper()
	h, err := n.store.Has(ctx, []blockstore.Ref{ref})
	if err != nil {
		t.Fatal(err)
	}
	return h[0]
}

// waitFor polls cond until it holds or 30 s pass.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
