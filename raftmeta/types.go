package raftmeta

import (
	"encoding/hex"
	"fmt"
	"time"
)

// Sum is a SHA-256 digest: of a whole file, or of one block (a block's
// content reference). The zero Sum means "none". It is comparable, so it can
// key a map.
type Sum [32]byte

// String returns the lower-case hex form.
func (s Sum) String() string { return hex.EncodeToString(s[:]) }

// IsZero reports whether s is the zero Sum.
func (s Sum) IsZero() bool { return s == Sum{} }

// ParseSum parses 64 hex digits.
func ParseSum(h string) (Sum, error) {
	var s Sum
	if len(h) != 64 {
		return s, fmt.Errorf("%w: sum must be 64 hex digits, got %d characters", ErrInvalidArgument, len(h))
	}
	if _, err := hex.Decode(s[:], []byte(h)); err != nil {
		return s, fmt.Errorf("%w: sum: %v", ErrInvalidArgument, err)
	}
	return s, nil
}

// MarshalText encodes the sum as hex.
func (s Sum) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// UnmarshalText decodes a hex sum; the empty string is the zero Sum.
func (s *Sum) UnmarshalText(b []byte) error {
	if len(b) == 0 {
		*s = Sum{}
		return nil
	}
	v, err := ParseSum(string(b))
	if err != nil {
		return err
	}
	*s = v
	return nil
}

// Block is one content block of a file: its reference and size in bytes.
type Block struct {
	Ref  Sum   `json:"ref"`
	Size int64 `json:"size"`
}

// User is an account. Each user owns one namespace (their file tree).
type User struct {
	ID           uint64    `json:"id"`
	Name         string    `json:"name"`
	PasswordHash string    `json:"password_hash,omitempty"`
	Quota        int64     `json:"quota"` // bytes; 0 means unlimited
	Admin        bool      `json:"admin,omitempty"`
	Namespace    uint64    `json:"namespace"`
	Created      time.Time `json:"created"`
	Deleted      bool      `json:"deleted,omitempty"`
	// SessionsValidAfter ends the user's sessions: every token issued at or
	// before it is revoked. SetPassword and RevokeSessions set it to their
	// proposal time; it never moves back. Zero: no such cut-off.
	SessionsValidAfter time.Time `json:"sessions_valid_after,omitzero"`
	// SessionEpoch counts the times all of the user's sessions were ended
	// (SetPassword, RevokeSessions). A session token names the epoch it
	// was issued in; one from an earlier epoch is revoked.
	SessionEpoch uint64 `json:"session_epoch,omitempty"`
}

// Namespace is a file tree with its journal. Today each user has exactly
// one; shared namespaces would be further namespaces with several members.
type Namespace struct {
	ID      uint64 `json:"id"`
	Owner   uint64 `json:"owner"`
	Root    uint64 `json:"root"` // node ID of the root folder
	Used    int64  `json:"used"` // bytes in live files' current revisions
	Files   int64  `json:"files"`
	Head    uint64 `json:"head"`  // last journal sequence number (0: empty)
	Start   uint64 `json:"start"` // first journal sequence still held
	Deleted bool   `json:"deleted,omitempty"`
}

// Node is a file or folder. Its ID is stable for its lifetime: renames and
// moves change ParentID and Name only. A deleted node is a tombstone
// (Deleted true) that keeps its history and can be restored.
type Node struct {
	ID        uint64  `json:"id"`
	Namespace uint64  `json:"ns"`
	ParentID  uint64  `json:"parent"` // 0 for the root
	Name      string  `json:"name"`
	Dir       bool    `json:"dir,omitempty"`
	Size      int64   `json:"size"`
	Mtime     int64   `json:"mtime"` // client's modification time, Unix nanoseconds
	Mode      uint32  `json:"mode"`  // permission bits, e.g. 0o644 (the executable bit matters)
	Hash      Sum     `json:"hash"`  // SHA-256 of the whole file
	Blocks    []Block `json:"blocks,omitempty"`
	Rev       uint64  `json:"rev"`      // current revision
	Modified  int64   `json:"modified"` // server time of the current revision, Unix nanoseconds
	Deleted   bool    `json:"deleted,omitempty"`
}

// Revision is one retained version of a node. Revisions are numbered 1, 2,
// 3, ... per node, strictly increasing; a deletion is a tombstone revision.
type Revision struct {
	Rev      uint64  `json:"rev"`
	Op       OpKind  `json:"op"`
	Time     int64   `json:"time"` // server time, Unix nanoseconds
	Deleted  bool    `json:"deleted,omitempty"`
	ParentID uint64  `json:"parent"`
	Name     string  `json:"name"`
	Dir      bool    `json:"dir,omitempty"`
	Size     int64   `json:"size"`
	Mtime    int64   `json:"mtime"`
	Mode     uint32  `json:"mode"`
	Hash     Sum     `json:"hash"`
	Blocks   []Block `json:"blocks,omitempty"`
	From     uint64  `json:"restored_from,omitempty"` // for a restore: the revision restored
}

// Change is one node changed by a journal record, as it was right after the
// commit.
type Change struct {
	NodeID   uint64 `json:"id"`
	Rev      uint64 `json:"rev"`
	Op       OpKind `json:"op"`
	ParentID uint64 `json:"parent"`
	Name     string `json:"name"`
	Path     string `json:"path"` // the node's path at commit time
	OldPath  string `json:"old_path,omitempty"`
	Dir      bool   `json:"dir,omitempty"`
	Deleted  bool   `json:"deleted,omitempty"`
	Size     int64  `json:"size"`
	Hash     Sum    `json:"hash"`
	// Mode and Mtime are a live file's or folder's attributes after the
	// commit (absent for deletions, and in records written before they
	// were added).
	Mode  uint32 `json:"mode,omitempty"`
	Mtime int64  `json:"mtime,omitempty"`
}

// JournalRecord is one commit to a namespace. Seq is gap-free and strictly
// increasing per namespace; a cursor is the Seq of the last record seen.
type JournalRecord struct {
	Seq       uint64   `json:"seq"`
	Index     uint64   `json:"index"` // Raft log index of the commit
	Time      int64    `json:"time"`
	RequestID string   `json:"request_id"`
	Changes   []Change `json:"changes"`
}

// OpKind names an operation in a commit batch (and in revisions and
// journal changes).
type OpKind string

// The op kinds.
const (
	OpPut     OpKind = "put"
	OpMkdir   OpKind = "mkdir"
	OpDelete  OpKind = "delete"
	OpMove    OpKind = "move"
	OpRestore OpKind = "restore"
)

// Op is one operation of a commit batch.
//
// Preconditions: IfMatch, when non-zero, requires the target's current
// revision to be exactly IfMatch (a tombstone's revision counts);
// IfNoneMatch requires the target not to exist (a tombstone counts as not
// existing). A failed precondition is ErrConflict with the current revision.
type Op struct {
	Kind OpKind `json:"kind"`
	Path string `json:"path,omitempty"`
	// To is the destination path of a move.
	To string `json:"to,omitempty"`
	// NodeID selects a restore's target by ID instead of Path (for a deleted
	// node whose path is now taken or unknown); Path is then where it is
	// restored to if it must be re-linked, or empty for its old place.
	NodeID      uint64 `json:"node_id,omitempty"`
	IfMatch     uint64 `json:"if_match,omitempty"`
	IfNoneMatch bool   `json:"if_none_match,omitempty"`
	// Rev is the revision a restore brings back.
	Rev uint64 `json:"rev,omitempty"`
	// Content of a put.
	Size   int64   `json:"size,omitempty"`
	Mtime  int64   `json:"mtime,omitempty"`
	Mode   uint32  `json:"mode,omitempty"`
	Hash   Sum     `json:"hash,omitzero"`
	Blocks []Block `json:"blocks,omitempty"`
}

// OpResult is the outcome of one op of a successful commit.
type OpResult struct {
	NodeID uint64 `json:"id"`
	Rev    uint64 `json:"rev"`
	Path   string `json:"path"`
}

// CommitResult is the outcome of a successful commit.
type CommitResult struct {
	Seq   uint64     `json:"seq"`   // the journal record's sequence number
	Index uint64     `json:"index"` // Raft log index
	Ops   []OpResult `json:"ops"`
}

// Entry is one item of a folder listing.
type Entry struct {
	Node
	Path string `json:"path"`
}
