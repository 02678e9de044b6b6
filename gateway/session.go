package gateway

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/coffer-dev/coffer/gateway/auth"
	"github.com/coffer-dev/coffer/internal/wire"
	"github.com/coffer-dev/coffer/raftmeta"
)

// maxLoginBody bounds a login request body.
const maxLoginBody = 4 << 10

// LoginRequest is the body of POST /v1/login.
type LoginRequest struct {
	Name     string `json:"name"`
	Password string `json:"password"`
}

// LoginResponse answers POST /v1/login (and POST /v1/password, which
// issues a fresh token: the change ends every other session).
type LoginResponse struct {
	Token   string    `json:"token"`
	Expires time.Time `json:"expires"`
	User    string    `json:"user"`
	Admin   bool      `json:"admin"`
}

// Whoami answers GET /v1/whoami.
type Whoami struct {
	User      string    `json:"user"`
	Admin     bool      `json:"admin"`
	Shard     uint64    `json:"shard"`
	Namespace uint64    `json:"namespace"`
	Expires   time.Time `json:"expires,omitzero"`
	Quota     int64     `json:"quota"` // bytes; 0: unlimited
	Used      int64     `json:"used"`
	Files     int64     `json:"files"`
	Cursor    uint64    `json:"cursor"` // the change feed's head
}

func (s *Server) login(w http.ResponseWriter, r *http.Request) {
	var req LoginRequest
	if !decodeJSON(w, r, maxLoginBody, &req) {
		return
	}
	if req.Name == "" {
		wire.WriteError(w, http.StatusBadRequest, "invalid_argument", `the body must be {"name": …, "password": …}`)
		return
	}
	u, err := s.checkPassword(r, req.Name, req.Password, w)
	if err != nil {
		return // answered
	}
	s.issue(w, r, u)
}

// issue answers with a new session token for u (and sets the cookie).
func (s *Server) issue(w http.ResponseWriter, r *http.Request, u *raftmeta.User) {
	sg, err := s.getSigner(r.Context())
	if err != nil {
		wire.WriteError(w, http.StatusServiceUnavailable, "unavailable", "sessions are not available yet: "+err.Error())
		return
	}
	shard, ok := s.shardOf(w, u.Name)
	if !ok {
		return
	}
	cl := auth.Claims{User: u.Name, UserID: u.ID, Shard: shard, Namespace: u.Namespace, Admin: u.Admin, Epoch: u.SessionEpoch}
	tok, full, err := sg.Issue(cl)
	if err != nil {
		wire.WriteError(w, http.StatusInternalServerError, "internal", "could not issue a token")
		return
	}
	http.SetCookie(w, &http.Cookie{Name: CookieName, Value: tok, Path: "/", Expires: full.Expires,
		HttpOnly: true, Secure: r.TLS != nil, SameSite: http.SameSiteLaxMode})
	wire.WriteJSON(w, http.StatusOK, LoginResponse{Token: tok, Expires: full.Expires, User: u.Name, Admin: u.Admin})
}

// logout ends the caller's session (revokes its token); with ?all=1 every
// session of the user. A Basic-auth caller has no session: ?all=1 still
// works, a plain logout changes nothing.
func (s *Server) logout(w http.ResponseWriter, r *http.Request, cl auth.Claims) {
	rid, ok := requestID(w, r, cl)
	if !ok {
		return
	}
	ctx, cancel := s.callCtx(r)
	defer cancel()
	var err error
	switch {
	case r.URL.Query().Get("all") == "1" || r.URL.Query().Get("all") == "true":
		_, err = s.cfg.Meta.RevokeSessions(ctx, cl.Shard, rid, cl.User)
		s.checker.Forget(cl.Shard, cl.User)
	case cl.ID != "":
		err = s.cfg.Meta.RevokeToken(ctx, cl.Shard, rid, cl.ID, cl.Expires)
		s.checker.Forget(cl.Shard, cl.User)
	}
	if err != nil {
		s.writeMetaError(w, r, err)
		return
	}
	http.SetCookie(w, &http.Cookie{Name: CookieName, Value: "", Path: "/", MaxAge: -1, HttpOnly: true, Secure: r.TLS != nil})
	wire.WriteJSON(w, http.StatusOK, map[string]bool{"ok": true})
}

// changePassword sets the caller's password after checking the current
// one; every session of the user ends, and the answer carries a fresh
// token for this one.
func (s *Server) changePassword(w http.ResponseWriter, r *http.Request, cl auth.Claims) {
	var req wire.PasswordRequest
	if !decodeJSON(w, r, maxLoginBody, &req) {
		return
	}
	if _, err := s.checkPassword(r, cl.User, req.Current, w); err != nil {
		return
	}
	rid, ok := requestID(w, r, cl)
	if !ok {
		return
	}
	ctx, cancel := s.callCtx(r)
	defer cancel()
	if err := s.cfg.Meta.SetPassword(ctx, cl.Shard, rid, cl.User, req.New); err != nil {
		s.writeMetaError(w, r, err)
		return
	}
	s.checker.Forget(cl.Shard, cl.User)
	s.basic.forget(cl.User)
	u, err := s.cfg.Meta.User(ctx, cl.Shard, cl.User, raftmeta.ReadOptions{})
	if err != nil {
		s.writeMetaError(w, r, err)
		return
	}
	s.issue(w, r, u)
}

// checkPassword rate-limits and checks a user's password on their shard;
// on failure it has answered the request.
func (s *Server) checkPassword(r *http.Request, name, password string, w http.ResponseWriter) (*raftmeta.User, error) {
	if ok, wait := s.limiter.Allow(name, clientAddr(r)); !ok {
		retryAfter(w, wait)
		wire.WriteError(w, http.StatusTooManyRequests, "rate_limited", "too many login attempts; retry later")
		return nil, errors.New("rate limited")
	}
	shards := s.cfg.Cluster.Shards()
	if shards == 0 {
		wire.WriteError(w, http.StatusServiceUnavailable, "unavailable", "the cluster is not formed yet")
		return nil, errors.New("not formed")
	}
	shard, err := raftmeta.ShardOf(name, shards)
	if err != nil {
		wire.WriteError(w, http.StatusUnauthorized, "unauthenticated", "bad credentials")
		return nil, err
	}
	ctx, cancel := s.callCtx(r)
	defer cancel()
	u, err := s.cfg.Meta.Authenticate(ctx, shard, name, password)
	switch {
	case errors.Is(err, raftmeta.ErrBadCredentials), errors.Is(err, raftmeta.ErrInvalidName):
		wire.WriteError(w, http.StatusUnauthorized, "unauthenticated", "bad credentials")
		return nil, err
	case err != nil:
		retryAfter(w, time.Second)
		wire.WriteError(w, http.StatusServiceUnavailable, "unavailable", "cannot check credentials now")
		s.log.Warn("credential check failed", "err", err)
		return nil, err
	}
	return u, nil
}

// authenticated runs h for a request with a valid, unrevoked session token
// (Bearer or the session cookie) or valid HTTP Basic credentials.
func (s *Server) authenticated(h func(http.ResponseWriter, *http.Request, auth.Claims)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if name, password, ok := r.BasicAuth(); ok {
			u := s.basic.get(name, password, s.cfg.Now())
			if u == nil {
				var err error
				if u, err = s.checkPassword(r, name, password, w); err != nil {
					return
				}
				s.basic.put(name, password, u, s.cfg.Now())
			}
			shard, ok := s.shardOf(w, u.Name)
			if !ok {
				return
			}
			h(w, r, auth.Claims{User: u.Name, UserID: u.ID, Shard: shard, Namespace: u.Namespace, Admin: u.Admin})
			return
		}
		tok := bearer(r)
		if tok == "" {
			if c, err := r.Cookie(CookieName); err == nil {
				tok = c.Value
			}
		}
		if tok == "" {
			w.Header().Set("WWW-Authenticate", `Bearer realm="coffer", Basic realm="coffer"`)
			wire.WriteError(w, http.StatusUnauthorized, "unauthenticated", "a session token (Authorization: Bearer) or Basic credentials are required")
			return
		}
		sg, err := s.getSigner(r.Context())
		if err != nil {
			retryAfter(w, time.Second)
			wire.WriteError(w, http.StatusServiceUnavailable, "unavailable", "sessions are not available yet")
			return
		}
		cl, err := sg.Verify(tok)
		if err == nil {
			err = s.checker.Check(r.Context(), cl)
		}
		switch {
		case err == nil:
			h(w, r, cl)
		case errors.Is(err, auth.ErrExpired):
			wire.WriteError(w, http.StatusUnauthorized, "token_expired", "the session has expired: log in again")
		case errors.Is(err, auth.ErrRevoked):
			wire.WriteError(w, http.StatusUnauthorized, "token_revoked", "the session has ended: log in again")
		case errors.Is(err, auth.ErrRevocationLookup):
			retryAfter(w, time.Second)
			wire.WriteError(w, http.StatusServiceUnavailable, "unavailable", "cannot check the session now")
		default:
			wire.WriteError(w, http.StatusUnauthorized, "unauthenticated", "invalid session token")
		}
	}
}

// revocations answers the auth checker from the user's shard.
type revocations struct{ s *Server }

// Sessions reads the user's session state from their shard (a deleted or
// unknown user does not exist: every token of theirs is revoked).
func (v revocations) Sessions(ctx context.Context, shard uint64, user string) (auth.Sessions, error) {
	u, err := v.s.cfg.Meta.User(ctx, shard, user, raftmeta.ReadOptions{})
	switch {
	case errors.Is(err, raftmeta.ErrNotFound), errors.Is(err, raftmeta.ErrInvalidName):
		return auth.Sessions{}, nil
	case err != nil:
		return auth.Sessions{}, err
	}
	return auth.Sessions{Exists: true, UserID: u.ID, Epoch: u.SessionEpoch}, nil
}

func (v revocations) Revoked(ctx context.Context, shard uint64, tokenID string) (bool, error) {
	return v.s.cfg.Meta.TokenRevoked(ctx, shard, tokenID, raftmeta.ReadOptions{})
}

func (s *Server) whoami(w http.ResponseWriter, r *http.Request, cl auth.Claims) {
	ctx, cancel := s.callCtx(r)
	defer cancel()
	out := Whoami{User: cl.User, Admin: cl.Admin, Shard: cl.Shard, Namespace: cl.Namespace, Expires: cl.Expires}
	u, err := s.cfg.Meta.User(ctx, cl.Shard, cl.User, raftmeta.ReadOptions{Stale: true})
	if err != nil {
		s.writeMetaError(w, r, err)
		return
	}
	ns, err := s.cfg.Meta.Namespace(ctx, cl.Shard, cl.Namespace, raftmeta.ReadOptions{Stale: true})
	if err != nil {
		s.writeMetaError(w, r, err)
		return
	}
	out.Quota, out.Used, out.Files, out.Cursor = u.Quota, ns.Used, ns.Files, ns.Head
	wire.WriteJSON(w, http.StatusOK, out)
}

func bearer(r *http.Request) string {
	h := r.Header.Get("Authorization")
	const p = "Bearer "
	if len(h) > len(p) && (h[:len(p)] == p || h[:len(p)] == "bearer ") {
		return h[len(p):]
	}
	return ""
}

// clientAddr is the request's peer IP (proxies' headers are not trusted).
func clientAddr(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// retryAfter sets Retry-After to d rounded up to whole seconds (at least 1).
func retryAfter(w http.ResponseWriter, d time.Duration) {
	secs := max(1, int((d+time.Second-1)/time.Second))
	w.Header().Set("Retry-After", strconv.Itoa(secs))
}

// basicCache remembers HTTP Basic credentials that checked out, for
// basicTTL, so a Basic-auth client (WebDAV-style: credentials on every
// request) costs one argon2id check and one login-limiter token per
// basicTTL instead of one per request. Entries are keyed by an HMAC of name
// and password under a random per-process key, so the cache holds no
// password. A password change through this gateway drops the user's
// entries; one made through another gateway is seen within basicTTL.
type basicCache struct {
	key []byte

	mu sync.Mutex
	m  map[[32]byte]basicEntry
}

type basicEntry struct {
	u       *raftmeta.User
	expires time.Time
}

const (
	basicTTL        = 30 * time.Second
	basicMaxEntries = 10000
)

func newBasicCache() *basicCache {
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	return &basicCache{key: key, m: map[[32]byte]basicEntry{}}
}

func (c *basicCache) id(name, password string) [32]byte {
	m := hmac.New(sha256.New, c.key)
	m.Write([]byte(name))
	m.Write([]byte{0})
	m.Write([]byte(password))
	var k [32]byte
	m.Sum(k[:0])
	return k
}

func (c *basicCache) get(name, password string, now time.Time) *raftmeta.User {
	k := c.id(name, password)
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.m[k]
	if !ok || now.After(e.expires) {
		return nil
	}
	return e.u
}

func (c *basicCache) put(name, password string, u *raftmeta.User, now time.Time) {
	k := c.id(name, password)
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.m) >= basicMaxEntries {
		for k, e := range c.m {
			if now.After(e.expires) {
				delete(c.m, k)
			}
		}
		if len(c.m) >= basicMaxEntries {
			clear(c.m)
		}
	}
	c.m[k] = basicEntry{u: u, expires: now.Add(basicTTL)}
}

// forget drops every entry of a user (by name, case-insensitively).
func (c *basicCache) forget(name string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for k, e := range c.m {
		if strings.EqualFold(e.u.Name, name) {
			delete(c.m, k)
		}
	}
}
