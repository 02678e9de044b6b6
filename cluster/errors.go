// Package cluster is the Coffer node: it hosts the node's Raft groups on
// one multiplexed port, its block store, membership, bootstrap and join,
// the placement controller and the internal gRPC and HTTP services.
//
// See DESIGN.md beside this file for how it works and why.
package cluster

import "errors"

// Sentinel errors (test with errors.Is).
var (
	// ErrInvalidConfig: a Config failed validation.
	ErrInvalidConfig = errors.New("invalid node config")
	// ErrWrongCluster: the data directory or the nodes joined belong to
	// another cluster.
	ErrWrongCluster = errors.New("wrong cluster")
	// ErrDataDir: the data directory cannot be used (permissions, another
	// node's name, a newer layout).
	ErrDataDir = errors.New("unusable data directory")
	// ErrClosed: the node is shut down.
	ErrClosed = errors.New("node closed")
	// ErrNotReady: the node has not joined a formed cluster yet.
	ErrNotReady = errors.New("node not ready")
	// ErrUnknownNode: no such node in the cluster.
	ErrUnknownNode = errors.New("unknown node")
)
