package route

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coffer-dev/coffer/cluster/metarpc"
	"github.com/coffer-dev/coffer/raftmeta"
)

// TestRouter runs calls through routers with different gossip views
// against a real 3-replica group.
func TestRouter(t *testing.T) {
	g := startGroup(t)
	ctx := testContext(t)
	li := g.leader(t)
	ns := createUser(t, newRouter(t, newLeaders(g.addrs[li], g.addrs...), nil), "alice")
	dead := deadAddr(t)

	t.Run("leader hints", func(t *testing.T) {
		tests := []struct {
			name string
			// hint returns gossip's leader and live nodes, given the
			// leader's index.
			hint      func(li int) (string, []string)
			redirects bool // a redirect must be followed
			retries   bool // a retry after a backoff must happen
		}{
			{"right leader", func(li int) (string, []string) { return g.addrs[li], g.addrs }, false, false},
			{"follower", func(li int) (string, []string) { return g.addrs[(li+1)%3], g.addrs }, true, false},
			{"dead address", func(li int) (string, []string) { return dead, []string{dead, g.addrs[li]} }, false, true},
			{"none known", func(li int) (string, []string) {
				return "", []string{dead, g.addrs[(li+1)%3], g.addrs[li]}
			}, true, true},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				before := g.leader(t)
				leader, addrs := tt.hint(before)
				r := newRouter(t, newLeaders(leader, addrs...), nil)
				id := strings.ReplaceAll(tt.name, " ", "-")
				path := "/" + id + ".txt"
				res, err := r.Commit(ctx, 1, raftmeta.CommitRequest{RequestID: "put-" + id, Namespace: ns, Ops: []raftmeta.Op{putOp(path, tt.name)}})
				if err != nil {
					t.Fatalf("Commit: %v", err)
				}
				if len(res.Ops) != 1 || res.Ops[0].Rev != 1 {
					t.Fatalf("Commit = %+v, want one op at revision 1", res)
				}
				st := r.Stats()
				e, err := r.Stat(ctx, 1, ns, raftmeta.Target{Path: path}, raftmeta.StatOptions{})
				if err != nil || e.Rev != 1 || e.Size != int64(len(tt.name)) {
					t.Fatalf("Stat = %+v, %v; want the committed file", e, err)
				}
				after := g.leader(t)
				if before != after {
					t.Skipf("leader changed from %d to %d during the test: counters are not exact", before, after)
				}
				if got := r.Leader(1); got != g.addrs[after] {
					t.Errorf("cached leader %q, want %q", got, g.addrs[after])
				}
				if (st.Redirects > 0) != tt.redirects || (st.Retries > 0) != tt.retries {
					t.Errorf("stats after Commit %+v, want redirects %v, retries %v", st, tt.redirects, tt.retries)
				}
				if st.Calls != 1 || st.UnknownOutcomes != 0 {
					t.Errorf("stats after Commit %+v, want 1 call, no unknown outcome", st)
				}
				// The second call goes straight to the cached leader.
				if st2 := r.Stats(); st2.Calls != 2 || st2.Redirects != st.Redirects || st2.Retries != st.Retries {
					t.Errorf("stats after Stat %+v, want one more call and nothing else (was %+v)", st2, st)
				}
			})
		}
	})

	t.Run("errors come back at once and unchanged", func(t *testing.T) {
		li := g.leader(t)
		r := newRouter(t, newLeaders(g.addrs[(li+1)%3], g.addrs...), nil)
		direct, err := r.cfg.Pool.Get(g.addrs[li])
		if err != nil {
			t.Fatal(err)
		}
		if _, err := r.Commit(ctx, 1, raftmeta.CommitRequest{RequestID: "conflict-base", Namespace: ns, Ops: []raftmeta.Op{putOp("/c.txt", "c")}}); err != nil {
			t.Fatal(err)
		}
		op := putOp("/c.txt", "again")
		op.IfNoneMatch = true
		req := raftmeta.CommitRequest{RequestID: "conflict-1", Namespace: ns, Ops: []raftmeta.Op{{Kind: raftmeta.OpMkdir, Path: "/x"}, op}}
		before := r.Stats()
		start := time.Now()
		_, rerr := r.Commit(ctx, 1, req)
		elapsed := time.Since(start)
		req.RequestID = "conflict-2"
		_, derr := direct.Commit(ctx, 1, req)
		var got *raftmeta.OpError
		if !errors.As(rerr, &got) || !errors.Is(rerr, raftmeta.ErrConflict) {
			t.Fatalf("Commit: %v, want a conflict *OpError", rerr)
		}
		if got.Code != raftmeta.CodeConflict || got.Op != 1 || got.Current != 1 {
			t.Errorf("OpError %+v, want a conflict on op 1 at revision 1", *got)
		}
		if derr == nil || rerr.Error() != derr.Error() {
			t.Errorf("router error %q, want the client's %q", rerr, derr)
		}
		if st := r.Stats(); st.Retries != before.Retries || st.UnknownOutcomes != 0 {
			t.Errorf("stats %+v (before %+v): the conflict was retried", st, before)
		}
		if elapsed > 5*time.Second {
			t.Errorf("conflict took %v", elapsed)
		}
		reads := []struct {
			name string
			call func() error
			want error
		}{
			{"Stat missing", func() error {
				_, err := r.Stat(ctx, 1, ns, raftmeta.Target{Path: "/missing"}, raftmeta.StatOptions{})
				return err
			}, raftmeta.ErrNotFound},
			{"Authenticate wrong password", func() error {
				_, err := r.Authenticate(ctx, 1, "alice", "wrong")
				return err
			}, raftmeta.ErrBadCredentials},
			{"Changes bad namespace", func() error {
				_, err := r.Changes(ctx, 1, 999999, 0, 10, raftmeta.ReadOptions{})
				return err
			}, raftmeta.ErrNotFound},
		}
		for _, rd := range reads {
			before := r.Stats()
			if err := rd.call(); !errors.Is(err, rd.want) {
				t.Errorf("%s: %v, want %v", rd.name, err, rd.want)
			}
			if st := r.Stats(); st.Retries != before.Retries {
				t.Errorf("%s was retried: %+v", rd.name, st)
			}
		}
	})

	t.Run("every method", func(t *testing.T) {
		li := g.leader(t)
		r := newRouter(t, newLeaders(g.addrs[(li+1)%3], g.addrs...), nil)
		if _, err := r.CreateUser(ctx, 1, raftmeta.CreateUserRequest{RequestID: "create-dave", Name: "dave", Password: "pw"}); err != nil {
			t.Fatal(err)
		}
		if err := r.SetQuota(ctx, 1, "quota-dave", "dave", 1<<20); err != nil {
			t.Fatal(err)
		}
		if err := r.SetPassword(ctx, 1, "password-dave", "dave", "pw2"); err != nil {
			t.Fatal(err)
		}
		if u, err := r.Authenticate(ctx, 1, "dave", "pw2"); err != nil || u.Quota != 1<<20 {
			t.Fatalf("Authenticate = %+v, %v", u, err)
		}
		if _, err := r.Commit(ctx, 1, raftmeta.CommitRequest{RequestID: "every-put", Namespace: ns, Ops: []raftmeta.Op{putOp("/every.txt", "e")}}); err != nil {
			t.Fatal(err)
		}
		if p, err := r.List(ctx, 1, ns, raftmeta.Target{Path: "/"}, raftmeta.ListOptions{}); err != nil || len(p.Entries) == 0 {
			t.Fatalf("List = %+v, %v", p, err)
		}
		if revs, err := r.History(ctx, 1, ns, raftmeta.Target{Path: "/every.txt"}, raftmeta.HistoryOptions{}); err != nil || len(revs) != 1 {
			t.Fatalf("History = %+v, %v", revs, err)
		}
		if _, err := r.Prune(ctx, 1); err != nil {
			t.Fatal(err)
		}
		if err := r.DeleteUser(ctx, 1, "delete-dave", "dave"); err != nil {
			t.Fatal(err)
		}
		if _, err := r.User(ctx, 1, "dave", raftmeta.ReadOptions{}); !errors.Is(err, raftmeta.ErrNotFound) {
			t.Fatalf("User after DeleteUser: %v, want ErrNotFound", err)
		}
		if st := r.Stats(); st.Calls != 10 || st.Redirects == 0 {
			t.Errorf("stats %+v, want 10 calls and a redirect", st)
		}
	})

	t.Run("long poll does not count against MaxWait", func(t *testing.T) {
		li := g.leader(t)
		r := newRouter(t, newLeaders(g.addrs[li], g.addrs...), func(c *Config) { c.MaxWait = 200 * time.Millisecond })
		p, err := r.Changes(ctx, 1, ns, 0, 1, raftmeta.ReadOptions{})
		if err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		p, err = r.WaitChanges(ctx, 1, ns, p.Head, 10, time.Second, raftmeta.ReadOptions{})
		if err != nil || len(p.Records) != 0 {
			t.Fatalf("WaitChanges = %+v, %v; want an empty page after the timeout", p, err)
		}
		if d := time.Since(start); d < time.Second {
			t.Errorf("WaitChanges returned after %v, before its timeout", d)
		}
	})

	t.Run("no replica anywhere", func(t *testing.T) {
		r := newRouter(t, newLeaders("", g.addrs...), func(c *Config) { c.MaxWait = 500 * time.Millisecond })
		start := time.Now()
		_, err := r.Stat(ctx, 99, ns, raftmeta.Target{Path: "/"}, raftmeta.StatOptions{})
		if !errors.Is(err, metarpc.ErrNoReplica) {
			t.Errorf("Stat on group 99: %v, want ErrNoReplica", err)
		}
		if d := time.Since(start); d < 500*time.Millisecond || d > 5*time.Second {
			t.Errorf("gave up after %v, want about MaxWait (500ms)", d)
		}
		if st := r.Stats(); st.Retries == 0 {
			t.Errorf("stats %+v: no retries", st)
		}
	})
}

// TestFailover stops the leader while four goroutines commit: every
// acknowledged commit survives, applied once, and commits resume within a
// few seconds.
func TestFailover(t *testing.T) {
	g := startGroup(t)
	ctx := testContext(t)
	old := g.leader(t)
	// Gossip keeps naming the old leader: the router must find the new
	// one by itself.
	r := newRouter(t, newLeaders(g.addrs[old], g.addrs...), func(c *Config) {
		c.MaxWait = 20 * time.Second
		c.Logger = newLogBuffer(t)
	})
	ns := createUser(t, r, "bob")

	var (
		mu        sync.Mutex
		acked     []string
		ackTimes  []time.Time
		errs      []error
		stoppedAt time.Time // zero until the leader is stopped
		after     int       // commits acknowledged after the stop
	)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := 0; ; n++ {
				select {
				case <-stop:
					return
				default:
				}
				path := fmt.Sprintf("/w%d-%d.txt", w, n)
				_, err := r.Commit(ctx, 1, raftmeta.CommitRequest{RequestID: fmt.Sprintf("w%d-%d", w, n), Namespace: ns, Ops: []raftmeta.Op{putOp(path, path)}})
				mu.Lock()
				if err != nil {
					errs = append(errs, fmt.Errorf("%s: %w", path, err))
				} else {
					acked = append(acked, path)
					ackTimes = append(ackTimes, time.Now())
					if !stoppedAt.IsZero() {
						after++
					}
				}
				mu.Unlock()
				if err != nil {
					return
				}
			}
		}()
	}
	// Commit for a while before and after the failover (time here sets
	// the length of the load, not an ordering).
	began := time.Now()
	waitUntil(t, "commits before the failover", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return (len(acked) >= 20 && time.Since(began) >= time.Second) || len(errs) > 0
	})
	mu.Lock()
	stoppedAt = time.Now()
	mu.Unlock()
	g.stopReplica(old)
	t.Logf("stopping the leader took %v", time.Since(stoppedAt))
	waitUntil(t, "commits after the failover", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return (after >= 20 && time.Since(stoppedAt) >= 3*time.Second) || len(errs) > 0
	})
	close(stop)
	wg.Wait()

	for _, err := range errs {
		t.Errorf("commit failed: %v", err)
	}
	// The longest time without an acknowledged commit is the failover's.
	var maxGap time.Duration
	for i := 1; i < len(ackTimes); i++ {
		prev := ackTimes[i-1]
		if prev.Before(stoppedAt) {
			prev = stoppedAt
		}
		if ackTimes[i].After(stoppedAt) {
			maxGap = max(maxGap, ackTimes[i].Sub(prev))
		}
	}
	if maxGap > 8*time.Second {
		t.Errorf("no commit was acknowledged for %v after the leader stopped", maxGap)
	}
	s, err := g.c.LeaderShard(testTimeout)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range acked {
		e, err := s.Stat(ctx, ns, raftmeta.Target{Path: p}, raftmeta.StatOptions{})
		if err != nil || e.Rev != 1 {
			t.Errorf("Stat(%s) on the new leader = %+v, %v; want it at revision 1", p, e, err)
		}
	}
	st := r.Stats()
	if st.Retries+st.Redirects == 0 || st.UnknownOutcomes != 0 {
		t.Errorf("stats %+v: want retries or redirects, no unknown outcome", st)
	}
	if l := r.Leader(1); l == g.addrs[old] || l == "" {
		t.Errorf("cached leader %q, want the new leader's", l)
	}
	t.Logf("%d commits acknowledged, %d after the stop; longest gap %v; %+v", len(acked), after, maxGap, st)
}

// TestAllDown: with every node gone, calls give up after MaxWait; a
// commit that reached a node before it went reports an unknown outcome.
func TestAllDown(t *testing.T) {
	g := startGroup(t)
	ctx := testContext(t)
	li := g.leader(t)
	const maxWait = 1500 * time.Millisecond
	r := newRouter(t, newLeaders(g.addrs[li], g.addrs...), func(c *Config) { c.MaxWait = maxWait })
	ns := createUser(t, r, "carol")
	put := func(ctx context.Context, id string) error {
		_, err := r.Commit(ctx, 1, raftmeta.CommitRequest{RequestID: id, Namespace: ns, Ops: []raftmeta.Op{putOp("/"+id, id)}})
		return err
	}
	g.hang.Store(true)

	t.Run("cancel during a sent commit", func(t *testing.T) {
		cctx, cancel := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() { done <- put(cctx, "cancelled") }()
		if id := <-g.entered; id != "cancelled" {
			t.Fatalf("commit %q reached the node", id)
		}
		cancel()
		cancelled := time.Now()
		var err error
		select {
		case err = <-done:
		case <-time.After(testTimeout):
			t.Fatal("Commit did not return after cancel")
		}
		if d := time.Since(cancelled); d > time.Second {
			t.Errorf("Commit returned %v after cancel", d)
		}
		if !errors.Is(err, context.Canceled) || !errors.Is(err, raftmeta.ErrUnknownOutcome) {
			t.Errorf("Commit: %v, want context.Canceled and ErrUnknownOutcome", err)
		}
	})

	t.Run("commit in flight", func(t *testing.T) {
		before := r.Stats()
		start := time.Now()
		done := make(chan error, 1)
		go func() { done <- put(ctx, "in-flight") }()
		if id := <-g.entered; id != "in-flight" {
			t.Fatalf("commit %q reached the node", id)
		}
		for _, gs := range g.servers {
			gs.Stop()
		}
		err := <-done
		elapsed := time.Since(start)
		if !errors.Is(err, raftmeta.ErrUnknownOutcome) || !errors.Is(err, metarpc.ErrUnavailable) {
			t.Errorf("Commit: %v, want ErrUnknownOutcome and ErrUnavailable", err)
		}
		if elapsed < maxWait || elapsed > maxWait+5*time.Second {
			t.Errorf("Commit gave up after %v, want about MaxWait (%v)", elapsed, maxWait)
		}
		if st := r.Stats(); st.UnknownOutcomes != before.UnknownOutcomes+1 || st.Retries == before.Retries {
			t.Errorf("stats %+v (before %+v): want one more unknown outcome, and retries", st, before)
		}
	})

	for _, tt := range []struct {
		name string
		call func() error
	}{
		{"read", func() error {
			_, err := r.Stat(ctx, 1, ns, raftmeta.Target{Path: "/"}, raftmeta.StatOptions{})
			return err
		}},
		{"commit never sent", func() error { return put(ctx, "never-sent") }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			start := time.Now()
			err := tt.call()
			elapsed := time.Since(start)
			if !errors.Is(err, metarpc.ErrUnavailable) || errors.Is(err, raftmeta.ErrUnknownOutcome) {
				t.Errorf("%v: want ErrUnavailable, and not ErrUnknownOutcome", err)
			}
			if elapsed < maxWait || elapsed > maxWait+5*time.Second {
				t.Errorf("gave up after %v, want about MaxWait (%v)", elapsed, maxWait)
			}
		})
	}
}

// TestCancel: a cancelled ctx ends the retries at once, even mid-backoff.
func TestCancel(t *testing.T) {
	dead := deadAddr(t)
	logs := &retryCounter{}
	r := newRouter(t, newLeaders(dead, dead), func(c *Config) {
		c.MaxWait, c.BackoffMin, c.BackoffMax = time.Minute, 10*time.Second, 10*time.Second
		c.Logger = slog.New(logs)
	})
	ctx, cancel := context.WithCancel(testContext(t))
	done := make(chan error, 1)
	go func() {
		_, err := r.Commit(ctx, 1, raftmeta.CommitRequest{RequestID: "x", Namespace: 1, Ops: []raftmeta.Op{putOp("/x", "x")}})
		done <- err
	}()
	// Wait until the first attempt has failed (a 10s backoff is running).
	waitUntil(t, "the first attempt to fail", func() bool { return logs.retries.Load() > 0 })
	if len(done) != 0 {
		t.Fatalf("Commit returned before cancel: %v", <-done)
	}
	cancel()
	cancelled := time.Now()
	var err error
	select {
	case err = <-done:
	case <-time.After(testTimeout):
		t.Fatal("Commit did not return after cancel")
	}
	if d := time.Since(cancelled); d > time.Second {
		t.Errorf("returned %v after cancel", d)
	}
	if !errors.Is(err, context.Canceled) || !errors.Is(err, metarpc.ErrUnavailable) || errors.Is(err, raftmeta.ErrUnknownOutcome) {
		t.Errorf("Commit: %v, want context.Canceled wrapping the last (unavailable, unsent) error", err)
	}
}

// retryCounter is a slog handler that counts the router's retry lines.
type retryCounter struct{ retries atomic.Int64 }

func (h *retryCounter) Enabled(context.Context, slog.Level) bool { return true }
func (h *retryCounter) Handle(_ context.Context, rec slog.Record) error {
	if rec.Message == "retrying" {
		h.retries.Add(1)
	}
	return nil
}
func (h *retryCounter) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h *retryCounter) WithGroup(string) slog.Handler      { return h }
