package blockrpc

import (
	"context"
	"crypto/rand"
	"net"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/coffer-dev/coffer/blockstore"
	"github.com/coffer-dev/coffer/blockstore/blockpb"
	"github.com/coffer-dev/coffer/blockstore/memstore"
)

// testTimeout bounds every wait in the tests, so a bug fails instead of
// hanging.
const testTimeout = 30 * time.Second

func testContext(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	t.Cleanup(cancel)
	return ctx
}

// testServer is a real gRPC server on 127.0.0.1.
type testServer struct {
	addr string
	gs   *grpc.Server
	rec  *recorder
	done chan struct{}
}

// startServer serves store on a fresh 127.0.0.1 port until the test ends
// (or stop is called).
func startServer(t testing.TB, store blockstore.Store, cfg ServerConfig) *testServer {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv, err := NewServer(store, cfg)
	if err != nil {
		t.Fatal(err)
	}
	rec := newRecorder()
	gs := grpc.NewServer(append(ServerOptions(), rec.serverOptions()...)...)
	srv.Register(gs)
	ts := &testServer{addr: lis.Addr().String(), gs: gs, rec: rec, done: make(chan struct{})}
	go func() {
		defer close(ts.done)
		_ = gs.Serve(lis)
	}()
	t.Cleanup(ts.stop)
	return ts
}

// stop stops the server and waits for Serve to return.
func (ts *testServer) stop() {
	ts.gs.Stop()
	<-ts.done
}

// startMem serves a fresh memstore and returns it with the server.
func startMem(t testing.TB, mcfg memstore.Config, cfg ServerConfig) (*memstore.Store, *testServer) {
	t.Helper()
	ms, err := memstore.New(mcfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ms.Close() })
	return ms, startServer(t, ms, cfg)
}

func dial(t testing.TB, addr string, cfg ClientConfig) *Client {
	t.Helper()
	c, err := Dial(testContext(t), addr, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// rawClient is a generated client on its own connection, for sending
// what the Client never would.
func rawClient(t testing.TB, addr string) blockpb.BlockServiceClient {
	t.Helper()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return blockpb.NewBlockServiceClient(conn)
}

func randomBlock(t testing.TB, n int) (blockstore.Ref, []byte) {
	t.Helper()
	data := make([]byte, n)
	if _, err := rand.Read(data); err != nil {
		t.Fatal(err)
	}
	return blockstore.Sum(data), data
}

// ending is a server handler that returned.
type ending struct {
	method string
	err    error
}

// recorder counts calls and messages on the server side, reports each
// handler's end, and lets a test hook into sent messages.
type recorder struct {
	mu    sync.Mutex
	calls map[string]int
	sent  map[string]int
	recvd map[string]int
	// onSend, if set, is called after each message a handler sent, with
	// the number sent so far in that call.
	onSend func(ctx context.Context, method string, n int)

	ended chan ending
}

func newRecorder() *recorder {
	return &recorder{
		calls: map[string]int{},
		sent:  map[string]int{},
		recvd: map[string]int{},
		ended: make(chan ending, 10000),
	}
}

func (r *recorder) setOnSend(f func(ctx context.Context, method string, n int)) {
	r.mu.Lock()
	r.onSend = f
	r.mu.Unlock()
}

func (r *recorder) count(m map[string]int, method string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return m[method]
}

func (r *recorder) bump(m map[string]int, method string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	m[method]++
	return m[method]
}

// waitEnd waits for the next handler of method to return.
func (r *recorder) waitEnd(t testing.TB, method string) error {
	t.Helper()
	timeout := time.After(testTimeout)
	for {
		select {
		case e := <-r.ended:
			if e.method == method {
				return e.err
			}
		case <-timeout:
			t.Fatalf("the %s handler did not end", method)
		}
	}
}

// end reports a handler's end; it never blocks (a test that waits for ends
// makes few calls).
func (r *recorder) end(method string, err error) {
	select {
	case r.ended <- ending{method, err}:
	default:
	}
}

func (r *recorder) serverOptions() []grpc.ServerOption {
	unary := func(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
		r.bump(r.calls, info.FullMethod)
		resp, err := h(ctx, req)
		r.end(info.FullMethod, err)
		return resp, err
	}
	stream := func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, h grpc.StreamHandler) error {
		r.bump(r.calls, info.FullMethod)
		err := h(srv, &recordingStream{ServerStream: ss, r: r, method: info.FullMethod})
		r.end(info.FullMethod, err)
		return err
	}
	return []grpc.ServerOption{grpc.ChainUnaryInterceptor(unary), grpc.ChainStreamInterceptor(stream)}
}

type recordingStream struct {
	grpc.ServerStream
	r      *recorder
	method string
	n      int
}

func (s *recordingStream) SendMsg(m any) error {
	err := s.ServerStream.SendMsg(m)
	if err == nil {
		s.n++
		s.r.bump(s.r.sent, s.method)
		s.r.mu.Lock()
		f := s.r.onSend
		s.r.mu.Unlock()
		if f != nil {
			f(s.Context(), s.method, s.n)
		}
	}
	return err
}

func (s *recordingStream) RecvMsg(m any) error {
	err := s.ServerStream.RecvMsg(m)
	if err == nil {
		s.r.bump(s.r.recvd, s.method)
	}
	return err
}

const (
	methodPut       = "/coffer.block.v1.BlockService/Put"
	methodGet       = "/coffer.block.v1.BlockService/Get"
	methodHas       = "/coffer.block.v1.BlockService/Has"
	methodDelete    = "/coffer.block.v1.BlockService/Delete"
	methodEnumerate = "/coffer.block.v1.BlockService/Enumerate"
	methodStats     = "/coffer.block.v1.BlockService/Stats"
)

// fakeStore answers every call with err (and Get with data, if err is
// nil); block, if set, makes calls wait for ctx first.
type fakeStore struct {
	err   error
	data  []byte
	block bool

	mu   sync.Mutex
	puts int
}

func (f *fakeStore) wait(ctx context.Context) error {
	if f.block {
		<-ctx.Done()
		return ctx.Err()
	}
	return nil
}

func (f *fakeStore) Put(ctx context.Context, _ blockstore.Ref, _ []byte) error {
	f.mu.Lock()
	f.puts++
	f.mu.Unlock()
	if err := f.wait(ctx); err != nil {
		return err
	}
	return f.err
}

func (f *fakeStore) Get(ctx context.Context, _ blockstore.Ref) ([]byte, error) {
	if err := f.wait(ctx); err != nil {
		return nil, err
	}
	if f.err != nil {
		return nil, f.err
	}
	return f.data, nil
}

func (f *fakeStore) Has(ctx context.Context, refs []blockstore.Ref) ([]bool, error) {
	if err := f.wait(ctx); err != nil {
		return nil, err
	}
	if f.err != nil {
		return nil, f.err
	}
	return make([]bool, len(refs)), nil
}

func (f *fakeStore) Delete(ctx context.Context, _ blockstore.Ref, _ time.Time) (bool, error) {
	if err := f.wait(ctx); err != nil {
		return false, err
	}
	return false, f.err
}

func (f *fakeStore) Enumerate(ctx context.Context, _ blockstore.Ref, _ func(blockstore.BlockInfo) error) error {
	if err := f.wait(ctx); err != nil {
		return err
	}
	return f.err
}

func (f *fakeStore) Stats(ctx context.Context) (blockstore.Stats, error) {
	if err := f.wait(ctx); err != nil {
		return blockstore.Stats{}, err
	}
	return blockstore.Stats{}, f.err
}

func (f *fakeStore) Close() error { return nil }

func (f *fakeStore) putCount() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.puts
}

// waitFor polls cond until it holds, failing the test after testTimeout.
func waitFor(t testing.TB, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(testTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met in time")
		}
		time.Sleep(time.Millisecond)
	}
}
