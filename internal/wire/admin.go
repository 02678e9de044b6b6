// Package wire holds the JSON shapes that the server's HTTP API and the
// client library share, so the client need not import server packages.
package wire

// ClusterStatus is the cluster as one node sees it (`coffer admin cluster status`).
type ClusterStatus struct {
	ClusterID string `json:"cluster_id"`
	// Node is the name of the node that answered.
	Node   string        `json:"node"`
	Shards int           `json:"shards"`
	Nodes  []NodeStatus  `json:"nodes"`
	Groups []GroupStatus `json:"groups"`
	// Problems lists what the answering node could not find out (a group
	// leader that did not answer, ...). Empty when the view is complete.
	Problems []string `json:"problems,omitempty"`
}

// NodeStatus is one node: its gossip state, addresses and block usage.
type NodeStatus struct {
	Name string `json:"name"`
	// State is "alive", "suspect", "dead", "left"; Removing is set while the
	// node is being drained for removal.
	State    string   `json:"state"`
	Removing bool     `json:"removing,omitempty"`
	Roles    []string `json:"roles,omitempty"`
	Gossip   string   `json:"gossip_addr,omitempty"`
	GRPC     string   `json:"grpc_addr,omitempty"`
	Raft     string   `json:"raft_addr,omitempty"`
	HTTP     string   `json:"http_addr,omitempty"`
	// Leads lists the groups this node leads, as it gossips them.
	Leads []uint64 `json:"leads,omitempty"`
	// Block is the node's block store usage (nil if unknown or no block
	// role).
	Block *BlockUsage `json:"block,omitempty"`
}

// BlockUsage is a block node's store usage.
type BlockUsage struct {
	Blocks    int64 `json:"blocks"`
	LiveBytes int64 `json:"live_bytes"`
	DiskBytes int64 `json:"disk_bytes"`
	FreeBytes int64 `json:"free_bytes"`
}

// GroupStatus is one Raft group as its leader reports it.
type GroupStatus struct {
	ID uint64 `json:"id"`
	// Kind is "system" (group 0) or "shard".
	Kind     string          `json:"kind"`
	Leader   string          `json:"leader,omitempty"`
	Term     uint64          `json:"term"`
	Commit   uint64          `json:"commit_index"`
	Applied  uint64          `json:"applied_index"`
	Replicas []ReplicaStatus `json:"replicas"`
}

// ReplicaStatus is one member of a group's Raft configuration.
type ReplicaStatus struct {
	Node string `json:"node"`
	// Addr is the Raft address the group's configuration has for it.
	Addr string `json:"raft_addr,omitempty"`
	// Suffrage is "voter" or "nonvoter".
	Suffrage string `json:"suffrage"`
	// Applied is the replica's applied index as it reported it (0 when it
	// did not answer).
	Applied uint64 `json:"applied_index"`
}

// Error is the one JSON shape of every HTTP error answer: a stable code
// (append-only set; clients decide by it) and a human message, plus the
// optional fields some codes add: CurrentRev for a conflict (the target's
// revision now, 0 if it does not exist), Op and Path for the op of a
// commit batch that failed, Offset for an upload append at the wrong
// offset (the offset to resume from), Head for a change-feed cursor that
// must be reset.
type Error struct {
	Code       string `json:"code"`
	Message    string `json:"message"`
	CurrentRev uint64 `json:"current_rev,omitempty"`
	Op         *int   `json:"op,omitempty"`
	Path       string `json:"path,omitempty"`
	Offset     *int64 `json:"offset,omitempty"`
	Head       uint64 `json:"head,omitempty"`
}

// RemoveNodeResult answers POST /v1/admin/nodes/{name}/remove.
type RemoveNodeResult struct {
	Node  string `json:"node"`
	State string `json:"state"`
}

// GroupHashes answers GET /v1/admin/groups/{id}/hashes: the state hash of
// every replica in the group's Raft configuration. Replicas at the same
// applied index must have the same hash; compare them once every replica
// reports the same applied index.
type GroupHashes struct {
	Group uint64 `json:"group"`
	// Leader is the group's leader whose configuration lists the
	// replicas ("" if none was known and the answering node's own
	// replica's configuration was used).
	Leader   string        `json:"leader,omitempty"`
	Replicas []ReplicaHash `json:"replicas"`
}

// ReplicaHash is one replica's state hash and the applied index it was
// taken at (both from one view of the replica's state).
type ReplicaHash struct {
	Node     string `json:"node"`
	Suffrage string `json:"suffrage"`
	Applied  uint64 `json:"applied_index"`
	// StateHash is the SHA-256 over the replica's whole state, lower-case
	// hex; empty when the replica did not answer (see Error).
	StateHash string `json:"state_hash,omitempty"`
	Error     string `json:"error,omitempty"`
}

// TransferRequest is the optional body of POST
// /v1/admin/groups/{id}/transfer: To names the voter that should lead
// ("" or no body: the voter that leads the fewest groups).
type TransferRequest struct {
	To string `json:"to,omitempty"`
}

// TransferResult answers a leadership transfer: the group's leader once
// the transfer is done, and its term.
type TransferResult struct {
	Group  uint64 `json:"group"`
	Leader string `json:"leader"`
	Term   uint64 `json:"term"`
	// Previous is the leader before the transfer.
	Previous string `json:"previous"`
}

// BlockAudit answers POST /v1/admin/blocks/audit: after a scrub and a
// repair pass on every block node, how many block nodes hold each block.
type BlockAudit struct {
	// Blocks is the number of distinct blocks found on the block nodes.
	Blocks int64 `json:"blocks"`
	// R is the cluster's replica count per block.
	R int `json:"r"`
	// UnderReplicated lists blocks with fewer than R copies (at most
	// MaxAuditList of them); UnderReplicatedTotal counts them all.
	UnderReplicated      []UnderReplicated `json:"under_replicated"`
	UnderReplicatedTotal int64             `json:"under_replicated_total"`
	// Nodes is what each block node did and holds, by name.
	Nodes []BlockAuditNode `json:"nodes"`
}

// MaxAuditList caps BlockAudit.UnderReplicated.
const MaxAuditList = 1000

// UnderReplicated is a block with fewer than R verified copies.
type UnderReplicated struct {
	Ref    string `json:"ref"`
	Copies int    `json:"copies"`
}

// BlockAuditNode is one block node's part in an audit: its scrub (Scanned,
// Corrupt, Repaired), its repair pass (Pushed, HandedOff), what failed in
// either, and the copies it holds afterwards (Blocks). Error says what
// went wrong with the node, if anything. The copies of a node are counted
// only if its scrub and the listing of its store succeeded, and it is not
// draining (its copies are being handed over).
type BlockAuditNode struct {
	Node      string `json:"node"`
	Draining  bool   `json:"draining,omitempty"`
	Scanned   int64  `json:"scanned"`
	Corrupt   int64  `json:"corrupt"`
	Repaired  int64  `json:"repaired"`
	Pushed    int64  `json:"pushed"`
	HandedOff int64  `json:"handed_off"`
	Failed    int64  `json:"failed"`
	Blocks    int64  `json:"blocks"`
	Error     string `json:"error,omitempty"`
}
