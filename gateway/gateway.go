// Package gateway is Coffer's user-facing HTTP API: it authenticates each
// request, sends metadata calls to the user's shard and moves file bytes to
// and from the block nodes. See DESIGN.md beside this file.
package gateway

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/coffer-dev/coffer/blockstore"
	"github.com/coffer-dev/coffer/gateway/auth"
	"github.com/coffer-dev/coffer/gateway/blockcache"
	"github.com/coffer-dev/coffer/internal/cdc"
	"github.com/coffer-dev/coffer/internal/wire"
	"github.com/coffer-dev/coffer/raftmeta"
)

// Meta is what the gateway needs of the metadata layer: calls to a shard's
// leader, group first (cluster/route implements it). Every mutating call
// carries a request ID: a retry with the same ID is applied at most once.
type Meta interface {
	Authenticate(ctx context.Context, group uint64, name, password string) (*raftmeta.User, error)
	User(ctx context.Context, group uint64, name string, o raftmeta.ReadOptions) (*raftmeta.User, error)
	Users(ctx context.Context, group uint64, o raftmeta.UsersOptions) (*raftmeta.UserPage, error)
	CreateUser(ctx context.Context, group uint64, req raftmeta.CreateUserRequest) (*raftmeta.User, error)
	DeleteUser(ctx context.Context, group uint64, requestID, name string) error
	SetPassword(ctx context.Context, group uint64, requestID, name, password string) error
	SetQuota(ctx context.Context, group uint64, requestID, name string, quota int64) error
	RevokeToken(ctx context.Context, group uint64, requestID, tokenID string, expires time.Time) error
	RevokeSessions(ctx context.Context, group uint64, requestID, name string) (*raftmeta.User, error)
	TokenRevoked(ctx context.Context, group uint64, tokenID string, o raftmeta.ReadOptions) (bool, error)

	Commit(ctx context.Context, group uint64, req raftmeta.CommitRequest) (*raftmeta.CommitResult, error)
	Stat(ctx context.Context, group, ns uint64, t raftmeta.Target, o raftmeta.StatOptions) (*raftmeta.Entry, error)
	List(ctx context.Context, group, ns uint64, t raftmeta.Target, o raftmeta.ListOptions) (*raftmeta.ListPage, error)
	History(ctx context.Context, group, ns uint64, t raftmeta.Target, o raftmeta.HistoryOptions) ([]raftmeta.Revision, error)
	Namespace(ctx context.Context, group, ns uint64, o raftmeta.ReadOptions) (*raftmeta.Namespace, error)
	Referenced(ctx context.Context, group, ns uint64, refs []raftmeta.Sum, o raftmeta.ReadOptions) ([]bool, error)
	Changes(ctx context.Context, group, ns, cursor uint64, limit int, o raftmeta.ReadOptions) (*raftmeta.ChangesPage, error)
	WaitChanges(ctx context.Context, group, ns, cursor uint64, limit int, timeout time.Duration, o raftmeta.ReadOptions) (*raftmeta.ChangesPage, error)

	CreateUpload(ctx context.Context, group uint64, requestID string, ns uint64, id, path string, state, meta []byte) (*raftmeta.Upload, error)
	AppendUpload(ctx context.Context, group uint64, requestID string, ns uint64, id string, offset int64, blocks []raftmeta.Block, state []byte) (*raftmeta.Upload, error)
	GetUpload(ctx context.Context, group, ns uint64, id string, o raftmeta.ReadOptions) (*raftmeta.Upload, error)
	DeleteUpload(ctx context.Context, group uint64, requestID string, ns uint64, id string) error
}

// Blocks is what the gateway needs of the block store
// (blockstore/replica.Replicator implements it).
type Blocks interface {
	// Put stores a block durably on W of R nodes (ErrHashMismatch if data
	// does not hash to ref).
	Put(ctx context.Context, ref blockstore.Ref, data []byte) error
	// Get returns a block's bytes, verified against ref.
	Get(ctx context.Context, ref blockstore.Ref) ([]byte, error)
}

// Cluster tells the gateway what it needs to know of the cluster.
type Cluster interface {
	// Shards is the number of shard groups (0 while the cluster forms).
	Shards() int
	// SigningKey is the cluster's session-signing key.
	SigningKey(ctx context.Context) ([]byte, error)
}

// Defaults of Config.
const (
	DefaultCallTimeout    = 15 * time.Second
	DefaultMaxFileSize    = 1 << 40 // 1 TiB
	DefaultMaxJSONBody    = 16 << 20
	DefaultMaxInFlight    = 512
	DefaultUploadMemory   = 1536 << 20
	DefaultUserRate       = 200 // requests per second per user
	DefaultUserBurst      = 400
	DefaultMaxLongPolls   = 10000
	DefaultLongPoll       = 30 * time.Second
	DefaultBlockCache     = 256 << 20
	DefaultPutParallelism = 8
	DefaultMaxBatchBytes  = 64 << 20
	// ReceiptTTL is how long a block receipt is accepted by a commit. It is
	// well inside the block garbage collector's grace period (24 h), so a
	// block a receipt vouches for is never swept before its commit.
	ReceiptTTL = 6 * time.Hour
)

// Config configures a Server.
type Config struct {
	Meta    Meta    // required
	Blocks  Blocks  // required
	Cluster Cluster // required
	// TokenTTL is how long a session token lives (default 24h).
	TokenTTL time.Duration
	// Login limits login attempts (and Basic-auth checks) per user name and
	// per client address (defaults: auth.LimiterConfig's).
	Login auth.LimiterConfig
	// Revocation configures the cache of revocation answers (defaults:
	// auth.CheckerConfig's; its TTL bounds how long a logout made through
	// another gateway takes to be seen here).
	Revocation auth.CheckerConfig
	// CallTimeout bounds a metadata call made for a request (default 15s).
	CallTimeout time.Duration
	// MaxFileSize bounds one file (default 1 TiB); MaxJSONBody a JSON
	// request body (default 16 MiB).
	MaxFileSize int64
	MaxJSONBody int64
	// MaxInFlight bounds the requests served at once, long-polls aside
	// (default 512); MaxLongPolls the long-polls waiting at once (default
	// 10000). Beyond either, requests get 429 with Retry-After.
	MaxInFlight  int
	MaxLongPolls int
	// UploadMemory bounds the memory of the bodies streamed to the block
	// nodes at once (PUT /v1/files, upload appends, POST /v1/blocks/batch;
	// default 1.5 GiB). A body is
	// charged an estimate of what it holds at most — chunks being read,
	// hashed and stored: three times its Content-Length plus 128 KiB, at
	// most uploadCharge (96 MiB, also for a body of unknown length) — so
	// many small files stream at once and about 16 large ones. Beyond it,
	// 429 with Retry-After.
	UploadMemory int64
	// UserRate and UserBurst limit each user's requests per second on this
	// gateway (defaults 200 and 400; a negative UserRate turns it off).
	UserRate  float64
	UserBurst int
	// LongPoll is the longest a change-feed long-poll waits (default 30s,
	// at most 60s).
	LongPoll time.Duration
	// BlockCache bounds the in-memory cache of blocks in bytes (default
	// 256 MiB; negative: no cache).
	BlockCache int64
	// Chunking configures how PUT bodies are cut into blocks (defaults:
	// cdc.Config's: 256 KiB min, 1 MiB average, 4 MiB max).
	Chunking cdc.Config
	// PutParallelism is how many blocks of one upload are stored at once
	// (default 8).
	PutParallelism int
	// MaxBatchBytes bounds the block bytes of one batch (default 64 MiB): a
	// POST /v1/blocks/batch carrying more is refused (413), and a POST
	// /v1/blocks/read stops after the block that takes its answer to it
	// (the client asks again for the rest).
	MaxBatchBytes int64
	Logger        *slog.Logger
	Now           func() time.Time
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
	if c.Blocks == nil {
		errs = append(errs, errors.New("Blocks is required"))
	}
	if c.Cluster == nil {
		errs = append(errs, errors.New("Cluster is required"))
	}
	if err := c.ValidateTunables(); err != nil {
		errs = append(errs, err)
	}
	if len(errs) > 0 {
		return fmt.Errorf("%w: %w", ErrInvalidConfig, errors.Join(errs...))
	}
	return nil
}

// ValidateTunables checks every field but Meta, Blocks and Cluster (which
// the node supplies), reporting every problem at once.
func (c Config) ValidateTunables() error {
	var errs []error
	if c.TokenTTL < 0 || c.CallTimeout < 0 || c.LongPoll < 0 {
		errs = append(errs, errors.New("TokenTTL, CallTimeout and LongPoll must not be negative"))
	}
	if c.LongPoll > metaMaxWait {
		errs = append(errs, fmt.Errorf("LongPoll %v is above %v", c.LongPoll, metaMaxWait))
	}
	if c.MaxFileSize < 0 || c.MaxJSONBody < 0 || c.MaxInFlight < 0 || c.MaxLongPolls < 0 || c.UploadMemory < 0 || c.UserBurst < 0 || c.PutParallelism < 0 || c.MaxBatchBytes < 0 {
		errs = append(errs, errors.New("MaxFileSize, MaxJSONBody, MaxInFlight, MaxLongPolls, UploadMemory, UserBurst, PutParallelism and MaxBatchBytes must not be negative"))
	}
	if c.BlockCache > 0 && c.BlockCache < blockcache.MinMaxBytes {
		errs = append(errs, fmt.Errorf("BlockCache %d is below %d bytes (negative: no cache)", c.BlockCache, blockcache.MinMaxBytes))
	}
	if c.Chunking != (cdc.Config{}) {
		if err := c.Chunking.Validate(); err != nil {
			errs = append(errs, err)
		}
	}
	if err := c.Login.Validate(); err != nil {
		errs = append(errs, err)
	}
	if err := c.Revocation.Validate(); err != nil {
		errs = append(errs, err)
	}
	if len(errs) > 0 {
		return fmt.Errorf("%w: gateway: %w", ErrInvalidConfig, errors.Join(errs...))
	}
	return nil
}

// metaMaxWait is the longest wait a change-feed call may ask of a shard.
const metaMaxWait = 60 * time.Second

// Server serves the API. Use New, then Register on the node's HTTP mux.
type Server struct {
	cfg      Config
	log      *slog.Logger
	limiter  *auth.Limiter
	checker  *auth.Checker
	cache    *blockcache.Cache // nil: no cache
	inflight chan struct{}
	polls    chan struct{}
	uploads  *budget
	users    *userLimits
	basic    *basicCache

	mu     sync.Mutex
	signer *auth.Signer // made once the cluster's key is known
	rcpt   []byte       // the block receipt key, derived from the signing key
}

// New returns a Server.
func New(cfg Config) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	def := func(v *time.Duration, d time.Duration) {
		if *v == 0 {
			*v = d
		}
	}
	def(&cfg.TokenTTL, auth.DefaultTTL)
	def(&cfg.CallTimeout, DefaultCallTimeout)
	def(&cfg.LongPoll, DefaultLongPoll)
	defInt := func(v *int64, d int64) {
		if *v == 0 {
			*v = d
		}
	}
	defInt(&cfg.MaxFileSize, DefaultMaxFileSize)
	defInt(&cfg.MaxJSONBody, DefaultMaxJSONBody)
	defInt(&cfg.BlockCache, DefaultBlockCache)
	defInt(&cfg.MaxBatchBytes, DefaultMaxBatchBytes)
	if cfg.MaxInFlight == 0 {
		cfg.MaxInFlight = DefaultMaxInFlight
	}
	if cfg.MaxLongPolls == 0 {
		cfg.MaxLongPolls = DefaultMaxLongPolls
	}
	if cfg.UploadMemory == 0 {
		cfg.UploadMemory = DefaultUploadMemory
	}
	if cfg.UserRate == 0 {
		cfg.UserRate = DefaultUserRate
	}
	if cfg.UserBurst == 0 {
		cfg.UserBurst = DefaultUserBurst
	}
	if cfg.PutParallelism == 0 {
		cfg.PutParallelism = DefaultPutParallelism
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
	if cfg.Revocation.Now == nil {
		cfg.Revocation.Now = cfg.Now
	}
	lim, err := auth.NewLimiter(cfg.Login)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidConfig, err)
	}
	s := &Server{cfg: cfg, log: cfg.Logger.With("component", "gateway"), limiter: lim,
		inflight: make(chan struct{}, cfg.MaxInFlight), polls: make(chan struct{}, cfg.MaxLongPolls), uploads: &budget{max: cfg.UploadMemory},
		users: newUserLimits(cfg.UserRate, cfg.UserBurst, cfg.Now), basic: newBasicCache()}
	s.checker, err = auth.NewChecker(revocations{s}, cfg.Revocation)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidConfig, err)
	}
	if cfg.BlockCache > 0 {
		if s.cache, err = blockcache.New(blockcache.Config{MaxBytes: cfg.BlockCache}); err != nil {
			return nil, fmt.Errorf("%w: %w", ErrInvalidConfig, err)
		}
	}
	return s, nil
}

// Register adds the API's routes to mux.
func (s *Server) Register(mux *http.ServeMux) {
	mux.HandleFunc("POST /v1/login", s.login)
	s.handle(mux, "POST /v1/logout", s.logout)
	s.handle(mux, "GET /v1/whoami", s.whoami)
	s.handle(mux, "POST /v1/password", s.changePassword)

	s.handle(mux, "PUT /v1/files/{path...}", s.putFile)
	s.handle(mux, "GET /v1/files/{path...}", s.getFile)
	s.handle(mux, "HEAD /v1/files/{path...}", s.getFile)
	s.handle(mux, "DELETE /v1/files/{path...}", s.deleteFile)

	s.handle(mux, "POST /v1/blocks/missing", s.missingBlocks)
	s.handle(mux, "PUT /v1/blocks/{ref}", s.putBlock)
	s.handle(mux, "POST /v1/blocks/batch", s.putBlockBatch)
	s.handle(mux, "POST /v1/blocks/read", s.readBlocks)
	s.handle(mux, "POST /v1/commit", s.commit)

	s.handle(mux, "GET /v1/stat/{path...}", s.stat)
	s.handle(mux, "GET /v1/list/{path...}", s.list)
	s.handle(mux, "POST /v1/mkdir/{path...}", s.mkdir)
	s.handle(mux, "POST /v1/move", s.move)
	s.handle(mux, "GET /v1/history/{path...}", s.history)
	s.handle(mux, "POST /v1/restore", s.restore)
	mux.HandleFunc("GET /v1/changes", s.authenticated(s.perUser(s.changes))) // bounds its own concurrency

	s.handle(mux, "POST /v1/uploads", s.createUpload)
	s.handle(mux, "GET /v1/uploads/{id}", s.getUpload)
	s.handle(mux, "PATCH /v1/uploads/{id}", s.appendUpload)
	s.handle(mux, "POST /v1/uploads/{id}/finish", s.finishUpload)
	s.handle(mux, "DELETE /v1/uploads/{id}", s.deleteUpload)

	s.handleAdmin(mux, "GET /v1/admin/users", s.listUsers)
	s.handleAdmin(mux, "POST /v1/admin/users", s.createUser)
	s.handleAdmin(mux, "GET /v1/admin/users/{name}", s.getUser)
	s.handleAdmin(mux, "PUT /v1/admin/users/{name}/password", s.resetPassword)
	s.handleAdmin(mux, "PUT /v1/admin/users/{name}/quota", s.setQuota)
	s.handleAdmin(mux, "POST /v1/admin/users/{name}/logout", s.logoutUser)
	s.handleAdmin(mux, "DELETE /v1/admin/users/{name}", s.deleteUser)
}

// handle registers an authenticated user route, under the overload limits.
func (s *Server) handle(mux *http.ServeMux, pattern string, h func(http.ResponseWriter, *http.Request, auth.Claims)) {
	mux.HandleFunc(pattern, s.limited(s.authenticated(s.perUser(h))))
}

// handleAdmin registers an admin route.
func (s *Server) handleAdmin(mux *http.ServeMux, pattern string, h func(http.ResponseWriter, *http.Request, auth.Claims)) {
	s.handle(mux, pattern, adminOnly(h))
}

// Admin wraps h, a handler of the node's admin API: the caller
// authenticates as for any request (token, cookie or Basic, rate-limited)
// and must be an admin user.
func (s *Server) Admin(h http.HandlerFunc) http.HandlerFunc {
	return s.authenticated(adminOnly(func(w http.ResponseWriter, r *http.Request, _ auth.Claims) { h(w, r) }))
}

// adminOnly runs h for admin users and answers 403 to the others.
func adminOnly(h func(http.ResponseWriter, *http.Request, auth.Claims)) func(http.ResponseWriter, *http.Request, auth.Claims) {
	return func(w http.ResponseWriter, r *http.Request, cl auth.Claims) {
		if !cl.Admin {
			wire.WriteError(w, http.StatusForbidden, "forbidden", "admin role required")
			return
		}
		h(w, r, cl)
	}
}

// CookieName is the session cookie's name.
const CookieName = "coffer_session"

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
	s.rcpt = receiptKey(key)
	return sg, nil
}

// shardOf maps a user name to its shard, or answers 503 while the
// cluster forms.
func (s *Server) shardOf(w http.ResponseWriter, name string) (uint64, bool) {
	shards := s.cfg.Cluster.Shards()
	if shards == 0 {
		retryAfter(w, time.Second)
		wire.WriteError(w, http.StatusServiceUnavailable, "unavailable", "the cluster is not formed yet")
		return 0, false
	}
	shard, err := raftmeta.ShardOf(name, shards)
	if err != nil {
		wire.WriteError(w, http.StatusBadRequest, "invalid_name", err.Error())
		return 0, false
	}
	return shard, true
}

// callCtx bounds one metadata call made for r.
func (s *Server) callCtx(r *http.Request) (context.Context, context.CancelFunc) {
	return context.WithTimeout(r.Context(), s.cfg.CallTimeout)
}
