// Package raftgroup is the machinery that Coffer's Pebble-backed Raft groups
// (raftmeta's shards and the cluster's system group) share: Raft timing and
// configuration, the start-up check of the Raft stores against the state,
// key ranges, snapshot stream framing, command envelopes, applied-index
// tracking and proposing through Raft.
//
// It holds no state machine of its own: each group keeps its own records,
// commands, error sentinels and on-disk formats, and uses these helpers
// where its logic is the same as every other group's.
package raftgroup
