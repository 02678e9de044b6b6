package blockrpc

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/coffer-dev/coffer/blockstore"
	"github.com/coffer-dev/coffer/blockstore/blockpb"
)

// ClientConfig configures a Client. The zero value is usable.
type ClientConfig struct {
	// ChunkSize is the length of the chunks Put sends (default
	// DefaultChunkSize, at most MaxChunkSize).
	ChunkSize int
	// MaxBlockSize is the largest block Put sends and Get accepts (default
	// blockstore.DefaultMaxBlockSize). Put refuses a larger block with
	// ErrTooLarge without calling the server.
	MaxBlockSize int
	// Logger receives the client's logs (default: discarded).
	Logger *slog.Logger
	// CallTimeout, if positive, bounds each call (Put, Get, Has — each
	// batch —, Delete, Stats); for Enumerate it bounds each wait for the
	// next batch, so a long walk is not cut short. A call that runs out of
	// it while the caller's ctx is still live fails with ErrUnavailable.
	// 0 means no timeout beyond the caller's ctx.
	CallTimeout time.Duration
	// DialOptions are added to Dial's own (for example transport
	// credentials for TLS, which replace the default insecure ones).
	DialOptions []grpc.DialOption
}

// Validate reports every problem with c at once, wrapping
// blockstore.ErrInvalidConfig.
func (c ClientConfig) Validate() error {
	var errs []error
	bad := func(f string, a ...any) { errs = append(errs, fmt.Errorf(f, a...)) }
	validateSizes(bad, c.MaxBlockSize, c.ChunkSize)
	if c.CallTimeout < 0 {
		bad("CallTimeout %v: must not be negative", c.CallTimeout)
	}
	return configError("ClientConfig", errs)
}

func (c ClientConfig) withDefaults() ClientConfig {
	c.MaxBlockSize, c.ChunkSize = sizeDefaults(c.MaxBlockSize, c.ChunkSize)
	c.Logger = discardIfNil(c.Logger).With("component", "blockrpc.client")
	return c
}

// Client is a blockstore.Store served by a remote BlockService. It is safe
// for concurrent use. Use NewClient or Dial.
type Client struct {
	rpc   blockpb.BlockServiceClient
	owned *grpc.ClientConn // the connection Dial made; nil from NewClient
	cfg   ClientConfig
	log   *slog.Logger

	mu       sync.Mutex
	closed   bool
	inflight sync.WaitGroup
}

var _ blockstore.Store = (*Client)(nil)

// callOptions go with every call: accept messages of a whole chunk even on
// a connection NewClient was given.
var callOptions = []grpc.CallOption{grpc.MaxCallRecvMsgSize(MaxMsgSize)}

// NewClient returns a client that calls the BlockService over conn. Close
// does not close conn: it stays the caller's.
func NewClient(conn grpc.ClientConnInterface, cfg ClientConfig) (*Client, error) {
	if conn == nil {
		return nil, fmt.Errorf("%w: blockrpc: nil connection", blockstore.ErrInvalidConfig)
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	return &Client{rpc: blockpb.NewBlockServiceClient(conn), cfg: cfg, log: cfg.Logger}, nil
}

// Dial returns a client of the BlockService at addr (host:port) over a
// connection of its own, which Close closes. The transport is not
// encrypted unless cfg.DialOptions says otherwise (see the package doc). Dial does not wait for the connection:
// it is made in the background, and a call while the server cannot be
// reached fails with ErrUnavailable.
func Dial(ctx context.Context, addr string, cfg ClientConfig) (*Client, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("blockrpc: dial %s: %w", addr, err)
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	opts := []grpc.DialOption{
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithInitialWindowSize(WindowSize),
		grpc.WithInitialConnWindowSize(ConnWindowSize),
		// A block node that restarts should be used again within seconds,
		// not after gRPC's default backoff (up to 2 minutes).
		grpc.WithConnectParams(grpc.ConnectParams{
			Backoff:           backoff.Config{BaseDelay: 100 * time.Millisecond, Multiplier: 1.6, Jitter: 0.2, MaxDelay: MaxReconnectBackoff},
			MinConnectTimeout: 5 * time.Second,
		}),
	}
	conn, err := grpc.NewClient(addr, append(opts, cfg.DialOptions...)...)
	if err != nil {
		return nil, fmt.Errorf("%w: blockrpc: dial %s: %w", blockstore.ErrInvalidConfig, addr, err)
	}
	conn.Connect()
	c, err := NewClient(conn, cfg)
	if err != nil { // cannot happen: cfg is valid and conn is not nil
		conn.Close()
		return nil, err
	}
	c.owned = conn
	c.log.Debug("dialled", "addr", addr)
	return c, nil
}

// MaxReconnectBackoff caps the wait between reconnection attempts of a
// dialled client, so a restarted block node is reached again quickly.
const MaxReconnectBackoff = 2 * time.Second

// Close marks the client closed, waits for calls in flight to finish and,
// if Dial made the connection, closes it. Calls after Close fail with
// ErrClosed. Closing twice is a no-op.
func (c *Client) Close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	c.closed = true
	c.mu.Unlock()
	c.inflight.Wait()
	if c.owned != nil {
		if err := c.owned.Close(); err != nil {
			return fmt.Errorf("blockrpc: close: %w", err)
		}
	}
	return nil
}

// begin starts a call: it fails with ErrClosed after Close and with the
// ctx error if ctx is done; otherwise it returns the context for the RPC
// (ctx bounded by timeout, if positive) and the function that ends the
// call.
func (c *Client) begin(ctx context.Context, op string, timeout time.Duration) (context.Context, func(), error) {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil, nil, fmt.Errorf("%w: blockrpc: %s", blockstore.ErrClosed, op)
	}
	c.inflight.Add(1)
	c.mu.Unlock()
	if err := ctx.Err(); err != nil {
		c.inflight.Done()
		return nil, nil, fmt.Errorf("blockrpc: %s: %w", op, err)
	}
	var callCtx context.Context
	var cancel context.CancelFunc
	if timeout > 0 {
		callCtx, cancel = context.WithTimeout(ctx, timeout)
	} else {
		callCtx, cancel = context.WithCancel(ctx)
	}
	return callCtx, func() { cancel(); c.inflight.Done() }, nil
}

// Put implements blockstore.Store. It checks the size before it sends
// anything; a block that does not hash to ref is refused by the server
// (ErrHashMismatch) and nothing is stored.
func (c *Client) Put(ctx context.Context, ref blockstore.Ref, data []byte) error {
	callCtx, end, err := c.begin(ctx, "put", c.cfg.CallTimeout)
	if err != nil {
		return err
	}
	defer end()
	if len(data) > c.cfg.MaxBlockSize {
		return fmt.Errorf("%w: blockrpc: put %s: %d bytes > %d", blockstore.ErrTooLarge, ref.Short(), len(data), c.cfg.MaxBlockSize)
	}
	// The hash is not checked here: the server's store verifies every
	// block it is given (it trusts no client), and the replicator that
	// fans one block out to R nodes has verified it once already; hashing
	// it again per node would cost a core-second per GiB on the sender.
	stream, err := c.rpc.Put(callCtx, callOptions...)
	if err != nil {
		return fromRPC(ctx, "put", err)
	}
	err = stream.Send(&blockpb.PutRequest{Msg: &blockpb.PutRequest_Header{Header: &blockpb.PutHeader{Ref: ref[:], Size: int64(len(data))}}})
	for off := 0; err == nil && off < len(data); off += c.cfg.ChunkSize {
		stop := min(off+c.cfg.ChunkSize, len(data))
		err = stream.Send(&blockpb.PutRequest{Msg: &blockpb.PutRequest_Chunk{Chunk: data[off:stop]}})
	}
	// io.EOF from Send means the server ended the call (it refused the
	// block): CloseAndRecv returns its status.
	if err != nil && err != io.EOF {
		return fromRPC(ctx, "put", err)
	}
	if _, err := stream.CloseAndRecv(); err != nil {
		return fromRPC(ctx, "put", err)
	}
	return nil
}

// Get implements blockstore.Store. It verifies the bytes against ref: a
// server that sends anything else gets ErrCorrupt, never its data.
func (c *Client) Get(ctx context.Context, ref blockstore.Ref) ([]byte, error) {
	callCtx, end, err := c.begin(ctx, "get", c.cfg.CallTimeout)
	if err != nil {
		return nil, err
	}
	defer end() // also cancels the stream if we stop reading early
	stream, err := c.rpc.Get(callCtx, &blockpb.GetRequest{Ref: ref[:]}, callOptions...)
	if err != nil {
		return nil, fromRPC(ctx, "get", err)
	}
	first, err := stream.Recv()
	if err == io.EOF {
		return nil, fmt.Errorf("blockrpc: get %s: the server sent no header", ref.Short())
	}
	if err != nil {
		return nil, fromRPC(ctx, "get", err)
	}
	h := first.GetHeader()
	if h == nil {
		return nil, fmt.Errorf("blockrpc: get %s: the server's first message is not a header", ref.Short())
	}
	size := h.GetSize()
	if size < 0 {
		return nil, fmt.Errorf("%w: blockrpc: get %s: the server announced %d bytes", blockstore.ErrCorrupt, ref.Short(), size)
	}
	if size > int64(c.cfg.MaxBlockSize) {
		return nil, fmt.Errorf("%w: blockrpc: get %s: the server announced %d bytes > %d", blockstore.ErrTooLarge, ref.Short(), size, c.cfg.MaxBlockSize)
	}
	data := make([]byte, 0, size)
	for {
		msg, err := stream.Recv()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fromRPC(ctx, "get", err)
		}
		chunk, ok := msg.GetMsg().(*blockpb.GetResponse_Chunk)
		if !ok {
			return nil, fmt.Errorf("blockrpc: get %s: the server sent a second header", ref.Short())
		}
		if int64(len(data))+int64(len(chunk.Chunk)) > size {
			return nil, fmt.Errorf("%w: blockrpc: get %s: the server sent more than the announced %d bytes", blockstore.ErrCorrupt, ref.Short(), size)
		}
		data = append(data, chunk.Chunk...)
	}
	if int64(len(data)) != size {
		return nil, fmt.Errorf("%w: blockrpc: get %s: the server sent %d of the announced %d bytes", blockstore.ErrCorrupt, ref.Short(), len(data), size)
	}
	if got := blockstore.Sum(data); got != ref {
		return nil, fmt.Errorf("%w: blockrpc: get %s: the server sent bytes that hash to %s", blockstore.ErrCorrupt, ref.Short(), got.Short())
	}
	return data, nil
}

// Has implements blockstore.Store. Batches above MaxHasBatch refs are split
// into several calls.
func (c *Client) Has(ctx context.Context, refs []blockstore.Ref) ([]bool, error) {
	out := make([]bool, 0, len(refs))
	for start := 0; start == 0 || start < len(refs); start += MaxHasBatch {
		batch := refs[start:min(start+MaxHasBatch, len(refs))]
		present, err := c.has(ctx, batch)
		if err != nil {
			return nil, err
		}
		out = append(out, present...)
	}
	return out, nil
}

func (c *Client) has(ctx context.Context, refs []blockstore.Ref) ([]bool, error) {
	callCtx, end, err := c.begin(ctx, "has", c.cfg.CallTimeout)
	if err != nil {
		return nil, err
	}
	defer end()
	if len(refs) == 0 {
		return nil, nil
	}
	req := &blockpb.HasRequest{Refs: make([][]byte, len(refs))}
	for i := range refs {
		req.Refs[i] = refs[i][:]
	}
	resp, err := c.rpc.Has(callCtx, req, callOptions...)
	if err != nil {
		return nil, fromRPC(ctx, "has", err)
	}
	if len(resp.GetPresent()) != len(refs) {
		return nil, fmt.Errorf("blockrpc: has: the server answered %d results for %d refs", len(resp.GetPresent()), len(refs))
	}
	return resp.GetPresent(), nil
}

// Delete implements blockstore.Store.
func (c *Client) Delete(ctx context.Context, ref blockstore.Ref, storedBefore time.Time) (bool, error) {
	callCtx, end, err := c.begin(ctx, "delete", c.cfg.CallTimeout)
	if err != nil {
		return false, err
	}
	defer end()
	resp, err := c.rpc.Delete(callCtx, &blockpb.DeleteRequest{Ref: ref[:], StoredBefore: timeToNanos(storedBefore)}, callOptions...)
	if err != nil {
		return false, fromRPC(ctx, "delete", err)
	}
	return resp.GetDeleted(), nil
}

// Enumerate implements blockstore.Store. The server streams the blocks in
// batches; when fn returns an error the stream is cancelled.
func (c *Client) Enumerate(ctx context.Context, from blockstore.Ref, fn func(blockstore.BlockInfo) error) error {
	callCtx, end, err := c.begin(ctx, "enumerate", 0)
	if err != nil {
		return err
	}
	defer end()
	if fn == nil {
		return fmt.Errorf("%w: blockrpc: enumerate: nil callback", blockstore.ErrInvalidArgument)
	}
	// CallTimeout bounds each wait for a batch: a watchdog cancels the
	// stream if the next one is late.
	callCtx, cancel := context.WithCancel(callCtx)
	defer cancel()
	stream, err := c.rpc.Enumerate(callCtx, &blockpb.EnumerateRequest{From: from[:]}, callOptions...)
	if err != nil {
		return fromRPC(ctx, "enumerate", err)
	}
	for {
		var watchdog *time.Timer
		if c.cfg.CallTimeout > 0 {
			watchdog = time.AfterFunc(c.cfg.CallTimeout, cancel)
		}
		resp, err := stream.Recv()
		if watchdog != nil {
			watchdog.Stop()
		}
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fromRPC(ctx, "enumerate", err)
		}
		for _, b := range resp.GetBlocks() {
			ref, err := refFromBytes(b.GetRef())
			if err != nil {
				return fmt.Errorf("blockrpc: enumerate: the server sent a bad ref: %v", err)
			}
			if err := ctx.Err(); err != nil {
				return fmt.Errorf("blockrpc: enumerate: %w", err)
			}
			info := blockstore.BlockInfo{Ref: ref, Size: b.GetSize(), StoredAt: nanosToTime(b.GetStoredAt())}
			if err := fn(info); err != nil {
				if errors.Is(err, blockstore.ErrStop) {
					return nil
				}
				return err
			}
		}
	}
}

// Stats implements blockstore.Store: the remote store's counters.
func (c *Client) Stats(ctx context.Context) (blockstore.Stats, error) {
	callCtx, end, err := c.begin(ctx, "stats", c.cfg.CallTimeout)
	if err != nil {
		return blockstore.Stats{}, err
	}
	defer end()
	resp, err := c.rpc.Stats(callCtx, &blockpb.StatsRequest{}, callOptions...)
	if err != nil {
		return blockstore.Stats{}, fromRPC(ctx, "stats", err)
	}
	return blockstore.Stats{
		Blocks:       resp.GetBlocks(),
		Bytes:        resp.GetBytes(),
		DiskBytes:    resp.GetDiskBytes(),
		BytesWritten: resp.GetBytesWritten(),
		Puts:         resp.GetPuts(),
		Dedups:       resp.GetDedups(),
		BytesPut:     resp.GetBytesPut(),
		Gets:         resp.GetGets(),
		BytesRead:    resp.GetBytesRead(),
		Deletes:      resp.GetDeletes(),
		Corrupt:      resp.GetCorrupt(),
		Syncs:        resp.GetSyncs(),
		Compaction:   resp.GetCompaction(),
		FreeBytes:    resp.GetFreeBytes(),
	}, nil
}
