package gateway

import (
	"context"
	"net/http"
	"strconv"
	"time"

	"github.com/coffer-dev/coffer/gateway/auth"
	"github.com/coffer-dev/coffer/internal/wire"
	"github.com/coffer-dev/coffer/raftmeta"
)

// changes answers the namespace's journal after ?cursor=N (0 or absent:
// from the start). With ?wait=D (a duration such as 30s, or seconds) and
// nothing after the cursor, it waits until a commit to the namespace (it
// returns within about 100 ms of it) or until D passes, capped at
// Config.LongPoll. A cursor older than the journal's start is answered 410
// with code cursor_reset and the head: list afresh, then follow from it.
func (s *Server) changes(w http.ResponseWriter, r *http.Request, cl auth.Claims) {
	q := r.URL.Query()
	var cursor uint64
	if v := q.Get("cursor"); v != "" {
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			wire.WriteError(w, http.StatusBadRequest, "invalid_argument", "cursor must be a journal position")
			return
		}
		cursor = n
	}
	limit, ok := queryInt(w, r, "limit")
	if !ok {
		return
	}
	var wait time.Duration
	if v := q.Get("wait"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			secs, err2 := strconv.ParseFloat(v, 64)
			if err2 != nil || secs < 0 {
				wire.WriteError(w, http.StatusBadRequest, "invalid_argument", "wait must be a duration (30s) or seconds")
				return
			}
			d = time.Duration(secs * float64(time.Second))
		}
		wait = min(max(d, 0), s.cfg.LongPoll)
	}
	// A long-poll holds its request for long: it is bounded by its own
	// limit, not by MaxInFlight.
	slots := s.inflight
	if wait > 0 {
		slots = s.polls
	}
	select {
	case slots <- struct{}{}:
		defer func() { <-slots }()
	default:
		retryAfter(w, time.Second)
		wire.WriteError(w, http.StatusTooManyRequests, "overloaded", "the gateway is busy; retry later")
		return
	}
	ctx, cancel := s.callCtx(r)
	defer cancel()
	var (
		p   *raftmeta.ChangesPage
		err error
	)
	if wait == 0 {
		p, err = s.cfg.Meta.Changes(ctx, cl.Shard, cl.Namespace, cursor, limit, raftmeta.ReadOptions{})
	} else {
		// The wait does not count against CallTimeout.
		wctx, wcancel := context.WithTimeout(r.Context(), wait+s.cfg.CallTimeout)
		p, err = s.cfg.Meta.WaitChanges(wctx, cl.Shard, cl.Namespace, cursor, limit, wait, raftmeta.ReadOptions{})
		wcancel()
	}
	if raftmeta.CodeOf(err) == raftmeta.CodeCursorExpired {
		out := wire.Error{Code: "cursor_reset", Message: err.Error() + ": list afresh, then follow the feed from head"}
		if ns, nerr := s.cfg.Meta.Namespace(ctx, cl.Shard, cl.Namespace, raftmeta.ReadOptions{}); nerr == nil {
			out.Head = ns.Head
		}
		wire.WriteJSON(w, http.StatusGone, out)
		return
	}
	if err != nil {
		s.writeMetaError(w, r, err)
		return
	}
	wire.WriteJSON(w, http.StatusOK, p)
}
