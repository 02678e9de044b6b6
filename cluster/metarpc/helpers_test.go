package metarpc

import (
	"context"
	"fmt"
	"net"
	"sync"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/coffer-dev/coffer/cluster/clusterpb"
	"github.com/coffer-dev/coffer/raftmeta"
)

// *raftmeta.Shard is what the Server serves in production.
var _ Shard = (*raftmeta.Shard)(nil)

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
	lis  net.Listener
	done chan struct{}
	once sync.Once
}

func listen(t testing.TB) net.Listener {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return lis
}

// serve serves shards on lis until the test ends (or stop is called).
func serve(t testing.TB, lis net.Listener, shards Shards) *testServer {
	t.Helper()
	gs := grpc.NewServer()
	NewServer(shards, nil).Register(gs)
	ts := &testServer{addr: lis.Addr().String(), gs: gs, lis: lis, done: make(chan struct{})}
	go func() {
		defer close(ts.done)
		_ = gs.Serve(lis)
	}()
	t.Cleanup(ts.stop)
	return ts
}

// stop stops the server hard: connections close, calls in flight fail.
func (ts *testServer) stop() {
	ts.once.Do(func() {
		ts.gs.Stop()
		<-ts.done
	})
}

// dial returns a connection to addr, closed when the test ends.
func dial(t testing.TB, addr string) *grpc.ClientConn {
	t.Helper()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// fakeShards hosts one fake replica of group 1 and maps node names to
// gRPC addresses.
type fakeShards struct {
	shard *fakeShard
	addrs map[string]string
}

func (f *fakeShards) Shard(group uint64) (Shard, error) {
	if group != 1 {
		return nil, fmt.Errorf("%w: group %d", ErrNoReplica, group)
	}
	return f.shard, nil
}

func (f *fakeShards) GRPCAddr(nodeID string) string { return f.addrs[nodeID] }

// fakeShard answers every method with err. If block is set, a call waits
// for it to close (or for its ctx). Each call reports its method on
// entered (if set) and the timeout of WaitChanges on waits. The methods
// added for the gateway record their arguments (args) and answer with
// values derived from them.
type fakeShard struct {
	mu      sync.Mutex
	err     error
	block   chan struct{}
	entered chan string
	waits   chan time.Duration
	args    []any // the arguments of the last recorded call, ctx left out
}

// record keeps a call's arguments.
func (f *fakeShard) record(args ...any) {
	f.mu.Lock()
	f.args = args
	f.mu.Unlock()
}

// lastArgs returns the arguments of the last recorded call.
func (f *fakeShard) lastArgs() []any {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.args
}

func (f *fakeShard) setErr(err error) {
	f.mu.Lock()
	f.err = err
	f.mu.Unlock()
}

func (f *fakeShard) enter(ctx context.Context, method string) error {
	f.mu.Lock()
	err, block, entered := f.err, f.block, f.entered
	f.mu.Unlock()
	if entered != nil {
		entered <- method
	}
	if block != nil {
		select {
		case <-block:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return err
}

func (f *fakeShard) Commit(ctx context.Context, r raftmeta.CommitRequest) (*raftmeta.CommitResult, error) {
	if err := f.enter(ctx, methodCommit); err != nil {
		return nil, err
	}
	return &raftmeta.CommitResult{Seq: 7, Index: 42, Ops: []raftmeta.OpResult{{NodeID: 3, Rev: 1, Path: r.Ops[0].Path}}}, nil
}

func (f *fakeShard) CreateUser(ctx context.Context, r raftmeta.CreateUserRequest) (*raftmeta.User, error) {
	return nil, f.enter(ctx, methodCreateUser)
}

func (f *fakeShard) DeleteUser(ctx context.Context, requestID, name string) error {
	return f.enter(ctx, methodDeleteUser)
}

func (f *fakeShard) SetPassword(ctx context.Context, requestID, name, password string) error {
	return f.enter(ctx, methodSetPassword)
}

func (f *fakeShard) SetQuota(ctx context.Context, requestID, name string, quota int64) error {
	return f.enter(ctx, methodSetQuota)
}

func (f *fakeShard) Authenticate(ctx context.Context, name, password string) (*raftmeta.User, error) {
	return nil, f.enter(ctx, methodAuthenticate)
}

func (f *fakeShard) User(ctx context.Context, name string, o raftmeta.ReadOptions) (*raftmeta.User, error) {
	return nil, f.enter(ctx, methodUser)
}

func (f *fakeShard) Stat(ctx context.Context, ns uint64, t raftmeta.Target, o raftmeta.StatOptions) (*raftmeta.Entry, error) {
	if err := f.enter(ctx, methodStat); err != nil {
		return nil, err
	}
	return &raftmeta.Entry{Node: raftmeta.Node{ID: 1, Namespace: ns, Dir: true}, Path: t.Path}, nil
}

func (f *fakeShard) List(ctx context.Context, ns uint64, t raftmeta.Target, o raftmeta.ListOptions) (*raftmeta.ListPage, error) {
	return nil, f.enter(ctx, methodList)
}

func (f *fakeShard) History(ctx context.Context, ns uint64, t raftmeta.Target, o raftmeta.HistoryOptions) ([]raftmeta.Revision, error) {
	return nil, f.enter(ctx, methodHistory)
}

func (f *fakeShard) Changes(ctx context.Context, ns, cursor uint64, limit int, o raftmeta.ReadOptions) (*raftmeta.ChangesPage, error) {
	return nil, f.enter(ctx, methodChanges)
}

func (f *fakeShard) WaitChanges(ctx context.Context, ns, cursor uint64, limit int, timeout time.Duration, o raftmeta.ReadOptions) (*raftmeta.ChangesPage, error) {
	f.mu.Lock()
	waits := f.waits
	f.mu.Unlock()
	if waits != nil {
		waits <- timeout
	}
	if err := f.enter(ctx, methodWaitChanges); err != nil {
		return nil, err
	}
	return &raftmeta.ChangesPage{Cursor: cursor, Head: cursor}, nil
}

func (f *fakeShard) Prune(ctx context.Context) (*raftmeta.PruneResult, error) {
	return nil, f.enter(ctx, methodPrune)
}

func (f *fakeShard) Referenced(ctx context.Context, ns uint64, refs []raftmeta.Sum, o raftmeta.ReadOptions) ([]bool, error) {
	if err := f.enter(ctx, methodReferenced); err != nil {
		return nil, err
	}
	f.record(ns, refs, o)
	out := make([]bool, len(refs))
	for i := range out {
		out[i] = i%2 == 0
	}
	return out, nil
}

func (f *fakeShard) Namespace(ctx context.Context, ns uint64, o raftmeta.ReadOptions) (*raftmeta.Namespace, error) {
	if err := f.enter(ctx, methodNamespace); err != nil {
		return nil, err
	}
	f.record(ns, o)
	return &raftmeta.Namespace{ID: ns, Owner: 2, Root: 3, Used: 42, Files: 4, Head: 5, Start: 1}, nil
}

func (f *fakeShard) Users(ctx context.Context, o raftmeta.UsersOptions) (*raftmeta.UserPage, error) {
	if err := f.enter(ctx, methodUsers); err != nil {
		return nil, err
	}
	f.record(o)
	return &raftmeta.UserPage{Users: []raftmeta.User{{ID: 1, Name: "alice", Namespace: 2, Created: time.Unix(7, 0).UTC()}}, NextPageToken: o.PageToken + "+"}, nil
}

func (f *fakeShard) CreateUpload(ctx context.Context, requestID string, ns uint64, id, path string, state, meta []byte) (*raftmeta.Upload, error) {
	if err := f.enter(ctx, methodCreateUpload); err != nil {
		return nil, err
	}
	f.record(requestID, ns, id, path, state, meta)
	return &raftmeta.Upload{ID: id, Namespace: ns, Path: path, Created: 1, Expires: 2, State: state, Meta: meta}, nil
}

func (f *fakeShard) AppendUpload(ctx context.Context, requestID string, ns uint64, id string, offset int64, blocks []raftmeta.Block, state []byte) (*raftmeta.Upload, error) {
	if err := f.enter(ctx, methodAppendUpload); err != nil {
		return nil, err
	}
	f.record(requestID, ns, id, offset, blocks, state)
	size := offset
	for _, b := range blocks {
		size += b.Size
	}
	return &raftmeta.Upload{ID: id, Namespace: ns, Size: size, Blocks: len(blocks), State: state}, nil
}

func (f *fakeShard) GetUpload(ctx context.Context, ns uint64, id string, o raftmeta.ReadOptions) (*raftmeta.Upload, error) {
	if err := f.enter(ctx, methodGetUpload); err != nil {
		return nil, err
	}
	f.record(ns, id, o)
	return &raftmeta.Upload{ID: id, Namespace: ns, Size: 9}, nil
}

func (f *fakeShard) DeleteUpload(ctx context.Context, requestID string, ns uint64, id string) error {
	if err := f.enter(ctx, methodDeleteUpload); err != nil {
		return err
	}
	f.record(requestID, ns, id)
	return nil
}

func (f *fakeShard) RevokeToken(ctx context.Context, requestID, tokenID string, expires time.Time) error {
	if err := f.enter(ctx, methodRevokeToken); err != nil {
		return err
	}
	f.record(requestID, tokenID, expires)
	return nil
}

func (f *fakeShard) RevokeSessions(ctx context.Context, requestID, name string) (*raftmeta.User, error) {
	if err := f.enter(ctx, methodRevokeSessions); err != nil {
		return nil, err
	}
	f.record(requestID, name)
	return &raftmeta.User{ID: 1, Name: name, SessionsValidAfter: time.Unix(100, 5).UTC()}, nil
}

func (f *fakeShard) SessionsValidAfter(ctx context.Context, name string, o raftmeta.ReadOptions) (time.Time, error) {
	if err := f.enter(ctx, methodSessionsValidAfter); err != nil {
		return time.Time{}, err
	}
	f.record(name, o)
	if name == "zero" {
		return time.Time{}, nil
	}
	return time.Unix(200, 7).UTC(), nil
}

func (f *fakeShard) TokenRevoked(ctx context.Context, tokenID string, o raftmeta.ReadOptions) (bool, error) {
	if err := f.enter(ctx, methodTokenRevoked); err != nil {
		return false, err
	}
	f.record(tokenID, o)
	return tokenID == "abc", nil
}

// startFake serves a fakeShard and returns it with a client of it.
func startFake(t testing.TB, cfg ClientConfig) (*fakeShard, *testServer, *Client, *grpc.ClientConn) {
	t.Helper()
	f := &fakeShard{}
	ts := serve(t, listen(t), &fakeShards{shard: f, addrs: map[string]string{"n2": "10.0.0.2:7000"}})
	conn := dial(t, ts.addr)
	return f, ts, NewClient(conn, cfg), conn
}

// rawCall calls the MetaService without the Client and returns the status
// and the ErrorInfo of its error.
func rawCall(t testing.TB, conn grpc.ClientConnInterface, req *clusterpb.CallRequest) (*clusterpb.CallResponse, *status.Status, *errdetails.ErrorInfo) {
	t.Helper()
	resp, err := clusterpb.NewMetaServiceClient(conn).Call(testContext(t), req)
	if err == nil {
		return resp, nil, nil
	}
	st := status.Convert(err)
	return nil, st, errorInfo(st)
}

// waitFor receives from ch or fails the test after testTimeout.
func waitFor[T any](t testing.TB, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(testTimeout):
		t.Fatalf("timed out waiting for %s", what)
	}
	var zero T
	return zero
}
