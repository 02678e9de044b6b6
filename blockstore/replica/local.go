package replica

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/coffer-dev/coffer/blockstore"
)

// corruptQueueSize bounds the OnCorrupt repairs waiting; beyond it they are
// dropped (and counted): the repairers of the other placement nodes find
// the missing copy on their next walk.
const corruptQueueSize = 10_000

// corruptQueue is a bounded set of refs whose local copy needs repair.
type corruptQueue struct {
	mu    sync.Mutex
	max   int
	set   map[blockstore.Ref]bool
	order []blockstore.Ref
	wake  chan struct{}
}

func newCorruptQueue(max int) *corruptQueue {
	return &corruptQueue{max: max, set: make(map[blockstore.Ref]bool), wake: make(chan struct{}, 1)}
}

func (q *corruptQueue) add(ref blockstore.Ref) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.set[ref] {
		return true
	}
	if len(q.order) >= q.max {
		return false
	}
	q.set[ref] = true
	q.order = append(q.order, ref)
	select {
	case q.wake <- struct{}{}:
	default:
	}
	return true
}

func (q *corruptQueue) pop() (blockstore.Ref, bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if len(q.order) == 0 {
		return blockstore.Ref{}, false
	}
	ref := q.order[0]
	q.order = q.order[1:]
	delete(q.set, ref)
	return ref, true
}

// OnCorrupt queues a repair of the local copy of ref and returns at once.
// It is meant as the local store's OnCorrupt callback, which the store
// calls synchronously after dropping a copy that failed verification.
// Since the Replicator is built after the store, wire it through an
// indirection:
//
//	var rep atomic.Pointer[replica.Replicator]
//	store, err := localstore.Open(localstore.Config{...,
//		OnCorrupt: func(ref blockstore.Ref) {
//			if r := rep.Load(); r != nil {
//				r.OnCorrupt(ref)
//			}
//		}})
//	r, err := replica.New(replica.Config{Self: id, Local: store, ...})
//	rep.Store(r)
//
// The repairs run once Start has been called.
func (r *Replicator) OnCorrupt(ref blockstore.Ref) {
	if r.cfg.Local == nil {
		return
	}
	if !r.corrupt.add(ref) {
		r.c.corruptDropped.Add(1)
	}
}

// corruptLoop runs the repairs queued by OnCorrupt.
func (r *Replicator) corruptLoop(ctx context.Context) {
	for {
		ref, ok := r.corrupt.pop()
		if !ok {
			select {
			case <-ctx.Done():
				return
			case <-r.corrupt.wake:
			}
			continue
		}
		if err := r.RepairBlock(ctx, ref); err != nil && ctx.Err() == nil {
			r.log.Warn("repair of corrupt copy failed", "ref", ref.Short(), "err", err)
		}
	}
}

// flight is one RepairBlock in progress; concurrent calls for the same ref
// wait for it instead of fetching again. It runs on the Replicator's own
// ctx, not on any caller's, so a caller that goes away fails alone.
type flight struct {
	done    chan struct{}
	err     error // set before done is closed
	waiters int   // calls waiting for it besides the first (under flightMu)
}

// RepairBlock restores the local copy of ref from the other nodes: if the
// local store does not hold a good copy, it fetches one (verified) from the
// live nodes in placement order and puts it locally. It returns nil if the
// local store already has the block. Concurrent calls for one ref share the
// work, which runs detached from every caller's ctx (bounded by GetTimeout
// per node asked plus PutTimeout) until it ends or the Replicator closes;
// each call waits for it until its own ctx ends. It needs Local
// (ErrInvalidArgument otherwise); it fails with ErrNotFound when no node
// has a good copy, ErrUnavailable when some could not be asked, and
// ErrClosed if Close cut it short. Do not call it from the store's
// OnCorrupt callback: use OnCorrupt, which queues it.
func (r *Replicator) RepairBlock(ctx context.Context, ref blockstore.Ref) error {
	if r.cfg.Local == nil {
		return errNoLocal
	}
	if !r.enter() {
		return errClosed
	}
	defer r.leave()
	r.flightMu.Lock()
	f, ok := r.flights[ref]
	if ok {
		f.waiters++
	} else {
		f = &flight{done: make(chan struct{})}
		r.flights[ref] = f
		// This call holds an enter, so Close is not done waiting.
		r.wg.Add(1)
		go func() {
			defer r.wg.Done()
			err := r.repairShared(ref)
			r.flightMu.Lock()
			f.err = err
			delete(r.flights, ref)
			r.flightMu.Unlock()
			close(f.done)
		}()
	}
	r.flightMu.Unlock()
	select {
	case <-f.done:
		return r.callErr(ctx, f.err)
	case <-ctx.Done():
		return ctx.Err()
	}
}

// repairShared runs the repair of one flight on the Replicator's ctx.
func (r *Replicator) repairShared(ref blockstore.Ref) error {
	live := r.cfg.Membership.BlockNodes()
	timeout := r.cfg.GetTimeout*time.Duration(len(live)+1) + r.cfg.PutTimeout
	ctx, cancel := context.WithTimeout(r.base, timeout)
	defer cancel()
	return r.repairBlock(ctx, ref, live)
}

func (r *Replicator) repairBlock(ctx context.Context, ref blockstore.Ref, live []Node) error {
	has, err := r.cfg.Local.Has(ctx, []blockstore.Ref{ref})
	if err != nil {
		return fmt.Errorf("replica: repair %s: local has: %w", ref.Short(), err)
	}
	if has[0] {
		return nil
	}
	data, err := r.fetch(ctx, ref, live, r.cfg.Self, false)
	if err != nil {
		return fmt.Errorf("replica: repair %s: %w", ref.Short(), err)
	}
	pctx, cancel := context.WithTimeout(ctx, r.cfg.PutTimeout)
	defer cancel()
	if err := r.cfg.Local.Put(pctx, ref, data); err != nil {
		return fmt.Errorf("replica: repair %s: local put: %w", ref.Short(), err)
	}
	r.c.repaired.Add(1)
	r.log.Info("local copy repaired", "ref", ref.Short())
	return nil
}

// ScrubReport is what one ScrubNow did.
type ScrubReport struct {
	Scanned  int64 // local blocks read
	Bytes    int64 // bytes read and verified good
	Corrupt  int64 // copies that failed verification
	Repaired int64 // of those, restored from other nodes
	Failed   int64 // blocks that could not be read or repaired
}

// ScrubNow reads every local block once at ScrubRate; the local store
// verifies each read and drops a corrupt copy, which ScrubNow then
// restores from other nodes (RepairBlock). A block that cannot be read or
// repaired is counted in Failed and the walk goes on; only ctx, Close or a
// closed local store end it early. Only one ScrubNow runs at a time. It
// needs Local (ErrInvalidArgument otherwise); the error is ctx's, ErrClosed
// (the Replicator or the local store closed) or the local store's failure
// to enumerate.
func (r *Replicator) ScrubNow(ctx context.Context) (ScrubReport, error) {
	var rep ScrubReport
	caller := ctx
	ctx, end, err := r.beginLocalWalk(ctx, &r.scrubMu)
	if err != nil {
		return rep, err
	}
	defer end()
	err = r.walkLocal(ctx, func(ctx context.Context, infos []blockstore.BlockInfo) error {
		for _, info := range infos {
			if err := waitBytes(ctx, r.scrubLim, info.Size); err != nil {
				return err
			}
			data, err := r.cfg.Local.Get(ctx, info.Ref)
			switch {
			case err == nil:
				rep.Scanned++
				rep.Bytes += int64(len(data))
				r.c.scrubbed.Add(1)
			case ctx.Err() != nil:
				return ctx.Err()
			case errors.Is(err, blockstore.ErrNotFound):
				// Deleted since the walk saw it.
			case errors.Is(err, blockstore.ErrCorrupt):
				rep.Scanned++
				rep.Corrupt++
				r.c.scrubbed.Add(1)
				r.c.corruptFound.Add(1)
				r.log.Warn("scrub found a corrupt copy", "ref", info.Ref.Short())
				if err := r.RepairBlock(ctx, info.Ref); err != nil {
					if ctx.Err() != nil {
						return ctx.Err()
					}
					if errors.Is(err, blockstore.ErrClosed) {
						return err
					}
					r.log.Warn("scrub repair failed", "ref", info.Ref.Short(), "err", err)
					rep.Failed++
				} else {
					rep.Repaired++
				}
			case errors.Is(err, blockstore.ErrClosed):
				return fmt.Errorf("replica: scrub: read local %s: %w", info.Ref.Short(), err)
			default:
				r.log.Warn("scrub read failed", "ref", info.Ref.Short(), "err", err)
				rep.Failed++
			}
		}
		return nil
	})
	err = r.callErr(caller, err)
	r.log.Info("scrub done", "scanned", rep.Scanned, "bytes", rep.Bytes, "corrupt", rep.Corrupt,
		"repaired", rep.Repaired, "failed", rep.Failed, "err", err)
	return rep, err
}

// scrubLoop runs ScrubNow every ScrubInterval.
func (r *Replicator) scrubLoop(ctx context.Context) {
	if r.cfg.ScrubInterval <= 0 {
		return
	}
	t := time.NewTicker(r.cfg.ScrubInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if _, err := r.ScrubNow(ctx); err != nil && ctx.Err() == nil {
			r.log.Warn("scrub failed", "err", err)
		}
	}
}
