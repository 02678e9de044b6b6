package gateway

import (
	"fmt"
	"net/http"
	"strconv"

	"github.com/coffer-dev/coffer/gateway/auth"
	"github.com/coffer-dev/coffer/internal/wire"
	"github.com/coffer-dev/coffer/raftmeta"
)

// queryBool reads a boolean query parameter ("1", "true").
func queryBool(r *http.Request, name string) bool {
	v := r.URL.Query().Get(name)
	return v == "1" || v == "true"
}

// queryInt reads a non-negative integer query parameter (0 if absent); on
// a bad value it has answered 400.
func queryInt(w http.ResponseWriter, r *http.Request, name string) (int, bool) {
	v := r.URL.Query().Get(name)
	if v == "" {
		return 0, true
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 {
		wire.WriteError(w, http.StatusBadRequest, "invalid_argument", fmt.Sprintf("%s must be a non-negative integer", name))
		return 0, false
	}
	return n, true
}

// target reads the file a request names: ?id=N, else the route's path.
func target(w http.ResponseWriter, r *http.Request) (raftmeta.Target, bool) {
	if v := r.URL.Query().Get("id"); v != "" {
		id, err := strconv.ParseUint(v, 10, 64)
		if err != nil || id == 0 {
			wire.WriteError(w, http.StatusBadRequest, "invalid_argument", "id must be a node ID")
			return raftmeta.Target{}, false
		}
		return raftmeta.Target{ID: id}, true
	}
	p, ok := filePath(w, r)
	return raftmeta.Target{Path: p}, ok
}

// stat answers a file's or folder's entry (?deleted=1: a deleted one too).
func (s *Server) stat(w http.ResponseWriter, r *http.Request, cl auth.Claims) {
	t, ok := target(w, r)
	if !ok {
		return
	}
	ctx, cancel := s.callCtx(r)
	defer cancel()
	e, err := s.cfg.Meta.Stat(ctx, cl.Shard, cl.Namespace, t, raftmeta.StatOptions{IncludeDeleted: queryBool(r, "deleted")})
	if err != nil {
		s.writeMetaError(w, r, err)
		return
	}
	w.Header().Set("ETag", etag(e.Rev))
	wire.WriteJSON(w, http.StatusOK, e)
}

// list answers a page of a folder (?recursive=1, ?deleted=1, ?limit=N,
// ?page_token=…).
func (s *Server) list(w http.ResponseWriter, r *http.Request, cl auth.Claims) {
	t, ok := target(w, r)
	if !ok {
		return
	}
	limit, ok := queryInt(w, r, "limit")
	if !ok {
		return
	}
	o := raftmeta.ListOptions{Recursive: queryBool(r, "recursive"), IncludeDeleted: queryBool(r, "deleted"),
		Limit: limit, PageToken: r.URL.Query().Get("page_token")}
	ctx, cancel := s.callCtx(r)
	defer cancel()
	p, err := s.cfg.Meta.List(ctx, cl.Shard, cl.Namespace, t, o)
	if err != nil {
		s.writeMetaError(w, r, err)
		return
	}
	wire.WriteJSON(w, http.StatusOK, p)
}

func (s *Server) mkdir(w http.ResponseWriter, r *http.Request, cl auth.Claims) {
	p, ok := filePath(w, r)
	if !ok {
		return
	}
	s.commitOne(w, r, cl, raftmeta.Op{Kind: raftmeta.OpMkdir, Path: p, Mtime: s.cfg.Now().UnixNano(), Mode: 0o755}, http.StatusCreated)
}

func (s *Server) move(w http.ResponseWriter, r *http.Request, cl auth.Claims) {
	var req wire.MoveRequest
	if !decodeJSON(w, r, s.cfg.MaxJSONBody, &req) {
		return
	}
	s.commitOne(w, r, cl, raftmeta.Op{Kind: raftmeta.OpMove, Path: req.From, To: req.To, IfMatch: req.IfMatch}, http.StatusOK)
}

// history answers a file's revisions, newest first, deletions included
// (?limit=N, ?id=N for a node whose path is taken, ?from=REV to start at
// that revision and go older). A full page carries next_from, the ?from of
// the next page.
func (s *Server) history(w http.ResponseWriter, r *http.Request, cl auth.Claims) {
	t, ok := target(w, r)
	if !ok {
		return
	}
	limit, ok := queryInt(w, r, "limit")
	if !ok {
		return
	}
	var from uint64
	if v := r.URL.Query().Get("from"); v != "" {
		var err error
		if from, err = parseRev(v); err != nil {
			wire.WriteError(w, http.StatusBadRequest, "invalid_argument", "from: "+err.Error())
			return
		}
	}
	ctx, cancel := s.callCtx(r)
	defer cancel()
	o := raftmeta.HistoryOptions{Limit: limit, Rev: from}
	revs, err := s.cfg.Meta.History(ctx, cl.Shard, cl.Namespace, t, o)
	if err != nil {
		s.writeMetaError(w, r, err)
		return
	}
	out := historyPage{Revisions: revs}
	if n := len(revs); n > 0 && n == raftmeta.HistoryPageSize(limit) && revs[n-1].Rev > 1 {
		out.NextFrom = revs[n-1].Rev - 1
	}
	wire.WriteJSON(w, http.StatusOK, out)
}

// historyPage answers GET /v1/history.
type historyPage struct {
	Revisions []raftmeta.Revision `json:"revisions"`
	NextFrom  uint64              `json:"next_from,omitempty"`
}

// restore brings back a revision of a file (a deleted one too) as a new
// revision; restoring is itself undoable.
func (s *Server) restore(w http.ResponseWriter, r *http.Request, cl auth.Claims) {
	var req wire.RestoreRequest
	if !decodeJSON(w, r, s.cfg.MaxJSONBody, &req) {
		return
	}
	if req.Rev == 0 || (req.Path == "" && req.ID == 0) {
		wire.WriteError(w, http.StatusBadRequest, "invalid_argument", "a restore needs rev and a path or an id")
		return
	}
	op := raftmeta.Op{Kind: raftmeta.OpRestore, Path: req.Path, NodeID: req.ID, Rev: req.Rev, IfMatch: req.IfMatch}
	if req.ID != 0 && req.To != "" {
		op.Path = req.To
	}
	s.commitOne(w, r, cl, op, http.StatusOK)
}

// commit applies a batch of ops atomically. Every block a put names must
// be referenced by the caller's namespace already or come with a receipt
// from PUT /v1/blocks.
func (s *Server) commit(w http.ResponseWriter, r *http.Request, cl auth.Claims) {
	// The body is wire.CommitRequest; its ops decode straight into
	// raftmeta's (same JSON fields; hashes are hex, which raftmeta.Sum
	// parses).
	var req struct {
		Ops      []raftmeta.Op `json:"ops"`
		Receipts []string      `json:"receipts"`
	}
	if !decodeJSON(w, r, s.cfg.MaxJSONBody, &req) {
		return
	}
	rid, ok := requestID(w, r, cl)
	if !ok {
		return
	}
	key, ok := s.receiptKey(w, r)
	if !ok {
		return
	}
	ctx, cancel := s.callCtx(r)
	defer cancel()
	vouched, err := s.vouched(key, cl, req.Receipts)
	if err != nil {
		s.writeMetaError(w, r, err)
		return
	}
	res, err := s.cfg.Meta.Commit(ctx, cl.Shard, raftmeta.CommitRequest{RequestID: rid, Namespace: cl.Namespace, Ops: req.Ops,
		Check: &raftmeta.BlockCheck{Vouched: vouched}})
	if err != nil {
		s.writeMetaError(w, r, err)
		return
	}
	wire.WriteJSON(w, http.StatusOK, res)
}
