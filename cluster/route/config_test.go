package route

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/coffer-dev/coffer/cluster/metarpc"
)

func TestConfigValidate(t *testing.T) {
	pool, err := metarpc.NewPool(metarpc.ClientConfig{})
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	ok := Config{Leaders: newLeaders(""), Pool: pool}
	tests := []struct {
		name string
		edit func(*Config)
		want []string // substrings of the error; none: valid
	}{
		{"defaults", func(*Config) {}, nil},
		{"explicit", func(c *Config) {
			c.MaxWait, c.BackoffMin, c.BackoffMax = time.Second, time.Millisecond, time.Millisecond
		}, nil},
		{"min above default max", func(c *Config) { c.BackoffMin = 2 * time.Second },
			[]string{"BackoffMin 2s is more than BackoffMax 1s"}},
		{"missing both", func(c *Config) { c.Leaders, c.Pool = nil, nil },
			[]string{"Leaders is required", "Pool is required"}},
		{"negative durations", func(c *Config) { c.MaxWait, c.BackoffMin, c.BackoffMax = -1, -1, -1 },
			[]string{"MaxWait -1ns", "BackoffMin -1ns", "BackoffMax -1ns"}},
		{"min above max", func(c *Config) { c.BackoffMin, c.BackoffMax = time.Second, time.Millisecond },
			[]string{"BackoffMin 1s is more than BackoffMax 1ms"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := ok
			tt.edit(&c)
			err := c.Validate()
			_, nerr := New(c)
			if len(tt.want) == 0 {
				if err != nil || nerr != nil {
					t.Fatalf("Validate() = %v, New: %v; want nil", err, nerr)
				}
				return
			}
			if !errors.Is(err, ErrInvalidConfig) || !errors.Is(nerr, ErrInvalidConfig) {
				t.Fatalf("Validate() = %v, New: %v; want ErrInvalidConfig", err, nerr)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("Validate() = %q, want it to mention %q", err, w)
				}
			}
		})
	}
	r, err := New(ok)
	if err != nil {
		t.Fatal(err)
	}
	if r.cfg.MaxWait != DefaultMaxWait || r.cfg.BackoffMin != DefaultBackoffMin || r.cfg.BackoffMax != DefaultBackoffMax {
		t.Errorf("defaults not applied: %+v", r.cfg)
	}
}

func TestBackoff(t *testing.T) {
	tests := []struct {
		lo, hi time.Duration
	}{
		{50 * time.Millisecond, time.Second},
		{time.Millisecond, time.Millisecond},
		{10 * time.Millisecond, 15 * time.Millisecond},
		{time.Nanosecond, time.Hour},
	}
	for _, tt := range tests {
		seen := make(map[time.Duration]bool)
		for n := 0; n < 40; n++ {
			ceil := tt.lo
			for i := 0; i < n && ceil < tt.hi; i++ {
				ceil *= 2
			}
			ceil = min(ceil, tt.hi)
			for range 20 {
				d := backoff(n, tt.lo, tt.hi)
				seen[d] = true
				if d < tt.lo || d > ceil || d < ceil/2 {
					t.Fatalf("backoff(%d, %v, %v) = %v, want in [max(%v, %v), %v]", n, tt.lo, tt.hi, d, tt.lo, ceil/2, ceil)
				}
			}
		}
		if tt.hi >= 10*tt.lo && len(seen) < 10 {
			t.Errorf("backoff(·, %v, %v) took only %d values: no jitter?", tt.lo, tt.hi, len(seen))
		}
	}
}
