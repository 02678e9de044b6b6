package raftgroup

import (
	"fmt"
	"io"

	"github.com/hashicorp/raft"
)

// CheckStores compares a group's Raft stores with the index its state
// machine has applied, before Raft starts on them. It reports whether Raft
// must restore the newest snapshot into the state at start (the state is
// older than the snapshot); otherwise the state is reused as it is and Raft
// replays only the log after it. snapshotIndex reads the applied index a
// snapshot stream embeds in its header.
//
// Every error means a store is unreadable or the stores do not fit
// together (a stable store with no term under existing state, state newer
// than the log and snapshots, a gap between the state or snapshot and the
// log): the caller wraps it in its own corrupt-store sentinel.
func CheckStores(logs raft.LogStore, stable raft.StableStore, snaps raft.SnapshotStore, applied uint64, snapshotIndex func(io.Reader) (uint64, error)) (restore bool, err error) {
	first, err := logs.FirstIndex()
	if err != nil {
		return false, fmt.Errorf("log store: %v", err)
	}
	last, err := logs.LastIndex()
	if err != nil {
		return false, fmt.Errorf("log store: %v", err)
	}
	// raft.NewRaft treats exactly this text as "no term yet".
	term, err := stable.GetUint64([]byte("CurrentTerm"))
	if err != nil && err.Error() != "not found" {
		return false, fmt.Errorf("stable store: %v", err)
	}
	list, err := snaps.List()
	if err != nil {
		return false, fmt.Errorf("snapshot store: %v", err)
	}
	var snapIndex, snapFSM uint64
	if len(list) > 0 {
		snapIndex = list[0].Index
		_, rc, err := snaps.Open(list[0].ID)
		if err != nil {
			return false, fmt.Errorf("open snapshot %s: %v", list[0].ID, err)
		}
		snapFSM, err = snapshotIndex(rc)
		rc.Close()
		if err != nil {
			return false, fmt.Errorf("snapshot %s: %v", list[0].ID, err)
		}
	}
	top := max(last, snapIndex)
	switch {
	case (applied > 0 || len(list) > 0 || last > 0) && term == 0:
		return false, fmt.Errorf("the group has state (applied index %d, %d snapshots, log to %d) but the stable store has no term: it is missing or from another node", applied, len(list), last)
	case applied > top:
		return false, fmt.Errorf("the state machine has applied index %d but the Raft log and snapshots end at %d: the log store is missing, emptied or from another node", applied, top)
	case applied < snapFSM:
		return true, nil // state older than the newest snapshot: restore it
	case len(list) > 0 && snapIndex > 0 && snapFSM == 0:
		return false, fmt.Errorf("snapshot %s at index %d holds no applied state", list[0].ID, snapIndex)
	case last > 0 && first > max(applied, snapIndex)+1:
		return false, fmt.Errorf("the Raft log starts at %d, but the state machine is at %d and the newest snapshot at %d: the entries between are missing (snapshot store or state lost)", first, applied, snapIndex)
	}
	return false, nil
}
