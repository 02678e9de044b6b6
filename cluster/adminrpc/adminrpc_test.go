package adminrpc

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/coffer-dev/coffer/cluster/clusterpb"
	"github.com/coffer-dev/coffer/internal/wire"
	"github.com/coffer-dev/coffer/raftmeta"
)

const testTimeout = 30 * time.Second

func testContext(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	t.Cleanup(cancel)
	return ctx
}

// fakeService records its calls and answers with its fields.
type fakeService struct {
	mu      sync.Mutex
	status  *wire.ClusterStatus
	replica *GroupReplica
	err     error
	block   chan struct{} // if set, calls wait for it (or their ctx)
	entered chan string   // if set, each call reports its method
	removed []string
	groups  []uint64
	changes []GroupChange
	keys    *ClusterKeys
	hash    *StateHash
	scrub   *ScrubResult
	repair  *RepairResult
}

func (f *fakeService) enter(ctx context.Context, method string) error {
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

func (f *fakeService) setErr(err error) {
	f.mu.Lock()
	f.err = err
	f.mu.Unlock()
}

func (f *fakeService) Status(ctx context.Context) (*wire.ClusterStatus, error) {
	if err := f.enter(ctx, methodStatus); err != nil {
		return nil, err
	}
	return f.status, nil
}

func (f *fakeService) RemoveNode(ctx context.Context, id string) error {
	f.mu.Lock()
	f.removed = append(f.removed, id)
	f.mu.Unlock()
	return f.enter(ctx, methodRemoveNode)
}

func (f *fakeService) GroupInfo(ctx context.Context, group uint64) (*GroupReplica, error) {
	f.mu.Lock()
	f.groups = append(f.groups, group)
	f.mu.Unlock()
	if err := f.enter(ctx, methodGroupInfo); err != nil {
		return nil, err
	}
	return f.replica, nil
}

func (f *fakeService) ChangeGroup(ctx context.Context, c GroupChange) error {
	f.mu.Lock()
	f.changes = append(f.changes, c)
	f.mu.Unlock()
	return f.enter(ctx, methodChangeGroup)
}

func (f *fakeService) ClusterKeys(ctx context.Context) (*ClusterKeys, error) {
	if err := f.enter(ctx, methodClusterKeys); err != nil {
		return nil, err
	}
	return f.keys, nil
}

func (f *fakeService) StateHash(ctx context.Context, group uint64) (*StateHash, error) {
	f.mu.Lock()
	f.groups = append(f.groups, group)
	f.mu.Unlock()
	if err := f.enter(ctx, methodStateHash); err != nil {
		return nil, err
	}
	return f.hash, nil
}

func (f *fakeService) ScrubBlocks(ctx context.Context) (*ScrubResult, error) {
	if err := f.enter(ctx, methodScrub); err != nil {
		return nil, err
	}
	return f.scrub, nil
}

func (f *fakeService) RepairBlocks(ctx context.Context) (*RepairResult, error) {
	if err := f.enter(ctx, methodRepair); err != nil {
		return nil, err
	}
	return f.repair, nil
}

// resolvingService is a fakeService that knows the nodes' gRPC addresses.
type resolvingService struct{ *fakeService }

func (resolvingService) GRPCAddr(nodeID string) string { return "grpc-of-" + nodeID }

// testServer is a real gRPC server on 127.0.0.1.
type testServer struct {
	addr string
	gs   *grpc.Server
	done chan struct{}
	once sync.Once
}

func (ts *testServer) stop() {
	ts.once.Do(func() {
		ts.gs.Stop()
		<-ts.done
	})
}

func start(t *testing.T, svc Service) (*testServer, *Client, *grpc.ClientConn) {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gs := grpc.NewServer()
	NewServer(svc, nil).Register(gs)
	ts := &testServer{addr: lis.Addr().String(), gs: gs, done: make(chan struct{})}
	go func() {
		defer close(ts.done)
		_ = gs.Serve(lis)
	}()
	t.Cleanup(ts.stop)
	conn := dial(t, ts.addr)
	return ts, NewClient(conn), conn
}

func dial(t *testing.T, addr string) *grpc.ClientConn {
	t.Helper()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

func jsonOf(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestMethodsRoundTrip(t *testing.T) {
	f := &fakeService{
		status: &wire.ClusterStatus{
			ClusterID: "c-1", Node: "n1", Shards: 2,
			Nodes: []wire.NodeStatus{
				{Name: "n1", State: "alive", Roles: []string{"meta", "block"}, GRPC: "10.0.0.1:7000", Leads: []uint64{0, 2},
					Block: &wire.BlockUsage{Blocks: 5, LiveBytes: 500, DiskBytes: 600, FreeBytes: 1 << 40}},
				{Name: "n2", State: "suspect", Removing: true},
			},
			Groups: []wire.GroupStatus{{ID: 1, Kind: "shard", Leader: "n1", Term: 3, Commit: 10, Applied: 9,
				Replicas: []wire.ReplicaStatus{{Node: "n1", Suffrage: "voter", Applied: 9}, {Node: "n2", Suffrage: "nonvoter"}}}},
			Problems: []string{"group 2: leader n3 did not answer"},
		},
		replica: &GroupReplica{Group: 7, Node: "n1", State: "Leader", Leader: "n1", Term: 4, Commit: 20, Applied: 19, LastLog: 21,
			Config:      []wire.ReplicaStatus{{Node: "n1", Suffrage: "voter", Applied: 19}},
			ConfigIndex: 15, ConfigCommitted: true, LastContact: 1500 * time.Millisecond},
		keys:   &ClusterKeys{ClusterID: "c-1", SigningKey: []byte("0123456789abcdef0123456789abcdef")},
		hash:   &StateHash{Group: 3, Node: "n1", Applied: 42, Hash: "ab01"},
		scrub:  &ScrubResult{Node: "n1", Scanned: 10, Bytes: 1000, Corrupt: 2, Repaired: 1, Failed: 1},
		repair: &RepairResult{Node: "n1", Scanned: 10, Pushed: 3, BytesPushed: 300, HandedOff: 1, Failed: 2, Unreachable: []string{"n4"}},
	}
	_, c, _ := start(t, f)
	ctx := testContext(t)

	h, err := c.StateHash(ctx, 3)
	if err != nil || !reflect.DeepEqual(h, f.hash) {
		t.Errorf("StateHash = %+v, %v, want %+v", h, err, f.hash)
	}
	sr, err := c.ScrubBlocks(ctx)
	if err != nil || !reflect.DeepEqual(sr, f.scrub) {
		t.Errorf("ScrubBlocks = %+v, %v, want %+v", sr, err, f.scrub)
	}
	rr, err := c.RepairBlocks(ctx)
	if err != nil || !reflect.DeepEqual(rr, f.repair) {
		t.Errorf("RepairBlocks = %+v, %v, want %+v", rr, err, f.repair)
	}

	k, err := c.ClusterKeys(ctx)
	if err != nil || !reflect.DeepEqual(k, f.keys) {
		t.Errorf("ClusterKeys = %+v, %v, want %+v", k, err, f.keys)
	}

	st, err := c.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := jsonOf(t, st), jsonOf(t, f.status); got != want {
		t.Errorf("Status:\n got  %s\n want %s", got, want)
	}
	if !reflect.DeepEqual(st, f.status) {
		t.Errorf("Status = %+v, want %+v", st, f.status)
	}

	r, err := c.GroupInfo(ctx, 7)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(r, f.replica) {
		t.Errorf("GroupInfo = %+v, want %+v", r, f.replica)
	}

	if err := c.RemoveNode(ctx, "n2"); err != nil {
		t.Fatal(err)
	}
	change := GroupChange{Group: 7, Kind: AddVoter, Node: "n3", Addr: "10.0.0.3:7001", PrevIndex: 15}
	if err := c.ChangeGroup(ctx, change); err != nil {
		t.Fatal(err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if !reflect.DeepEqual(f.removed, []string{"n2"}) || !reflect.DeepEqual(f.groups, []uint64{3, 7}) ||
		!reflect.DeepEqual(f.changes, []GroupChange{change}) {
		t.Errorf("the service saw removed %v, groups %v, changes %+v", f.removed, f.groups, f.changes)
	}
}

// TestNilResults checks that a Service answering nil, nil reaches the
// client as nil, nil.
func TestNilResults(t *testing.T) {
	_, c, _ := start(t, &fakeService{})
	ctx := testContext(t)
	if st, err := c.Status(ctx); st != nil || err != nil {
		t.Errorf("Status = %v, %v", st, err)
	}
	if r, err := c.GroupInfo(ctx, 1); r != nil || err != nil {
		t.Errorf("GroupInfo = %v, %v", r, err)
	}
	if h, err := c.StateHash(ctx, 1); h != nil || err != nil {
		t.Errorf("StateHash = %v, %v", h, err)
	}
}

// TestEverySentinelRoundTrips has the service fail with each code's
// sentinel and checks the client's error and the status on the wire.
func TestEverySentinelRoundTrips(t *testing.T) {
	f := &fakeService{}
	_, c, conn := start(t, f)
	cases := map[Code]codes.Code{
		CodeNotFound:        codes.NotFound,
		CodeNotLeader:       codes.Unavailable,
		CodeInvalidArgument: codes.InvalidArgument,
		CodeStale:           codes.Aborted,
		CodeUnavailable:     codes.Unavailable,
		CodeInternal:        codes.Internal,
	}
	for code, gc := range cases {
		t.Run(string(code), func(t *testing.T) {
			sentinel := SentinelOf(code)
			shardErr := errors.New("boom")
			if code != CodeInternal {
				if sentinel == nil {
					t.Fatalf("no sentinel for %q", code)
				}
				shardErr = fmt.Errorf("while testing: %w", sentinel)
			}
			f.setErr(shardErr)
			err := c.ChangeGroup(testContext(t), GroupChange{Group: 1, Kind: Remove, Node: "n2"})
			if err == nil {
				t.Fatal("ChangeGroup succeeded")
			}
			if CodeOf(err) != code || (sentinel != nil && !errors.Is(err, sentinel)) {
				t.Errorf("%v: code %q, want %q wrapping %v", err, CodeOf(err), code, sentinel)
			}
			if code != CodeNotLeader && err.Error() != "adminrpc: ChangeGroup: "+shardErr.Error() {
				t.Errorf("message %q", err.Error())
			}
			_, rerr := clusterpb.NewAdminServiceClient(conn).Call(testContext(t), &clusterpb.CallRequest{Method: methodStatus})
			st := status.Convert(rerr)
			info := errorInfo(st)
			if st.Code() != gc || info == nil || info.GetReason() != string(code) {
				t.Errorf("status %v, ErrorInfo %v; want code %v reason %q", st, info, gc, code)
			}
		})
	}
}

// TestNotLeader checks that the leader's name and address come back, and
// that raftmeta's and raft's not-leader errors are answered as this
// package's.
func TestNotLeader(t *testing.T) {
	cases := []struct {
		name    string
		resolve bool
		err     error
		want    NotLeaderError
	}{
		{"own", false, &NotLeaderError{LeaderID: "n2", Leader: "10.0.0.2:7000"}, NotLeaderError{LeaderID: "n2", Leader: "10.0.0.2:7000"}},
		{"own wrapped", true, fmt.Errorf("x: %w", &NotLeaderError{LeaderID: "n2", Leader: "a"}), NotLeaderError{LeaderID: "n2", Leader: "a"}},
		{"own unknown", false, &NotLeaderError{}, NotLeaderError{}},
		{"raftmeta resolved", true, &raftmeta.NotLeaderError{Leader: "raft-2", LeaderID: "n2"}, NotLeaderError{LeaderID: "n2", Leader: "grpc-of-n2"}},
		{"raftmeta unresolved", false, fmt.Errorf("x: %w", &raftmeta.NotLeaderError{Leader: "raft-2", LeaderID: "n2"}), NotLeaderError{LeaderID: "n2"}},
		{"raftmeta sentinel", true, raftmeta.ErrNotLeader, NotLeaderError{}},
		{"raft", true, fmt.Errorf("add voter: %w", raft.ErrNotLeader), NotLeaderError{}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := &fakeService{err: tc.err}
			var svc Service = f
			if tc.resolve {
				svc = resolvingService{f}
			}
			_, c, _ := start(t, svc)
			err := c.ChangeGroup(testContext(t), GroupChange{Group: 1, Kind: Transfer, Node: "n3"})
			var nl *NotLeaderError
			if !errors.As(err, &nl) || !errors.Is(err, ErrNotLeader) || CodeOf(err) != CodeNotLeader {
				t.Fatalf("%v: want a *NotLeaderError", err)
			}
			if *nl != tc.want {
				t.Errorf("NotLeaderError %+v, want %+v", *nl, tc.want)
			}
		})
	}
}

// TestServerRefusesBadCalls checks calls the Client would not make.
func TestServerRefusesBadCalls(t *testing.T) {
	f := &fakeService{entered: make(chan string, 10)}
	_, _, conn := start(t, f)
	cases := []struct {
		name string
		req  *clusterpb.CallRequest
		code codes.Code
	}{
		{"unknown method", &clusterpb.CallRequest{Method: "Reboot"}, codes.Unimplemented},
		{"unknown field", &clusterpb.CallRequest{Method: methodRemoveNode, Body: []byte(`{"id":"n2","force":true}`)}, codes.InvalidArgument},
		{"body for Status", &clusterpb.CallRequest{Method: methodStatus, Body: []byte(`{"verbose":true}`)}, codes.InvalidArgument},
		{"body for StateHash", &clusterpb.CallRequest{Group: 1, Method: methodStateHash, Body: []byte(`{"at":5}`)}, codes.InvalidArgument},
		{"body for ScrubBlocks", &clusterpb.CallRequest{Method: methodScrub, Body: []byte(`{"fast":true}`)}, codes.InvalidArgument},
		{"groups differ", &clusterpb.CallRequest{Group: 1, Method: methodChangeGroup, Body: []byte(`{"group":2,"kind":"remove","node":"n2"}`)}, codes.InvalidArgument},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := clusterpb.NewAdminServiceClient(conn).Call(testContext(t), tc.req)
			st := status.Convert(err)
			info := errorInfo(st)
			if st.Code() != tc.code || info == nil || info.GetReason() != string(CodeInvalidArgument) {
				t.Errorf("status %v, ErrorInfo %v; want code %v reason invalid_argument", st, info, tc.code)
			}
		})
	}
	select {
	case m := <-f.entered:
		t.Errorf("a bad call reached the service (%s)", m)
	default:
	}
}

func TestTransportFailureIsUnavailable(t *testing.T) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := lis.Addr().String()
	lis.Close()
	c := NewClient(dial(t, addr))
	if _, err := c.Status(testContext(t)); !errors.Is(err, ErrUnavailable) || CodeOf(err) != CodeUnavailable {
		t.Errorf("Status of a server that is gone: %v, want ErrUnavailable", err)
	}

	// A server that dies during a call.
	f := &fakeService{block: make(chan struct{}), entered: make(chan string, 1)}
	defer close(f.block)
	ts, c, _ := start(t, f)
	errc := make(chan error, 1)
	go func() { errc <- c.RemoveNode(testContext(t), "n2") }()
	select {
	case <-f.entered:
	case <-time.After(testTimeout):
		t.Fatal("the call did not reach the service")
	}
	ts.stop()
	select {
	case err := <-errc:
		if !errors.Is(err, ErrUnavailable) {
			t.Errorf("RemoveNode on a server that died: %v, want ErrUnavailable", err)
		}
	case <-time.After(testTimeout):
		t.Fatal("the call did not end")
	}
}

func TestCallerCancels(t *testing.T) {
	f := &fakeService{block: make(chan struct{}), entered: make(chan string, 1)}
	defer close(f.block)
	_, c, _ := start(t, f)

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := c.GroupInfo(ctx, 1); !errors.Is(err, context.Canceled) {
		t.Errorf("GroupInfo with a cancelled ctx: %v", err)
	}

	ctx, cancel = context.WithCancel(testContext(t))
	errc := make(chan error, 1)
	go func() {
		_, err := c.GroupInfo(ctx, 1)
		errc <- err
	}()
	select {
	case <-f.entered:
	case <-time.After(testTimeout):
		t.Fatal("the call did not reach the service")
	}
	cancel()
	select {
	case err := <-errc:
		if !errors.Is(err, context.Canceled) || errors.Is(err, ErrUnavailable) {
			t.Errorf("GroupInfo cancelled during the call: %v, want context.Canceled", err)
		}
	case <-time.After(testTimeout):
		t.Fatal("the call did not end")
	}
}

func TestClientRefusesInvalidUTF8(t *testing.T) {
	f := &fakeService{entered: make(chan string, 10)}
	_, c, _ := start(t, f)
	ctx := testContext(t)
	if err := c.RemoveNode(ctx, "n\xff"); !errors.Is(err, ErrInvalidArgument) {
		t.Errorf("RemoveNode: %v, want ErrInvalidArgument", err)
	}
	if err := c.ChangeGroup(ctx, GroupChange{Group: 1, Kind: AddVoter, Node: "n3", Addr: "\xfe"}); !errors.Is(err, ErrInvalidArgument) {
		t.Errorf("ChangeGroup: %v, want ErrInvalidArgument", err)
	}
	select {
	case m := <-f.entered:
		t.Errorf("%s reached the service", m)
	default:
	}
}

func TestCodeOf(t *testing.T) {
	cases := []struct {
		err  error
		want Code
	}{
		{nil, CodeOK},
		{errors.New("x"), CodeInternal},
		{fmt.Errorf("a: %w", ErrStale), CodeStale},
		{&NotLeaderError{LeaderID: "n1"}, CodeNotLeader},
		{ErrUnavailable, CodeUnavailable},
	}
	for _, tc := range cases {
		if got := CodeOf(tc.err); got != tc.want {
			t.Errorf("CodeOf(%v) = %q, want %q", tc.err, got, tc.want)
		}
	}
}
