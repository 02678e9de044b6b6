package auth

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"
)

// countingSource is a RevocationSource that counts its calls and can be
// blocked (gate) or made to fail (err).
type countingSource struct {
	mu       sync.Mutex
	sessions map[userKey]Sessions // absent: an existing user with ID 0, epoch 0
	revoked  map[string]bool
	calls    map[string]int // "va:<shard>/<user>" or "rv:<shard>/<id>"
	err      error
	gate     chan struct{} // if non-nil, calls wait until it is closed
}

func newCountingSource() *countingSource {
	return &countingSource{sessions: map[userKey]Sessions{}, revoked: map[string]bool{}, calls: map[string]int{}}
}

func (s *countingSource) enter(ctx context.Context, call string) error {
	s.mu.Lock()
	s.calls[call]++
	gate, err := s.gate, s.err
	s.mu.Unlock()
	if gate != nil {
		select {
		case <-gate:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return err
}

func (s *countingSource) Sessions(ctx context.Context, shard uint64, user string) (Sessions, error) {
	if err := s.enter(ctx, fmt.Sprintf("va:%d/%s", shard, user)); err != nil {
		return Sessions{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if st, ok := s.sessions[userKey{shard, user}]; ok {
		return st, nil
	}
	return Sessions{Exists: true}, nil
}

func (s *countingSource) Revoked(ctx context.Context, shard uint64, id string) (bool, error) {
	if err := s.enter(ctx, fmt.Sprintf("rv:%d/%s", shard, id)); err != nil {
		return false, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.revoked[id], nil
}

func (s *countingSource) count(call string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls[call]
}

func (s *countingSource) set(f func(s *countingSource)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	f(s)
}

func newTestChecker(t *testing.T, src RevocationSource, clk *fakeClock, max int) *Checker {
	t.Helper()
	c, err := NewChecker(src, CheckerConfig{TTL: 5 * time.Second, MaxEntries: max, Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func claimsAt(user string, shard uint64, id string, issued time.Time) Claims {
	return Claims{User: user, Shard: shard, ID: id, IssuedAt: issued.Truncate(time.Second), Expires: issued.Add(time.Hour)}
}

const (
	id1 = "11111111111111111111111111111111"
	id2 = "22222222222222222222222222222222"
)

func TestCheckDecision(t *testing.T) {
	issued := time.Date(2030, 1, 1, 12, 0, 0, 0, time.UTC)
	at := func(user string, shard, uid, epoch uint64, id string) Claims {
		c := claimsAt(user, shard, id, issued)
		c.UserID, c.Epoch = uid, epoch
		return c
	}
	tests := []struct {
		name     string
		sessions Sessions // of user a on shard 1
		revoked  []string
		claims   Claims
		want     error
	}{
		{"nothing revoked", Sessions{Exists: true, UserID: 5}, nil, at("a", 1, 5, 0, id1), nil},
		{"same epoch", Sessions{Exists: true, UserID: 5, Epoch: 3}, nil, at("a", 1, 5, 3, id1), nil},
		{"earlier epoch", Sessions{Exists: true, UserID: 5, Epoch: 3}, nil, at("a", 1, 5, 2, id1), ErrRevoked},
		{"later epoch (a stale answer)", Sessions{Exists: true, UserID: 5, Epoch: 3}, nil, at("a", 1, 5, 4, id1), nil},
		{"user gone", Sessions{}, nil, at("a", 1, 5, 0, id1), ErrRevoked},
		{"earlier user of the name", Sessions{Exists: true, UserID: 6}, nil, at("a", 1, 5, 0, id1), ErrRevoked},
		{"token ID revoked", Sessions{Exists: true, UserID: 5}, []string{id1}, at("a", 1, 5, 0, id1), ErrRevoked},
		{"other token ID revoked", Sessions{Exists: true, UserID: 5}, []string{id2}, at("a", 1, 5, 0, id1), nil},
		{"state is per user", Sessions{}, nil, at("b", 1, 0, 0, id1), nil},
		{"state is per shard", Sessions{}, nil, at("a", 2, 0, 0, id1), nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src := newCountingSource()
			src.sessions[userKey{1, "a"}] = tt.sessions
			for _, id := range tt.revoked {
				src.revoked[id] = true
			}
			c := newTestChecker(t, src, newFakeClock(), 0)
			err := c.Check(t.Context(), tt.claims)
			if !errors.Is(err, tt.want) || (tt.want == nil) != (err == nil) {
				t.Fatalf("Check = %v, want %v", err, tt.want)
			}
		})
	}
}

func TestCheckInvalidClaims(t *testing.T) {
	src := newCountingSource()
	c := newTestChecker(t, src, newFakeClock(), 0)
	for _, cl := range []Claims{{User: "a"}, {ID: id1}} {
		if err := c.Check(t.Context(), cl); !errors.Is(err, ErrInvalidToken) {
			t.Errorf("Check(%+v) = %v, want ErrInvalidToken", cl, err)
		}
	}
}

func TestCheckCachesForTTL(t *testing.T) {
	tests := []struct {
		name    string
		revoked bool // the source's first answer for the token ID
		want    error
		after   error // the answer once the source flipped and TTL passed
	}{
		{"negative answer cached", false, nil, ErrRevoked},
		{"positive answer cached", true, ErrRevoked, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clk := newFakeClock()
			src := newCountingSource()
			src.revoked[id1] = tt.revoked
			c := newTestChecker(t, src, clk, 0)
			cl := claimsAt("a", 1, id1, clk.Now())
			check := func(want error) {
				t.Helper()
				if err := c.Check(t.Context(), cl); !errors.Is(err, want) || (want == nil) != (err == nil) {
					t.Fatalf("Check = %v, want %v", err, want)
				}
			}
			check(tt.want)
			src.set(func(s *countingSource) { s.revoked[id1] = !tt.revoked })
			for range 5 {
				clk.Advance(time.Second - time.Millisecond) // stays inside the 5 s TTL
				check(tt.want)
			}
			if got := src.count("va:1/a") + src.count("rv:1/"+id1); got != 2 {
				t.Fatalf("source calls within one TTL = %d, want 2", got)
			}
			clk.Advance(time.Second) // past TTL
			check(tt.after)
			check(tt.after)
			if va, rv := src.count("va:1/a"), src.count("rv:1/"+id1); va != 2 || rv != 2 {
				t.Fatalf("source calls after two TTL windows = %d, %d; want 2, 2", va, rv)
			}
		})
	}
}

func TestCheckSharesConcurrentLookups(t *testing.T) {
	clk := newFakeClock()
	src := newCountingSource()
	gate := make(chan struct{})
	src.gate = gate
	c := newTestChecker(t, src, clk, 0)
	cl := claimsAt("a", 1, id1, clk.Now())

	const n = 20
	errs := make(chan error, n)
	for range n {
		go func() { errs <- c.Check(context.Background(), cl) }()
	}
	waitUntil(t, "all callers waiting on one lookup", func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		call := c.inflight[cacheKey{kind: kindSessions, shard: 1, user: "a"}]
		return call != nil && call.waiters == n
	})
	close(gate)
	for range n {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	if va, rv := src.count("va:1/a"), src.count("rv:1/"+id1); va != 1 || rv != 1 {
		t.Fatalf("source calls for %d concurrent checks = %d, %d; want 1, 1", n, va, rv)
	}
}

func TestCheckCallerCancelDoesNotFailOthers(t *testing.T) {
	clk := newFakeClock()
	src := newCountingSource()
	gate := make(chan struct{})
	src.gate = gate
	c := newTestChecker(t, src, clk, 0)
	cl := claimsAt("a", 1, id1, clk.Now())

	ctx, cancel := context.WithCancel(context.Background())
	first := make(chan error, 1)
	go func() { first <- c.Check(ctx, cl) }() // starts the shared lookup
	second := make(chan error, 1)
	waitUntil(t, "first caller waiting", func() bool { return src.count("va:1/a") == 1 })
	go func() { second <- c.Check(context.Background(), cl) }()
	waitUntil(t, "second caller joined", func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		call := c.inflight[cacheKey{kind: kindSessions, shard: 1, user: "a"}]
		return call != nil && call.waiters == 2
	})
	cancel()
	if err := <-first; !errors.Is(err, ErrRevocationLookup) || !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled caller: %v, want ErrRevocationLookup wrapping context.Canceled", err)
	}
	close(gate)
	if err := <-second; err != nil {
		t.Fatalf("second caller failed because the first gave up: %v", err)
	}
}

func TestCheckSourceErrorNotCached(t *testing.T) {
	clk := newFakeClock()
	src := newCountingSource()
	boom := errors.New("shard unavailable")
	src.err = boom
	c := newTestChecker(t, src, clk, 0)
	cl := claimsAt("a", 1, id1, clk.Now())
	for i := 1; i <= 3; i++ {
		err := c.Check(t.Context(), cl)
		if !errors.Is(err, ErrRevocationLookup) || !errors.Is(err, boom) || errors.Is(err, ErrRevoked) {
			t.Fatalf("Check with failing source = %v, want ErrRevocationLookup wrapping the source error", err)
		}
		if got := src.count("va:1/a"); got != i {
			t.Fatalf("after %d failing checks the source saw %d calls: errors are cached", i, got)
		}
	}
	if n := c.Len(); n != 0 {
		t.Fatalf("%d entries cached after errors", n)
	}
	src.set(func(s *countingSource) { s.err = nil })
	if err := c.Check(t.Context(), cl); err != nil {
		t.Fatalf("Check after source recovered: %v", err)
	}
}

func TestCheckEvictionBound(t *testing.T) {
	clk := newFakeClock()
	src := newCountingSource()
	const max = 10
	c := newTestChecker(t, src, clk, max)
	user := func(i int) string { return fmt.Sprintf("u%03d", i) }
	id := func(i int) string { return fmt.Sprintf("%032x", i) }
	for i := range 50 {
		if err := c.Check(t.Context(), claimsAt(user(i), 1, id(i), clk.Now())); err != nil {
			t.Fatal(err)
		}
		if n := c.Len(); n > max {
			t.Fatalf("cache holds %d entries, max %d", n, max)
		}
	}
	if n := c.Len(); n != max {
		t.Fatalf("cache holds %d entries, want it full (%d)", n, max)
	}
	// The newest user is cached; the oldest was evicted and is asked again.
	for _, tc := range []struct {
		i     int
		calls int
	}{{49, 1}, {0, 2}} {
		if err := c.Check(t.Context(), claimsAt(user(tc.i), 1, id(tc.i), clk.Now())); err != nil {
			t.Fatal(err)
		}
		if got := src.count("va:1/" + user(tc.i)); got != tc.calls {
			t.Errorf("user %d: %d ValidAfter calls, want %d", tc.i, got, tc.calls)
		}
	}
	// Expired entries are dropped when new ones come.
	clk.Advance(time.Minute)
	if err := c.Check(t.Context(), claimsAt("late", 1, id1, clk.Now())); err != nil {
		t.Fatal(err)
	}
	if n := c.Len(); n != 2 {
		t.Fatalf("after TTL, cache holds %d entries, want 2 (the new ones)", n)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.byUser) != 1 || len(c.entries) != c.order.Len() {
		t.Fatalf("index out of step: %d users, %d entries, %d in order", len(c.byUser), len(c.entries), c.order.Len())
	}
}

func TestCheckForget(t *testing.T) {
	clk := newFakeClock()
	src := newCountingSource()
	c := newTestChecker(t, src, clk, 0)
	cl := claimsAt("a", 1, id1, clk.Now())
	other := claimsAt("b", 1, id2, clk.Now())
	for _, x := range []Claims{cl, other} {
		if err := c.Check(t.Context(), x); err != nil {
			t.Fatal(err)
		}
	}
	// This gateway logs the session out: the shard records it, the cache
	// still says "not revoked" until Forget.
	src.set(func(s *countingSource) { s.revoked[id1] = true; s.revoked[id2] = true })
	if err := c.Check(t.Context(), cl); err != nil {
		t.Fatalf("before Forget: %v (expected the cached answer)", err)
	}
	c.Forget(1, "a")
	if err := c.Check(t.Context(), cl); !errors.Is(err, ErrRevoked) {
		t.Fatalf("after Forget: %v, want ErrRevoked", err)
	}
	if err := c.Check(t.Context(), other); err != nil {
		t.Fatalf("Forget(a) dropped b's answers: %v", err)
	}

	// A lookup in flight when Forget runs is not cached.
	gate := make(chan struct{})
	src.set(func(s *countingSource) { s.gate = gate })
	c.Forget(1, "b")
	done := make(chan error, 1)
	go func() { done <- c.Check(context.Background(), other) }()
	waitUntil(t, "lookup in flight", func() bool { return src.count("va:1/b") == 2 })
	c.Forget(1, "b")
	close(gate)
	if err := <-done; !errors.Is(err, ErrRevoked) {
		t.Fatalf("Check = %v, want ErrRevoked", err)
	}
	if err := c.Check(t.Context(), other); !errors.Is(err, ErrRevoked) {
		t.Fatal(err)
	}
	if got := src.count("va:1/b"); got != 3 {
		t.Fatalf("ValidAfter calls for b = %d, want 3 (the answer fetched across Forget was not cached)", got)
	}
}

func TestCheckerConfigValidate(t *testing.T) {
	src := newCountingSource()
	tests := []struct {
		name string
		src  RevocationSource
		cfg  CheckerConfig
		want []string
	}{
		{"zero is valid", src, CheckerConfig{}, nil},
		{"nil source", nil, CheckerConfig{}, []string{"nil RevocationSource"}},
		{"all at once", src, CheckerConfig{TTL: -1, MaxEntries: -1, LookupTimeout: -1}, []string{"TTL", "MaxEntries", "LookupTimeout"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := NewChecker(tt.src, tt.cfg)
			if tt.want == nil {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if !errors.Is(err, ErrInvalidConfig) {
				t.Fatalf("NewChecker = %v, want ErrInvalidConfig", err)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
		})
	}
}
