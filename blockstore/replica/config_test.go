package replica

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/coffer-dev/coffer/blockstore"
	"github.com/coffer-dev/coffer/blockstore/memstore"
)

func TestConfigValidate(t *testing.T) {
	store, err := memstore.New(memstore.Config{})
	if err != nil {
		t.Fatal(err)
	}
	base := Config{Membership: NewStatic(), Dialer: &faultDialer{}}
	for _, tc := range []struct {
		name string
		mod  func(*Config)
		want []string // substrings of the error; none = valid
	}{
		{"defaults", func(*Config) {}, nil},
		{"block node", func(c *Config) { c.Self, c.Local = "n1", store }, nil},
		{"R=1 W defaults to 1", func(c *Config) { c.R = 1 }, nil},
		{"W=R", func(c *Config) { c.R, c.W = 5, 5 }, nil},
		{"timers off, unlimited rates", func(c *Config) {
			c.RepairInterval, c.RepairDebounce, c.ScrubInterval = -1, -1, -1
			c.RepairRate, c.ScrubRate = -1, -1
		}, nil},
		{"backoff min above default max", func(c *Config) { c.RetryBackoffMin = 2 * time.Minute }, nil},
		{"no membership or dialer", func(c *Config) { c.Membership, c.Dialer = nil, nil },
			[]string{"Membership is required", "Dialer is required"}},
		{"W > R", func(c *Config) { c.R, c.W = 3, 4 }, []string{"W 4 > R 3"}},
		{"W > default R", func(c *Config) { c.W = 4 }, []string{"W 4 > R 3"}},
		{"negative R and W", func(c *Config) { c.R, c.W = -1, -2 }, []string{"R -1 < 0", "W -2 < 0"}},
		{"Local without Self", func(c *Config) { c.Local = store }, []string{"Self is empty"}},
		{"Self without Local", func(c *Config) { c.Self = "n1" }, []string{"Local is nil"}},
		{"negative timeouts", func(c *Config) { c.PutTimeout, c.GetTimeout = -1, -time.Second },
			[]string{"PutTimeout", "GetTimeout"}},
		{"backoff min > max", func(c *Config) { c.RetryBackoffMin, c.RetryBackoffMax = time.Minute, time.Second },
			[]string{"RetryBackoffMin 1m0s > RetryBackoffMax 1s"}},
		{"negative backoff", func(c *Config) { c.RetryBackoffMin = -1 }, []string{"RetryBackoffMin"}},
		{"negative queue size", func(c *Config) { c.RetryQueueSize = -1 }, []string{"RetryQueueSize"}},
		{"bad rates", func(c *Config) { c.RepairRate, c.ScrubRate = -2, -5 },
			[]string{"RepairRate -2", "ScrubRate -5"}},
		{"small background budget", func(c *Config) { c.BackgroundBytes = 1 }, nil},
		{"negative background budget", func(c *Config) { c.BackgroundBytes = -1 }, []string{"BackgroundBytes -1 < 0"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := base
			tc.mod(&cfg)
			err := cfg.Validate()
			_, newErr := New(cfg)
			if len(tc.want) == 0 {
				if err != nil || newErr != nil {
					t.Fatalf("Validate = %v, New = %v, want nil", err, newErr)
				}
				return
			}
			if !errors.Is(err, blockstore.ErrInvalidConfig) || !errors.Is(newErr, blockstore.ErrInvalidConfig) {
				t.Fatalf("Validate = %v, New = %v, want ErrInvalidConfig", err, newErr)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
}

func TestConfigDefaults(t *testing.T) {
	c, err := Config{Membership: NewStatic(), Dialer: &faultDialer{}}.withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	if c.R != 3 || c.W != 2 || c.PutTimeout != DefaultPutTimeout || c.GetTimeout != DefaultGetTimeout ||
		c.RetryBackoffMin != time.Second || c.RetryBackoffMax != time.Minute || c.RetryQueueSize != 100_000 ||
		c.RepairInterval != time.Hour || c.RepairDebounce != time.Second || c.RepairRate != 32<<20 ||
		c.ScrubInterval != 24*time.Hour || c.ScrubRate != 16<<20 || c.BackgroundBytes != 256<<20 ||
		c.Logger == nil || c.Now == nil {
		t.Errorf("defaults not applied: %+v", c)
	}
}

func TestBackoff(t *testing.T) {
	r, err := New(Config{Membership: NewStatic(), Dialer: &faultDialer{},
		RetryBackoffMin: time.Second, RetryBackoffMax: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	for attempt, want := range []time.Duration{1, 2, 4, 8, 10, 10} {
		if got := r.backoff(attempt); got != want*time.Second {
			t.Errorf("backoff(%d) = %v, want %v", attempt, got, want*time.Second)
		}
	}
	if got := r.backoff(1000); got != 10*time.Second {
		t.Errorf("backoff(1000) = %v", got)
	}
}

func TestRetryQueue(t *testing.T) {
	q := newRetryQueue(3)
	t0 := time.Unix(1000, 0)
	key := func(i int) retryKey { return retryKey{refN(i), "n1"} }
	q.add(key(1), 0, t0.Add(5*time.Second))
	q.add(key(2), 0, t0.Add(1*time.Second))
	q.add(key(3), 0, t0.Add(3*time.Second))
	q.add(key(2), 0, t0.Add(9*time.Second)) // already queued: keeps the earlier due
	if n, d := q.stats(); n != 3 || d != 0 {
		t.Fatalf("len %d dropped %d, want 3, 0", n, d)
	}
	q.add(key(4), 0, t0) // full: drops key 1, the oldest
	if n, d := q.stats(); n != 3 || d != 1 {
		t.Fatalf("len %d dropped %d, want 3, 1", n, d)
	}
	if e, wait := q.pop(t0.Add(-time.Second)); e != nil || wait != time.Second {
		t.Fatalf("pop before due = %v, %v", e, wait)
	}
	var got []retryKey
	for {
		e, _ := q.pop(t0.Add(time.Hour))
		if e == nil {
			break
		}
		got = append(got, e.key)
	}
	if want := []retryKey{key(4), key(2), key(3)}; !slices.Equal(got, want) {
		t.Errorf("pop order %v, want %v", got, want)
	}
	if e, wait := q.pop(t0); e != nil || wait != 0 {
		t.Errorf("pop of empty queue = %v, %v", e, wait)
	}
}

func TestByteBudget(t *testing.T) {
	b := newByteBudget(10)
	for _, step := range []struct {
		acquire, release int64
		ok               bool
		held             int64
	}{
		{acquire: 4, ok: true, held: 4},
		{acquire: 6, ok: true, held: 10},
		{acquire: 1, ok: false, held: 10},
		{release: 4, held: 6},
		{acquire: 5, ok: false, held: 6},
		{acquire: 4, ok: true, held: 10},
		{release: 10, held: 0},
		{acquire: 11, ok: false, held: 0},
	} {
		if step.acquire > 0 {
			if got := b.tryAcquire(step.acquire); got != step.ok {
				t.Errorf("tryAcquire(%d) = %v, want %v", step.acquire, got, step.ok)
			}
		} else {
			b.release(step.release)
		}
		if got := b.inUse(); got != step.held {
			t.Fatalf("after %+v: %d held, want %d", step, got, step.held)
		}
	}
}
