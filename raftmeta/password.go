package raftmeta

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"fmt"
	"strings"

	"golang.org/x/crypto/argon2"
)

// PasswordParams are argon2id's cost parameters.
type PasswordParams struct {
	Time      uint32 // passes
	MemoryKiB uint32
	Threads   uint8
}

// DefaultPasswordParams follow RFC 9106's second recommended option.
var DefaultPasswordParams = PasswordParams{Time: 3, MemoryKiB: 64 * 1024, Threads: 2}

// validate reports a problem with the parameters, or nil.
func (p PasswordParams) validate() error {
	if p.Time == 0 || p.MemoryKiB < 8*uint32(p.Threads) || p.Threads == 0 {
		return fmt.Errorf("argon2id parameters t=%d m=%d p=%d: need t>=1, p>=1, m>=8*p", p.Time, p.MemoryKiB, p.Threads)
	}
	return nil
}

// MaxPasswordBytes bounds a password (argon2 hashes any length; a bound
// keeps a login request from costing more than the parameters say).
const MaxPasswordBytes = 1024

// HashPassword hashes a password with argon2id and a random salt into the
// PHC string format ($argon2id$v=19$m=...,t=...,p=...$salt$hash).
func HashPassword(password string, p PasswordParams) (string, error) {
	if password == "" || len(password) > MaxPasswordBytes {
		return "", fmt.Errorf("%w: a password is 1 to %d bytes", ErrInvalidArgument, MaxPasswordBytes)
	}
	if err := p.validate(); err != nil {
		return "", fmt.Errorf("%w: %v", ErrInvalidArgument, err)
	}
	salt := make([]byte, 16)
	if _, err := rand.Read(salt); err != nil {
		return "", err
	}
	key := argon2.IDKey([]byte(password), salt, p.Time, p.MemoryKiB, p.Threads, 32)
	enc := base64.RawStdEncoding
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s", argon2.Version, p.MemoryKiB, p.Time, p.Threads,
		enc.EncodeToString(salt), enc.EncodeToString(key)), nil
}

// VerifyPassword reports whether password matches a HashPassword hash, in
// constant time with respect to the password.
func VerifyPassword(hash, password string) (bool, error) {
	parts := strings.Split(hash, "$")
	if len(parts) != 6 || parts[1] != "argon2id" {
		return false, fmt.Errorf("%w: not an argon2id hash", ErrCorruptStore)
	}
	var v int
	var p PasswordParams
	if _, err := fmt.Sscanf(parts[2], "v=%d", &v); err != nil || v != argon2.Version {
		return false, fmt.Errorf("%w: argon2 version %q", ErrCorruptStore, parts[2])
	}
	if _, err := fmt.Sscanf(parts[3], "m=%d,t=%d,p=%d", &p.MemoryKiB, &p.Time, &p.Threads); err != nil || p.validate() != nil {
		return false, fmt.Errorf("%w: argon2 parameters %q", ErrCorruptStore, parts[3])
	}
	enc := base64.RawStdEncoding
	salt, err1 := enc.DecodeString(parts[4])
	want, err2 := enc.DecodeString(parts[5])
	if err1 != nil || err2 != nil || len(want) == 0 {
		return false, fmt.Errorf("%w: argon2 salt or key", ErrCorruptStore)
	}
	if len(password) > MaxPasswordBytes {
		return false, nil
	}
	got := argon2.IDKey([]byte(password), salt, p.Time, p.MemoryKiB, p.Threads, uint32(len(want)))
	return subtle.ConstantTimeCompare(got, want) == 1, nil
}
