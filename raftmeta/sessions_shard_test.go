package raftmeta_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/coffer-dev/coffer/raftmeta"
	"github.com/coffer-dev/coffer/raftmeta/metatest"
)

// fakeClock is a settable clock shared by a test cluster's replicas.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// TestShardSessions drives session revocation through the Shard API of a
// 3-replica group: password change and RevokeSessions move
// SessionsValidAfter, RevokeToken records expire by the shard's clock, bad
// input never reaches the log, prune deletes expired records, a deleted
// user is not found.
func TestShardSessions(t *testing.T) {
	clock := &fakeClock{now: time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)}
	c := metatest.New(t, metatest.Options{Configure: func(cfg *raftmeta.Config) { cfg.Now = clock.Now }})
	createUser(t, c, "kate")
	s := mustLeader(t, c)
	ctx := context.Background()

	if va, err := s.SessionsValidAfter(ctx, "kate", raftmeta.ReadOptions{}); err != nil || !va.IsZero() {
		t.Fatalf("new user: %v, %v", va, err)
	}
	clock.Add(time.Minute)
	pwAt := clock.Now()
	if err := s.SetPassword(ctx, "pw-1", "KATE", "new secret"); err != nil {
		t.Fatal(err)
	}
	if va, err := s.SessionsValidAfter(ctx, "kate", raftmeta.ReadOptions{}); err != nil || !va.Equal(pwAt) {
		t.Fatalf("after password change: %v, %v; want %v", va, err, pwAt)
	}

	clock.Add(time.Minute)
	outAt := clock.Now()
	u, err := s.RevokeSessions(ctx, "out-1", "kate")
	if err != nil || !u.SessionsValidAfter.Equal(outAt) {
		t.Fatalf("RevokeSessions = %+v, %v; want %v", u, err, outAt)
	}
	// A retry with the same request ID is applied once.
	clock.Add(time.Minute)
	if again, err := s.RevokeSessions(ctx, "out-1", "kate"); err != nil || !again.SessionsValidAfter.Equal(outAt) {
		t.Fatalf("retried RevokeSessions = %+v, %v; want %v", again, err, outAt)
	}
	if va, err := s.SessionsValidAfter(ctx, "kate", raftmeta.ReadOptions{}); err != nil || !va.Equal(outAt) {
		t.Fatalf("after retry: %v, %v; want %v", va, err, outAt)
	}

	// One token.
	const tok = "0123456789abcdef0123456789abcdef"
	expires := clock.Now().Add(time.Hour)
	if err := s.RevokeToken(ctx, "tok-1", tok, expires); err != nil {
		t.Fatal(err)
	}
	if err := s.RevokeToken(ctx, "tok-2", tok, expires); err != nil {
		t.Fatalf("revoking again: %v", err)
	}
	for _, id := range []string{tok, "ffff"} {
		got, err := s.TokenRevoked(ctx, id, raftmeta.ReadOptions{})
		if err != nil || got != (id == tok) {
			t.Fatalf("TokenRevoked(%s) = %v, %v", id, got, err)
		}
	}
	// Every replica has it (stale reads once they applied the entry).
	idx := s.FSM().AppliedIndex()
	for i := 0; i < c.Len(); i++ {
		r := c.Shard(i)
		wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		err := r.WaitApplied(wctx, idx)
		cancel()
		if err != nil {
			t.Fatalf("replica %d: %v", i, err)
		}
		if got, err := r.TokenRevoked(ctx, tok, raftmeta.ReadOptions{Stale: true}); err != nil || !got {
			t.Fatalf("replica %d: stale TokenRevoked = %v, %v", i, got, err)
		}
	}

	// Bad input is refused before it is proposed.
	before := s.FSM().AppliedIndex()
	now := clock.Now()
	bad := []struct {
		name string
		call func() error
	}{
		{"bad token ID", func() error { return s.RevokeToken(ctx, "b1", "XYZ", now.Add(time.Hour)) }},
		{"long token ID", func() error { return s.RevokeToken(ctx, "b2", string(make([]byte, 65)), now.Add(time.Hour)) }},
		{"expired", func() error { return s.RevokeToken(ctx, "b3", tok, now) }},
		{"too far", func() error { return s.RevokeToken(ctx, "b4", tok, now.Add(raftmeta.MaxTokenLifetime+time.Second)) }},
		{"no request ID", func() error { return s.RevokeToken(ctx, "", tok, now.Add(time.Hour)) }},
		{"RevokeSessions without request ID", func() error { _, err := s.RevokeSessions(ctx, "", "kate"); return err }},
		{"TokenRevoked of a bad ID", func() error { _, err := s.TokenRevoked(ctx, "", raftmeta.ReadOptions{}); return err }},
	}
	for _, tc := range bad {
		if err := tc.call(); !errors.Is(err, raftmeta.ErrInvalidArgument) {
			t.Errorf("%s: %v, want ErrInvalidArgument", tc.name, err)
		}
	}
	if got := s.FSM().AppliedIndex(); got != before {
		t.Errorf("refused input reached the log: applied index %d -> %d", before, got)
	}

	// Past its expiry the token reads as not revoked, and prune drops it.
	clock.Add(2 * time.Hour)
	if got, err := s.TokenRevoked(ctx, tok, raftmeta.ReadOptions{}); err != nil || got {
		t.Fatalf("TokenRevoked after expiry = %v, %v", got, err)
	}
	res, err := s.Prune(ctx)
	if err != nil || res.Tokens != 1 {
		t.Fatalf("Prune = %+v, %v; want 1 token", res, err)
	}

	// A deleted user is not found; so is an unknown one.
	if err := s.DeleteUser(ctx, "del-1", "kate"); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"kate", "nobody"} {
		if _, err := s.SessionsValidAfter(ctx, name, raftmeta.ReadOptions{}); !errors.Is(err, raftmeta.ErrNotFound) {
			t.Errorf("SessionsValidAfter(%s) = %v, want ErrNotFound", name, err)
		}
	}
	if _, err := s.RevokeSessions(ctx, "out-2", "kate"); !errors.Is(err, raftmeta.ErrNotFound) {
		t.Errorf("RevokeSessions of a deleted user = %v, want ErrNotFound", err)
	}
	converge(t, c)
}
