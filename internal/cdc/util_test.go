package cdc

import "encoding/binary"

// randomBytes returns n pseudo-random bytes from a splitmix64 stream seeded
// with seed: the same on every platform and Go version.
func randomBytes(seed uint64, n int) []byte {
	b := make([]byte, n+7)
	s := seed
	for i := 0; i < n; i += 8 {
		s += 0x9e3779b97f4a7c15
		z := s
		z = (z ^ z>>30) * 0xbf58476d1ce4e5b9
		z = (z ^ z>>27) * 0x94d049bb133111eb
		binary.LittleEndian.PutUint64(b[i:], z^z>>31)
	}
	return b[:n:n]
}
