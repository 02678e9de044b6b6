package replica

import (
	"context"
	"errors"
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
// took it). The other writes continue in the background, detached from ctx
// but bounded by PutTimeout; a placement node that misses its copy goes to
// the retry queue.
//
// Errors: ErrUnavailable when fewer than W nodes acknowledged (or fewer
// than W are live); a node's ErrHashMismatch or ErrTooLarge as is; ctx's
// error if ctx ends first (the writes go on). Put does not retain data
// after it returns (it writes from its own copy).
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
		r:     r,
		ref:   ref,
		data:  slices.Clone(data),
		order: order,
		done:  make(chan error, 1),
	}
	go func() {
		defer r.leave()
		op.run(r.base)
	}()
	select {
	case err := <-op.done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

type putOp struct {
	r     *Replicator
	ref   blockstore.Ref
	data  []byte
	order []Node     // all live nodes, in placement order
	done  chan error // receives the outcome once (buffer 1)
}

type putResult struct {
	idx int // in order
	err error
}

// run drives the writes of one Put until every write it started has
// ended; it reports the outcome on op.done as soon as it is known.
func (op *putOp) run(ctx context.Context) {
	r := op.r
	nR := min(r.cfg.R, len(op.order))
	results := make(chan putResult, len(op.order))
	inflight := 0
	launch := func(i int) {
		inflight++
		go func() { results <- putResult{i, op.write(ctx, op.order[i])} }()
	}
	for i := range nR {
		launch(i)
	}
	next := nR
	acks := 0
	decided, refused := false, false
	var missed []Node // placement nodes that did not get their copy
	var lastErr error
	for inflight > 0 {
		res := <-results
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
				op.done <- nil
			}
			continue
		}
		lastErr = res.err
		r.log.Debug("replica write failed", "ref", op.ref.Short(), "peer", string(node.ID), "err", res.err)
		if isRefusal(res.err) && !decided {
			// The block itself is at fault; the caller hears it as is.
			decided, refused = true, true
			op.done <- fmt.Errorf("replica: put %s on %s: %w", op.ref.Short(), node.ID, res.err)
			continue
		}
		if decided {
			r.c.fillsFailed.Add(1)
		}
		if res.idx < nR && !errors.Is(res.err, blockstore.ErrTooLarge) {
			missed = append(missed, node)
		}
		if !decided && next < len(op.order) {
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

// write puts the block on one node, bounded by PutTimeout.
func (op *putOp) write(ctx context.Context, n Node) error {
	ctx, cancel := context.WithTimeout(ctx, op.r.cfg.PutTimeout)
	defer cancel()
	p, err := op.r.peer(ctx, n)
	if err != nil {
		return err
	}
	return p.Put(ctx, op.ref, op.data)
}
