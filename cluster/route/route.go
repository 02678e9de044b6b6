// Package route sends each metadata call to the leader of its shard,
// following leadership changes, so a failover is invisible to callers
// except as latency.
//
// A Router keeps a leader address per Raft group, learnt from successful
// calls and from not-leader answers; without one it asks Leaders (gossip)
// and then tries the live nodes in turn. A not-leader answer that names
// the leader is followed at once. An answer that shows no leader (not
// leader with none known, node unreachable, no replica of the group on the
// node, outcome unknown) makes the router forget the cached leader, back
// off and try again, until Config.MaxWait has passed or ctx ends. Every
// other error is the caller's and comes back at once, unchanged.
//
// A retry of a mutating call sends the caller's request unchanged, request
// ID included, so the shard applies it at most once. If a mutating call
// runs out of retries after any attempt whose outcome is unknown, its
// error wraps raftmeta.ErrUnknownOutcome: it may have been applied, and
// the caller must retry with the same request ID (or find out) before
// calling it failed.
package route

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coffer-dev/coffer/cluster/metarpc"
	"github.com/coffer-dev/coffer/raftmeta"
)

// maxRedirects is how many not-leader answers in a row one call follows at
// once; past that the nodes disagree about the leader, and the call backs
// off as if no leader were known.
const maxRedirects = 4

// Router routes metadata calls to shard leaders. Its methods mirror
// *metarpc.Client's (and so *raftmeta.Shard's, with the group after ctx).
// It is safe for concurrent use.
type Router struct {
	cfg Config
	log *slog.Logger

	mu      sync.Mutex
	leaders map[uint64]string // group -> gRPC address of its last known leader

	calls, redirects, retries, unknowns atomic.Uint64
}

// Stats are a Router's counters since New.
type Stats struct {
	// Calls is the number of calls made to the Router.
	Calls uint64
	// Redirects counts not-leader answers followed at once to the leader
	// they named.
	Redirects uint64
	// Retries counts attempts made after a backoff.
	Retries uint64
	// UnknownOutcomes counts mutating calls that returned an error
	// wrapping raftmeta.ErrUnknownOutcome.
	UnknownOutcomes uint64
}

// New returns a router; cfg must pass Validate (zero durations take their
// defaults).
func New(cfg Config) (*Router, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Router{cfg: cfg, log: log.With("component", "route"), leaders: make(map[uint64]string)}, nil
}

// Stats returns the router's counters.
func (r *Router) Stats() Stats {
	return Stats{
		Calls:           r.calls.Load(),
		Redirects:       r.redirects.Load(),
		Retries:         r.retries.Load(),
		UnknownOutcomes: r.unknowns.Load(),
	}
}

// Leader returns the leader address the router has cached for group ("" if
// none).
func (r *Router) Leader(group uint64) string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.leaders[group]
}

func (r *Router) setLeader(group uint64, addr string) {
	r.mu.Lock()
	r.leaders[group] = addr
	r.mu.Unlock()
}

// forget drops the cached leader of group if it is still addr (another call
// may have learnt a newer one meanwhile).
func (r *Router) forget(group uint64, addr string) {
	r.mu.Lock()
	if r.leaders[group] == addr {
		delete(r.leaders, group)
	}
	r.mu.Unlock()
}

// outcome is what the router does after a failed attempt.
type outcome int

const (
	fail     outcome = iota // return the error to the caller
	redirect                // try the leader the answer named, at once
	down                    // the node does not serve the group: try others after a backoff
	noLeader                // the node knows no leader: forget, back off, retry
	unknown                 // the outcome is unknown: forget, back off, retry
)

// classify decides what to do after err from the node at addr; leader is
// the address a not-leader answer named.
func classify(err error) (outcome, string) {
	var nl *raftmeta.NotLeaderError
	switch {
	case errors.As(err, &nl) && nl.Leader != "":
		return redirect, nl.Leader
	case errors.Is(err, raftmeta.ErrNotLeader):
		return noLeader, ""
	case errors.Is(err, metarpc.ErrNoReplica), errors.Is(err, metarpc.ErrUnavailable):
		return down, ""
	case errors.Is(err, raftmeta.ErrUnknownOutcome):
		return unknown, ""
	}
	return fail, ""
}

// tried is what one call has learnt about the nodes it asked.
type tried struct {
	down     map[string]bool // unreachable or no replica: skip, and do not follow redirects there
	noLeader map[string]bool // answered but knew no leader: skip for now
	next     int             // where the turn through Leaders.Addrs continues
}

// pick returns the address to try next for group: the cached leader, then
// gossip's leader, then the live nodes in turn, skipping those this call
// found wanting; once every one was, it starts afresh. "" means no node is
// known at all.
func (r *Router) pick(group uint64, t *tried) string {
	skip := func(a string) bool { return a == "" || t.down[a] || t.noLeader[a] }
	for pass := 0; pass < 2; pass++ {
		if a := r.Leader(group); !skip(a) {
			return a
		}
		if a := r.cfg.Leaders.Leader(group); !skip(a) {
			return a
		}
		addrs := r.cfg.Leaders.Addrs()
		for range addrs {
			a := addrs[t.next%len(addrs)]
			t.next++
			if !skip(a) {
				return a
			}
		}
		clear(t.down)
		clear(t.noLeader)
	}
	return ""
}

// backoff returns the pause before retry n (0-based): BackoffMin doubled n
// times, capped at BackoffMax, less a random part of up to half of it, and
// never below BackoffMin.
func backoff(n int, lo, hi time.Duration) time.Duration {
	d := lo
	for i := 0; i < n && d < hi; i++ {
		d *= 2
	}
	d = min(d, hi)
	half := d / 2
	return max(lo, d-half+time.Duration(rand.Int64N(int64(half)+1)))
}

// do runs fn against group's leader: the routing and retry loop of every
// method. mutating says fn changes state (its request ID is inside fn's
// request, so every attempt sends the same one); wait is WaitChanges's
// long-poll, which each attempt may take on top of MaxWait.
func (r *Router) do(ctx context.Context, group uint64, method string, mutating bool, wait time.Duration, fn func(context.Context, *metarpc.Client) error) error {
	r.calls.Add(1)
	start := time.Now()
	deadline := start.Add(r.cfg.MaxWait)
	t := &tried{down: make(map[string]bool), noLeader: make(map[string]bool)}
	var (
		addr        string // the next node to try ("": pick one)
		lastErr     error
		maybeDone   bool // a mutating attempt ended with an unknown outcome
		attempts    int
		backoffs    int
		redirectRun int
	)
	for {
		if addr == "" {
			addr = r.pick(group, t)
		}
		attempts++
		var err error
		if addr == "" {
			err = fmt.Errorf("%w: route: no node known to serve group %d", metarpc.ErrUnavailable, group)
		} else {
			var polled time.Duration
			polled, err = r.attempt(ctx, addr, deadline, wait, fn)
			deadline = deadline.Add(polled)
		}
		if err == nil {
			r.setLeader(group, addr)
			return nil
		}
		if mutating && errors.Is(err, raftmeta.ErrUnknownOutcome) {
			maybeDone = true
		}
		lastErr = err
		if ctx.Err() != nil {
			return r.giveUp(ctx, method, group, start, attempts, mutating && maybeDone, lastErr)
		}
		what, leader := classify(err)
		if what == fail {
			return err
		}
		if what == redirect {
			if leader != addr && !t.down[leader] && redirectRun < maxRedirects && time.Now().Before(deadline) {
				r.redirects.Add(1)
				redirectRun++
				r.setLeader(group, leader)
				r.log.Debug("following not-leader answer", "method", method, "group", group, "from", addr, "to", leader)
				addr = leader
				continue
			}
			what = noLeader // a stale or looping answer: treat it as none
		}
		redirectRun = 0
		if addr != "" {
			r.forget(group, addr)
			switch what {
			case down:
				t.down[addr] = true
			case noLeader:
				t.noLeader[addr] = true
			}
		}
		remaining := time.Until(deadline)
		if remaining <= 0 {
			return r.giveUp(ctx, method, group, start, attempts, mutating && maybeDone, lastErr)
		}
		pause := min(backoff(backoffs, r.cfg.BackoffMin, r.cfg.BackoffMax), remaining)
		backoffs++
		r.log.Debug("retrying", "method", method, "group", group, "node", addr, "attempt", attempts, "pause", pause, "err", err)
		addr = ""
		timer := time.NewTimer(pause)
		select {
		case <-ctx.Done():
			timer.Stop()
			return r.giveUp(ctx, method, group, start, attempts, mutating && maybeDone, lastErr)
		case <-timer.C:
		}
		if !time.Now().Before(deadline) {
			return r.giveUp(ctx, method, group, start, attempts, mutating && maybeDone, lastErr)
		}
		r.retries.Add(1)
	}
}

// attempt runs fn once on the node at addr, bounded by deadline (plus wait
// for a long-poll). It returns how much of wait the attempt used, by which
// the caller extends its deadline, and fn's error.
func (r *Router) attempt(ctx context.Context, addr string, deadline time.Time, wait time.Duration, fn func(context.Context, *metarpc.Client) error) (time.Duration, error) {
	c, err := r.cfg.Pool.Get(addr)
	if err != nil {
		if errors.Is(err, metarpc.ErrClosed) {
			return 0, err
		}
		// An address that does not dial: count it as a node we cannot reach.
		return 0, fmt.Errorf("%w: route: %w", metarpc.ErrUnavailable, err)
	}
	actx, cancel := context.WithDeadline(ctx, deadline.Add(wait))
	defer cancel()
	start := time.Now()
	err = fn(actx, c)
	used := min(time.Since(start), wait)
	if err != nil && ctx.Err() == nil && actx.Err() != nil {
		// Our deadline, not the caller's, ended the attempt.
		err = fmt.Errorf("%w: route: %s did not answer in time: %w", metarpc.ErrUnavailable, addr, err)
	}
	return used, err
}

// giveUp builds the error of a call that ran out of time or whose ctx
// ended: the last attempt's error, marked as an unknown outcome when an
// attempt of the mutating call may have been applied.
func (r *Router) giveUp(ctx context.Context, method string, group uint64, start time.Time, attempts int, maybeDone bool, err error) error {
	if cerr := ctx.Err(); cerr != nil && !errors.Is(err, cerr) {
		err = fmt.Errorf("%w (last attempt: %w)", cerr, err)
	}
	if maybeDone {
		r.unknowns.Add(1)
		if !errors.Is(err, raftmeta.ErrUnknownOutcome) {
			err = fmt.Errorf("%w: an earlier attempt may have been applied: %w", raftmeta.ErrUnknownOutcome, err)
		}
	}
	return fmt.Errorf("route: %s on group %d: gave up after %d attempts in %v: %w",
		method, group, attempts, time.Since(start).Round(time.Millisecond), err)
}
