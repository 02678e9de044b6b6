package gateway

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"mime"
	"net/http"
	"path"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/coffer-dev/coffer/blockstore"
	"github.com/coffer-dev/coffer/gateway/auth"
	"github.com/coffer-dev/coffer/internal/cdc"
	"github.com/coffer-dev/coffer/internal/wire"
	"github.com/coffer-dev/coffer/raftmeta"
	"github.com/coffer-dev/coffer/raftmeta/metapath"
)

// The headers of a file's metadata on PUT and GET.
const (
	HeaderMtime  = "X-Coffer-Mtime"  // Unix nanoseconds
	HeaderMode   = "X-Coffer-Mode"   // permission bits in octal, e.g. 644, 755
	HeaderSHA256 = "X-Coffer-Sha256" // SHA-256 of the whole file, hex
	HeaderRev    = "X-Coffer-Rev"
	HeaderID     = "X-Coffer-Id"
)

// blocksPerAppend bounds the blocks one metadata entry carries when a PUT
// records a large file: above it, the blocks go through an upload session
// in batches, so no Raft entry grows with the file.
const blocksPerAppend = 1024

// filePath returns the cleaned path of a /v1/…/{path...} route, or
// answers 400.
func filePath(w http.ResponseWriter, r *http.Request) (string, bool) {
	p, err := metapath.Clean("/" + r.PathValue("path"))
	if err != nil {
		wire.WriteError(w, http.StatusBadRequest, "invalid_path", err.Error())
		return "", false
	}
	return p, true
}

// preconditions reads If-Match (a revision) and If-None-Match: * of a
// write.
func preconditions(w http.ResponseWriter, r *http.Request) (ifMatch uint64, ifNoneMatch bool, ok bool) {
	if v := r.Header.Get("If-Match"); v != "" {
		rev, err := parseRev(v)
		if err != nil {
			wire.WriteError(w, http.StatusBadRequest, "invalid_argument", "If-Match: "+err.Error())
			return 0, false, false
		}
		ifMatch = rev
	}
	if v := r.Header.Get("If-None-Match"); v != "" {
		if strings.TrimSpace(v) != "*" {
			wire.WriteError(w, http.StatusBadRequest, "invalid_argument", `a write takes only If-None-Match: *`)
			return 0, false, false
		}
		ifNoneMatch = true
	}
	if ifMatch != 0 && ifNoneMatch {
		wire.WriteError(w, http.StatusBadRequest, "invalid_argument", "If-Match and If-None-Match exclude each other")
		return 0, false, false
	}
	return ifMatch, ifNoneMatch, true
}

// fileAttrs reads the mtime and mode headers of a PUT (defaults: now, 0644).
func (s *Server) fileAttrs(w http.ResponseWriter, r *http.Request) (mtime int64, mode uint32, ok bool) {
	mtime, mode = s.cfg.Now().UnixNano(), 0o644
	if v := r.Header.Get(HeaderMtime); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			wire.WriteError(w, http.StatusBadRequest, "invalid_argument", HeaderMtime+" must be Unix nanoseconds")
			return 0, 0, false
		}
		mtime = n
	}
	if v := r.Header.Get(HeaderMode); v != "" {
		n, err := strconv.ParseUint(v, 8, 32)
		if err != nil || n > 0o7777 {
			wire.WriteError(w, http.StatusBadRequest, "invalid_argument", HeaderMode+" must be octal permission bits, e.g. 644")
			return 0, 0, false
		}
		mode = uint32(n)
	}
	return mtime, mode, true
}

// errTooBig reports a body over the file size limit; errIncomplete a body
// that could not be read to its end (the connection was cut).
var (
	errTooBig     = errors.New("the file is larger than the limit")
	errIncomplete = errors.New("the body ended early")
	errBusy       = errors.New("too many uploads on this gateway")
)

// uploadCharge is the most a body is charged against UploadMemory: the
// chunker's buffer (2 × 4 MiB), the chunks queued for hashing (8 × 4 MiB)
// and PutParallelism blocks being stored (8 × 4 MiB, copied once more by
// the replicator), rounded up.
const uploadCharge = 96 << 20

// bodyCharge is what a body streamed to the block nodes is charged
// against UploadMemory: three times its Content-Length (declared; -1:
// unknown) plus 128 KiB, at most uploadCharge.
func bodyCharge(declared int64) int64 {
	if declared >= 0 && declared < uploadCharge/3 {
		return 3*declared + 128<<10
	}
	return uploadCharge
}

// budget is a non-blocking counting semaphore of bytes.
type budget struct {
	max int64

	mu   sync.Mutex
	used int64
}

func (b *budget) take(n int64) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.used+n > b.max && b.used > 0 {
		return false
	}
	b.used += n
	return true
}

func (b *budget) give(n int64) {
	b.mu.Lock()
	b.used -= n
	b.mu.Unlock()
}

// bodyReader remembers the error that ended a request body early.
type bodyReader struct {
	r   io.Reader
	err error
}

func (b *bodyReader) Read(p []byte) (int, error) {
	n, err := b.r.Read(p)
	if err != nil && err != io.EOF {
		b.err = err
	}
	return n, err
}

// storeStream cuts body into content-defined blocks, stores each on the
// block nodes (PutParallelism at once) and feeds every byte to h. It
// returns the blocks in order once all are stored, their byte count, and
// h's state after every blocksPerAppend blocks (marks[k] after block
// (k+1)*blocksPerAppend: what a resumable upload records with each batch);
// base is the bytes before this stream, and more than MaxFileSize in all
// is errTooBig. A body that breaks off returns errIncomplete with the
// blocks cut and stored before the break (h has seen exactly their bytes);
// any other error returns no blocks. Blocks stored for nothing are garbage
// the collector reclaims.
//
// declared is the body's Content-Length (-1: unknown); the body is charged
// against UploadMemory while it streams (errBusy when that is spent).
func (s *Server) storeStream(ctx context.Context, body io.Reader, declared int64, h hash.Hash, base int64) (blocks []raftmeta.Block, n int64, marks [][]byte, err error) {
	charge := bodyCharge(declared)
	if !s.uploads.take(charge) {
		return nil, 0, nil, errBusy
	}
	defer s.uploads.give(charge)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		total  = base
		wg     sync.WaitGroup
		mu     sync.Mutex
		putErr error
		sem    = make(chan struct{}, s.cfg.PutParallelism)
	)
	fail := func(err error) {
		mu.Lock()
		if putErr == nil {
			putErr = err
		}
		mu.Unlock()
		cancel()
	}
	br := &bodyReader{r: body}
	// Two hashing workers: more buys nothing on the block path and costs
	// a buffered chunk each.
	err = cdc.Split(ctx, br, s.cfg.Chunking, 2, func(c cdc.Chunk) error {
		total += int64(c.Size)
		if total > s.cfg.MaxFileSize {
			return errTooBig
		}
		h.Write(c.Data)
		ref := blockstore.Ref(c.Sum)
		blocks = append(blocks, raftmeta.Block{Ref: raftmeta.Sum(c.Sum), Size: int64(c.Size)})
		if len(blocks)%blocksPerAppend == 0 {
			marks = append(marks, hashState(h))
		}
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			return ctx.Err()
		}
		wg.Add(1)
		go func(data []byte) {
			defer func() { <-sem; wg.Done() }()
			if err := s.cfg.Blocks.Put(ctx, ref, data); err != nil {
				fail(fmt.Errorf("store block %s: %w", ref, err))
			}
		}(c.Data)
		return nil
	})
	wg.Wait()
	if putErr != nil {
		return nil, 0, nil, putErr
	}
	if br.err != nil {
		// Every block cut before the break is stored: a resumable upload
		// keeps them.
		return blocks, total - base, marks, fmt.Errorf("%w: %v", errIncomplete, br.err)
	}
	if err != nil {
		return nil, 0, nil, err
	}
	return blocks, total - base, marks, nil
}

// putFile stores the body as the file's new revision: all or nothing. A
// body cut off midway, a failed block write or a failed precondition
// commits nothing.
func (s *Server) putFile(w http.ResponseWriter, r *http.Request, cl auth.Claims) {
	p, ok := filePath(w, r)
	if !ok {
		return
	}
	ifMatch, ifNoneMatch, ok := preconditions(w, r)
	if !ok {
		return
	}
	mtime, mode, ok := s.fileAttrs(w, r)
	if !ok {
		return
	}
	var want raftmeta.Sum
	if v := r.Header.Get(HeaderSHA256); v != "" {
		sum, err := raftmeta.ParseSum(v)
		if err != nil {
			wire.WriteError(w, http.StatusBadRequest, "invalid_argument", HeaderSHA256+": "+err.Error())
			return
		}
		want = sum
	}
	if r.ContentLength > s.cfg.MaxFileSize {
		wire.WriteError(w, http.StatusRequestEntityTooLarge, "too_large", fmt.Sprintf("a file is at most %d bytes", s.cfg.MaxFileSize))
		return
	}
	rid, ok := requestID(w, r, cl)
	if !ok {
		return
	}
	h := sha256.New()
	blocks, size, _, err := s.storeStream(r.Context(), r.Body, r.ContentLength, h, 0)
	switch {
	case errors.Is(err, errTooBig):
		wire.WriteError(w, http.StatusRequestEntityTooLarge, "too_large", fmt.Sprintf("a file is at most %d bytes", s.cfg.MaxFileSize))
		return
	case errors.Is(err, errIncomplete):
		wire.WriteError(w, http.StatusBadRequest, "incomplete_body", err.Error()+": nothing was committed")
		return
	case errors.Is(err, errBusy):
		retryAfter(w, time.Second)
		wire.WriteError(w, http.StatusTooManyRequests, "overloaded", err.Error()+"; retry later")
		return
	case err != nil:
		s.writeMetaError(w, r, err)
		return
	}
	var sum raftmeta.Sum
	h.Sum(sum[:0])
	if !want.IsZero() && want != sum {
		wire.WriteError(w, http.StatusBadRequest, "hash_mismatch", fmt.Sprintf("the body's SHA-256 is %s, not %s", sum, want))
		return
	}
	op := raftmeta.Op{Kind: raftmeta.OpPut, Path: p, IfMatch: ifMatch, IfNoneMatch: ifNoneMatch,
		Size: size, Mtime: mtime, Mode: mode, Hash: sum, Blocks: blocks}
	ctx, cancel := s.callCtx(r)
	defer cancel()
	res, err := s.commitPut(ctx, cl, rid, op)
	if err != nil {
		s.writeMetaError(w, r, err)
		return
	}
	w.Header().Set("ETag", etag(res.Ops[0].Rev))
	wire.WriteJSON(w, putStatus(res), fileResult(res, true, size, sum))
}

// commitPut commits one put op whose blocks are stored. A long block list
// goes through an upload session in batches of blocksPerAppend, finished
// by the commit, so no metadata entry grows with the file.
func (s *Server) commitPut(ctx context.Context, cl auth.Claims, rid string, op raftmeta.Op) (*raftmeta.CommitResult, error) {
	req := raftmeta.CommitRequest{RequestID: rid, Namespace: cl.Namespace, Ops: []raftmeta.Op{op}}
	if len(op.Blocks) <= blocksPerAppend {
		return s.cfg.Meta.Commit(ctx, cl.Shard, req)
	}
	// The session is named by the request and the content, so a retry of
	// the same PUT reuses it and two PUTs under one key with different
	// bodies never mix their blocks.
	id := uploadIDOf(rid + " " + op.Hash.String())
	res, err := func() (*raftmeta.CommitResult, error) {
		if _, err := s.cfg.Meta.CreateUpload(ctx, cl.Shard, "u"+id+"/create", cl.Namespace, id, op.Path, nil, nil); err != nil && !errors.Is(err, raftmeta.ErrExists) {
			return nil, err
		}
		if _, err := s.appendBatches(ctx, cl, id, 0, op.Blocks, nil, nil); err != nil {
			return nil, err
		}
		req.Upload = id
		req.Ops[0].Blocks = nil
		return s.cfg.Meta.Commit(ctx, cl.Shard, req)
	}()
	if err != nil && !errors.Is(err, raftmeta.ErrUnknownOutcome) {
		// Nothing was committed (a precondition, the quota, an append
		// refused): the session would hold one of the namespace's upload
		// slots until it expires.
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.cfg.CallTimeout)
		defer cancel()
		if derr := s.cfg.Meta.DeleteUpload(dctx, cl.Shard, "u"+id+"/drop", cl.Namespace, id); derr != nil && !errors.Is(derr, raftmeta.ErrNotFound) {
			s.log.Warn("could not drop a failed PUT's upload session", "upload", id, "err", derr)
		}
	}
	return res, err
}

// appendBatches appends blocks to upload id at off, blocksPerAppend per
// metadata entry, so no entry grows with the data. marks[k] is the hash
// state after batch k (nil: none kept); final the state after the last.
// Each batch's request ID is the upload and its offset, so a retry of the
// same append finds its first result. It returns the upload after the
// last batch; an upload that ends elsewhere than off + the blocks' bytes
// (a retried request answered from its first attempt, or a concurrent
// append) is ErrOffsetMismatch with the upload's offset.
func (s *Server) appendBatches(ctx context.Context, cl auth.Claims, id string, off int64, blocks []raftmeta.Block, marks [][]byte, final []byte) (*raftmeta.Upload, error) {
	var u *raftmeta.Upload
	want := off
	for _, b := range blocks {
		want += b.Size
	}
	for k, i := 0, 0; ; k, i = k+1, i+blocksPerAppend {
		last := i+blocksPerAppend >= len(blocks)
		part := blocks[i:min(len(blocks), i+blocksPerAppend)]
		state := final
		if !last && k < len(marks) {
			state = marks[k]
		}
		var err error
		u, err = s.cfg.Meta.AppendUpload(ctx, cl.Shard, "u"+id+"/"+strconv.FormatInt(off, 10), cl.Namespace, id, off, part, state)
		if err != nil {
			return nil, err
		}
		off = u.Size
		if last {
			break
		}
	}
	if u.Size != want {
		return u, &raftmeta.OpError{Code: raftmeta.CodeOffsetMismatch, Op: -1, Offset: u.Size,
			Message: fmt.Sprintf("the upload is at offset %d, not %d: another append went first", u.Size, want)}
	}
	return u, nil
}

// uploadIDOf derives an upload-session ID from a request ID, so a retry
// of the request uses the same session.
func uploadIDOf(rid string) string {
	sum := sha256.Sum256([]byte("upload " + rid))
	return hex.EncodeToString(sum[:16])
}

// putStatus is the status of a put's answer: 201 for a file's first
// revision, else 200.
func putStatus(res *raftmeta.CommitResult) int {
	if res.Ops[0].Rev == 1 {
		return http.StatusCreated
	}
	return http.StatusOK
}

func etag(rev uint64) string { return `"` + strconv.FormatUint(rev, 10) + `"` }

// fileResult is the answer to a one-op commit; put adds the content's
// size and hash.
func fileResult(res *raftmeta.CommitResult, put bool, size int64, sum raftmeta.Sum) wire.FileResult {
	op := res.Ops[0]
	out := wire.FileResult{Path: op.Path, ID: op.NodeID, Rev: op.Rev, Seq: res.Seq}
	if put {
		out.Size, out.Hash = &size, sum.String()
	}
	return out
}

// fileVersion is what a GET serves: a file's content at one revision.
type fileVersion struct {
	id, rev  uint64
	size     int64
	mtime    int64
	mode     uint32
	modified time.Time
	hash     raftmeta.Sum
	blocks   []raftmeta.Block
}

// resolveFile finds the file (at ?rev=N, else its current revision).
func (s *Server) resolveFile(ctx context.Context, cl auth.Claims, p string, revQuery string) (*fileVersion, error) {
	if revQuery == "" {
		e, err := s.cfg.Meta.Stat(ctx, cl.Shard, cl.Namespace, raftmeta.Target{Path: p}, raftmeta.StatOptions{})
		if err != nil {
			return nil, err
		}
		if e.Dir {
			return nil, &raftmeta.OpError{Code: raftmeta.CodeIsFolder, Op: -1, Path: p, Current: e.Rev, Message: p + " is a folder"}
		}
		return &fileVersion{id: e.ID, rev: e.Rev, size: e.Size, mtime: e.Mtime, mode: e.Mode,
			modified: time.Unix(0, e.Modified), hash: e.Hash, blocks: e.Blocks}, nil
	}
	rev, err := parseRev(revQuery)
	if err != nil {
		return nil, err
	}
	e, err := s.cfg.Meta.Stat(ctx, cl.Shard, cl.Namespace, raftmeta.Target{Path: p}, raftmeta.StatOptions{IncludeDeleted: true})
	if err != nil {
		return nil, err
	}
	revs, err := s.cfg.Meta.History(ctx, cl.Shard, cl.Namespace, raftmeta.Target{ID: e.ID}, raftmeta.HistoryOptions{Limit: 1, Rev: rev})
	if err != nil {
		return nil, err
	}
	if len(revs) == 0 || revs[0].Rev != rev {
		return nil, &raftmeta.OpError{Code: raftmeta.CodeNotFound, Op: -1, Path: p, Message: fmt.Sprintf("%s has no revision %d", p, rev)}
	}
	rv := revs[0]
	if rv.Deleted || rv.Dir {
		return nil, &raftmeta.OpError{Code: raftmeta.CodeNotFound, Op: -1, Path: p, Message: fmt.Sprintf("revision %d of %s is a deletion or a folder", rev, p)}
	}
	return &fileVersion{id: e.ID, rev: rv.Rev, size: rv.Size, mtime: rv.Mtime, mode: rv.Mode,
		modified: time.Unix(0, rv.Time), hash: rv.Hash, blocks: rv.Blocks}, nil
}

// getFile streams a file (or one revision of it) with Range, ETag and
// conditional requests (http.ServeContent); the blocks are fetched as the
// client reads, with read-ahead.
func (s *Server) getFile(w http.ResponseWriter, r *http.Request, cl auth.Claims) {
	p, ok := filePath(w, r)
	if !ok {
		return
	}
	ctx, cancel := s.callCtx(r)
	f, err := s.resolveFile(ctx, cl, p, r.URL.Query().Get("rev"))
	cancel()
	if err != nil {
		s.writeMetaError(w, r, err)
		return
	}
	hdr := w.Header()
	hdr.Set("ETag", etag(f.rev))
	hdr.Set(HeaderRev, strconv.FormatUint(f.rev, 10))
	if f.id != 0 {
		hdr.Set(HeaderID, strconv.FormatUint(f.id, 10))
	}
	hdr.Set(HeaderMtime, strconv.FormatInt(f.mtime, 10))
	hdr.Set(HeaderMode, strconv.FormatUint(uint64(f.mode), 8))
	if !f.hash.IsZero() {
		hdr.Set(HeaderSHA256, f.hash.String())
	}
	ct := mime.TypeByExtension(path.Ext(p))
	if ct == "" {
		ct = "application/octet-stream"
	}
	hdr.Set("Content-Type", ct)
	// Users' files are served from the API's origin, where the session
	// cookie works: never let a browser run them as active content.
	hdr.Set("X-Content-Type-Options", "nosniff")
	hdr.Set("Content-Security-Policy", "sandbox")
	rd := s.newBlockReader(r.Context(), f.blocks)
	defer rd.close()
	http.ServeContent(w, r, "", f.modified, rd)
}

// deleteFile deletes a file or folder (If-Match: its revision).
func (s *Server) deleteFile(w http.ResponseWriter, r *http.Request, cl auth.Claims) {
	p, ok := filePath(w, r)
	if !ok {
		return
	}
	ifMatch, _, ok := preconditions(w, r)
	if !ok {
		return
	}
	s.commitOne(w, r, cl, raftmeta.Op{Kind: raftmeta.OpDelete, Path: p, IfMatch: ifMatch}, http.StatusOK)
}

// commitOne commits a one-op batch and answers with its FileResult.
func (s *Server) commitOne(w http.ResponseWriter, r *http.Request, cl auth.Claims, op raftmeta.Op, status int) {
	rid, ok := requestID(w, r, cl)
	if !ok {
		return
	}
	ctx, cancel := s.callCtx(r)
	defer cancel()
	res, err := s.cfg.Meta.Commit(ctx, cl.Shard, raftmeta.CommitRequest{RequestID: rid, Namespace: cl.Namespace, Ops: []raftmeta.Op{op}})
	if err != nil {
		s.writeMetaError(w, r, err)
		return
	}
	w.Header().Set("ETag", etag(res.Ops[0].Rev))
	wire.WriteJSON(w, status, fileResult(res, false, 0, raftmeta.Sum{}))
}
