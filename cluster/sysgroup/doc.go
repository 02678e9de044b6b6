// Package sysgroup is the cluster's system group (Raft group 0): the
// replicated record of the cluster's identity, settings, session-signing key
// and the lifecycle of its nodes.
//
// It is one hashicorp/raft group, built like a raftmeta shard but much
// smaller, on the same plumbing (internal/raftgroup). Its state lives in a
// caller-owned Pebble DB that other groups may share, under the key prefix
// 'S' + groupID (8 bytes, big-endian); raftmeta uses 'g', so the two never
// collide. Every command is one Raft entry,
// applied in one fsynced Pebble batch together with the applied index, so a
// restart skips entries it has already applied. Every command carries a
// request ID and is applied at most once: a retry with the same ID (among
// the last DedupLimit) returns the first result and changes nothing.
//
// Reads (Info, Nodes, Node, Settings) serve this replica's applied state
// without a leadership check; call Barrier first, on the leader, for a
// linearizable view.
package sysgroup
