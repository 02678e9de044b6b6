package raftmeta

import "github.com/coffer-dev/coffer/internal/raftgroup"

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
//	k  tokenID                     session token revocation (JSON: expiry), kept until the token expires
//	b  ns ref                      block reference index: how many retained revisions (r) of
//	                               the namespace name the block ref (8 bytes; absent when 0)
//	v                              version of the block reference index (8 bytes); absent in
//	                               state written before the index existed, which is then rebuilt
//	o  ns uploadID                 Upload: an open resumable upload session
//	O  ns uploadID index           one block of an upload (ref, then size: 40 bytes), index from 0
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
	tagToken     = 'k'
	tagRefs      = 'b'
	tagRefsVer   = 'v'
	tagUpload    = 'o'
	tagUpBlock   = 'O'
	tagRestoring = 'x'
)

// keys builds the keys of one group.
type keys struct {
	raftgroup.Keys // prefix 'g' + groupID
}

func newKeys(group uint64) keys { return keys{raftgroup.NewKeys('g', group)} }

func u64(v uint64) []byte { return raftgroup.U64(v) }

func prefixEnd(p []byte) []byte { return raftgroup.PrefixEnd(p) }

func (k keys) applied() []byte               { return k.Key(tagApplied) }
func (k keys) counters() []byte              { return k.Key(tagCounters) }
func (k keys) restoring() []byte             { return k.Key(tagRestoring) }
func (k keys) user(id uint64) []byte         { return k.Key(tagUser, u64(id)) }
func (k keys) userName(fold string) []byte   { return k.Key(tagUserName, []byte(fold)) }
func (k keys) namespace(ns uint64) []byte    { return k.Key(tagNamespace, u64(ns)) }
func (k keys) node(ns, id uint64) []byte     { return k.Key(tagNode, u64(ns), u64(id)) }
func (k keys) rev(ns, id, rev uint64) []byte { return k.Key(tagRev, u64(ns), u64(id), u64(rev)) }
func (k keys) revs(ns, id uint64) []byte     { return k.Key(tagRev, u64(ns), u64(id)) }
func (k keys) journal(ns, seq uint64) []byte { return k.Key(tagJournal, u64(ns), u64(seq)) }
func (k keys) journals(ns uint64) []byte     { return k.Key(tagJournal, u64(ns)) }
func (k keys) children(ns, parent uint64) []byte {
	return k.Key(tagTree, u64(ns), u64(parent))
}
func (k keys) child(ns, parent uint64, fold string) []byte {
	return k.Key(tagTree, u64(ns), u64(parent), []byte(fold))
}
func (k keys) dedup(ns uint64, rid string) []byte { return k.Key(tagDedup, u64(ns), []byte(rid)) }
func (k keys) token(id string) []byte             { return k.Key(tagToken, []byte(id)) }
func (k keys) ref(ns uint64, ref Sum) []byte      { return k.Key(tagRefs, u64(ns), ref[:]) }
func (k keys) refsVersion() []byte                { return k.Key(tagRefsVer) }
func (k keys) uploads(ns uint64) []byte           { return k.Key(tagUpload, u64(ns)) }
func (k keys) upload(ns uint64, id string) []byte { return k.Key(tagUpload, u64(ns), []byte(id)) }
func (k keys) upBlocks(ns uint64, id string) []byte {
	return k.Key(tagUpBlock, u64(ns), []byte(id))
}
func (k keys) upBlock(ns uint64, id string, i uint64) []byte {
	return k.Key(tagUpBlock, u64(ns), []byte(id), u64(i))
}
func (k keys) dedupQ(index, ns uint64, rid string) []byte {
	return k.Key(tagDedupQ, u64(index), u64(ns), []byte(rid))
}
