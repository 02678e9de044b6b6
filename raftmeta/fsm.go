package raftmeta

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"

	"github.com/cockroachdb/pebble/v2"
	"github.com/coffer-dev/coffer/internal/raftgroup"
	"github.com/hashicorp/raft"
)

// FSM is the replicated state machine of one metadata group. Its whole
// state lives in Pebble under the group's key prefix; nothing but the
// applied index and change notifications is held in memory.
//
// Each entry is applied in one Pebble batch that also records the entry's
// Raft index as the applied index, so after a restart entries at or below it
// are skipped and replay is idempotent. Batches are committed without fsync:
// the Raft log (fsynced) is the source of durability, and Snapshot syncs
// Pebble before a snapshot lets Raft compact the log (see DESIGN.md).
type FSM struct {
	db          *pebble.DB
	k           keys
	log         *slog.Logger
	dedupWindow uint64

	p raftgroup.Progress // applied index, failure, applied-index waiters

	restoreMu sync.RWMutex // held exclusively while Restore rewrites the group
	mu        sync.Mutex
	waiters   map[uint64]chan struct{} // namespace -> closed on its next commit
}

var _ raft.BatchingFSM = (*FSM)(nil)

// newFSM opens the group's state in db and reads its applied index.
func newFSM(db *pebble.DB, group uint64, dedupWindow uint64, log *slog.Logger) (*FSM, error) {
	f := &FSM{
		db:          db,
		k:           newKeys(group),
		log:         log,
		dedupWindow: dedupWindow,
		p:           raftgroup.Progress{Log: log},
		waiters:     make(map[uint64]chan struct{}),
	}
	v := f.dbView()
	if _, restoring, err := v.getU64(f.k.restoring()); err != nil {
		return nil, err
	} else if restoring {
		// A snapshot restore was cut off: the group's keys are a mix. Start
		// from nothing; Open makes Raft restore the latest snapshot.
		f.log.Warn("incomplete snapshot restore found; discarding the group's state")
		lo, hi := f.k.Bounds()
		if err := db.DeleteRange(lo, hi, pebble.Sync); err != nil {
			return nil, fmt.Errorf("%w: clear group: %v", errStore, err)
		}
	}
	idx, _, err := v.getU64(f.k.applied())
	if err != nil {
		return nil, err
	}
	if err := f.ensureRefIndex(); err != nil {
		return nil, err
	}
	f.p.SetApplied(idx)
	return f, nil
}

func (f *FSM) dbView() *view { return &view{r: pebbleReader{f.db}, k: f.k} }

// AppliedIndex is the Raft index of the last entry applied to the state.
func (f *FSM) AppliedIndex() uint64 { return f.p.Applied() }

// Skipped counts entries Raft handed to the state machine again (after a
// restart) that were skipped because they were already applied.
func (f *FSM) Skipped() uint64 { return f.p.Skipped() }

// Err returns the storage error that stopped the FSM, or nil. A stopped
// FSM applies nothing more: a restart replays the rest from the Raft log.
func (f *FSM) Err() error { return f.p.Err() }

// Apply applies one log entry (raft.FSM).
func (f *FSM) Apply(l *raft.Log) interface{} {
	return f.ApplyBatch([]*raft.Log{l})[0]
}

// ApplyBatch applies a batch of committed entries in order
// (raft.BatchingFSM), each in its own batch; entries already applied
// before a restart are skipped.
func (f *FSM) ApplyBatch(logs []*raft.Log) []interface{} {
	touched := make(map[uint64]struct{})
	out, _ := f.p.ApplyBatch(logs, func(l *raft.Log) (any, error) {
		if l.Type != raft.LogCommand {
			return (*result)(nil), f.writeApplied(l.Index)
		}
		return f.applyCommand(l, touched)
	}, func(msg string) any {
		// Committed, but not applied here: not a refusal.
		return &result{Err: opErr(CodeUnknownOutcome, "", msg)}
	})
	f.notify(touched)
	return out
}

func (f *FSM) writeApplied(index uint64) error {
	b := f.db.NewBatch()
	defer b.Close()
	if err := b.Set(f.k.applied(), u64(index), nil); err != nil {
		return err
	}
	if err := b.Commit(pebble.NoSync); err != nil {
		return fmt.Errorf("%w: commit: %v", errStore, err)
	}
	return nil
}

// applyCommand applies one command entry in its own batch. The returned
// error is a storage failure; a refused command is a result with Err set.
func (f *FSM) applyCommand(l *raft.Log, touched map[uint64]struct{}) (*result, error) {
	b := f.db.NewIndexedBatch()
	defer func() { b.Close() }()
	t := &tx{view: view{r: pebbleReader{b}, k: f.k}, b: b, index: l.Index}

	cmd, derr := decodeCommand(l.Data)
	var res *result
	var scope uint64
	if derr != nil {
		res = &result{Err: opErr(CodeInvalidArgument, "", derr.Error())}
	} else {
		t.now = cmd.Time
		scope = cmd.scope()
		if cmd.RequestID != "" {
			prev := new(result)
			ok, err := t.getJSON(f.k.dedup(scope, cmd.RequestID), prev)
			if err != nil {
				return nil, err
			}
			if ok {
				res = prev // a retry: answer with the first result, change nothing
				cmd = nil
			}
		}
		if cmd != nil {
			var err error
			res, err = t.safeApply(cmd)
			if err != nil {
				if errors.Is(err, errStore) {
					return nil, err
				}
				// Anything else (a corrupt record, say) refuses the
				// command deterministically on every replica.
				res = &result{Err: opErr(CodeOf(err), "", err.Error())}
			}
			if res.Err != nil {
				// Nothing of a refused command applies.
				b.Close()
				b = f.db.NewIndexedBatch()
				t.b, t.r = b, pebbleReader{b}
			} else if cmd.Type == cmdCommit {
				touched[scope] = struct{}{}
			}
			if cmd.RequestID != "" {
				if err := f.remember(t, scope, cmd.RequestID, res); err != nil {
					return nil, err
				}
			}
		}
	}
	if err := t.putU64(f.k.applied(), l.Index); err != nil {
		return nil, err
	}
	if err := b.Commit(pebble.NoSync); err != nil {
		return nil, fmt.Errorf("%w: commit: %v", errStore, err)
	}
	return res, nil
}

// safeApply applies cmd; a panic (a bug) refuses cmd (see
// raftgroup.Safely).
func (t *tx) safeApply(cmd *command) (*result, error) {
	return raftgroup.Safely(errInternal, func() (*result, error) { return t.apply(cmd) })
}

// DedupWindow is how many Raft entries a request ID's result is kept for.
// It shapes replicated state, so it is a constant, the same on every
// replica, not a per-node setting. Eviction is lazy (it happens when a later
// command with a request ID is applied), so an ID is remembered for at least
// this many entries.
const DedupWindow = 200000

// remember stores a request ID's result in the dedup window and evicts
// entries that fell out of it (older than dedupWindow Raft entries).
func (f *FSM) remember(t *tx, scope uint64, rid string, res *result) error {
	if err := t.putJSON(f.k.dedup(scope, rid), res); err != nil {
		return err
	}
	if err := t.b.Set(f.k.dedupQ(t.index, scope, rid), nil, nil); err != nil {
		return fmt.Errorf("%w: set: %v", errStore, err)
	}
	if t.index <= f.dedupWindow {
		return nil
	}
	c, err := t.counters()
	if err != nil {
		return err
	}
	bound := t.index - f.dedupWindow
	if c.DedupLow >= bound {
		return nil
	}
	lo := f.k.dedupQ(c.DedupLow, 0, "")
	hi := f.k.dedupQ(bound, 0, "")
	qlen := len(f.k.Key(tagDedupQ)) + 8
	err = t.scan(lo, hi, false, func(k, _ []byte) (bool, error) {
		rest := k[qlen:]
		ns := beU64(rest[:8])
		return true, t.del(f.k.dedup(ns, string(rest[8:])))
	})
	if err != nil {
		return err
	}
	if err := t.delRange(lo, hi); err != nil {
		return err
	}
	c.DedupLow = bound
	return t.putCounters(c)
}

// notify wakes the waiters of the namespaces a batch committed to, and the
// applied-index waiters.
func (f *FSM) notify(touched map[uint64]struct{}) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for ns := range touched {
		if ch, ok := f.waiters[ns]; ok {
			close(ch)
			delete(f.waiters, ns)
		}
	}
	f.p.Notify()
}

// notifyAll wakes every waiter (after a snapshot restore).
func (f *FSM) notifyAll() {
	f.mu.Lock()
	defer f.mu.Unlock()
	for ns, ch := range f.waiters {
		close(ch)
		delete(f.waiters, ns)
	}
	f.p.Notify()
}

// changed returns a channel closed at the next commit to namespace ns.
func (f *FSM) changed(ns uint64) <-chan struct{} {
	f.mu.Lock()
	defer f.mu.Unlock()
	ch, ok := f.waiters[ns]
	if !ok {
		ch = make(chan struct{})
		f.waiters[ns] = ch
	}
	return ch
}

// Snapshot captures the group's state for Raft (raft.FSM). It runs on the
// FSM goroutine, so the Pebble snapshot it takes is exactly the state at the
// applied index; Persist streams it later, concurrently with new applies.
func (f *FSM) Snapshot() (raft.FSMSnapshot, error) {
	// A stopped FSM lags the entries Raft believes applied: a snapshot now
	// would be labelled with an index its state does not reach.
	if err := f.Err(); err != nil {
		return nil, fmt.Errorf("state machine stopped: %w", err)
	}
	// The applies so far were committed without fsync. Raft may compact its
	// log once this snapshot is stored, so make them durable first.
	if err := f.db.LogData(nil, pebble.Sync); err != nil {
		return nil, fmt.Errorf("sync state before snapshot: %w", err)
	}
	return &fsmSnapshot{snap: f.newSnapshot(), k: f.k}, nil
}

// newSnapshot returns a Pebble snapshot, waiting while a restore rewrites
// the group, so no reader sees a half-restored state.
func (f *FSM) newSnapshot() *pebble.Snapshot {
	f.restoreMu.RLock()
	defer f.restoreMu.RUnlock()
	return f.db.NewSnapshot()
}

// Restore replaces the group's state with a snapshot's (raft.FSM).
func (f *FSM) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	f.restoreMu.Lock()
	idx, err := restoreSnapshot(f.db, f.k, rc)
	if err == nil {
		// A snapshot of state written before the block reference index
		// existed has none: build it before anything reads or applies.
		err = f.ensureRefIndex()
	}
	f.restoreMu.Unlock()
	if err != nil {
		// The group's keys are gone or half written, and the marker says
		// so on disk: stop here; the next start restores again.
		f.p.Fail(fmt.Errorf("snapshot restore: %w", err))
		return err
	}
	f.p.SetApplied(idx)
	f.notifyAll()
	return nil
}

// StateHash returns a SHA-256 over every key and value of the group, for
// comparing replicas: two replicas at the same applied index must agree.
func (f *FSM) StateHash() (Sum, uint64, error) {
	snap := f.newSnapshot()
	defer snap.Close()
	return stateHash(pebbleReader{snap}, f.k)
}
