// Package blockrpc serves a blockstore.Store over gRPC and is its client.
//
// The server (NewServer, Register) is a thin adapter: it frames blocks into
// messages and maps errors, and leaves every decision (hash verification,
// size limits, conditional delete) to the wrapped Store. The Client is
// itself a blockstore.Store, so the rest of the block node code — and the
// conformance suite in package blocktest — cannot tell a remote store from
// a local one.
//
// # Framing
//
// A block travels as a header (ref and size for Put, size for Get) followed
// by chunks of ChunkSize bytes (default 256 KiB, at most MaxChunkSize). The
// server refuses a Put whose declared size is above its MaxBlockSize before
// it reads a chunk, refuses a stream that carries more or fewer bytes than
// declared, and buffers the bytes as they arrive: its buffer starts at one
// chunk (ChunkSize, or the declared size if smaller) and grows, at most to
// the declared size, only as chunks come in, so a header alone costs the
// server one chunk, not the size it claims. The store sees only a complete
// block, so a failed or cancelled upload stores nothing. Has takes
// at most MaxHasBatch refs per call (the Client splits larger batches) and
// Enumerate streams batches of up to 1000 BlockInfos.
//
// The Client refuses a block above its MaxBlockSize (ErrTooLarge) before
// any RPC; it leaves the hash check of a Put to the server's store (which
// verifies every block it is given; ErrHashMismatch comes back), so a
// sender fanning one block out to R nodes hashes it once, not R times. It
// verifies every block it receives against its ref: a wrong answer from a
// server is ErrCorrupt, never data.
//
// # Errors
//
// Every error the server returns is a gRPC status whose code fits the
// blockstore wire code (not_found is NotFound, corrupt is DataLoss,
// disk_full is ResourceExhausted, ...) and which always carries an
// errdetails.ErrorInfo with Domain "block.coffer" and the wire code
// (blockstore.Code) as its Reason. The Client turns that back into the
// same sentinel (errors.Is works) and keeps the server's message. Failures
// of the transport itself (no ErrorInfo: connection refused, server gone,
// a CallTimeout that expired while the caller's ctx was still live) wrap
// blockstore.ErrUnavailable; the caller's own cancellation is returned as
// the ctx error. A server whose store is closed answers with code closed
// (gRPC Unavailable), which the Client returns as ErrClosed, as it does
// after its own Close.
//
// # Flow control
//
// gRPC over HTTP/2 flow-controls each stream and each connection. Dial and
// ServerOptions set both sides alike: a stream window of WindowSize (4 MiB,
// one whole maximum-size block, so a Put or Get of one block never stalls
// on a WINDOW_UPDATE round trip) and a connection window of ConnWindowSize
// (16 MiB, four such streams at full speed). Fixed windows turn off
// grpc-go's BDP estimation, which starts at 64 KiB and takes many round
// trips to grow; a receiver buffers at most ConnWindowSize per connection.
// ServerOptions also limits each connection to MaxConcurrentStreams calls
// in progress (HTTP/2 SETTINGS_MAX_CONCURRENT_STREAMS; the client queues
// further calls until one ends), so the Put buffers of one connection hold
// at most MaxConcurrentStreams blocks of data actually sent.
// Messages are limited to MaxMsgSize (MaxChunkSize plus room for the
// framing), which also bounds a Has batch and an Enumerate batch.
//
// # Transport security
//
// Dial uses insecure transport credentials unless ClientConfig.DialOptions
// carries others (the cluster node passes mutual-TLS credentials when it is
// configured with them); a caller may also build its own grpc.ClientConn and
// pass it to NewClient.
package blockrpc

import (
	"errors"
	"fmt"
	"log/slog"
	"math"
	"time"

	"google.golang.org/grpc"

	"github.com/coffer-dev/coffer/blockstore"
)

const (
	// DefaultChunkSize is the default length of the data chunks a block is
	// split into on the wire.
	DefaultChunkSize = 256 << 10
	// MaxChunkSize is the largest ChunkSize either side accepts.
	MaxChunkSize = 1 << 20
	// MaxMsgSize is the largest gRPC message the client and ServerOptions
	// accept: a chunk plus room for the framing.
	MaxMsgSize = MaxChunkSize + 64<<10
	// MaxHasBatch is the largest number of refs in one Has request.
	MaxHasBatch = 10_000
	// WindowSize is the HTTP/2 stream flow-control window Dial and
	// ServerOptions set.
	WindowSize = 4 << 20
	// ConnWindowSize is the HTTP/2 connection flow-control window Dial and
	// ServerOptions set.
	ConnWindowSize = 16 << 20
	// MaxConcurrentStreams is the most calls ServerOptions lets one client
	// connection have in progress at once; further calls wait in the
	// client until one ends. With at most one chunk buffered per Put that
	// has not yet sent its data, it bounds what idle streams can hold.
	MaxConcurrentStreams = 256
	// ErrorDomain is the Domain of the errdetails.ErrorInfo attached to
	// every error status.
	ErrorDomain = "block.coffer"

	enumerateBatch = 1000
)

// ServerOptions returns the grpc.ServerOptions the block service expects:
// flow-control windows that match Dial's, a receive limit that fits a
// chunk and at most MaxConcurrentStreams calls per connection. Pass them to
// grpc.NewServer.
func ServerOptions() []grpc.ServerOption {
	return []grpc.ServerOption{
		grpc.InitialWindowSize(WindowSize),
		grpc.InitialConnWindowSize(ConnWindowSize),
		grpc.MaxRecvMsgSize(MaxMsgSize),
		grpc.MaxConcurrentStreams(MaxConcurrentStreams),
	}
}

// validateSizes appends the problems with a max block size and chunk size.
func validateSizes(bad func(string, ...any), maxBlockSize, chunkSize int) {
	if maxBlockSize < 0 {
		bad("MaxBlockSize %d: must not be negative", maxBlockSize)
	}
	if chunkSize < 0 || chunkSize > MaxChunkSize {
		bad("ChunkSize %d: must be 1 to %d (0 for the default)", chunkSize, MaxChunkSize)
	}
}

// configError returns nil or one error wrapping ErrInvalidConfig that
// lists every problem.
func configError(what string, errs []error) error {
	if len(errs) == 0 {
		return nil
	}
	return fmt.Errorf("%w: blockrpc: %s: %w", blockstore.ErrInvalidConfig, what, errors.Join(errs...))
}

func discardIfNil(l *slog.Logger) *slog.Logger {
	if l == nil {
		return slog.New(slog.DiscardHandler)
	}
	return l
}

// refFromBytes parses a wire ref; it must be exactly 32 bytes.
func refFromBytes(b []byte) (blockstore.Ref, error) {
	var r blockstore.Ref
	if len(b) != len(r) {
		return r, fmt.Errorf("%w: ref of %d bytes, want %d", blockstore.ErrInvalidRef, len(b), len(r))
	}
	copy(r[:], b)
	return r, nil
}

// Times travel as Unix nanoseconds. math.MinInt64 stands for the zero
// time; times outside the int64 range (years 1678 to 2262) are clamped,
// which keeps their order.
var (
	minNanoTime = time.Unix(0, math.MinInt64+1)
	maxNanoTime = time.Unix(0, math.MaxInt64)
)

func timeToNanos(t time.Time) int64 {
	switch {
	case t.IsZero():
		return math.MinInt64
	case t.Before(minNanoTime):
		return math.MinInt64 + 1
	case t.After(maxNanoTime):
		return math.MaxInt64
	}
	return t.UnixNano()
}

func nanosToTime(n int64) time.Time {
	if n == math.MinInt64 {
		return time.Time{}
	}
	return time.Unix(0, n)
}

// sizeDefaults fills in the default block and chunk sizes (0 = default).
func sizeDefaults(maxBlock, chunk int) (int, int) {
	if maxBlock == 0 {
		maxBlock = blockstore.DefaultMaxBlockSize
	}
	if chunk == 0 {
		chunk = DefaultChunkSize
	}
	return maxBlock, chunk
}
