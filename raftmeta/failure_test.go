package raftmeta

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

// TestFailedRestoreStopsFSM: a restore that fails midway has cleared the
// group, so the FSM must stop — no more applies, no snapshot labelled with
// an index its state does not reach — and report later entries as of
// unknown outcome (they are committed), not refused.
func TestFailedRestoreStopsFSM(t *testing.T) {
	src := fxNew(t)
	u := src.createUser("ann", 0)
	src.must(u.Namespace, fxPut("/a", "a"))
	var buf bytes.Buffer
	if err := writeSnapshot(&buf, pebbleReader{src.d.db}, src.f.k); err != nil {
		t.Fatal(err)
	}
	stream := buf.Bytes()
	stream[len(stream)-1] ^= 0xff // break the checksum

	h := fxNew(t)
	h.createUser("bob", 0)
	if err := h.f.Restore(io.NopCloser(bytes.NewReader(stream))); err == nil {
		t.Fatal("restore of a damaged snapshot succeeded")
	}
	if h.f.Err() == nil {
		t.Fatal("FSM still running after a failed restore")
	}
	if _, err := h.f.Snapshot(); err == nil {
		t.Fatal("a stopped FSM took a snapshot")
	}
	data, err := encodeCommand(&command{Type: cmdCommit, Commit: &commitCmd{Namespace: u.Namespace, Ops: []Op{fxPut("/b", "b")}}})
	if err != nil {
		t.Fatal(err)
	}
	out := h.f.ApplyBatch([]*raft.Log{{Index: 100, Type: raft.LogCommand, Data: data}})
	res, _ := out[0].(*result)
	if res == nil || res.Err == nil || res.Err.Code != CodeUnknownOutcome {
		t.Fatalf("entry applied to a stopped FSM: %+v, want unknown_outcome", res)
	}
	if h.f.AppliedIndex() == 100 {
		t.Fatal("a stopped FSM recorded an entry as applied")
	}
}

// TestWriteSnapshotRefusesEmptyState: a group with no applied state has
// nothing that a snapshot could be labelled with.
func TestWriteSnapshotRefusesEmptyState(t *testing.T) {
	h := fxNew(t)
	if err := writeSnapshot(io.Discard, pebbleReader{h.d.db}, h.f.k); !errors.Is(err, errBadSnapshot) {
		t.Fatalf("snapshot of an empty group: %v", err)
	}
}

// TestPruneJudgesEachRevisionByItsOwnTime: leaders' clocks differ, so an
// older revision number can carry a newer time; it must be kept.
func TestPruneJudgesEachRevisionByItsOwnTime(t *testing.T) {
	h := fxNew(t)
	u := h.createUser("cy", 0)
	day := int64(24 * time.Hour)
	old := fxEpoch
	times := []int64{old, old + 40*day, old, old} // rev 2 from a leader whose clock ran ahead
	for i, tm := range times {
		r := h.apply(&command{Type: cmdCommit, Time: tm, Commit: &commitCmd{Namespace: u.Namespace, Ops: []Op{fxPut("/f", strings.Repeat("x", i+1))}}})
		if r.Err != nil {
			t.Fatal(r.Err)
		}
	}
	res := h.apply(&command{Type: cmdPrune, Time: old + 35*day, Prune: &pruneCmd{KeepFor: 30 * day, KeepLast: 1, Max: 100}})
	if res.Err != nil {
		t.Fatal(res.Err)
	}
	if res.Prune.Revisions != 2 {
		t.Fatalf("pruned %d revisions, want 2 (revs 1 and 3)", res.Prune.Revisions)
	}
	revs, err := (&view{r: pebbleReader{h.d.db}, k: h.f.k}).history(u.Namespace, Target{Path: "/f"}, HistoryOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var got []uint64
	for _, r := range revs {
		got = append(got, r.Rev)
	}
	if len(got) != 2 || got[0] != 4 || got[1] != 2 {
		t.Fatalf("kept revisions %v, want [4 2]", got)
	}
}

// TestStaleChangesCursorAhead: a cursor from a replica further ahead is
// "nothing yet" on a stale read, and expired only on a linearizable one.
func TestStaleChangesCursorAhead(t *testing.T) {
	h := fxNew(t)
	u := h.createUser("di", 0)
	h.must(u.Namespace, fxPut("/a", "a"))
	v := &view{r: pebbleReader{h.d.db}, k: h.f.k}
	p, err := v.changesAt(u.Namespace, 5, 10, true)
	if err != nil || len(p.Records) != 0 || p.Cursor != 5 || p.Head != 1 {
		t.Fatalf("stale read ahead: %+v, %v", p, err)
	}
	if _, err := v.changesAt(u.Namespace, 5, 10, false); CodeOf(err) != CodeCursorExpired {
		t.Fatalf("linearizable read ahead: %v, want cursor_expired", err)
	}
}

func TestCommitLimits(t *testing.T) {
	op := fxPut("/big", "x")
	op.Blocks = make([]Block, MaxBlocksPerFile+1)
	for i := range op.Blocks {
		op.Blocks[i] = Block{Ref: fxSum("x"), Size: 1}
	}
	op.Size = int64(len(op.Blocks))
	if oe := validContent(&op); oe == nil || oe.Code != CodeInvalidArgument {
		t.Fatalf("%d blocks: %v, want invalid_argument", len(op.Blocks), oe)
	}
}
