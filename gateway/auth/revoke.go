package auth

import (
	"container/list"
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"
)

// RevocationSource answers revocation questions; the user's shard keeps the
// records. It is implemented outside the gateway (wired by cluster) and
// must be safe for concurrent use.
type RevocationSource interface {
	// Sessions returns the user's session state: whether the user exists,
	// its ID and its session epoch (which a password change or a logout
	// everywhere moves up, revoking every token of an earlier epoch).
	Sessions(ctx context.Context, shard uint64, user string) (Sessions, error)
	// Revoked reports whether the token ID was revoked (logout of one session).
	Revoked(ctx context.Context, shard uint64, tokenID string) (bool, error)
}

// Sessions is a user's session state, as the user's shard records it.
type Sessions struct {
	// Exists is false for a deleted or unknown user: every token is
	// revoked.
	Exists bool
	// UserID is the user's ID: a token naming another ID was issued to an
	// earlier user of the same name.
	UserID uint64
	// Epoch is the user's session epoch; a token of an earlier epoch is
	// revoked.
	Epoch uint64
}

// Checker defaults.
const (
	DefaultCheckerTTL    = 5 * time.Second
	DefaultMaxEntries    = 100_000
	DefaultLookupTimeout = 5 * time.Second
)

// CheckerConfig configures a Checker.
type CheckerConfig struct {
	// TTL is how long an answer of the source is reused (default
	// DefaultCheckerTTL). It bounds how long a revocation made through
	// another gateway takes to be seen here. Must be >= 0.
	TTL time.Duration
	// MaxEntries bounds the cache (default DefaultMaxEntries); when full,
	// the oldest answers are dropped first. Must be >= 0.
	MaxEntries int
	// LookupTimeout bounds one call to the source (default
	// DefaultLookupTimeout). A call is shared by every concurrent caller
	// asking the same question, so it is not bound to the context of the
	// caller that started it; each caller still stops waiting when its own
	// context ends. Must be >= 0.
	LookupTimeout time.Duration
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// Validate reports every problem of c at once, in one error wrapping
// ErrInvalidConfig, or nil if c is valid. Zero fields take their defaults.
func (c CheckerConfig) Validate() error {
	var errs []error
	if c.TTL < 0 {
		errs = append(errs, fmt.Errorf("TTL %v < 0", c.TTL))
	}
	if c.MaxEntries < 0 {
		errs = append(errs, fmt.Errorf("MaxEntries %d < 0", c.MaxEntries))
	}
	if c.LookupTimeout < 0 {
		errs = append(errs, fmt.Errorf("LookupTimeout %v < 0", c.LookupTimeout))
	}
	if len(errs) > 0 {
		return fmt.Errorf("%w: checker: %w", ErrInvalidConfig, errors.Join(errs...))
	}
	return nil
}

// Checker tells whether a verified token was revoked, asking a
// RevocationSource and caching its answers (revoked or not) for TTL, so a
// busy user costs the shard at most two lookups per TTL per gateway.
// Concurrent identical lookups share one call. Errors are never cached.
// It is safe for concurrent use.
//
// A token is revoked if its ID was revoked, if its user no longer exists
// or has another ID (an earlier user of the same name), or if its session
// epoch is below the user's (a password change or a logout everywhere
// since it was issued). Epochs are counters, not times: no clock is
// compared, so a token issued right after a revocation is valid and one
// issued right before it is not, however close together they are.
type Checker struct {
	src     RevocationSource
	ttl     time.Duration
	max     int
	timeout time.Duration
	now     func() time.Time

	mu       sync.Mutex
	entries  map[cacheKey]*list.Element // values are *cacheEntry
	order    *list.List                 // oldest answer at the front
	byUser   map[userKey]map[cacheKey]struct{}
	inflight map[cacheKey]*lookupCall
}

// NewChecker returns a Checker asking src, or an error wrapping
// ErrInvalidConfig.
func NewChecker(src RevocationSource, cfg CheckerConfig) (*Checker, error) {
	err := cfg.Validate()
	if src == nil {
		err = errors.Join(err, fmt.Errorf("%w: checker: nil RevocationSource", ErrInvalidConfig))
	}
	if err != nil {
		return nil, err
	}
	c := &Checker{
		src: src, ttl: cfg.TTL, max: cfg.MaxEntries, timeout: cfg.LookupTimeout, now: cfg.Now,
		entries:  make(map[cacheKey]*list.Element),
		order:    list.New(),
		byUser:   make(map[userKey]map[cacheKey]struct{}),
		inflight: make(map[cacheKey]*lookupCall),
	}
	if c.ttl == 0 {
		c.ttl = DefaultCheckerTTL
	}
	if c.max == 0 {
		c.max = DefaultMaxEntries
	}
	if c.timeout == 0 {
		c.timeout = DefaultLookupTimeout
	}
	if c.now == nil {
		c.now = time.Now
	}
	return c, nil
}

type lookupKind uint8

const (
	kindSessions lookupKind = iota + 1
	kindRevoked
)

// cacheKey names one question. User is set for both kinds (so Forget can
// find a user's token answers); ID only for kindRevoked.
type cacheKey struct {
	kind  lookupKind
	shard uint64
	user  string
	id    string
}

type userKey struct {
	shard uint64
	user  string
}

// answer is the source's answer to one question.
type answer struct {
	sessions Sessions
	revoked  bool
}

type cacheEntry struct {
	key     cacheKey
	ans     answer
	expires time.Time
}

// lookupCall is one source call shared by every caller asking its question.
type lookupCall struct {
	done      chan struct{}
	ans       answer
	err       error
	forgotten bool // Forget ran meanwhile: do not cache the answer
	waiters   int  // callers waiting on done (for tests)
}

// Check returns nil if the token with claims cl (as returned by
// Signer.Verify) is not revoked, an error wrapping ErrRevoked if it is, and
// an error wrapping ErrRevocationLookup (and the source's or ctx's error)
// if that cannot be told; the caller should then refuse the request.
func (c *Checker) Check(ctx context.Context, cl Claims) error {
	if cl.User == "" || cl.ID == "" {
		return fmt.Errorf("%w: claims without user or token ID", ErrInvalidToken)
	}
	us, err := c.lookup(ctx, cacheKey{kind: kindSessions, shard: cl.Shard, user: cl.User})
	if err != nil {
		return err
	}
	switch st := us.sessions; {
	case !st.Exists:
		return fmt.Errorf("%w: the user no longer exists", ErrRevoked)
	case st.UserID != cl.UserID:
		return fmt.Errorf("%w: issued to an earlier user of that name", ErrRevoked)
	case cl.Epoch < st.Epoch:
		return fmt.Errorf("%w: all sessions of the user ended", ErrRevoked)
	}
	rv, err := c.lookup(ctx, cacheKey{kind: kindRevoked, shard: cl.Shard, user: cl.User, id: cl.ID})
	if err != nil {
		return err
	}
	if rv.revoked {
		return fmt.Errorf("%w: session logged out", ErrRevoked)
	}
	return nil
}

// Forget drops the cached answers about a user and makes lookups already
// in flight for them go uncached, so the next Check asks the source again.
// Call it after this gateway itself revoked one or all of the user's tokens.
//
// The name is matched case-insensitively (user names are), so an admin
// call naming "ALICE" forgets the answers about tokens of "alice".
func (c *Checker) Forget(shard uint64, user string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for uk, keys := range c.byUser {
		if uk.shard != shard || !strings.EqualFold(uk.user, user) {
			continue
		}
		for k := range keys {
			c.removeLocked(c.entries[k])
		}
	}
	for k, call := range c.inflight {
		if k.shard == shard && strings.EqualFold(k.user, user) {
			call.forgotten = true
			delete(c.inflight, k)
		}
	}
}

// Len returns the number of cached answers.
func (c *Checker) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.entries)
}

// lookup answers k from the cache or from a (shared) source call.
func (c *Checker) lookup(ctx context.Context, k cacheKey) (answer, error) {
	c.mu.Lock()
	if el, ok := c.entries[k]; ok {
		e := el.Value.(*cacheEntry)
		if c.now().Before(e.expires) {
			c.mu.Unlock()
			return e.ans, nil
		}
		c.removeLocked(el)
	}
	call, ok := c.inflight[k]
	if !ok {
		call = &lookupCall{done: make(chan struct{})}
		c.inflight[k] = call
		go c.run(context.WithoutCancel(ctx), k, call)
	}
	call.waiters++
	c.mu.Unlock()

	select {
	case <-call.done:
		if call.err != nil {
			return answer{}, fmt.Errorf("%w: %w", ErrRevocationLookup, call.err)
		}
		return call.ans, nil
	case <-ctx.Done():
		return answer{}, fmt.Errorf("%w: %w", ErrRevocationLookup, ctx.Err())
	}
}

// run performs call, caches a successful answer and wakes the waiters.
func (c *Checker) run(ctx context.Context, k cacheKey, call *lookupCall) {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	var ans answer
	var err error
	switch k.kind {
	case kindSessions:
		ans.sessions, err = c.src.Sessions(ctx, k.shard, k.user)
	case kindRevoked:
		ans.revoked, err = c.src.Revoked(ctx, k.shard, k.id)
	}

	c.mu.Lock()
	call.ans, call.err = ans, err
	if c.inflight[k] == call {
		delete(c.inflight, k)
	}
	if err == nil && !call.forgotten {
		c.storeLocked(k, ans)
	}
	c.mu.Unlock()
	close(call.done)
}

// storeLocked caches ans for k, dropping expired answers and, past
// MaxEntries, the oldest ones.
func (c *Checker) storeLocked(k cacheKey, ans answer) {
	now := c.now()
	if el, ok := c.entries[k]; ok {
		c.removeLocked(el)
	}
	for el := c.order.Front(); el != nil; el = c.order.Front() {
		if len(c.entries) < c.max && now.Before(el.Value.(*cacheEntry).expires) {
			break
		}
		c.removeLocked(el)
	}
	c.entries[k] = c.order.PushBack(&cacheEntry{key: k, ans: ans, expires: now.Add(c.ttl)})
	uk := userKey{k.shard, k.user}
	keys := c.byUser[uk]
	if keys == nil {
		keys = make(map[cacheKey]struct{})
		c.byUser[uk] = keys
	}
	keys[k] = struct{}{}
}

// removeLocked drops the cached answer held by el (nil: no-op).
func (c *Checker) removeLocked(el *list.Element) {
	if el == nil {
		return
	}
	e := c.order.Remove(el).(*cacheEntry)
	delete(c.entries, e.key)
	uk := userKey{e.key.shard, e.key.user}
	if keys := c.byUser[uk]; keys != nil {
		delete(keys, e.key)
		if len(keys) == 0 {
			delete(c.byUser, uk)
		}
	}
}
