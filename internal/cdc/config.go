package cdc

import (
	"fmt"
	"math/bits"
	"strings"
)

// Default chunk sizes (frozen: see the package documentation).
const (
	DefaultMin = 256 << 10
	DefaultAvg = 1 << 20
	DefaultMax = 4 << 20
)

// Limits on Config's sizes.
const (
	// MinMin is the smallest Min: the gear hash window is 64 bytes.
	MinMin = 64
	// MaxMax is the largest Max. A Chunker buffers up to 2*Max bytes.
	MaxMax = 64 << 20
)

// Config sets the chunk sizes in bytes. A zero field takes its default
// (DefaultMin, DefaultAvg, DefaultMax), so the zero Config is the default
// chunking. Two parties that must agree on chunk boundaries (to share
// blocks) must use the same Config.
type Config struct {
	// Min is the smallest chunk (except a stream's last one), >= MinMin.
	Min int
	// Avg is the target mean chunk size, a power of two, Min < Avg < Max.
	Avg int
	// Max is the largest chunk, <= MaxMax.
	Max int
}

// WithDefaults returns c with every zero field set to its default.
func (c Config) WithDefaults() Config {
	if c.Min == 0 {
		c.Min = DefaultMin
	}
	if c.Avg == 0 {
		c.Avg = DefaultAvg
	}
	if c.Max == 0 {
		c.Max = DefaultMax
	}
	return c
}

// Validate reports every problem of c at once, in one error wrapping
// ErrInvalidConfig, or nil if c is valid. Zero fields take their defaults
// before the sizes are compared, so Config{Avg: 8 << 20} is invalid (Avg
// above the default Max) while Config{} is valid.
func (c Config) Validate() error {
	var problems []string
	if c.Min < 0 || c.Avg < 0 || c.Max < 0 {
		problems = append(problems, fmt.Sprintf("negative size (Min %d, Avg %d, Max %d)", c.Min, c.Avg, c.Max))
	}
	d := c.WithDefaults()
	if d.Min < MinMin {
		problems = append(problems, fmt.Sprintf("Min %d < %d", d.Min, MinMin))
	}
	if d.Max > MaxMax {
		problems = append(problems, fmt.Sprintf("Max %d > %d", d.Max, MaxMax))
	}
	if d.Avg > 0 && d.Avg&(d.Avg-1) != 0 {
		problems = append(problems, fmt.Sprintf("Avg %d is not a power of two", d.Avg))
	}
	if !(d.Min < d.Avg && d.Avg < d.Max) {
		problems = append(problems, fmt.Sprintf("want Min < Avg < Max, have %d, %d, %d", d.Min, d.Avg, d.Max))
	}
	if len(problems) > 0 {
		return fmt.Errorf("%w: %s", ErrInvalidConfig, strings.Join(problems, "; "))
	}
	return nil
}

// params is a validated Config with its masks.
type params struct {
	min, avg, max int
	maskS, maskL  uint64
}

// params validates c and returns its defaults and masks.
func (c Config) params() (params, error) {
	if err := c.Validate(); err != nil {
		return params{}, err
	}
	c = c.WithDefaults()
	b := bits.TrailingZeros(uint(c.Avg)) // log2(Avg)
	return params{
		min: c.Min, avg: c.Avg, max: c.Max,
		maskS: topBits(b + 2),
		maskL: topBits(b - 2),
	}, nil
}

// topBits returns a mask of the n most significant bits.
func topBits(n int) uint64 {
	return ^uint64(0) << (64 - n)
}
