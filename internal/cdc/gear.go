package cdc

// GearSeed seeds the splitmix64 generator whose first 256 outputs are the
// gear table. Frozen: changing it changes every chunk boundary.
const GearSeed = 0x636f666665722d31 // "coffer-1"

// gear maps a byte to a random 64-bit value.
var gear = gearTable(GearSeed)

// gearTable returns the outputs 1..256 of splitmix64 seeded with seed.
func gearTable(seed uint64) [256]uint64 {
	var t [256]uint64
	s := seed
	for i := range t {
		s += 0x9e3779b97f4a7c15
		z := s
		z = (z ^ z>>30) * 0xbf58476d1ce4e5b9
		z = (z ^ z>>27) * 0x94d049bb133111eb
		t[i] = z ^ z>>31
	}
	return t
}

// scan is the state of the search for the end of one chunk: the next
// byte to hash (an index into the chunk) and the hash so far.
type scan struct {
	pos int
	fp  uint64
}

// newScan returns the state of a search from the start of a chunk.
func (p *params) newScan() scan {
	return scan{pos: p.min - 64}
}

// find continues the search s for the end of the chunk at the start of
// data, which holds the chunk's bytes read so far (or more). It returns the
// chunk's length; or 0 if data ends first and is shorter than p.max, with
// s updated to resume once more bytes follow. Hashing starts 64 bytes
// before the first candidate end (s.pos = p.min-64, s.fp = 0 at first),
// so the hash at every candidate is the window hash of the package
// documentation.
func (p *params) find(data []byte, s *scan) int {
	n := min(len(data), p.max)
	i, fp := s.pos, s.fp
	// Warm up: the 63 bytes before the first candidate, unchecked.
	for end := min(p.min-1, n); i < end; i++ {
		fp = fp<<1 + gear[data[i]]
	}
	// A chunk of length L = i+1 ends here if the hash matches the strict
	// mask while L < avg, the loose one from avg on.
	for end := min(p.avg-1, n); i < end; i++ {
		fp = fp<<1 + gear[data[i]]
		if fp&p.maskS == 0 {
			return i + 1
		}
	}
	for ; i < n; i++ {
		fp = fp<<1 + gear[data[i]]
		if fp&p.maskL == 0 {
			return i + 1
		}
	}
	if n == p.max {
		return n
	}
	s.pos, s.fp = i, fp
	return 0
}
