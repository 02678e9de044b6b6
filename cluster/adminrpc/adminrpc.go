// Package adminrpc carries a node's administration operations over gRPC.
//
// The Server serves a Service (types.go; the cluster node implements it)
// as the AdminService of package clusterpb; the Client calls one node's
// AdminService and is itself a Service. Each call is one
// clusterpb.CallRequest: the method name (the Service method's, e.g.
// "ChangeGroup"), the group it concerns (GroupInfo, ChangeGroup, StateHash)
// and a JSON body with the arguments; the answer is the JSON of the
// result. The server refuses a body with a field it does not know
// (invalid_argument) rather than ignore it, and a method it does not know
// (invalid_argument, gRPC code Unimplemented).
//
// # Errors
//
// Every error the server returns is a gRPC status whose code fits the
// error and which carries an errdetails.ErrorInfo with Domain
// "admin.coffer" and the wire code (CodeOf) as Reason; a not-leader answer
// adds the leader's node name (metadata leader_id) and gRPC address
// (leader). The server also turns raftmeta's and hashicorp/raft's
// not-leader errors from the Service into this package's. The Client
// turns the answer back into an error that wraps the same sentinel (and a
// *NotLeaderError for not_leader) and keeps the server's message.
// Failures of the transport itself (no ErrorInfo) wrap ErrUnavailable; the
// caller's own cancellation returns its ctx error. A ChangeGroup that
// failed in transport may have been applied: retrying it with the same
// PrevIndex is safe (ErrStale then says it was).
package adminrpc

// ErrorDomain is the Domain of the errdetails.ErrorInfo attached to every
// error status.
const ErrorDomain = "admin.coffer"

// The method names on the wire.
const (
	methodStatus      = "Status"
	methodRemoveNode  = "RemoveNode"
	methodGroupInfo   = "GroupInfo"
	methodChangeGroup = "ChangeGroup"
	methodClusterKeys = "ClusterKeys"
	methodStateHash   = "StateHash"
	methodScrub       = "ScrubBlocks"
	methodRepair      = "RepairBlocks"
)

// LeaderAddrs, if the Service passed to NewServer also implements it,
// maps a leader's node name to its gRPC address, so that a raftmeta or
// hashicorp/raft not-leader error (which knows only the Raft address) is
// answered with the leader's gRPC address.
type LeaderAddrs interface {
	GRPCAddr(nodeID string) string
}

// removeNodeBody is RemoveNode's request body.
type removeNodeBody struct {
	ID string `json:"id"`
}

// emptyBody is the request body of the methods without arguments.
type emptyBody struct{}
