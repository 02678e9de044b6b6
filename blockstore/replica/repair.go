package replica

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/coffer-dev/coffer/blockstore"
)

// repairBatch is how many local blocks the repairer handles at once, and so
// the most refs in one Has call.
const repairBatch = 1000

// handoffHorizon is how far in the future the storedBefore of a handoff
// delete lies: far enough to match every copy, near enough for any
// timestamp encoding (Unix nanoseconds end in 2262).
const handoffHorizon = 100 * 365 * 24 * time.Hour

// RepairReport is what one RepairNow did.
type RepairReport struct {
	Scanned     int64    // local blocks examined
	Pushed      int64    // copies written to placement nodes that lacked them
	BytesPushed int64    // their bytes
	HandedOff   int64    // local copies deleted because this node does not place them and all R placement nodes confirmed theirs
	Failed      int64    // copies that could not be checked, read locally, pushed or handed off
	Unreachable []NodeID // placement nodes that did not answer (their copies count in Failed)
}

var errNoLocal = fmt.Errorf("%w: replica: no local store (gateway-only node)", blockstore.ErrInvalidArgument)

// RepairNow walks the local store once and makes every block's R placement
// nodes (over the live membership) hold it: it asks each placement node
// which of the blocks it has (in batches), pushes the missing copies from
// the local store at RepairRate, and hands off the local copy (deletes it)
// when this node is not a placement node of the block and all R placement
// nodes now confirm they hold it. Only one RepairNow runs at a time. It
// needs Local (ErrInvalidArgument otherwise). A node that does not answer
// is skipped for the rest of the walk, and a block that cannot be read
// locally (or handed off) is counted in Failed and skipped; the error is
// ctx's, ErrClosed (the Replicator or the local store closed) or the local
// store's failure to enumerate, never a peer's (see the report).
func (r *Replicator) RepairNow(ctx context.Context) (RepairReport, error) {
	var rep RepairReport
	caller := ctx
	ctx, end, err := r.beginLocalWalk(ctx, &r.repairMu)
	if err != nil {
		return rep, err
	}
	defer end()

	w := &repairWalk{
		r:           r,
		live:        r.cfg.Membership.BlockNodes(),
		peers:       make(map[NodeID]Peer),
		unreachable: make(map[NodeID]bool),
		rep:         &rep,
	}
	err = r.callErr(caller, r.walkLocal(ctx, w.batch))
	for id := range w.unreachable {
		rep.Unreachable = append(rep.Unreachable, id)
	}
	slices.Sort(rep.Unreachable)
	r.log.Info("repair done", "scanned", rep.Scanned, "pushed", rep.Pushed, "bytes_pushed", rep.BytesPushed,
		"handed_off", rep.HandedOff, "failed", rep.Failed, "unreachable", len(rep.Unreachable), "err", err)
	return rep, err
}

// walkLocal calls fn with the local blocks in batches of at most
// repairBatch, in Ref order. The store's iteration is not held open while
// fn runs.
func (r *Replicator) walkLocal(ctx context.Context, fn func(context.Context, []blockstore.BlockInfo) error) error {
	var from blockstore.Ref
	for {
		batch := make([]blockstore.BlockInfo, 0, repairBatch)
		err := r.cfg.Local.Enumerate(ctx, from, func(info blockstore.BlockInfo) error {
			batch = append(batch, info)
			if len(batch) == repairBatch {
				return blockstore.ErrStop
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("replica: enumerate local store: %w", err)
		}
		if len(batch) == 0 {
			return nil
		}
		if err := fn(ctx, batch); err != nil {
			return err
		}
		if len(batch) < repairBatch {
			return nil
		}
		var ok bool
		if from, ok = batch[len(batch)-1].Ref.Next(); !ok {
			return nil
		}
	}
}

// repairWalk is the state of one RepairNow.
type repairWalk struct {
	r           *Replicator
	live        []Node
	peers       map[NodeID]Peer
	unreachable map[NodeID]bool
	rep         *RepairReport
}

type repairItem struct {
	info      blockstore.BlockInfo
	placement []Node
	confirmed map[NodeID]bool // placement nodes known to hold the block
}

func (w *repairWalk) peer(ctx context.Context, n Node) (Peer, error) {
	if p, ok := w.peers[n.ID]; ok {
		return p, nil
	}
	p, err := w.r.peer(ctx, n)
	if err != nil {
		return nil, err
	}
	w.peers[n.ID] = p
	return p, nil
}

func (w *repairWalk) markUnreachable(n Node, err error) {
	if !w.unreachable[n.ID] {
		w.r.log.Warn("repair: node unreachable", "peer", string(n.ID), "err", err)
	}
	w.unreachable[n.ID] = true
}

// batch repairs one batch of local blocks.
func (w *repairWalk) batch(ctx context.Context, infos []blockstore.BlockInfo) error {
	r := w.r
	items := make([]repairItem, len(infos))
	byNode := make(map[NodeID][]int)
	var nodes []Node
	for i, info := range infos {
		pl := Place(info.Ref, w.live, r.cfg.R)
		items[i] = repairItem{info: info, placement: pl, confirmed: make(map[NodeID]bool, len(pl))}
		for _, n := range pl {
			if n.ID == r.cfg.Self {
				items[i].confirmed[n.ID] = true
				continue
			}
			if _, ok := byNode[n.ID]; !ok {
				nodes = append(nodes, n)
			}
			byNode[n.ID] = append(byNode[n.ID], i)
		}
	}
	w.rep.Scanned += int64(len(infos))

	// Ask every placement node which of its blocks it has.
	slices.SortFunc(nodes, func(a, b Node) int { return cmp.Compare(a.ID, b.ID) })
	for _, n := range nodes {
		idxs := byNode[n.ID]
		if w.unreachable[n.ID] {
			continue
		}
		refs := make([]blockstore.Ref, len(idxs))
		for k, i := range idxs {
			refs[k] = items[i].info.Ref
		}
		has, err := w.has(ctx, n, refs)
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			w.markUnreachable(n, err)
			continue
		}
		for k, i := range idxs {
			if has[k] {
				items[i].confirmed[n.ID] = true
			}
		}
	}

	// Push the missing copies; hand off what this node does not place.
	for i := range items {
		if err := w.item(ctx, &items[i]); err != nil {
			return err
		}
	}
	return nil
}

func (w *repairWalk) has(ctx context.Context, n Node, refs []blockstore.Ref) ([]bool, error) {
	p, err := w.peer(ctx, n)
	if err != nil {
		return nil, err
	}
	hctx, cancel := context.WithTimeout(ctx, w.r.cfg.GetTimeout)
	defer cancel()
	has, err := p.Has(hctx, refs)
	if err != nil {
		return nil, err
	}
	if len(has) != len(refs) {
		return nil, fmt.Errorf("has on %s: %d answers for %d refs", n.ID, len(has), len(refs))
	}
	return has, nil
}

// item pushes the copies of one block that its placement nodes lack, then
// hands the local copy off if it is surplus.
func (w *repairWalk) item(ctx context.Context, it *repairItem) error {
	r := w.r
	ref := it.info.Ref
	var data []byte
	for i, n := range it.placement {
		if it.confirmed[n.ID] {
			continue
		}
		if w.unreachable[n.ID] {
			w.rep.Failed++
			continue
		}
		if data == nil {
			var err error
			data, err = r.cfg.Local.Get(ctx, ref)
			if err != nil {
				if ctx.Err() != nil {
					return ctx.Err()
				}
				if errors.Is(err, blockstore.ErrNotFound) || errors.Is(err, blockstore.ErrCorrupt) {
					// Deleted since the walk saw it, or corrupt (the
					// store dropped it and calls OnCorrupt): another
					// node's repairer covers it.
					return nil
				}
				if errors.Is(err, blockstore.ErrClosed) {
					return fmt.Errorf("replica: repair: read local %s: %w", ref.Short(), err)
				}
				// One unreadable block must not stop the repair of all
				// the others: the copies it owes count as failed.
				r.log.Warn("repair: cannot read local copy", "ref", ref.Short(), "err", err)
				for _, m := range it.placement[i:] {
					if !it.confirmed[m.ID] {
						w.rep.Failed++
					}
				}
				return nil
			}
		}
		if err := waitBytes(ctx, r.repairLim, int64(len(data))); err != nil {
			return err
		}
		p, err := w.peer(ctx, n)
		if err != nil {
			w.markUnreachable(n, err)
			w.rep.Failed++
			continue
		}
		pctx, cancel := context.WithTimeout(ctx, r.cfg.PutTimeout)
		err = p.Put(pctx, ref, data)
		cancel()
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			r.log.Debug("repair push failed", "ref", ref.Short(), "peer", string(n.ID), "err", err)
			w.rep.Failed++
			continue
		}
		it.confirmed[n.ID] = true
		w.rep.Pushed++
		w.rep.BytesPushed += int64(len(data))
		r.c.repairsPushed.Add(1)
		r.c.bytesPushed.Add(int64(len(data)))
	}
	// Handoff: safe because R other nodes confirmed a copy just now.
	if len(it.placement) < r.cfg.R || nodeIndex(it.placement, r.cfg.Self) >= 0 {
		return nil
	}
	for _, n := range it.placement {
		if !it.confirmed[n.ID] {
			return nil
		}
	}
	deleted, err := r.cfg.Local.Delete(ctx, ref, r.cfg.Now().Add(handoffHorizon))
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if errors.Is(err, blockstore.ErrClosed) {
			return fmt.Errorf("replica: repair: hand off %s: %w", ref.Short(), err)
		}
		r.log.Warn("repair: hand off failed", "ref", ref.Short(), "err", err)
		w.rep.Failed++
		return nil
	}
	if deleted {
		w.rep.HandedOff++
		r.c.handoffs.Add(1)
	}
	return nil
}

// repairLoop runs RepairNow after membership changes (once the set has
// been quiet for RepairDebounce) and every RepairInterval.
func (r *Replicator) repairLoop(ctx context.Context) {
	var tick <-chan time.Time
	if r.cfg.RepairInterval > 0 {
		t := time.NewTicker(r.cfg.RepairInterval)
		defer t.Stop()
		tick = t.C
	}
	changes := r.changes // nil when repair-on-change is off
	debounce := time.NewTimer(time.Hour)
	debounce.Stop()
	var settled <-chan time.Time
	for {
		select {
		case <-ctx.Done():
			return
		case <-changes:
			debounce.Reset(r.cfg.RepairDebounce)
			settled = debounce.C
			continue
		case <-settled:
			settled = nil
		case <-tick:
		}
		if _, err := r.RepairNow(ctx); err != nil && ctx.Err() == nil {
			r.log.Warn("repair failed", "err", err)
		}
	}
}
