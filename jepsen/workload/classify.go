package workload

import (
	"context"
	"errors"

	"github.com/coffer-dev/coffer/client"
	"github.com/coffer-dev/coffer/jepsen/history"
)

// definite are the errors with which the server refuses a mutation before
// it takes effect: a failed precondition, a taken path, a bad request, a
// missing target, a refused user.
var definite = []error{client.ErrConflict, client.ErrExists, client.ErrInvalidArgument, client.ErrNotFound, client.ErrForbidden}

// Classify says how an operation that returned err ended; run is the run's
// context (not the operation's own, bounded one) and mutation says whether
// the operation can change the server's state.
//
//   - No error: ok.
//   - A mutation refused with one of ErrConflict, ErrExists,
//     ErrInvalidArgument, ErrNotFound or ErrForbidden: fail (the server
//     answered that it did nothing).
//   - The run ended while the operation was in flight: unknown.
//   - Any other error of a mutation (ErrUnavailable, a timeout, the
//     operation's deadline, a broken connection, a 5xx, anything not
//     listed): unknown, since it may have taken effect.
//   - Any other error of a read: fail (a read has no effect).
func Classify(run context.Context, mutation bool, err error) history.Status {
	switch {
	case err == nil:
		return history.StatusOK
	case mutation && isDefinite(err):
		return history.StatusFail
	case run.Err() != nil, mutation:
		return history.StatusUnknown
	default:
		return history.StatusFail
	}
}

func isDefinite(err error) bool {
	for _, d := range definite {
		if errors.Is(err, d) {
			return true
		}
	}
	return false
}

// complete records p's outcome as Classify says, with out as the output of
// an ok op.
func complete(p *history.Pending, st history.Status, out any, err error) {
	switch st {
	case history.StatusOK:
		p.Ok(out)
	case history.StatusFail:
		p.Fail(err)
	default:
		p.Unknown(err)
	}
}
