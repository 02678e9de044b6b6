package blockrpc

import (
	"context"
	"fmt"
	"sync"

	"github.com/coffer-dev/coffer/blockstore"
)

// Pool keeps one dialled Client per block node address, so every caller
// shares a node's connection (gRPC multiplexes calls on it). It is safe for
// concurrent use.
type Pool struct {
	cfg ClientConfig

	mu      sync.Mutex
	clients map[string]*Client
	closed  bool
}

// NewPool returns a pool whose clients use cfg.
func NewPool(cfg ClientConfig) (*Pool, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &Pool{cfg: cfg, clients: make(map[string]*Client)}, nil
}

// Client returns the client of addr, dialling it on first use. Dialling
// does not wait for the connection: an unreachable node shows up as
// ErrUnavailable on the first call.
func (p *Pool) Client(ctx context.Context, addr string) (*Client, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return nil, fmt.Errorf("blockrpc: pool: %w", blockstore.ErrClosed)
	}
	if c, ok := p.clients[addr]; ok {
		return c, nil
	}
	c, err := Dial(ctx, addr, p.cfg)
	if err != nil {
		return nil, err
	}
	p.clients[addr] = c
	return c, nil
}

// Forget closes and drops the client of addr (a node that left for good).
func (p *Pool) Forget(addr string) {
	p.mu.Lock()
	c, ok := p.clients[addr]
	delete(p.clients, addr)
	p.mu.Unlock()
	if ok {
		_ = c.Close()
	}
}

// Close closes every client; later calls of Client fail with ErrClosed.
func (p *Pool) Close() error {
	p.mu.Lock()
	clients := p.clients
	p.clients, p.closed = nil, true
	p.mu.Unlock()
	for _, c := range clients {
		_ = c.Close()
	}
	return nil
}
