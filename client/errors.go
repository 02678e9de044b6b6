package client

import (
	"errors"
	"fmt"
	"net/http"
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
	ErrConflict = errors.New("conflict")
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
	}
	return nil
}

// statusCode is the code assumed for an error answer without a wire.Error
// body (from a proxy, say).
func statusCode(status int) string {
	switch status {
	case http.StatusBadRequest:
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
}

func (e *Error) Error() string {
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
