package metarpc

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/coffer-dev/coffer/raftmeta"
)

// gatewayCall is one call of a method added for the gateway: what the
// client is asked, what the shard must see and what the client must
// return.
type gatewayCall struct {
	method   string
	mutating bool
	call     func(ctx context.Context, c *Client) (any, error)
	args     []any // what the shard must be called with
	want     any   // what the client must return
}

func gatewayCalls() []gatewayCall {
	ro := raftmeta.ReadOptions{Stale: true}
	refs := []raftmeta.Sum{{1}, {2}, {3}}
	blocks := []raftmeta.Block{{Ref: raftmeta.Sum{9}, Size: 4}, {Ref: raftmeta.Sum{8}, Size: 6}}
	expires := time.Date(2030, 1, 2, 3, 4, 5, 6, time.UTC)
	const id = "00112233445566778899aabbccddeeff"
	return []gatewayCall{
		{methodReferenced, false, func(ctx context.Context, c *Client) (any, error) { return c.Referenced(ctx, 1, 5, refs, ro) },
			[]any{uint64(5), refs, ro}, []bool{true, false, true}},
		{methodNamespace, false, func(ctx context.Context, c *Client) (any, error) { return c.Namespace(ctx, 1, 5, ro) },
			[]any{uint64(5), ro}, &raftmeta.Namespace{ID: 5, Owner: 2, Root: 3, Used: 42, Files: 4, Head: 5, Start: 1}},
		{methodUsers, false, func(ctx context.Context, c *Client) (any, error) {
			return c.Users(ctx, 1, raftmeta.UsersOptions{ReadOptions: ro, Limit: 7, PageToken: "tok"})
		}, []any{raftmeta.UsersOptions{ReadOptions: ro, Limit: 7, PageToken: "tok"}},
			&raftmeta.UserPage{Users: []raftmeta.User{{ID: 1, Name: "alice", Namespace: 2, Created: time.Unix(7, 0).UTC()}}, NextPageToken: "tok+"}},
		{methodCreateUpload, true, func(ctx context.Context, c *Client) (any, error) {
			return c.CreateUpload(ctx, 1, "rid-c", 5, id, "/a/ü.txt", []byte{0, 1, 255}, []byte(`{"m":1}`))
		}, []any{"rid-c", uint64(5), id, "/a/ü.txt", []byte{0, 1, 255}, []byte(`{"m":1}`)},
			&raftmeta.Upload{ID: id, Namespace: 5, Path: "/a/ü.txt", Created: 1, Expires: 2, State: []byte{0, 1, 255}, Meta: []byte(`{"m":1}`)}},
		{methodAppendUpload, true, func(ctx context.Context, c *Client) (any, error) {
			return c.AppendUpload(ctx, 1, "rid-a", 5, id, 100, blocks, []byte("st"))
		}, []any{"rid-a", uint64(5), id, int64(100), blocks, []byte("st")},
			&raftmeta.Upload{ID: id, Namespace: 5, Size: 110, Blocks: 2, State: []byte("st")}},
		{methodGetUpload, false, func(ctx context.Context, c *Client) (any, error) { return c.GetUpload(ctx, 1, 5, id, ro) },
			[]any{uint64(5), id, ro}, &raftmeta.Upload{ID: id, Namespace: 5, Size: 9}},
		{methodDeleteUpload, true, func(ctx context.Context, c *Client) (any, error) { return nil, c.DeleteUpload(ctx, 1, "rid-d", 5, id) },
			[]any{"rid-d", uint64(5), id}, nil},
		{methodRevokeToken, true, func(ctx context.Context, c *Client) (any, error) {
			return nil, c.RevokeToken(ctx, 1, "rid-t", "abc", expires)
		},
			[]any{"rid-t", "abc", expires}, nil},
		{methodRevokeSessions, true, func(ctx context.Context, c *Client) (any, error) { return c.RevokeSessions(ctx, 1, "rid-s", "bob") },
			[]any{"rid-s", "bob"}, &raftmeta.User{ID: 1, Name: "bob", SessionsValidAfter: time.Unix(100, 5).UTC()}},
		{methodSessionsValidAfter, false, func(ctx context.Context, c *Client) (any, error) { return c.SessionsValidAfter(ctx, 1, "bob", ro) },
			[]any{"bob", ro}, time.Unix(200, 7).UTC()},
		{methodTokenRevoked, false, func(ctx context.Context, c *Client) (any, error) { return c.TokenRevoked(ctx, 1, "abc", ro) },
			[]any{"abc", ro}, true},
	}
}

// TestGatewayMethodsRoundTrip checks that each method added for the
// gateway carries every argument to the shard and its result back.
func TestGatewayMethodsRoundTrip(t *testing.T) {
	f, _, c, _ := startFake(t, ClientConfig{})
	for _, gc := range gatewayCalls() {
		t.Run(gc.method, func(t *testing.T) {
			if _, ok := handlers[gc.method]; !ok {
				t.Fatalf("no handler for %s", gc.method)
			}
			got, err := gc.call(testContext(t), c)
			if err != nil {
				t.Fatal(err)
			}
			if gc.want == nil {
				if got != nil {
					t.Fatalf("result %v, want none", got)
				}
			} else if !reflect.DeepEqual(got, gc.want) {
				t.Errorf("result %#v, want %#v", got, gc.want)
			}
			if args := f.lastArgs(); !reflect.DeepEqual(args, gc.args) {
				t.Errorf("the shard saw %#v, want %#v", args, gc.args)
			}
		})
	}
	// A zero SessionsValidAfter (none set) comes back zero.
	if at, err := c.SessionsValidAfter(testContext(t), 1, "zero", raftmeta.ReadOptions{}); err != nil || !at.IsZero() {
		t.Fatalf("SessionsValidAfter = %v, %v", at, err)
	}
}

// TestGatewayMethodsErrors checks the errors of the new methods: the
// shard's (with an OpError's Offset), and a server that dies during the
// call, which leaves the outcome of the mutating ones unknown.
func TestGatewayMethodsErrors(t *testing.T) {
	f, _, c, _ := startFake(t, ClientConfig{})
	oe := &raftmeta.OpError{Code: raftmeta.CodeOffsetMismatch, Op: -1, Offset: 4096, Message: "append at offset 0"}
	f.setErr(fmt.Errorf("apply: %w", oe))
	_, err := c.AppendUpload(testContext(t), 1, "r", 5, "00112233445566778899aabbccddeeff", 0, nil, nil)
	var got *raftmeta.OpError
	if !errors.Is(err, raftmeta.ErrOffsetMismatch) || !errors.As(err, &got) || !reflect.DeepEqual(got, oe) {
		t.Fatalf("AppendUpload: %v (OpError %+v), want %+v", err, got, oe)
	}
	if CodeOf(err) != raftmeta.CodeOffsetMismatch {
		t.Errorf("CodeOf = %q", CodeOf(err))
	}
	f.setErr(fmt.Errorf("create: %w", raftmeta.ErrTooMany))
	if _, err := c.CreateUpload(testContext(t), 1, "r", 5, "00112233445566778899aabbccddeeff", "/f", nil, nil); !errors.Is(err, raftmeta.ErrTooMany) {
		t.Errorf("CreateUpload: %v, want ErrTooMany", err)
	}

	for _, gc := range gatewayCalls() {
		t.Run("server dies/"+gc.method, func(t *testing.T) {
			f, ts, c, _ := startFake(t, ClientConfig{})
			f.block, f.entered = make(chan struct{}), make(chan string, 1)
			defer close(f.block)
			errc := make(chan error, 1)
			go func() {
				_, err := gc.call(testContext(t), c)
				errc <- err
			}()
			if m := waitFor(t, f.entered, "the call to reach the shard"); m != gc.method {
				t.Fatalf("the shard's %s was called", m)
			}
			ts.stop()
			err := waitFor(t, errc, "the call to fail")
			if !errors.Is(err, ErrUnavailable) {
				t.Errorf("%v: want ErrUnavailable", err)
			}
			if errors.Is(err, raftmeta.ErrUnknownOutcome) != gc.mutating {
				t.Errorf("%v: errors.Is(ErrUnknownOutcome) = %v, want %v", err, !gc.mutating, gc.mutating)
			}
		})
	}
}

// TestGatewayMethodsRefuseInvalidUTF8 checks that strings JSON would
// alter never leave the client.
func TestGatewayMethodsRefuseInvalidUTF8(t *testing.T) {
	f, _, c, _ := startFake(t, ClientConfig{})
	f.entered = make(chan string, 10)
	ctx := testContext(t)
	const id, bad = "00112233445566778899aabbccddeeff", "\xff"
	checks := []struct {
		name string
		err  error
		want error
	}{
		{"CreateUpload path", func() error { _, err := c.CreateUpload(ctx, 1, "r", 1, id, "/"+bad, nil, nil); return err }(), raftmeta.ErrInvalidPath},
		{"CreateUpload ID", func() error { _, err := c.CreateUpload(ctx, 1, "r", 1, bad, "/f", nil, nil); return err }(), raftmeta.ErrInvalidArgument},
		{"AppendUpload ID", func() error { _, err := c.AppendUpload(ctx, 1, "r", 1, bad, 0, nil, nil); return err }(), raftmeta.ErrInvalidArgument},
		{"GetUpload ID", func() error { _, err := c.GetUpload(ctx, 1, 1, bad, raftmeta.ReadOptions{}); return err }(), raftmeta.ErrInvalidArgument},
		{"DeleteUpload ID", c.DeleteUpload(ctx, 1, "r", 1, bad), raftmeta.ErrInvalidArgument},
		{"RevokeToken ID", c.RevokeToken(ctx, 1, "r", bad, time.Now().Add(time.Hour)), raftmeta.ErrInvalidArgument},
		{"RevokeSessions name", func() error { _, err := c.RevokeSessions(ctx, 1, "r", bad); return err }(), raftmeta.ErrInvalidArgument},
		{"SessionsValidAfter name", func() error { _, err := c.SessionsValidAfter(ctx, 1, bad, raftmeta.ReadOptions{}); return err }(), raftmeta.ErrInvalidName},
		{"TokenRevoked ID", func() error { _, err := c.TokenRevoked(ctx, 1, bad, raftmeta.ReadOptions{}); return err }(), raftmeta.ErrInvalidArgument},
		{"Users page token", func() error { _, err := c.Users(ctx, 1, raftmeta.UsersOptions{PageToken: bad}); return err }(), raftmeta.ErrInvalidArgument},
		{"request ID", c.DeleteUpload(ctx, 1, bad, 1, id), raftmeta.ErrInvalidArgument},
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
