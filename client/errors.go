package client

import (
	"errors"
	"fmt"
	"net/http"
	"time"
)

// Sentinel errors (test with errors.Is). An *Error matches the sentinel of
// its code; connection failures match ErrUnavailable.
var (
	// ErrInvalidConfig: a Config failed validation.
	ErrInvalidConfig = errors.New("invalid client config")
	// ErrUnauthenticated: code "unauthenticated" (no or wrong credentials).
	ErrUnauthenticated = errors.New("unauthenticated")
	// ErrForbidden: code "forbidden" (the user may not do this).
	ErrForbidden = errors.New("forbidden")
	// ErrNotFound: code "not_found".
	ErrNotFound = errors.New("not found")
	// ErrInvalidArgument: code "invalid_argument".
	ErrInvalidArgument = errors.New("invalid argument")
	// ErrUnavailable: code "unavailable", or no server could be reached.
	// For a request that is not safe to repeat (a POST) it can also mean
	// that the outcome is unknown: the server may have acted on it.
	ErrUnavailable = errors.New("unavailable")
	// ErrConflict: code "conflict" (a precondition or concurrent change).
	// The *Error's CurrentRev is the target's revision now.
	ErrConflict = errors.New("conflict")
	// ErrExists: code "exists" or "case_conflict" (the path or name is
	// taken).
	ErrExists = errors.New("exists")
	// ErrSessionEnded: code "token_expired" or "token_revoked": log in
	// again.
	ErrSessionEnded = errors.New("session ended")
	// ErrHashMismatch: code "hash_mismatch", or downloaded bytes that do
	// not hash to the SHA-256 the server sent.
	ErrHashMismatch = errors.New("hash mismatch")
	// ErrCursorReset: code "cursor_reset" (410 from the change feed): the
	// cursor is before the oldest record kept or ahead of the head. List
	// the whole tree afresh, then follow the feed from the *Error's Head.
	ErrCursorReset = errors.New("cursor reset")
)

// codeSentinel maps the wire's error codes to sentinels. Codes not listed
// still arrive as *Error.
func codeSentinel(code string) error {
	switch code {
	case "unauthenticated":
		return ErrUnauthenticated
	case "forbidden":
		return ErrForbidden
	case "not_found":
		return ErrNotFound
	case "invalid_argument":
		return ErrInvalidArgument
	case "unavailable":
		return ErrUnavailable
	case "conflict":
		return ErrConflict
	case "exists", "case_conflict":
		return ErrExists
	case "token_expired", "token_revoked":
		return ErrSessionEnded
	case "hash_mismatch":
		return ErrHashMismatch
	case "cursor_reset":
		return ErrCursorReset
	}
	return nil
}

// statusCode is the code assumed for an error answer without a wire.Error
// body (from a proxy, say).
func statusCode(status int) string {
	switch status {
	case http.StatusBadRequest, http.StatusRequestedRangeNotSatisfiable:
		return "invalid_argument"
	case http.StatusUnauthorized:
		return "unauthenticated"
	case http.StatusForbidden:
		return "forbidden"
	case http.StatusNotFound:
		return "not_found"
	case http.StatusConflict, http.StatusPreconditionFailed:
		return "conflict"
	case http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		return "unavailable"
	}
	return "internal"
}

// Error is an error answer from the server.
type Error struct {
	Status  int    // the HTTP status
	Code    string // the wire's stable error code, e.g. "not_found"
	Message string // for humans
	// CurrentRev is the target's revision now, for a conflict and the like
	// (0: absent or not given).
	CurrentRev uint64
	// Op is the index of the failed op of a commit (nil: not given).
	Op *int
	// Path is the path the error is about ("" if not given).
	Path string
	// RetryAfter is the server's Retry-After for a 429 (0: not given).
	RetryAfter time.Duration
	// Head is the change feed's head to follow from after a cursor_reset
	// (0: absent or not given).
	Head uint64
}

func (e *Error) Error() string {
	if e.CurrentRev != 0 && e.Code == "conflict" {
		return fmt.Sprintf("%s (%s; the current revision is %d)", e.Message, e.Code, e.CurrentRev)
	}
	if e.Code == "cursor_reset" {
		return fmt.Sprintf("%s (%s; head %d)", e.Message, e.Code, e.Head)
	}
	if e.Message == "" {
		return fmt.Sprintf("%s (HTTP %d)", e.Code, e.Status)
	}
	return fmt.Sprintf("%s (%s)", e.Message, e.Code)
}

// Is makes errors.Is(err, ErrNotFound) and the like work by code.
func (e *Error) Is(target error) bool {
	s := codeSentinel(e.Code)
	return s != nil && s == target
}
