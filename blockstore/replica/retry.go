package replica

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/coffer-dev/coffer/blockstore"
)

// retryConcurrency bounds the retry entries worked on at once, so that a
// node that times out does not hold up the others.
const retryConcurrency = 8

// backoff returns the wait after attempt failed attempts:
// RetryBackoffMin doubled per attempt, at most RetryBackoffMax.
func (r *Replicator) backoff(attempt int) time.Duration {
	d := r.cfg.RetryBackoffMin
	for range attempt {
		if d >= r.cfg.RetryBackoffMax/2 {
			return r.cfg.RetryBackoffMax
		}
		d *= 2
	}
	return min(d, r.cfg.RetryBackoffMax)
}

// retryLoop works the retry queue until ctx is done.
func (r *Replicator) retryLoop(ctx context.Context) {
	sem := make(chan struct{}, retryConcurrency)
	var wg sync.WaitGroup
	defer wg.Wait()
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	for {
		e, wait := r.retry.pop(r.cfg.Now())
		if e == nil {
			var due <-chan time.Time
			if wait > 0 {
				timer.Reset(wait)
				due = timer.C
			}
			select {
			case <-ctx.Done():
				return
			case <-r.retry.wake:
			case <-due:
			}
			timer.Stop()
			continue
		}
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			return
		}
		wg.Go(func() {
			defer func() { <-sem }()
			r.retryOne(ctx, e)
		})
	}
}

// retryOne tries to write one missing copy, and reschedules it with
// backoff if that fails.
func (r *Replicator) retryOne(ctx context.Context, e *retryEntry) {
	ref, id := e.key.ref, e.key.node
	live := r.cfg.Membership.BlockNodes()
	placement := Place(ref, live, r.cfg.R)
	i := nodeIndex(placement, id)
	if i < 0 {
		// The node left, or membership changed so that it no longer
		// places ref: check the current placement nodes instead.
		now := r.cfg.Now()
		for _, n := range placement {
			r.retry.add(retryKey{ref, n.ID}, 0, now)
		}
		return
	}
	err := r.pushTo(ctx, ref, placement[i], live)
	switch {
	case err == nil:
		r.c.retriesOK.Add(1)
	case ctx.Err() != nil:
		// Closing; the repairer is the backstop.
	case errors.Is(err, blockstore.ErrNotFound) || errors.Is(err, blockstore.ErrDiskFull) || isRefusal(err):
		// No copy left to spread, a refused (too large) block, or a full
		// node that would make every retry fetch the block for nothing:
		// the repairers, at their own pace, are the backstop. (A node
		// that answers ErrHashMismatch to verified bytes has failed and
		// is retried like any other.)
		r.log.Warn("retry dropped", "ref", ref.Short(), "peer", string(id), "err", err)
	default:
		r.c.retriesFailed.Add(1)
		next := e.attempt + 1
		r.log.Debug("retry failed", "ref", ref.Short(), "peer", string(id), "attempt", next, "err", err)
		r.retry.add(e.key, next, r.cfg.Now().Add(r.backoff(next)))
	}
}

// pushTo makes sure node n holds ref: nothing to do if it has it; else the
// block is fetched (locally or from another node) and put on n.
func (r *Replicator) pushTo(ctx context.Context, ref blockstore.Ref, n Node, live []Node) error {
	has, err := r.hasOn(ctx, n, []blockstore.Ref{ref})
	if err != nil {
		return err
	}
	if has[0] {
		return nil
	}
	data, err := r.fetch(ctx, ref, live, n.ID, true)
	if err != nil {
		return err
	}
	return r.writeTo(ctx, n, ref, data)
}
