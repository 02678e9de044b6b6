// Package replica places each block on R block nodes by rendezvous hashing,
// writes with a W-of-R quorum, reads with fallback and read repair, and keeps
// every block at R healthy replicas (repairer, scrubber).
package replica

import (
	"context"
	"slices"
	"sync"

	"github.com/coffer-dev/coffer/blockstore"
)

// NodeID names a block node; it is the input of placement, so it must be
// stable across restarts of the node.
type NodeID string

// Node is a live block node.
type Node struct {
	ID   NodeID
	Addr string
}

// Membership is the live set of block nodes. Package cluster feeds it from
// memberlist; tests use Static.
type Membership interface {
	// BlockNodes returns the live block nodes (a slice the caller owns;
	// its order does not matter).
	BlockNodes() []Node
	// Changes returns a channel that receives after every change of the
	// set. Sends are coalesced and never block (buffer 1), so a receiver
	// that wakes must re-read BlockNodes. A Replicator calls it once, in
	// Start, and is then the channel's only reader: an implementation
	// shared by several readers returns a channel per call.
	Changes() <-chan struct{}
}

// Peer is what replication needs from one block node: a blockrpc client, a
// local blockstore.Store and a memstore all satisfy it. Errors wrap the
// blockstore sentinels (ErrNotFound, ErrCorrupt, ErrHashMismatch, ...); any
// other error is taken to mean the node could not be reached.
type Peer interface {
	Put(ctx context.Context, ref blockstore.Ref, data []byte) error
	Get(ctx context.Context, ref blockstore.Ref) ([]byte, error)
	Has(ctx context.Context, refs []blockstore.Ref) ([]bool, error)
}

// Dialer returns the Peer of a node. It may cache connections; an error
// means the node is unreachable.
type Dialer interface {
	Peer(ctx context.Context, n Node) (Peer, error)
}

// DialerFunc adapts a function to a Dialer (for example a connection
// pool's lookup by address).
type DialerFunc func(ctx context.Context, n Node) (Peer, error)

// Peer calls f.
func (f DialerFunc) Peer(ctx context.Context, n Node) (Peer, error) { return f(ctx, n) }

// Static is a Membership whose set changes only when Set is called. Each
// call of Changes returns a new channel, so several readers can share it.
type Static struct {
	mu        sync.Mutex
	nodes     []Node
	listeners []chan struct{}
}

var _ Membership = (*Static)(nil)

// NewStatic returns a Static membership of nodes.
func NewStatic(nodes ...Node) *Static {
	return &Static{nodes: slices.Clone(nodes)}
}

// Set replaces the set of nodes and signals every Changes channel.
func (s *Static) Set(nodes ...Node) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.nodes = slices.Clone(nodes)
	for _, ch := range s.listeners {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
}

// BlockNodes implements Membership.
func (s *Static) BlockNodes() []Node {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.nodes)
}

// Changes implements Membership: it returns a new channel that receives
// after every later Set.
func (s *Static) Changes() <-chan struct{} {
	ch := make(chan struct{}, 1)
	s.mu.Lock()
	s.listeners = append(s.listeners, ch)
	s.mu.Unlock()
	return ch
}
