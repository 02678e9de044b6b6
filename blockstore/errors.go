package blockstore

import (
	"errors"

	"github.com/coffer-dev/coffer/internal/wirecode"
)

// Sentinel errors. Every error from the blockstore packages wraps at most
// one of them (test with errors.Is), and each has a stable wire Code.
var (
	// ErrNotFound: no such block here (or, through replication, on any
	// reachable replica).
	ErrNotFound = errors.New("block not found")
	// ErrHashMismatch: the bytes offered for a Ref do not hash to it. The
	// block is refused and nothing is stored.
	ErrHashMismatch = errors.New("block hash mismatch")
	// ErrTooLarge: the block is larger than the configured maximum.
	ErrTooLarge = errors.New("block too large")
	// ErrCorrupt: a stored copy failed verification on read. It is never
	// returned as data; the copy is dropped from the index (so Has reports
	// it missing and a re-Put or repair rewrites it) and counted.
	ErrCorrupt = errors.New("stored block corrupt")
	// ErrDiskFull: the store has no room for the block (ENOSPC, or less free
	// space than the configured reserve). No partial block is left behind.
	ErrDiskFull = errors.New("disk full")
	// ErrInvalidRef: a string is not a block reference.
	ErrInvalidRef = errors.New("invalid block reference")
	// ErrInvalidArgument: a malformed request (zero Ref, nil callback, ...).
	ErrInvalidArgument = errors.New("invalid argument")
	// ErrUnavailable: too few block nodes answered to meet the write quorum
	// or to find a readable copy. Safe to retry.
	ErrUnavailable = errors.New("too few block replicas available")
	// ErrClosed: the store or client is closed.
	ErrClosed = errors.New("block store closed")
	// ErrInvalidConfig: a Config failed validation.
	ErrInvalidConfig = errors.New("invalid config")
)

// Code is a stable wire code for an error. The set is append-only: a code,
// once published, keeps its meaning forever.
type Code string

// The wire codes, one per sentinel.
const (
	CodeOK              Code = ""
	CodeNotFound        Code = "not_found"
	CodeHashMismatch    Code = "hash_mismatch"
	CodeTooLarge        Code = "too_large"
	CodeCorrupt         Code = "corrupt"
	CodeDiskFull        Code = "disk_full"
	CodeInvalidRef      Code = "invalid_ref"
	CodeInvalidArgument Code = "invalid_argument"
	CodeUnavailable     Code = "unavailable"
	CodeClosed          Code = "closed"
	CodeInvalidConfig   Code = "invalid_config"
	CodeInternal        Code = "internal"
)

var codeSentinels = wirecode.Table[Code]{
	{Code: CodeNotFound, Err: ErrNotFound},
	{Code: CodeHashMismatch, Err: ErrHashMismatch},
	{Code: CodeTooLarge, Err: ErrTooLarge},
	{Code: CodeCorrupt, Err: ErrCorrupt},
	{Code: CodeDiskFull, Err: ErrDiskFull},
	{Code: CodeInvalidRef, Err: ErrInvalidRef},
	{Code: CodeInvalidArgument, Err: ErrInvalidArgument},
	{Code: CodeUnavailable, Err: ErrUnavailable},
	{Code: CodeClosed, Err: ErrClosed},
	{Code: CodeInvalidConfig, Err: ErrInvalidConfig},
}

// CodeOf returns the wire code of err: CodeOK for nil, CodeInternal for an
// error that wraps none of the sentinels.
func CodeOf(err error) Code { return codeSentinels.CodeOf(err, CodeInternal) }

// SentinelOf returns the sentinel for a wire code, or nil if the code is
// unknown, CodeOK or CodeInternal.
func SentinelOf(c Code) error { return codeSentinels.Sentinel(c) }
