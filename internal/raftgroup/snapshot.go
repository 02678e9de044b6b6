package raftgroup

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"io"
)

// Snapshot stream framing, the same for every group (each names its own
// magic, and so its state machine and format version):
//
//	magic          MagicLen bytes
//	applied index  uint64 big-endian (the state machine's)
//	records        uvarint(len key) key uvarint(len value) value
//	               (keys relative to the group prefix, never empty)
//	end mark       uvarint(0)
//	record count   uint64 big-endian
//	SHA-256        of every byte before it
//
// Keys are relative to the group prefix, so a snapshot restores into the
// same group on any node.

// MagicLen is the length of a snapshot stream's magic.
const MagicLen = 12

// MaxSnapshotKey bounds one key in a snapshot stream a reader accepts.
const MaxSnapshotKey = 1 << 20

// ErrBadSnapshot: a snapshot stream is malformed, fails its checksum, or
// there is no applied state to write one of.
var ErrBadSnapshot = errors.New("bad snapshot")

// WriteSnapshot writes a whole stream to w: the header with magic and
// applied, the records that records writes (with WriteRecord, in key order;
// it returns how many), the end mark, the count and the checksum. A group
// that has applied nothing has no state to snapshot (ErrBadSnapshot).
func WriteSnapshot(w io.Writer, magic []byte, applied uint64, records func(io.Writer) (count uint64, err error)) error {
	if len(magic) != MagicLen {
		return fmt.Errorf("%w: magic %q is not %d bytes", ErrBadSnapshot, magic, MagicLen)
	}
	if applied == 0 {
		return fmt.Errorf("%w: the group has no applied state to snapshot", ErrBadSnapshot)
	}
	h := sha256.New()
	bw := bufio.NewWriterSize(io.MultiWriter(w, h), 1<<20)
	bw.Write(magic)
	bw.Write(U64(applied))
	count, err := records(bw)
	if err != nil {
		return err
	}
	var tmp [binary.MaxVarintLen64]byte
	bw.Write(tmp[:binary.PutUvarint(tmp[:], 0)])
	bw.Write(U64(count))
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("write snapshot: %w", err)
	}
	if _, err := w.Write(h.Sum(nil)); err != nil {
		return fmt.Errorf("write snapshot: %w", err)
	}
	return nil
}

// WriteRecord writes one record (key relative to the group prefix) in the
// stream's framing; a state hash over the same framing covers exactly what
// a snapshot holds.
func WriteRecord(w io.Writer, key, val []byte) error {
	var tmp [binary.MaxVarintLen64]byte
	w.Write(tmp[:binary.PutUvarint(tmp[:], uint64(len(key)))])
	w.Write(key)
	w.Write(tmp[:binary.PutUvarint(tmp[:], uint64(len(val)))])
	if _, err := w.Write(val); err != nil {
		return fmt.Errorf("write snapshot: %w", err)
	}
	return nil
}

// ReadSnapshotIndex reads a stream's header and returns its applied index.
// kind names the stream in the error for a wrong magic ("not a <kind>").
func ReadSnapshotIndex(r io.Reader, magic []byte, kind string) (uint64, error) {
	var hdr [MagicLen + 8]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return 0, fmt.Errorf("%w: header: %v", ErrBadSnapshot, err)
	}
	if !bytes.Equal(hdr[:MagicLen], magic) {
		return 0, fmt.Errorf("%w: not a %s", ErrBadSnapshot, kind)
	}
	return binary.BigEndian.Uint64(hdr[MagicLen:]), nil
}

// SnapshotReader reads a stream record by record, hashing as it goes.
// Nothing it returns is trusted until Finish has checked the count and the
// checksum. Every error it returns wraps ErrBadSnapshot.
type SnapshotReader struct {
	hr       *hashReader
	maxValue uint64
	applied  uint64
	count    uint64
	ended    bool
}

// NewSnapshotReader reads the header of the stream in r (see
// ReadSnapshotIndex); values over maxValue bytes are refused.
func NewSnapshotReader(r io.Reader, magic []byte, kind string, maxValue uint64) (*SnapshotReader, error) {
	hr := &hashReader{r: bufio.NewReaderSize(r, 1<<20), h: sha256.New()}
	applied, err := ReadSnapshotIndex(hr, magic, kind)
	if err != nil {
		return nil, err
	}
	return &SnapshotReader{hr: hr, maxValue: maxValue, applied: applied}, nil
}

// Applied returns the applied index in the stream's header.
func (s *SnapshotReader) Applied() uint64 { return s.applied }

// Next returns the next record, its key with prefix put back in front, in
// fresh slices; a nil key at the end mark.
func (s *SnapshotReader) Next(prefix []byte) (key, val []byte, err error) {
	if s.ended {
		return nil, nil, nil
	}
	klen, err := binary.ReadUvarint(s.hr)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: record: %v", ErrBadSnapshot, err)
	}
	if klen == 0 {
		s.ended = true
		return nil, nil, nil
	}
	if klen > MaxSnapshotKey {
		return nil, nil, fmt.Errorf("%w: key of %d bytes", ErrBadSnapshot, klen)
	}
	key = make([]byte, len(prefix)+int(klen))
	copy(key, prefix)
	if _, err := io.ReadFull(s.hr, key[len(prefix):]); err != nil {
		return nil, nil, fmt.Errorf("%w: key: %v", ErrBadSnapshot, err)
	}
	vlen, err := binary.ReadUvarint(s.hr)
	if err != nil || vlen > s.maxValue {
		return nil, nil, fmt.Errorf("%w: value length: %v", ErrBadSnapshot, err)
	}
	val = make([]byte, vlen)
	if _, err := io.ReadFull(s.hr, val); err != nil {
		return nil, nil, fmt.Errorf("%w: value: %v", ErrBadSnapshot, err)
	}
	s.count++
	return key, val, nil
}

// Finish reads the trailer after the end mark and checks the record count
// and the checksum.
func (s *SnapshotReader) Finish() error {
	if !s.ended {
		return fmt.Errorf("%w: records not read to the end mark", ErrBadSnapshot)
	}
	var trailer [8]byte
	if _, err := io.ReadFull(s.hr, trailer[:]); err != nil {
		return fmt.Errorf("%w: trailer: %v", ErrBadSnapshot, err)
	}
	if n := binary.BigEndian.Uint64(trailer[:]); n != s.count {
		return fmt.Errorf("%w: %d records, trailer says %d", ErrBadSnapshot, s.count, n)
	}
	want := s.hr.h.Sum(nil)
	var got [sha256.Size]byte
	if _, err := io.ReadFull(s.hr.r, got[:]); err != nil {
		return fmt.Errorf("%w: checksum: %v", ErrBadSnapshot, err)
	}
	if !bytes.Equal(want, got[:]) {
		return fmt.Errorf("%w: checksum mismatch", ErrBadSnapshot)
	}
	return nil
}

// ExpectEOF reports an error if anything follows the checksum (call it
// after Finish).
func (s *SnapshotReader) ExpectEOF() error {
	switch _, err := s.hr.r.ReadByte(); {
	case err == nil:
		return fmt.Errorf("%w: bytes after the checksum", ErrBadSnapshot)
	case err != io.EOF:
		return fmt.Errorf("%w: after the checksum: %v", ErrBadSnapshot, err)
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
