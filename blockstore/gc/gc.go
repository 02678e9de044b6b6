package gc

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"golang.org/x/time/rate"

	"github.com/coffer-dev/coffer/blockstore"
)

// Store is the part of a block store the collector uses; a
// blockstore.Store satisfies it. The methods keep the blockstore.Store
// contract: in particular Delete(ctx, ref, storedBefore) removes the block
// only if its StoredAt is before storedBefore, checked atomically with
// Put's refresh of StoredAt.
type Store interface {
	// Enumerate calls fn for every stored block in Ref order, from the
	// first Ref >= from, until fn returns an error (blockstore.ErrStop
	// ends the walk with nil) or ctx is done.
	Enumerate(ctx context.Context, from blockstore.Ref, fn func(blockstore.BlockInfo) error) error
	// Delete removes the block if, and only if, its StoredAt is before
	// storedBefore, and reports whether it did.
	Delete(ctx context.Context, ref blockstore.Ref, storedBefore time.Time) (bool, error)
}

var _ Store = blockstore.Store(nil)

// deleteBatch is how many candidates a run collects from one Enumerate
// call before it deletes them and resumes the walk after the last one. It
// keeps a rate-limited run from holding a store iterator or an RPC stream
// open for hours.
const deleteBatch = 4096

// Report is what a run did. Scanned = Live + Young + the candidates (old
// and unmarked): Deleted + Raced + Errors in a real run, WouldDelete in a
// dry run (fewer if the run stopped early).
type Report struct {
	Scanned int64 // blocks the walk saw
	Live    int64 // kept: in the live set
	Young   int64 // kept: not in the live set but StoredAt >= Cutoff

	Deleted    int64 // candidates deleted (real run)
	BytesFreed int64 // their total size

	WouldDelete    int64 // candidates a real run would try to delete (dry run)
	BytesWouldFree int64 // their total size

	// Raced counts candidates the store refused to delete because their
	// StoredAt was no longer before the cutoff: they were re-put
	// (refreshed) after the walk saw them, typically by an upload that
	// dedups against them. A block deleted by someone else in between also
	// lands here. They are kept.
	Raced int64
	// Errors counts candidates whose Delete failed with an error other
	// than the run's context ending; the run logs each, goes on, and keeps
	// the first in FirstErr. They are kept (until a later run).
	Errors   int64
	FirstErr error

	// Truncated is set when the run stopped because it reached
	// Config.MaxDeletes, so the store may still hold garbage after the
	// last ref it walked.
	Truncated bool
	DryRun    bool
	// Cutoff is the time blocks must have been stored before to be
	// deleted; fixed for the whole run.
	Cutoff time.Time
	// Duration is how long the run took (wall clock, not Config.Now).
	Duration time.Duration
}

// Cutoff validates cfg and returns Now() - Grace: the cutoff to pass to
// RunAt. Take it BEFORE starting to build the live set (see the package
// documentation). An invalid cfg fails with blockstore.ErrInvalidConfig.
func Cutoff(cfg Config) (time.Time, error) {
	c, err := cfg.withDefaults()
	if err != nil {
		return time.Time{}, err
	}
	return c.Now().Add(-c.Grace), nil
}

// Run sweeps store with the cutoff Now() - Grace, taken when it starts,
// deleting every block that is neither in live nor stored (or re-put) at
// or after the cutoff.
//
// Because the cutoff is taken here, after the live set was built, Run is
// safe only if the live set's metadata snapshot is recent: no older, when
// Run is called, than Grace minus the commit window D (the longest time
// between the Put of a block and the commit of a revision that names it;
// see the package documentation). For example, with the default 24 h
// grace and uploads that commit within 12 h, the live set may be at most
// 12 h old. Prefer Cutoff and RunAt, whose safety does not depend on how
// old the live set is.
//
// A Delete error other than ctx ending is logged and counted
// (Report.Errors, Report.FirstErr) and the walk goes on; the run then
// returns a nil error. If ctx ends, the walk itself fails, or the store
// is closed (blockstore.ErrClosed), the run stops and returns what it did
// so far with the error. A nil store or live set
// is blockstore.ErrInvalidArgument; an invalid cfg is
// blockstore.ErrInvalidConfig.
func Run(ctx context.Context, store Store, live LiveSet, cfg Config) (Report, error) {
	c, err := cfg.withDefaults()
	if err != nil {
		return Report{}, err
	}
	return run(ctx, store, live, c.Now().Add(-c.Grace), c)
}

// RunAt is Run with a cutoff the caller took with Cutoff before it started
// building the live set: then the run is safe whatever time the live set
// took to build, as long as Grace is at least the commit window (see the
// package documentation). cfg must be the Config passed to Cutoff (its
// Grace and Now are used to check the cutoff). A zero cutoff, or one later
// than Now() - Grace (which would protect recent blocks for less than the
// grace period), is refused with blockstore.ErrInvalidArgument.
func RunAt(ctx context.Context, store Store, live LiveSet, cutoff time.Time, cfg Config) (Report, error) {
	c, err := cfg.withDefaults()
	if err != nil {
		return Report{}, err
	}
	if cutoff.IsZero() {
		return Report{}, fmt.Errorf("%w: gc: zero cutoff", blockstore.ErrInvalidArgument)
	}
	if latest := c.Now().Add(-c.Grace); cutoff.After(latest) {
		return Report{}, fmt.Errorf("%w: gc: cutoff %s is after Now() - Grace = %s", blockstore.ErrInvalidArgument,
			cutoff.Format(time.RFC3339Nano), latest.Format(time.RFC3339Nano))
	}
	return run(ctx, store, live, cutoff, c)
}

// run is Run and RunAt after validation; c has its defaults.
func run(ctx context.Context, store Store, live LiveSet, cutoff time.Time, c Config) (rep Report, err error) {
	if store == nil {
		return Report{}, fmt.Errorf("%w: gc: nil store", blockstore.ErrInvalidArgument)
	}
	if live == nil {
		return Report{}, fmt.Errorf("%w: gc: nil live set", blockstore.ErrInvalidArgument)
	}
	start := time.Now()
	rep = Report{DryRun: c.DryRun, Cutoff: cutoff}
	defer func() { rep.Duration = time.Since(start) }()
	if err := ctx.Err(); err != nil {
		return rep, fmt.Errorf("gc: %w", err)
	}
	var lim *rate.Limiter
	if c.DeleteRate > 0 && !c.DryRun {
		// A burst of 10 ms worth of deletes (at least one) keeps fast
		// rates from arming a timer per delete.
		lim = rate.NewLimiter(rate.Limit(c.DeleteRate), max(1, int(c.DeleteRate/100)))
	}
	s := sweep{store: store, live: live, cutoff: cutoff, cfg: c, lim: lim, rep: &rep}
	var from blockstore.Ref
	for {
		next, more, err := s.walk(ctx, from)
		if err != nil {
			return rep, err
		}
		if err := s.deleteCandidates(ctx); err != nil {
			return rep, err
		}
		if c.MaxDeletes > 0 && s.done() >= int64(c.MaxDeletes) {
			rep.Truncated = true
			break
		}
		if !more {
			break
		}
		from = next
	}
	c.Logger.LogAttrs(ctx, slog.LevelInfo, "gc run",
		slog.Bool("dry_run", rep.DryRun), slog.Time("cutoff", rep.Cutoff),
		slog.Int64("scanned", rep.Scanned), slog.Int64("live", rep.Live), slog.Int64("young", rep.Young),
		slog.Int64("deleted", rep.Deleted), slog.Int64("bytes_freed", rep.BytesFreed),
		slog.Int64("would_delete", rep.WouldDelete), slog.Int64("bytes_would_free", rep.BytesWouldFree),
		slog.Int64("raced", rep.Raced), slog.Int64("errors", rep.Errors), slog.Bool("truncated", rep.Truncated),
		slog.Duration("duration", time.Since(start)))
	return rep, nil
}

// sweep is one run's state.
type sweep struct {
	store  Store
	live   LiveSet
	cutoff time.Time
	cfg    Config
	lim    *rate.Limiter
	rep    *Report
	batch  []blockstore.BlockInfo // candidates of the current walk
}

// done returns the candidates the run has deleted (or, dry, would delete).
func (s *sweep) done() int64 { return s.rep.Deleted + s.rep.WouldDelete }

// walk enumerates from from, classifying blocks, until it has collected a
// full batch of candidates (more is then true and next is where to resume)
// or the store is exhausted. A dry run counts candidates as it goes and
// walks the whole store in one call.
func (s *sweep) walk(ctx context.Context, from blockstore.Ref) (next blockstore.Ref, more bool, err error) {
	limit := deleteBatch
	if s.cfg.MaxDeletes > 0 {
		limit = min(limit, int(int64(s.cfg.MaxDeletes)-s.done()))
	}
	s.batch = s.batch[:0]
	err = s.store.Enumerate(ctx, from, func(bi blockstore.BlockInfo) error {
		s.rep.Scanned++
		switch {
		case s.live.Contains(bi.Ref):
			s.rep.Live++
			return nil
		case !bi.StoredAt.Before(s.cutoff):
			s.rep.Young++
			return nil
		}
		if s.cfg.DryRun { // count in place: nothing to delete, no batch
			s.rep.WouldDelete++
			s.rep.BytesWouldFree += bi.Size
			if s.cfg.MaxDeletes > 0 && s.done() >= int64(s.cfg.MaxDeletes) {
				return blockstore.ErrStop
			}
			return nil
		}
		s.batch = append(s.batch, bi)
		if len(s.batch) < limit {
			return nil
		}
		next, more = bi.Ref.Next()
		return blockstore.ErrStop
	})
	if err != nil && !errors.Is(err, blockstore.ErrStop) {
		if cerr := ctx.Err(); cerr != nil {
			return next, false, fmt.Errorf("gc: %w", cerr)
		}
		return next, false, fmt.Errorf("gc: enumerate: %w", err)
	}
	return next, more, nil
}

// deleteCandidates deletes the collected candidates.
func (s *sweep) deleteCandidates(ctx context.Context) error {
	for _, bi := range s.batch {
		if s.lim != nil {
			if err := wait(ctx, s.lim); err != nil {
				return fmt.Errorf("gc: %w", err)
			}
		}
		ok, err := s.store.Delete(ctx, bi.Ref, s.cutoff)
		switch {
		case err != nil:
			if cerr := ctx.Err(); cerr != nil {
				return fmt.Errorf("gc: %w", cerr)
			}
			if errors.Is(err, blockstore.ErrClosed) {
				return fmt.Errorf("gc: delete %s: %w", bi.Ref.Short(), err)
			}
			s.rep.Errors++
			if s.rep.FirstErr == nil {
				s.rep.FirstErr = fmt.Errorf("gc: delete %s: %w", bi.Ref.Short(), err)
			}
			s.cfg.Logger.LogAttrs(ctx, slog.LevelWarn, "gc delete failed; block kept",
				slog.String("ref", bi.Ref.String()), slog.Any("err", err))
		case ok:
			s.rep.Deleted++
			s.rep.BytesFreed += bi.Size
		default:
			s.rep.Raced++
			s.cfg.Logger.LogAttrs(ctx, slog.LevelDebug, "gc delete refused: block re-put since the walk saw it",
				slog.String("ref", bi.Ref.String()))
		}
	}
	s.batch = s.batch[:0]
	return nil
}

// wait waits for a token of lim, or until ctx ends (which gives the token
// back and returns ctx's error).
func wait(ctx context.Context, lim *rate.Limiter) error {
	r := lim.Reserve()
	if !r.OK() { // cannot happen with burst >= 1; wait for ctx rather than run unlimited
		<-ctx.Done()
		return ctx.Err()
	}
	d := r.Delay()
	if d <= 0 {
		return nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		r.Cancel()
		return ctx.Err()
	}
}
