package cdc

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"testing"
	"testing/iotest"
)

// small is a Config whose chunks are small enough to test edge cases
// cheaply; tiny the smallest valid one.
var (
	small = Config{Min: 1 << 10, Avg: 4 << 10, Max: 16 << 10}
	tiny  = Config{Min: 64, Avg: 128, Max: 256}
)

// chunkAll returns the chunks of r, copied, failing t on an error.
func chunkAll(t testing.TB, r io.Reader, cfg Config) [][]byte {
	t.Helper()
	c, err := New(r, cfg)
	if err != nil {
		t.Fatal(err)
	}
	var chunks [][]byte
	for {
		b, err := c.Next()
		if err == io.EOF {
			if b != nil {
				t.Fatalf("Next returned %d bytes with io.EOF", len(b))
			}
			return chunks
		}
		if err != nil {
			t.Fatalf("Next after %d chunks: %v", len(chunks), err)
		}
		chunks = append(chunks, bytes.Clone(b))
		var sum int64
		for _, c := range chunks {
			sum += int64(len(c))
		}
		if c.Offset() != sum {
			t.Fatalf("Offset %d after %d bytes of chunks", c.Offset(), sum)
		}
	}
}

func sizes(chunks [][]byte) []int {
	s := make([]int, len(chunks))
	for i, c := range chunks {
		s[i] = len(c)
	}
	return s
}

// refCut is the package documentation's definition, computed the slow way:
// the length of the first chunk of data (the rest of a stream).
func refCut(cfg Config, data []byte) int {
	cfg = cfg.WithDefaults()
	strict, loose := log2(cfg.Avg)+2, log2(cfg.Avg)-2
	for l := cfg.Min; l <= len(data); l++ {
		if l == cfg.Max {
			return l
		}
		var g uint64 // the hash of the 64 bytes ending at data[l-1]
		for j := range 64 {
			g += gear[data[l-1-j]] << j
		}
		bits := loose
		if l < cfg.Avg {
			bits = strict
		}
		if g>>(64-bits) == 0 {
			return l
		}
	}
	return len(data)
}

func log2(n int) int {
	b := 0
	for n > 1 {
		n >>= 1
		b++
	}
	return b
}

func TestMatchesDefinition(t *testing.T) {
	for _, tt := range []struct {
		cfg  Config
		size int
	}{
		{tiny, 64 << 10},
		{Config{Min: 100, Avg: 512, Max: 700}, 64 << 10},
		{small, 1 << 20},
	} {
		data := randomBytes(3, tt.size)
		var want []int
		for rest := data; len(rest) > 0; {
			n := refCut(tt.cfg, rest)
			want = append(want, n)
			rest = rest[n:]
		}
		got := sizes(chunkAll(t, iotest.HalfReader(bytes.NewReader(data)), tt.cfg))
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("%+v: chunk sizes\n%v\nwant (by definition)\n%v", tt.cfg, got, want)
		}
	}
}

// TestFrozen pins the gear table and a sample of boundaries: if it fails,
// chunk boundaries changed, and with them every block reference computed
// before. Do not update it; see the package documentation.
func TestFrozen(t *testing.T) {
	// splitmix64's published first output for seed 0.
	if got := gearTable(0)[0]; got != 0xe220a8397b1dcdaf {
		t.Errorf("gearTable(0)[0] = %#x: not splitmix64", got)
	}
	for i, want := range map[int]uint64{0: 0x4f00fc697236b527, 1: 0x94723de5f3190a7d, 255: 0x5a42b1b28574cc72} {
		if gear[i] != want {
			t.Errorf("gear[%d] = %#x, want %#x", i, gear[i], want)
		}
	}
	tests := []struct {
		cfg  Config
		seed uint64
		size int
		want string
	}{
		{Config{}, 42, 16 << 20, "[1413724 492943 1106138 1149395 1114067 787128 1924140 1631361 1070902 1355267 1161632 1097462 1098060 749533 625464]"},
		{small, 42, 128 << 10, "[4448 4316 6641 5002 5738 4369 4256 5420 2952 5725 2700 6316 2486 5052 4773 5111 3507 4650 4823 4154 5608 4526 4383 1187 4099 5127 4776 4246 4163 518]"},
	}
	for _, tt := range tests {
		got := fmt.Sprint(sizes(chunkAll(t, bytes.NewReader(randomBytes(tt.seed, tt.size)), tt.cfg)))
		if got != tt.want {
			t.Errorf("%+v: chunk sizes %s, want %s", tt.cfg, got, tt.want)
		}
	}
}

// randomReader returns its data in reads of random sizes from 0 to 3*max/2
// bytes, sometimes with io.EOF on the last read.
type randomReader struct {
	data []byte
	rnd  *rand.Rand
	max  int
}

func (r *randomReader) Read(p []byte) (int, error) {
	if len(r.data) == 0 {
		return 0, io.EOF
	}
	n := min(len(p), len(r.data), r.rnd.IntN(r.max*3/2+1))
	copy(p, r.data[:n])
	r.data = r.data[n:]
	if len(r.data) == 0 && r.rnd.IntN(2) == 0 {
		return n, io.EOF
	}
	return n, nil
}

func TestReadSplitting(t *testing.T) {
	for _, tt := range []struct {
		name string
		cfg  Config
		size int
	}{
		{"tiny", tiny, 256 << 10},
		{"small", small, 2 << 20},
		{"default", Config{}, 12 << 20},
	} {
		data := randomBytes(5, tt.size)
		want := sizes(chunkAll(t, bytes.NewReader(data), tt.cfg))
		if len(want) < 3 {
			t.Fatalf("%s: only %d chunks", tt.name, len(want))
		}
		readers := map[string]func() io.Reader{
			"half":    func() io.Reader { return iotest.HalfReader(bytes.NewReader(data)) },
			"dataerr": func() io.Reader { return iotest.DataErrReader(bytes.NewReader(data)) },
			"random":  func() io.Reader { return &randomReader{data, rand.New(rand.NewPCG(1, 2)), 1 << 20} },
			"random small": func() io.Reader {
				return &randomReader{data, rand.New(rand.NewPCG(3, 4)), 300}
			},
		}
		if tt.size <= 2<<20 {
			readers["onebyte"] = func() io.Reader { return iotest.OneByteReader(bytes.NewReader(data)) }
		}
		for name, r := range readers {
			chunks := chunkAll(t, r(), tt.cfg)
			if got := sizes(chunks); fmt.Sprint(got) != fmt.Sprint(want) {
				t.Errorf("%s, %s reader: sizes %v, want %v", tt.name, name, got, want)
			}
			if !bytes.Equal(bytes.Join(chunks, nil), data) {
				t.Errorf("%s, %s reader: chunks do not make up the data", tt.name, name)
			}
		}
	}
}

func TestChunkSizes(t *testing.T) {
	for _, tt := range []struct {
		cfg  Config
		size int
	}{
		{tiny, 1 << 20},
		{small, 8 << 20},
		{Config{}, benchSize},
	} {
		cfg := tt.cfg.WithDefaults()
		data := randomBytes(9, tt.size)
		if tt.size == benchSize {
			data = benchData()
		}
		chunks := chunkAll(t, bytes.NewReader(data), cfg)
		s := sizes(chunks)
		for i, n := range s[:len(s)-1] {
			if n < cfg.Min || n > cfg.Max {
				t.Errorf("%+v: chunk %d of %d has %d bytes", cfg, i, len(s), n)
			}
		}
		if last := s[len(s)-1]; last < 1 || last > cfg.Max {
			t.Errorf("%+v: last chunk has %d bytes", cfg, last)
		}
		mean := float64(tt.size) / float64(len(s))
		if mean < float64(cfg.Avg)/2 || mean > float64(cfg.Avg)*2 {
			t.Errorf("%+v: mean chunk size %.0f over %d chunks, want within 0.5..2 x %d", cfg, mean, len(s), cfg.Avg)
		}
		t.Logf("%+v: %d chunks, mean %.0f bytes", cfg, len(s), mean)
	}
}

func TestShortAndUniform(t *testing.T) {
	cfg := small
	p, _ := cfg.params()
	g := -gear[0] // the window hash of 64 zero bytes
	if g&p.maskS == 0 || g&p.maskL == 0 {
		t.Fatalf("zero bytes match a mask: the cases below assume otherwise")
	}
	tests := []struct {
		name string
		data []byte
		want string
	}{
		{"empty", nil, "[]"},
		{"one byte", []byte{7}, "[1]"},
		{"below Min", randomBytes(1, cfg.Min-1), fmt.Sprint([]int{cfg.Min - 1})},
		{"Min", randomBytes(1, cfg.Min), fmt.Sprint([]int{cfg.Min})},
		{"zeros", make([]byte, 3*cfg.Max+5), fmt.Sprint([]int{cfg.Max, cfg.Max, cfg.Max, 5})},
		{"Max of zeros", make([]byte, cfg.Max), fmt.Sprint([]int{cfg.Max})},
	}
	for _, tt := range tests {
		if got := fmt.Sprint(sizes(chunkAll(t, bytes.NewReader(tt.data), cfg))); got != tt.want {
			t.Errorf("%s: sizes %s, want %s", tt.name, got, tt.want)
		}
	}
}

func TestEmpty(t *testing.T) {
	c, err := New(bytes.NewReader(nil), Config{})
	if err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if b, err := c.Next(); b != nil || err != io.EOF {
			t.Errorf("Next = %d bytes, %v; want nil, io.EOF", len(b), err)
		}
	}
	if c.Offset() != 0 {
		t.Errorf("Offset = %d", c.Offset())
	}
}

// sums returns the set of the chunks' SHA-256 sums.
func sums(chunks [][]byte) map[[32]byte]bool {
	m := make(map[[32]byte]bool, len(chunks))
	for _, c := range chunks {
		m[sha256.Sum256(c)] = true
	}
	return m
}

// notIn returns how many sums of a are not in b.
func notIn(a, b map[[32]byte]bool) int {
	n := 0
	for s := range a {
		if !b[s] {
			n++
		}
	}
	return n
}

func TestEditLocality(t *testing.T) {
	const size = benchSize
	data := benchData()
	base := sums(chunkAll(t, bytes.NewReader(data), Config{}))
	for _, tt := range []struct {
		name string
		edit func() []byte
	}{
		{"insert in the middle", func() []byte { return splice(data, size/2, 0, []byte{0x5a}) }},
		{"insert near the start", func() []byte { return splice(data, 1000, 0, []byte{1}) }},
		{"delete in the middle", func() []byte { return splice(data, size/2+12345, 1, nil) }},
	} {
		edited := sums(chunkAll(t, bytes.NewReader(tt.edit()), Config{}))
		added, removed := notIn(edited, base), notIn(base, edited)
		if added < 1 || added > 2 || removed < 1 || removed > 2 {
			t.Errorf("%s: %d chunks new, %d gone of %d; want 1 or 2 each", tt.name, added, removed, len(base))
		}
	}
}

// splice returns a copy of data with n bytes at off replaced by ins.
func splice(data []byte, off, n int, ins []byte) []byte {
	out := make([]byte, 0, len(data)-n+len(ins))
	out = append(out, data[:off]...)
	out = append(out, ins...)
	return append(out, data[off+n:]...)
}

var errBoom = errors.New("boom")

// failReader returns data, then err (with the last bytes or alone).
type failReader struct {
	data     []byte
	err      error
	withData bool
}

func (r *failReader) Read(p []byte) (int, error) {
	if len(r.data) == 0 {
		return 0, r.err
	}
	n := copy(p, r.data[:min(len(r.data), 10000)])
	r.data = r.data[n:]
	if len(r.data) == 0 && r.withData {
		return n, r.err
	}
	return n, nil
}

func TestReadError(t *testing.T) {
	data := randomBytes(13, 1<<20)
	want := chunkAll(t, bytes.NewReader(data), small)
	for _, withData := range []bool{false, true} {
		c, err := New(&failReader{data: data, err: fmt.Errorf("wrapped: %w", errBoom), withData: withData}, small)
		if err != nil {
			t.Fatal(err)
		}
		var got [][]byte
		for {
			b, err := c.Next()
			if err != nil {
				if b != nil || !errors.Is(err, errBoom) {
					t.Fatalf("Next = %d bytes, %v; want nil and errBoom", len(b), err)
				}
				break
			}
			got = append(got, bytes.Clone(b))
		}
		if len(got) >= len(want) {
			t.Errorf("withData %v: %d chunks before the error, the stream has only %d", withData, len(got), len(want))
		}
		for i := range got {
			if !bytes.Equal(got[i], want[i]) {
				t.Fatalf("withData %v: chunk %d before the error differs", withData, i)
			}
		}
		if b, err := c.Next(); b != nil || !errors.Is(err, errBoom) {
			t.Errorf("Next after the error = %d bytes, %v; want the error again", len(b), err)
		}
	}
}

type stuckReader struct{}

func (stuckReader) Read([]byte) (int, error) { return 0, nil }

func TestNoProgress(t *testing.T) {
	c, err := New(stuckReader{}, Config{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Next(); err != io.ErrNoProgress {
		t.Errorf("Next = %v, want io.ErrNoProgress", err)
	}
}
