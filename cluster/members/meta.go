package members

import (
	"encoding/json"
	"fmt"
	"slices"

	"github.com/hashicorp/memberlist"
)

// MetaVersion is the first byte of an encoded Meta; the JSON document follows.
const MetaVersion byte = 1

// MaxMetaSize is memberlist's limit on a node's encoded metadata.
const MaxMetaSize = memberlist.MetaMaxSize

// RoleBlock is the role of a node that serves blocks (listed by BlockNodes).
const RoleBlock = "block"

// Meta is what a node publishes about itself over gossip: its roles and the
// addresses of its services. It is sent as one version byte and JSON, and
// must encode to at most MaxMetaSize bytes.
type Meta struct {
	// Roles the node plays ("block", ...).
	Roles []string `json:"roles,omitempty"`
	// GRPCAddr is the node's internal gRPC address (HOST:PORT).
	GRPCAddr string `json:"grpc,omitempty"`
	// RaftAddr is the node's multiplexed Raft address (HOST:PORT).
	RaftAddr string `json:"raft,omitempty"`
	// HTTPAddr is the node's HTTP address (HOST:PORT).
	HTTPAddr string `json:"http,omitempty"`
	// ClusterID names the cluster the node belongs to; empty before the
	// cluster is bootstrapped (it then matches any cluster).
	ClusterID string `json:"cluster,omitempty"`
	// Shards is the cluster's number of shard groups, once the node knows
	// it (0 before).
	Shards int `json:"shards,omitempty"`
	// Leads lists the Raft groups the node leads (for routing).
	Leads []uint64 `json:"leads,omitempty"`
	// Draining is set while the node is being removed: it takes no new
	// replicas or blocks and hands its own over.
	Draining bool `json:"draining,omitempty"`
	// Stopping is set while the node shuts down: it hands its leaderships
	// over and should be given none.
	Stopping bool `json:"stopping,omitempty"`
	// BootstrapExpect is the node's --bootstrap-expect (0: join only).
	BootstrapExpect int `json:"expect,omitempty"`
}

// HasRole reports whether the node plays role.
func (m Meta) HasRole(role string) bool { return slices.Contains(m.Roles, role) }

// sameCluster reports whether two nodes may be in one cluster: their
// ClusterIDs are equal or either is empty.
func sameCluster(a, b string) bool { return a == "" || b == "" || a == b }

func encodeMeta(m Meta) ([]byte, error) {
	js, err := json.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("members: encode meta: %w", err)
	}
	if 1+len(js) > MaxMetaSize {
		return nil, fmt.Errorf("members: node meta is %d bytes, more than the limit of %d", 1+len(js), MaxMetaSize)
	}
	return append([]byte{MetaVersion}, js...), nil
}

func decodeMeta(b []byte) (Meta, error) {
	var m Meta
	if len(b) == 0 {
		return m, fmt.Errorf("members: empty node meta")
	}
	if b[0] != MetaVersion {
		return m, fmt.Errorf("members: node meta version %d, want %d", b[0], MetaVersion)
	}
	if err := json.Unmarshal(b[1:], &m); err != nil {
		return Meta{}, fmt.Errorf("members: decode node meta: %w", err)
	}
	return m, nil
}
