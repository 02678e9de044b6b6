package adminrpc

import (
	"context"
	"errors"
	"fmt"

	"github.com/hashicorp/raft"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/coffer-dev/coffer/internal/wirecode"
	"github.com/coffer-dev/coffer/raftmeta"
)

// Sentinel errors (test with errors.Is). Each has a stable wire Code.
var (
	// ErrNotFound: no such node, the node hosts no replica of the group,
	// or (block calls) the node has no block store.
	ErrNotFound = errors.New("not found")
	// ErrNotLeader: the change needs the group's leader and this node is
	// not it; the error is a *NotLeaderError naming the leader if known.
	// Nothing was changed: retry at the leader.
	ErrNotLeader = errors.New("not the leader")
	// ErrInvalidArgument: a request is malformed (unknown change kind,
	// missing node, ...).
	ErrInvalidArgument = errors.New("invalid argument")
	// ErrStale: a GroupChange's PrevIndex no longer matches the group's
	// configuration index (it changed since the plan was made).
	ErrStale = errors.New("stale configuration index")
	// ErrUnavailable: the node cannot be reached, or could not reach what
	// it needed to answer. Safe to retry.
	ErrUnavailable = errors.New("admin service unavailable")
)

// Code is a stable wire code for an error. The set is append-only: a code,
// once published, keeps its meaning forever.
type Code string

// The wire codes, one per sentinel.
const (
	CodeOK              Code = ""
	CodeNotFound        Code = "not_found"
	CodeNotLeader       Code = "not_leader"
	CodeInvalidArgument Code = "invalid_argument"
	CodeStale           Code = "stale"
	CodeUnavailable     Code = "unavailable"
	CodeInternal        Code = "internal"
)

var codeSentinels = wirecode.Table[Code]{
	{Code: CodeNotLeader, Err: ErrNotLeader},
	{Code: CodeNotFound, Err: ErrNotFound},
	{Code: CodeInvalidArgument, Err: ErrInvalidArgument},
	{Code: CodeStale, Err: ErrStale},
	{Code: CodeUnavailable, Err: ErrUnavailable},
}

// CodeOf returns the wire code of err: CodeOK for nil, CodeInternal for an
// error that wraps none of the sentinels.
func CodeOf(err error) Code { return codeSentinels.CodeOf(err, CodeInternal) }

// SentinelOf returns the sentinel error of a wire code, or nil if the code
// is unknown (or CodeOK).
func SentinelOf(c Code) error { return codeSentinels.Sentinel(c) }

// NotLeaderError is the error of a call that needs a group's leader on a
// node that is not it. Leader is the leader's gRPC address and LeaderID
// its node name; either is empty when unknown.
type NotLeaderError struct {
	LeaderID string
	Leader   string
}

func (e *NotLeaderError) Error() string {
	switch {
	case e.LeaderID == "":
		return "not the leader (no leader known)"
	case e.Leader == "":
		return fmt.Sprintf("not the leader (leader is %s)", e.LeaderID)
	}
	return fmt.Sprintf("not the leader (leader is %s at %s)", e.LeaderID, e.Leader)
}

// Unwrap makes errors.Is(err, ErrNotLeader) true.
func (e *NotLeaderError) Unwrap() error { return ErrNotLeader }

// grpcCodes maps each wire code to the gRPC code that fits it. Codes
// missing here are codes.Internal.
var grpcCodes = map[Code]codes.Code{
	CodeNotFound:        codes.NotFound,
	CodeNotLeader:       codes.Unavailable,
	CodeInvalidArgument: codes.InvalidArgument,
	CodeStale:           codes.Aborted,
	CodeUnavailable:     codes.Unavailable,
	CodeInternal:        codes.Internal,
}

// Metadata keys of the ErrorInfo.
const (
	mdLeaderID = "leader_id"
	mdLeader   = "leader"
)

// fromService turns the not-leader errors of raftmeta and hashicorp/raft
// into a *NotLeaderError (addr maps the leader's node name to its gRPC
// address; nil if unknown), keeping the rest as they are.
func fromService(err error, addr func(string) string) error {
	var own *NotLeaderError
	if errors.As(err, &own) {
		return err
	}
	nl := &NotLeaderError{}
	var rnl *raftmeta.NotLeaderError
	switch {
	case errors.As(err, &rnl):
		nl.LeaderID = rnl.LeaderID
	case errors.Is(err, raftmeta.ErrNotLeader), errors.Is(err, raft.ErrNotLeader):
	default:
		return err
	}
	if addr != nil && nl.LeaderID != "" {
		nl.Leader = addr(nl.LeaderID)
	}
	return nl
}

// toStatus turns a server-side error into a gRPC status error carrying an
// ErrorInfo with the error's wire code as Reason.
func toStatus(err error, gc codes.Code) error {
	code := CodeOf(err)
	if gc == codes.OK {
		var ok bool
		if gc, ok = grpcCodes[code]; !ok {
			gc = codes.Internal
		}
		if code == CodeInternal {
			switch {
			case errors.Is(err, context.Canceled):
				gc = codes.Canceled
			case errors.Is(err, context.DeadlineExceeded):
				gc = codes.DeadlineExceeded
			}
		}
	}
	info := &errdetails.ErrorInfo{Reason: string(code), Domain: ErrorDomain}
	var nl *NotLeaderError
	if errors.As(err, &nl) {
		info.Metadata = map[string]string{mdLeaderID: nl.LeaderID, mdLeader: nl.Leader}
	}
	return wirecode.StatusError(gc, err.Error(), info)
}

// remoteError is an error from an RPC: the server's own error (its message
// and sentinel) or a transport failure (wrapping ErrUnavailable).
type remoteError struct {
	op   string
	msg  string
	errs []error
}

func (e *remoteError) Error() string { return "adminrpc: " + e.op + ": " + e.msg }

func (e *remoteError) Unwrap() []error { return e.errs }

// fromRPC turns the error of a gRPC call into the error the Client
// returns. ctx is the caller's context: once it is done, its error is the
// answer.
func fromRPC(ctx context.Context, op string, err error) error {
	if cerr := ctx.Err(); cerr != nil {
		return fmt.Errorf("adminrpc: %s: %w", op, cerr)
	}
	st := status.Convert(err)
	if info := errorInfo(st); info != nil {
		code := Code(info.GetReason())
		re := &remoteError{op: op, msg: st.Message()}
		if code == CodeNotLeader {
			md := info.GetMetadata()
			re.errs = append(re.errs, &NotLeaderError{LeaderID: md[mdLeaderID], Leader: md[mdLeader]})
		} else if sentinel := SentinelOf(code); sentinel != nil {
			re.errs = append(re.errs, sentinel)
		} else if c := st.Code(); c == codes.Canceled || c == codes.DeadlineExceeded {
			re.errs = append(re.errs, ErrUnavailable) // the server gave up
		}
		return re
	}
	// No ErrorInfo: gRPC itself failed the call, not the service.
	re := &remoteError{op: op, msg: st.Code().String() + ": " + st.Message()}
	switch st.Code() {
	case codes.Unavailable, codes.DeadlineExceeded, codes.Canceled:
		re.errs = append(re.errs, ErrUnavailable)
	}
	return re
}

// errorInfo returns the service's ErrorInfo in st, or nil.
func errorInfo(st *status.Status) *errdetails.ErrorInfo { return wirecode.ErrorInfo(st, ErrorDomain) }
