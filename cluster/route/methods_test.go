package route

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/coffer-dev/coffer/raftmeta"
)

const testUploadID = "0123456789abcdef0123456789abcdef"

// gatewayCall is one call of a method added for the gateway, through a
// router.
type gatewayCall struct {
	method   string
	mutating bool
	call     func(ctx context.Context, r *Router, ns uint64) error
}

func gatewayCalls() []gatewayCall {
	ro := raftmeta.ReadOptions{}
	block := raftmeta.Block{Ref: sha256.Sum256([]byte("b")), Size: 1}
	return []gatewayCall{
		{"Referenced", false, func(ctx context.Context, r *Router, ns uint64) error {
			_, err := r.Referenced(ctx, 1, ns, []raftmeta.Sum{block.Ref}, ro)
			return err
		}},
		{"Namespace", false, func(ctx context.Context, r *Router, ns uint64) error {
			_, err := r.Namespace(ctx, 1, ns, ro)
			return err
		}},
		{"Users", false, func(ctx context.Context, r *Router, _ uint64) error {
			_, err := r.Users(ctx, 1, raftmeta.UsersOptions{})
			return err
		}},
		{"CreateUpload", true, func(ctx context.Context, r *Router, ns uint64) error {
			_, err := r.CreateUpload(ctx, 1, "gw-create", ns, testUploadID, "/up", []byte("s"), nil)
			return err
		}},
		{"AppendUpload", true, func(ctx context.Context, r *Router, ns uint64) error {
			_, err := r.AppendUpload(ctx, 1, "gw-append", ns, testUploadID, 0, []raftmeta.Block{block}, nil)
			return err
		}},
		{"GetUpload", false, func(ctx context.Context, r *Router, ns uint64) error {
			_, err := r.GetUpload(ctx, 1, ns, testUploadID, ro)
			return err
		}},
		{"DeleteUpload", true, func(ctx context.Context, r *Router, ns uint64) error {
			return r.DeleteUpload(ctx, 1, "gw-delete", ns, testUploadID)
		}},
		{"RevokeToken", true, func(ctx context.Context, r *Router, _ uint64) error {
			return r.RevokeToken(ctx, 1, "gw-token", "abc123", time.Now().Add(time.Hour))
		}},
		{"RevokeSessions", true, func(ctx context.Context, r *Router, _ uint64) error {
			_, err := r.RevokeSessions(ctx, 1, "gw-sessions", "erin")
			return err
		}},
		{"SessionsValidAfter", false, func(ctx context.Context, r *Router, _ uint64) error {
			_, err := r.SessionsValidAfter(ctx, 1, "erin", ro)
			return err
		}},
		{"TokenRevoked", false, func(ctx context.Context, r *Router, _ uint64) error {
			_, err := r.TokenRevoked(ctx, 1, "abc123", ro)
			return err
		}},
	}
}

// TestGatewayMethods runs every method added for the gateway through a
// router that starts at a follower, then checks their effects.
func TestGatewayMethods(t *testing.T) {
	g := startGroup(t)
	ctx := testContext(t)
	li := g.leader(t)
	r := newRouter(t, newLeaders(g.addrs[(li+1)%3], g.addrs...), nil)
	ns := createUser(t, r, "erin")
	for _, gc := range gatewayCalls() {
		if err := gc.call(ctx, r, ns); err != nil {
			t.Fatalf("%s: %v", gc.method, err)
		}
	}
	if st := r.Stats(); st.Calls != uint64(1+len(gatewayCalls())) || st.UnknownOutcomes != 0 {
		t.Errorf("stats %+v, want %d calls", st, 1+len(gatewayCalls()))
	}
	// The effects: the upload was created, appended to, read and deleted;
	// the token and the sessions are revoked.
	if _, err := r.GetUpload(ctx, 1, ns, testUploadID, raftmeta.ReadOptions{}); !errors.Is(err, raftmeta.ErrNotFound) {
		t.Errorf("GetUpload after DeleteUpload: %v, want ErrNotFound", err)
	}
	if ok, err := r.TokenRevoked(ctx, 1, "abc123", raftmeta.ReadOptions{}); err != nil || !ok {
		t.Errorf("TokenRevoked = %v, %v", ok, err)
	}
	if at, err := r.SessionsValidAfter(ctx, 1, "erin", raftmeta.ReadOptions{}); err != nil || at.IsZero() {
		t.Errorf("SessionsValidAfter = %v, %v", at, err)
	}
	if p, err := r.Users(ctx, 1, raftmeta.UsersOptions{}); err != nil || len(p.Users) != 1 || p.Users[0].Name != "erin" {
		t.Errorf("Users = %+v, %v", p, err)
	}
	if n, err := r.Namespace(ctx, 1, ns, raftmeta.ReadOptions{}); err != nil || n.ID != ns {
		t.Errorf("Namespace = %+v, %v", n, err)
	}
	// A finish through the router; an offset mismatch comes back at once
	// with the upload's size.
	if _, err := r.CreateUpload(ctx, 1, "fin-create", ns, testUploadID, "/fin", nil, nil); err != nil {
		t.Fatal(err)
	}
	op := putOp("/", "content")
	if _, err := r.AppendUpload(ctx, 1, "fin-append", ns, testUploadID, 0, op.Blocks, nil); err != nil {
		t.Fatal(err)
	}
	before := r.Stats()
	_, err := r.AppendUpload(ctx, 1, "fin-append-2", ns, testUploadID, 3, op.Blocks, nil)
	var oe *raftmeta.OpError
	if !errors.As(err, &oe) || oe.Code != raftmeta.CodeOffsetMismatch || oe.Offset != op.Size {
		t.Fatalf("append at a wrong offset: %v, want an offset mismatch at %d", err, op.Size)
	}
	if st := r.Stats(); st.Retries != before.Retries {
		t.Errorf("the offset mismatch was retried: %+v", st)
	}
	op.Path, op.Blocks = "/fin", nil
	if _, err := r.Commit(ctx, 1, raftmeta.CommitRequest{RequestID: "fin", Namespace: ns, Upload: testUploadID, Ops: []raftmeta.Op{op}}); err != nil {
		t.Fatal(err)
	}
	refs := []raftmeta.Sum{sha256.Sum256([]byte("content")), {1}}
	if got, err := r.Referenced(ctx, 1, ns, refs, raftmeta.ReadOptions{}); err != nil || fmt.Sprint(got) != "[true false]" {
		t.Errorf("Referenced = %v, %v", got, err)
	}
}

// TestGatewayMethodsUnknownOutcome cancels each method while it hangs in
// the leader: the mutating ones report an unknown outcome, the reads do
// not.
func TestGatewayMethodsUnknownOutcome(t *testing.T) {
	g := startGroup(t)
	ctx := testContext(t)
	li := g.leader(t)
	r := newRouter(t, newLeaders(g.addrs[li], g.addrs...), nil)
	ns := createUser(t, r, "erin")
	g.hang.Store(true)
	for _, gc := range gatewayCalls() {
		t.Run(gc.method, func(t *testing.T) {
			cctx, cancel := context.WithCancel(ctx)
			defer cancel()
			done := make(chan error, 1)
			go func() { done <- gc.call(cctx, r, ns) }()
			select {
			case m := <-g.entered:
				if m != gc.method {
					t.Fatalf("%s reached the node", m)
				}
			case <-time.After(testTimeout):
				t.Fatal("the call did not reach the node")
			}
			cancel()
			var err error
			select {
			case err = <-done:
			case <-time.After(testTimeout):
				t.Fatal("the call did not return after cancel")
			}
			if !errors.Is(err, context.Canceled) {
				t.Errorf("%v: want context.Canceled", err)
			}
			if errors.Is(err, raftmeta.ErrUnknownOutcome) != gc.mutating {
				t.Errorf("%v: errors.Is(ErrUnknownOutcome) = %v, want %v", err, !gc.mutating, gc.mutating)
			}
		})
	}
}
