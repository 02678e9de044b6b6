// Package blockstore stores file contents as immutable blocks addressed by
// the SHA-256 of their bytes: the Ref type, the Store contract every local
// block store implements, and the errors and wire codes shared by the block
// node's store, replication, RPC service and garbage collector (which live
// in the subpackages).
package blockstore

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
)

// DefaultMaxBlockSize is the largest block accepted unless configured
// otherwise: 4 MiB, the client's maximum chunk size.
const DefaultMaxBlockSize = 4 << 20

// Ref names a block: the SHA-256 of its bytes. It is a comparable value
// (usable as a map key); the zero Ref names no block.
type Ref [sha256.Size]byte

// Sum returns the Ref of data.
func Sum(data []byte) Ref { return Ref(sha256.Sum256(data)) }

// ParseRef parses the lower-case hex form that String returns (upper-case
// hex is accepted too). It fails with ErrInvalidRef.
func ParseRef(s string) (Ref, error) {
	var r Ref
	if len(s) != 2*len(r) {
		return Ref{}, fmt.Errorf("%w: %q: want %d hex digits", ErrInvalidRef, truncate(s), 2*len(r))
	}
	if _, err := hex.Decode(r[:], []byte(s)); err != nil {
		return Ref{}, fmt.Errorf("%w: %q: not hex", ErrInvalidRef, truncate(s))
	}
	return r, nil
}

// MustParseRef is ParseRef for constants in tests; it panics on error.
func MustParseRef(s string) Ref {
	r, err := ParseRef(s)
	if err != nil {
		panic(err)
	}
	return r
}

// String returns the 64 lower-case hex digits of r.
func (r Ref) String() string { return hex.EncodeToString(r[:]) }

// Short returns the first 12 hex digits, for logs.
func (r Ref) Short() string { return hex.EncodeToString(r[:6]) }

// Next returns the Ref right after r in byte order (the smallest Ref
// greater than r), and false if r is the largest Ref. Walks that page
// through refs in order resume from it.
func (r Ref) Next() (Ref, bool) {
	for i := len(r) - 1; i >= 0; i-- {
		r[i]++
		if r[i] != 0 {
			return r, true
		}
	}
	return r, false
}

// IsZero reports whether r is the zero Ref.
func (r Ref) IsZero() bool { return r == Ref{} }

// Verify reports whether data hashes to r; it fails with ErrHashMismatch.
func (r Ref) Verify(data []byte) error {
	if got := Sum(data); got != r {
		return fmt.Errorf("%w: block %s hashes to %s", ErrHashMismatch, r.Short(), got.Short())
	}
	return nil
}

// MarshalText implements encoding.TextMarshaler (JSON uses the hex form).
func (r Ref) MarshalText() ([]byte, error) { return []byte(r.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler.
func (r *Ref) UnmarshalText(b []byte) error {
	p, err := ParseRef(string(b))
	if err != nil {
		return err
	}
	*r = p
	return nil
}

func truncate(s string) string {
	if len(s) > 80 {
		return s[:80] + "..."
	}
	return s
}
