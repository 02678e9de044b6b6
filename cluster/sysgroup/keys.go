package sysgroup

import "encoding/binary"

// Key layout. Every key of the group starts with the prefix
// 'S' + groupID (8 bytes, big-endian), so the group's state is one
// contiguous key range of a shared Pebble DB. After the prefix, one tag
// byte names the record type:
//
//	a                  applied Raft index (8 bytes)
//	i                  Info (JSON)
//	n  name            NodeRecord (JSON)
//	s  key             setting value (raw bytes)
//	d  requestID       dedup record: the first result of a request ID (JSON)
//	q  index requestID dedup eviction queue, ordered by Raft index (empty)
//	c                  number of dedup records (8 bytes)
const (
	tagApplied    = 'a'
	tagInfo       = 'i'
	tagNode       = 'n'
	tagSetting    = 's'
	tagDedup      = 'd'
	tagDedupQ     = 'q'
	tagDedupCount = 'c'
)

// prefixByte starts every key of a system group.
const prefixByte = 'S'

// keys builds the keys of one group.
type keys struct {
	prefix []byte // 'S' + groupID
}

func newKeys(group uint64) keys {
	p := make([]byte, 9)
	p[0] = prefixByte
	binary.BigEndian.PutUint64(p[1:], group)
	return keys{prefix: p}
}

func (k keys) key(tag byte, parts ...[]byte) []byte {
	n := len(k.prefix) + 1
	for _, p := range parts {
		n += len(p)
	}
	b := make([]byte, 0, n)
	b = append(b, k.prefix...)
	b = append(b, tag)
	for _, p := range parts {
		b = append(b, p...)
	}
	return b
}

func u64(v uint64) []byte {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], v)
	return b[:]
}

func (k keys) applied() []byte           { return k.key(tagApplied) }
func (k keys) info() []byte              { return k.key(tagInfo) }
func (k keys) node(name string) []byte   { return k.key(tagNode, []byte(name)) }
func (k keys) setting(key string) []byte { return k.key(tagSetting, []byte(key)) }
func (k keys) dedup(rid string) []byte   { return k.key(tagDedup, []byte(rid)) }
func (k keys) dedupCount() []byte        { return k.key(tagDedupCount) }
func (k keys) dedupQ(index uint64, rid string) []byte {
	return k.key(tagDedupQ, u64(index), []byte(rid))
}
func (k keys) tag(t byte) []byte { return k.key(t) }

// tagBounds returns the key range [lo, hi) of every record with tag t.
func (k keys) tagBounds(t byte) (lo, hi []byte) {
	lo = k.key(t)
	return lo, prefixEnd(lo)
}

// groupBounds returns the key range [lo, hi) of the whole group.
func (k keys) groupBounds() (lo, hi []byte) {
	return k.prefix, prefixEnd(k.prefix)
}

// prefixEnd returns the smallest key greater than every key with prefix p
// (nil if p is all 0xff: no upper bound).
func prefixEnd(p []byte) []byte {
	end := append([]byte(nil), p...)
	for i := len(end) - 1; i >= 0; i-- {
		end[i]++
		if end[i] != 0 {
			return end[:i+1]
		}
	}
	return nil
}
