package sysgroup

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/coffer-dev/coffer/internal/raftgroup"
	"github.com/hashicorp/raft"
)

// fsm is the group's replicated state machine. Its state lives in Pebble
// under the group's prefix; only the applied index and counters are held in
// memory.
//
// Each entry is applied in one Pebble batch, committed with fsync, that also
// records the entry's index as the applied index: after a restart entries at
// or below it are skipped, so replay never applies anything twice.
type fsm struct {
	db         *pebble.DB
	k          keys
	log        *slog.Logger
	dedupLimit uint64

	p        raftgroup.Progress // applied index, failure, applied-index waiters
	executed atomic.Uint64      // commands executed (not skipped, not deduplicated)
}

var _ raft.BatchingFSM = (*fsm)(nil)

// newFSM opens the group's state in db and reads its applied index.
func newFSM(db *pebble.DB, group uint64, dedupLimit int, log *slog.Logger) (*fsm, error) {
	f := &fsm{
		db:         db,
		k:          newKeys(group),
		log:        log,
		dedupLimit: uint64(dedupLimit),
		p:          raftgroup.Progress{Log: log},
	}
	idx, err := getU64(db, f.k.applied())
	if err != nil {
		return nil, err
	}
	f.p.SetApplied(idx)
	return f, nil
}

// Apply applies one committed entry (raft.FSM).
func (f *fsm) Apply(l *raft.Log) interface{} {
	return f.ApplyBatch([]*raft.Log{l})[0]
}

// ApplyBatch applies committed entries in order (raft.BatchingFSM), each
// in its own batch; entries already applied before a restart are skipped.
func (f *fsm) ApplyBatch(logs []*raft.Log) []interface{} {
	out, moved := f.p.ApplyBatch(logs, func(l *raft.Log) (any, error) {
		if l.Type != raft.LogCommand {
			return nil, f.writeApplied(l.Index)
		}
		return f.applyCommand(l)
	}, func(msg string) any {
		// Committed, but not applied here: not a refusal.
		return &result{Code: codeUnknownOutcome, Msg: msg}
	})
	if moved {
		f.p.Notify()
	}
	return out
}

func (f *fsm) writeApplied(index uint64) error {
	b := f.db.NewBatch()
	defer b.Close()
	if err := b.Set(f.k.applied(), u64(index), nil); err != nil {
		return fmt.Errorf("%w: set: %v", errStore, err)
	}
	if err := b.Commit(pebble.Sync); err != nil {
		return fmt.Errorf("%w: commit: %v", errStore, err)
	}
	return nil
}

// tx is one entry's batch: reads see its own writes.
type tx struct {
	b     *pebble.Batch
	k     keys
	index uint64
	now   time.Time
}

func (t *tx) set(key, val []byte) error {
	if err := t.b.Set(key, val, nil); err != nil {
		return fmt.Errorf("%w: set: %v", errStore, err)
	}
	return nil
}

func (t *tx) del(key []byte) error {
	if err := t.b.Delete(key, nil); err != nil {
		return fmt.Errorf("%w: delete: %v", errStore, err)
	}
	return nil
}

func (t *tx) putJSON(key []byte, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("%w: encode: %v", errStore, err)
	}
	return t.set(key, b)
}

// applyCommand applies one command entry. The returned error is a storage
// failure; a refused command is a result with Code set.
func (f *fsm) applyCommand(l *raft.Log) (*result, error) {
	b := f.db.NewIndexedBatch()
	defer func() { b.Close() }()
	t := &tx{b: b, k: f.k, index: l.Index}

	cmd, derr := decodeCommand(l.Data)
	var res *result
	if derr != nil {
		res = &result{Code: codeInvalidArgument, Msg: derr.Error()}
	} else {
		t.now = time.Unix(0, cmd.Time).UTC()
		if cmd.RequestID != "" {
			prev := new(result)
			ok, err := getJSON(b, f.k.dedup(cmd.RequestID), prev)
			if err != nil && errors.Is(err, errStore) {
				return nil, err
			}
			switch {
			case err != nil:
				res = refusal(cmd.Type, err) // unreadable dedup record
				cmd = nil
			case ok && prev.Cmd != cmd.Type:
				res = refusal(cmd.Type, fmt.Errorf("%w: request ID %q was used for another command", ErrInvalidArgument, cmd.RequestID))
				cmd = nil
			case ok:
				res = prev // a retry: the first result, and no change
				cmd = nil
			}
		}
		if cmd != nil {
			f.executed.Add(1)
			var err error
			res, err = t.safeApply(cmd)
			if err != nil {
				if errors.Is(err, errStore) {
					return nil, err
				}
				res = refusal(cmd.Type, err)
			}
			if res == nil {
				res = &result{}
			}
			res.Cmd = cmd.Type
			if res.Code != codeOK {
				// Nothing of a refused command applies.
				b.Close()
				b = f.db.NewIndexedBatch()
				t.b = b
			}
			if cmd.RequestID != "" {
				if err := f.remember(t, cmd.RequestID, res); err != nil {
					return nil, err
				}
			}
		}
	}
	if err := t.set(f.k.applied(), u64(l.Index)); err != nil {
		return nil, err
	}
	if err := b.Commit(pebble.Sync); err != nil {
		return nil, fmt.Errorf("%w: commit: %v", errStore, err)
	}
	return res, nil
}

// safeApply applies cmd; a panic (a bug) refuses cmd (see
// raftgroup.Safely).
func (t *tx) safeApply(cmd *command) (*result, error) {
	return raftgroup.Safely(ErrCorruptStore, func() (*result, error) { return t.apply(cmd) })
}

// apply executes one command. Refusals are errors wrapping a sentinel
// (other than errStore); the caller turns them into results.
func (t *tx) apply(cmd *command) (*result, error) {
	switch cmd.Type {
	case cmdInit:
		if cmd.Init == nil {
			return nil, fmt.Errorf("%w: init without an identity", ErrInvalidArgument)
		}
		return t.init(*cmd.Init)
	case cmdSetNodeState:
		if cmd.Node == nil {
			return nil, fmt.Errorf("%w: node state without a node", ErrInvalidArgument)
		}
		return t.setNodeState(cmd.Node.Name, cmd.Node.State)
	case cmdSetSetting:
		if cmd.Setting == nil {
			return nil, fmt.Errorf("%w: set setting without a setting", ErrInvalidArgument)
		}
		return t.setSetting(cmd.Setting.Key, cmd.Setting.Value)
	case cmdMarkAdminCreated:
		return t.markAdminCreated()
	}
	return nil, fmt.Errorf("%w: unknown command type %d", ErrInvalidArgument, cmd.Type)
}

func (t *tx) init(in Info) (*result, error) {
	if err := checkInfo(&in); err != nil {
		return nil, err
	}
	cur := new(Info)
	ok, err := getJSON(t.b, t.k.info(), cur)
	if err != nil {
		return nil, err
	}
	if ok {
		if cur.ClusterID != in.ClusterID {
			return nil, fmt.Errorf("%w: the cluster is already initialised as %q", ErrExists, cur.ClusterID)
		}
		return &result{Info: cur}, nil
	}
	if in.CreatedAt.IsZero() {
		in.CreatedAt = t.now
	}
	in.CreatedAt = in.CreatedAt.UTC()
	if err := t.putJSON(t.k.info(), &in); err != nil {
		return nil, err
	}
	// Answer with the stored form, as a retry or a read would see it.
	stored := new(Info)
	if _, err := getJSON(t.b, t.k.info(), stored); err != nil {
		return nil, err
	}
	return &result{Info: stored}, nil
}

func (t *tx) setNodeState(name string, st NodeState) (*result, error) {
	if err := checkName(name); err != nil {
		return nil, err
	}
	cur := new(NodeRecord)
	ok, err := getJSON(t.b, t.k.node(name), cur)
	if err != nil {
		return nil, err
	}
	var from NodeState
	if ok {
		from = cur.State
	}
	if err := checkTransition(from, st); err != nil {
		return nil, fmt.Errorf("node %q: %w", name, err)
	}
	if ok && from == st {
		return &result{Node: cur}, nil
	}
	rec := &NodeRecord{Name: name, State: st, Since: t.now}
	if err := t.putJSON(t.k.node(name), rec); err != nil {
		return nil, err
	}
	return &result{Node: rec}, nil
}

func (t *tx) setSetting(key, value string) (*result, error) {
	if err := checkSetting(key, value); err != nil {
		return nil, err
	}
	if value == "" {
		return &result{}, t.del(t.k.setting(key))
	}
	_, exists, err := get(t.b, t.k.setting(key))
	if err != nil {
		return nil, err
	}
	if !exists {
		n := 0
		lo, hi := t.k.TagBounds(tagSetting)
		if err := scan(t.b, lo, hi, func(_, _ []byte) (bool, error) { n++; return n < MaxSettings, nil }); err != nil {
			return nil, err
		}
		if n >= MaxSettings {
			return nil, fmt.Errorf("%w: there are already %d settings, the most allowed", ErrInvalidArgument, MaxSettings)
		}
	}
	return &result{}, t.set(t.k.setting(key), []byte(value))
}

func (t *tx) markAdminCreated() (*result, error) {
	cur := new(Info)
	ok, err := getJSON(t.b, t.k.info(), cur)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, ErrNotInitialised
	}
	if !cur.AdminCreated {
		cur.AdminCreated = true
		if err := t.putJSON(t.k.info(), cur); err != nil {
			return nil, err
		}
	}
	return &result{}, nil
}

// remember stores a request ID's first result and evicts the oldest records
// beyond the dedup limit. The limit and the order (by Raft index) are part
// of the replicated state, so every replica evicts the same IDs.
func (f *fsm) remember(t *tx, rid string, res *result) error {
	if err := t.putJSON(f.k.dedup(rid), res); err != nil {
		return err
	}
	if err := t.set(f.k.dedupQ(t.index, rid), nil); err != nil {
		return err
	}
	count, err := getU64(t.b, f.k.dedupCount())
	if err != nil {
		return err
	}
	count++
	if count > f.dedupLimit {
		evict := count - f.dedupLimit
		lo, hi := f.k.TagBounds(tagDedupQ)
		qlen := len(lo) + 8
		var victims [][]byte
		err := scan(t.b, lo, hi, func(k, _ []byte) (bool, error) {
			if len(k) < qlen {
				return false, fmt.Errorf("%w: short dedup queue key %q", ErrCorruptStore, k)
			}
			victims = append(victims, append([]byte(nil), k...))
			return uint64(len(victims)) < evict, nil
		})
		if err != nil {
			return err
		}
		for _, k := range victims {
			if err := t.del(f.k.dedup(string(k[qlen:]))); err != nil {
				return err
			}
			if err := t.del(k); err != nil {
				return err
			}
		}
		count -= uint64(len(victims))
	}
	return t.set(f.k.dedupCount(), u64(count))
}

// Snapshot captures the state for Raft (raft.FSM). It runs on the FSM
// goroutine, so the Pebble snapshot is exactly the state at the applied
// index; Persist streams it later, concurrently with new applies.
func (f *fsm) Snapshot() (raft.FSMSnapshot, error) {
	if err := f.p.Err(); err != nil {
		return nil, fmt.Errorf("state machine stopped: %w", err)
	}
	return &fsmSnapshot{snap: f.db.NewSnapshot(), k: f.k}, nil
}

// Restore replaces the group's state with a snapshot's (raft.FSM), in one
// fsynced batch: a crash leaves either the old state or the new one.
func (f *fsm) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	idx, err := restoreSnapshot(f.db, f.k, rc)
	if err != nil {
		if errors.Is(err, errStore) {
			f.p.Fail(fmt.Errorf("snapshot restore: %w", err))
		}
		return err
	}
	f.p.SetApplied(idx)
	f.p.Notify()
	return nil
}
