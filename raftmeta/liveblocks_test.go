package raftmeta

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestLiveBlocks(t *testing.T) {
	h := fxNew(t)
	ns := h.createUser("alice", 0).Namespace
	h.createUser("bob", 0)
	h.must(ns, fxPut("/a", "aaaabbbb"))
	h.must(ns, fxPut("/a", "ccccdddd"))
	h.must(ns, fxPut("/b", "eeee"))
	h.must(ns, fxDel("/b"))
	h.must(ns, fxMkdir("/dir"))
	h.must(ns, fxPut("/dir/c", "ffffcccc"))

	live := func() map[Sum]int {
		t.Helper()
		got := map[Sum]int{}
		applied, err := h.f.LiveBlocks(context.Background(), func(b Block) error { got[b.Ref]++; return nil })
		if err != nil {
			t.Fatal(err)
		}
		if applied != h.f.AppliedIndex() {
			t.Fatalf("applied %d, want %d", applied, h.f.AppliedIndex())
		}
		return got
	}
	// What History says every retained revision names.
	expected := func() map[Sum]bool {
		want := map[Sum]bool{}
		for _, p := range []string{"/a", "/b", "/dir/c"} {
			for _, r := range h.history(ns, p) {
				for _, b := range r.Blocks {
					want[b.Ref] = true
				}
			}
		}
		return want
	}
	check := func() {
		t.Helper()
		got, want := live(), expected()
		for ref := range want {
			if got[ref] == 0 {
				t.Errorf("block %x named by a retained revision not reported", ref[:6])
			}
		}
		for ref := range got {
			if !want[ref] {
				t.Errorf("block %x reported but named by no retained revision", ref[:6])
			}
		}
	}
	got := live()
	for _, chunk := range []string{"aaaa", "bbbb", "cccc", "dddd", "eeee", "ffff"} {
		if got[fxSum(chunk)] == 0 {
			t.Errorf("block of %q missing", chunk)
		}
	}
	check()

	// After retention prunes old revisions their blocks are no longer live.
	h.now += int64(48 * time.Hour)
	h.pruneAll(time.Hour, 1, 100)
	check()
	if got := live(); got[fxSum("aaaa")] != 0 {
		t.Errorf("pruned revision's block still reported live")
	}

	stop := errors.New("stop")
	if _, err := h.f.LiveBlocks(context.Background(), func(Block) error { return stop }); !errors.Is(err, stop) {
		t.Fatalf("callback error: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := h.f.LiveBlocks(ctx, func(Block) error { return nil }); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled ctx: %v", err)
	}
	if _, err := h.f.LiveBlocks(context.Background(), nil); !errors.Is(err, ErrInvalidArgument) {
		t.Fatalf("nil callback: %v", err)
	}
}
