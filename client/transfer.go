package client

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/coffer-dev/coffer/internal/cdc"
	"github.com/coffer-dev/coffer/internal/wire"
)

// Upload pipeline sizes.
const (
	// DefaultUploadParallel is how many blocks Upload sends at once.
	DefaultUploadParallel = 4
	// batchBlocks and batchBytes bound a batch: the chunks Upload asks
	// about and sends together. It holds up to three batches: one being
	// sent, one queued and one being filled.
	batchBlocks = 64
	batchBytes  = 16 << 20
)

// UploadOptions tune Upload.
type UploadOptions struct {
	// IfMatch: the file's current revision must be this (0: no check).
	IfMatch uint64
	// IfNoneMatch: nothing live may be at the path (create only).
	IfNoneMatch bool
	// Mtime is the file's modification time (zero: now).
	Mtime time.Time
	// Mode is the file's permission bits (0: 0644).
	Mode uint32
	// Parallel is how many blocks are sent at once (0:
	// DefaultUploadParallel).
	Parallel int
	// IdempotencyKey is the commit's Idempotency-Key ("" for a fresh
	// one). An Upload that failed with an unknown outcome (ErrUnavailable
	// after the commit was sent) can be run again with the same key and
	// the same content: the server applies the commit at most once and
	// answers as the first time.
	IdempotencyKey string
}

// UploadResult is the outcome of an Upload.
type UploadResult struct {
	Path string `json:"path"`
	ID   uint64 `json:"id"`
	Rev  uint64 `json:"rev"`
	Seq  uint64 `json:"seq"`
	Size int64  `json:"size"`
	Hash string `json:"hash"` // SHA-256 of the content
	// Blocks is how many blocks the file has; Sent how many of them were
	// uploaded (the others the server had), SentBytes their bytes.
	Blocks    int   `json:"blocks"`
	Sent      int   `json:"sent"`
	SentBytes int64 `json:"sent_bytes"`
}

// Upload stores r's content as the file at remote: it cuts the content
// into content-defined blocks (internal/cdc), asks the server which it
// lacks, sends those (opts.Parallel at once) and commits one put op with
// the receipts. The commit carries an Idempotency-Key, so failing over to
// another server cannot apply it twice. A failed precondition is an error
// matching ErrConflict whose *Error has the CurrentRev.
func (c *Client) Upload(ctx context.Context, r io.Reader, remote string, opts UploadOptions) (*UploadResult, error) {
	parallel := opts.Parallel
	if parallel <= 0 {
		parallel = DefaultUploadParallel
	}
	whole := sha256.New()
	var (
		blocks   []wire.Block
		receipts []string
		res      UploadResult
		batch    []cdc.Chunk
		bytesIn  int
	)
	// One goroutine sends the batches while Split reads and cuts the next.
	uctx, ucancel := context.WithCancelCause(ctx)
	defer ucancel(nil)
	batches := make(chan []cdc.Chunk, 1)
	var upErr error
	done := make(chan struct{})
	go func() {
		defer close(done)
		sent := map[string]bool{} // refs sent by this upload
		for b := range batches {
			if upErr != nil {
				continue
			}
			rc, err := c.sendBatch(uctx, b, sent, parallel, &res)
			if err != nil {
				upErr = err
				ucancel(err)
				continue
			}
			receipts = append(receipts, rc...)
		}
	}()
	queue := func() error {
		if len(batch) == 0 {
			return nil
		}
		select {
		case batches <- batch:
			batch, bytesIn = nil, 0
			return nil
		case <-uctx.Done():
			return context.Cause(uctx)
		}
	}
	err := cdc.Split(uctx, io.TeeReader(r, whole), cdc.Config{}, 0, func(ch cdc.Chunk) error {
		blocks = append(blocks, wire.Block{Ref: hex.EncodeToString(ch.Sum[:]), Size: int64(ch.Size)})
		res.Size += int64(ch.Size)
		batch = append(batch, ch)
		bytesIn += ch.Size
		if len(batch) >= batchBlocks || bytesIn >= batchBytes {
			return queue()
		}
		return nil
	})
	if err == nil {
		err = queue()
	}
	close(batches)
	<-done
	if upErr != nil {
		err = upErr
	}
	if err != nil {
		return nil, fmt.Errorf("upload %s: %w", remote, err)
	}
	res.Blocks = len(blocks)
	res.Hash = hex.EncodeToString(whole.Sum(nil))
	mtime := opts.Mtime
	if mtime.IsZero() {
		mtime = time.Now()
	}
	op := wire.Op{Kind: "put", Path: remote, IfMatch: opts.IfMatch, IfNoneMatch: opts.IfNoneMatch,
		Size: res.Size, Mtime: mtime.UnixNano(), Mode: opts.Mode, Hash: res.Hash, Blocks: blocks}
	cr, err := c.Commit(ctx, opts.IdempotencyKey, []wire.Op{op}, receipts)
	if err != nil {
		return nil, fmt.Errorf("upload %s: %w", remote, err)
	}
	if len(cr.Ops) != 1 {
		return nil, fmt.Errorf("upload %s: the commit answered %d ops, want 1", remote, len(cr.Ops))
	}
	res.Path, res.ID, res.Rev, res.Seq = cr.Ops[0].Path, cr.Ops[0].ID, cr.Ops[0].Rev, cr.Seq
	return &res, nil
}

// sendBatch asks which of the batch's blocks the server lacks and sends
// those not sent before (recording them in sent and res), returning their
// receipts.
func (c *Client) sendBatch(ctx context.Context, batch []cdc.Chunk, sent map[string]bool, parallel int, res *UploadResult) ([]string, error) {
	var ask []string
	asked := map[string]bool{}
	for _, ch := range batch {
		ref := hex.EncodeToString(ch.Sum[:])
		if !sent[ref] && !asked[ref] {
			asked[ref] = true
			ask = append(ask, ref)
		}
	}
	if len(ask) == 0 {
		return nil, nil
	}
	missing, err := c.MissingBlocks(ctx, ask)
	if err != nil {
		return nil, err
	}
	need := map[string]bool{}
	for _, ref := range missing {
		need[ref] = true
	}
	var todo []cdc.Chunk
	for _, ch := range batch {
		ref := hex.EncodeToString(ch.Sum[:])
		if need[ref] && !sent[ref] {
			sent[ref] = true
			todo = append(todo, ch)
		}
	}
	receipts, err := c.putBlocks(ctx, todo, parallel)
	if err != nil {
		return nil, err
	}
	for _, ch := range todo {
		res.Sent++
		res.SentBytes += int64(ch.Size)
	}
	return receipts, nil
}

// putBlocks sends the chunks, parallel at once, and returns their receipts
// in order.
func (c *Client) putBlocks(ctx context.Context, chunks []cdc.Chunk, parallel int) ([]string, error) {
	if len(chunks) == 0 {
		return nil, nil
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	receipts := make([]string, len(chunks))
	errs := make([]error, len(chunks))
	next := make(chan int)
	var wg sync.WaitGroup
	for range min(parallel, len(chunks)) {
		wg.Go(func() {
			for i := range next {
				ch := chunks[i]
				ref := hex.EncodeToString(ch.Sum[:])
				br, err := c.PutBlock(ctx, ref, ch.Data)
				if err == nil && (br.Ref != ref || br.Size != int64(ch.Size) || br.Receipt == "") {
					err = fmt.Errorf("block %s: the server answered ref %s, size %d, receipt %q", ref, br.Ref, br.Size, br.Receipt)
				}
				if err != nil {
					errs[i] = err
					cancel()
					continue
				}
				receipts[i] = br.Receipt
			}
		})
	}
feed:
	for i := range chunks {
		select {
		case next <- i:
		case <-ctx.Done():
			break feed
		}
	}
	close(next)
	wg.Wait()
	// The first failure cancels the others: report it, not theirs.
	var first error
	for _, err := range errs {
		if err != nil && (first == nil || errors.Is(first, context.Canceled) && !errors.Is(err, context.Canceled)) {
			first = err
		}
	}
	if first != nil {
		return nil, first
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return receipts, nil
}

// FileInfo describes a downloaded revision, from the answer's headers.
type FileInfo struct {
	ID    uint64 // 0 when a revision was asked for
	Rev   uint64
	Size  int64
	Mtime time.Time
	Mode  uint32
	Hash  string // SHA-256, verified
}

// Download writes revision rev (0: the current one) of the file at path to
// w and checks the bytes against the SHA-256 the server sends
// (X-Coffer-Sha256) and their count against Content-Length: a mismatch is
// an error matching ErrHashMismatch, and w then holds bytes that must not
// be used. The request fails over to another server until the answer
// starts; Config.Timeout bounds the wait for the answer's headers, and
// then each wait for more of the body (a server that stalls mid-body is
// an error matching ErrUnavailable, not a hang).
func (c *Client) Download(ctx context.Context, path string, rev uint64, w io.Writer) (*FileInfo, error) {
	r := fileRequest(path, rev)
	var info *FileInfo
	err := c.stream(ctx, r, "download "+path, func(status int) bool { return status == http.StatusOK },
		func(resp *http.Response) error {
			var err error
			info, err = readFile(resp, w)
			return err
		})
	if err != nil {
		return nil, err
	}
	return info, nil
}

// ReadRange writes the n bytes at offset off of revision rev (0: the
// current one) of the file at path to w: exactly n bytes, or an error. It
// asks for the range with a Range header and takes a 206 answer for
// exactly that range, or a 200 when the range is the whole file. It fails
// over like Download until the answer starts, and a server that stalls
// mid-body is an error matching ErrUnavailable after Config.Timeout, as is
// a body that ends early. A range that is not within the file is an error
// matching ErrInvalidArgument (n == 0 asks nothing and returns nil).
//
// The server sends no hash of a range: the caller must verify the bytes
// itself (a block's bytes against its ref), and w may hold bytes of a
// failed attempt. Ask for a fixed rev: the current revision may change
// between calls, or between servers when the request fails over.
func (c *Client) ReadRange(ctx context.Context, path string, rev uint64, off, n int64, w io.Writer) error {
	if off < 0 || n < 0 || off > math.MaxInt64-n {
		return fmt.Errorf("read %s: %w: bad range: offset %d, length %d", path, ErrInvalidArgument, off, n)
	}
	if n == 0 {
		return nil
	}
	r := fileRequest(path, rev)
	r.header.Set("Range", fmt.Sprintf("bytes=%d-%d", off, off+n-1))
	return c.stream(ctx, r, fmt.Sprintf("read %s [%d, +%d)", path, off, n),
		func(status int) bool {
			return status == http.StatusPartialContent || status == http.StatusOK && off == 0
		},
		func(resp *http.Response) error { return readRange(resp, off, n, w) })
}

// fileRequest is the GET of a file's revision (0: the current one).
func fileRequest(path string, rev uint64) *request {
	r := &request{method: http.MethodGet, path: routePath("/v1/files", path),
		header: http.Header{"Accept": {"*/*"}}}
	if rev != 0 {
		r.query = url.Values{"rev": {strconv.FormatUint(rev, 10)}}
	}
	return r
}

// stream sends the GET r to the servers in turn, starting with the one
// that answered last, until one answers with a status that ok accepts, and
// hands that answer to read. It moves on when a server cannot be reached,
// sends no headers within Config.Timeout, or answers 502, 503 or 504; any
// other error answer is returned as its *Error. Once an answer is accepted
// there is no failover: read's error is returned, wrapped with what, and a
// body that stalls for Config.Timeout ends read with an error matching
// ErrUnavailable.
func (c *Client) stream(ctx context.Context, r *request, what string, ok func(status int) bool, read func(*http.Response) error) error {
	n := len(c.servers)
	start := int(c.preferred.Load())
	var fails []error
	var lastAnswer *Error
	waits := 0
	for i := 0; i < n; i++ {
		idx := (start + i) % n
		resp, cancel, err := c.open(ctx, c.servers[idx], r, ok)
		if err == nil {
			c.preferred.Store(int32(idx))
			stall := time.AfterFunc(c.timeout, cancel)
			resp.Body = &idleBody{ReadCloser: resp.Body, timer: stall, idle: c.timeout}
			err := read(resp)
			stalled := !stall.Stop()
			resp.Body.Close()
			cancel()
			if err != nil && stalled && ctx.Err() == nil {
				err = fmt.Errorf("%w: the server sent nothing for %v", ErrUnavailable, c.timeout)
			}
			if err != nil {
				return fmt.Errorf("%s: %w", what, err)
			}
			return nil
		}
		if ctx.Err() != nil {
			return fmt.Errorf("%s: %w", what, ctx.Err())
		}
		if c.waitRate(ctx, err, &waits) {
			i-- // the same server again
			continue
		}
		e := (*Error)(nil)
		if errors.As(err, &e) {
			if !retryStatus(e.Status) {
				return e
			}
			lastAnswer = e
		}
		fails = append(fails, err)
	}
	if lastAnswer != nil {
		return lastAnswer
	}
	return fmt.Errorf("%w: no server answered: %w", ErrUnavailable, errors.Join(fails...))
}

// idleBody restarts its timer before every read: the timer cancels the
// request when the body stalls for longer than idle.
type idleBody struct {
	io.ReadCloser
	timer *time.Timer
	idle  time.Duration
}

func (b *idleBody) Read(p []byte) (int, error) {
	b.timer.Reset(b.idle)
	return b.ReadCloser.Read(p)
}

// open sends a GET to one server and returns an answer whose status ok
// accepts; the caller reads its body, closes it, and then calls cancel.
// Any other answer is an error, an *Error for an error status.
func (c *Client) open(ctx context.Context, server string, r *request, ok func(status int) bool) (*http.Response, context.CancelFunc, error) {
	ctx, cancel := context.WithCancel(ctx)
	timer := time.AfterFunc(c.timeout, cancel)
	req, err := c.newRequest(ctx, server, r)
	if err != nil {
		cancel()
		return nil, nil, err
	}
	resp, err := c.hc.Do(req)
	if err != nil || !timer.Stop() {
		cancel()
		if err == nil {
			resp.Body.Close()
			err = fmt.Errorf("GET %s: no answer within %v", server+r.path, c.timeout)
		}
		return nil, nil, err
	}
	if !ok(resp.StatusCode) {
		data, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		resp.Body.Close()
		cancel()
		if resp.StatusCode >= 200 && resp.StatusCode <= 399 {
			return nil, nil, fmt.Errorf("GET %s: unexpected answer %s", server+r.path, resp.Status)
		}
		e := answerError(resp.StatusCode, data)
		e.RetryAfter = retryAfter(resp.Header)
		return nil, nil, e
	}
	return resp, cancel, nil
}

// readRange copies the n bytes of a range answer for [off, off+n) to w,
// after checking that the answer is for that range.
func readRange(resp *http.Response, off, n int64, w io.Writer) error {
	if resp.StatusCode == http.StatusOK {
		if resp.ContentLength != n {
			return fmt.Errorf("the server answered the whole file (%d bytes) instead of the range", resp.ContentLength)
		}
	} else {
		first, last, size, err := parseContentRange(resp.Header.Get("Content-Range"))
		if err != nil {
			return err
		}
		if first == off && last < off+n-1 && last == size-1 {
			return fmt.Errorf("%w: the range ends beyond the end of the file (%d bytes)", ErrInvalidArgument, size)
		}
		if first != off || last != off+n-1 {
			return fmt.Errorf("the server answered bytes %d-%d, not %d-%d", first, last, off, off+n-1)
		}
		if resp.ContentLength >= 0 && resp.ContentLength != n {
			return fmt.Errorf("the server answered %d bytes for a range of %d", resp.ContentLength, n)
		}
	}
	got, err := io.CopyN(w, resp.Body, n)
	if err == io.EOF {
		err = fmt.Errorf("%w: the body ended after %d of %d bytes: %w", ErrUnavailable, got, n, io.ErrUnexpectedEOF)
	} else if errors.Is(err, io.ErrUnexpectedEOF) {
		err = fmt.Errorf("%w: after %d of %d bytes: %w", ErrUnavailable, got, n, err)
	} else if err != nil {
		err = fmt.Errorf("after %d of %d bytes: %w", got, n, err)
	}
	return err
}

// parseContentRange parses "bytes first-last/size" (size not "*").
func parseContentRange(v string) (first, last, size int64, err error) {
	bad := fmt.Errorf("bad Content-Range %q", v)
	rest, ok := strings.CutPrefix(v, "bytes ")
	if !ok {
		return 0, 0, 0, bad
	}
	rng, total, ok := strings.Cut(rest, "/")
	if !ok {
		return 0, 0, 0, bad
	}
	a, b, ok := strings.Cut(rng, "-")
	if !ok {
		return 0, 0, 0, bad
	}
	var e1, e2, e3 error
	first, e1 = strconv.ParseInt(a, 10, 64)
	last, e2 = strconv.ParseInt(b, 10, 64)
	size, e3 = strconv.ParseInt(total, 10, 64)
	if e1 != nil || e2 != nil || e3 != nil || first < 0 || last < first || size <= last {
		return 0, 0, 0, bad
	}
	return first, last, size, nil
}

// readFile copies a download's body to w and verifies it.
func readFile(resp *http.Response, w io.Writer) (*FileInfo, error) {
	h := resp.Header
	info := &FileInfo{Hash: h.Get("X-Coffer-Sha256"), Size: resp.ContentLength}
	if len(info.Hash) != 64 {
		return nil, fmt.Errorf("the answer has no valid X-Coffer-Sha256 (%q)", info.Hash)
	}
	info.Rev, _ = strconv.ParseUint(h.Get("X-Coffer-Rev"), 10, 64)
	info.ID, _ = strconv.ParseUint(h.Get("X-Coffer-Id"), 10, 64)
	if ns, err := strconv.ParseInt(h.Get("X-Coffer-Mtime"), 10, 64); err == nil {
		info.Mtime = time.Unix(0, ns)
	}
	if m, err := strconv.ParseUint(h.Get("X-Coffer-Mode"), 8, 32); err == nil {
		info.Mode = uint32(m)
	}
	sum := sha256.New()
	n, err := io.Copy(io.MultiWriter(w, sum), resp.Body)
	if err != nil {
		return nil, fmt.Errorf("after %d bytes: %w", n, err)
	}
	if info.Size >= 0 && n != info.Size {
		return nil, fmt.Errorf("%w: got %d bytes, want %d", ErrHashMismatch, n, info.Size)
	}
	info.Size = n
	if got := hex.EncodeToString(sum.Sum(nil)); got != info.Hash {
		return nil, fmt.Errorf("%w: the bytes hash to %s, the server sent %s", ErrHashMismatch, got, info.Hash)
	}
	return info, nil
}
