package raftmeta

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"io"

	"github.com/cockroachdb/pebble/v2"
	"github.com/coffer-dev/coffer/internal/raftgroup"
	"github.com/hashicorp/raft"
)

// Snapshot stream format (version 1): raftgroup's framing (magic, the FSM's
// applied index, length-framed records with keys relative to the group
// prefix, an end mark, the record count and a SHA-256 of the stream) with
// magic "COFFERMETA1\n". Keys are stored without the group prefix, so a
// snapshot restores into the same group on any node.
var snapMagic = []byte("COFFERMETA1\n")

// snapKind names the stream in errors.
const snapKind = "Coffer metadata snapshot"

// maxSnapshotValue bounds one value in a snapshot stream, on both sides:
// writeSnapshot refuses to write what restoreSnapshot would refuse to read.
// The commit limits (MaxBlocksPerFile, MaxChangesPerCommit) keep records
// far below it.
const maxSnapshotValue = 1 << 30

// restoreBatchBytes bounds one Pebble batch during a restore.
const restoreBatchBytes = 4 << 20

type fsmSnapshot struct {
	snap *pebble.Snapshot
	k    keys
}

// Persist streams the snapshot to sink (raft.FSMSnapshot).
func (s *fsmSnapshot) Persist(sink raft.SnapshotSink) error {
	if err := writeSnapshot(sink, pebbleReader{s.snap}, s.k); err != nil {
		sink.Cancel()
		return err
	}
	return sink.Close()
}

// Release frees the Pebble snapshot (raft.FSMSnapshot).
func (s *fsmSnapshot) Release() { s.snap.Close() }

func writeSnapshot(w io.Writer, r reader, k keys) error {
	v := &view{r: r, k: k}
	applied, _, err := v.getU64(k.applied())
	if err != nil {
		return err
	}
	return raftgroup.WriteSnapshot(w, snapMagic, applied, func(w io.Writer) (uint64, error) {
		return writeRecords(w, v, k)
	})
}

// errBadSnapshot: a snapshot stream is malformed or fails its checksum.
var errBadSnapshot = raftgroup.ErrBadSnapshot

// snapshotIndex reads the FSM applied index from a snapshot's header.
func snapshotIndex(r io.Reader) (uint64, error) {
	return raftgroup.ReadSnapshotIndex(r, snapMagic, snapKind)
}

// restoreSnapshot replaces the group's keys with the snapshot's and returns
// its applied index. A marker key, set first and cleared last (both
// fsynced), makes an interrupted restore visible at the next start.
func restoreSnapshot(db *pebble.DB, k keys, src io.Reader) (uint64, error) {
	sr, err := raftgroup.NewSnapshotReader(src, snapMagic, snapKind, maxSnapshotValue)
	if err != nil {
		return 0, err
	}
	lo, hi := k.Bounds()
	b := db.NewBatch()
	if err := b.DeleteRange(lo, hi, nil); err != nil {
		return 0, err
	}
	if err := b.Set(k.restoring(), u64(1), nil); err != nil {
		return 0, err
	}
	if err := b.Commit(pebble.Sync); err != nil {
		return 0, fmt.Errorf("%w: restore: %v", errStore, err)
	}
	b.Close()
	b = db.NewBatch()
	defer func() { b.Close() }()
	for {
		key, val, err := sr.Next(k.Prefix)
		if err != nil {
			return 0, err
		}
		if key == nil {
			break
		}
		if err := b.Set(key, val, nil); err != nil {
			return 0, err
		}
		if b.Len() >= restoreBatchBytes {
			if err := b.Commit(pebble.NoSync); err != nil {
				return 0, fmt.Errorf("%w: restore: %v", errStore, err)
			}
			b.Close()
			b = db.NewBatch()
		}
	}
	if err := sr.Finish(); err != nil {
		return 0, err
	}
	if err := b.Delete(k.restoring(), nil); err != nil {
		return 0, err
	}
	if err := b.Commit(pebble.Sync); err != nil {
		return 0, fmt.Errorf("%w: restore: %v", errStore, err)
	}
	return sr.Applied(), nil
}

// writeRecords writes every key (relative to the group prefix) and value of
// the group but the restore marker, in key order, each length-framed: the
// body of a snapshot stream, and what a state hash covers.
func writeRecords(w io.Writer, v *view, k keys) (count uint64, err error) {
	lo, hi := k.Bounds()
	skip := k.restoring()
	err = v.scan(lo, hi, false, func(key, val []byte) (bool, error) {
		if bytes.Equal(key, skip) {
			return true, nil
		}
		if len(val) > maxSnapshotValue {
			return false, fmt.Errorf("%w: value of %q is %d bytes, over the %d limit", errBadSnapshot, key, len(val), maxSnapshotValue)
		}
		if err := raftgroup.WriteRecord(w, key[len(k.Prefix):], val); err != nil {
			return false, err
		}
		count++
		return true, nil
	})
	return count, err
}

// stateHash hashes every key and value of a group (but the restore marker).
func stateHash(r reader, k keys) (Sum, uint64, error) {
	h := sha256.New()
	v := &view{r: r, k: k}
	applied, _, err := v.getU64(k.applied())
	if err != nil {
		return Sum{}, 0, err
	}
	_, err = writeRecords(h, v, k)
	var s Sum
	copy(s[:], h.Sum(nil))
	return s, applied, err
}
