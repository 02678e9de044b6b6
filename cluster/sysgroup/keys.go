package sysgroup

import "github.com/coffer-dev/coffer/internal/raftgroup"

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
	raftgroup.Keys // prefixByte + groupID
}

func newKeys(group uint64) keys { return keys{raftgroup.NewKeys(prefixByte, group)} }

func u64(v uint64) []byte { return raftgroup.U64(v) }

func (k keys) applied() []byte           { return k.Key(tagApplied) }
func (k keys) info() []byte              { return k.Key(tagInfo) }
func (k keys) node(name string) []byte   { return k.Key(tagNode, []byte(name)) }
func (k keys) setting(key string) []byte { return k.Key(tagSetting, []byte(key)) }
func (k keys) dedup(rid string) []byte   { return k.Key(tagDedup, []byte(rid)) }
func (k keys) dedupCount() []byte        { return k.Key(tagDedupCount) }
func (k keys) dedupQ(index uint64, rid string) []byte {
	return k.Key(tagDedupQ, u64(index), []byte(rid))
}
