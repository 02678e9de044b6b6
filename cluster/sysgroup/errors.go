package sysgroup

import (
	"errors"
	"fmt"

	"github.com/coffer-dev/coffer/raftmeta"
)

// Sentinel errors (test with errors.Is). A command that reaches a replica
// that is not the leader fails with a *raftmeta.NotLeaderError (wrapping
// raftmeta.ErrNotLeader), and one whose outcome Raft could not report wraps
// raftmeta.ErrUnknownOutcome: retry it with the same request ID.
var (
	// ErrInvalidArgument: a request or a Config is malformed, or a node
	// state change is not a legal transition.
	ErrInvalidArgument = errors.New("invalid argument")
	// ErrExists: the cluster is already initialised with another identity,
	// or the group is already bootstrapped.
	ErrExists = errors.New("already exists")
	// ErrNotInitialised: the cluster identity has not been set (Init).
	ErrNotInitialised = errors.New("cluster not initialised")
	// ErrNotFound: no such node.
	ErrNotFound = errors.New("not found")
	// ErrClosed: the group is shut down.
	ErrClosed = errors.New("system group closed")
	// ErrCorruptStore: a store on disk is unreadable or inconsistent.
	ErrCorruptStore = errors.New("corrupt store")
)

// Result codes: how a refusal computed by the state machine travels through
// the Raft future and the dedup record. Stored in replicated state, so they
// never change.
const (
	codeOK              = ""
	codeInvalidArgument = "invalid_argument"
	codeExists          = "exists"
	codeNotInitialised  = "not_initialised"
	codeNotFound        = "not_found"
	codeCorrupt         = "corrupt_store"
	codeUnknownOutcome  = "unknown_outcome" // never stored: the entry was not applied here
)

func sentinelOf(code string) error {
	switch code {
	case codeInvalidArgument:
		return ErrInvalidArgument
	case codeExists:
		return ErrExists
	case codeNotInitialised:
		return ErrNotInitialised
	case codeNotFound:
		return ErrNotFound
	case codeCorrupt:
		return ErrCorruptStore
	case codeUnknownOutcome:
		return raftmeta.ErrUnknownOutcome
	}
	return fmt.Errorf("%w: unknown result code %q", raftmeta.ErrUnknownOutcome, code)
}

func codeOf(err error) string {
	switch {
	case errors.Is(err, ErrInvalidArgument):
		return codeInvalidArgument
	case errors.Is(err, ErrExists):
		return codeExists
	case errors.Is(err, ErrNotInitialised):
		return codeNotInitialised
	case errors.Is(err, ErrNotFound):
		return codeNotFound
	}
	return codeCorrupt
}

// errStore marks a failure to read or write Pebble inside the state
// machine: the entry is not applied here and the FSM stops.
var errStore = errors.New("state store failure")
