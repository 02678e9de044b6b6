package localstore

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"math"
	"slices"

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
// CompactGarbageRatio dead (sealing the active segment first if it is): its live blocks are appended to the active
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
	// A mostly dead active segment is sealed first, so a store that stops
	// receiving writes after deletes still gets its space back.
	if a := s.active; a.size > 0 && float64(a.size-a.live) >= s.cfg.CompactGarbageRatio*float64(a.size) && s.failed == nil {
		if err := s.rollLocked(); err != nil {
			s.segMu.Unlock()
			s.ops.RUnlock()
			return rep, err
		}
	}
	type cand struct {
		id   uint32
		live int64
	}
	var cands []cand
	for id, seg := range s.segs {
		if s.compactable(seg) {
			cands = append(cands, cand{id, seg.live})
		}
	}
	s.segMu.Unlock()
	s.ops.RUnlock()
	// Least live first: dead segments go without copying anything, which
	// frees the room that moving the others needs on a full disk.
	slices.SortFunc(cands, func(a, b cand) int { return cmp.Compare(a.live, b.live) })
	var firstErr error
	for _, c := range cands {
		err := s.compactSegment(ctx, c.id, limit, &rep)
		if err == nil {
			continue
		}
		if ctx.Err() != nil || errors.Is(err, blockstore.ErrClosed) {
			return rep, err
		}
		if firstErr == nil {
			firstErr = err // e.g. no room to move this one: try the others
		}
	}
	return rep, firstErr
}

func (s *Store) compactSegment(ctx context.Context, id uint32, limit *rate.Limiter, rep *CompactReport) error {
	if err := s.enter(ctx); err != nil {
		return err
	}
	recs, err := s.segmentContents(id)
	s.ops.RUnlock()
	if err != nil {
		return err
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
	seg := s.segs[id]
	if seg == nil || seg.live != 0 || seg.writers > 0 || seg == s.active {
		s.segMu.Unlock()
		return nil
	}
	seg.removed = true
	delete(s.segs, id)
	rep.Segments++
	rep.BytesFreed += seg.size
	f := s.reapLocked(seg)
	s.segMu.Unlock()
	s.unlink(seg, f)
	return nil
}

// segRecord is one record the index places in a segment.
type segRecord struct {
	off int64
	ref blockstore.Ref
}

// segmentContents lists the records the index places in segment id, in
// offset order.
func (s *Store) segmentContents(id uint32) ([]segRecord, error) {
	lo, hi := segKey(id, 0), segKey(id, math.MaxInt64)
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: hi})
	if err != nil {
		return nil, fmt.Errorf("localstore: index: %w", err)
	}
	var recs []segRecord
	for ok := it.First(); ok; ok = it.Next() {
		_, off, valid := decodeSegKey(it.Key())
		if valid && len(it.Value()) == len(blockstore.Ref{}) {
			recs = append(recs, segRecord{off: off, ref: blockstore.Ref(it.Value())})
		}
	}
	if err := it.Close(); err != nil {
		return nil, fmt.Errorf("localstore: index: %w", err)
	}
	return recs, nil
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
		buf, rerr := s.readRecord(ref, loc)
		if rerr == errMoved {
			return nil
		}
		if recordProblem(buf, rerr, ref, loc.length) != "" {
			if err := s.unindex(ref, loc); err != nil {
				return err
			}
			s.st.corrupt.Add(1)
			corrupt = true
			s.log.Warn("corrupt block copy dropped during compaction", "ref", ref.String(), "segment", id, "offset", off)
			return nil
		}
		nloc, nseg, err := s.writeRecord(ref, buf[headerSize:], loc.storedAt)
		if err != nil {
			return err
		}
		err = s.commitLocation(ref, nloc, &loc)
		s.unpin(nseg)
		if err != nil {
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
