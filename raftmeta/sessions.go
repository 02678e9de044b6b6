package raftmeta

import (
	"encoding/json"
	"fmt"
	"time"
)

// Limits of per-token revocation records.
const (
	// MaxTokenIDBytes is the longest token ID a revocation accepts.
	MaxTokenIDBytes = 64
	// MaxTokenLifetime bounds how far after its proposal a revocation
	// record may expire: a record outlives its token by nothing, and no
	// token lives longer than this.
	MaxTokenLifetime = 30 * 24 * time.Hour
)

// tokenRecord is the value of a per-token revocation record
// (k tokenID): the token is revoked until Expires.
type tokenRecord struct {
	Expires int64 `json:"expires"` // Unix nanoseconds: the token's own expiry
}

// checkTokenID validates a session token ID: 1 to 64 bytes of lower-case
// hex digits ([0-9a-f]).
func checkTokenID(id string) error {
	if id == "" || len(id) > MaxTokenIDBytes {
		return fmt.Errorf("%w: a token ID is 1 to %d hex digits, got %d bytes", ErrInvalidArgument, MaxTokenIDBytes, len(id))
	}
	for i := 0; i < len(id); i++ {
		if c := id[i]; (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return fmt.Errorf("%w: token ID has byte 0x%02x, want [0-9a-f]", ErrInvalidArgument, c)
		}
	}
	return nil
}

// checkTokenExpiry validates a revocation's expiry against the proposal
// time now (both Unix nanoseconds): after now, at most MaxTokenLifetime
// ahead.
func checkTokenExpiry(expires, now int64) error {
	switch {
	case expires <= now:
		return fmt.Errorf("%w: token expiry %v is not after %v", ErrInvalidArgument, time.Unix(0, expires).UTC(), time.Unix(0, now).UTC())
	case expires-now > int64(MaxTokenLifetime):
		return fmt.Errorf("%w: token expiry %v is more than %v after %v", ErrInvalidArgument, time.Unix(0, expires).UTC(), MaxTokenLifetime, time.Unix(0, now).UTC())
	}
	return nil
}

// endSessions ends every session of u: its SessionEpoch goes up by one
// (tokens name the epoch they were issued in, so every earlier token is
// refused, with no clock involved), and SessionsValidAfter moves to the
// proposal time now, for information. Neither ever moves back.
func endSessions(u *User, now int64) {
	u.SessionEpoch++
	if at := time.Unix(0, now).UTC(); at.After(u.SessionsValidAfter) {
		u.SessionsValidAfter = at
	}
}

// revokeToken stores a per-token revocation record kept until the token's
// expiry. Revoking a token again succeeds; the record keeps the later
// expiry, so the same revocation again changes nothing.
func (t *tx) revokeToken(c *revokeTokenCmd) (*result, error) {
	if err := checkTokenID(c.TokenID); err != nil {
		return &result{Err: opErr(CodeInvalidArgument, "", err.Error())}, nil
	}
	if err := checkTokenExpiry(c.Expires, t.now); err != nil {
		return &result{Err: opErr(CodeInvalidArgument, "", err.Error())}, nil
	}
	var old tokenRecord
	ok, err := t.getJSON(t.k.token(c.TokenID), &old)
	if err != nil {
		return nil, err
	}
	if ok && old.Expires >= c.Expires {
		return &result{}, nil
	}
	return &result{}, t.putJSON(t.k.token(c.TokenID), &tokenRecord{Expires: c.Expires})
}

// tokenRevoked reports whether the token's revocation record exists and has
// not expired at now (Unix nanoseconds).
func (v *view) tokenRevoked(id string, now int64) (bool, error) {
	var rec tokenRecord
	ok, err := v.getJSON(v.k.token(id), &rec)
	if err != nil || !ok {
		return false, err
	}
	return now < rec.Expires, nil
}

// pruneTokens deletes expired token records (expiry at or before now),
// visiting at most max-*visited of them from the key suffix from on. It
// returns the cursor to resume at (nil when it reached the end) and the
// keys to delete.
func (t *tx) pruneTokens(from []byte, now int64, max int, visited *int) (next []byte, dels [][]byte, err error) {
	base := t.k.Key(tagToken)
	err = t.scan(append(append([]byte(nil), base...), from...), prefixEnd(base), false, func(k, v []byte) (bool, error) {
		if *visited >= max {
			next = append([]byte{tagToken}, k[len(base):]...)
			return false, nil
		}
		*visited++
		var rec tokenRecord
		if err := json.Unmarshal(v, &rec); err != nil {
			return false, fmt.Errorf("%w: token record: %v", ErrCorruptStore, err)
		}
		if rec.Expires <= now {
			dels = append(dels, append([]byte(nil), k...))
		}
		return true, nil
	})
	return next, dels, err
}
