package replica

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"

	"github.com/coffer-dev/coffer/blockstore"
)

// Get returns the block's bytes (owned by the caller), verified against
// ref. It tries the live nodes in placement order (the R placement nodes
// first, Self first among them, then the others), each for at most
// GetTimeout; a node that answers
// with bytes that do not hash to ref counts as corrupt. After a success it
// rewrites, in the background, the copy of every placement node that
// answered ErrNotFound, ErrCorrupt or wrong bytes (read repair; if its copy
// of the block does not fit in BackgroundBytes, the nodes are queued for
// retry instead).
//
// Errors: ErrNotFound when every node answered that it has no good copy;
// ErrUnavailable when some could not be reached and none had it; ctx's
// error if ctx ends first.
func (r *Replicator) Get(ctx context.Context, ref blockstore.Ref) ([]byte, error) {
	if !r.enter() {
		return nil, errClosed
	}
	defer r.leave()
	r.c.gets.Add(1)
	data, err := r.get(ctx, ref)
	if err != nil {
		r.c.getFailures.Add(1)
	}
	return data, err
}

func (r *Replicator) get(ctx context.Context, ref blockstore.Ref) ([]byte, error) {
	live := r.cfg.Membership.BlockNodes()
	order := Place(ref, live, -1)
	nR := min(r.cfg.R, len(order))
	if i := nodeIndex(order[:nR], r.cfg.Self); i > 0 && r.cfg.Local != nil {
		// A placement node reads its own copy first.
		self := order[i]
		copy(order[1:i+1], order[:i])
		order[0] = self
	}
	var bad []Node // placement nodes without a good copy
	missing, unreachable := 0, 0
	var lastErr error
	for i, n := range order {
		data, err := r.getFrom(ctx, n, ref)
		if err == nil {
			if i > 0 {
				r.c.fallbacks.Add(1)
			}
			if len(bad) > 0 {
				r.readRepair(ref, data, bad)
			}
			return data, nil
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		lastErr = err
		switch {
		case errors.Is(err, blockstore.ErrNotFound), errors.Is(err, blockstore.ErrCorrupt), errors.Is(err, blockstore.ErrHashMismatch):
			missing++
			if i < nR {
				bad = append(bad, n)
			}
		default:
			unreachable++
			r.log.Debug("replica read failed", "ref", ref.Short(), "peer", string(n.ID), "err", err)
		}
	}
	if unreachable > 0 || len(order) == 0 {
		return nil, fmt.Errorf("%w: replica: get %s: %d of %d nodes unreachable, %d without a good copy (last error: %v)",
			blockstore.ErrUnavailable, ref.Short(), unreachable, len(order), missing, lastErr)
	}
	return nil, fmt.Errorf("%w: replica: get %s: none of %d nodes has a good copy", blockstore.ErrNotFound, ref.Short(), len(order))
}

// getFrom reads ref from one node, bounded by GetTimeout, and verifies it
// (wrong bytes are ErrHashMismatch).
func (r *Replicator) getFrom(ctx context.Context, n Node, ref blockstore.Ref) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, r.cfg.GetTimeout)
	defer cancel()
	p, err := r.peer(ctx, n)
	if err != nil {
		return nil, err
	}
	data, err := p.Get(ctx, ref)
	if err != nil {
		return nil, err
	}
	if err := ref.Verify(data); err != nil {
		return nil, fmt.Errorf("node %s returned wrong bytes: %w", n.ID, err)
	}
	return data, nil
}

// readRepair rewrites the block on nodes in the background, from its own
// copy of data. If that copy does not fit in the background budget, it
// queues the nodes for retry instead (the retry fetches the block again).
func (r *Replicator) readRepair(ref blockstore.Ref, data []byte, nodes []Node) {
	n := int64(len(data))
	if !r.budget.tryAcquire(n) {
		r.c.readRepairsSkipped.Add(int64(len(nodes)))
		r.log.Debug("read repair skipped: background budget spent", "ref", ref.Short(), "nodes", len(nodes))
		r.queueRetries(ref, nodes)
		return
	}
	data = slices.Clone(data)
	started := r.goBackground(func(ctx context.Context) {
		defer r.budget.release(n)
		for _, nd := range nodes {
			if err := r.writeTo(ctx, nd, ref, data); err != nil {
				r.log.Debug("read repair failed", "ref", ref.Short(), "peer", string(nd.ID), "err", err)
				if !isRefusal(err) {
					r.queueRetries(ref, []Node{nd})
				}
				continue
			}
			r.c.readRepairs.Add(1)
		}
	})
	if !started {
		r.budget.release(n)
	}
}

// queueRetries queues (ref, node) for every node, due after the first
// backoff.
func (r *Replicator) queueRetries(ref blockstore.Ref, nodes []Node) {
	due := r.cfg.Now().Add(r.backoff(0))
	for _, nd := range nodes {
		r.retry.add(retryKey{ref, nd.ID}, 0, due)
	}
}

// fetch reads a good copy of ref from the local store (if useLocal) or from
// any live node but skip, in placement order. Errors: ErrNotFound when no
// node has it, ErrUnavailable when some could not be asked.
func (r *Replicator) fetch(ctx context.Context, ref blockstore.Ref, live []Node, skip NodeID, useLocal bool) ([]byte, error) {
	if useLocal && r.cfg.Local != nil {
		if data, err := r.cfg.Local.Get(ctx, ref); err == nil {
			return data, nil
		}
	}
	unreachable := 0
	var lastErr error
	for _, n := range Place(ref, live, -1) {
		if n.ID == skip || (n.ID == r.cfg.Self && r.cfg.Local != nil) {
			continue
		}
		data, err := r.getFrom(ctx, n, ref)
		if err == nil {
			return data, nil
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		switch {
		case errors.Is(err, blockstore.ErrNotFound), errors.Is(err, blockstore.ErrCorrupt), errors.Is(err, blockstore.ErrHashMismatch):
		default:
			unreachable++
			lastErr = err
		}
	}
	if unreachable > 0 {
		return nil, fmt.Errorf("%w: %d nodes unreachable and none of the others has %s (last error: %v)",
			blockstore.ErrUnavailable, unreachable, ref.Short(), lastErr)
	}
	return nil, fmt.Errorf("%w: no node has a good copy of %s", blockstore.ErrNotFound, ref.Short())
}

// Has reports, for each ref, whether at least one of its R placement nodes
// holds a copy. A copy written sloppily to another node is not seen until
// the repairer moves it, so false means "upload it again", which is always
// safe. It fails with ErrUnavailable if, for some ref reported false, none
// of its placement nodes could be asked.
func (r *Replicator) Has(ctx context.Context, refs []blockstore.Ref) ([]bool, error) {
	if !r.enter() {
		return nil, errClosed
	}
	defer r.leave()
	live := r.cfg.Membership.BlockNodes()
	byNode := make(map[NodeID][]int)
	nodes := make(map[NodeID]Node)
	for i, ref := range refs {
		for _, n := range Place(ref, live, r.cfg.R) {
			byNode[n.ID] = append(byNode[n.ID], i)
			nodes[n.ID] = n
		}
	}
	out := make([]bool, len(refs))
	answered := make([]bool, len(refs))
	var mu sync.Mutex
	var wg sync.WaitGroup
	var lastErr error
	for id, idxs := range byNode {
		wg.Go(func() {
			batch := make([]blockstore.Ref, len(idxs))
			for k, i := range idxs {
				batch[k] = refs[i]
			}
			res, err := r.hasOn(ctx, nodes[id], batch)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				lastErr = err
				return
			}
			for k, i := range idxs {
				answered[i] = true
				out[i] = out[i] || res[k]
			}
		})
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	for i := range refs {
		if !out[i] && !answered[i] {
			return nil, fmt.Errorf("%w: replica: has %s: no placement node answered (last error: %v)",
				blockstore.ErrUnavailable, refs[i].Short(), lastErr)
		}
	}
	return out, nil
}

// hasOn asks one node, bounded by GetTimeout.
func (r *Replicator) hasOn(ctx context.Context, n Node, refs []blockstore.Ref) ([]bool, error) {
	ctx, cancel := context.WithTimeout(ctx, r.cfg.GetTimeout)
	defer cancel()
	p, err := r.peer(ctx, n)
	if err != nil {
		return nil, err
	}
	res, err := p.Has(ctx, refs)
	if err != nil {
		return nil, fmt.Errorf("has on %s: %w", n.ID, err)
	}
	if len(res) != len(refs) {
		return nil, fmt.Errorf("has on %s: %d answers for %d refs", n.ID, len(res), len(refs))
	}
	return res, nil
}
