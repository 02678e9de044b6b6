package blockrpc

import (
	"context"
	"errors"
	"runtime"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/coffer-dev/coffer/blockstore"
	"github.com/coffer-dev/coffer/blockstore/blockpb"
	"github.com/coffer-dev/coffer/blockstore/memstore"
)

func header(ref []byte, size int64) *blockpb.PutRequest {
	return &blockpb.PutRequest{Msg: &blockpb.PutRequest_Header{Header: &blockpb.PutHeader{Ref: ref, Size: size}}}
}

func chunk(b []byte) *blockpb.PutRequest {
	return &blockpb.PutRequest{Msg: &blockpb.PutRequest_Chunk{Chunk: b}}
}

// TestPutRefusesTooLargeBeforeChunks sends only a header that declares too
// much and then waits for the answer without closing the stream: a server
// that waited for chunks would never answer.
func TestPutRefusesTooLargeBeforeChunks(t *testing.T) {
	store := &fakeStore{}
	ts := startServer(t, store, ServerConfig{MaxBlockSize: 1 << 20})
	raw := rawClient(t, ts.addr)
	ctx := testContext(t)

	stream, err := raw.Put(ctx)
	if err != nil {
		t.Fatal(err)
	}
	ref := blockstore.Sum([]byte("x"))
	if err := stream.Send(header(ref[:], 1<<20+1)); err != nil {
		t.Fatal(err)
	}
	err = stream.RecvMsg(new(blockpb.PutResponse)) // no CloseSend
	if got := status.Code(err); got != codes.InvalidArgument {
		t.Fatalf("got %v, want InvalidArgument", err)
	}
	if reason := errorInfo(t, err).GetReason(); reason != string(blockstore.CodeTooLarge) {
		t.Errorf("reason %q, want too_large", reason)
	}
	if !errors.Is(fromRPC(ctx, "put", err), blockstore.ErrTooLarge) {
		t.Errorf("the client would not see ErrTooLarge in %v", err)
	}
	if n := ts.rec.count(ts.rec.recvd, methodPut); n != 1 {
		t.Errorf("the server read %d messages, want the header only", n)
	}
	if n := store.putCount(); n != 0 {
		t.Errorf("the store saw %d Puts", n)
	}
}

// TestPutBadStreams: every malformed Put stream is refused with
// invalid_argument (or invalid_ref) and nothing reaches the store.
func TestPutBadStreams(t *testing.T) {
	data := []byte("0123456789abcdef")
	ref := blockstore.Sum(data)
	rows := []struct {
		name   string
		msgs   []*blockpb.PutRequest
		reason blockstore.Code
	}{
		{"more bytes than declared", []*blockpb.PutRequest{header(ref[:], 10), chunk(data[:8]), chunk(data[8:])}, blockstore.CodeInvalidArgument},
		{"more bytes in one chunk", []*blockpb.PutRequest{header(ref[:], 10), chunk(data)}, blockstore.CodeInvalidArgument},
		{"fewer bytes than declared", []*blockpb.PutRequest{header(ref[:], 32), chunk(data)}, blockstore.CodeInvalidArgument},
		{"no header", []*blockpb.PutRequest{chunk(data)}, blockstore.CodeInvalidArgument},
		{"empty stream", nil, blockstore.CodeInvalidArgument},
		{"second header", []*blockpb.PutRequest{header(ref[:], 16), chunk(data[:8]), header(ref[:], 16), chunk(data[8:])}, blockstore.CodeInvalidArgument},
		{"negative size", []*blockpb.PutRequest{header(ref[:], -1)}, blockstore.CodeInvalidArgument},
		{"short ref", []*blockpb.PutRequest{header(ref[:31], 16), chunk(data)}, blockstore.CodeInvalidRef},
		{"wrong hash", []*blockpb.PutRequest{header(make([]byte, 32), 16), chunk(data)}, blockstore.CodeHashMismatch},
	}
	ms, ts := startMem(t, memstore.Config{}, ServerConfig{})
	raw := rawClient(t, ts.addr)
	for _, r := range rows {
		t.Run(r.name, func(t *testing.T) {
			ctx := testContext(t)
			stream, err := raw.Put(ctx)
			if err != nil {
				t.Fatal(err)
			}
			for _, m := range r.msgs {
				if err := stream.Send(m); err != nil {
					break // the server ended the call; CloseAndRecv says why
				}
			}
			_, err = stream.CloseAndRecv()
			if reason := errorInfo(t, err).GetReason(); reason != string(r.reason) {
				t.Errorf("got %v (reason %q), want reason %q", err, reason, r.reason)
			}
			if status.Code(err) != codes.InvalidArgument {
				t.Errorf("code %v, want InvalidArgument", status.Code(err))
			}
			if !errors.Is(fromRPC(ctx, "put", err), blockstore.SentinelOf(r.reason)) {
				t.Errorf("the client would not see %s in %v", r.reason, err)
			}
		})
	}
	st, err := ms.Stats(testContext(t))
	if err != nil {
		t.Fatal(err)
	}
	if st.Puts != 0 || st.Dedups != 0 || st.Blocks != 0 {
		t.Errorf("something was stored: %+v", st)
	}
	// The same server still takes a good block.
	stream, err := raw.Put(testContext(t))
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range []*blockpb.PutRequest{header(ref[:], 16), chunk(data[:5]), chunk(data[5:])} {
		if err := stream.Send(m); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := stream.CloseAndRecv(); err != nil {
		t.Fatal(err)
	}
	if has, _ := ms.Has(testContext(t), []blockstore.Ref{ref}); !has[0] {
		t.Error("the good block was not stored")
	}
}

// TestPutCancelledMidStream: a client that goes away halfway stores
// nothing.
func TestPutCancelledMidStream(t *testing.T) {
	store := &fakeStore{}
	ts := startServer(t, store, ServerConfig{})
	raw := rawClient(t, ts.addr)
	ctx, cancel := context.WithCancel(testContext(t))
	defer cancel()
	ref, data := randomBlock(t, 1<<20)
	stream, err := raw.Put(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := stream.Send(header(ref[:], int64(len(data)))); err != nil {
		t.Fatal(err)
	}
	if err := stream.Send(chunk(data[:len(data)/2])); err != nil {
		t.Fatal(err)
	}
	// Wait until the server has the half, then leave.
	waitFor(t, func() bool { return ts.rec.count(ts.rec.recvd, methodPut) == 2 })
	cancel()
	if err := ts.rec.waitEnd(t, methodPut); status.Code(err) != codes.Canceled {
		t.Errorf("the handler ended with %v, want Canceled", err)
	}
	if n := store.putCount(); n != 0 {
		t.Errorf("the store saw %d Puts", n)
	}
}

func TestHasBatchCap(t *testing.T) {
	_, ts := startMem(t, memstore.Config{}, ServerConfig{})
	raw := rawClient(t, ts.addr)
	ctx := testContext(t)
	refs := make([][]byte, MaxHasBatch)
	for i := range refs {
		refs[i] = make([]byte, 32)
	}
	resp, err := raw.Has(ctx, &blockpb.HasRequest{Refs: refs})
	if err != nil {
		t.Fatalf("a full batch: %v", err)
	}
	if len(resp.GetPresent()) != MaxHasBatch {
		t.Fatalf("%d answers", len(resp.GetPresent()))
	}
	_, err = raw.Has(ctx, &blockpb.HasRequest{Refs: append(refs, make([]byte, 32))})
	if reason := errorInfo(t, err).GetReason(); reason != string(blockstore.CodeInvalidArgument) {
		t.Errorf("one ref over the cap: %v", err)
	}
}

func TestServerRefusesBadRefs(t *testing.T) {
	_, ts := startMem(t, memstore.Config{}, ServerConfig{})
	raw := rawClient(t, ts.addr)
	ctx := testContext(t)
	short := make([]byte, 31)
	check := func(name string, err error) {
		t.Helper()
		if reason := errorInfo(t, err).GetReason(); reason != string(blockstore.CodeInvalidRef) {
			t.Errorf("%s: %v", name, err)
		}
	}
	_, err := raw.Has(ctx, &blockpb.HasRequest{Refs: [][]byte{make([]byte, 32), short}})
	check("has", err)
	_, err = raw.Delete(ctx, &blockpb.DeleteRequest{Ref: short})
	check("delete", err)
	gs, err := raw.Get(ctx, &blockpb.GetRequest{Ref: short})
	if err == nil {
		_, err = gs.Recv()
	}
	check("get", err)
	es, err := raw.Enumerate(ctx, &blockpb.EnumerateRequest{From: short})
	if err == nil {
		_, err = es.Recv()
	}
	check("enumerate", err)
}

// TestPutBuffersWhatArrives: a Put stream that declares a maximum-size
// block but sends only a byte makes the server allocate about one chunk,
// not the declared size. Header-only streams are cheap to open, so a
// buffer sized from the header alone lets idle streams pin gigabytes.
func TestPutBuffersWhatArrives(t *testing.T) {
	const streams = 16
	const declared = blockstore.DefaultMaxBlockSize
	ts := startServer(t, &fakeStore{}, ServerConfig{})
	raw := rawClient(t, ts.addr)
	ctx := testContext(t)
	ref := blockstore.Sum([]byte("declared but never sent"))

	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for range streams {
		stream, err := raw.Put(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if err := stream.Send(header(ref[:], declared)); err != nil {
			t.Fatal(err)
		}
		if err := stream.Send(chunk([]byte{1})); err != nil {
			t.Fatal(err)
		}
	}
	// The server reads the chunk after it has made the buffer.
	waitFor(t, func() bool { return ts.rec.count(ts.rec.recvd, methodPut) == 2*streams })
	runtime.ReadMemStats(&after)
	// Each stream may take one chunk's buffer; grpc's own allocations are
	// far below the slack of 1 MiB per stream.
	t.Logf("allocated %d KiB", (after.TotalAlloc-before.TotalAlloc)>>10)
	if got, limit := after.TotalAlloc-before.TotalAlloc, uint64(streams<<20); got > limit {
		t.Errorf("%d header-only streams allocated %d MiB, want at most %d MiB",
			streams, got>>20, limit>>20)
	}
}

func TestPutBufferGrowth(t *testing.T) {
	const chunkSize = 256 << 10
	for _, tc := range []struct {
		name      string
		size      int64
		chunks    []int
		wantStart int
		maxCap    int
	}{
		{"empty block", 0, nil, 0, 0},
		{"below a chunk", 1000, []int{1000}, 1000, 1000},
		{"exactly a chunk", chunkSize, []int{chunkSize}, chunkSize, chunkSize},
		{"max block in chunks", 4 << 20, repeat(chunkSize, 16), chunkSize, 4 << 20},
		{"odd size", 3<<20 + 5, append(repeat(chunkSize, 12), 5), chunkSize, 3<<20 + 5},
		{"client with bigger chunks", 3 << 20, repeat(1<<20, 3), chunkSize, 3 << 20},
		{"client with tiny chunks", 1 << 20, repeat(1000, 1048), chunkSize, 1 << 20},
	} {
		t.Run(tc.name, func(t *testing.T) {
			buf := newPutBuffer(tc.size, chunkSize)
			if cap(buf) != tc.wantStart {
				t.Errorf("initial capacity %d, want %d", cap(buf), tc.wantStart)
			}
			total := 0
			for _, n := range tc.chunks {
				if total+n > int(tc.size) {
					n = int(tc.size) - total
				}
				buf = appendChunk(buf, make([]byte, n), tc.size)
				total += n
				if cap(buf) > tc.maxCap {
					t.Fatalf("capacity %d after %d bytes, above the declared %d", cap(buf), total, tc.size)
				}
			}
			if len(buf) != total {
				t.Errorf("len %d, want %d", len(buf), total)
			}
		})
	}
}

func repeat(n, times int) []int {
	out := make([]int, times)
	for i := range out {
		out[i] = n
	}
	return out
}

// TestMaxConcurrentStreams: ServerOptions limits the streams of one
// connection, so a client cannot park an unbounded number of handlers.
func TestMaxConcurrentStreams(t *testing.T) {
	ts := startServer(t, &fakeStore{}, ServerConfig{})
	raw := rawClient(t, ts.addr)
	ctx, cancel := context.WithCancel(testContext(t))
	defer cancel()
	ref := blockstore.Sum([]byte("idle"))
	var first context.CancelFunc
	for i := range MaxConcurrentStreams {
		sctx, scancel := context.WithCancel(ctx)
		if i == 0 {
			first = scancel
		} else {
			defer scancel()
		}
		stream, err := raw.Put(sctx)
		if err != nil {
			t.Fatal(err)
		}
		if err := stream.Send(header(ref[:], 10)); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, func() bool { return ts.rec.count(ts.rec.recvd, methodPut) == MaxConcurrentStreams })
	// One stream more waits for a free slot: it cannot open while all are
	// taken (a bounded check: without the limit it opens at once).
	short, scancel := context.WithTimeout(ctx, 300*time.Millisecond)
	_, err := raw.Put(short)
	scancel()
	if err == nil {
		t.Fatalf("stream %d opened while %d were open", MaxConcurrentStreams+1, MaxConcurrentStreams)
	}
	// Once one ends, the next one opens.
	first()
	stream, err := raw.Put(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := stream.Send(header(ref[:], 10)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { return ts.rec.count(ts.rec.recvd, methodPut) == MaxConcurrentStreams+1 })
}
