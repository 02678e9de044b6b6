package client

import (
	"context"
	"net/http"
	"net/url"
	"strconv"
	"time"
)

// Change is one node changed by a commit, as it was right after it (GET
// /v1/changes). Track nodes by ID: paths change.
type Change struct {
	ID      uint64 `json:"id"`
	Rev     uint64 `json:"rev"`
	Op      string `json:"op"` // put, mkdir, delete, move or restore
	Parent  uint64 `json:"parent"`
	Name    string `json:"name"`
	Path    string `json:"path"`               // the node's path after the commit
	OldPath string `json:"old_path,omitempty"` // for a move: where it was
	Dir     bool   `json:"dir,omitempty"`
	Deleted bool   `json:"deleted,omitempty"`
	Size    int64  `json:"size"`
	Hash    string `json:"hash"` // SHA-256 of the content; zeros for folders and deletions
	// Mode and Mtime (Unix ns) are the node's attributes after the commit;
	// 0 for deletions and for records older than these fields.
	Mode  uint32 `json:"mode,omitempty"`
	Mtime int64  `json:"mtime,omitempty"`
}

// ChangeRecord is one commit in the change feed. Seq is its position:
// gap-free and strictly increasing.
type ChangeRecord struct {
	Seq       uint64   `json:"seq"`
	Index     uint64   `json:"index"` // Raft log index of the commit
	Time      int64    `json:"time"`  // server time, Unix nanoseconds
	RequestID string   `json:"request_id"`
	Changes   []Change `json:"changes"`
}

// ChangePage is a run of records after a cursor. Cursor is the cursor to
// pass next (the last record's Seq, or the cursor given when there were
// none), Head the newest record's Seq; More says that records follow: ask
// again at once.
type ChangePage struct {
	Records []ChangeRecord `json:"records"`
	Cursor  uint64         `json:"cursor"`
	Head    uint64         `json:"head"`
	More    bool           `json:"more"`
}

// Changes returns the change-feed records after cursor (0: from the
// start), at most limit of them (0: the server's default, 1000). With a
// positive wait and nothing after the cursor, the server holds the request
// until a commit arrives or wait passes (it caps the wait at its own limit,
// 30 s by default) and then answers an empty page; each attempt at a
// server is then bounded by Config.Timeout plus wait. A cursor the server
// no longer has (or one ahead of the head) is an error matching
// ErrCursorReset whose *Error carries the Head to follow from after
// listing the tree afresh.
func (c *Client) Changes(ctx context.Context, cursor uint64, limit int, wait time.Duration) (*ChangePage, error) {
	q := url.Values{"cursor": {strconv.FormatUint(cursor, 10)}}
	if limit > 0 {
		q.Set("limit", strconv.Itoa(limit))
	}
	r := &request{method: http.MethodGet, path: "/v1/changes", query: q, out: new(ChangePage)}
	if wait > 0 {
		q.Set("wait", wait.String())
		r.timeout = c.timeout + wait
	}
	if err := c.send(ctx, r); err != nil {
		return nil, err
	}
	return r.out.(*ChangePage), nil
}
