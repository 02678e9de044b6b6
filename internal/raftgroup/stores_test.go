package raftgroup

import (
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/hashicorp/raft"
)

// storeSetup describes the Raft stores of one case.
type storeSetup struct {
	term       uint64
	logFrom    uint64 // first log index (0: empty log)
	logTo      uint64
	snapIndex  uint64 // Raft index of the one snapshot (0: none)
	snapHeader []byte // the snapshot stream (nil: a valid one at snapFSM)
	snapFSM    uint64
}

func (s storeSetup) build(t *testing.T) (*raft.InmemStore, *raft.InmemSnapshotStore) {
	t.Helper()
	st := raft.NewInmemStore()
	if s.term > 0 {
		if err := st.SetUint64([]byte("CurrentTerm"), s.term); err != nil {
			t.Fatal(err)
		}
	}
	var logs []*raft.Log
	for i := s.logFrom; s.logFrom > 0 && i <= s.logTo; i++ {
		logs = append(logs, &raft.Log{Index: i, Term: 1, Type: raft.LogCommand})
	}
	if err := st.StoreLogs(logs); err != nil {
		t.Fatal(err)
	}
	snaps := raft.NewInmemSnapshotStore()
	if s.snapIndex > 0 {
		_, tr := raft.NewInmemTransport("a")
		defer tr.Close()
		sink, err := snaps.Create(raft.SnapshotVersionMax, s.snapIndex, 1, raft.Configuration{}, 1, tr)
		if err != nil {
			t.Fatal(err)
		}
		data := s.snapHeader
		if data == nil {
			data = writeTest(t, s.snapFSM, []rec{{"k", "v"}})
		}
		if _, err := sink.Write(data); err != nil {
			t.Fatal(err)
		}
		if err := sink.Close(); err != nil {
			t.Fatal(err)
		}
	}
	return st, snaps
}

func testSnapshotIndex(r io.Reader) (uint64, error) {
	return ReadSnapshotIndex(r, testMagic, "test snapshot")
}

func TestCheckStores(t *testing.T) {
	zeroHeader := append(append([]byte(nil), testMagic...), make([]byte, 8)...)
	tests := []struct {
		name        string
		setup       storeSetup
		applied     uint64
		wantRestore bool
		wantErr     string // "" if none
	}{
		{"new group", storeSetup{}, 0, false, ""},
		{"state, log and term agree", storeSetup{term: 2, logFrom: 1, logTo: 10}, 5, false, ""},
		{"state at the log's end", storeSetup{term: 2, logFrom: 1, logTo: 10}, 10, false, ""},
		{"state lost, log complete", storeSetup{term: 2, logFrom: 1, logTo: 10}, 0, false, ""},
		{"state but no term", storeSetup{}, 5, false, "no term"},
		{"log but no term", storeSetup{logFrom: 1, logTo: 3}, 0, false, "no term"},
		{"state beyond the log", storeSetup{term: 2, logFrom: 1, logTo: 10}, 12, false, "applied index 12 but the Raft log and snapshots end at 10"},
		{"state older than the snapshot", storeSetup{term: 2, logFrom: 15, logTo: 25, snapIndex: 20, snapFSM: 20}, 10, true, ""},
		{"state lost, snapshot and log", storeSetup{term: 2, logFrom: 15, logTo: 25, snapIndex: 20, snapFSM: 20}, 0, true, ""},
		{"state newer than the snapshot", storeSetup{term: 2, logFrom: 15, logTo: 25, snapIndex: 20, snapFSM: 20}, 22, false, ""},
		{"state beyond log and snapshot", storeSetup{term: 2, snapIndex: 20, snapFSM: 20}, 21, false, "end at 20"},
		{"snapshot without applied state", storeSetup{term: 2, logFrom: 15, logTo: 25, snapIndex: 20, snapHeader: zeroHeader}, 22, false, "holds no applied state"},
		{"snapshot of another kind", storeSetup{term: 2, logFrom: 15, logTo: 25, snapIndex: 20, snapHeader: []byte("COFFERMETA1\nxxxxxxxx")}, 22, false, "not a test snapshot"},
		{"gap between state and log", storeSetup{term: 2, logFrom: 15, logTo: 25}, 10, false, "the Raft log starts at 15, but the state machine is at 10"},
		{"log starts right after the state", storeSetup{term: 2, logFrom: 11, logTo: 25}, 10, false, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st, snaps := tt.setup.build(t)
			restore, err := CheckStores(st, st, snaps, tt.applied, testSnapshotIndex)
			if tt.wantErr == "" {
				if err != nil || restore != tt.wantRestore {
					t.Fatalf("CheckStores = %v, %v; want %v, nil", restore, err, tt.wantRestore)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) || restore {
				t.Fatalf("CheckStores = %v, %v; want an error mentioning %q", restore, err, tt.wantErr)
			}
		})
	}
}

// failingStores fail the call named by fail.
type failingStores struct {
	*raft.InmemStore
	fail   string
	getErr error
}

func (f failingStores) FirstIndex() (uint64, error) {
	if f.fail == "first" {
		return 0, errors.New("boom")
	}
	return f.InmemStore.FirstIndex()
}

func (f failingStores) LastIndex() (uint64, error) {
	if f.fail == "last" {
		return 0, errors.New("boom")
	}
	return f.InmemStore.LastIndex()
}

func (f failingStores) GetUint64(key []byte) (uint64, error) {
	if f.getErr != nil {
		return 0, f.getErr
	}
	return f.InmemStore.GetUint64(key)
}

func TestCheckStoresUnreadable(t *testing.T) {
	snaps := raft.NewInmemSnapshotStore()
	for _, tt := range []struct {
		name string
		st   failingStores
		want string
	}{
		{"first index", failingStores{InmemStore: raft.NewInmemStore(), fail: "first"}, "log store: boom"},
		{"last index", failingStores{InmemStore: raft.NewInmemStore(), fail: "last"}, "log store: boom"},
		{"stable store", failingStores{InmemStore: raft.NewInmemStore(), getErr: errors.New("io error")}, "stable store: io error"},
		// raft.NewRaft treats only the exact text "not found" as no term.
		{"other not-found text", failingStores{InmemStore: raft.NewInmemStore(), getErr: errors.New("key not found")}, "stable store: key not found"},
	} {
		if _, err := CheckStores(tt.st, tt.st, snaps, 0, testSnapshotIndex); err == nil || err.Error() != tt.want {
			t.Errorf("%s: %v, want %q", tt.name, err, tt.want)
		}
	}
	ok := failingStores{InmemStore: raft.NewInmemStore(), getErr: errors.New("not found")}
	if restore, err := CheckStores(ok, ok, snaps, 0, testSnapshotIndex); err != nil || restore {
		t.Errorf("a stable store without a term: %v, %v", restore, err)
	}
}
