package raftgroup

import "encoding/binary"

// Keys builds the keys of one group in a Pebble DB that many groups share.
// Every key is Prefix, then a tag byte naming the record type, then the
// record's parts, so a group's state is one contiguous key range and a
// record type one range within it.
type Keys struct {
	// Prefix is a byte naming the kind of group, then the group ID (8
	// bytes, big-endian). Kinds must differ, so groups never collide.
	Prefix []byte
}

// NewKeys returns the keys of group under kind.
func NewKeys(kind byte, group uint64) Keys {
	p := make([]byte, 9)
	p[0] = kind
	binary.BigEndian.PutUint64(p[1:], group)
	return Keys{Prefix: p}
}

// Key returns the key of a record: Prefix, tag, then parts.
func (k Keys) Key(tag byte, parts ...[]byte) []byte {
	n := len(k.Prefix) + 1
	for _, p := range parts {
		n += len(p)
	}
	b := make([]byte, 0, n)
	b = append(b, k.Prefix...)
	b = append(b, tag)
	for _, p := range parts {
		b = append(b, p...)
	}
	return b
}

// Bounds returns the key range [lo, hi) of the whole group.
func (k Keys) Bounds() (lo, hi []byte) {
	return k.Prefix, PrefixEnd(k.Prefix)
}

// TagBounds returns the key range [lo, hi) of every record with tag.
func (k Keys) TagBounds(tag byte) (lo, hi []byte) {
	lo = k.Key(tag)
	return lo, PrefixEnd(lo)
}

// U64 encodes v in 8 bytes, big-endian, so keys sort by it.
func U64(v uint64) []byte {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], v)
	return b[:]
}

// PrefixEnd returns the smallest key greater than every key with prefix p,
// or nil if p is all 0xff (there is no upper bound).
func PrefixEnd(p []byte) []byte {
	end := append([]byte(nil), p...)
	for i := len(end) - 1; i >= 0; i-- {
		end[i]++
		if end[i] != 0 {
			return end[:i+1]
		}
	}
	return nil
}
