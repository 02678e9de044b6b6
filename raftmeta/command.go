package raftmeta

import "github.com/coffer-dev/coffer/internal/raftgroup"

// cmdType identifies a Raft command.
type cmdType uint8

const (
	cmdCreateUser cmdType = iota + 1
	cmdSetPassword
	cmdDeleteUser
	cmdSetQuota
	cmdCommit
	cmdPrune
	cmdRevokeSessions
	cmdRevokeToken
	cmdCreateUpload
	cmdAppendUpload
	cmdDeleteUpload
)

// command is the envelope of one Raft entry. Time is the proposer's clock
// when it proposed the entry: the state machine never reads a clock, so
// every replica computes the same state.
type command struct {
	Type      cmdType `json:"t"`
	RequestID string  `json:"rid,omitempty"`
	Time      int64   `json:"time"`

	CreateUser  *createUserCmd  `json:"create_user,omitempty"`
	SetPassword *setPasswordCmd `json:"set_password,omitempty"`
	DeleteUser  *userNameCmd    `json:"delete_user,omitempty"`
	SetQuota    *setQuotaCmd    `json:"set_quota,omitempty"`
	Commit      *commitCmd      `json:"commit,omitempty"`
	Prune       *pruneCmd       `json:"prune,omitempty"`

	RevokeSessions *userNameCmd    `json:"revoke_sessions,omitempty"`
	RevokeToken    *revokeTokenCmd `json:"revoke_token,omitempty"`

	CreateUpload *createUploadCmd `json:"create_upload,omitempty"`
	AppendUpload *appendUploadCmd `json:"append_upload,omitempty"`
	DeleteUpload *uploadCmd       `json:"delete_upload,omitempty"`
}

// scope is the namespace a command's request ID is scoped by in the dedup
// window: the namespace of a commit or an upload command, 0 for the rest.
func (c *command) scope() uint64 {
	switch {
	case c.Type == cmdCommit && c.Commit != nil:
		return c.Commit.Namespace
	case c.Type == cmdCreateUpload && c.CreateUpload != nil:
		return c.CreateUpload.Namespace
	case c.Type == cmdAppendUpload && c.AppendUpload != nil:
		return c.AppendUpload.Namespace
	case c.Type == cmdDeleteUpload && c.DeleteUpload != nil:
		return c.DeleteUpload.Namespace
	}
	return 0
}

type createUserCmd struct {
	Name         string `json:"name"`
	PasswordHash string `json:"password_hash"`
	Quota        int64  `json:"quota"`
	Admin        bool   `json:"admin,omitempty"`
}

type setPasswordCmd struct {
	Name         string `json:"name"`
	PasswordHash string `json:"password_hash"`
}

type userNameCmd struct {
	Name string `json:"name"`
}

type setQuotaCmd struct {
	Name  string `json:"name"`
	Quota int64  `json:"quota"`
}

type commitCmd struct {
	Namespace uint64 `json:"ns"`
	Ops       []Op   `json:"ops"`
	// Upload, if set, is the upload session the commit finishes: its
	// blocks become the put op's (see finishUpload).
	Upload string `json:"upload,omitempty"`
	// Check, if set, makes every block a put op names prove itself (see
	// CommitRequest.Check). Entries without it (from before it existed,
	// or from a gateway that stored the blocks itself) are not checked.
	Check *BlockCheck `json:"check,omitempty"`
}

// createUploadCmd opens an upload session.
type createUploadCmd struct {
	Namespace uint64 `json:"ns"`
	ID        string `json:"id"`
	Path      string `json:"path"`
	State     []byte `json:"state,omitempty"`
	Meta      []byte `json:"meta,omitempty"`
}

// appendUploadCmd adds blocks to an upload session at Offset.
type appendUploadCmd struct {
	Namespace uint64  `json:"ns"`
	ID        string  `json:"id"`
	Offset    int64   `json:"offset"`
	Blocks    []Block `json:"blocks,omitempty"`
	State     []byte  `json:"state,omitempty"`
}

// uploadCmd names an upload session.
type uploadCmd struct {
	Namespace uint64 `json:"ns"`
	ID        string `json:"id"`
}

// revokeTokenCmd revokes one session token until its expiry.
type revokeTokenCmd struct {
	TokenID string `json:"token_id"`
	Expires int64  `json:"expires"` // Unix nanoseconds
}

// pruneCmd applies the retention policy to at most Max nodes (then
// namespaces' journals, then token revocation records, then upload
// sessions), starting at Cursor, and reports where to go on.
type pruneCmd struct {
	KeepFor  int64  `json:"keep_for"` // nanoseconds
	KeepLast int    `json:"keep_last"`
	Cursor   []byte `json:"cursor,omitempty"`
	Max      int    `json:"max"`
}

// PruneResult reports one prune step.
type PruneResult struct {
	Revisions int    `json:"revisions"`         // revisions deleted
	Records   int    `json:"records"`           // journal records deleted
	Tokens    int    `json:"tokens,omitempty"`  // expired token revocation records deleted
	Uploads   int    `json:"uploads,omitempty"` // expired upload sessions deleted
	Next      []byte `json:"next,omitempty"`
	Done      bool   `json:"done"`
}

// result is what applying a command returns, through the Raft future to
// the proposer, and what the dedup window stores for a request ID.
type result struct {
	Err    *OpError      `json:"err,omitempty"`
	User   *User         `json:"user,omitempty"`
	Commit *CommitResult `json:"commit,omitempty"`
	Prune  *PruneResult  `json:"prune,omitempty"`
	Upload *Upload       `json:"upload,omitempty"`
}

// encodeCommand encodes c as one Raft entry (raftgroup's envelope: a
// version byte, then JSON).
func encodeCommand(c *command) ([]byte, error) { return raftgroup.EncodeCommand(c) }

func decodeCommand(b []byte) (*command, error) {
	c := new(command)
	if err := raftgroup.DecodeCommand(b, c); err != nil {
		return nil, err
	}
	return c, nil
}
