package auth

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"golang.org/x/time/rate"
)

func newTestLimiter(t *testing.T, clk *fakeClock, cfg LimiterConfig) *Limiter {
	t.Helper()
	cfg.Now = clk.Now
	l, err := NewLimiter(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// attempt is one call of Allow and what it must return.
type attempt struct {
	advance    time.Duration // clock advance before the call
	name, addr string
	ok         bool
	retryAfter time.Duration // checked when !ok
	times      int           // repeat count (default 1)
}

func runAttempts(t *testing.T, l *Limiter, clk *fakeClock, steps []attempt) {
	t.Helper()
	for i, s := range steps {
		clk.Advance(s.advance)
		for j := range max(s.times, 1) {
			ok, retry := l.Allow(s.name, s.addr)
			if ok != s.ok {
				t.Fatalf("step %d.%d Allow(%q, %q) = %v, want %v", i, j, s.name, s.addr, ok, s.ok)
			}
			if ok && retry != 0 {
				t.Fatalf("step %d.%d: allowed with retryAfter %v", i, j, retry)
			}
			if !ok && retry != s.retryAfter {
				t.Fatalf("step %d.%d: retryAfter %v, want %v", i, j, retry, s.retryAfter)
			}
		}
	}
}

func TestLimiter(t *testing.T) {
	// Names: 1 per minute, burst 3. Addresses: 1 per 10 s, burst 5.
	cfg := LimiterConfig{PerName: rate.Every(time.Minute), NameBurst: 3, PerAddr: rate.Every(10 * time.Second), AddrBurst: 5}
	tests := []struct {
		name  string
		steps []attempt
	}{
		{"per-name burst then rate", []attempt{
			{name: "alice", addr: "10.0.0.1", ok: true, times: 3},
			{name: "alice", addr: "10.0.0.2", ok: false, retryAfter: time.Minute},
			{advance: 20 * time.Second, name: "alice", addr: "10.0.0.3", ok: false, retryAfter: 40 * time.Second},
			{advance: 40*time.Second - time.Millisecond, name: "alice", addr: "10.0.0.4", ok: false, retryAfter: time.Millisecond},
			{advance: time.Millisecond, name: "alice", addr: "10.0.0.5", ok: true},
			{name: "alice", addr: "10.0.0.5", ok: false, retryAfter: time.Minute},
			{name: "bob", addr: "10.0.0.5", ok: true},
		}},
		{"names are case-insensitive", []attempt{
			{name: "Alice", addr: "10.0.0.1", ok: true},
			{name: "ALICE", addr: "10.0.0.2", ok: true},
			{name: "alice", addr: "10.0.0.3", ok: true},
			{name: "aLiCe", addr: "10.0.0.4", ok: false, retryAfter: time.Minute},
		}},
		{"per-address burst then rate", []attempt{
			{name: "u1", addr: "192.0.2.7", ok: true},
			{name: "u2", addr: "192.0.2.7:1234", ok: true},
			{name: "u3", addr: "[::ffff:192.0.2.7]:80", ok: true},
			{name: "u4", addr: "::ffff:192.0.2.7", ok: true},
			{name: "u5", addr: "192.0.2.7", ok: true},
			{name: "u6", addr: "192.0.2.7:999", ok: false, retryAfter: 10 * time.Second},
			{name: "u6", addr: "192.0.2.8", ok: true},
			{advance: 10 * time.Second, name: "u7", addr: "192.0.2.7", ok: true},
			{name: "u8", addr: "192.0.2.7", ok: false, retryAfter: 10 * time.Second},
		}},
		{"IPv6 limited per /64", []attempt{
			{name: "a", addr: "[2001:db8:1:2::1]:443", ok: true},
			{name: "b", addr: "2001:db8:1:2::2", ok: true},
			{name: "c", addr: "2001:db8:1:2:ffff:ffff:ffff:ffff", ok: true},
			{name: "d", addr: "[2001:db8:1:2::3%eth0]:1", ok: true},
			{name: "e", addr: "2001:db8:1:2::4", ok: true},
			{name: "f", addr: "2001:db8:1:2::5", ok: false, retryAfter: 10 * time.Second},
			{name: "f", addr: "2001:db8:1:3::5", ok: true},
		}},
		{"refused by name takes nothing from the address", []attempt{
			{name: "victim", addr: "10.1.1.1", ok: true, times: 3},
			{name: "victim", addr: "10.1.1.1", ok: false, retryAfter: time.Minute, times: 10},
			{name: "other", addr: "10.1.1.1", ok: true, times: 2}, // address burst 5 - 3 used
			{name: "third", addr: "10.1.1.1", ok: false, retryAfter: 10 * time.Second},
		}},
		{"refused by address takes nothing from the name", []attempt{
			{name: "n1", addr: "10.2.2.2", ok: true, times: 3},
			{name: "n2", addr: "10.2.2.2", ok: true, times: 2},
			{name: "carol", addr: "10.2.2.2", ok: false, retryAfter: 10 * time.Second, times: 10},
			{name: "carol", addr: "10.3.3.3", ok: true, times: 3}, // carol's full burst is left
			{name: "carol", addr: "10.3.3.3", ok: false, retryAfter: time.Minute},
		}},
		{"both refuse: retry after the later", []attempt{
			{name: "dave", addr: "10.4.4.4", ok: true, times: 3},
			{name: "x", addr: "10.4.4.4", ok: true, times: 2},
			{name: "dave", addr: "10.4.4.4", ok: false, retryAfter: time.Minute},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clk := newFakeClock()
			runAttempts(t, newTestLimiter(t, clk, cfg), clk, tt.steps)
		})
	}
}

func TestLimiterDefaults(t *testing.T) {
	clk := newFakeClock()
	l := newTestLimiter(t, clk, LimiterConfig{})
	runAttempts(t, l, clk, []attempt{
		{name: "a", addr: "10.0.0.1", ok: true, times: DefaultNameBurst},
		{name: "a", addr: "10.0.0.1", ok: false, retryAfter: 12 * time.Second}, // 5 per minute
		{name: "b", addr: "10.0.0.1", ok: true, times: DefaultNameBurst},
		{name: "c", addr: "10.0.0.1", ok: true, times: DefaultNameBurst},
		{name: "d", addr: "10.0.0.1", ok: true, times: DefaultNameBurst},
		{name: "e", addr: "10.0.0.1", ok: true, times: DefaultNameBurst},
		{name: "f", addr: "10.0.0.1", ok: true, times: DefaultNameBurst},      // 60 = address burst
		{name: "g", addr: "10.0.0.1", ok: false, retryAfter: 2 * time.Second}, // 30 per minute
	})
}

func TestLimiterBoundedKeys(t *testing.T) {
	clk := newFakeClock()
	const maxKeys = 10
	l := newTestLimiter(t, clk, LimiterConfig{PerName: rate.Every(time.Hour), NameBurst: 1, PerAddr: rate.Inf, MaxKeys: maxKeys})
	if ok, _ := l.Allow("hot", "10.0.0.1"); !ok {
		t.Fatal("first attempt refused")
	}
	for i := range 100 {
		if ok, _ := l.Allow(fmt.Sprintf("user%d", i), "10.0.0.1"); !ok {
			t.Fatalf("fresh name %d refused", i)
		}
		if n := l.Len(); n > maxKeys {
			t.Fatalf("Limiter tracks %d keys, max %d", n, maxKeys)
		}
		// "hot" is used all the time, so it is never the least recently
		// used and stays limited.
		if ok, _ := l.Allow("hot", "10.0.0.1"); ok {
			t.Fatalf("after %d other names, the recently used name was dropped and reset", i+1)
		}
	}
	// An idle name was dropped; it starts over with a full bucket.
	if ok, _ := l.Allow("user0", "10.0.0.1"); !ok {
		t.Fatal("least recently used name was not dropped")
	}
	// A recently used one is still limited.
	if ok, _ := l.Allow("user99", "10.0.0.1"); ok {
		t.Fatal("recently used name was dropped")
	}
}

func TestAddrKeyOf(t *testing.T) {
	tests := map[string]string{
		"192.0.2.1":               "192.0.2.1",
		"192.0.2.1:8080":          "192.0.2.1",
		"::ffff:192.0.2.1":        "192.0.2.1",
		"[::ffff:192.0.2.1]:1":    "192.0.2.1",
		"2001:db8::1":             "2001:db8::/64",
		"[2001:db8::1]":           "2001:db8::/64",
		"[2001:db8:0:0:9::1]:443": "2001:db8::/64",
		"fe80::1%eth0":            "fe80::/64",
		"2001:DB8:0:1::1":         "2001:db8:0:1::/64",
		"not-an-ip":               "not-an-ip",
		"":                        "",
	}
	for in, want := range tests {
		if got := addrKeyOf(in); got != want {
			t.Errorf("addrKeyOf(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestLimiterConfigValidate(t *testing.T) {
	tests := []struct {
		name string
		cfg  LimiterConfig
		want []string
	}{
		{"zero is valid", LimiterConfig{}, nil},
		{"unlimited is valid", LimiterConfig{PerName: rate.Inf, PerAddr: rate.Inf}, nil},
		{"MaxKeys 1", LimiterConfig{MaxKeys: 1}, []string{"MaxKeys 1"}},
		{"all at once", LimiterConfig{PerName: -1, NameBurst: -1, PerAddr: -2, AddrBurst: -3, MaxKeys: -4},
			[]string{"PerName -1", "NameBurst -1", "PerAddr -2", "AddrBurst -3", "MaxKeys -4"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.cfg.Validate()
			_, nerr := NewLimiter(tt.cfg)
			if tt.want == nil {
				if err != nil || nerr != nil {
					t.Fatalf("Validate = %v, NewLimiter = %v", err, nerr)
				}
				return
			}
			if !errors.Is(err, ErrInvalidConfig) || !errors.Is(nerr, ErrInvalidConfig) {
				t.Fatalf("Validate = %v, NewLimiter = %v; want ErrInvalidConfig", err, nerr)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
		})
	}
}

func TestLimiterRetryAfterIsTight(t *testing.T) {
	for _, every := range []time.Duration{time.Second, 7 * time.Second, 12 * time.Second, 61 * time.Second} {
		for _, elapsed := range []time.Duration{0, time.Millisecond, 1234 * time.Millisecond, 3333333 * time.Microsecond} {
			t.Run(fmt.Sprintf("every %v after %v", every, elapsed), func(t *testing.T) {
				clk := newFakeClock()
				l := newTestLimiter(t, clk, LimiterConfig{PerName: rate.Every(every), NameBurst: 1, PerAddr: rate.Inf})
				if ok, _ := l.Allow("n", "a"); !ok {
					t.Fatal("first attempt refused")
				}
				clk.Advance(elapsed % every)
				ok, retry := l.Allow("n", "a")
				if ok || retry <= 0 || retry%time.Millisecond != 0 {
					t.Fatalf("Allow = %v, %v; want refused with a whole-millisecond retryAfter", ok, retry)
				}
				if want := every - elapsed%every; retry < want || retry >= want+time.Millisecond {
					t.Fatalf("retryAfter %v, want %v rounded up to a millisecond", retry, want)
				}
				if retry > time.Millisecond {
					clk.Advance(retry - time.Millisecond)
					if ok, _ := l.Allow("n", "a"); ok {
						t.Fatalf("allowed 1ms before retryAfter %v", retry)
					}
					clk.Advance(time.Millisecond)
				} else {
					clk.Advance(retry)
				}
				if ok, r := l.Allow("n", "a"); !ok {
					t.Fatalf("refused at retryAfter %v (again %v)", retry, r)
				}
			})
		}
	}
}
