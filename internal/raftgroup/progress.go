package raftgroup

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"

	"github.com/hashicorp/raft"
)

// Progress is what a group's state machine tracks besides its state: the
// Raft index of the last entry applied, how many entries it skipped as
// applied before a restart, the storage failure that stopped it, and a
// channel that closes when the applied index next moves. The zero value is
// ready to use; set Log and OnFail before Raft starts.
type Progress struct {
	// Log receives the failure that stops the state machine (nil: discard).
	Log *slog.Logger
	// OnFail, if set, runs in a goroutine of its own once Fail has stopped
	// the state machine (to close the replica, say).
	OnFail func(error)

	applied atomic.Uint64
	skipped atomic.Uint64
	failed  atomic.Pointer[error]

	mu    sync.Mutex
	moved chan struct{} // closed by the next Notify; nil until asked for
}

// Applied returns the Raft index of the last entry applied.
func (p *Progress) Applied() uint64 { return p.applied.Load() }

// SetApplied records index as applied (at start, or after a snapshot
// restore); it wakes no one (see Notify).
func (p *Progress) SetApplied(index uint64) { p.applied.Store(index) }

// Skipped counts the entries ApplyBatch skipped because they were at or
// below the applied index (Raft handed them again after a restart).
func (p *Progress) Skipped() uint64 { return p.skipped.Load() }

// Err returns the storage error that stopped the state machine, or nil.
func (p *Progress) Err() error {
	if e := p.failed.Load(); e != nil {
		return *e
	}
	return nil
}

// Fail stops the state machine after a storage error: applying further
// entries on top of one that could not be written would make this replica
// diverge. Entries from then on are not applied (nor recorded as applied),
// so a restart replays them from the Raft log. Only the first call counts.
func (p *Progress) Fail(err error) {
	if p.failed.CompareAndSwap(nil, &err) {
		if p.Log != nil {
			p.Log.Error("state machine stopped after a storage failure", "error", err)
		}
		if p.OnFail != nil {
			go p.OnFail(err)
		}
	}
}

// Moved returns a channel closed when the applied index next moves (at the
// next Notify).
func (p *Progress) Moved() <-chan struct{} {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.moved == nil {
		p.moved = make(chan struct{})
	}
	return p.moved
}

// Notify wakes everyone waiting on Moved.
func (p *Progress) Notify() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.moved != nil {
		close(p.moved)
		p.moved = nil
	}
}

// WaitApplied blocks until index is applied, ctx ends (its error), or stop
// closes (stopErr; a nil stop never closes).
func (p *Progress) WaitApplied(ctx context.Context, index uint64, stop <-chan struct{}, stopErr error) error {
	for {
		ch := p.Moved()
		if p.Applied() >= index {
			return nil
		}
		select {
		case <-ch:
		case <-stop:
			return stopErr
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// ApplyBatch applies committed entries in order, for a raft.BatchingFSM.
// Entries at or below the applied index are skipped (replay after a
// restart is a no-op; their response is nil). Each other entry goes to
// apply, which applies it durably together with its index and returns the
// response; an error from apply is a storage failure, which stops the
// state machine (Fail). An entry that is not applied here after such a
// failure gets unknown(message) as its response: it is committed, and
// applies on the other replicas and on this one after a restart, so it is
// not a refusal. moved reports whether the applied index moved; the
// caller notifies waiters.
func (p *Progress) ApplyBatch(logs []*raft.Log, apply func(*raft.Log) (any, error), unknown func(msg string) any) (out []any, moved bool) {
	out = make([]any, len(logs))
	for i, l := range logs {
		if err := p.Err(); err != nil {
			out[i] = unknown("state machine stopped: " + err.Error())
			continue
		}
		if l.Index <= p.applied.Load() {
			p.skipped.Add(1)
			continue
		}
		res, err := apply(l)
		if err != nil {
			p.Fail(err)
			out[i] = unknown(err.Error())
			continue
		}
		p.applied.Store(l.Index)
		moved = true
		out[i] = res
	}
	return out, moved
}

// Safely runs apply, turning a panic (a bug) into an error wrapping
// sentinel, so the caller refuses that one command: every replica hits the
// same panic on the same entry, and letting it crash would take the whole
// group down on every restart.
func Safely[T any](sentinel error, apply func() (T, error)) (res T, err error) {
	defer func() {
		if r := recover(); r != nil {
			var zero T
			res, err = zero, fmt.Errorf("%w: apply panicked: %v", sentinel, r)
		}
	}()
	return apply()
}
