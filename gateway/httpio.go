package gateway

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/coffer-dev/coffer/blockstore"
	"github.com/coffer-dev/coffer/gateway/auth"
	"github.com/coffer-dev/coffer/internal/wire"
	"github.com/coffer-dev/coffer/raftmeta"
)

// The HTTP status of each metadata error code. Codes not listed are 500.
var metaStatus = map[raftmeta.Code]int{
	raftmeta.CodeConflict:        http.StatusConflict,
	raftmeta.CodeExists:          http.StatusConflict,
	raftmeta.CodeCaseConflict:    http.StatusConflict,
	raftmeta.CodeNotFolder:       http.StatusConflict,
	raftmeta.CodeIsFolder:        http.StatusConflict,
	raftmeta.CodeInvalidMove:     http.StatusConflict,
	raftmeta.CodeOffsetMismatch:  http.StatusConflict,
	raftmeta.CodeNotFound:        http.StatusNotFound,
	raftmeta.CodeInvalidPath:     http.StatusBadRequest,
	raftmeta.CodeInvalidName:     http.StatusBadRequest,
	raftmeta.CodeInvalidArgument: http.StatusBadRequest,
	raftmeta.CodeQuota:           http.StatusInsufficientStorage,
	raftmeta.CodeTooMany:         http.StatusTooManyRequests,
	raftmeta.CodeCursorExpired:   http.StatusGone,
	raftmeta.CodeBadCredentials:  http.StatusUnauthorized,
	raftmeta.CodeUnavailable:     http.StatusServiceUnavailable,
	raftmeta.CodeNotLeader:       http.StatusServiceUnavailable,
	raftmeta.CodeUnknownOutcome:  http.StatusServiceUnavailable,
}

// writeMetaError answers with a metadata (or block) error: its wire code,
// the status that fits, and the details an *raftmeta.OpError carries.
// Failures that are not the caller's (the shard or block nodes cannot be
// reached, an unknown outcome) are 503 with Retry-After; an unknown outcome
// keeps its own code, so the client knows to retry with the same
// Idempotency-Key to learn it.
func (s *Server) writeMetaError(w http.ResponseWriter, r *http.Request, err error) {
	if r.Context().Err() != nil {
		return // the client is gone
	}
	if errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, raftmeta.ErrUnknownOutcome) {
		retryAfter(w, time.Second)
		wire.WriteError(w, http.StatusServiceUnavailable, "unavailable", "the request timed out: "+err.Error())
		return
	}
	switch blockstore.CodeOf(err) {
	case blockstore.CodeOK, blockstore.CodeInternal:
	case blockstore.CodeNotFound:
		// A block a file names is gone from every node: data loss, not the
		// caller's fault.
		s.log.Error("block missing", "err", err)
		wire.WriteError(w, http.StatusInternalServerError, "block_missing", err.Error())
		return
	case blockstore.CodeHashMismatch:
		wire.WriteError(w, http.StatusBadRequest, "hash_mismatch", err.Error())
		return
	case blockstore.CodeTooLarge:
		wire.WriteError(w, http.StatusRequestEntityTooLarge, "too_large", err.Error())
		return
	default:
		retryAfter(w, time.Second)
		wire.WriteError(w, http.StatusServiceUnavailable, "unavailable", "block storage: "+err.Error())
		return
	}
	code := raftmeta.CodeOf(err)
	status, ok := metaStatus[code]
	if !ok {
		status = http.StatusInternalServerError
		s.log.Warn("request failed", "path", r.URL.Path, "err", err)
	}
	out := wire.Error{Code: string(code), Message: err.Error()}
	if code == raftmeta.CodeNotLeader {
		out.Code = "unavailable"
	}
	var oe *raftmeta.OpError
	if errors.As(err, &oe) {
		out.Message = oe.Message
		if out.Message == "" {
			out.Message = err.Error()
		}
		out.CurrentRev, out.Path = oe.Current, oe.Path
		if oe.Op >= 0 {
			op := oe.Op
			out.Op = &op
		}
		if code == raftmeta.CodeOffsetMismatch {
			off := oe.Offset
			out.Offset = &off
		}
	}
	if status == http.StatusServiceUnavailable || status == http.StatusTooManyRequests {
		retryAfter(w, time.Second)
	}
	wire.WriteJSON(w, status, out)
}

// decodeJSON decodes a JSON body of at most limit bytes strictly (unknown
// fields are refused); on failure it has answered 400 or 413.
func decodeJSON(w http.ResponseWriter, r *http.Request, limit int64, v any) bool {
	return wire.ReadJSON(w, r, limit, v, false)
}

// IdempotencyHeader carries a client's key for a mutating request: sent
// again with a retry, the retry is applied at most once and answers as the
// first attempt did. At most 80 printable ASCII characters.
const IdempotencyHeader = "Idempotency-Key"

// requestID returns the metadata request ID of a mutating request: the
// client's Idempotency-Key scoped to the user — their shard and their ID
// there, since user IDs repeat across shards and an admin's command goes
// to another user's shard — so one user's keys never meet another's; or a
// fresh random ID. On a bad key it has answered 400.
func requestID(w http.ResponseWriter, r *http.Request, cl auth.Claims) (string, bool) {
	key := r.Header.Get(IdempotencyHeader)
	if key == "" {
		return newID("g"), true
	}
	if len(key) > 80 || strings.IndexFunc(key, func(c rune) bool { return c < 0x21 || c > 0x7e }) >= 0 {
		wire.WriteError(w, http.StatusBadRequest, "invalid_argument", IdempotencyHeader+" must be 1 to 80 printable ASCII characters")
		return "", false
	}
	return "k" + strconv.FormatUint(cl.Shard, 36) + "." + strconv.FormatUint(cl.UserID, 36) + "." + key, true
}

// newID returns prefix + 32 random hex digits.
func newID(prefix string) string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return prefix + hex.EncodeToString(b[:])
}

// limited bounds the requests served at once: beyond MaxInFlight a request
// is answered 429 with Retry-After at once rather than queued.
func (s *Server) limited(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		select {
		case s.inflight <- struct{}{}:
			defer func() { <-s.inflight }()
			h(w, r)
		default:
			retryAfter(w, time.Second)
			wire.WriteError(w, http.StatusTooManyRequests, "overloaded", "the gateway is busy; retry later")
		}
	}
}

// perUser applies the per-user request rate.
func (s *Server) perUser(h func(http.ResponseWriter, *http.Request, auth.Claims)) func(http.ResponseWriter, *http.Request, auth.Claims) {
	return func(w http.ResponseWriter, r *http.Request, cl auth.Claims) {
		if ok, wait := s.users.allow(cl.Shard, cl.UserID); !ok {
			retryAfter(w, wait)
			wire.WriteError(w, http.StatusTooManyRequests, "rate_limited", "too many requests; retry later")
			return
		}
		h(w, r, cl)
	}
}

// userLimits holds a token bucket per user, dropping idle ones.
type userLimits struct {
	r     rate.Limit
	burst int
	now   func() time.Time

	mu      sync.Mutex
	buckets map[[2]uint64]*rate.Limiter
	swept   time.Time
}

func newUserLimits(perSec float64, burst int, now func() time.Time) *userLimits {
	u := &userLimits{r: rate.Limit(perSec), burst: burst, now: now, buckets: map[[2]uint64]*rate.Limiter{}}
	if perSec < 0 {
		u.r = rate.Inf
	}
	return u
}

func (u *userLimits) allow(shard, user uint64) (bool, time.Duration) {
	if u.r == rate.Inf {
		return true, 0
	}
	now := u.now()
	u.mu.Lock()
	defer u.mu.Unlock()
	if now.Sub(u.swept) > time.Minute {
		// A bucket that has refilled is the same as a new one.
		for k, b := range u.buckets {
			if b.TokensAt(now) >= float64(u.burst) {
				delete(u.buckets, k)
			}
		}
		u.swept = now
	}
	k := [2]uint64{shard, user}
	b := u.buckets[k]
	if b == nil {
		b = rate.NewLimiter(u.r, u.burst)
		u.buckets[k] = b
	}
	res := b.ReserveN(now, 1)
	if d := res.DelayFrom(now); d > 0 {
		res.CancelAt(now)
		return false, d
	}
	return true, 0
}
