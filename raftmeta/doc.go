// Package raftmeta is a Coffer metadata shard: one hashicorp/raft group whose
// replicated, Pebble-backed state machine holds users, their namespaces (file
// trees with every revision) and each namespace's change journal.
//
// See DESIGN.md beside this file for how it works and why.
package raftmeta
