package raftgroup

import (
	"context"
	"errors"
	"time"

	"github.com/hashicorp/raft"
)

// ErrRefused: Raft refused a command before appending it to its log (this
// replica is not the leader, or a leadership transfer is under way), so it
// will never be applied. Retry at the leader.
var ErrRefused = errors.New("refused by raft before it was appended")

// Apply proposes data through r (timeout bounds enqueueing and commit) and
// returns the state machine's response to it. ErrRefused means it was not
// appended. Any other error means the outcome is unknown (it may have been
// appended, and may yet apply): ctx's error if ctx ended first, else an
// error with Raft's message that does not wrap Raft's sentinels, which
// speak of this replica's Raft, not of the command (raft.ErrLeadershipLost
// does not mean the command failed).
func Apply(ctx context.Context, r *raft.Raft, data []byte, timeout time.Duration) (any, error) {
	f := r.Apply(data, timeout)
	done, err := Await(ctx, f)
	switch {
	case !done:
		return nil, err
	case err == nil:
		return f.Response(), nil
	}
	return nil, applyError(err)
}

// applyError maps the error of a Raft apply future (see Apply).
func applyError(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, raft.ErrNotLeader), errors.Is(err, raft.ErrLeadershipTransferInProgress):
		return ErrRefused
	}
	return errors.New(err.Error())
}

// Await waits for a Raft future or for ctx. done is false if ctx ended
// first (err is then ctx's error).
func Await(ctx context.Context, f raft.Future) (done bool, err error) {
	ch := make(chan error, 1)
	go func() { ch <- f.Error() }()
	select {
	case err := <-ch:
		return true, err
	case <-ctx.Done():
		return false, ctx.Err()
	}
}
