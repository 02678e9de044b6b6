package gateway

import (
	"context"
	"crypto/sha256"
	"encoding"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/coffer-dev/coffer/gateway/auth"
	"github.com/coffer-dev/coffer/internal/wire"
	"github.com/coffer-dev/coffer/raftmeta"
	"github.com/coffer-dev/coffer/raftmeta/metapath"
)

// Resumable uploads. The session lives in the user's shard (raftmeta
// Upload): the path, the bytes received so far with their blocks, the
// running SHA-256 (State) and the options of the final commit (Meta), so
// any gateway serves the next append and a gateway restart loses nothing.
// An append whose body breaks off keeps every whole block received before
// the break; the client asks for the offset and goes on from there.

// OffsetHeader carries the offset of an append (and answers it).
const OffsetHeader = "Upload-Offset"

// uploadMeta is what a session keeps for its final commit.
type uploadMeta struct {
	Mtime       int64  `json:"mtime"`
	Mode        uint32 `json:"mode"`
	IfMatch     uint64 `json:"if_match,omitempty"`
	IfNoneMatch bool   `json:"if_none_match,omitempty"`
}

func hashState(h hash.Hash) []byte {
	b, _ := h.(encoding.BinaryMarshaler).MarshalBinary()
	return b
}

// resumeHash rebuilds a session's running SHA-256.
func resumeHash(state []byte) (hash.Hash, error) {
	h := sha256.New()
	if len(state) == 0 {
		return h, nil
	}
	if err := h.(encoding.BinaryUnmarshaler).UnmarshalBinary(state); err != nil {
		return nil, fmt.Errorf("%w: the upload's hash state: %v", raftmeta.ErrCorruptStore, err)
	}
	return h, nil
}

func uploadOut(u *raftmeta.Upload) wire.Upload {
	return wire.Upload{ID: u.ID, Path: u.Path, Offset: u.Size, Expires: time.Unix(0, u.Expires).UTC().Format(time.RFC3339)}
}

func (s *Server) createUpload(w http.ResponseWriter, r *http.Request, cl auth.Claims) {
	var req wire.UploadRequest
	if !decodeJSON(w, r, s.cfg.MaxJSONBody, &req) {
		return
	}
	p, err := metapath.Clean(req.Path)
	if err != nil {
		wire.WriteError(w, http.StatusBadRequest, "invalid_path", err.Error())
		return
	}
	if req.IfMatch != 0 && req.IfNoneMatch {
		wire.WriteError(w, http.StatusBadRequest, "invalid_argument", "if_match and if_none_match exclude each other")
		return
	}
	if req.Mode > 0o7777 {
		wire.WriteError(w, http.StatusBadRequest, "invalid_argument", "mode must be permission bits")
		return
	}
	m := uploadMeta{Mtime: req.Mtime, Mode: req.Mode, IfMatch: req.IfMatch, IfNoneMatch: req.IfNoneMatch}
	if m.Mtime == 0 {
		m.Mtime = s.cfg.Now().UnixNano()
	}
	if m.Mode == 0 {
		m.Mode = 0o644
	}
	meta, _ := json.Marshal(m)
	rid, ok := requestID(w, r, cl)
	if !ok {
		return
	}
	ctx, cancel := s.callCtx(r)
	defer cancel()
	u, err := s.cfg.Meta.CreateUpload(ctx, cl.Shard, rid, cl.Namespace, uploadIDOf(rid), p, hashState(sha256.New()), meta)
	if err != nil {
		s.writeMetaError(w, r, err)
		return
	}
	w.Header().Set("Location", "/v1/uploads/"+u.ID)
	w.Header().Set(OffsetHeader, "0")
	wire.WriteJSON(w, http.StatusCreated, uploadOut(u))
}

// uploadID reads the {id} of an upload route: 32 lower-case hex digits.
func uploadID(w http.ResponseWriter, r *http.Request) (string, bool) {
	id := r.PathValue("id")
	if len(id) != 32 || !isLowerHex(id) {
		wire.WriteError(w, http.StatusNotFound, "not_found", "no such upload")
		return "", false
	}
	return id, true
}

func isLowerHex(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

func (s *Server) getUpload(w http.ResponseWriter, r *http.Request, cl auth.Claims) {
	id, ok := uploadID(w, r)
	if !ok {
		return
	}
	ctx, cancel := s.callCtx(r)
	defer cancel()
	u, err := s.cfg.Meta.GetUpload(ctx, cl.Shard, cl.Namespace, id, raftmeta.ReadOptions{})
	if err != nil {
		s.writeMetaError(w, r, err)
		return
	}
	w.Header().Set(OffsetHeader, strconv.FormatInt(u.Size, 10))
	wire.WriteJSON(w, http.StatusOK, uploadOut(u))
}

// appendUpload appends the body at Upload-Offset. A wrong offset is 409
// offset_mismatch with the right one; a body that breaks off keeps what
// arrived in whole blocks.
func (s *Server) appendUpload(w http.ResponseWriter, r *http.Request, cl auth.Claims) {
	id, ok := uploadID(w, r)
	if !ok {
		return
	}
	off, err := strconv.ParseInt(r.Header.Get(OffsetHeader), 10, 64)
	if err != nil || off < 0 {
		wire.WriteError(w, http.StatusBadRequest, "invalid_argument", "an append needs the "+OffsetHeader+" header")
		return
	}
	// An append needs no request ID of its own: each metadata entry is
	// named by the upload and the offset it starts at, which makes a
	// repeated append idempotent (an Idempotency-Key is still checked).
	if _, ok := requestID(w, r, cl); !ok {
		return
	}
	// The blocks and their record must outlive a client that goes away
	// mid-body: what arrived is kept.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), s.cfg.CallTimeout)
	u, err := s.cfg.Meta.GetUpload(ctx, cl.Shard, cl.Namespace, id, raftmeta.ReadOptions{})
	cancel()
	if err != nil {
		s.writeMetaError(w, r, err)
		return
	}
	if u.Size != off {
		w.Header().Set(OffsetHeader, strconv.FormatInt(u.Size, 10))
		size := u.Size
		wire.WriteJSON(w, http.StatusConflict, wire.Error{Code: string(raftmeta.CodeOffsetMismatch),
			Message: fmt.Sprintf("the upload is at offset %d", u.Size), Offset: &size})
		return
	}
	h, err := resumeHash(u.State)
	if err != nil {
		s.writeMetaError(w, r, err)
		return
	}
	blocks, n, marks, err := s.storeStream(context.WithoutCancel(r.Context()), r.Body, r.ContentLength, h, off)
	switch {
	case errors.Is(err, errTooBig):
		wire.WriteError(w, http.StatusRequestEntityTooLarge, "too_large", fmt.Sprintf("a file is at most %d bytes", s.cfg.MaxFileSize))
		return
	case errors.Is(err, errBusy):
		retryAfter(w, time.Second)
		wire.WriteError(w, http.StatusTooManyRequests, "overloaded", err.Error()+"; retry later")
		return
	case err != nil && !errors.Is(err, errIncomplete):
		s.writeMetaError(w, r, err)
		return
	}
	incomplete := err
	ctx, cancel = context.WithTimeout(context.WithoutCancel(r.Context()), s.cfg.CallTimeout)
	defer cancel()
	if n > 0 || incomplete == nil {
		u, err = s.appendBatches(ctx, cl, id, off, blocks, marks, hashState(h))
		if err != nil {
			s.writeMetaError(w, r, err)
			return
		}
	}
	w.Header().Set(OffsetHeader, strconv.FormatInt(u.Size, 10))
	if incomplete != nil {
		size := u.Size
		wire.WriteJSON(w, http.StatusBadRequest, wire.Error{Code: "incomplete_body",
			Message: incomplete.Error() + ": resume at the offset", Offset: &size})
		return
	}
	wire.WriteJSON(w, http.StatusOK, uploadOut(u))
}

// finishUpload commits the upload as the file's new revision (checking the
// preconditions given at creation, and the client's SHA-256 if sent). The
// session ends with the commit; a failed commit leaves it for another try.
func (s *Server) finishUpload(w http.ResponseWriter, r *http.Request, cl auth.Claims) {
	id, ok := uploadID(w, r)
	if !ok {
		return
	}
	var req wire.FinishRequest
	if r.ContentLength != 0 && !decodeJSON(w, r, s.cfg.MaxJSONBody, &req) {
		return
	}
	rid, ok := requestID(w, r, cl)
	if !ok {
		return
	}
	ctx, cancel := s.callCtx(r)
	defer cancel()
	u, err := s.cfg.Meta.GetUpload(ctx, cl.Shard, cl.Namespace, id, raftmeta.ReadOptions{})
	if errors.Is(err, raftmeta.ErrNotFound) && r.Header.Get(IdempotencyHeader) != "" {
		// A retry of a finish that went through: the session is gone, but
		// the shard remembers the commit under this request ID and answers
		// it again. If there was no such commit, the upload is not found
		// and nothing is applied.
		s.refinish(w, r, ctx, cl, rid, id)
		return
	}
	if err != nil {
		s.writeMetaError(w, r, err)
		return
	}
	h, err := resumeHash(u.State)
	if err != nil {
		s.writeMetaError(w, r, err)
		return
	}
	var sum raftmeta.Sum
	h.Sum(sum[:0])
	if req.Hash != "" {
		want, err := raftmeta.ParseSum(strings.ToLower(req.Hash))
		if err != nil {
			wire.WriteError(w, http.StatusBadRequest, "invalid_argument", "hash: "+err.Error())
			return
		}
		if want != sum {
			wire.WriteError(w, http.StatusBadRequest, "hash_mismatch", fmt.Sprintf("the bytes received hash to %s, not %s; the upload is kept", sum, req.Hash))
			return
		}
	}
	m := uploadMeta{Mtime: s.cfg.Now().UnixNano(), Mode: 0o644} // a PUT's own session keeps none
	if len(u.Meta) > 0 {
		if err := json.Unmarshal(u.Meta, &m); err != nil {
			s.writeMetaError(w, r, fmt.Errorf("%w: the upload's options: %v", raftmeta.ErrCorruptStore, err))
			return
		}
	}
	op := raftmeta.Op{Kind: raftmeta.OpPut, Path: u.Path, IfMatch: m.IfMatch, IfNoneMatch: m.IfNoneMatch,
		Size: u.Size, Mtime: m.Mtime, Mode: m.Mode, Hash: sum}
	res, err := s.cfg.Meta.Commit(ctx, cl.Shard, raftmeta.CommitRequest{RequestID: rid, Namespace: cl.Namespace, Ops: []raftmeta.Op{op}, Upload: id})
	if err != nil {
		s.writeMetaError(w, r, err)
		return
	}
	w.Header().Set("ETag", etag(res.Ops[0].Rev))
	wire.WriteJSON(w, putStatus(res), fileResult(res, true, u.Size, sum))
}

func (s *Server) deleteUpload(w http.ResponseWriter, r *http.Request, cl auth.Claims) {
	id, ok := uploadID(w, r)
	if !ok {
		return
	}
	rid, ok := requestID(w, r, cl)
	if !ok {
		return
	}
	ctx, cancel := s.callCtx(r)
	defer cancel()
	if err := s.cfg.Meta.DeleteUpload(ctx, cl.Shard, rid, cl.Namespace, id); err != nil {
		s.writeMetaError(w, r, err)
		return
	}
	wire.WriteJSON(w, http.StatusOK, map[string]bool{"ok": true})
}

// refinish answers a retried finish from the shard's record of the first
// attempt's commit.
func (s *Server) refinish(w http.ResponseWriter, r *http.Request, ctx context.Context, cl auth.Claims, rid, id string) {
	res, err := s.cfg.Meta.Commit(ctx, cl.Shard, raftmeta.CommitRequest{RequestID: rid, Namespace: cl.Namespace,
		Upload: id, Ops: []raftmeta.Op{{Kind: raftmeta.OpPut, Path: "/retry"}}})
	if err != nil {
		s.writeMetaError(w, r, err)
		return
	}
	st, err := s.cfg.Meta.Stat(ctx, cl.Shard, cl.Namespace, raftmeta.Target{ID: res.Ops[0].NodeID}, raftmeta.StatOptions{IncludeDeleted: true})
	if err != nil {
		s.writeMetaError(w, r, err)
		return
	}
	// The file may have changed since; the answer is the first one's
	// revision, its size and hash are the file's as that revision had them
	// only if it is still current.
	out := fileResult(res, false, 0, raftmeta.Sum{})
	if st.Rev == res.Ops[0].Rev {
		out = fileResult(res, true, st.Size, st.Hash)
	}
	w.Header().Set("ETag", etag(res.Ops[0].Rev))
	wire.WriteJSON(w, putStatus(res), out)
}
