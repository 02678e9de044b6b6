package gc

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"math"
	"math/bits"

	"github.com/coffer-dev/coffer/blockstore"
)

// Bloom filter limits.
const (
	// MaxBloomBits caps a filter's size: 2^33 bits, 1 GiB of memory
	// (about 900 million refs at a 1% false-positive rate).
	MaxBloomBits = 1 << 33
	// MaxBloomHashes caps the number of bit indices per ref. The optimal
	// count only exceeds it for false-positive rates below about 1e-19,
	// where the filter then keeps slightly more garbage than asked.
	MaxBloomHashes = 64
)

// The encoding of a BloomFilter (all integers little-endian):
//
//	offset  size  field
//	0       4     magic "CGBF"
//	4       1     version (1)
//	5       3     reserved, zero
//	8       4     k, the number of bit indices per ref (1..MaxBloomHashes)
//	12      4     reserved, zero
//	16      8     m, the number of bits (a multiple of 64, 64..MaxBloomBits)
//	24      m/8   the bits, as m/64 uint64 words; bit i is bit i%64 of word i/64
//	24+m/8  4     CRC-32C (Castagnoli) of every byte before it
//
// Version 1 also fixes how bit indices are derived from a ref (see
// BloomFilter): a filter encoded by one node is read by another, so a
// change to the derivation needs a new version.
const (
	bloomMagic     = "CGBF"
	bloomVersion   = 1
	bloomHeaderLen = 24
	bloomCRCLen    = 4
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// BloomFilter is a LiveSet that stores a fixed number of bits whatever the
// number of refs, at the price of false positives (garbage kept longer,
// never live data deleted). Each metadata shard can build its own filter
// with the same NewBloomFilter arguments, send it (MarshalBinary), and the
// collector ORs them together (Merge).
//
// A ref is already the SHA-256 of its block, so the filter does no hashing
// of its own: the k bit indices come from the ref's first 16 bytes by
// double hashing (Kirsch and Mitzenmacher, 2006). h1 and h2 are the ref's
// first two little-endian 64-bit words; the i-th index (i = 0..k-1) is
// h1 + i*h2 (mod 2^64) mapped onto [0, m) by multiply-shift (the high 64
// bits of the 128-bit product with m). The indices are thus fixed by the
// ref and the filter's geometry (m, k), which is why filters must have the
// same geometry to be merged. Someone who crafts content to collide in the
// filter can only make garbage survive.
//
// Add and Merge are not safe for concurrent use; Contains is (once no Add
// or Merge runs). The zero value is not a usable filter: it contains every
// ref (so a forgotten NewBloomFilter keeps everything rather than deleting
// everything), Add does nothing and MarshalBinary and Merge refuse it.
type BloomFilter struct {
	words []uint64
	m     uint64 // bits
	k     uint32 // bit indices per ref
	set   uint64 // bits set, for ApproxFalsePositiveRate
}

var _ LiveSet = (*BloomFilter)(nil)

// NewBloomFilter returns an empty filter sized so that, once
// expectedItems distinct refs are added, a ref that was not added is
// reported present with probability about falsePositiveRate. It needs
// expectedItems > 0 and 0 < falsePositiveRate < 1, and the resulting size
// must not exceed MaxBloomBits; otherwise it fails with
// blockstore.ErrInvalidArgument. Adding more refs than expected raises the
// false-positive rate (see ApproxFalsePositiveRate), never causes a false
// negative.
func NewBloomFilter(expectedItems int, falsePositiveRate float64) (*BloomFilter, error) {
	if expectedItems <= 0 {
		return nil, fmt.Errorf("%w: gc: bloom filter: expectedItems %d <= 0", blockstore.ErrInvalidArgument, expectedItems)
	}
	if !(falsePositiveRate > 0 && falsePositiveRate < 1) {
		return nil, fmt.Errorf("%w: gc: bloom filter: falsePositiveRate %v not in (0, 1)", blockstore.ErrInvalidArgument, falsePositiveRate)
	}
	n := float64(expectedItems)
	mf := math.Ceil(-n * math.Log(falsePositiveRate) / (math.Ln2 * math.Ln2))
	if !(mf <= MaxBloomBits) {
		return nil, fmt.Errorf("%w: gc: bloom filter: %d items at rate %v need %.0f bits > %d", blockstore.ErrInvalidArgument,
			expectedItems, falsePositiveRate, mf, uint64(MaxBloomBits))
	}
	m := max((uint64(mf)+63)&^63, 64)
	k := int(math.Round(float64(m) / n * math.Ln2))
	k = min(max(k, 1), MaxBloomHashes)
	return &BloomFilter{words: make([]uint64, m/64), m: m, k: uint32(k)}, nil
}

// Bits returns the filter's size in bits (0 for the zero value).
func (f *BloomFilter) Bits() uint64 { return f.m }

// Hashes returns the number of bit indices per ref (0 for the zero value).
func (f *BloomFilter) Hashes() int { return int(f.k) }

// Add adds ref to the filter.
func (f *BloomFilter) Add(ref blockstore.Ref) {
	if f.m == 0 {
		return
	}
	x := binary.LittleEndian.Uint64(ref[0:8])
	y := binary.LittleEndian.Uint64(ref[8:16])
	for range f.k {
		idx, _ := bits.Mul64(x, f.m)
		w, b := idx>>6, uint64(1)<<(idx&63)
		if f.words[w]&b == 0 {
			f.words[w] |= b
			f.set++
		}
		x += y
	}
}

// Contains reports whether ref may have been added: true for every ref
// that was added, and for others with a probability of about
// ApproxFalsePositiveRate. The zero value contains every ref.
func (f *BloomFilter) Contains(ref blockstore.Ref) bool {
	if f.m == 0 {
		return true
	}
	x := binary.LittleEndian.Uint64(ref[0:8])
	y := binary.LittleEndian.Uint64(ref[8:16])
	for range f.k {
		idx, _ := bits.Mul64(x, f.m)
		if f.words[idx>>6]&(uint64(1)<<(idx&63)) == 0 {
			return false
		}
		x += y
	}
	return true
}

// Merge adds every ref of other to f (a bitwise OR), so f then contains
// the union of both sets. Both filters must have the same geometry (made
// by NewBloomFilter with the same arguments, or decoded from such
// filters); otherwise, or if either is the zero value, it fails with
// blockstore.ErrInvalidArgument and f is unchanged.
func (f *BloomFilter) Merge(other *BloomFilter) error {
	if other == nil || other.m == 0 || f.m == 0 {
		return fmt.Errorf("%w: gc: bloom filter: merge with an uninitialised filter", blockstore.ErrInvalidArgument)
	}
	if f.m != other.m || f.k != other.k {
		return fmt.Errorf("%w: gc: bloom filter: merge of %d bits/%d hashes into %d bits/%d hashes",
			blockstore.ErrInvalidArgument, other.m, other.k, f.m, f.k)
	}
	var set uint64
	for i, w := range other.words {
		f.words[i] |= w
		set += uint64(bits.OnesCount64(f.words[i]))
	}
	f.set = set
	return nil
}

// ApproxFalsePositiveRate estimates the probability that Contains reports
// a ref that was never added, from the fraction of bits set: (set/m)^k. It
// reflects the refs actually added (and merged), not the rate the filter
// was sized for. The zero value reports 1.
func (f *BloomFilter) ApproxFalsePositiveRate() float64 {
	if f.m == 0 {
		return 1
	}
	return math.Pow(float64(f.set)/float64(f.m), float64(f.k))
}

// MarshalBinary encodes the filter: a versioned header with its geometry,
// the bits, and a CRC-32C of it all (the layout is documented in the
// source). The zero value is refused (blockstore.ErrInvalidArgument).
func (f *BloomFilter) MarshalBinary() ([]byte, error) {
	if f.m == 0 {
		return nil, fmt.Errorf("%w: gc: bloom filter: marshal of an uninitialised filter", blockstore.ErrInvalidArgument)
	}
	buf := make([]byte, bloomHeaderLen, bloomHeaderLen+f.m/8+bloomCRCLen)
	copy(buf, bloomMagic)
	buf[4] = bloomVersion
	binary.LittleEndian.PutUint32(buf[8:], f.k)
	binary.LittleEndian.PutUint64(buf[16:], f.m)
	for _, w := range f.words {
		buf = binary.LittleEndian.AppendUint64(buf, w)
	}
	return binary.LittleEndian.AppendUint32(buf, crc32.Checksum(buf, castagnoli)), nil
}

// UnmarshalBinary replaces f with the filter MarshalBinary encoded in
// data. Anything but an intact encoding (truncated, extended, a damaged
// byte anywhere, an unknown version, an impossible geometry) is refused
// with blockstore.ErrInvalidArgument and leaves f unchanged: a wrongly
// decoded filter could report live refs absent and so delete live data.
// It does not retain data.
func (f *BloomFilter) UnmarshalBinary(data []byte) error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: gc: bloom filter encoding: %s", blockstore.ErrInvalidArgument, fmt.Sprintf(format, args...))
	}
	if len(data) < bloomHeaderLen+8+bloomCRCLen {
		return bad("%d bytes is too short", len(data))
	}
	body := data[:len(data)-bloomCRCLen]
	if got, want := crc32.Checksum(body, castagnoli), binary.LittleEndian.Uint32(data[len(body):]); got != want {
		return bad("checksum mismatch (damaged or truncated)")
	}
	if string(body[0:4]) != bloomMagic {
		return bad("bad magic %q", body[0:4])
	}
	if v := body[4]; v != bloomVersion {
		return bad("unsupported version %d", v)
	}
	if body[5] != 0 || body[6] != 0 || body[7] != 0 || binary.LittleEndian.Uint32(body[12:16]) != 0 {
		return bad("reserved header bytes are not zero")
	}
	k := binary.LittleEndian.Uint32(body[8:12])
	m := binary.LittleEndian.Uint64(body[16:24])
	if k < 1 || k > MaxBloomHashes {
		return bad("%d hashes not in [1, %d]", k, MaxBloomHashes)
	}
	if m < 64 || m > MaxBloomBits || m%64 != 0 {
		return bad("%d bits: want a multiple of 64 in [64, %d]", m, uint64(MaxBloomBits))
	}
	if got, want := uint64(len(body)-bloomHeaderLen), m/8; got != want {
		return bad("%d bytes of bits, want %d", got, want)
	}
	words := make([]uint64, m/64)
	var set uint64
	for i := range words {
		words[i] = binary.LittleEndian.Uint64(body[bloomHeaderLen+8*i:])
		set += uint64(bits.OnesCount64(words[i]))
	}
	*f = BloomFilter{words: words, m: m, k: k, set: set}
	return nil
}
