package sysgroup

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"github.com/cockroachdb/pebble/v2"
	"github.com/hashicorp/raft"
)

// Snapshot stream format (version 1):
//
//	magic "COFFERSYS01\n" (12 bytes)
//	applied index         uint64 big-endian
//	records               uvarint(len key) key uvarint(len value) value
//	                      (keys relative to the group prefix, in key order)
//	end mark              uvarint(0)
//	record count          uint64 big-endian
//	SHA-256               of every byte before it
//
// Keys are stored without the group prefix, so a snapshot restores into the
// same group on any node. The state is small (bounded by the dedup limit,
// MaxSettings and the number of nodes), so a restore reads it whole,
// verifies it, and writes it in one batch.
var snapMagic = []byte("COFFERSYS01\n")

// maxSnapshotBytes bounds a snapshot stream a restore will read.
const maxSnapshotBytes = 256 << 20

// errBadSnapshot: a snapshot stream is malformed or fails its checksum.
var errBadSnapshot = errors.New("bad snapshot")

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
	if applied == 0 {
		return fmt.Errorf("%w: the group has no applied state to snapshot", errBadSnapshot)
	}
	h := sha256.New()
	bw := bufio.NewWriter(io.MultiWriter(w, h))
	bw.Write(snapMagic)
	bw.Write(u64(applied))
	count, err := writeRecords(bw, r, k)
	if err != nil {
		return err
	}
	var tmp [binary.MaxVarintLen64]byte
	bw.Write(tmp[:binary.PutUvarint(tmp[:], 0)])
	bw.Write(u64(count))
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("write snapshot: %w", err)
	}
	if _, err := w.Write(h.Sum(nil)); err != nil {
		return fmt.Errorf("write snapshot: %w", err)
	}
	return nil
}

// writeRecords writes every key (relative to the group prefix) and value of
// the group, in key order, each length-framed: the body of a snapshot and
// what a state hash covers.
func writeRecords(w io.Writer, r reader, k keys) (count uint64, err error) {
	var tmp [binary.MaxVarintLen64]byte
	lo, hi := k.groupBounds()
	err = scan(r, lo, hi, func(key, val []byte) (bool, error) {
		rel := key[len(k.prefix):]
		w.Write(tmp[:binary.PutUvarint(tmp[:], uint64(len(rel)))])
		w.Write(rel)
		w.Write(tmp[:binary.PutUvarint(tmp[:], uint64(len(val)))])
		if _, err := w.Write(val); err != nil {
			return false, fmt.Errorf("write snapshot: %w", err)
		}
		count++
		return true, nil
	})
	return count, err
}

// snapshotIndex reads the applied index from a snapshot stream's header.
func snapshotIndex(r io.Reader) (uint64, error) {
	var hdr [20]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return 0, fmt.Errorf("%w: header: %v", errBadSnapshot, err)
	}
	if !bytes.Equal(hdr[:12], snapMagic) {
		return 0, fmt.Errorf("%w: not a Coffer system group snapshot", errBadSnapshot)
	}
	return binary.BigEndian.Uint64(hdr[12:]), nil
}

type record struct{ key, val []byte }

// parseSnapshot checks a whole snapshot stream and returns its applied index
// and records (keys relative to the group prefix).
func parseSnapshot(data []byte) (uint64, []record, error) {
	if len(data) < 20+sha256.Size {
		return 0, nil, fmt.Errorf("%w: %d bytes is too short", errBadSnapshot, len(data))
	}
	body, sum := data[:len(data)-sha256.Size], data[len(data)-sha256.Size:]
	if got := sha256.Sum256(body); !bytes.Equal(got[:], sum) {
		return 0, nil, fmt.Errorf("%w: checksum mismatch", errBadSnapshot)
	}
	applied, err := snapshotIndex(bytes.NewReader(body))
	if err != nil {
		return 0, nil, err
	}
	if applied == 0 {
		return 0, nil, fmt.Errorf("%w: applied index 0", errBadSnapshot)
	}
	rest := body[20:]
	next := func(what string) ([]byte, error) {
		n, w := binary.Uvarint(rest)
		if w <= 0 || n > uint64(len(rest)-w) {
			return nil, fmt.Errorf("%w: %s length", errBadSnapshot, what)
		}
		b := rest[w : w+int(n)]
		rest = rest[w+int(n):]
		return b, nil
	}
	var recs []record
	for {
		key, err := next("key")
		if err != nil {
			return 0, nil, err
		}
		if len(key) == 0 {
			break
		}
		val, err := next("value")
		if err != nil {
			return 0, nil, err
		}
		recs = append(recs, record{key: key, val: val})
	}
	if len(rest) != 8 {
		return 0, nil, fmt.Errorf("%w: trailer is %d bytes, not 8", errBadSnapshot, len(rest))
	}
	if n := binary.BigEndian.Uint64(rest); n != uint64(len(recs)) {
		return 0, nil, fmt.Errorf("%w: %d records, trailer says %d", errBadSnapshot, len(recs), n)
	}
	return applied, recs, nil
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
	applied, recs, err := parseSnapshot(data)
	if err != nil {
		return 0, err
	}
	b := db.NewBatch()
	defer b.Close()
	lo, hi := k.groupBounds()
	if err := b.DeleteRange(lo, hi, nil); err != nil {
		return 0, fmt.Errorf("%w: restore: %v", errStore, err)
	}
	sawApplied := false
	for _, r := range recs {
		key := append(append([]byte(nil), k.prefix...), r.key...)
		if bytes.Equal(key, k.applied()) {
			if !bytes.Equal(r.val, u64(applied)) {
				return 0, fmt.Errorf("%w: applied record disagrees with the header", errBadSnapshot)
			}
			sawApplied = true
		}
		if err := b.Set(key, r.val, nil); err != nil {
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
	lo, hi := newKeys(groupID).groupBounds()
	if err := db.DeleteRange(lo, hi, pebble.Sync); err != nil {
		return fmt.Errorf("drop system group %d state: %w: %v", groupID, ErrCorruptStore, err)
	}
	return nil
}
