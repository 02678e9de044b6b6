package raftmeta

import "encoding/binary"

// Key layout. Every key of a group starts with the group prefix
// 'g' + groupID (8 bytes, big-endian), so many groups can share one Pebble
// instance and a group's state is one contiguous key range. After the
// prefix, one tag byte names the record type:
//
//	a                              applied Raft index (8 bytes)
//	c                              counters (JSON: next ID, dedup low-water mark)
//	u  userID                      User
//	U  fold(name)                  userID (8 bytes): case-insensitive name index
//	s  ns                          Namespace
//	n  ns nodeID                   Node
//	t  ns parentID fold(name)      child nodeID (8 bytes): the tree
//	r  ns nodeID rev               Revision
//	j  ns seq                      JournalRecord
//	d  ns requestID                dedup record: first result of a request ID
//	q  index ns requestID          dedup eviction queue, ordered by Raft index
//	x                              "restore in progress" marker
const (
	tagApplied   = 'a'
	tagCounters  = 'c'
	tagUser      = 'u'
	tagUserName  = 'U'
	tagNamespace = 's'
	tagNode      = 'n'
	tagTree      = 't'
	tagRev       = 'r'
	tagJournal   = 'j'
	tagDedup     = 'd'
	tagDedupQ    = 'q'
	tagRestoring = 'x'
)

// keys builds the keys of one group.
type keys struct {
	prefix []byte // 'g' + groupID
}

func newKeys(group uint64) keys {
	p := make([]byte, 9)
	p[0] = 'g'
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

func (k keys) applied() []byte               { return k.key(tagApplied) }
func (k keys) counters() []byte              { return k.key(tagCounters) }
func (k keys) restoring() []byte             { return k.key(tagRestoring) }
func (k keys) user(id uint64) []byte         { return k.key(tagUser, u64(id)) }
func (k keys) userName(fold string) []byte   { return k.key(tagUserName, []byte(fold)) }
func (k keys) namespace(ns uint64) []byte    { return k.key(tagNamespace, u64(ns)) }
func (k keys) node(ns, id uint64) []byte     { return k.key(tagNode, u64(ns), u64(id)) }
func (k keys) rev(ns, id, rev uint64) []byte { return k.key(tagRev, u64(ns), u64(id), u64(rev)) }
func (k keys) revs(ns, id uint64) []byte     { return k.key(tagRev, u64(ns), u64(id)) }
func (k keys) journal(ns, seq uint64) []byte { return k.key(tagJournal, u64(ns), u64(seq)) }
func (k keys) journals(ns uint64) []byte     { return k.key(tagJournal, u64(ns)) }
func (k keys) children(ns, parent uint64) []byte {
	return k.key(tagTree, u64(ns), u64(parent))
}
func (k keys) child(ns, parent uint64, fold string) []byte {
	return k.key(tagTree, u64(ns), u64(parent), []byte(fold))
}
func (k keys) dedup(ns uint64, rid string) []byte { return k.key(tagDedup, u64(ns), []byte(rid)) }
func (k keys) dedupQ(index, ns uint64, rid string) []byte {
	return k.key(tagDedupQ, u64(index), u64(ns), []byte(rid))
}
func (k keys) tag(t byte) []byte { return k.key(t) }

// end returns the smallest key greater than every key with prefix p.
func prefixEnd(p []byte) []byte {
	end := append([]byte(nil), p...)
	for i := len(end) - 1; i >= 0; i-- {
		end[i]++
		if end[i] != 0 {
			return end[:i+1]
		}
	}
	return nil // p is all 0xff: no upper bound
}

// groupBounds returns the key range [lo, hi) of the whole group.
func (k keys) groupBounds() (lo, hi []byte) {
	return k.prefix, prefixEnd(k.prefix)
}
