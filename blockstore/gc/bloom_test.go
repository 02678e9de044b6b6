package gc

import (
	"encoding/binary"
	"errors"
	"hash/crc32"
	"math"
	"math/bits"
	"math/rand/v2"
	"testing"

	"github.com/coffer-dev/coffer/blockstore"
)

// randomRefs returns n random refs (stand-ins for SHA-256 values).
func randomRefs(rng *rand.Rand, n int) []blockstore.Ref {
	refs := make([]blockstore.Ref, n)
	for i := range refs {
		for j := 0; j < len(refs[i]); j += 8 {
			binary.LittleEndian.PutUint64(refs[i][j:], rng.Uint64())
		}
	}
	return refs
}

func newFilter(t testing.TB, n int, p float64) *BloomFilter {
	t.Helper()
	f, err := NewBloomFilter(n, p)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func TestNewBloomFilterArguments(t *testing.T) {
	for _, c := range []struct {
		n    int
		p    float64
		ok   bool
		m, k uint64 // expected geometry when ok (0: not checked)
	}{
		{0, 0.01, false, 0, 0},
		{-1, 0.01, false, 0, 0},
		{100, 0, false, 0, 0},
		{100, 1, false, 0, 0},
		{100, -0.5, false, 0, 0},
		{100, 1.5, false, 0, 0},
		{100, math.NaN(), false, 0, 0},
		{1 << 40, 0.01, false, 0, 0},            // ~10^13 bits > MaxBloomBits
		{10_000_000, 1e-300, false, 0, 0},       // ~1438 bits per item
		{1, 0.5, true, 64, 44},                  // rounded up to one word; k follows m/n
		{1000, 0.01, true, 9600, 7},             // 9586 bits rounded up to 150 words
		{100_000_000, 0.01, true, 958505856, 7}, // ~114 MiB
		{1000, 1e-30, true, 0, MaxBloomHashes},  // optimal k ~100, capped
	} {
		f, err := NewBloomFilter(c.n, c.p)
		if !c.ok {
			if !errors.Is(err, blockstore.ErrInvalidArgument) {
				t.Errorf("NewBloomFilter(%d, %v) = %v, want ErrInvalidArgument", c.n, c.p, err)
			}
			continue
		}
		if err != nil {
			t.Errorf("NewBloomFilter(%d, %v): %v", c.n, c.p, err)
			continue
		}
		if f.Bits()%64 != 0 || f.Bits() < 64 || (c.m != 0 && f.Bits() != c.m) || uint64(f.Hashes()) != c.k {
			t.Errorf("NewBloomFilter(%d, %v): %d bits, %d hashes; want %d bits, %d hashes", c.n, c.p, f.Bits(), f.Hashes(), c.m, c.k)
		}
	}
}

func TestBloomNoFalseNegativesAndRate(t *testing.T) {
	const n, p = 100_000, 0.01
	rng := rand.New(rand.NewPCG(1, 2))
	f := newFilter(t, n, p)
	added := randomRefs(rng, n)
	for _, r := range added {
		f.Add(r)
	}
	for _, r := range added {
		if !f.Contains(r) {
			t.Fatalf("false negative for %s", r.Short())
		}
	}
	fp := 0
	for _, r := range randomRefs(rng, n) {
		if f.Contains(r) {
			fp++
		}
	}
	rate := float64(fp) / n
	if rate < p/2 || rate > 2*p {
		t.Errorf("measured false-positive rate %.4f, want within 2x of %v", rate, p)
	}
	if a := f.ApproxFalsePositiveRate(); a < p/2 || a > 2*p {
		t.Errorf("ApproxFalsePositiveRate %.4f, want within 2x of %v", a, p)
	}
	if empty := newFilter(t, n, p); empty.ApproxFalsePositiveRate() != 0 {
		t.Errorf("empty filter: ApproxFalsePositiveRate %v, want 0", empty.ApproxFalsePositiveRate())
	}
}

func TestBloomMarshalRoundTrip(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	f := newFilter(t, 5000, 0.001)
	refs := randomRefs(rng, 5000)
	for _, r := range refs {
		f.Add(r)
	}
	b, err := f.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	if want := 24 + int(f.Bits()/8) + 4; len(b) != want {
		t.Errorf("encoding is %d bytes, want %d", len(b), want)
	}
	var g BloomFilter
	if err := g.UnmarshalBinary(b); err != nil {
		t.Fatal(err)
	}
	if g.Bits() != f.Bits() || g.Hashes() != f.Hashes() || g.ApproxFalsePositiveRate() != f.ApproxFalsePositiveRate() {
		t.Errorf("decoded %d bits/%d hashes/rate %v, want %d/%d/%v", g.Bits(), g.Hashes(), g.ApproxFalsePositiveRate(),
			f.Bits(), f.Hashes(), f.ApproxFalsePositiveRate())
	}
	for _, r := range refs {
		if !g.Contains(r) {
			t.Fatalf("decoded filter lost %s", r.Short())
		}
	}
	for _, r := range randomRefs(rng, 5000) {
		if f.Contains(r) != g.Contains(r) {
			t.Fatalf("decoded filter answers differently for %s", r.Short())
		}
	}
	b2, err := g.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	if string(b2) != string(b) {
		t.Error("re-encoding differs")
	}
}

// reseal recomputes the checksum of an edited encoding, so the test reaches
// the checks behind it.
func reseal(b []byte) []byte {
	b = append([]byte(nil), b...)
	binary.LittleEndian.PutUint32(b[len(b)-4:], crc32.Checksum(b[:len(b)-4], crc32.MakeTable(crc32.Castagnoli)))
	return b
}

func TestBloomUnmarshalRefusesDamage(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	refs := randomRefs(rng, 50)
	f := newFilter(t, 50, 0.01)
	for _, r := range refs {
		f.Add(r)
	}
	good, err := f.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	// target holds a valid filter; every refused decode must leave it so.
	target := newFilter(t, 10, 0.1)
	target.Add(refs[0])
	targetBits := target.Bits()
	refuse := func(what string, b []byte) {
		t.Helper()
		if err := target.UnmarshalBinary(b); !errors.Is(err, blockstore.ErrInvalidArgument) {
			t.Fatalf("%s: UnmarshalBinary = %v, want ErrInvalidArgument", what, err)
		}
		if target.Bits() != targetBits || !target.Contains(refs[0]) {
			t.Fatalf("%s: a refused decode changed the filter", what)
		}
	}

	for i := range good {
		for _, x := range []byte{0x01, 0x80, 0xff} {
			b := append([]byte(nil), good...)
			b[i] ^= x
			refuse("flipped byte", b)
		}
	}
	for n := range len(good) {
		refuse("truncated", good[:n])
	}
	refuse("nil", nil)
	refuse("extra byte", append(append([]byte(nil), good...), 0))
	refuse("extra byte, resealed", reseal(append(append([]byte(nil), good[:len(good)-4]...), 0, 0, 0, 0, 0)))

	edit := func(fn func(b []byte)) []byte {
		b := append([]byte(nil), good...)
		fn(b)
		return reseal(b)
	}
	refuse("bad magic", edit(func(b []byte) { b[0] = 'X' }))
	refuse("version 2", edit(func(b []byte) { b[4] = 2 }))
	refuse("version 0", edit(func(b []byte) { b[4] = 0 }))
	refuse("reserved byte", edit(func(b []byte) { b[6] = 1 }))
	refuse("reserved word", edit(func(b []byte) { b[13] = 1 }))
	refuse("k = 0", edit(func(b []byte) { binary.LittleEndian.PutUint32(b[8:], 0) }))
	refuse("k too large", edit(func(b []byte) { binary.LittleEndian.PutUint32(b[8:], MaxBloomHashes+1) }))
	refuse("m not a multiple of 64", edit(func(b []byte) { binary.LittleEndian.PutUint64(b[16:], f.Bits()-1) }))
	refuse("m larger than the bits", edit(func(b []byte) { binary.LittleEndian.PutUint64(b[16:], f.Bits()+64) }))
	refuse("m smaller than the bits", edit(func(b []byte) { binary.LittleEndian.PutUint64(b[16:], f.Bits()-64) }))
	refuse("m over the cap", edit(func(b []byte) { binary.LittleEndian.PutUint64(b[16:], 2*MaxBloomBits) }))
	refuse("m = 0", edit(func(b []byte) { binary.LittleEndian.PutUint64(b[16:], 0) }))

	// One flipped bit in the middle of a large filter.
	big := newFilter(t, 200_000, 0.01)
	for _, r := range randomRefs(rng, 1000) {
		big.Add(r)
	}
	bb, err := big.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	bb[len(bb)/2] ^= 0x10
	refuse("large filter, one bit flipped", bb)

	if err := target.UnmarshalBinary(good); err != nil {
		t.Fatalf("intact encoding refused: %v", err)
	}
}

func TestBloomMerge(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	a, b := newFilter(t, 10_000, 0.01), newFilter(t, 10_000, 0.01)
	refsA, refsB := randomRefs(rng, 3000), randomRefs(rng, 3000)
	for _, r := range refsA {
		a.Add(r)
	}
	for _, r := range refsB {
		b.Add(r)
	}
	beforeRate := a.ApproxFalsePositiveRate()
	if err := a.Merge(b); err != nil {
		t.Fatal(err)
	}
	for _, r := range append(refsA, refsB...) {
		if !a.Contains(r) {
			t.Fatalf("merged filter lost %s", r.Short())
		}
	}
	if a.ApproxFalsePositiveRate() <= beforeRate {
		t.Errorf("merge did not raise the estimated rate (%v -> %v)", beforeRate, a.ApproxFalsePositiveRate())
	}
	// Merging matches adding everything to one filter.
	one := newFilter(t, 10_000, 0.01)
	for _, r := range append(refsA, refsB...) {
		one.Add(r)
	}
	ea, _ := a.MarshalBinary()
	eo, _ := one.MarshalBinary()
	if string(ea) != string(eo) {
		t.Error("merged filter differs from one filter of both sets")
	}

	snapshot := func(f *BloomFilter) string { b, _ := f.MarshalBinary(); return string(b) }
	before := snapshot(a)
	for _, c := range []struct {
		name  string
		other *BloomFilter
	}{
		{"other size", newFilter(t, 20_000, 0.01)},
		{"other hash count", func() *BloomFilter {
			f := newFilter(t, 10_000, 0.01)
			f.k++
			return f
		}()},
		{"nil", nil},
		{"zero value", &BloomFilter{}},
	} {
		if err := a.Merge(c.other); !errors.Is(err, blockstore.ErrInvalidArgument) {
			t.Errorf("Merge(%s) = %v, want ErrInvalidArgument", c.name, err)
		}
		if snapshot(a) != before {
			t.Errorf("a refused Merge(%s) changed the filter", c.name)
		}
	}
	var zero BloomFilter
	if err := zero.Merge(a); !errors.Is(err, blockstore.ErrInvalidArgument) {
		t.Errorf("zero.Merge = %v, want ErrInvalidArgument", err)
	}
}

func TestBloomZeroValue(t *testing.T) {
	var f BloomFilter
	r := blockstore.Sum([]byte("x"))
	f.Add(r)
	if !f.Contains(blockstore.Sum([]byte("anything"))) {
		t.Error("zero filter must contain every ref (keep everything)")
	}
	if f.ApproxFalsePositiveRate() != 1 {
		t.Errorf("zero filter rate %v, want 1", f.ApproxFalsePositiveRate())
	}
	if _, err := f.MarshalBinary(); !errors.Is(err, blockstore.ErrInvalidArgument) {
		t.Errorf("zero filter MarshalBinary = %v, want ErrInvalidArgument", err)
	}
}

func FuzzBloomUnmarshal(f *testing.F) {
	bf, err := NewBloomFilter(20, 0.05)
	if err != nil {
		f.Fatal(err)
	}
	bf.Add(blockstore.Sum([]byte("a")))
	good, err := bf.MarshalBinary()
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good)
	f.Add(good[:30])
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		var g BloomFilter
		if err := g.UnmarshalBinary(data); err != nil {
			if !errors.Is(err, blockstore.ErrInvalidArgument) {
				t.Fatalf("error %v does not wrap ErrInvalidArgument", err)
			}
			return
		}
		again, err := g.MarshalBinary()
		if err != nil || string(again) != string(data) {
			t.Fatalf("accepted an encoding that does not round-trip (%v)", err)
		}
	})
}

// TestBloomIndexDerivation pins the documented bit indices: filters travel
// between nodes, so a change here would make an old filter miss live refs.
func TestBloomIndexDerivation(t *testing.T) {
	rng := rand.New(rand.NewPCG(11, 12))
	for _, ref := range randomRefs(rng, 20) {
		f := newFilter(t, 1000, 0.01)
		f.Add(ref)
		want := make(map[uint64]bool)
		h1 := binary.LittleEndian.Uint64(ref[0:8])
		h2 := binary.LittleEndian.Uint64(ref[8:16])
		for i := range uint64(f.Hashes()) {
			idx, _ := bits.Mul64(h1+i*h2, f.Bits())
			want[idx] = true
		}
		for idx := range f.Bits() {
			if got := f.words[idx/64]&(1<<(idx%64)) != 0; got != want[idx] {
				t.Fatalf("ref %s: bit %d set = %v, want %v", ref.Short(), idx, got, want[idx])
			}
		}
	}
}
