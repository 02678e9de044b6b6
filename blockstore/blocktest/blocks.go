package blocktest

import (
	"bytes"
	"encoding/binary"
	"math/rand/v2"
	"slices"
	"sync/atomic"
	"testing"

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

// Seq makes many distinct, incompressible blocks of one size cheaply, for
// benchmarks: block i is a fixed random base with i+1 in its first 8
// bytes, so a benchmark can rebuild any block into a reused buffer.
type Seq struct {
	base []byte
}

// NewSeq returns the sequence of size-byte blocks (size >= 8) for seed.
func NewSeq(size int, seed byte) *Seq {
	base := make([]byte, size)
	_, _ = rand.NewChaCha8([32]byte{seed}).Read(base)
	return &Seq{base: base}
}

// Fill writes block i into buf, which must be the sequence's size.
func (s *Seq) Fill(buf []byte, i int) {
	copy(buf, s.base)
	binary.LittleEndian.PutUint64(buf, uint64(i)+1)
}

// Refs returns the refs of blocks 0..n-1.
func (s *Seq) Refs(n int) []blockstore.Ref {
	refs := make([]blockstore.Ref, n)
	buf := make([]byte, len(s.base))
	for i := range refs {
		s.Fill(buf, i)
		refs[i] = blockstore.Sum(buf)
	}
	return refs
}

// PutParallel is a benchmark body: b.N Puts of distinct size-byte blocks
// of NewSeq(size, seed), from 4×GOMAXPROCS goroutines (8 on a 2-core
// machine: enough writers in flight for their syncs to be shared), with
// b.SetBytes(size). The refs are computed before the timer starts, so the
// caller does not pay a second SHA-256.
func PutParallel(b *testing.B, size int, seed byte, put func(ref blockstore.Ref, data []byte) error) {
	seq := NewSeq(size, seed)
	refs := seq.Refs(b.N)
	var next atomic.Int64
	b.SetBytes(int64(size))
	b.SetParallelism(4)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		buf := make([]byte, size)
		for pb.Next() {
			i := int(next.Add(1) - 1)
			seq.Fill(buf, i)
			if err := put(refs[i], buf); err != nil {
				b.Error(err)
				return
			}
		}
	})
}
