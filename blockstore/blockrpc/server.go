package blockrpc

import (
	"context"
	"fmt"
	"io"
	"log/slog"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"

	"github.com/coffer-dev/coffer/blockstore"
	"github.com/coffer-dev/coffer/blockstore/blockpb"
)

// ServerConfig configures a Server. The zero value is usable.
type ServerConfig struct {
	// MaxBlockSize is the largest block Put accepts (default
	// blockstore.DefaultMaxBlockSize). Set it to the store's own maximum:
	// the server refuses a larger declared size before it reads any data.
	MaxBlockSize int
	// ChunkSize is the length of the chunks Get sends (default
	// DefaultChunkSize, at most MaxChunkSize).
	ChunkSize int
	// Logger receives the server's logs (default: discarded).
	Logger *slog.Logger
}

// Validate reports every problem with c at once, wrapping
// blockstore.ErrInvalidConfig.
func (c ServerConfig) Validate() error {
	var errs []error
	validateSizes(func(f string, a ...any) { errs = append(errs, fmt.Errorf(f, a...)) }, c.MaxBlockSize, c.ChunkSize)
	return configError("ServerConfig", errs)
}

func (c ServerConfig) withDefaults() ServerConfig {
	c.MaxBlockSize, c.ChunkSize = sizeDefaults(c.MaxBlockSize, c.ChunkSize)
	c.Logger = discardIfNil(c.Logger).With("component", "blockrpc.server")
	return c
}

// Server serves a blockstore.Store as the gRPC BlockService. Use NewServer
// and Register.
type Server struct {
	svc *service
}

// NewServer returns a server for store. The store stays the caller's: the
// server never closes it.
func NewServer(store blockstore.Store, cfg ServerConfig) (*Server, error) {
	if store == nil {
		return nil, fmt.Errorf("%w: blockrpc: nil store", blockstore.ErrInvalidConfig)
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	return &Server{svc: &service{store: store, cfg: cfg, log: cfg.Logger}}, nil
}

// Register registers the BlockService on s (a *grpc.Server, typically made
// with ServerOptions).
func (s *Server) Register(r grpc.ServiceRegistrar) {
	blockpb.RegisterBlockServiceServer(r, s.svc)
}

// service implements blockpb.BlockServiceServer over a Store.
type service struct {
	blockpb.UnimplementedBlockServiceServer
	store blockstore.Store
	cfg   ServerConfig
	log   *slog.Logger
}

// fail logs a failed call and returns it as a status error. Errors that
// should not happen (internal, data loss) are logged at Warn, the rest at
// Debug: they are the caller's to handle.
func (s *service) fail(ctx context.Context, op string, err error) error {
	if cerr := ctx.Err(); cerr != nil {
		// The caller went away (or its deadline passed) while we worked:
		// say so rather than reporting whatever that did to the call.
		err = fmt.Errorf("%s: %w", op, cerr)
	}
	st := toStatus(err)
	level := slog.LevelDebug
	if c := grpcCodes[blockstore.CodeOf(err)]; c == codes.Internal || c == codes.DataLoss {
		level = slog.LevelWarn
	}
	s.log.Log(ctx, level, "call failed", "op", op, "code", string(blockstore.CodeOf(err)), "err", err)
	return st
}

func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{blockstore.ErrInvalidArgument}, args...)...)
}

// Put implements blockpb.BlockServiceServer.
func (s *service) Put(stream grpc.ClientStreamingServer[blockpb.PutRequest, blockpb.PutResponse]) error {
	ctx := stream.Context()
	first, err := stream.Recv()
	if err == io.EOF {
		return s.fail(ctx, "put", invalid("empty stream, want a header"))
	}
	if err != nil {
		return s.fail(ctx, "put", err)
	}
	h := first.GetHeader()
	if h == nil {
		return s.fail(ctx, "put", invalid("first message is not a header"))
	}
	ref, err := refFromBytes(h.GetRef())
	if err != nil {
		return s.fail(ctx, "put", err)
	}
	size := h.GetSize()
	if size < 0 {
		return s.fail(ctx, "put", invalid("block %s: negative size %d", ref.Short(), size))
	}
	if size > int64(s.cfg.MaxBlockSize) {
		return s.fail(ctx, "put", fmt.Errorf("%w: block %s: %d bytes > %d", blockstore.ErrTooLarge, ref.Short(), size, s.cfg.MaxBlockSize))
	}
	// The buffer grows as the data arrives: a header alone costs at most
	// one chunk, however large the size it declares.
	data := newPutBuffer(size, s.cfg.ChunkSize)
	for {
		msg, err := stream.Recv()
		if err == io.EOF {
			break
		}
		if err != nil {
			return s.fail(ctx, "put", err)
		}
		chunk, ok := msg.GetMsg().(*blockpb.PutRequest_Chunk)
		if !ok {
			return s.fail(ctx, "put", invalid("block %s: a second header", ref.Short()))
		}
		if int64(len(data))+int64(len(chunk.Chunk)) > size {
			return s.fail(ctx, "put", invalid("block %s: more than the declared %d bytes", ref.Short(), size))
		}
		data = appendChunk(data, chunk.Chunk, size)
	}
	if int64(len(data)) != size {
		return s.fail(ctx, "put", invalid("block %s: %d of the declared %d bytes", ref.Short(), len(data), size))
	}
	if err := s.store.Put(ctx, ref, data); err != nil {
		return s.fail(ctx, "put", err)
	}
	return stream.SendAndClose(&blockpb.PutResponse{})
}

// newPutBuffer returns the empty buffer of a Put that declared size bytes:
// room for one chunk (at most size), not the declared size, which costs the
// sender nothing to claim.
func newPutBuffer(size int64, chunkSize int) []byte {
	return make([]byte, 0, min(size, int64(chunkSize)))
}

// appendChunk appends chunk to buf, which the caller has checked stays
// within size. When buf is full it at least doubles, but never grows beyond
// size.
func appendChunk(buf, chunk []byte, size int64) []byte {
	need := len(buf) + len(chunk)
	if need <= cap(buf) {
		return append(buf, chunk...)
	}
	newCap := int(min(size, int64(max(2*cap(buf), need))))
	grown := make([]byte, len(buf), newCap)
	copy(grown, buf)
	return append(grown, chunk...)
}

// Get implements blockpb.BlockServiceServer.
func (s *service) Get(req *blockpb.GetRequest, stream grpc.ServerStreamingServer[blockpb.GetResponse]) error {
	ctx := stream.Context()
	ref, err := refFromBytes(req.GetRef())
	if err != nil {
		return s.fail(ctx, "get", err)
	}
	data, err := s.store.Get(ctx, ref)
	if err != nil {
		return s.fail(ctx, "get", err)
	}
	header := &blockpb.GetResponse{Msg: &blockpb.GetResponse_Header{Header: &blockpb.GetHeader{Size: int64(len(data))}}}
	if err := stream.Send(header); err != nil {
		return s.fail(ctx, "get", err)
	}
	for off := 0; off < len(data); off += s.cfg.ChunkSize {
		end := min(off+s.cfg.ChunkSize, len(data))
		if err := stream.Send(&blockpb.GetResponse{Msg: &blockpb.GetResponse_Chunk{Chunk: data[off:end]}}); err != nil {
			return s.fail(ctx, "get", err)
		}
	}
	return nil
}

// Has implements blockpb.BlockServiceServer.
func (s *service) Has(ctx context.Context, req *blockpb.HasRequest) (*blockpb.HasResponse, error) {
	if n := len(req.GetRefs()); n > MaxHasBatch {
		return nil, s.fail(ctx, "has", invalid("%d refs in one call, at most %d", n, MaxHasBatch))
	}
	refs := make([]blockstore.Ref, len(req.GetRefs()))
	for i, b := range req.GetRefs() {
		r, err := refFromBytes(b)
		if err != nil {
			return nil, s.fail(ctx, "has", err)
		}
		refs[i] = r
	}
	present, err := s.store.Has(ctx, refs)
	if err != nil {
		return nil, s.fail(ctx, "has", err)
	}
	if len(present) != len(refs) {
		return nil, s.fail(ctx, "has", fmt.Errorf("store answered %d results for %d refs", len(present), len(refs)))
	}
	return &blockpb.HasResponse{Present: present}, nil
}

// Delete implements blockpb.BlockServiceServer.
func (s *service) Delete(ctx context.Context, req *blockpb.DeleteRequest) (*blockpb.DeleteResponse, error) {
	ref, err := refFromBytes(req.GetRef())
	if err != nil {
		return nil, s.fail(ctx, "delete", err)
	}
	deleted, err := s.store.Delete(ctx, ref, nanosToTime(req.GetStoredBefore()))
	if err != nil {
		return nil, s.fail(ctx, "delete", err)
	}
	return &blockpb.DeleteResponse{Deleted: deleted}, nil
}

// Enumerate implements blockpb.BlockServiceServer.
func (s *service) Enumerate(req *blockpb.EnumerateRequest, stream grpc.ServerStreamingServer[blockpb.EnumerateResponse]) error {
	ctx := stream.Context()
	var from blockstore.Ref
	if b := req.GetFrom(); len(b) > 0 {
		r, err := refFromBytes(b)
		if err != nil {
			return s.fail(ctx, "enumerate", err)
		}
		from = r
	}
	// A fresh slice per message: a sent message is not reused (stats
	// handlers may look at it later).
	batch := make([]*blockpb.BlockInfo, 0, enumerateBatch)
	err := s.store.Enumerate(ctx, from, func(info blockstore.BlockInfo) error {
		batch = append(batch, &blockpb.BlockInfo{Ref: info.Ref[:], Size: info.Size, StoredAt: timeToNanos(info.StoredAt)})
		if len(batch) < enumerateBatch {
			return nil
		}
		err := stream.Send(&blockpb.EnumerateResponse{Blocks: batch})
		batch = make([]*blockpb.BlockInfo, 0, enumerateBatch)
		return err
	})
	if err == nil && len(batch) > 0 {
		err = stream.Send(&blockpb.EnumerateResponse{Blocks: batch})
	}
	if err != nil {
		return s.fail(ctx, "enumerate", err)
	}
	return nil
}

// Stats implements blockpb.BlockServiceServer.
func (s *service) Stats(ctx context.Context, _ *blockpb.StatsRequest) (*blockpb.StatsResponse, error) {
	st, err := s.store.Stats(ctx)
	if err != nil {
		return nil, s.fail(ctx, "stats", err)
	}
	return &blockpb.StatsResponse{
		Blocks:       st.Blocks,
		Bytes:        st.Bytes,
		DiskBytes:    st.DiskBytes,
		BytesWritten: st.BytesWritten,
		Puts:         st.Puts,
		Dedups:       st.Dedups,
		BytesPut:     st.BytesPut,
		Gets:         st.Gets,
		BytesRead:    st.BytesRead,
		Deletes:      st.Deletes,
		Corrupt:      st.Corrupt,
		Syncs:        st.Syncs,
		Compaction:   st.Compaction,
		FreeBytes:    st.FreeBytes,
	}, nil
}
