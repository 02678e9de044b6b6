package raftgroup

import (
	"context"
	"errors"
	"fmt"
	"io"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

// echoFSM answers each command with its data.
type echoFSM struct{}

func (echoFSM) Apply(l *raft.Log) interface{}       { return string(l.Data) }
func (echoFSM) Snapshot() (raft.FSMSnapshot, error) { return nil, errors.New("no snapshots") }
func (echoFSM) Restore(rc io.ReadCloser) error      { return rc.Close() }

// newRaft starts a one-node Raft group on in-memory stores; bootstrap
// makes it the leader.
func newRaft(t *testing.T, bootstrap bool) *raft.Raft {
	t.Helper()
	rc, err := RaftConfig("n1", 1, Timing{HeartbeatTimeout: 200 * time.Millisecond, ElectionTimeout: 200 * time.Millisecond,
		LeaderLeaseTimeout: 100 * time.Millisecond, CommitTimeout: 5 * time.Millisecond}, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	st := raft.NewInmemStore()
	addr, tr := raft.NewInmemTransport("")
	r, err := raft.NewRaft(rc, echoFSM{}, st, st, raft.NewInmemSnapshotStore(), tr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Shutdown().Error(); tr.Close() })
	if bootstrap {
		if err := r.BootstrapCluster(raft.Configuration{Servers: []raft.Server{{ID: "n1", Address: addr}}}).Error(); err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(10 * time.Second)
		for r.State() != raft.Leader {
			if time.Now().After(deadline) {
				t.Fatal("no leader")
			}
			select {
			case <-r.LeaderCh():
			case <-time.After(20 * time.Millisecond):
			}
		}
	}
	return r
}

func TestApply(t *testing.T) {
	ctx := context.Background()
	r := newRaft(t, true)
	resp, err := Apply(ctx, r, []byte("hello"), time.Second)
	if err != nil || resp != "hello" {
		t.Fatalf("Apply = %v, %v", resp, err)
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	// Whichever comes first, ctx's end or the commit: never a wrong answer.
	if resp, err := Apply(cctx, r, []byte("x"), time.Second); err != nil && !errors.Is(err, context.Canceled) || err == nil && resp != "x" {
		t.Fatalf("Apply with an ended ctx = %v, %v", resp, err)
	}

	// A replica that is not the leader refuses before appending.
	follower := newRaft(t, false)
	if _, err := Apply(ctx, follower, []byte("x"), time.Second); !errors.Is(err, ErrRefused) {
		t.Fatalf("Apply on a follower: %v, want ErrRefused", err)
	}

}

func TestApplyError(t *testing.T) {
	for _, tt := range []struct {
		in      error
		refused bool
	}{
		{raft.ErrNotLeader, true},
		{fmt.Errorf("wrapped: %w", raft.ErrNotLeader), true},
		{raft.ErrLeadershipTransferInProgress, true},
		{raft.ErrLeadershipLost, false},
		{raft.ErrRaftShutdown, false},
		{raft.ErrEnqueueTimeout, false},
		{raft.ErrAbortedByRestore, false},
	} {
		err := applyError(tt.in)
		if tt.refused {
			if err != ErrRefused {
				t.Errorf("%v: %v, want ErrRefused", tt.in, err)
			}
			continue
		}
		// Unknown outcome: Raft's text, not its sentinel.
		if err == nil || errors.Is(err, ErrRefused) || errors.Is(err, tt.in) || err.Error() != tt.in.Error() {
			t.Errorf("%v: %v, want its text only", tt.in, err)
		}
	}
	if applyError(nil) != nil {
		t.Error("nil is not an error")
	}
}

func TestAwait(t *testing.T) {
	r := newRaft(t, true)
	done, err := Await(context.Background(), r.Barrier(time.Second))
	if !done || err != nil {
		t.Fatalf("Await(barrier) = %v, %v", done, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	never := make(futureNever)
	if done, err := Await(ctx, never); done || !errors.Is(err, context.Canceled) {
		t.Fatalf("Await with an ended ctx = %v, %v", done, err)
	}
	close(never)
}

// futureNever is a raft.Future whose Error blocks until it is closed.
type futureNever chan struct{}

func (f futureNever) Error() error { <-f; return nil }
