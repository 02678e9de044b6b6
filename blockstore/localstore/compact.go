package localstore

import (
	"context"
	"fmt"
	"math"

	"github.com/cockroachdb/pebble/v2"
	"golang.org/x/time/rate"

	"github.com/coffer-dev/coffer/blockstore"
)

// CompactReport says what a compaction did.
type CompactReport struct {
	Segments   int   // segment files removed
	Moved      int   // live blocks copied to the active segment
	BytesMoved int64 // record bytes copied
	BytesFreed int64 // file bytes released
}

// maybeCompactLocked wakes the compactor when a sealed segment is dead
// enough. segMu held.
func (s *Store) maybeCompactLocked(seg *segment) {
	if s.cfg.DisableAutoCompact || !s.compactable(seg) {
		return
	}
	select {
	case s.compactQ <- struct{}{}:
	default:
	}
}

// compactable: sealed, no writer still filling it, and at least
// CompactGarbageRatio of it dead. segMu held.
func (s *Store) compactable(seg *segment) bool {
	if seg == s.active || seg.removed || seg.writers > 0 || seg.size == 0 {
		return false
	}
	return float64(seg.size-seg.live) >= s.cfg.CompactGarbageRatio*float64(seg.size)
}

func (s *Store) compactor(ctx context.Context) {
	defer close(s.compactDone)
	for {
		select {
		case <-ctx.Done():
			return
		case <-s.compactQ:
		}
		rep, err := s.Compact(ctx)
		if err != nil && ctx.Err() == nil {
			s.log.Warn("segment compaction failed", "err", err)
		} else if rep.Segments > 0 {
			s.log.Info("segments compacted", "segments", rep.Segments, "moved", rep.Moved, "freed", rep.BytesFreed)
		}
	}
}

// Compact rewrites every sealed segment that is at least
// CompactGarbageRatio dead: its live blocks are appended to the active
// segment (keeping their StoredAt), the index is pointed at the new
// copies, and the file is removed once no reader uses it. The background
// compactor calls it; tests and operators may too.
func (s *Store) Compact(ctx context.Context) (CompactReport, error) {
	var rep CompactReport
	limit := rate.NewLimiter(rate.Inf, 0)
	if s.cfg.CompactRate > 0 {
		limit = rate.NewLimiter(rate.Limit(s.cfg.CompactRate), s.cfg.MaxBlockSize+headerSize)
	}
	if err := s.enter(ctx); err != nil {
		return rep, err
	}
	s.segMu.Lock()
	var ids []uint32
	for id, seg := range s.segs {
		if s.compactable(seg) {
			ids = append(ids, id)
		}
	}
	s.segMu.Unlock()
	s.ops.RUnlock()
	for _, id := range ids {
		if err := s.compactSegment(ctx, id, limit, &rep); err != nil {
			return rep, err
		}
	}
	return rep, nil
}

func (s *Store) compactSegment(ctx context.Context, id uint32, limit *rate.Limiter, rep *CompactReport) error {
	type rec struct {
		off int64
		ref blockstore.Ref
	}
	var recs []rec
	if err := s.enter(ctx); err != nil {
		return err
	}
	lo, hi := segKey(id, 0), segKey(id, math.MaxInt64)
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: hi})
	if err != nil {
		s.ops.RUnlock()
		return fmt.Errorf("localstore: index: %w", err)
	}
	for ok := it.First(); ok; ok = it.Next() {
		_, off, valid := decodeSegKey(it.Key())
		if !valid || len(it.Value()) != len(blockstore.Ref{}) {
			continue
		}
		recs = append(recs, rec{off: off, ref: blockstore.Ref(it.Value())})
	}
	err = it.Close()
	s.ops.RUnlock()
	if err != nil {
		return fmt.Errorf("localstore: index: %w", err)
	}
	for _, r := range recs {
		if err := s.move(ctx, id, r.off, r.ref, limit, rep); err != nil {
			return err
		}
	}
	if err := s.enter(ctx); err != nil {
		return err
	}
	defer s.ops.RUnlock()
	s.segMu.Lock()
	defer s.segMu.Unlock()
	seg := s.segs[id]
	if seg == nil || seg.live != 0 || seg.writers > 0 || seg == s.active {
		return nil
	}
	seg.removed = true
	delete(s.segs, id)
	rep.Segments++
	rep.BytesFreed += seg.size
	s.reapLocked(seg)
	return nil
}

// move copies one live record out of segment id.
func (s *Store) move(ctx context.Context, id uint32, off int64, ref blockstore.Ref, limit *rate.Limiter, rep *CompactReport) error {
	if err := s.enter(ctx); err != nil {
		return err
	}
	corrupt := false
	err := func() error {
		defer s.ops.RUnlock()
		unlock := s.locks.lock(ref)
		defer unlock()
		loc, ok, err := s.lookup(ref)
		if err != nil {
			return err
		}
		if !ok || loc.seg != id || loc.off != off {
			// Stale contents entry: the block was deleted or moved.
			if derr := s.db.Delete(segKey(id, off), pebble.NoSync); derr != nil {
				return fmt.Errorf("localstore: index: %w", derr)
			}
			return nil
		}
		if err := limit.WaitN(ctx, int(loc.recordLen())); err != nil {
			return err
		}
		seg := s.acquire(id)
		if seg == nil {
			return nil
		}
		buf := make([]byte, loc.recordLen())
		_, rerr := seg.f.ReadAt(buf, off)
		s.release(seg)
		if rerr != nil || !checkHeader(buf, ref, loc.length) || ref.Verify(buf[headerSize:]) != nil {
			if err := s.unindex(ref, loc); err != nil {
				return err
			}
			s.st.corrupt.Add(1)
			corrupt = true
			s.log.Warn("corrupt block copy dropped during compaction", "ref", ref.String(), "segment", id, "offset", off)
			return nil
		}
		nloc, err := s.writeRecord(ref, buf[headerSize:], loc.storedAt)
		if err != nil {
			return err
		}
		if err := s.commitLocation(ref, nloc, &loc); err != nil {
			return err
		}
		s.st.compaction.Add(loc.recordLen())
		rep.Moved++
		rep.BytesMoved += loc.recordLen()
		return nil
	}()
	if corrupt && s.cfg.OnCorrupt != nil {
		s.cfg.OnCorrupt(ref)
	}
	return err
}
