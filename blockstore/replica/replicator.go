package replica

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"sync"
	"sync/atomic"

	"golang.org/x/time/rate"

	"github.com/coffer-dev/coffer/blockstore"
)

// Replicator reads and writes blocks across the block nodes and, on a block
// node, keeps the local store's blocks at R healthy replicas. Its methods
// are safe for concurrent use. Use New, then Start; Close stops it.
type Replicator struct {
	cfg Config
	log *slog.Logger

	repairLim *rate.Limiter
	scrubLim  *rate.Limiter

	retry   *retryQueue
	corrupt *corruptQueue
	budget  *byteBudget // data held by background writes and read repairs

	repairMu sync.Mutex // one RepairNow at a time
	scrubMu  sync.Mutex // one ScrubNow at a time

	flightMu sync.Mutex
	flights  map[blockstore.Ref]*flight // RepairBlock calls in progress

	mu        sync.Mutex
	closed    bool
	started   bool
	base      context.Context // canceled by Close; parent of background work
	cancel    context.CancelFunc
	wg        sync.WaitGroup // background goroutines and calls in flight
	stopLoops context.CancelFunc
	changes   <-chan struct{} // Membership.Changes, subscribed in Start

	c counters
}

type counters struct {
	puts, quorumFailures, sloppyWrites, fillsOK, fillsFailed atomic.Int64
	retriesOK, retriesFailed                                 atomic.Int64
	gets, getFailures, fallbacks, readRepairs                atomic.Int64
	repairsPushed, bytesPushed, handoffs                     atomic.Int64
	scrubbed, corruptFound, repaired                         atomic.Int64
	corruptDropped                                           atomic.Int64
	backgroundSkipped, readRepairsSkipped                    atomic.Int64
}

// Stats are a Replicator's counters since New.
type Stats struct {
	Puts           int64 // Put calls that verified and were attempted
	QuorumFailures int64 // Puts that failed to reach W acknowledgements
	SloppyWrites   int64 // copies written to a node outside the block's R placement nodes
	FillsOK        int64 // writes that succeeded after their Put had returned
	FillsFailed    int64 // writes that failed after their Put had returned (queued for retry)
	RetryQueueLen  int64 // missing copies waiting in the retry queue
	RetryDropped   int64 // retry entries dropped because the queue was full
	RetriesOK      int64 // retry entries resolved (copy written or found present)
	RetriesFailed  int64 // retry attempts that failed and were rescheduled
	Gets           int64 // Get calls
	GetFailures    int64 // Get calls that returned an error
	Fallbacks      int64 // Gets served by a node other than the first in placement order
	ReadRepairs    int64 // copies rewritten on a placement node after a read found it bad
	RepairsPushed  int64 // copies pushed by the repairer
	BytesPushed    int64 // their bytes
	Handoffs       int64 // local copies deleted after R placement nodes confirmed theirs
	Scrubbed       int64 // local blocks read by the scrubber
	CorruptFound   int64 // local copies the scrubber found corrupt
	Repaired       int64 // local copies restored from other replicas
	CorruptDropped int64 // OnCorrupt repairs dropped because their queue was full

	BackgroundBytesHeld int64 // block data held now by background writes and read repairs
	BackgroundSkipped   int64 // writes cancelled or not run after their Put returned, for lack of BackgroundBytes (queued for retry)
	ReadRepairsSkipped  int64 // read repairs not run for lack of BackgroundBytes (queued for retry)
}

// New returns a Replicator. It does no I/O; call Start to run the
// background work (retry queue, repairer, scrubber, OnCorrupt repairs).
func New(cfg Config) (*Replicator, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	base, cancel := context.WithCancel(context.Background())
	r := &Replicator{
		cfg:       cfg,
		log:       cfg.Logger.With("component", "replica"),
		repairLim: newLimiter(cfg.RepairRate),
		scrubLim:  newLimiter(cfg.ScrubRate),
		retry:     newRetryQueue(cfg.RetryQueueSize),
		corrupt:   newCorruptQueue(corruptQueueSize),
		budget:    newByteBudget(cfg.BackgroundBytes),
		flights:   make(map[blockstore.Ref]*flight),
		base:      base,
		cancel:    cancel,
	}
	if cfg.Self != "" {
		r.log = r.log.With("node", string(cfg.Self))
	}
	return r, nil
}

func newLimiter(bps int64) *rate.Limiter {
	if bps < 0 {
		return rate.NewLimiter(rate.Inf, math.MaxInt)
	}
	return rate.NewLimiter(rate.Limit(bps), int(min(bps, math.MaxInt32)))
}

// waitBytes waits until lim allows n bytes, in steps of at most its burst.
func waitBytes(ctx context.Context, lim *rate.Limiter, n int64) error {
	for n > 0 {
		k := min(n, int64(lim.Burst()))
		if err := lim.WaitN(ctx, int(k)); err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return fmt.Errorf("replica: rate limit: %v", err)
		}
		n -= k
	}
	return nil
}

// Start runs the background work until ctx is done or Close is called: the
// retry queue, the OnCorrupt repairs and, on a block node (Local set), the
// repairer (after each membership change, debounced, and every
// RepairInterval) and the scrubber (every ScrubInterval). Calling it again
// does nothing.
func (r *Replicator) Start(ctx context.Context) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed || r.started {
		return
	}
	r.started = true
	lctx, cancel := context.WithCancel(ctx)
	r.stopLoops = cancel
	loops := []func(context.Context){r.retryLoop}
	if r.cfg.Local != nil {
		if r.cfg.RepairDebounce >= 0 {
			r.changes = r.cfg.Membership.Changes()
		}
		loops = append(loops, r.corruptLoop, r.repairLoop, r.scrubLoop)
	}
	for _, loop := range loops {
		r.wg.Add(1)
		go func() {
			defer r.wg.Done()
			loop(lctx)
		}()
	}
}

// Close stops the background work, cancels the writes still running
// behind returned Puts (the repairers of the nodes that hold the block
// complete them later) and the RepairNow, ScrubNow and RepairBlock calls in
// progress (they return ErrClosed), and waits for all of it. Calls after
// Close fail with ErrClosed. It does not close Local.
func (r *Replicator) Close() error {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return nil
	}
	r.closed = true
	r.cancel()
	if r.stopLoops != nil {
		r.stopLoops()
	}
	r.mu.Unlock()
	r.wg.Wait()
	return nil
}

// enter registers a call or goroutine that Close must wait for; it fails
// after Close.
func (r *Replicator) enter() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return false
	}
	r.wg.Add(1)
	return true
}

func (r *Replicator) leave() { r.wg.Done() }

// goBackground runs fn in a goroutine that Close waits for and cancels,
// and reports whether it did: after Close it does nothing.
func (r *Replicator) goBackground(fn func(ctx context.Context)) bool {
	if !r.enter() {
		return false
	}
	go func() {
		defer r.leave()
		fn(r.base)
	}()
	return true
}

// bind returns a ctx for a call that Close waits for (RepairNow, ScrubNow,
// RepairBlock): it ends with the caller's ctx, and also when the
// Replicator closes, so that Close never waits on a caller's ctx.
func (r *Replicator) bind(ctx context.Context) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(ctx)
	stop := context.AfterFunc(r.base, cancel)
	return ctx, func() {
		stop()
		cancel()
	}
}

// beginLocalWalk admits a manual walk of the local store (RepairNow,
// ScrubNow): it needs Local, holds mu (one walk of each kind at a time) and
// returns a ctx that Close also cancels. end releases it all.
func (r *Replicator) beginLocalWalk(ctx context.Context, mu *sync.Mutex) (context.Context, func(), error) {
	if r.cfg.Local == nil {
		return nil, nil, errNoLocal
	}
	if !r.enter() {
		return nil, nil, errClosed
	}
	ctx, cancel := r.bind(ctx)
	mu.Lock()
	return ctx, func() {
		mu.Unlock()
		cancel()
		r.leave()
	}, nil
}

// callErr is the error of a call that ran on a ctx from bind: ErrClosed if
// Close cut it short while the caller's own ctx was live, else err.
func (r *Replicator) callErr(caller context.Context, err error) error {
	if err != nil && caller.Err() == nil && r.base.Err() != nil {
		return errClosed
	}
	return err
}

var errClosed = fmt.Errorf("%w: replica: replicator closed", blockstore.ErrClosed)

// Stats returns the counters.
func (r *Replicator) Stats() Stats {
	qlen, qdropped := r.retry.stats()
	c := &r.c
	return Stats{
		Puts:           c.puts.Load(),
		QuorumFailures: c.quorumFailures.Load(),
		SloppyWrites:   c.sloppyWrites.Load(),
		FillsOK:        c.fillsOK.Load(),
		FillsFailed:    c.fillsFailed.Load(),
		RetryQueueLen:  qlen,
		RetryDropped:   qdropped,
		RetriesOK:      c.retriesOK.Load(),
		RetriesFailed:  c.retriesFailed.Load(),
		Gets:           c.gets.Load(),
		GetFailures:    c.getFailures.Load(),
		Fallbacks:      c.fallbacks.Load(),
		ReadRepairs:    c.readRepairs.Load(),
		RepairsPushed:  c.repairsPushed.Load(),
		BytesPushed:    c.bytesPushed.Load(),
		Handoffs:       c.handoffs.Load(),
		Scrubbed:       c.scrubbed.Load(),
		CorruptFound:   c.corruptFound.Load(),
		Repaired:       c.repaired.Load(),
		CorruptDropped: c.corruptDropped.Load(),

		BackgroundBytesHeld: r.budget.inUse(),
		BackgroundSkipped:   c.backgroundSkipped.Load(),
		ReadRepairsSkipped:  c.readRepairsSkipped.Load(),
	}
}

// peer returns the Peer of n: Local for Self, else the Dialer's.
func (r *Replicator) peer(ctx context.Context, n Node) (Peer, error) {
	if n.ID == r.cfg.Self && r.cfg.Local != nil {
		return r.cfg.Local, nil
	}
	p, err := r.cfg.Dialer.Peer(ctx, n)
	if err != nil {
		return nil, fmt.Errorf("dial %s: %w", n.ID, err)
	}
	return p, nil
}

// isRefusal reports whether err is a node refusing the block itself (the
// writer's fault), as opposed to the node failing. Only ErrTooLarge is: the
// bytes a Replicator sends are verified (by Put, or on every read), so a
// node that answers ErrHashMismatch has failed (its memory, its disk path
// or the network), and another node may well take the block.
func isRefusal(err error) bool {
	return errors.Is(err, blockstore.ErrTooLarge)
}

func nodeIndex(nodes []Node, id NodeID) int {
	for i, n := range nodes {
		if n.ID == id {
			return i
		}
	}
	return -1
}
