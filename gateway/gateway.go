// Package gateway is Coffer's user-facing HTTP API: it authenticates each
// request, sends metadata calls to the user's shard and moves file bytes to
// and from the block nodes. See DESIGN.md beside this file.
package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/coffer-dev/coffer/gateway/auth"
	"github.com/coffer-dev/coffer/internal/wire"
	"github.com/coffer-dev/coffer/raftmeta"
)

// Meta is what the gateway needs of the metadata layer: calls to a shard's
// leader (cluster/route implements it).
type Meta interface {
	Authenticate(ctx context.Context, group uint64, name, password string) (*raftmeta.User, error)
}

// Cluster tells the gateway what it needs to know of the cluster.
type Cluster interface {
	// Shards is the number of shard groups (0 while the cluster forms).
	Shards() int
	// SigningKey is the cluster's session-signing key.
	SigningKey(ctx context.Context) ([]byte, error)
}

// Config configures a Server.
type Config struct {
	Meta    Meta    // required
	Cluster Cluster // required
	// TokenTTL is how long a session token lives (default 24h).
	TokenTTL time.Duration
	// Login limits login attempts (and Basic-auth checks) per user name and
	// per client address (defaults: auth.LimiterConfig's).
	Login auth.LimiterConfig
	// CallTimeout bounds a metadata call made for a request (default 15s).
	CallTimeout time.Duration
	Logger      *slog.Logger
	Now         func() time.Time
}

// Sentinel errors.
var (
	// ErrInvalidConfig: a Config failed validation.
	ErrInvalidConfig = errors.New("invalid gateway config")
)

// Validate reports every problem at once.
func (c Config) Validate() error {
	var errs []error
	if c.Meta == nil {
		errs = append(errs, errors.New("Meta is required"))
	}
	if c.Cluster == nil {
		errs = append(errs, errors.New("Cluster is required"))
	}
	if c.TokenTTL < 0 || c.CallTimeout < 0 {
		errs = append(errs, errors.New("TokenTTL and CallTimeout must not be negative"))
	}
	if err := c.Login.Validate(); err != nil {
		errs = append(errs, err)
	}
	if len(errs) > 0 {
		return fmt.Errorf("%w: %w", ErrInvalidConfig, errors.Join(errs...))
	}
	return nil
}

// Server serves the API. Use New, then Register on the node's HTTP mux.
type Server struct {
	cfg     Config
	log     *slog.Logger
	limiter *auth.Limiter

	mu     sync.Mutex
	signer *auth.Signer // made once the cluster's key is known
}

// New returns a Server.
func New(cfg Config) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.TokenTTL == 0 {
		cfg.TokenTTL = auth.DefaultTTL
	}
	if cfg.CallTimeout == 0 {
		cfg.CallTimeout = 15 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Login.Now == nil {
		cfg.Login.Now = cfg.Now
	}
	lim, err := auth.NewLimiter(cfg.Login)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidConfig, err)
	}
	return &Server{cfg: cfg, log: cfg.Logger.With("component", "gateway"), limiter: lim}, nil
}

// Register adds the API's routes to mux.
func (s *Server) Register(mux *http.ServeMux) {
	mux.HandleFunc("POST /v1/login", s.login)
	mux.HandleFunc("GET /v1/whoami", s.authenticated(s.whoami))
}

// CookieName is the session cookie's name.
const CookieName = "coffer_session"

// maxLoginBody bounds a login request body.
const maxLoginBody = 4 << 10

// getSigner returns the token signer, made on first use from the cluster's
// key (the cluster may still be forming when the node starts).
func (s *Server) getSigner(ctx context.Context) (*auth.Signer, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.signer != nil {
		return s.signer, nil
	}
	key, err := s.cfg.Cluster.SigningKey(ctx)
	if err != nil {
		return nil, err
	}
	sg, err := auth.NewSigner(auth.SignerConfig{Keys: [][]byte{key}, TTL: s.cfg.TokenTTL, Now: s.cfg.Now})
	if err != nil {
		return nil, err
	}
	s.signer = sg
	return sg, nil
}

// LoginRequest is the body of POST /v1/login.
type LoginRequest struct {
	Name     string `json:"name"`
	Password string `json:"password"`
}

// LoginResponse answers POST /v1/login.
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
}

func (s *Server) login(w http.ResponseWriter, r *http.Request) {
	var req LoginRequest
	dec := json.NewDecoder(io.LimitReader(r.Body, maxLoginBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil || req.Name == "" {
		wire.WriteError(w, http.StatusBadRequest, "invalid_argument", `the body must be {"name": …, "password": …}`)
		return
	}
	u, err := s.checkPassword(r, req.Name, req.Password, w)
	if err != nil {
		return // answered
	}
	sg, err := s.getSigner(r.Context())
	if err != nil {
		wire.WriteError(w, http.StatusServiceUnavailable, "unavailable", "sessions are not available yet: "+err.Error())
		return
	}
	shard, _ := raftmeta.ShardOf(u.Name, s.cfg.Cluster.Shards())
	tok, cl, err := sg.Issue(auth.Claims{User: u.Name, UserID: u.ID, Shard: shard, Namespace: u.Namespace, Admin: u.Admin})
	if err != nil {
		wire.WriteError(w, http.StatusInternalServerError, "internal", "could not issue a token")
		return
	}
	http.SetCookie(w, &http.Cookie{Name: CookieName, Value: tok, Path: "/", Expires: cl.Expires,
		HttpOnly: true, Secure: r.TLS != nil, SameSite: http.SameSiteLaxMode})
	wire.WriteJSON(w, http.StatusOK, LoginResponse{Token: tok, Expires: cl.Expires, User: u.Name, Admin: u.Admin})
}

// checkPassword rate-limits and checks a user's password on their shard;
// on failure it has answered the request.
func (s *Server) checkPassword(r *http.Request, name, password string, w http.ResponseWriter) (*raftmeta.User, error) {
	if ok, wait := s.limiter.Allow(name, clientAddr(r)); !ok {
		w.Header().Set("Retry-After", strconv.Itoa(int(wait.Seconds()+0.999)))
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
	ctx, cancel := context.WithTimeout(r.Context(), s.cfg.CallTimeout)
	defer cancel()
	u, err := s.cfg.Meta.Authenticate(ctx, shard, name, password)
	switch {
	case errors.Is(err, raftmeta.ErrBadCredentials), errors.Is(err, raftmeta.ErrInvalidName):
		wire.WriteError(w, http.StatusUnauthorized, "unauthenticated", "bad credentials")
		return nil, err
	case err != nil:
		wire.WriteError(w, http.StatusServiceUnavailable, "unavailable", "cannot check credentials now")
		s.log.Warn("credential check failed", "err", err)
		return nil, err
	}
	return u, nil
}

type claimsKey struct{}

// authenticated runs h for a request with a valid session token (Bearer
// or the session cookie) or valid HTTP Basic credentials.
func (s *Server) authenticated(h func(http.ResponseWriter, *http.Request, auth.Claims)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if name, password, ok := r.BasicAuth(); ok {
			u, err := s.checkPassword(r, name, password, w)
			if err != nil {
				return
			}
			shard, _ := raftmeta.ShardOf(u.Name, s.cfg.Cluster.Shards())
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
			wire.WriteError(w, http.StatusServiceUnavailable, "unavailable", "sessions are not available yet")
			return
		}
		cl, err := sg.Verify(tok)
		switch {
		case errors.Is(err, auth.ErrExpired):
			wire.WriteError(w, http.StatusUnauthorized, "token_expired", "the session has expired: log in again")
			return
		case err != nil:
			wire.WriteError(w, http.StatusUnauthorized, "unauthenticated", "invalid session token")
			return
		}
		h(w, r, cl)
	}
}

// Admin wraps h, a handler of the admin API: the caller authenticates as
// for any request (token, cookie or Basic, rate-limited) and must be an
// admin user.
func (s *Server) Admin(h http.HandlerFunc) http.HandlerFunc {
	return s.authenticated(func(w http.ResponseWriter, r *http.Request, cl auth.Claims) {
		if !cl.Admin {
			wire.WriteError(w, http.StatusForbidden, "forbidden", "admin role required")
			return
		}
		h(w, r)
	})
}

func (s *Server) whoami(w http.ResponseWriter, r *http.Request, cl auth.Claims) {
	wire.WriteJSON(w, http.StatusOK, Whoami{User: cl.User, Admin: cl.Admin, Shard: cl.Shard, Namespace: cl.Namespace, Expires: cl.Expires})
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
