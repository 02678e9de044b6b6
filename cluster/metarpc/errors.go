package metarpc

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/coffer-dev/coffer/internal/wirecode"
	"github.com/coffer-dev/coffer/raftmeta"
)

// Sentinel errors of this package (test with errors.Is). Errors of the
// shards themselves wrap raftmeta's sentinels.
var (
	// ErrNoReplica: the node hosts no replica of the group asked for. Ask
	// a node that does.
	ErrNoReplica = errors.New("no replica of the group on this node")
	// ErrUnknownMethod: the server does not know the method (an older
	// node).
	ErrUnknownMethod = errors.New("unknown method")
	// ErrUnavailable: the call failed in transport (the node cannot be
	// reached, or went away); the server never answered. Safe to retry;
	// for a mutating call also see raftmeta.ErrUnknownOutcome.
	ErrUnavailable = errors.New("metadata service unavailable")
	// ErrInvalidConfig: a ClientConfig failed validation.
	ErrInvalidConfig = errors.New("invalid metarpc config")
	// ErrClosed: the Pool is closed.
	ErrClosed = errors.New("metarpc pool closed")
)

// The wire codes this package adds to raftmeta's (same append-only set
// rules).
const (
	CodeNoReplica     raftmeta.Code = "no_replica"
	CodeUnknownMethod raftmeta.Code = "unknown_method"
)

var ownCodes = wirecode.Table[raftmeta.Code]{
	{Code: CodeNoReplica, Err: ErrNoReplica},
	{Code: CodeUnknownMethod, Err: ErrUnknownMethod},
}

// CodeOf returns the wire code of err: this package's codes, then
// raftmeta.CodeOf (CodeOK for nil), then raftmeta.CodeUnavailable for an
// error that wraps only ErrUnavailable, else CodeInternal.
func CodeOf(err error) raftmeta.Code {
	if c := ownCodes.CodeOf(err, ""); c != "" {
		return c
	}
	c := raftmeta.CodeOf(err)
	if c == raftmeta.CodeInternal && errors.Is(err, ErrUnavailable) {
		return raftmeta.CodeUnavailable
	}
	return c
}

// SentinelOf returns the sentinel of a wire code (this package's or
// raftmeta's), or nil for an unknown code.
func SentinelOf(c raftmeta.Code) error {
	if s := ownCodes.Sentinel(c); s != nil {
		return s
	}
	return raftmeta.SentinelOf(c)
}

// grpcCodes maps each wire code to the gRPC code that fits it. Codes
// missing here (CodeInternal, codes added later) are codes.Internal.
var grpcCodes = map[raftmeta.Code]codes.Code{
	raftmeta.CodeNotLeader:       codes.Unavailable,
	raftmeta.CodeUnknownOutcome:  codes.Unknown,
	raftmeta.CodeConflict:        codes.Aborted,
	raftmeta.CodeNotFound:        codes.NotFound,
	raftmeta.CodeExists:          codes.AlreadyExists,
	raftmeta.CodeCaseConflict:    codes.AlreadyExists,
	raftmeta.CodeInvalidPath:     codes.InvalidArgument,
	raftmeta.CodeInvalidName:     codes.InvalidArgument,
	raftmeta.CodeInvalidArgument: codes.InvalidArgument,
	raftmeta.CodeQuota:           codes.ResourceExhausted,
	raftmeta.CodeNotFolder:       codes.FailedPrecondition,
	raftmeta.CodeIsFolder:        codes.FailedPrecondition,
	raftmeta.CodeInvalidMove:     codes.FailedPrecondition,
	raftmeta.CodeCursorExpired:   codes.OutOfRange,
	raftmeta.CodeBadCredentials:  codes.Unauthenticated,
	raftmeta.CodeUnavailable:     codes.Unavailable,
	raftmeta.CodeCorruptStore:    codes.DataLoss,
	raftmeta.CodeInternal:        codes.Internal,
	raftmeta.CodeOffsetMismatch:  codes.FailedPrecondition,
	raftmeta.CodeTooMany:         codes.ResourceExhausted,
	CodeNoReplica:                codes.NotFound,
	CodeUnknownMethod:            codes.Unimplemented,
}

// Metadata keys of the ErrorInfo.
const (
	mdLeaderID   = "leader_id"
	mdLeaderGRPC = "leader_grpc"
	mdOpError    = "op_error"
)

// toStatus turns a server-side error into a gRPC status error carrying an
// ErrorInfo with the error's wire code as Reason; addr maps a leader's node
// name to its gRPC address.
func toStatus(err error, addr func(nodeID string) string) error {
	code := CodeOf(err)
	gc, ok := grpcCodes[code]
	switch {
	case !ok:
		gc = codes.Internal
	case code != raftmeta.CodeInternal:
	case errors.Is(err, context.Canceled):
		gc = codes.Canceled
	case errors.Is(err, context.DeadlineExceeded):
		gc = codes.DeadlineExceeded
	}
	info := &errdetails.ErrorInfo{Reason: string(code), Domain: ErrorDomain}
	var nl *raftmeta.NotLeaderError
	if errors.As(err, &nl) && nl.LeaderID != "" {
		info.Metadata = map[string]string{mdLeaderID: nl.LeaderID, mdLeaderGRPC: addr(nl.LeaderID)}
	}
	var oe *raftmeta.OpError
	if errors.As(err, &oe) {
		if b, jerr := json.Marshal(oe); jerr == nil { // an OpError always marshals
			if info.Metadata == nil {
				info.Metadata = make(map[string]string, 1)
			}
			info.Metadata[mdOpError] = string(b)
		}
	}
	return wirecode.StatusError(gc, err.Error(), info)
}

// remoteError is an error from an RPC: the server's own error (its message,
// its sentinel and the rebuilt *raftmeta.OpError or
// *raftmeta.NotLeaderError) or a transport failure.
type remoteError struct {
	op   string
	msg  string
	errs []error // what it wraps: details first, then sentinels
}

func (e *remoteError) Error() string { return "metarpc: " + e.op + ": " + e.msg }

func (e *remoteError) Unwrap() []error { return e.errs }

// fromRPC turns the error of a gRPC call into the error the Client
// returns. ctx is the caller's context: once it is done, its error is the
// answer. mutating says whether the call changes state, sent whether the
// request may have reached the server: both make a transport failure an
// unknown outcome.
func fromRPC(ctx context.Context, op string, err error, mutating, sent bool) error {
	unknown := mutating && sent
	if cerr := ctx.Err(); cerr != nil {
		if unknown {
			return fmt.Errorf("metarpc: %s: %w: %w", op, raftmeta.ErrUnknownOutcome, cerr)
		}
		return fmt.Errorf("metarpc: %s: %w", op, cerr)
	}
	st := status.Convert(err)
	if info := errorInfo(st); info != nil {
		code := raftmeta.Code(info.GetReason())
		re := &remoteError{op: op, msg: st.Message()}
		md := info.GetMetadata()
		if code == raftmeta.CodeNotLeader {
			nl := &raftmeta.NotLeaderError{Leader: md[mdLeaderGRPC], LeaderID: md[mdLeaderID]}
			re.msg = nl.Error()
			re.errs = append(re.errs, nl)
		}
		if js, ok := md[mdOpError]; ok {
			oe := new(raftmeta.OpError)
			if jerr := json.Unmarshal([]byte(js), oe); jerr == nil {
				re.errs = append(re.errs, oe)
			}
		}
		if sentinel := SentinelOf(code); sentinel != nil {
			re.errs = append(re.errs, sentinel)
			if code == raftmeta.CodeUnavailable { // the replica is closed
				re.errs = append(re.errs, ErrUnavailable)
			}
		} else if c := st.Code(); c == codes.Canceled || c == codes.DeadlineExceeded {
			// The server gave up on the call while the caller had not:
			// our CallTimeout, or a server going away.
			re.errs = append(re.errs, ErrUnavailable)
			if unknown {
				re.errs = append(re.errs, raftmeta.ErrUnknownOutcome)
			}
		}
		return re
	}
	// No ErrorInfo: gRPC itself failed the call, not the service.
	re := &remoteError{op: op, msg: st.Code().String() + ": " + st.Message()}
	switch st.Code() {
	case codes.Unavailable, codes.DeadlineExceeded, codes.Canceled:
		re.errs = append(re.errs, ErrUnavailable)
		if unknown {
			re.errs = append(re.errs, raftmeta.ErrUnknownOutcome)
		}
	}
	return re
}

// errorInfo returns the service's ErrorInfo in st, or nil.
func errorInfo(st *status.Status) *errdetails.ErrorInfo { return wirecode.ErrorInfo(st, ErrorDomain) }
