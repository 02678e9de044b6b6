package sysgroup

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"io"

	"github.com/cockroachdb/pebble/v2"
	"github.com/coffer-dev/coffer/internal/raftgroup"
	"github.com/hashicorp/raft"
)

// Snapshot stream format (version 1): raftgroup's framing (magic, the
// applied index, length-framed records with keys relative to the group
// prefix, an end mark, the record count and a SHA-256 of the stream) with
// magic "COFFERSYS01\n". Keys are stored without the group prefix, so a
// snapshot restores into the same group on any node. The state is small
// (bounded by the dedup limit, MaxSettings and the number of nodes), so a
// restore reads it whole, verifies it, and writes it in one batch.
var snapMagic = []byte("COFFERSYS01\n")

// snapKind names the stream in errors.
const snapKind = "Coffer system group snapshot"

// maxSnapshotBytes bounds a snapshot stream a restore will read.
const maxSnapshotBytes = 256 << 20

// errBadSnapshot: a snapshot stream is malformed or fails its checksum.
var errBadSnapshot = raftgroup.ErrBadSnapshot

type fsmSnapshot struct {
	snap *pebble.Snapshot
	k    keys
}

// Persist streams the snapshot to sink (raft.FSMSnapshot).
func (s *fsmSnapshot) Persist(sink raft.SnapshotSink) error {
	if err := writeSnapshot(sink, s.snap, s.k); err != nil {
		sink.Cancel()
		return err
	}
	return sink.Close()
}

// Release frees the Pebble snapshot (raft.FSMSnapshot).
func (s *fsmSnapshot) Release() { s.snap.Close() }

func writeSnapshot(w io.Writer, r reader, k keys) error {
	applied, err := getU64(r, k.applied())
	if err != nil {
		return err
	}
	return raftgroup.WriteSnapshot(w, snapMagic, applied, func(w io.Writer) (uint64, error) {
		return writeRecords(w, r, k)
	})
}

// writeRecords writes every key (relative to the group prefix) and value of
// the group, in key order, each length-framed: the body of a snapshot and
// what a state hash covers.
func writeRecords(w io.Writer, r reader, k keys) (count uint64, err error) {
	lo, hi := k.Bounds()
	err = scan(r, lo, hi, func(key, val []byte) (bool, error) {
		if err := raftgroup.WriteRecord(w, key[len(k.Prefix):], val); err != nil {
			return false, err
		}
		count++
		return true, nil
	})
	return count, err
}

// snapshotIndex reads the applied index from a snapshot stream's header.
func snapshotIndex(r io.Reader) (uint64, error) {
	return raftgroup.ReadSnapshotIndex(r, snapMagic, snapKind)
}

type record struct{ key, val []byte }

// readSnapshot checks a whole snapshot stream and returns its applied index
// and records (keys with the group prefix).
func readSnapshot(data []byte, prefix []byte) (uint64, []record, error) {
	sr, err := raftgroup.NewSnapshotReader(bytes.NewReader(data), snapMagic, snapKind, maxSnapshotBytes)
	if err != nil {
		return 0, nil, err
	}
	if sr.Applied() == 0 {
		return 0, nil, fmt.Errorf("%w: applied index 0", errBadSnapshot)
	}
	var recs []record
	for {
		key, val, err := sr.Next(prefix)
		if err != nil {
			return 0, nil, err
		}
		if key == nil {
			break
		}
		recs = append(recs, record{key: key, val: val})
	}
	if err := sr.Finish(); err != nil {
		return 0, nil, err
	}
	if err := sr.ExpectEOF(); err != nil {
		return 0, nil, err
	}
	return sr.Applied(), recs, nil
}

// restoreSnapshot replaces the group's keys with the snapshot's in one
// fsynced batch and returns its applied index. A bad stream leaves the state
// as it was.
func restoreSnapshot(db *pebble.DB, k keys, src io.Reader) (uint64, error) {
	data, err := io.ReadAll(io.LimitReader(src, maxSnapshotBytes+1))
	if err != nil {
		return 0, fmt.Errorf("%w: read: %v", errBadSnapshot, err)
	}
	if len(data) > maxSnapshotBytes {
		return 0, fmt.Errorf("%w: over %d bytes", errBadSnapshot, maxSnapshotBytes)
	}
	applied, recs, err := readSnapshot(data, k.Prefix)
	if err != nil {
		return 0, err
	}
	b := db.NewBatch()
	defer b.Close()
	lo, hi := k.Bounds()
	if err := b.DeleteRange(lo, hi, nil); err != nil {
		return 0, fmt.Errorf("%w: restore: %v", errStore, err)
	}
	sawApplied := false
	for _, r := range recs {
		if bytes.Equal(r.key, k.applied()) {
			if !bytes.Equal(r.val, u64(applied)) {
				return 0, fmt.Errorf("%w: applied record disagrees with the header", errBadSnapshot)
			}
			sawApplied = true
		}
		if err := b.Set(r.key, r.val, nil); err != nil {
			return 0, fmt.Errorf("%w: restore: %v", errStore, err)
		}
	}
	if !sawApplied {
		return 0, fmt.Errorf("%w: no applied index record", errBadSnapshot)
	}
	if err := b.Commit(pebble.Sync); err != nil {
		return 0, fmt.Errorf("%w: restore: %v", errStore, err)
	}
	return applied, nil
}

// stateHash hashes every key and value of the group and returns the applied
// index it covers.
func stateHash(r reader, k keys) ([32]byte, uint64, error) {
	applied, err := getU64(r, k.applied())
	if err != nil {
		return [32]byte{}, 0, err
	}
	h := sha256.New()
	if _, err := writeRecords(h, r, k); err != nil {
		return [32]byte{}, 0, err
	}
	var sum [32]byte
	copy(sum[:], h.Sum(nil))
	return sum, applied, nil
}

// DropState deletes the group's whole key range from db, fsynced: for a
// replica removed from this node. Close the group first; other groups' keys
// in db are untouched.
func DropState(db *pebble.DB, groupID uint64) error {
	if db == nil {
		return fmt.Errorf("%w: DropState: nil DB", ErrInvalidArgument)
	}
	lo, hi := newKeys(groupID).Bounds()
	if err := db.DeleteRange(lo, hi, pebble.Sync); err != nil {
		return fmt.Errorf("drop system group %d state: %w: %v", groupID, ErrCorruptStore, err)
	}
	return nil
}
