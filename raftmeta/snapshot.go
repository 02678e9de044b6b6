package raftmeta

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"io"

	"github.com/cockroachdb/pebble/v2"
	"github.com/hashicorp/raft"
)

// Snapshot stream format (version 1):
//
//	magic "COFFERMETA1\n"
//	applied index         uint64 big-endian (the FSM's, see snapshotIndex)
//	records               uvarint(len key) key uvarint(len value) value
//	                      (keys relative to the group prefix, in key order)
//	end mark              uvarint(0)
//	record count          uint64 big-endian
//	SHA-256               of every byte before it
//
// Keys are stored without the group prefix, so a snapshot restores into the
// same group on any node.
var snapMagic = []byte("COFFERMETA1\n")

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
	h := sha256.New()
	bw := bufio.NewWriterSize(io.MultiWriter(w, h), 1<<20)
	v := &view{r: r, k: k}
	applied, _, err := v.getU64(k.applied())
	if err != nil {
		return err
	}
	if applied == 0 {
		return fmt.Errorf("%w: the group has no applied state to snapshot", errBadSnapshot)
	}
	bw.Write(snapMagic)
	bw.Write(u64(applied))
	count, err := writeRecords(bw, v, k)
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

// hashReader hashes what it reads.
type hashReader struct {
	r *bufio.Reader
	h hash.Hash
}

func (hr *hashReader) Read(p []byte) (int, error) {
	n, err := hr.r.Read(p)
	hr.h.Write(p[:n])
	return n, err
}

func (hr *hashReader) ReadByte() (byte, error) {
	b, err := hr.r.ReadByte()
	if err == nil {
		hr.h.Write([]byte{b})
	}
	return b, err
}

var errBadSnapshot = errors.New("bad snapshot")

// snapshotIndex reads the FSM applied index from a snapshot's header.
func snapshotIndex(r io.Reader) (uint64, error) {
	var hdr [20]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return 0, fmt.Errorf("%w: header: %v", errBadSnapshot, err)
	}
	if !bytes.Equal(hdr[:12], snapMagic) {
		return 0, fmt.Errorf("%w: not a Coffer metadata snapshot", errBadSnapshot)
	}
	return beU64(hdr[12:]), nil
}

// restoreSnapshot replaces the group's keys with the snapshot's and returns
// its applied index. A marker key, set first and cleared last (both
// fsynced), makes an interrupted restore visible at the next start.
func restoreSnapshot(db *pebble.DB, k keys, src io.Reader) (uint64, error) {
	hr := &hashReader{r: bufio.NewReaderSize(src, 1<<20), h: sha256.New()}
	applied, err := snapshotIndex(hr)
	if err != nil {
		return 0, err
	}
	lo, hi := k.groupBounds()
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
	var count uint64
	for {
		klen, err := binary.ReadUvarint(hr)
		if err != nil {
			return 0, fmt.Errorf("%w: record: %v", errBadSnapshot, err)
		}
		if klen == 0 {
			break
		}
		if klen > 1<<20 {
			return 0, fmt.Errorf("%w: key of %d bytes", errBadSnapshot, klen)
		}
		key := make([]byte, len(k.prefix)+int(klen))
		copy(key, k.prefix)
		if _, err := io.ReadFull(hr, key[len(k.prefix):]); err != nil {
			return 0, fmt.Errorf("%w: key: %v", errBadSnapshot, err)
		}
		vlen, err := binary.ReadUvarint(hr)
		if err != nil || vlen > maxSnapshotValue {
			return 0, fmt.Errorf("%w: value length: %v", errBadSnapshot, err)
		}
		val := make([]byte, vlen)
		if _, err := io.ReadFull(hr, val); err != nil {
			return 0, fmt.Errorf("%w: value: %v", errBadSnapshot, err)
		}
		if err := b.Set(key, val, nil); err != nil {
			return 0, err
		}
		count++
		if b.Len() >= restoreBatchBytes {
			if err := b.Commit(pebble.NoSync); err != nil {
				return 0, fmt.Errorf("%w: restore: %v", errStore, err)
			}
			b.Close()
			b = db.NewBatch()
		}
	}
	var trailer [8]byte
	if _, err := io.ReadFull(hr, trailer[:]); err != nil {
		return 0, fmt.Errorf("%w: trailer: %v", errBadSnapshot, err)
	}
	if beU64(trailer[:]) != count {
		return 0, fmt.Errorf("%w: %d records, trailer says %d", errBadSnapshot, count, beU64(trailer[:]))
	}
	want := hr.h.Sum(nil)
	var got [sha256.Size]byte
	if _, err := io.ReadFull(hr.r, got[:]); err != nil {
		return 0, fmt.Errorf("%w: checksum: %v", errBadSnapshot, err)
	}
	if !bytes.Equal(want, got[:]) {
		return 0, fmt.Errorf("%w: checksum mismatch", errBadSnapshot)
	}
	if err := b.Delete(k.restoring(), nil); err != nil {
		return 0, err
	}
	if err := b.Commit(pebble.Sync); err != nil {
		return 0, fmt.Errorf("%w: restore: %v", errStore, err)
	}
	return applied, nil
}

// writeRecords writes every key (relative to the group prefix) and value of
// the group but the restore marker, in key order, each length-framed: the
// body of a snapshot stream, and what a state hash covers.
func writeRecords(w io.Writer, v *view, k keys) (count uint64, err error) {
	var tmp [binary.MaxVarintLen64]byte
	lo, hi := k.groupBounds()
	skip := k.restoring()
	err = v.scan(lo, hi, false, func(key, val []byte) (bool, error) {
		if bytes.Equal(key, skip) {
			return true, nil
		}
		if len(val) > maxSnapshotValue {
			return false, fmt.Errorf("%w: value of %q is %d bytes, over the %d limit", errBadSnapshot, key, len(val), maxSnapshotValue)
		}
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
