package metarpc

import (
	"errors"
	"fmt"
	"sync"

	"google.golang.org/grpc"

	"github.com/coffer-dev/coffer/raftmeta"
)

// Pool keeps one gRPC connection, and its Client, per node address, so
// every caller shares a node's connection (gRPC multiplexes calls on it).
// It is safe for concurrent use.
type Pool struct {
	cfg  ClientConfig
	opts []grpc.DialOption

	mu     sync.Mutex
	conns  map[string]*poolConn
	closed bool
}

type poolConn struct {
	conn   *grpc.ClientConn
	client *Client
}

// NewPool returns a pool whose connections are made with opts and whose
// clients use cfg. opts must set the transport credentials (TLS, or
// insecure.NewCredentials() on a trusted network): grpc refuses a
// connection without them.
func NewPool(cfg ClientConfig, opts ...grpc.DialOption) (*Pool, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &Pool{cfg: cfg, opts: opts, conns: make(map[string]*poolConn)}, nil
}

// Get returns the client of the node at addr (host:port), making its
// connection on first use. It does not wait for the connection: a node
// that cannot be reached shows up as ErrUnavailable on the first call. An
// empty addr (no leader known) is raftmeta.ErrInvalidArgument; after Close,
// Get fails with ErrClosed.
func (p *Pool) Get(addr string) (*Client, error) {
	if addr == "" {
		return nil, fmt.Errorf("%w: metarpc: pool: empty address", raftmeta.ErrInvalidArgument)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return nil, fmt.Errorf("metarpc: pool: %w", ErrClosed)
	}
	if pc, ok := p.conns[addr]; ok {
		return pc.client, nil
	}
	conn, err := grpc.NewClient(addr, p.opts...)
	if err != nil {
		return nil, fmt.Errorf("%w: metarpc: pool: connect to %s: %w", ErrInvalidConfig, addr, err)
	}
	conn.Connect()
	pc := &poolConn{conn: conn, client: NewClient(conn, p.cfg)}
	p.conns[addr] = pc
	return pc.client, nil
}

// Forget closes and drops the connection to addr (a node that left for
// good). Calls in flight on it fail with ErrUnavailable.
func (p *Pool) Forget(addr string) {
	p.mu.Lock()
	pc, ok := p.conns[addr]
	delete(p.conns, addr)
	p.mu.Unlock()
	if ok {
		_ = pc.conn.Close()
	}
}

// Close closes every connection; calls in flight fail with ErrUnavailable
// and later Gets with ErrClosed. Closing twice is a no-op.
func (p *Pool) Close() error {
	p.mu.Lock()
	conns := p.conns
	p.conns, p.closed = nil, true
	p.mu.Unlock()
	var errs []error
	for addr, pc := range conns {
		if err := pc.conn.Close(); err != nil {
			errs = append(errs, fmt.Errorf("metarpc: pool: close %s: %w", addr, err))
		}
	}
	return errors.Join(errs...)
}
