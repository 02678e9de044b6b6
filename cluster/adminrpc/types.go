package adminrpc

import (
	"context"
	"time"

	"github.com/coffer-dev/coffer/internal/wire"
)

// Service is what the admin gRPC server serves; the cluster node
// implements it. Every method may be called on any node: Status gathers
// the cluster's view from this node, RemoveNode is forwarded to the system
// group's leader by the implementation, and the Group* methods act on this
// node's own replicas (the placement controller calls them on the node that
// hosts the replica or leads the group).
type Service interface {
	// Status reports the cluster as this node sees it.
	Status(ctx context.Context) (*wire.ClusterStatus, error)
	// RemoveNode drains node id (its replicas move away) and then removes
	// it from the cluster.
	RemoveNode(ctx context.Context, id string) error
	// GroupInfo reports this node's replica of a group (ErrNotFound if the
	// node hosts none).
	GroupInfo(ctx context.Context, group uint64) (*GroupReplica, error)
	// ChangeGroup applies one membership change to a group whose leader is
	// on this node (a not-leader error otherwise).
	ChangeGroup(ctx context.Context, c GroupChange) error
	// ClusterKeys returns the cluster's identity and session-signing key,
	// from the system group (for gateways on nodes that host none of it).
	ClusterKeys(ctx context.Context) (*ClusterKeys, error)
	// StateHash returns the hash of this node's replica of a group and the
	// applied index it was taken at, both from one view of its state
	// (ErrNotFound if the node hosts no replica of the group).
	StateHash(ctx context.Context, group uint64) (*StateHash, error)
	// ScrubBlocks reads and verifies every block of this node's local
	// store once; a corrupt copy is dropped and restored from the other
	// nodes (ErrNotFound if the node has no block store).
	ScrubBlocks(ctx context.Context) (*ScrubResult, error)
	// RepairBlocks runs one repair pass over this node's local store: every
	// block it holds is pushed to those of its R placement nodes that lack
	// it (ErrNotFound if the node has no block store).
	RepairBlocks(ctx context.Context) (*RepairResult, error)
}

// StateHash is one replica's state hash and the applied index it was taken
// at (from the same snapshot of its state): two replicas of a group at the
// same applied index must have the same hash.
type StateHash struct {
	Group   uint64 `json:"group"`
	Node    string `json:"node"`
	Applied uint64 `json:"applied_index"`
	// Hash is the SHA-256 over every key and value of the replica's
	// state, lower-case hex.
	Hash string `json:"state_hash"`
}

// ScrubResult is what one scrub of a node's local block store did.
type ScrubResult struct {
	Node     string `json:"node"`
	Scanned  int64  `json:"scanned"`  // local blocks read
	Bytes    int64  `json:"bytes"`    // bytes read and verified good
	Corrupt  int64  `json:"corrupt"`  // copies that failed verification (dropped)
	Repaired int64  `json:"repaired"` // of those, restored from other nodes
	Failed   int64  `json:"failed"`   // blocks that could not be read or restored
}

// RepairResult is what one repair pass over a node's local block store
// did.
type RepairResult struct {
	Node        string   `json:"node"`
	Scanned     int64    `json:"scanned"`      // local blocks examined
	Pushed      int64    `json:"pushed"`       // copies written to placement nodes that lacked them
	BytesPushed int64    `json:"bytes_pushed"` // their bytes
	HandedOff   int64    `json:"handed_off"`   // surplus local copies deleted once R placement nodes held them
	Failed      int64    `json:"failed"`       // copies that could not be checked, read, pushed or handed off
	Unreachable []string `json:"unreachable,omitempty"`
}

// ClusterKeys is the cluster's identity and the key that signs session
// tokens. It is secret: the internal API must be private (or use mTLS).
type ClusterKeys struct {
	ClusterID  string `json:"cluster_id"`
	SigningKey []byte `json:"signing_key"`
}

// GroupReplica is one node's replica of a group.
type GroupReplica struct {
	Group   uint64               `json:"group"`
	Node    string               `json:"node"`
	State   string               `json:"state"` // Raft state: Leader, Follower, Candidate
	Leader  string               `json:"leader,omitempty"`
	Term    uint64               `json:"term"`
	Commit  uint64               `json:"commit_index"`
	Applied uint64               `json:"applied_index"`
	LastLog uint64               `json:"last_log_index"`
	Config  []wire.ReplicaStatus `json:"config"`
	// ConfigIndex is the log index of the latest configuration; Committed
	// says whether it is committed (only one change at a time per group).
	ConfigIndex     uint64        `json:"config_index"`
	ConfigCommitted bool          `json:"config_committed"`
	LastContact     time.Duration `json:"last_contact"`
}

// ChangeKind names a group membership change.
type ChangeKind string

// The membership changes.
const (
	AddNonvoter ChangeKind = "add_nonvoter"
	AddVoter    ChangeKind = "add_voter"
	Remove      ChangeKind = "remove"
	// Transfer moves leadership to Node.
	Transfer ChangeKind = "transfer"
	// Drain tells the node that receives it that it is being removed
	// (Group and PrevIndex are ignored): it stops taking blocks and hands
	// its own over.
	Drain ChangeKind = "drain"
)

// GroupChange is one membership change of one group, conditional on the
// configuration index it was planned against (stale plans are refused).
type GroupChange struct {
	Group uint64     `json:"group"`
	Kind  ChangeKind `json:"kind"`
	Node  string     `json:"node"`
	// Addr is the node's Raft address (for adds).
	Addr string `json:"addr,omitempty"`
	// PrevIndex is the configuration index the change was planned against
	// (0: unconditional).
	PrevIndex uint64 `json:"prev_index"`
}
