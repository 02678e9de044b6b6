package raftgroup

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

type testRes struct{ index uint64 }

func entries(from, to uint64) []*raft.Log {
	var out []*raft.Log
	for i := from; i <= to; i++ {
		out = append(out, &raft.Log{Index: i, Type: raft.LogCommand})
	}
	return out
}

func TestProgressApplyBatch(t *testing.T) {
	var p Progress
	failed := make(chan error, 2)
	p.OnFail = func(err error) { failed <- err }
	p.SetApplied(3)
	boom := errors.New("disk gone")
	var applied []uint64
	apply := func(l *raft.Log) (any, error) {
		if l.Index == 7 {
			return nil, boom
		}
		applied = append(applied, l.Index)
		return &testRes{l.Index}, nil
	}
	unknown := func(msg string) any { return "unknown: " + msg }

	moved := p.Moved()
	out, mv := p.ApplyBatch(entries(2, 5), apply, unknown)
	if !mv || p.Applied() != 5 || p.Skipped() != 2 || fmt.Sprint(applied) != "[4 5]" {
		t.Fatalf("moved %v, applied %d, skipped %d, ran %v", mv, p.Applied(), p.Skipped(), applied)
	}
	if out[0] != nil || out[1] != nil || out[2].(*testRes).index != 4 || out[3].(*testRes).index != 5 {
		t.Fatalf("responses %v", out)
	}
	select {
	case <-moved:
		t.Fatal("ApplyBatch woke waiters itself (the caller notifies)")
	default:
	}
	p.Notify()
	<-moved
	if p.Moved() == moved {
		t.Fatal("Moved after Notify returned the closed channel")
	}

	// A replayed batch moves nothing.
	if _, mv := p.ApplyBatch(entries(1, 5), apply, unknown); mv || p.Skipped() != 7 {
		t.Fatalf("replay: moved %v, skipped %d", mv, p.Skipped())
	}

	// A storage failure stops the machine at the entry before it.
	out, mv = p.ApplyBatch(entries(6, 8), apply, unknown)
	if !mv || p.Applied() != 6 || !errors.Is(p.Err(), boom) {
		t.Fatalf("failure: moved %v, applied %d, err %v", mv, p.Applied(), p.Err())
	}
	if out[1] != "unknown: disk gone" || out[2] != "unknown: state machine stopped: disk gone" {
		t.Fatalf("responses after the failure: %v", out)
	}
	if err := <-failed; !errors.Is(err, boom) {
		t.Fatalf("OnFail got %v", err)
	}
	p.Fail(errors.New("second"))
	if !errors.Is(p.Err(), boom) {
		t.Fatal("a second failure replaced the first")
	}
	select {
	case err := <-failed:
		t.Fatalf("OnFail ran again with %v", err)
	case <-time.After(50 * time.Millisecond):
	}
	// Stopped: nothing applies, nothing moves, each entry is unknown.
	out, mv = p.ApplyBatch(entries(9, 9), apply, unknown)
	if mv || p.Applied() != 6 || !strings.HasPrefix(out[0].(string), "unknown: state machine stopped") {
		t.Fatalf("stopped: moved %v, applied %d, %v", mv, p.Applied(), out)
	}
}

func TestProgressWaitApplied(t *testing.T) {
	var p Progress
	ctx := context.Background()
	p.SetApplied(4)
	if err := p.WaitApplied(ctx, 4, nil, nil); err != nil {
		t.Fatalf("already applied: %v", err)
	}
	done := make(chan error, 1)
	go func() { done <- p.WaitApplied(ctx, 6, nil, nil) }()
	p.SetApplied(5)
	p.Notify()
	select {
	case err := <-done:
		t.Fatalf("WaitApplied(6) returned at 5: %v", err)
	case <-time.After(20 * time.Millisecond):
	}
	p.SetApplied(6)
	p.Notify()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("WaitApplied(6) = %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("WaitApplied(6) did not return at 6")
	}
	stop := make(chan struct{})
	closedErr := errors.New("closed")
	go func() { done <- p.WaitApplied(ctx, 100, stop, closedErr) }()
	close(stop)
	if err := <-done; err != closedErr {
		t.Fatalf("stopped wait: %v", err)
	}
	cctx, cancel := context.WithCancel(ctx)
	go func() { done <- p.WaitApplied(cctx, 100, nil, nil) }()
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled wait: %v", err)
	}
}

func TestSafely(t *testing.T) {
	sentinel := errors.New("internal")
	res, err := Safely(sentinel, func() (*testRes, error) { return &testRes{1}, nil })
	if err != nil || res.index != 1 {
		t.Fatalf("no panic: %v, %v", res, err)
	}
	refused := errors.New("refused")
	if _, err := Safely(sentinel, func() (*testRes, error) { return nil, refused }); err != refused {
		t.Fatalf("an error passes through as is: %v", err)
	}
	res, err = Safely(sentinel, func() (*testRes, error) { panic("bug") })
	if res != nil || !errors.Is(err, sentinel) || !strings.Contains(err.Error(), "apply panicked: bug") {
		t.Fatalf("panic: %v, %v", res, err)
	}
}
