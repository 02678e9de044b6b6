package workload

import (
	"context"
	"errors"

	"github.com/coffer-dev/coffer/client"
	"github.com/coffer-dev/coffer/jepsen/history"
)

// Effect is what an operation can do to the server's state; Classify
// decides by it what an error means.
type Effect int

const (
	// Read has no effect (a download, a listing, a feed read).
	Read Effect = iota
	// Write may change the state unconditionally or creates a unique
	// element (an upload, a write, a create).
	Write
	// CASIfMatch is a conditional write that requires the file's revision
	// to be the one given (If-Match).
	CASIfMatch
	// CASIfNoneMatch is a conditional write that requires nothing to be
	// live at the path (If-None-Match).
	CASIfNoneMatch
)

// definite are the errors with which the server refuses a mutation before
// it takes effect: a failed precondition, a taken path, a bad request, a
// missing target, a refused user.
var definite = []error{client.ErrConflict, client.ErrExists, client.ErrInvalidArgument, client.ErrNotFound, client.ErrForbidden}

// Classify says how an operation with effect e that returned err ended;
// run is the run's context (not the operation's own, bounded one).
//
//   - No error: ok.
//   - A Write refused with one of ErrConflict, ErrExists,
//     ErrInvalidArgument, ErrNotFound or ErrForbidden: fail (the server
//     answered that it did nothing).
//   - A CAS refused because its precondition did not hold: fail. That is
//     ErrConflict, and for CASIfNoneMatch also ErrExists (but not its
//     "case_conflict" code, which is about another name).
//   - A CAS refused for any other reason (ErrInvalidArgument, ErrNotFound,
//     ErrForbidden, a case conflict): unknown. It did nothing, but the
//     register checker takes a failed CAS as proof that the file was not at
//     the expected revision, and this refusal proves no such thing; unknown
//     (which may or may not have applied) is always safe.
//   - The run ended while the operation was in flight: unknown.
//   - Any other error of a mutation (ErrUnavailable, a timeout, the
//     operation's deadline, a broken connection, a 5xx, anything not
//     listed): unknown, since it may have taken effect.
//   - Any other error of a Read: fail (a read has no effect).
func Classify(run context.Context, e Effect, err error) history.Status {
	switch {
	case err == nil:
		return history.StatusOK
	case e == Write && isDefinite(err), preconditionFailed(e, err):
		return history.StatusFail
	case run.Err() != nil, e != Read:
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

// preconditionFailed reports whether err refuses a CAS with effect e
// because its precondition did not hold.
func preconditionFailed(e Effect, err error) bool {
	switch e {
	case CASIfMatch:
		return errors.Is(err, client.ErrConflict)
	case CASIfNoneMatch:
		if errors.Is(err, client.ErrConflict) {
			return true
		}
		var ce *client.Error
		if errors.As(err, &ce) && ce.Code == "case_conflict" {
			return false // another name that folds like this one is taken
		}
		return errors.Is(err, client.ErrExists)
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
