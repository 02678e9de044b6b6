package raftmeta

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coffer-dev/coffer/internal/raftgroup"
	"github.com/hashicorp/raft"
)

// Shard is one metadata group's replica on this node: the Raft instance and
// its state machine. Commands go through the leader; reads are linearizable
// unless ReadOptions.Stale says otherwise.
type Shard struct {
	cfg  Config
	log  *slog.Logger
	fsm  *FSM
	raft *raft.Raft

	reads readBarrier

	closed atomic.Bool
	// inflight is held (shared) by reads while they use the DB, so Close
	// returns only when none is left: the caller may close the DB then.
	inflight sync.RWMutex
	stop     chan struct{}
	loops    sync.WaitGroup
	closeErr error
	once     sync.Once

	dummyOnce sync.Once
	dummy     string // a password hash verified for unknown users
}

// Open starts the group's replica. It checks the stores against each other
// first: a corrupt or missing store is a clear ErrCorruptStore, never a
// panic or a silent reset. A new group must then be bootstrapped once, on
// one replica, with Bootstrap.
func Open(cfg Config) (*Shard, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg.setDefaults()
	log := cfg.Logger.With("component", "raftmeta", "group", cfg.GroupID)
	fsm, err := newFSM(cfg.DB, cfg.GroupID, DedupWindow, log)
	if err != nil {
		return nil, fmt.Errorf("open group %d state: %w", cfg.GroupID, err)
	}
	restore, err := raftgroup.CheckStores(cfg.LogStore, cfg.StableStore, cfg.SnapshotStore, fsm.AppliedIndex(), snapshotIndex)
	if err != nil {
		return nil, fmt.Errorf("open group %d: %w: %v", cfg.GroupID, ErrCorruptStore, err)
	}
	rc, err := raftgroup.RaftConfig(cfg.LocalID, cfg.GroupID, cfg.timing().WithDefaults(defaultTiming()), restore, cfg.Logger)
	if err != nil {
		return nil, fmt.Errorf("%w: raft config: %v", ErrInvalidArgument, err)
	}
	s := &Shard{cfg: cfg, log: log, fsm: fsm, stop: make(chan struct{})}
	fsm.p.OnFail = func(error) { s.Close() }
	r, err := raft.NewRaft(rc, fsm, cfg.LogStore, cfg.StableStore, cfg.SnapshotStore, cfg.Transport)
	if err != nil {
		return nil, fmt.Errorf("open group %d: %w: start raft: %v", cfg.GroupID, ErrCorruptStore, err)
	}
	s.raft = r
	s.reads.s = s
	if cfg.PruneInterval > 0 {
		s.loops.Add(1)
		go s.pruneLoop()
	}
	return s, nil
}

// Bootstrap creates the group with the given voters. Call it once, on one
// replica of a new group; on a group that already has state it returns
// ErrExists.
func (s *Shard) Bootstrap(servers []raft.Server) error {
	err := s.raft.BootstrapCluster(raft.Configuration{Servers: servers}).Error()
	if errors.Is(err, raft.ErrCantBootstrap) {
		return fmt.Errorf("%w: group %d is already bootstrapped", ErrExists, s.cfg.GroupID)
	}
	return err
}

// Close stops the replica (not the stores, which the caller owns). It is
// safe to call more than once.
func (s *Shard) Close() error {
	s.once.Do(func() {
		s.closed.Store(true)
		close(s.stop)
		s.loops.Wait()
		s.closeErr = s.raft.Shutdown().Error()
		s.inflight.Lock() // wait for reads in flight
		s.inflight.Unlock()
	})
	return s.closeErr
}

// Raft exposes the Raft instance for membership changes and status.
func (s *Shard) Raft() *raft.Raft { return s.raft }

// FSM exposes the state machine (applied index, state hash).
func (s *Shard) FSM() *FSM { return s.fsm }

// IsLeader reports whether this replica is the group's leader now.
func (s *Shard) IsLeader() bool { return s.raft.State() == raft.Leader }

// Leader returns the leader's address and ID, empty if none is known.
func (s *Shard) Leader() (addr, id string) {
	a, i := s.raft.LeaderWithID()
	return string(a), string(i)
}

func (s *Shard) notLeader() error {
	a, i := s.Leader()
	return &NotLeaderError{Leader: a, LeaderID: i}
}

// WaitApplied blocks until the state machine has applied index, or ctx ends.
func (s *Shard) WaitApplied(ctx context.Context, index uint64) error {
	return s.fsm.p.WaitApplied(ctx, index, nil, nil)
}

// propose replicates cmd through Raft and returns its result. Errors:
// *NotLeaderError when this replica cannot propose (not applied; retry at
// the leader); ErrUnknownOutcome when Raft failed after the command may have
// been appended (retry with the same request ID); the command's own
// *OpError when the state machine refused it.
func (s *Shard) propose(ctx context.Context, cmd *command) (*result, error) {
	if s.closed.Load() {
		return nil, ErrClosed
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if s.raft.State() != raft.Leader {
		return nil, s.notLeader()
	}
	cmd.Time = s.cfg.Now().UnixNano()
	data, err := encodeCommand(cmd)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalidArgument, err)
	}
	resp, err := raftgroup.Apply(ctx, s.raft, data, s.cfg.ApplyTimeout)
	if errors.Is(err, raftgroup.ErrRefused) {
		return nil, s.notLeader() // refused before it was appended
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrUnknownOutcome, err)
	}
	res, ok := resp.(*result)
	if !ok || res == nil {
		return nil, fmt.Errorf("%w: no result from the state machine", ErrUnknownOutcome)
	}
	if res.Err != nil {
		return nil, res.Err
	}
	return res, nil
}

// checkRequestID validates a client request ID: 1 to 128 printable ASCII
// characters.
func checkRequestID(rid string) error {
	if rid == "" || len(rid) > 128 {
		return fmt.Errorf("%w: a request ID is 1 to 128 characters", ErrInvalidArgument)
	}
	for i := 0; i < len(rid); i++ {
		if rid[i] < 0x21 || rid[i] > 0x7e {
			return fmt.Errorf("%w: request ID has a byte 0x%02x outside printable ASCII", ErrInvalidArgument, rid[i])
		}
	}
	return nil
}

// readBarrier makes linearizable reads cheap: concurrent reads share one
// leadership check. A read waits for a check that starts after it arrived,
// so it sees every commit acknowledged before it began.
type readBarrier struct {
	s       *Shard
	mu      sync.Mutex
	next    *readRound // round that the next check will serve
	running bool
	// barrierTerm is the term in which this leader's state machine was
	// caught up with every entry of earlier terms (by a Raft barrier).
	barrierTerm atomic.Uint64
	rounds      atomic.Uint64 // leadership checks run
	// beforeCheck, if set (by tests, before any read), runs before each
	// leadership check.
	beforeCheck func()
}

type readRound struct {
	done chan struct{}
	err  error
}

// wait returns nil once a leadership check that began after the call
// succeeded.
func (b *readBarrier) wait(ctx context.Context) error {
	b.mu.Lock()
	if b.next == nil {
		b.next = &readRound{done: make(chan struct{})}
	}
	r := b.next
	if !b.running {
		b.running = true
		go b.run()
	}
	b.mu.Unlock()
	select {
	case <-r.done:
		return r.err
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (b *readBarrier) run() {
	for {
		b.mu.Lock()
		r := b.next
		b.next = nil
		if r == nil {
			b.running = false
			b.mu.Unlock()
			return
		}
		b.mu.Unlock()
		if b.beforeCheck != nil {
			b.beforeCheck()
		}
		b.rounds.Add(1)
		r.err = b.check()
		close(r.done)
	}
}

// check confirms this replica is the leader, and that its state machine has
// every entry committed in earlier terms. Entries of this term are applied
// before they are acknowledged, so then the local state is linearizable.
func (b *readBarrier) check() error {
	s := b.s
	if s.closed.Load() {
		return ErrClosed
	}
	term := s.raft.CurrentTerm()
	if s.raft.State() != raft.Leader {
		return s.notLeader()
	}
	if b.barrierTerm.Load() != term {
		if err := s.raft.Barrier(s.cfg.ApplyTimeout).Error(); err != nil {
			if errors.Is(err, raft.ErrNotLeader) || errors.Is(err, raft.ErrLeadershipLost) {
				return s.notLeader()
			}
			return fmt.Errorf("%w: read barrier: %v", ErrNotLeader, err)
		}
		b.barrierTerm.Store(term)
	}
	if err := s.raft.VerifyLeader().Error(); err != nil {
		return s.notLeader()
	}
	if s.raft.CurrentTerm() != term {
		return s.notLeader()
	}
	return nil
}

// LeadershipChecks counts the leadership checks linearizable reads have
// run on this replica; concurrent reads share one, so under load it grows
// much more slowly than the number of reads.
func (s *Shard) LeadershipChecks() uint64 { return s.reads.rounds.Load() }

// read runs fn on a consistent snapshot of the state, after the leadership
// check unless o.Stale.
func (s *Shard) read(ctx context.Context, o ReadOptions, fn func(v *view) error) error {
	if s.closed.Load() {
		return ErrClosed
	}
	if !o.Stale {
		if err := s.reads.wait(ctx); err != nil {
			return err
		}
	}
	return s.withDB(func() error {
		if err := s.fsm.Err(); err != nil {
			return fmt.Errorf("%w: %v", ErrCorruptStore, err)
		}
		snap := s.fsm.newSnapshot()
		defer snap.Close()
		return fn(&view{r: pebbleReader{snap}, k: s.fsm.k})
	})
}

// withDB runs fn, which reads the DB, unless the shard is closed; Close
// waits for it, so the caller may close the DB once Close returns.
func (s *Shard) withDB(fn func() error) error {
	s.inflight.RLock()
	defer s.inflight.RUnlock()
	if s.closed.Load() {
		return ErrClosed
	}
	return fn()
}

// pruneLoop applies the retention policy on the leader every PruneInterval.
func (s *Shard) pruneLoop() {
	defer s.loops.Done()
	t := time.NewTicker(s.cfg.PruneInterval)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
		}
		if !s.IsLeader() {
			continue
		}
		ctx, cancel := context.WithCancel(context.Background())
		go func() {
			select {
			case <-s.stop:
			case <-ctx.Done():
			}
			cancel()
		}()
		if _, err := s.Prune(ctx); err != nil && !errors.Is(err, context.Canceled) {
			s.log.Warn("retention prune stopped", "error", err)
		}
		cancel()
	}
}

// Prune applies the retention policy to the whole group now, in steps of
// PruneBatch nodes, and returns the totals.
func (s *Shard) Prune(ctx context.Context) (*PruneResult, error) {
	total := &PruneResult{}
	var cursor []byte
	for {
		res, err := s.propose(ctx, &command{Type: cmdPrune, Prune: &pruneCmd{
			KeepFor: int64(s.cfg.KeepFor), KeepLast: s.cfg.KeepLast, Cursor: cursor, Max: s.cfg.PruneBatch,
		}})
		if err != nil {
			return total, err
		}
		total.Revisions += res.Prune.Revisions
		total.Records += res.Prune.Records
		total.Tokens += res.Prune.Tokens
		total.Uploads += res.Prune.Uploads
		if res.Prune.Done {
			total.Done = true
			return total, nil
		}
		cursor = res.Prune.Next
	}
}

// StateHash returns a hash of the replica's whole state and the applied
// index it was taken at.
func (s *Shard) StateHash() (sum Sum, applied uint64, err error) {
	err = s.withDB(func() error {
		sum, applied, err = s.fsm.StateHash()
		return err
	})
	return sum, applied, err
}

// Snapshot asks Raft to take a snapshot now (and compact its log).
func (s *Shard) Snapshot() error { return s.raft.Snapshot().Error() }

var _ io.Closer = (*Shard)(nil)
