package localstore

import (
	"encoding/binary"
	"hash/crc32"
	"time"

	"github.com/coffer-dev/coffer/blockstore"
)

// A segment file is a sequence of records, each a fixed header followed by
// the block's bytes:
//
//	magic   [4]byte  "CFBK"
//	version uint8    1
//	_       [3]byte  zero
//	length  uint32   data length (big endian)
//	ref     [32]byte SHA-256 of the data
//	hcrc    uint32   CRC-32C of the 44 bytes before it (the header is 48 bytes)
//
// The data is verified by its SHA-256 (the ref) on every read; the header's
// own checksum and ref let a reader tell a misplaced or torn record from a
// block whose bytes rotted.
const (
	headerSize     = 48
	recordVersion  = 1
	maxSegmentSize = 1 << 40
)

var recordMagic = [4]byte{'C', 'F', 'B', 'K'}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

func encodeHeader(dst []byte, ref blockstore.Ref, length int) {
	_ = dst[headerSize-1]
	copy(dst[0:4], recordMagic[:])
	dst[4] = recordVersion
	dst[5], dst[6], dst[7] = 0, 0, 0
	binary.BigEndian.PutUint32(dst[8:12], uint32(length))
	copy(dst[12:44], ref[:])
	binary.BigEndian.PutUint32(dst[44:48], crc32.Checksum(dst[:44], castagnoli))
}

// checkHeader reports whether hdr is a valid header for ref with the given
// data length.
func checkHeader(hdr []byte, ref blockstore.Ref, length int) bool {
	if len(hdr) < headerSize {
		return false
	}
	if [4]byte(hdr[0:4]) != recordMagic || hdr[4] != recordVersion {
		return false
	}
	if binary.BigEndian.Uint32(hdr[44:48]) != crc32.Checksum(hdr[:44], castagnoli) {
		return false
	}
	return int(binary.BigEndian.Uint32(hdr[8:12])) == length && blockstore.Ref(hdr[12:44]) == ref
}

// Index layout in Pebble:
//
//	'b' ref                  → location (the primary index)
//	's' segment(4) offset(8) → ref      (what lives in a segment, for compaction)
const (
	prefixBlock   = 'b'
	prefixSegment = 's'
	locationSize  = 1 + 4 + 8 + 4 + 8
	locVersion    = 1
)

// location is where a block's record lives.
type location struct {
	seg      uint32
	off      int64 // of the record (its header)
	length   int   // of the data
	storedAt int64 // unix nanoseconds
}

func (l location) recordLen() int64 { return headerSize + int64(l.length) }

func (l location) storedTime() time.Time { return time.Unix(0, l.storedAt) }

func blockKey(ref blockstore.Ref) []byte {
	k := make([]byte, 1+len(ref))
	k[0] = prefixBlock
	copy(k[1:], ref[:])
	return k
}

func segKey(seg uint32, off int64) []byte {
	k := make([]byte, 13)
	k[0] = prefixSegment
	binary.BigEndian.PutUint32(k[1:5], seg)
	binary.BigEndian.PutUint64(k[5:13], uint64(off))
	return k
}

func decodeSegKey(k []byte) (seg uint32, off int64, ok bool) {
	if len(k) != 13 || k[0] != prefixSegment {
		return 0, 0, false
	}
	return binary.BigEndian.Uint32(k[1:5]), int64(binary.BigEndian.Uint64(k[5:13])), true
}

func (l location) encode() []byte {
	v := make([]byte, locationSize)
	v[0] = locVersion
	binary.BigEndian.PutUint32(v[1:5], l.seg)
	binary.BigEndian.PutUint64(v[5:13], uint64(l.off))
	binary.BigEndian.PutUint32(v[13:17], uint32(l.length))
	binary.BigEndian.PutUint64(v[17:25], uint64(l.storedAt))
	return v
}

func decodeLocation(v []byte) (location, bool) {
	if len(v) != locationSize || v[0] != locVersion {
		return location{}, false
	}
	return location{
		seg:      binary.BigEndian.Uint32(v[1:5]),
		off:      int64(binary.BigEndian.Uint64(v[5:13])),
		length:   int(binary.BigEndian.Uint32(v[13:17])),
		storedAt: int64(binary.BigEndian.Uint64(v[17:25])),
	}, true
}
