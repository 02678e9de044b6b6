package blockrpc

import (
	"context"
	"errors"
	"fmt"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/coffer-dev/coffer/blockstore"
	"github.com/coffer-dev/coffer/internal/wirecode"
)

// grpcCodes maps each blockstore wire code to the gRPC code that fits it.
// Codes missing here (CodeInternal, codes added later) are codes.Internal.
var grpcCodes = map[blockstore.Code]codes.Code{
	blockstore.CodeNotFound:        codes.NotFound,
	blockstore.CodeHashMismatch:    codes.InvalidArgument,
	blockstore.CodeTooLarge:        codes.InvalidArgument,
	blockstore.CodeCorrupt:         codes.DataLoss,
	blockstore.CodeDiskFull:        codes.ResourceExhausted,
	blockstore.CodeInvalidRef:      codes.InvalidArgument,
	blockstore.CodeInvalidArgument: codes.InvalidArgument,
	blockstore.CodeInvalidConfig:   codes.InvalidArgument,
	blockstore.CodeUnavailable:     codes.Unavailable,
	blockstore.CodeClosed:          codes.Unavailable,
	blockstore.CodeInternal:        codes.Internal,
}

// toStatus turns a server-side error into a gRPC status error that carries
// an ErrorInfo with the error's wire code as Reason.
func toStatus(err error) error {
	code := blockstore.CodeOf(err)
	gc, ok := grpcCodes[code]
	switch {
	case !ok:
		gc = codes.Internal
	case code != blockstore.CodeInternal:
	case errors.Is(err, context.Canceled):
		gc = codes.Canceled
	case errors.Is(err, context.DeadlineExceeded):
		gc = codes.DeadlineExceeded
	default:
		// An error gRPC itself raised (a message over the size limit,
		// say) keeps its code.
		if st, isStatus := status.FromError(err); isStatus && st.Code() != codes.Unknown {
			gc = st.Code()
		}
	}
	return wirecode.StatusError(gc, err.Error(), &errdetails.ErrorInfo{Reason: string(code), Domain: ErrorDomain})
}

// remoteError is an error from an RPC: the server's own error (its message
// and, through the ErrorInfo reason, its sentinel) or a transport failure
// (wrapping ErrUnavailable).
type remoteError struct {
	op       string
	msg      string
	sentinel error // nil for an internal error
}

func (e *remoteError) Error() string { return "blockrpc: " + e.op + ": " + e.msg }

func (e *remoteError) Unwrap() error { return e.sentinel }

// fromRPC turns an error from a gRPC call into the error the Client
// returns. ctx is the caller's context: once it is done, its error is the
// answer, whatever the RPC reported.
func fromRPC(ctx context.Context, op string, err error) error {
	if err == nil {
		return nil
	}
	if cerr := ctx.Err(); cerr != nil {
		return fmt.Errorf("blockrpc: %s: %w", op, cerr)
	}
	st, ok := status.FromError(err)
	if !ok {
		return fmt.Errorf("blockrpc: %s: %v", op, err)
	}
	if info := wirecode.ErrorInfo(st, ErrorDomain); info != nil {
		reason := info.GetReason()
		if sentinel := blockstore.SentinelOf(blockstore.Code(reason)); sentinel != nil {
			return &remoteError{op: op, msg: st.Message(), sentinel: sentinel}
		}
		switch st.Code() {
		case codes.Canceled, codes.DeadlineExceeded:
			// The server gave up on the call while the caller had not:
			// our CallTimeout, or a server going away.
			return &remoteError{op: op, msg: st.Message(), sentinel: blockstore.ErrUnavailable}
		}
		return &remoteError{op: op, msg: st.Message()}
	}
	// No ErrorInfo: gRPC itself failed the call, not the block service.
	msg := st.Code().String() + ": " + st.Message()
	switch st.Code() {
	case codes.Unavailable, codes.DeadlineExceeded, codes.Canceled:
		return &remoteError{op: op, msg: msg, sentinel: blockstore.ErrUnavailable}
	}
	return &remoteError{op: op, msg: msg}
}
