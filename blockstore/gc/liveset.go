package gc

import "github.com/coffer-dev/coffer/blockstore"

// LiveSet is the mark: the refs named by every retained file revision.
// Contains may report true for a ref that is not live (a false positive
// only keeps garbage a while longer) but must never report false for a live
// ref (a false negative deletes live data). Contains must be safe for
// concurrent use once the set is built.
type LiveSet interface {
	Contains(ref blockstore.Ref) bool
}

// ExactSet is a LiveSet without false positives, backed by a map (about
// 50 to 80 bytes of memory per ref; for hundreds of millions of refs use a
// BloomFilter). Build it by calling Add for each live ref as the metadata
// streams them; Add is not safe for concurrent use, Contains and Len are
// (once no Add runs). The zero value is an empty set, ready to use.
type ExactSet struct {
	m map[blockstore.Ref]struct{}
}

var _ LiveSet = (*ExactSet)(nil)

// NewExactSet returns an empty set.
func NewExactSet() *ExactSet {
	return &ExactSet{m: make(map[blockstore.Ref]struct{})}
}

// Add adds ref to the set (adding it again is a no-op).
func (s *ExactSet) Add(ref blockstore.Ref) {
	if s.m == nil {
		s.m = make(map[blockstore.Ref]struct{})
	}
	s.m[ref] = struct{}{}
}

// Contains reports whether ref was added.
func (s *ExactSet) Contains(ref blockstore.Ref) bool {
	_, ok := s.m[ref]
	return ok
}

// Len returns the number of distinct refs added.
func (s *ExactSet) Len() int { return len(s.m) }
