package replica

import (
	"context"
	"fmt"
	"slices"

	"github.com/coffer-dev/coffer/blockstore"
)

// Put stores the block on R nodes. It verifies data against ref first
// (ErrHashMismatch, without contacting any node), then writes to the R
// placement nodes of ref in parallel and returns nil as soon as W of them
// have acknowledged durably. A placement node that fails before the quorum
// is reached is replaced by the next node in rendezvous order (a sloppy
// write, moved to its proper place later by the repairer of the node that
// took it). A node that answers ErrHashMismatch has failed like any other:
// the bytes were verified here, so the node or the network is at fault.
//
// The writes still running when Put returns continue in the background,
// detached from ctx but bounded by PutTimeout, as long as their data fits
// in BackgroundBytes; if it does not, they are cancelled. A placement node
// that misses its copy either way goes to the retry queue.
//
// Errors: ErrUnavailable when fewer than W nodes acknowledged (or fewer
// than W are live); a node's ErrTooLarge as is (the block is refused);
// ctx's error if ctx ends first (the writes go on, within the same
// budget). Put does not retain data after it returns (it writes from its
// own copy).
func (r *Replicator) Put(ctx context.Context, ref blockstore.Ref, data []byte) error {
	if err := ref.Verify(data); err != nil {
		return err
	}
	if !r.enter() {
		return errClosed
	}
	r.c.puts.Add(1)
	live := r.cfg.Membership.BlockNodes()
	order := Place(ref, live, -1)
	if len(order) < r.cfg.W {
		r.leave()
		r.c.quorumFailures.Add(1)
		return fmt.Errorf("%w: replica: put %s: %d live block nodes, write quorum is %d",
			blockstore.ErrUnavailable, ref.Short(), len(order), r.cfg.W)
	}
	op := &putOp{
		r:          r,
		ref:        ref,
		order:      order,
		done:       make(chan error, 1),
		callerGone: make(chan struct{}),
	}
	data = slices.Clone(data)
	go func() {
		defer r.leave()
		op.run(r.base, data)
	}()
	select {
	case err := <-op.done:
		return err
	case <-ctx.Done():
		close(op.callerGone)
		return ctx.Err()
	}
}

type putOp struct {
	r          *Replicator
	ref        blockstore.Ref
	order      []Node        // all live nodes, in placement order
	done       chan error    // receives the outcome once (buffer 1)
	callerGone chan struct{} // closed when Put returned before the outcome
}

type putResult struct {
	idx int // in order
	err error
}

// run drives the writes of one Put until every write it started has
// ended; it reports the outcome on op.done as soon as it is known.
//
// Once the Put has returned (the outcome is known, or its caller gave up)
// while writes are still running, those writes hold data in the
// background: run takes len(data) from the background budget for them, or,
// if it does not fit, cancels them and leaves their nodes to the retry
// queue.
func (op *putOp) run(base context.Context, data []byte) {
	r := op.r
	ctx, cancel := context.WithCancel(base)
	defer cancel()
	nR := min(r.cfg.R, len(op.order))
	results := make(chan putResult, len(op.order))
	inflight := 0
	launch := func(i int) {
		inflight++
		n, d := op.order[i], data
		go func() { results <- putResult{i, r.writeTo(ctx, n, op.ref, d)} }()
	}
	for i := range nR {
		launch(i)
	}
	next := nR
	acks := 0
	decided, refused := false, false
	background, skipped := false, false
	var held int64
	defer func() {
		if held > 0 {
			r.budget.release(held)
		}
	}()
	// detach is called once, when the Put no longer waits for writes
	// still running.
	detach := func() {
		background = true
		if n := int64(len(data)); r.budget.tryAcquire(n) {
			held = n
			return
		}
		skipped = true
		r.c.backgroundSkipped.Add(int64(inflight))
		r.log.Debug("replica writes skipped: background budget spent", "ref", op.ref.Short(), "writes", inflight)
		cancel()
		data = nil // the writes in flight have their own reference until they end
	}
	callerGone := op.callerGone
	var missed []Node // placement nodes that did not get their copy
	var lastErr error
	for inflight > 0 {
		var res putResult
		select {
		case res = <-results:
		case <-callerGone:
			callerGone = nil
			if !decided && !background {
				detach()
			}
			continue
		}
		inflight--
		node := op.order[res.idx]
		if res.err == nil {
			acks++
			if res.idx >= nR {
				r.c.sloppyWrites.Add(1)
			}
			if decided {
				r.c.fillsOK.Add(1)
			} else if acks >= r.cfg.W {
				decided = true
				if inflight > 0 && !background {
					detach()
				}
				op.done <- nil
			}
			continue
		}
		lastErr = res.err
		r.log.Debug("replica write failed", "ref", op.ref.Short(), "peer", string(node.ID), "err", res.err)
		if isRefusal(res.err) {
			if !decided {
				// The block itself is at fault; the caller hears it as
				// is, and the other writes would be refused too.
				decided, refused = true, true
				cancel()
				op.done <- fmt.Errorf("replica: put %s on %s: %w", op.ref.Short(), node.ID, res.err)
			}
			continue
		}
		if decided && !refused && !skipped {
			r.c.fillsFailed.Add(1)
		}
		if res.idx < nR {
			missed = append(missed, node)
		}
		if !decided && !skipped && next < len(op.order) {
			launch(next)
			next++
		}
	}
	if !decided {
		r.c.quorumFailures.Add(1)
		op.done <- fmt.Errorf("%w: replica: put %s: %d of %d required replicas acknowledged (%d nodes tried; last error: %v)",
			blockstore.ErrUnavailable, op.ref.Short(), acks, r.cfg.W, next, lastErr)
	}
	if refused || acks == 0 {
		return // nobody holds the block: nothing to copy from
	}
	due := r.cfg.Now().Add(r.backoff(0))
	for _, n := range missed {
		r.retry.add(retryKey{op.ref, n.ID}, 0, due)
	}
}

// writeTo puts the block on one node, bounded by PutTimeout.
func (r *Replicator) writeTo(ctx context.Context, n Node, ref blockstore.Ref, data []byte) error {
	ctx, cancel := context.WithTimeout(ctx, r.cfg.PutTimeout)
	defer cancel()
	p, err := r.peer(ctx, n)
	if err != nil {
		return err
	}
	return p.Put(ctx, ref, data)
}
