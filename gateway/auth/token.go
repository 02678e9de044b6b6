package auth

import (
	"bytes"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"
	"unicode/utf8"
)

// Token format constants.
const (
	// TokenPrefix starts every version-1 token: "v1." + base64url(payload)
	// + "." + base64url(MAC), base64url without padding.
	TokenPrefix = "v1."
	// MaxTokenLen is the longest token Verify looks at; a longer one is
	// refused before any decoding or MAC work, and Issue refuses claims
	// that would make one.
	MaxTokenLen = 4096
	// MinKeyLen is the shortest signing key accepted (256 bits).
	MinKeyLen = 32
	// DefaultTTL is a token's lifetime unless configured otherwise.
	DefaultTTL = 24 * time.Hour
	// MaxClockSkew is how far in the future a token's IssuedAt may lie (by
	// the verifier's clock) and still be accepted, to tolerate gateways
	// whose clocks disagree slightly.
	MaxClockSkew = time.Minute

	// macDomain separates this MAC from any other use of the same key.
	macDomain   = "coffer-session-v1\x00"
	payloadVers = 2  // 2: tokens carry the session epoch (ep); 1-tokens predate it and are refused
	idBytes     = 16 // 128-bit token IDs
)

// tokenEncoding is base64url without padding, refusing non-canonical
// trailing bits so that every token has exactly one spelling.
var tokenEncoding = base64.RawURLEncoding.Strict()

// Claims is what a session token says.
type Claims struct {
	User      string    // user name as stored (raftmeta cleans names; treat it as opaque)
	UserID    uint64    // the user's ID on its shard
	Shard     uint64    // the user's shard group
	Namespace uint64    // the user's namespace
	Admin     bool      // the user is a cluster administrator
	Epoch     uint64    // the user's session epoch at issue (see Checker)
	IssuedAt  time.Time // second precision
	Expires   time.Time // second precision
	ID        string    // random token ID (128 bits, lower-case hex), for revoking one token
}

// payload is the signed JSON form of Claims. Field names are short to keep
// tokens small; times are Unix seconds.
type payload struct {
	V         int    `json:"v"`
	User      string `json:"u"`
	UserID    uint64 `json:"uid"`
	Shard     uint64 `json:"sh"`
	Namespace uint64 `json:"ns"`
	Admin     bool   `json:"adm,omitempty"`
	Epoch     uint64 `json:"ep,omitempty"`
	IssuedAt  int64  `json:"iat"`
	Expires   int64  `json:"exp"`
	ID        string `json:"jti"`
}

// SignerConfig configures a Signer.
type SignerConfig struct {
	// Keys are the HMAC keys, each at least MinKeyLen bytes. Keys[0] signs
	// new tokens; every key verifies. To rotate, put the new key first and
	// keep the old one listed for at least one TTL, then drop it: tokens
	// signed with a key stop verifying as soon as it is no longer listed.
	// The Signer copies the keys.
	Keys [][]byte
	// TTL is the lifetime Issue gives a token whose Expires is zero
	// (default DefaultTTL). It must be >= 0 and, once defaulted, at least
	// one second (tokens have second precision).
	TTL time.Duration
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// Validate reports every problem of c at once, in one error wrapping
// ErrInvalidConfig, or nil if c is valid. Zero TTL and Now are valid (they
// take their defaults).
func (c SignerConfig) Validate() error {
	var errs []error
	if len(c.Keys) == 0 {
		errs = append(errs, errors.New("no Keys"))
	}
	for i, k := range c.Keys {
		if len(k) < MinKeyLen {
			errs = append(errs, fmt.Errorf("Keys[%d] is %d bytes, want >= %d", i, len(k), MinKeyLen))
		}
	}
	if c.TTL < 0 {
		errs = append(errs, fmt.Errorf("TTL %v < 0", c.TTL))
	} else if c.TTL > 0 && c.TTL < time.Second {
		errs = append(errs, fmt.Errorf("TTL %v < 1s (tokens have second precision)", c.TTL))
	}
	if len(errs) > 0 {
		return fmt.Errorf("%w: signer: %w", ErrInvalidConfig, errors.Join(errs...))
	}
	return nil
}

// Signer issues and verifies session tokens. It is safe for concurrent use.
type Signer struct {
	keys [][]byte
	ttl  time.Duration
	now  func() time.Time
}

// NewSigner returns a Signer for cfg, or an error wrapping ErrInvalidConfig.
func NewSigner(cfg SignerConfig) (*Signer, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	s := &Signer{ttl: cfg.TTL, now: cfg.Now}
	for _, k := range cfg.Keys {
		s.keys = append(s.keys, bytes.Clone(k))
	}
	if s.ttl == 0 {
		s.ttl = DefaultTTL
	}
	if s.now == nil {
		s.now = time.Now
	}
	return s, nil
}

// Issue signs c with the first key. It fills IssuedAt (now), Expires
// (IssuedAt + TTL) and ID (128 random bits) where they are zero, truncates
// both times to whole seconds, and returns the token with the claims exactly
// as Verify will return them. A caller may set IssuedAt itself, for example
// to the second after a revocation cut-off (see Checker); it must lie
// within MaxClockSkew of the verifiers' clocks. Bad claims give an error
// wrapping ErrInvalidClaims.
func (s *Signer) Issue(c Claims) (token string, full Claims, err error) {
	if c.IssuedAt.IsZero() {
		c.IssuedAt = s.now()
	}
	c.IssuedAt = time.Unix(c.IssuedAt.Unix(), 0).UTC()
	if c.Expires.IsZero() {
		c.Expires = c.IssuedAt.Add(s.ttl)
	}
	c.Expires = time.Unix(c.Expires.Unix(), 0).UTC()
	if c.ID == "" {
		var b [idBytes]byte
		if _, err := rand.Read(b[:]); err != nil {
			return "", Claims{}, fmt.Errorf("auth: token ID: %w", err)
		}
		c.ID = hex.EncodeToString(b[:])
	}
	p := payload{
		V: payloadVers, User: c.User, UserID: c.UserID, Shard: c.Shard, Namespace: c.Namespace,
		Admin: c.Admin, Epoch: c.Epoch, IssuedAt: c.IssuedAt.Unix(), Expires: c.Expires.Unix(), ID: c.ID,
	}
	if err := p.check(); err != nil {
		return "", Claims{}, fmt.Errorf("%w: %w", ErrInvalidClaims, err)
	}
	raw, err := json.Marshal(p)
	if err != nil {
		return "", Claims{}, fmt.Errorf("%w: %w", ErrInvalidClaims, err)
	}
	var b strings.Builder
	b.Grow(len(TokenPrefix) + tokenEncoding.EncodedLen(len(raw)) + 1 + tokenEncoding.EncodedLen(sha256.Size))
	b.WriteString(TokenPrefix)
	b.WriteString(tokenEncoding.EncodeToString(raw))
	b.WriteByte('.')
	b.WriteString(tokenEncoding.EncodeToString(mac(s.keys[0], raw)))
	if b.Len() > MaxTokenLen {
		return "", Claims{}, fmt.Errorf("%w: token would be %d bytes, max %d", ErrInvalidClaims, b.Len(), MaxTokenLen)
	}
	return b.String(), c, nil
}

// Verify checks token's size, version, signature (against every configured
// key), encoding, expiry and issue time, and returns its claims. Errors
// wrap ErrExpired for an expired but otherwise valid token and
// ErrInvalidToken for anything else; they never contain the token. Verify
// does not consult revocations: see Checker.
func (s *Signer) Verify(token string) (Claims, error) {
	if len(token) > MaxTokenLen {
		return Claims{}, fmt.Errorf("%w: longer than %d bytes", ErrInvalidToken, MaxTokenLen)
	}
	rest, ok := strings.CutPrefix(token, TokenPrefix)
	if !ok {
		return Claims{}, fmt.Errorf("%w: unknown version", ErrInvalidToken)
	}
	body, sig, ok := strings.Cut(rest, ".")
	if !ok || strings.Contains(sig, ".") {
		return Claims{}, fmt.Errorf("%w: malformed", ErrInvalidToken)
	}
	raw, err := tokenEncoding.DecodeString(body)
	if err != nil {
		return Claims{}, fmt.Errorf("%w: malformed payload encoding", ErrInvalidToken)
	}
	got, err := tokenEncoding.DecodeString(sig)
	if err != nil || len(got) != sha256.Size {
		return Claims{}, fmt.Errorf("%w: malformed signature", ErrInvalidToken)
	}
	// Compare against every key without stopping early, so timing says
	// nothing about which key (if any) matched.
	match := 0
	for _, k := range s.keys {
		if hmac.Equal(got, mac(k, raw)) {
			match = 1
		}
	}
	if match == 0 {
		return Claims{}, fmt.Errorf("%w: bad signature", ErrInvalidToken)
	}

	var p payload
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&p); err != nil {
		return Claims{}, fmt.Errorf("%w: malformed payload", ErrInvalidToken)
	}
	if _, err := dec.Token(); err != io.EOF {
		return Claims{}, fmt.Errorf("%w: trailing data after payload", ErrInvalidToken)
	}
	if p.V != payloadVers {
		return Claims{}, fmt.Errorf("%w: payload version %d", ErrInvalidToken, p.V)
	}
	if err := p.check(); err != nil {
		return Claims{}, fmt.Errorf("%w: %w", ErrInvalidToken, err)
	}
	now := s.now()
	issued, expires := time.Unix(p.IssuedAt, 0).UTC(), time.Unix(p.Expires, 0).UTC()
	if issued.After(now.Add(MaxClockSkew)) {
		return Claims{}, fmt.Errorf("%w: issued in the future", ErrInvalidToken)
	}
	if !now.Before(expires) {
		return Claims{}, ErrExpired
	}
	return Claims{
		User: p.User, UserID: p.UserID, Shard: p.Shard, Namespace: p.Namespace, Admin: p.Admin,
		Epoch: p.Epoch, IssuedAt: issued, Expires: expires, ID: p.ID,
	}, nil
}

// check reports what is wrong with p's contents (not its version).
func (p *payload) check() error {
	var errs []error
	if p.User == "" {
		errs = append(errs, errors.New("empty user"))
	} else if !utf8.ValidString(p.User) {
		errs = append(errs, errors.New("user is not valid UTF-8"))
	}
	if !validID(p.ID) {
		errs = append(errs, fmt.Errorf("ID is not %d lower-case hex digits", 2*idBytes))
	}
	if p.Expires <= p.IssuedAt {
		errs = append(errs, errors.New("expiry not after issue time"))
	}
	return errors.Join(errs...)
}

// validID reports whether id is 2*idBytes lower-case hex digits.
func validID(id string) bool {
	if len(id) != 2*idBytes {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// mac returns HMAC-SHA256(key, macDomain || payload).
func mac(key, payload []byte) []byte {
	h := hmac.New(sha256.New, key)
	h.Write([]byte(macDomain))
	h.Write(payload)
	return h.Sum(nil)
}
