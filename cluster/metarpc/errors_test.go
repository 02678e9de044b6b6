package metarpc

import (
	"context"
	"errors"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"reflect"
	"strconv"
	"testing"
	"time"

	"google.golang.org/grpc/codes"

	"github.com/coffer-dev/coffer/cluster/clusterpb"
	"github.com/coffer-dev/coffer/raftmeta"
)

// raftmetaCodes reads every Code constant declared in raftmeta's
// errors.go, so that a code added there is tested here without a change.
func raftmetaCodes(t *testing.T) []raftmeta.Code {
	t.Helper()
	f, err := parser.ParseFile(token.NewFileSet(), "../../raftmeta/errors.go", nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	var out []raftmeta.Code
	for _, d := range f.Decls {
		g, ok := d.(*ast.GenDecl)
		if !ok || g.Tok != token.CONST {
			continue
		}
		for _, s := range g.Specs {
			vs := s.(*ast.ValueSpec)
			if id, ok := vs.Type.(*ast.Ident); !ok || id.Name != "Code" {
				continue
			}
			for _, v := range vs.Values {
				lit, ok := v.(*ast.BasicLit)
				if !ok {
					t.Fatalf("Code constant %v is not a literal", vs.Names)
				}
				s, err := strconv.Unquote(lit.Value)
				if err != nil {
					t.Fatal(err)
				}
				out = append(out, raftmeta.Code(s))
			}
		}
	}
	if len(out) < 10 {
		t.Fatalf("found only %d codes in raftmeta/errors.go: %v", len(out), out)
	}
	return out
}

// wantGRPC is the gRPC code each wire code must travel with.
var wantGRPC = map[raftmeta.Code]codes.Code{
	raftmeta.CodeNotLeader:       codes.Unavailable,
	raftmeta.CodeUnknownOutcome:  codes.Unknown,
	raftmeta.CodeConflict:        codes.Aborted,
	raftmeta.CodeNotFound:        codes.NotFound,
	raftmeta.CodeExists:          codes.AlreadyExists,
	raftmeta.CodeCaseConflict:    codes.AlreadyExists,
	raftmeta.CodeInvalidPath:     codes.InvalidArgument,
	raftmeta.CodeInvalidName:     codes.InvalidArgument,
	raftmeta.CodeInvalidArgument: codes.InvalidArgument,
	raftmeta.CodeQuota:           codes.ResourceExhausted,
	raftmeta.CodeNotFolder:       codes.FailedPrecondition,
	raftmeta.CodeIsFolder:        codes.FailedPrecondition,
	raftmeta.CodeInvalidMove:     codes.FailedPrecondition,
	raftmeta.CodeCursorExpired:   codes.OutOfRange,
	raftmeta.CodeBadCredentials:  codes.Unauthenticated,
	raftmeta.CodeUnavailable:     codes.Unavailable,
	raftmeta.CodeCorruptStore:    codes.DataLoss,
	raftmeta.CodeInternal:        codes.Internal,
	raftmeta.CodeOffsetMismatch:  codes.FailedPrecondition,
	raftmeta.CodeTooMany:         codes.ResourceExhausted,
	CodeNoReplica:                codes.NotFound,
	CodeUnknownMethod:            codes.Unimplemented,
}

// TestEveryCodeRoundTrips has the server's shard fail with each wire code's
// sentinel (wrapped, as raftmeta does) and checks that the client's error
// wraps the same sentinel, has the same code and that the status carries
// the gRPC code and ErrorInfo the table promises.
func TestEveryCodeRoundTrips(t *testing.T) {
	f, _, c, conn := startFake(t, ClientConfig{})
	all := append(raftmetaCodes(t), CodeNoReplica, CodeUnknownMethod)
	for _, code := range all {
		if code == raftmeta.CodeOK {
			continue
		}
		t.Run(string(code), func(t *testing.T) {
			gc, ok := wantGRPC[code]
			if !ok {
				t.Fatalf("code %q is new: add it to grpcCodes and wantGRPC", code)
			}
			sentinel := SentinelOf(code)
			var shardErr error
			switch {
			case code == raftmeta.CodeInternal:
				shardErr = errors.New("disk on fire")
			case sentinel == nil:
				t.Fatalf("code %q has no sentinel", code)
			default:
				shardErr = fmt.Errorf("while testing: %w", sentinel)
			}
			f.setErr(shardErr)

			_, err := c.Stat(testContext(t), 1, 5, raftmeta.Target{Path: "/x"}, raftmeta.StatOptions{})
			if err == nil {
				t.Fatal("Stat succeeded")
			}
			if got := CodeOf(err); got != code {
				t.Errorf("CodeOf(%v) = %q, want %q", err, got, code)
			}
			if sentinel != nil && !errors.Is(err, sentinel) {
				t.Errorf("errors.Is(%v, %v) = false", err, sentinel)
			}
			if errors.Is(err, ErrUnavailable) != (code == raftmeta.CodeUnavailable) {
				t.Errorf("errors.Is(%v, ErrUnavailable) = %v", err, !(code == raftmeta.CodeUnavailable))
			}
			if want := "metarpc: Stat: "; code != raftmeta.CodeNotLeader && err.Error() != want+shardErr.Error() {
				t.Errorf("message %q, want %q", err.Error(), want+shardErr.Error())
			}

			_, st, info := rawCall(t, conn, &clusterpb.CallRequest{Group: 1, Method: methodStat, Body: []byte(`{"namespace":5}`)})
			if st == nil || st.Code() != gc {
				t.Errorf("status %v, want code %v", st, gc)
			}
			if info == nil || info.GetReason() != string(code) || info.GetDomain() != ErrorDomain {
				t.Errorf("ErrorInfo %v, want reason %q domain %q", info, code, ErrorDomain)
			}
		})
	}
}

// TestOpErrorRoundTrips checks that an *raftmeta.OpError comes back field
// for field, also when the shard wrapped it.
func TestOpErrorRoundTrips(t *testing.T) {
	f, _, c, _ := startFake(t, ClientConfig{})
	cases := []struct {
		name string
		op   *raftmeta.OpError
		wrap bool
	}{
		{"conflict", &raftmeta.OpError{Code: raftmeta.CodeConflict, Op: 2, Kind: raftmeta.OpPut, Path: "/a/b", Current: 9, Message: "expected 8"}, false},
		{"non-commit", &raftmeta.OpError{Code: raftmeta.CodeNotFound, Op: -1, Path: "/gone"}, false},
		{"wrapped", &raftmeta.OpError{Code: raftmeta.CodeQuota, Op: 0, Kind: raftmeta.OpPut, Path: "/big", Message: "over by 3 bytes"}, true},
		{"unknown code", &raftmeta.OpError{Code: "from_the_future", Op: 1, Kind: raftmeta.OpMove, Path: "/x"}, false},
		{"offset mismatch", &raftmeta.OpError{Code: raftmeta.CodeOffsetMismatch, Op: -1, Offset: 12345, Message: "append at offset 7"}, false},
		{"finish at a wrong size", &raftmeta.OpError{Code: raftmeta.CodeOffsetMismatch, Op: 0, Kind: raftmeta.OpPut, Path: "/f", Offset: 1 << 40}, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var shardErr error = tc.op
			if tc.wrap {
				shardErr = fmt.Errorf("context: %w", tc.op)
			}
			f.setErr(shardErr)
			_, err := c.Commit(testContext(t), 1, raftmeta.CommitRequest{RequestID: "r1", Namespace: 1, Ops: []raftmeta.Op{{Kind: raftmeta.OpMkdir, Path: "/d"}}})
			var got *raftmeta.OpError
			if !errors.As(err, &got) {
				t.Fatalf("errors.As(%v, *OpError) = false", err)
			}
			if !reflect.DeepEqual(got, tc.op) {
				t.Errorf("OpError %+v, want %+v", got, tc.op)
			}
			if s := raftmeta.SentinelOf(tc.op.Code); s != nil && !errors.Is(err, s) {
				t.Errorf("errors.Is(%v, %v) = false", err, s)
			}
			if CodeOf(err) != raftmeta.CodeOf(shardErr) {
				t.Errorf("CodeOf = %q, want %q", CodeOf(err), raftmeta.CodeOf(shardErr))
			}
		})
	}
}

// TestNotLeaderCarriesGRPCAddress checks that a not-leader answer names
// the leader by node name and gRPC address (not its Raft address).
func TestNotLeaderCarriesGRPCAddress(t *testing.T) {
	f, _, c, _ := startFake(t, ClientConfig{})
	cases := []struct {
		name     string
		shardErr error
		want     raftmeta.NotLeaderError
	}{
		{"known leader", &raftmeta.NotLeaderError{Leader: "raft-2:7001", LeaderID: "n2"}, raftmeta.NotLeaderError{Leader: "10.0.0.2:7000", LeaderID: "n2"}},
		{"wrapped", fmt.Errorf("propose: %w", &raftmeta.NotLeaderError{Leader: "raft-2:7001", LeaderID: "n2"}), raftmeta.NotLeaderError{Leader: "10.0.0.2:7000", LeaderID: "n2"}},
		{"address unknown", &raftmeta.NotLeaderError{Leader: "raft-3:7001", LeaderID: "n3"}, raftmeta.NotLeaderError{LeaderID: "n3"}},
		{"no leader", &raftmeta.NotLeaderError{}, raftmeta.NotLeaderError{}},
		{"bare sentinel", raftmeta.ErrNotLeader, raftmeta.NotLeaderError{}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f.setErr(tc.shardErr)
			err := c.DeleteUser(testContext(t), 1, "r1", "alice")
			var nl *raftmeta.NotLeaderError
			if !errors.As(err, &nl) {
				t.Fatalf("errors.As(%v, *NotLeaderError) = false", err)
			}
			if *nl != tc.want {
				t.Errorf("NotLeaderError %+v, want %+v", *nl, tc.want)
			}
			if !errors.Is(err, raftmeta.ErrNotLeader) || CodeOf(err) != raftmeta.CodeNotLeader {
				t.Errorf("%v: not ErrNotLeader / code %q", err, CodeOf(err))
			}
			if errors.Is(err, raftmeta.ErrUnknownOutcome) {
				t.Errorf("%v: a refused proposal is not an unknown outcome", err)
			}
		})
	}
}

// TestServerGoneIsUnavailable calls a port nobody listens on: the call
// never reached a server, so even a commit's outcome is known (not
// applied).
func TestServerGoneIsUnavailable(t *testing.T) {
	lis := listen(t)
	addr := lis.Addr().String()
	lis.Close()
	c := NewClient(dial(t, addr), ClientConfig{})
	ctx := testContext(t)
	_, err := c.Stat(ctx, 1, 1, raftmeta.Target{Path: "/"}, raftmeta.StatOptions{})
	if !errors.Is(err, ErrUnavailable) {
		t.Errorf("Stat: %v, want ErrUnavailable", err)
	}
	_, err = c.Commit(ctx, 1, raftmeta.CommitRequest{RequestID: "r1", Ops: []raftmeta.Op{{Kind: raftmeta.OpMkdir, Path: "/d"}}})
	if !errors.Is(err, ErrUnavailable) || errors.Is(err, raftmeta.ErrUnknownOutcome) {
		t.Errorf("Commit: %v, want ErrUnavailable and not ErrUnknownOutcome", err)
	}
	if CodeOf(err) != raftmeta.CodeUnavailable {
		t.Errorf("CodeOf(%v) = %q, want %q", err, CodeOf(err), raftmeta.CodeUnavailable)
	}
}

// TestServerDiesDuringCall stops the server while a call is in it: a read
// is unavailable, a mutation's outcome unknown.
func TestServerDiesDuringCall(t *testing.T) {
	for _, mutating := range []bool{false, true} {
		t.Run(fmt.Sprintf("mutating=%v", mutating), func(t *testing.T) {
			f, ts, c, _ := startFake(t, ClientConfig{})
			f.block, f.entered = make(chan struct{}), make(chan string, 1)
			defer close(f.block)
			errc := make(chan error, 1)
			go func() {
				ctx := testContext(t)
				var err error
				if mutating {
					_, err = c.Commit(ctx, 1, raftmeta.CommitRequest{RequestID: "r1", Ops: []raftmeta.Op{{Kind: raftmeta.OpMkdir, Path: "/d"}}})
				} else {
					_, err = c.Stat(ctx, 1, 1, raftmeta.Target{Path: "/"}, raftmeta.StatOptions{})
				}
				errc <- err
			}()
			waitFor(t, f.entered, "the call to reach the shard")
			ts.stop()
			err := waitFor(t, errc, "the call to fail")
			if !errors.Is(err, ErrUnavailable) {
				t.Errorf("%v: want ErrUnavailable", err)
			}
			if errors.Is(err, raftmeta.ErrUnknownOutcome) != mutating {
				t.Errorf("%v: errors.Is(ErrUnknownOutcome) = %v, want %v", err, !mutating, mutating)
			}
		})
	}
}

// TestCallerCancels checks that the caller's cancellation comes back as
// its ctx error: before the call (nothing sent), and during it (for a
// mutation, an unknown outcome too).
func TestCallerCancels(t *testing.T) {
	f, _, c, _ := startFake(t, ClientConfig{})
	f.block, f.entered = make(chan struct{}), make(chan string, 1)
	defer close(f.block)
	commit := func(ctx context.Context) error {
		_, err := c.Commit(ctx, 1, raftmeta.CommitRequest{RequestID: "r1", Ops: []raftmeta.Op{{Kind: raftmeta.OpMkdir, Path: "/d"}}})
		return err
	}

	t.Run("before", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		err := commit(ctx)
		if !errors.Is(err, context.Canceled) || errors.Is(err, raftmeta.ErrUnknownOutcome) {
			t.Errorf("%v: want context.Canceled only", err)
		}
		select {
		case m := <-f.entered:
			t.Errorf("%s reached the shard", m)
		default:
		}
	})
	for _, mutating := range []bool{false, true} {
		t.Run(fmt.Sprintf("during/mutating=%v", mutating), func(t *testing.T) {
			ctx, cancel := context.WithCancel(testContext(t))
			errc := make(chan error, 1)
			go func() {
				if mutating {
					errc <- commit(ctx)
				} else {
					_, err := c.WaitChanges(ctx, 1, 1, 0, 10, time.Minute, raftmeta.ReadOptions{})
					errc <- err
				}
			}()
			waitFor(t, f.entered, "the call to reach the shard")
			cancel()
			err := waitFor(t, errc, "the call to end")
			if !errors.Is(err, context.Canceled) {
				t.Errorf("%v: want context.Canceled", err)
			}
			if errors.Is(err, raftmeta.ErrUnknownOutcome) != mutating {
				t.Errorf("%v: errors.Is(ErrUnknownOutcome) = %v, want %v", err, !mutating, mutating)
			}
		})
	}
}

// TestCallTimeout checks that a call that outlives CallTimeout while the
// caller's ctx is live is unavailable, not a ctx error.
func TestCallTimeout(t *testing.T) {
	f, _, c, _ := startFake(t, ClientConfig{CallTimeout: 200 * time.Millisecond})
	f.block = make(chan struct{})
	defer close(f.block)
	ctx := testContext(t)
	_, err := c.User(ctx, 1, "alice", raftmeta.ReadOptions{})
	if !errors.Is(err, ErrUnavailable) || errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("%v: want ErrUnavailable and no ctx error", err)
	}
	if ctx.Err() != nil {
		t.Fatal("the test's ctx ended")
	}
}

// TestWaitChangesTimeoutIsCapped checks the timeout the shard sees.
func TestWaitChangesTimeoutIsCapped(t *testing.T) {
	f, _, c, conn := startFake(t, ClientConfig{CallTimeout: time.Second})
	f.waits = make(chan time.Duration, 1)
	cases := []struct {
		name    string
		timeout time.Duration
		want    time.Duration
	}{
		{"short", 1500 * time.Millisecond, 1500 * time.Millisecond},
		{"long", 5 * time.Minute, MaxWaitTimeout},
		{"negative", -time.Second, 0},
	}
	for _, tc := range cases {
		t.Run("client/"+tc.name, func(t *testing.T) {
			p, err := c.WaitChanges(testContext(t), 1, 1, 4, 10, tc.timeout, raftmeta.ReadOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if got := waitFor(t, f.waits, "the shard's call"); got != tc.want {
				t.Errorf("shard saw timeout %v, want %v", got, tc.want)
			}
			if p == nil || p.Cursor != 4 {
				t.Errorf("page %+v, want cursor 4", p)
			}
		})
		// A client that does not cap: the server does.
		t.Run("server/"+tc.name, func(t *testing.T) {
			body := fmt.Sprintf(`{"namespace":1,"cursor":4,"timeout":%d}`, int64(tc.timeout))
			if _, st, _ := rawCall(t, conn, &clusterpb.CallRequest{Group: 1, Method: methodWaitChanges, Body: []byte(body)}); st != nil {
				t.Fatal(st.Err())
			}
			if got := waitFor(t, f.waits, "the shard's call"); got != tc.want {
				t.Errorf("shard saw timeout %v, want %v", got, tc.want)
			}
		})
	}
}

// TestServerRefusesBadCalls checks the answers to calls the Client would
// not make.
func TestServerRefusesBadCalls(t *testing.T) {
	f, _, _, conn := startFake(t, ClientConfig{})
	f.entered = make(chan string, 10)
	cases := []struct {
		name string
		req  *clusterpb.CallRequest
		code codes.Code
		want raftmeta.Code
	}{
		{"unknown method", &clusterpb.CallRequest{Group: 1, Method: "Teleport"}, codes.Unimplemented, CodeUnknownMethod},
		{"unknown group", &clusterpb.CallRequest{Group: 2, Method: methodStat}, codes.NotFound, CodeNoReplica},
		{"unknown field", &clusterpb.CallRequest{Group: 1, Method: methodStat, Body: []byte(`{"namespace":1,"if_newer":true}`)}, codes.InvalidArgument, raftmeta.CodeInvalidArgument},
		{"not JSON", &clusterpb.CallRequest{Group: 1, Method: methodStat, Body: []byte(`{"namespace":`)}, codes.InvalidArgument, raftmeta.CodeInvalidArgument},
		{"two values", &clusterpb.CallRequest{Group: 1, Method: methodStat, Body: []byte(`{} {}`)}, codes.InvalidArgument, raftmeta.CodeInvalidArgument},
		{"request IDs differ", &clusterpb.CallRequest{Group: 1, Method: methodCommit, RequestId: "a", Body: []byte(`{"RequestID":"b","Ops":[{"kind":"mkdir","path":"/d"}]}`)}, codes.InvalidArgument, raftmeta.CodeInvalidArgument},
		{"Changes with a timeout", &clusterpb.CallRequest{Group: 1, Method: methodChanges, Body: []byte(`{"timeout":5}`)}, codes.InvalidArgument, raftmeta.CodeInvalidArgument},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, st, info := rawCall(t, conn, tc.req)
			if st == nil {
				t.Fatal("call succeeded")
			}
			if st.Code() != tc.code || info == nil || info.GetReason() != string(tc.want) {
				t.Errorf("status %v, ErrorInfo %v; want code %v reason %q", st, info, tc.code, tc.want)
			}
		})
	}
	select {
	case m := <-f.entered:
		t.Errorf("a bad call reached the shard (%s)", m)
	default:
	}
	// The request ID may come in either place.
	for _, req := range []*clusterpb.CallRequest{
		{Group: 1, Method: methodCommit, RequestId: "a", Body: []byte(`{"Ops":[{"kind":"mkdir","path":"/d"}]}`)},
		{Group: 1, Method: methodCommit, Body: []byte(`{"RequestID":"a","Ops":[{"kind":"mkdir","path":"/d"}]}`)},
		{Group: 1, Method: methodCommit, RequestId: "a", Body: []byte(`{"RequestID":"a","Ops":[{"kind":"mkdir","path":"/d"}]}`)},
	} {
		if _, st, _ := rawCall(t, conn, req); st != nil {
			t.Errorf("%v: %v", req, st.Err())
		}
	}
}

// TestClientRefusesInvalidUTF8 checks that strings JSON would alter never
// leave the client.
func TestClientRefusesInvalidUTF8(t *testing.T) {
	f, _, c, _ := startFake(t, ClientConfig{})
	f.entered = make(chan string, 10)
	ctx := testContext(t)
	bad := "\xff"

	_, err := c.Commit(ctx, 1, raftmeta.CommitRequest{RequestID: "r", Ops: []raftmeta.Op{{Kind: raftmeta.OpMkdir, Path: "/ok"}, {Kind: raftmeta.OpMove, Path: "/ok", To: "/" + bad}}})
	var oe *raftmeta.OpError
	if !errors.As(err, &oe) || oe.Code != raftmeta.CodeInvalidPath || oe.Op != 1 || oe.Path != "/"+bad {
		t.Errorf("Commit: %v, want an invalid_path OpError for op 1", err)
	}
	checks := []struct {
		name string
		err  error
		want error
	}{
		{"CreateUser", func() error {
			_, err := c.CreateUser(ctx, 1, raftmeta.CreateUserRequest{RequestID: "r", Name: "a", Password: bad})
			return err
		}(), raftmeta.ErrInvalidArgument},
		{"SetPassword", c.SetPassword(ctx, 1, "r", "a", bad), raftmeta.ErrInvalidArgument},
		{"Authenticate", func() error { _, err := c.Authenticate(ctx, 1, "a", bad); return err }(), raftmeta.ErrBadCredentials},
		{"Stat", func() error {
			_, err := c.Stat(ctx, 1, 1, raftmeta.Target{Path: bad}, raftmeta.StatOptions{})
			return err
		}(), raftmeta.ErrInvalidPath},
		{"request ID", c.DeleteUser(ctx, 1, bad, "a"), raftmeta.ErrInvalidArgument},
	}
	for _, ch := range checks {
		if !errors.Is(ch.err, ch.want) {
			t.Errorf("%s: %v, want %v", ch.name, ch.err, ch.want)
		}
	}
	select {
	case m := <-f.entered:
		t.Errorf("%s reached the shard", m)
	default:
	}
}

func TestClientConfigValidate(t *testing.T) {
	cases := []struct {
		name string
		cfg  ClientConfig
		ok   bool
	}{
		{"zero", ClientConfig{}, true},
		{"timeout", ClientConfig{CallTimeout: time.Second}, true},
		{"negative timeout", ClientConfig{CallTimeout: -1}, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.cfg.Validate()
			if (err == nil) != tc.ok || (err != nil && !errors.Is(err, ErrInvalidConfig)) {
				t.Errorf("Validate = %v, want ok=%v", err, tc.ok)
			}
		})
	}
}
