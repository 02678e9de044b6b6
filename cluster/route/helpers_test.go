package route

import (
	"context"
	"crypto/sha256"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/coffer-dev/coffer/cluster/metarpc"
	"github.com/coffer-dev/coffer/raftmeta"
	"github.com/coffer-dev/coffer/raftmeta/metatest"
)

// testTimeout bounds every wait in the tests, so a bug fails instead of
// hanging.
const testTimeout = 30 * time.Second

func testContext(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	t.Cleanup(cancel)
	return ctx
}

// fakeLeaders is a Leaders whose answers the test sets.
type fakeLeaders struct {
	mu     sync.Mutex
	leader map[uint64]string
	addrs  []string
}

func newLeaders(leader string, addrs ...string) *fakeLeaders {
	return &fakeLeaders{leader: map[uint64]string{1: leader}, addrs: addrs}
}

func (f *fakeLeaders) Leader(group uint64) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.leader[group]
}

func (f *fakeLeaders) Addrs() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.addrs...)
}

// hookShard is a replica whose Commit can be made to hang (until its ctx
// ends) after it has reported that it was reached.
type hookShard struct {
	*raftmeta.Shard
	g *testGroup
}

func (h hookShard) Commit(ctx context.Context, r raftmeta.CommitRequest) (*raftmeta.CommitResult, error) {
	if h.g.hang.Load() {
		select {
		case h.g.entered <- r.RequestID:
		default:
		}
		<-ctx.Done()
		return nil, ctx.Err()
	}
	return h.Shard.Commit(ctx, r)
}

// hangHere makes a call hang (until its ctx ends) after reporting label
// on entered, while the group's hang is set.
func (g *testGroup) hangHere(ctx context.Context, label string) error {
	if !g.hang.Load() {
		return nil
	}
	select {
	case g.entered <- label:
	default:
	}
	<-ctx.Done()
	return ctx.Err()
}

// The methods added for the gateway hang like Commit, each reporting its
// name.

func (h hookShard) Referenced(ctx context.Context, ns uint64, refs []raftmeta.Sum, o raftmeta.ReadOptions) ([]bool, error) {
	if err := h.g.hangHere(ctx, "Referenced"); err != nil {
		return nil, err
	}
	return h.Shard.Referenced(ctx, ns, refs, o)
}

func (h hookShard) Namespace(ctx context.Context, ns uint64, o raftmeta.ReadOptions) (*raftmeta.Namespace, error) {
	if err := h.g.hangHere(ctx, "Namespace"); err != nil {
		return nil, err
	}
	return h.Shard.Namespace(ctx, ns, o)
}

func (h hookShard) Users(ctx context.Context, o raftmeta.UsersOptions) (*raftmeta.UserPage, error) {
	if err := h.g.hangHere(ctx, "Users"); err != nil {
		return nil, err
	}
	return h.Shard.Users(ctx, o)
}

func (h hookShard) CreateUpload(ctx context.Context, requestID string, ns uint64, id, path string, state, meta []byte) (*raftmeta.Upload, error) {
	if err := h.g.hangHere(ctx, "CreateUpload"); err != nil {
		return nil, err
	}
	return h.Shard.CreateUpload(ctx, requestID, ns, id, path, state, meta)
}

func (h hookShard) AppendUpload(ctx context.Context, requestID string, ns uint64, id string, offset int64, blocks []raftmeta.Block, state []byte) (*raftmeta.Upload, error) {
	if err := h.g.hangHere(ctx, "AppendUpload"); err != nil {
		return nil, err
	}
	return h.Shard.AppendUpload(ctx, requestID, ns, id, offset, blocks, state)
}

func (h hookShard) GetUpload(ctx context.Context, ns uint64, id string, o raftmeta.ReadOptions) (*raftmeta.Upload, error) {
	if err := h.g.hangHere(ctx, "GetUpload"); err != nil {
		return nil, err
	}
	return h.Shard.GetUpload(ctx, ns, id, o)
}

func (h hookShard) DeleteUpload(ctx context.Context, requestID string, ns uint64, id string) error {
	if err := h.g.hangHere(ctx, "DeleteUpload"); err != nil {
		return err
	}
	return h.Shard.DeleteUpload(ctx, requestID, ns, id)
}

func (h hookShard) RevokeToken(ctx context.Context, requestID, tokenID string, expires time.Time) error {
	if err := h.g.hangHere(ctx, "RevokeToken"); err != nil {
		return err
	}
	return h.Shard.RevokeToken(ctx, requestID, tokenID, expires)
}

func (h hookShard) RevokeSessions(ctx context.Context, requestID, name string) (*raftmeta.User, error) {
	if err := h.g.hangHere(ctx, "RevokeSessions"); err != nil {
		return nil, err
	}
	return h.Shard.RevokeSessions(ctx, requestID, name)
}

func (h hookShard) SessionsValidAfter(ctx context.Context, name string, o raftmeta.ReadOptions) (time.Time, error) {
	if err := h.g.hangHere(ctx, "SessionsValidAfter"); err != nil {
		return time.Time{}, err
	}
	return h.Shard.SessionsValidAfter(ctx, name, o)
}

func (h hookShard) TokenRevoked(ctx context.Context, tokenID string, o raftmeta.ReadOptions) (bool, error) {
	if err := h.g.hangHere(ctx, "TokenRevoked"); err != nil {
		return false, err
	}
	return h.Shard.TokenRevoked(ctx, tokenID, o)
}

// groupShards serves replica i of the test group as group 1.
type groupShards struct {
	g *testGroup
	i int
}

func (s groupShards) Shard(group uint64) (metarpc.Shard, error) {
	if group != 1 {
		return nil, fmt.Errorf("%w: group %d", metarpc.ErrNoReplica, group)
	}
	// Not s.g.c.Shard(i): metatest holds its lock while a replica stops,
	// which would stall every node's calls, as no real node does.
	sh := s.g.live[s.i].Load()
	if sh == nil {
		return nil, fmt.Errorf("%w: replica stopped", metarpc.ErrNoReplica)
	}
	return hookShard{Shard: sh, g: s.g}, nil
}

func (s groupShards) GRPCAddr(nodeID string) string { return s.g.byID[nodeID] }

// testGroup is a real 3-replica metadata group (metatest), each replica
// behind its own gRPC server on 127.0.0.1.
type testGroup struct {
	c       *metatest.Cluster
	byID    map[string]string // replica ID -> gRPC address; read-only once serving
	addrs   []string          // gRPC address of replica i
	servers []*grpc.Server
	live    []atomic.Pointer[raftmeta.Shard] // replica i's shard as its node serves it
	hang    atomic.Bool
	entered chan string
}

func startGroup(t *testing.T) *testGroup {
	t.Helper()
	c := metatest.New(t, metatest.Options{})
	g := &testGroup{c: c, byID: make(map[string]string), entered: make(chan string, 1)}
	g.live = make([]atomic.Pointer[raftmeta.Shard], c.Len())
	for i := range g.live {
		g.live[i].Store(c.Shard(i))
	}
	liss := make([]net.Listener, c.Len())
	for i := range liss {
		lis, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		liss[i] = lis
		g.addrs = append(g.addrs, lis.Addr().String())
		g.byID[string(c.Replica(i).ID)] = lis.Addr().String()
	}
	for i, lis := range liss {
		gs := grpc.NewServer()
		metarpc.NewServer(groupShards{g: g, i: i}, nil).Register(gs)
		done := make(chan struct{})
		go func() {
			defer close(done)
			_ = gs.Serve(lis)
		}()
		t.Cleanup(func() {
			gs.Stop()
			<-done
		})
		g.servers = append(g.servers, gs)
	}
	return g
}

// stopReplica takes replica i off its node (which then answers
// no-replica) and stops it.
func (g *testGroup) stopReplica(i int) {
	g.live[i].Store(nil)
	g.c.Stop(i)
}

// leader waits for a leader and returns its index.
func (g *testGroup) leader(t *testing.T) int {
	t.Helper()
	i, err := g.c.WaitLeader(testTimeout)
	if err != nil {
		t.Fatal(err)
	}
	return i
}

// deadAddr returns a 127.0.0.1 address nothing listens on.
func deadAddr(t *testing.T) string {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := lis.Addr().String()
	lis.Close()
	return addr
}

// newRouter returns a router over a fresh pool (closed when the test
// ends) with short backoffs; edit adjusts the config.
func newRouter(t *testing.T, leaders Leaders, edit func(*Config)) *Router {
	t.Helper()
	pool, err := metarpc.NewPool(metarpc.ClientConfig{CallTimeout: 5 * time.Second},
		grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pool.Close() })
	cfg := Config{Leaders: leaders, Pool: pool, MaxWait: 10 * time.Second,
		BackoffMin: 20 * time.Millisecond, BackoffMax: 200 * time.Millisecond}
	if edit != nil {
		edit(&cfg)
	}
	r, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// putOp is a one-block file put with content derived from body.
func putOp(path, body string) raftmeta.Op {
	sum := raftmeta.Sum(sha256.Sum256([]byte(body)))
	return raftmeta.Op{Kind: raftmeta.OpPut, Path: path, Size: int64(len(body)), Hash: sum, Mode: 0o644,
		Blocks: []raftmeta.Block{{Ref: sum, Size: int64(len(body))}}}
}

// createUser makes a user through r and returns its namespace.
func createUser(t *testing.T, r *Router, name string) uint64 {
	t.Helper()
	u, err := r.CreateUser(testContext(t), 1, raftmeta.CreateUserRequest{RequestID: "create-" + name, Name: name, Password: "pw"})
	if err != nil {
		t.Fatal(err)
	}
	return u.Namespace
}

// waitUntil polls cond until it holds or the test timeout passes.
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(testTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// logBuffer is a slog handler that keeps the router's lines and prints
// them if the test fails.
type logBuffer struct {
	mu    sync.Mutex
	lines []string
}

func newLogBuffer(t *testing.T) *slog.Logger {
	b := &logBuffer{}
	t.Cleanup(func() {
		if t.Failed() {
			b.mu.Lock()
			defer b.mu.Unlock()
			for _, l := range b.lines {
				t.Log(l)
			}
		}
	})
	return slog.New(slog.NewTextHandler(b, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	b.lines = append(b.lines, strings.TrimSpace(string(p)))
	b.mu.Unlock()
	return len(p), nil
}
