package blocktest

import (
	"bytes"
	"math/rand/v2"
	"slices"

	"github.com/coffer-dev/coffer/blockstore"
)

// RandomBlock returns size random bytes from rng and their Ref.
func RandomBlock(rng *rand.Rand, size int) (blockstore.Ref, []byte) {
	data := make([]byte, size)
	for i := 0; i < size; i += 8 {
		v := rng.Uint64()
		for j := i; j < size && j < i+8; j++ {
			data[j] = byte(v)
			v >>= 8
		}
	}
	return blockstore.Sum(data), data
}

// compareRefs orders refs by their bytes, the order Enumerate walks in.
func compareRefs(a, b blockstore.Ref) int { return bytes.Compare(a[:], b[:]) }

// sortedRefs returns the refs in Enumerate order.
func sortedRefs(refs []blockstore.Ref) []blockstore.Ref {
	out := slices.Clone(refs)
	slices.SortFunc(out, compareRefs)
	return out
}

// nextRef returns the smallest Ref greater than r, and false if r is the
// largest Ref.
func nextRef(r blockstore.Ref) (blockstore.Ref, bool) {
	for i := len(r) - 1; i >= 0; i-- {
		r[i]++
		if r[i] != 0 {
			return r, true
		}
	}
	return r, false
}
