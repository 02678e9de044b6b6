package wire

// The JSON shapes of the user API (docs/API.md). Metadata records (entries,
// revisions, journal records, commit results) travel as package raftmeta
// encodes them; their JSON field names are part of the API and are listed
// in docs/API.md, so the client decodes them into its own types.

// MissingRequest is the body of POST /v1/blocks/missing.
type MissingRequest struct {
	Refs []string `json:"refs"`
}

// MissingResponse answers POST /v1/blocks/missing: the refs (of those
// asked) the caller must upload before a commit may name them.
type MissingResponse struct {
	Missing []string `json:"missing"`
}

// BlockReceipt answers PUT /v1/blocks/{ref}: the stored block and a
// receipt to pass in the commit that first names it.
type BlockReceipt struct {
	Ref     string `json:"ref"`
	Size    int64  `json:"size"`
	Receipt string `json:"receipt"`
}

// CommitRequest is the body of POST /v1/commit. Ops are raftmeta ops
// (kind, path, to, node_id, if_match, if_none_match, rev, size, mtime,
// mode, hash, blocks). Receipts prove the caller uploaded the blocks its
// namespace does not reference yet.
type CommitRequest struct {
	Ops      []Op     `json:"ops"`
	Receipts []string `json:"receipts,omitempty"`
}

// Op is one op of a commit batch (see raftmeta.Op for the semantics).
type Op struct {
	Kind        string  `json:"kind"`
	Path        string  `json:"path,omitempty"`
	To          string  `json:"to,omitempty"`
	NodeID      uint64  `json:"node_id,omitempty"`
	IfMatch     uint64  `json:"if_match,omitempty"`
	IfNoneMatch bool    `json:"if_none_match,omitempty"`
	Rev         uint64  `json:"rev,omitempty"`
	Size        int64   `json:"size,omitempty"`
	Mtime       int64   `json:"mtime,omitempty"`
	Mode        uint32  `json:"mode,omitempty"`
	Hash        string  `json:"hash,omitempty"`
	Blocks      []Block `json:"blocks,omitempty"`
}

// Block is one block of a file: its ref (64 hex digits) and size.
type Block struct {
	Ref  string `json:"ref"`
	Size int64  `json:"size"`
}

// FileResult answers a PUT of a file, a finished upload and the simple
// metadata calls that make one revision (mkdir, delete, move, restore).
type FileResult struct {
	Path string `json:"path"`
	ID   uint64 `json:"id"`
	Rev  uint64 `json:"rev"`
	// Size and Hash are the content stored, in answers to a put (a file
	// PUT or a finished upload) only.
	Size *int64 `json:"size,omitempty"`
	Hash string `json:"hash,omitempty"`
	// Seq is the change-feed position of the commit.
	Seq uint64 `json:"seq"`
}

// MoveRequest is the body of POST /v1/move.
type MoveRequest struct {
	From    string `json:"from"`
	To      string `json:"to"`
	IfMatch uint64 `json:"if_match,omitempty"`
}

// RestoreRequest is the body of POST /v1/restore: the file by path (or by
// node ID, for a deleted file whose path is taken) and the revision to
// bring back. To restores a node selected by ID at another path.
type RestoreRequest struct {
	Path    string `json:"path,omitempty"`
	ID      uint64 `json:"id,omitempty"`
	Rev     uint64 `json:"rev"`
	To      string `json:"to,omitempty"`
	IfMatch uint64 `json:"if_match,omitempty"`
}

// UploadRequest is the body of POST /v1/uploads: a resumable upload of one
// file. Mtime (Unix ns) and Mode apply to the file; IfMatch/IfNoneMatch are
// checked when the upload finishes.
type UploadRequest struct {
	Path        string `json:"path"`
	Mtime       int64  `json:"mtime,omitempty"`
	Mode        uint32 `json:"mode,omitempty"`
	IfMatch     uint64 `json:"if_match,omitempty"`
	IfNoneMatch bool   `json:"if_none_match,omitempty"`
}

// Upload is the state of a resumable upload: Offset is where the next
// append starts.
type Upload struct {
	ID      string `json:"id"`
	Path    string `json:"path"`
	Offset  int64  `json:"offset"`
	Expires string `json:"expires"` // RFC 3339
}

// FinishRequest is the (optional) body of POST /v1/uploads/{id}/finish:
// the SHA-256 the client computed, checked against the bytes received.
type FinishRequest struct {
	Hash string `json:"hash,omitempty"`
}

// PasswordRequest is the body of POST /v1/password (the caller's own) and
// of PUT /v1/admin/users/{name}/password (Current is then not needed).
type PasswordRequest struct {
	Current string `json:"current,omitempty"`
	New     string `json:"new"`
}

// UserRequest is the body of POST /v1/admin/users.
type UserRequest struct {
	Name     string `json:"name"`
	Password string `json:"password"`
	Admin    bool   `json:"admin,omitempty"`
	Quota    int64  `json:"quota,omitempty"`
}

// QuotaRequest is the body of PUT /v1/admin/users/{name}/quota.
type QuotaRequest struct {
	Quota int64 `json:"quota"`
}

// UserInfo is a user as the admin API shows it.
type UserInfo struct {
	Name      string `json:"name"`
	ID        uint64 `json:"id"`
	Shard     uint64 `json:"shard"`
	Admin     bool   `json:"admin,omitempty"`
	Quota     int64  `json:"quota"`
	Used      int64  `json:"used"`
	Files     int64  `json:"files"`
	Namespace uint64 `json:"namespace"`
	Created   string `json:"created"` // RFC 3339
}

// UserList answers GET /v1/admin/users.
type UserList struct {
	Users         []UserInfo `json:"users"`
	NextPageToken string     `json:"next_page_token,omitempty"`
}
