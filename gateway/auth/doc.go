// Package auth issues and checks the gateway's session tokens and limits login attempts.
//
// A session token is signed with HMAC-SHA256 (Signer), so any gateway that
// knows the cluster's signing keys verifies it locally, without a round trip
// to the user's shard. What a signature cannot say, whether the token was
// revoked since, is asked of the shard through a small, briefly cached lookup
// (Checker). Login attempts are limited per user name and per client address
// (Limiter) so that password guessing is slow whoever guesses.
package auth
