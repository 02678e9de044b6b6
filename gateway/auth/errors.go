package auth

import "errors"

// Sentinel errors. Every error returned by this package wraps one of them
// (test with errors.Is). No error ever contains the token text.
var (
	// ErrInvalidToken: the token is malformed, too long, of an unknown
	// version, not signed by any configured key, or issued in the future
	// beyond the allowed clock skew. The client must log in again.
	ErrInvalidToken = errors.New("invalid session token")
	// ErrExpired: the token is well formed and correctly signed but past its
	// expiry. The client must log in again.
	ErrExpired = errors.New("session token expired")
	// ErrRevoked: the token was revoked (one session logged out, or every
	// session of the user ended by a password change or "log out
	// everywhere").
	ErrRevoked = errors.New("session token revoked")
	// ErrRevocationLookup: the revocation source failed, so whether the
	// token is revoked is unknown. It wraps the source's error too. Callers
	// should fail closed (refuse the request, typically as "unavailable,
	// retry").
	ErrRevocationLookup = errors.New("revocation lookup failed")
	// ErrInvalidClaims: Issue was given claims it cannot sign (empty or
	// non-UTF-8 user, malformed ID, expiry not after issue time, token too
	// long).
	ErrInvalidClaims = errors.New("invalid token claims")
	// ErrInvalidConfig: a SignerConfig, CheckerConfig or LimiterConfig
	// failed Validate.
	ErrInvalidConfig = errors.New("invalid auth config")
)
