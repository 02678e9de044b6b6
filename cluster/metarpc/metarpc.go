// Package metarpc carries metadata operations to a shard's replica over gRPC.
//
// The Server serves the replicas a node hosts (Shards) as the MetaService
// of package clusterpb; the Client calls one node's MetaService with typed
// methods that mirror *raftmeta.Shard's, with the Raft group added after
// ctx. Neither routes nor retries: a call goes to the node it is given, and
// finding the leader is the caller's job (the not-leader error says where
// it is).
//
// # Wire format
//
// Every call is one clusterpb.CallRequest: the group, the method name (the
// name of the *raftmeta.Shard method, e.g. "Commit"), and a JSON body with
// the method's arguments; raftmeta's own request and option types travel as
// encoding/json renders them, so a field raftmeta adds travels without a
// change here. A mutating call also carries its request ID in request_id.
// The answer is the JSON of the method's result. The server refuses a body
// with a field it does not know (invalid_argument) rather than ignore it,
// so a newer client's precondition is never silently dropped by an older
// server. WaitChanges carries its timeout in the body; the server caps it
// at MaxWaitTimeout.
//
// # Errors
//
// Every error the server returns is a gRPC status whose code fits the
// error (not_found is NotFound, conflict is Aborted, not_leader is
// Unavailable, ...) and which carries an errdetails.ErrorInfo with Domain
// "meta.coffer" and the wire code (CodeOf: raftmeta's codes plus
// no_replica and unknown_method) as Reason. A not-leader answer adds the
// leader's node name (metadata leader_id) and gRPC address (leader_grpc,
// from Shards.GRPCAddr); a *raftmeta.OpError travels whole as JSON
// (metadata op_error), its Offset (offset_mismatch) included.
//
// The Client turns that back into an error that wraps the same sentinel
// (errors.Is works) and keeps the server's message: an *raftmeta.OpError
// equal to the server's (errors.As works), and for not_leader a
// *raftmeta.NotLeaderError whose Leader is the leader's gRPC address — not
// its Raft address as raftmeta's own error has it — and LeaderID its node
// name (Leader is empty when the answering node does not know the
// address). Failures of the transport itself (no ErrorInfo: connection
// refused, server gone) wrap ErrUnavailable. For a mutating call (Commit,
// CreateUser, DeleteUser, SetPassword, SetQuota, Prune, CreateUpload,
// AppendUpload, DeleteUpload, RevokeToken, RevokeSessions), a transport
// failure after the request may have reached the server also wraps
// raftmeta.ErrUnknownOutcome: it may have been applied, and a retry with
// the same request ID is safe and tells. The caller's own cancellation
// returns its ctx error (wrapped with raftmeta.ErrUnknownOutcome too for a
// mutating call that was already sent).
//
// # Transport security
//
// The Client runs over any grpc.ClientConnInterface and a Pool dials with
// the options it is given, so TLS is the caller's choice. Request bodies
// carry passwords (CreateUser, SetPassword, Authenticate) and answers carry
// password hashes (User; Users clears them): use TLS between nodes that
// do not share a trusted network.
package metarpc

import (
	"context"
	"time"

	"github.com/coffer-dev/coffer/raftmeta"
)

const (
	// ErrorDomain is the Domain of the errdetails.ErrorInfo attached to
	// every error status.
	ErrorDomain = "meta.coffer"
	// MaxWaitTimeout caps the timeout of a WaitChanges call: the server
	// waits at most this long, and the client asks for no more.
	MaxWaitTimeout = 60 * time.Second
	// MaxMsgSize is the largest request or answer the node's server and
	// pool accept (gRPC's defaults, 4 MiB, would refuse a stat of a file
	// of ~48,000 blocks, about 48 GiB). A stat or history answer of a file
	// of more than about a million blocks (~1 TiB) is beyond it today.
	MaxMsgSize = 128 << 20
)

// Shards is the set of metadata replicas a node hosts, as the Server
// needs it.
type Shards interface {
	// Shard returns this node's replica of group, or an error wrapping
	// ErrNoReplica if the node hosts none.
	Shard(group uint64) (Shard, error)
	// GRPCAddr maps a Raft server ID (a node name) to that node's gRPC
	// address ("" if unknown).
	GRPCAddr(nodeID string) string
}

// Shard is the part of *raftmeta.Shard the Server serves, with the same
// signatures and the same meaning.
type Shard interface {
	Commit(ctx context.Context, r raftmeta.CommitRequest) (*raftmeta.CommitResult, error)
	CreateUser(ctx context.Context, r raftmeta.CreateUserRequest) (*raftmeta.User, error)
	DeleteUser(ctx context.Context, requestID, name string) error
	SetPassword(ctx context.Context, requestID, name, password string) error
	SetQuota(ctx context.Context, requestID, name string, quota int64) error
	Authenticate(ctx context.Context, name, password string) (*raftmeta.User, error)
	User(ctx context.Context, name string, o raftmeta.ReadOptions) (*raftmeta.User, error)
	Stat(ctx context.Context, ns uint64, t raftmeta.Target, o raftmeta.StatOptions) (*raftmeta.Entry, error)
	List(ctx context.Context, ns uint64, t raftmeta.Target, o raftmeta.ListOptions) (*raftmeta.ListPage, error)
	History(ctx context.Context, ns uint64, t raftmeta.Target, o raftmeta.HistoryOptions) ([]raftmeta.Revision, error)
	Changes(ctx context.Context, ns, cursor uint64, limit int, o raftmeta.ReadOptions) (*raftmeta.ChangesPage, error)
	WaitChanges(ctx context.Context, ns, cursor uint64, limit int, timeout time.Duration, o raftmeta.ReadOptions) (*raftmeta.ChangesPage, error)
	Prune(ctx context.Context) (*raftmeta.PruneResult, error)

	Referenced(ctx context.Context, ns uint64, refs []raftmeta.Sum, o raftmeta.ReadOptions) ([]bool, error)
	Namespace(ctx context.Context, ns uint64, o raftmeta.ReadOptions) (*raftmeta.Namespace, error)
	Users(ctx context.Context, o raftmeta.UsersOptions) (*raftmeta.UserPage, error)
	CreateUpload(ctx context.Context, requestID string, ns uint64, id, path string, state, meta []byte) (*raftmeta.Upload, error)
	AppendUpload(ctx context.Context, requestID string, ns uint64, id string, offset int64, blocks []raftmeta.Block, state []byte) (*raftmeta.Upload, error)
	GetUpload(ctx context.Context, ns uint64, id string, o raftmeta.ReadOptions) (*raftmeta.Upload, error)
	DeleteUpload(ctx context.Context, requestID string, ns uint64, id string) error
	RevokeToken(ctx context.Context, requestID, tokenID string, expires time.Time) error
	RevokeSessions(ctx context.Context, requestID, name string) (*raftmeta.User, error)
	SessionsValidAfter(ctx context.Context, name string, o raftmeta.ReadOptions) (time.Time, error)
	TokenRevoked(ctx context.Context, tokenID string, o raftmeta.ReadOptions) (bool, error)
}

// The method names on the wire.
const (
	methodCommit       = "Commit"
	methodCreateUser   = "CreateUser"
	methodDeleteUser   = "DeleteUser"
	methodSetPassword  = "SetPassword"
	methodSetQuota     = "SetQuota"
	methodAuthenticate = "Authenticate"
	methodUser         = "User"
	methodStat         = "Stat"
	methodList         = "List"
	methodHistory      = "History"
	methodChanges      = "Changes"
	methodWaitChanges  = "WaitChanges"
	methodPrune        = "Prune"

	methodReferenced         = "Referenced"
	methodNamespace          = "Namespace"
	methodUsers              = "Users"
	methodCreateUpload       = "CreateUpload"
	methodAppendUpload       = "AppendUpload"
	methodGetUpload          = "GetUpload"
	methodDeleteUpload       = "DeleteUpload"
	methodRevokeToken        = "RevokeToken"
	methodRevokeSessions     = "RevokeSessions"
	methodSessionsValidAfter = "SessionsValidAfter"
	methodTokenRevoked       = "TokenRevoked"
)

// The request bodies of the methods whose arguments are not one raftmeta
// request type (Commit's body is a raftmeta.CommitRequest, CreateUser's a
// raftmeta.CreateUserRequest). The request ID of a mutating call travels
// in CallRequest.request_id.
type (
	nameBody struct {
		Name string `json:"name"`
	}
	credentialsBody struct {
		Name     string `json:"name"`
		Password string `json:"password"`
	}
	quotaBody struct {
		Name  string `json:"name"`
		Quota int64  `json:"quota"`
	}
	userBody struct {
		Name    string               `json:"name"`
		Options raftmeta.ReadOptions `json:"options"`
	}
	statBody struct {
		Namespace uint64               `json:"namespace"`
		Target    raftmeta.Target      `json:"target"`
		Options   raftmeta.StatOptions `json:"options"`
	}
	listBody struct {
		Namespace uint64               `json:"namespace"`
		Target    raftmeta.Target      `json:"target"`
		Options   raftmeta.ListOptions `json:"options"`
	}
	historyBody struct {
		Namespace uint64                  `json:"namespace"`
		Target    raftmeta.Target         `json:"target"`
		Options   raftmeta.HistoryOptions `json:"options"`
	}
	changesBody struct {
		Namespace uint64 `json:"namespace"`
		Cursor    uint64 `json:"cursor"`
		Limit     int    `json:"limit"`
		// Timeout is WaitChanges's wait, in nanoseconds (encoding/json's
		// form of a time.Duration); Changes leaves it 0.
		Timeout time.Duration        `json:"timeout,omitempty"`
		Options raftmeta.ReadOptions `json:"options"`
	}
	emptyBody      struct{}
	referencedBody struct {
		Namespace uint64               `json:"namespace"`
		Refs      []raftmeta.Sum       `json:"refs"`
		Options   raftmeta.ReadOptions `json:"options"`
	}
	namespaceBody struct {
		Namespace uint64               `json:"namespace"`
		Options   raftmeta.ReadOptions `json:"options"`
	}
	usersBody struct {
		Options raftmeta.UsersOptions `json:"options"`
	}
	createUploadBody struct {
		Namespace uint64 `json:"namespace"`
		ID        string `json:"id"`
		Path      string `json:"path"`
		State     []byte `json:"state,omitempty"`
		Meta      []byte `json:"meta,omitempty"`
	}
	appendUploadBody struct {
		Namespace uint64           `json:"namespace"`
		ID        string           `json:"id"`
		Offset    int64            `json:"offset"`
		Blocks    []raftmeta.Block `json:"blocks,omitempty"`
		State     []byte           `json:"state,omitempty"`
	}
	uploadBody struct {
		Namespace uint64 `json:"namespace"`
		ID        string `json:"id"`
	}
	getUploadBody struct {
		Namespace uint64               `json:"namespace"`
		ID        string               `json:"id"`
		Options   raftmeta.ReadOptions `json:"options"`
	}
	revokeTokenBody struct {
		TokenID string    `json:"token_id"`
		Expires time.Time `json:"expires"`
	}
	tokenBody struct {
		TokenID string               `json:"token_id"`
		Options raftmeta.ReadOptions `json:"options"`
	}
)
