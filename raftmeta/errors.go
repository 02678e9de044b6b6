package raftmeta

import (
	"errors"
	"fmt"

	"github.com/coffer-dev/coffer/internal/wirecode"
	"github.com/coffer-dev/coffer/raftmeta/metapath"
)

// Sentinel errors. Every error returned by this package wraps exactly one of
// them (test with errors.Is), and each has a stable wire Code.
var (
	// ErrNotLeader: this replica is not the group's leader, and the command
	// was not proposed. The error is a *NotLeaderError naming the leader, if
	// one is known. Safe to retry at the leader.
	ErrNotLeader = errors.New("not the leader")
	// ErrUnknownOutcome: a command was proposed but Raft failed before its
	// result was known (leadership lost, shutdown, timeout). It may or may
	// not have been applied: retry with the same request ID to learn which.
	ErrUnknownOutcome = errors.New("outcome unknown: retry with the same request ID")
	// ErrConflict: a precondition (expected revision, must-not-exist) failed.
	// The *OpError carries the current revision.
	ErrConflict = errors.New("conflict")
	// ErrNotFound: no such user, namespace, file, folder or revision.
	ErrNotFound = errors.New("not found")
	// ErrExists: the name or path is already taken.
	ErrExists = errors.New("already exists")
	// ErrCaseConflict: the folder already holds a name that differs only by
	// case (after Unicode case folding) or Unicode normalisation.
	ErrCaseConflict = errors.New("a name differing only by case exists")
	// ErrInvalidPath: the path breaks the path rules (see package metapath).
	ErrInvalidPath = metapath.ErrInvalidPath
	// ErrInvalidName: a user name breaks the user-name rules.
	ErrInvalidName = errors.New("invalid user name")
	// ErrInvalidArgument: a request is malformed (missing request ID, empty
	// batch, negative size, ...).
	ErrInvalidArgument = errors.New("invalid argument")
	// ErrQuota: the commit would take the namespace over its owner's quota.
	ErrQuota = errors.New("quota exceeded")
	// ErrNotFolder: a path component that must be a folder is a file.
	ErrNotFolder = errors.New("not a folder")
	// ErrIsFolder: a file operation names a folder.
	ErrIsFolder = errors.New("is a folder")
	// ErrInvalidMove: a folder cannot be moved into itself or its subtree,
	// and the root cannot be moved or deleted.
	ErrInvalidMove = errors.New("invalid move")
	// ErrCursorExpired: the journal no longer holds records after this
	// cursor (retention trimmed them); list afresh and take a new cursor.
	ErrCursorExpired = errors.New("cursor expired")
	// ErrBadCredentials: wrong user name or password.
	ErrBadCredentials = errors.New("bad credentials")
	// ErrClosed: the shard is shut down.
	ErrClosed = errors.New("shard closed")
	// ErrCorruptStore: a store on disk is unreadable or inconsistent.
	ErrCorruptStore = errors.New("corrupt store")
	// ErrOffsetMismatch: an upload append names another offset than the
	// upload's size so far (or a commit that finishes an upload another
	// size). The *OpError's Offset is the upload's size: where to resume.
	ErrOffsetMismatch = errors.New("offset mismatch")
	// ErrTooMany: a per-namespace limit on open records is reached
	// (MaxUploadsPerNamespace open uploads).
	ErrTooMany = errors.New("too many")
)

// Code is a stable wire code for an error. The set is append-only: a code,
// once published, keeps its meaning forever.
type Code string

// The wire codes, one per sentinel.
const (
	CodeOK              Code = ""
	CodeNotLeader       Code = "not_leader"
	CodeUnknownOutcome  Code = "unknown_outcome"
	CodeConflict        Code = "conflict"
	CodeNotFound        Code = "not_found"
	CodeExists          Code = "exists"
	CodeCaseConflict    Code = "case_conflict"
	CodeInvalidPath     Code = "invalid_path"
	CodeInvalidName     Code = "invalid_name"
	CodeInvalidArgument Code = "invalid_argument"
	CodeQuota           Code = "quota_exceeded"
	CodeNotFolder       Code = "not_a_folder"
	CodeIsFolder        Code = "is_a_folder"
	CodeInvalidMove     Code = "invalid_move"
	CodeCursorExpired   Code = "cursor_expired"
	CodeBadCredentials  Code = "bad_credentials"
	CodeUnavailable     Code = "unavailable"
	CodeCorruptStore    Code = "corrupt_store"
	CodeInternal        Code = "internal"
	CodeOffsetMismatch  Code = "offset_mismatch"
	CodeTooMany         Code = "too_many"
)

var codeSentinels = wirecode.Table[Code]{
	{Code: CodeNotLeader, Err: ErrNotLeader},
	{Code: CodeUnknownOutcome, Err: ErrUnknownOutcome},
	{Code: CodeConflict, Err: ErrConflict},
	{Code: CodeNotFound, Err: ErrNotFound},
	{Code: CodeExists, Err: ErrExists},
	{Code: CodeCaseConflict, Err: ErrCaseConflict},
	{Code: CodeInvalidPath, Err: ErrInvalidPath},
	{Code: CodeInvalidName, Err: ErrInvalidName},
	{Code: CodeInvalidArgument, Err: ErrInvalidArgument},
	{Code: CodeQuota, Err: ErrQuota},
	{Code: CodeNotFolder, Err: ErrNotFolder},
	{Code: CodeIsFolder, Err: ErrIsFolder},
	{Code: CodeInvalidMove, Err: ErrInvalidMove},
	{Code: CodeCursorExpired, Err: ErrCursorExpired},
	{Code: CodeBadCredentials, Err: ErrBadCredentials},
	{Code: CodeUnavailable, Err: ErrClosed},
	{Code: CodeCorruptStore, Err: ErrCorruptStore},
	{Code: CodeOffsetMismatch, Err: ErrOffsetMismatch},
	{Code: CodeTooMany, Err: ErrTooMany},
}

// CodeOf returns the wire code of err: CodeOK for nil, CodeInternal for an
// error that wraps none of the sentinels.
func CodeOf(err error) Code { return codeSentinels.CodeOf(err, CodeInternal) }

// SentinelOf returns the sentinel error for a wire code, or nil if the code
// is unknown (or CodeOK).
func SentinelOf(c Code) error { return codeSentinels.Sentinel(c) }

// NotLeaderError is returned when a command or linearizable read reaches a
// replica that is not the leader. Leader is the leader's Raft address and
// LeaderID its server ID, both empty when no leader is known.
type NotLeaderError struct {
	Leader   string
	LeaderID string
}

func (e *NotLeaderError) Error() string {
	if e.Leader == "" {
		return "not the leader (no leader known)"
	}
	return fmt.Sprintf("not the leader (leader is %s at %s)", e.LeaderID, e.Leader)
}

// Unwrap makes errors.Is(err, ErrNotLeader) true.
func (e *NotLeaderError) Unwrap() error { return ErrNotLeader }

// OpError reports why a command, or one op of a commit batch, failed. When a
// batch fails nothing in it applies; Op is the index of the op that failed
// (-1 for non-commit commands) and Current the revision the target has now
// (0 if it does not exist). For CodeOffsetMismatch, Offset is the offset
// the upload is at (its size so far).
type OpError struct {
	Code    Code   `json:"code"`
	Op      int    `json:"op"`
	Kind    OpKind `json:"kind,omitempty"`
	Path    string `json:"path,omitempty"`
	Current uint64 `json:"current_rev,omitempty"`
	Message string `json:"message,omitempty"`
	Offset  int64  `json:"offset,omitempty"`
}

func (e *OpError) Error() string {
	s := string(e.Code)
	if sentinel := SentinelOf(e.Code); sentinel != nil {
		s = sentinel.Error()
	}
	if e.Op >= 0 && e.Kind != "" {
		s = fmt.Sprintf("op %d (%s %q): %s", e.Op, e.Kind, e.Path, s)
	} else if e.Path != "" {
		s = fmt.Sprintf("%q: %s", e.Path, s)
	}
	if e.Code == CodeConflict {
		s += fmt.Sprintf(" (current revision %d)", e.Current)
	}
	if e.Code == CodeOffsetMismatch {
		s += fmt.Sprintf(" (the upload is at offset %d)", e.Offset)
	}
	if e.Message != "" {
		s += ": " + e.Message
	}
	return s
}

// Unwrap returns the sentinel for the error's code.
func (e *OpError) Unwrap() error {
	if s := SentinelOf(e.Code); s != nil {
		return s
	}
	return errInternal
}

var errInternal = errors.New("internal error")

// opErr builds an *OpError for a non-commit command or a read.
func opErr(code Code, path string, msg string) *OpError {
	return &OpError{Code: code, Op: -1, Path: path, Message: msg}
}
