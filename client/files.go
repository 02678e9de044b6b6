package client

import (
	"context"
	"crypto/rand"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/coffer-dev/coffer/internal/wire"
)

// Session is the answer to a login: the token to send as Config.Token.
type Session struct {
	Token   string    `json:"token"`
	Expires time.Time `json:"expires"`
	User    string    `json:"user"`
	Admin   bool      `json:"admin"`
}

// WhoAmI describes the caller (GET /v1/whoami).
type WhoAmI struct {
	User      string    `json:"user"`
	Admin     bool      `json:"admin"`
	Shard     uint64    `json:"shard"`
	Namespace uint64    `json:"namespace"`
	Expires   time.Time `json:"expires,omitzero"` // the token's expiry (zero with Basic)
	Quota     int64     `json:"quota"`            // bytes; 0: unlimited
	Used      int64     `json:"used"`
	Files     int64     `json:"files"`
	Cursor    uint64    `json:"cursor"` // the change feed's head
}

// Entry is a file or folder as stat and list answer it. Times are Unix
// nanoseconds.
type Entry struct {
	ID       uint64       `json:"id"`
	NS       uint64       `json:"ns"`
	Parent   uint64       `json:"parent"`
	Name     string       `json:"name"`
	Dir      bool         `json:"dir,omitempty"`
	Size     int64        `json:"size"`
	Mtime    int64        `json:"mtime"`
	Mode     uint32       `json:"mode"`
	Hash     string       `json:"hash"`
	Blocks   []wire.Block `json:"blocks,omitempty"`
	Rev      uint64       `json:"rev"`
	Modified int64        `json:"modified"`
	Deleted  bool         `json:"deleted,omitempty"`
	Path     string       `json:"path"`
}

// Revision is one retained revision of a file or folder (GET /v1/history).
type Revision struct {
	Rev          uint64       `json:"rev"`
	Op           string       `json:"op"`
	Time         int64        `json:"time"`
	Deleted      bool         `json:"deleted,omitempty"`
	Parent       uint64       `json:"parent"`
	Name         string       `json:"name"`
	Dir          bool         `json:"dir,omitempty"`
	Size         int64        `json:"size"`
	Mtime        int64        `json:"mtime"`
	Mode         uint32       `json:"mode"`
	Hash         string       `json:"hash"`
	Blocks       []wire.Block `json:"blocks,omitempty"`
	RestoredFrom uint64       `json:"restored_from,omitempty"`
}

// ListOptions select what List answers.
type ListOptions struct {
	Recursive bool   // the whole subtree, each folder followed by its contents
	Deleted   bool   // include tombstones
	Limit     int    // page size (0: the server's default)
	PageToken string // continue after a previous page
}

// ListPage is one page of a listing; NextPageToken is empty on the last.
type ListPage struct {
	Entries       []Entry `json:"entries"`
	NextPageToken string  `json:"next_page_token,omitempty"`
}

// OpResult is one op's outcome in a CommitResult.
type OpResult struct {
	ID   uint64 `json:"id"`
	Rev  uint64 `json:"rev"`
	Path string `json:"path"`
}

// CommitResult answers POST /v1/commit.
type CommitResult struct {
	Seq   uint64     `json:"seq"`
	Index uint64     `json:"index"`
	Ops   []OpResult `json:"ops"`
}

// newIdempotencyKey returns a fresh random Idempotency-Key.
func newIdempotencyKey() string {
	return "c-" + rand.Text()
}

// mutating returns the headers of a write: a fresh Idempotency-Key, so
// that the request may be sent again to another server.
func mutating() http.Header {
	return http.Header{"Idempotency-Key": {newIdempotencyKey()}}
}

// routePath is prefix followed by p, each component percent-encoded; the
// root is prefix + "/".
func routePath(prefix, p string) string {
	var b strings.Builder
	b.WriteString(prefix)
	b.WriteByte('/')
	first := true
	for part := range strings.SplitSeq(p, "/") {
		if part == "" {
			continue
		}
		if !first {
			b.WriteByte('/')
		}
		first = false
		b.WriteString(url.PathEscape(part))
	}
	return b.String()
}

// Login starts a session for name and returns its token. It sends no
// other credentials. Build a Client with Config.Token to use it.
func (c *Client) Login(ctx context.Context, name, password string) (*Session, error) {
	var s Session
	err := c.send(ctx, &request{method: http.MethodPost, path: "/v1/login", noAuth: true,
		in: map[string]string{"name": name, "password": password}, out: &s})
	if err != nil {
		return nil, err
	}
	return &s, nil
}

// Logout ends the client's session (with all, every session of the user).
func (c *Client) Logout(ctx context.Context, all bool) error {
	r := &request{method: http.MethodPost, path: "/v1/logout", header: mutating()}
	if all {
		r.query = url.Values{"all": {"1"}}
	}
	return c.send(ctx, r)
}

// Whoami describes the caller.
func (c *Client) Whoami(ctx context.Context) (*WhoAmI, error) {
	var w WhoAmI
	if err := c.do(ctx, http.MethodGet, "/v1/whoami", nil, &w); err != nil {
		return nil, err
	}
	return &w, nil
}

// Stat returns the file or folder at path; with deleted, a tombstone too.
func (c *Client) Stat(ctx context.Context, path string, deleted bool) (*Entry, error) {
	r := &request{method: http.MethodGet, path: routePath("/v1/stat", path), out: new(Entry)}
	if deleted {
		r.query = url.Values{"deleted": {"1"}}
	}
	if err := c.send(ctx, r); err != nil {
		return nil, err
	}
	return r.out.(*Entry), nil
}

// List returns one page of the folder at path.
func (c *Client) List(ctx context.Context, path string, opts ListOptions) (*ListPage, error) {
	q := url.Values{}
	if opts.Recursive {
		q.Set("recursive", "1")
	}
	if opts.Deleted {
		q.Set("deleted", "1")
	}
	if opts.Limit > 0 {
		q.Set("limit", strconv.Itoa(opts.Limit))
	}
	if opts.PageToken != "" {
		q.Set("page_token", opts.PageToken)
	}
	var page ListPage
	if err := c.send(ctx, &request{method: http.MethodGet, path: routePath("/v1/list", path), query: q, out: &page}); err != nil {
		return nil, err
	}
	return &page, nil
}

// ListAll returns every entry of the folder at path, following the pages
// from opts.PageToken on.
func (c *Client) ListAll(ctx context.Context, path string, opts ListOptions) ([]Entry, error) {
	var all []Entry
	for {
		page, err := c.List(ctx, path, opts)
		if err != nil {
			return nil, err
		}
		all = append(all, page.Entries...)
		if page.NextPageToken == "" {
			return all, nil
		}
		if page.NextPageToken == opts.PageToken {
			return nil, fmt.Errorf("list %s: the server repeated page token %q", path, opts.PageToken)
		}
		opts.PageToken = page.NextPageToken
	}
}

// Mkdir creates the folder at path and any missing parents.
func (c *Client) Mkdir(ctx context.Context, path string) (*wire.FileResult, error) {
	var res wire.FileResult
	err := c.send(ctx, &request{method: http.MethodPost, path: routePath("/v1/mkdir", path), header: mutating(), out: &res})
	if err != nil {
		return nil, err
	}
	return &res, nil
}

// Delete deletes the file, or the folder with everything below it, at
// path. A nonzero ifMatch requires that revision to be current.
func (c *Client) Delete(ctx context.Context, path string, ifMatch uint64) (*wire.FileResult, error) {
	h := mutating()
	if ifMatch != 0 {
		h.Set("If-Match", strconv.FormatUint(ifMatch, 10))
	}
	var res wire.FileResult
	if err := c.send(ctx, &request{method: http.MethodDelete, path: routePath("/v1/files", path), header: h, out: &res}); err != nil {
		return nil, err
	}
	return &res, nil
}

// Move renames or moves a file or folder. A nonzero ifMatch requires from's
// revision to be that.
func (c *Client) Move(ctx context.Context, from, to string, ifMatch uint64) (*wire.FileResult, error) {
	var res wire.FileResult
	err := c.send(ctx, &request{method: http.MethodPost, path: "/v1/move", header: mutating(),
		in: wire.MoveRequest{From: from, To: to, IfMatch: ifMatch}, out: &res})
	if err != nil {
		return nil, err
	}
	return &res, nil
}

// History returns the retained revisions of path, newest first, deletions
// included (limit 0: the server's default, 100).
func (c *Client) History(ctx context.Context, path string, limit int) ([]Revision, error) {
	var q url.Values
	if limit > 0 {
		q = url.Values{"limit": {strconv.Itoa(limit)}}
	}
	var res struct {
		Revisions []Revision `json:"revisions"`
	}
	if err := c.send(ctx, &request{method: http.MethodGet, path: routePath("/v1/history", path), query: q, out: &res}); err != nil {
		return nil, err
	}
	return res.Revisions, nil
}

// Restore brings back revision req.Rev of a file (by req.Path, or by req.ID
// and then optionally at req.To) as its new revision.
func (c *Client) Restore(ctx context.Context, req wire.RestoreRequest) (*wire.FileResult, error) {
	var res wire.FileResult
	err := c.send(ctx, &request{method: http.MethodPost, path: "/v1/restore", header: mutating(), in: req, out: &res})
	if err != nil {
		return nil, err
	}
	return &res, nil
}

// Commit applies ops atomically, with the receipts of blocks uploaded for
// them. key is the Idempotency-Key ("" for a fresh one); pass the same key
// to learn the outcome of a commit whose answer was lost.
func (c *Client) Commit(ctx context.Context, key string, ops []wire.Op, receipts []string) (*CommitResult, error) {
	if key == "" {
		key = newIdempotencyKey()
	}
	var res CommitResult
	err := c.send(ctx, &request{method: http.MethodPost, path: "/v1/commit",
		header: http.Header{"Idempotency-Key": {key}},
		in:     wire.CommitRequest{Ops: ops, Receipts: receipts}, out: &res})
	if err != nil {
		return nil, err
	}
	return &res, nil
}

// MissingBlocks returns those of refs the caller must upload before a
// commit may name them (at most 10 000 refs per call).
func (c *Client) MissingBlocks(ctx context.Context, refs []string) ([]string, error) {
	var res wire.MissingResponse
	// Asking again is harmless.
	err := c.send(ctx, &request{method: http.MethodPost, path: "/v1/blocks/missing", safe: true,
		in: wire.MissingRequest{Refs: refs}, out: &res})
	if err != nil {
		return nil, err
	}
	return res.Missing, nil
}

// PutBlock stores one block whose SHA-256 is ref and returns its receipt.
func (c *Client) PutBlock(ctx context.Context, ref string, data []byte) (*wire.BlockReceipt, error) {
	var res wire.BlockReceipt
	// Content-addressed: storing it again is harmless.
	err := c.send(ctx, &request{method: http.MethodPut, path: "/v1/blocks/" + url.PathEscape(ref), safe: true,
		body: data, header: http.Header{"Content-Type": {"application/octet-stream"}}, out: &res})
	if err != nil {
		return nil, err
	}
	return &res, nil
}
