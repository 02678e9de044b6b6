package auth

import (
	"container/list"
	"errors"
	"fmt"
	"math"
	"net"
	"net/netip"
	"strings"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// Limiter defaults: a user name may be tried 5 times a minute after a burst
// of 10, a client address 30 times a minute after a burst of 60.
const (
	DefaultPerName   = rate.Limit(5.0 / 60)
	DefaultNameBurst = 10
	DefaultPerAddr   = rate.Limit(30.0 / 60)
	DefaultAddrBurst = 60
	DefaultMaxKeys   = 100_000
)

// LimiterConfig configures a Limiter. A zero field takes its default.
type LimiterConfig struct {
	// PerName is the sustained rate of login attempts per user name
	// (default DefaultPerName); NameBurst how many may come at once
	// (default DefaultNameBurst). rate.Inf switches the limit off.
	PerName   rate.Limit
	NameBurst int
	// PerAddr and AddrBurst are the same per client address (default
	// DefaultPerAddr, DefaultAddrBurst). IPv6 addresses are limited per
	// /64, the block one host or site usually owns.
	PerAddr   rate.Limit
	AddrBurst int
	// MaxKeys bounds how many names and addresses are tracked (default
	// DefaultMaxKeys); past it the least recently used are dropped. An
	// attempt touches two keys, so it must be at least 2.
	MaxKeys int
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// Validate reports every problem of c at once, in one error wrapping
// ErrInvalidConfig, or nil if c is valid.
func (c LimiterConfig) Validate() error {
	var errs []error
	check := func(name string, l rate.Limit, burstName string, burst int) {
		if math.IsNaN(float64(l)) || l < 0 {
			errs = append(errs, fmt.Errorf("%s %v: want > 0 (0 = default, rate.Inf = unlimited)", name, l))
		}
		if burst < 0 {
			errs = append(errs, fmt.Errorf("%s %d < 0", burstName, burst))
		}
	}
	check("PerName", c.PerName, "NameBurst", c.NameBurst)
	check("PerAddr", c.PerAddr, "AddrBurst", c.AddrBurst)
	if c.MaxKeys < 0 || c.MaxKeys == 1 {
		errs = append(errs, fmt.Errorf("MaxKeys %d: want >= 2 (0 = default)", c.MaxKeys))
	}
	if len(errs) > 0 {
		return fmt.Errorf("%w: limiter: %w", ErrInvalidConfig, errors.Join(errs...))
	}
	return nil
}

// Limiter limits login attempts per user name and per client address with
// token buckets. It is safe for concurrent use.
//
// Memory is bounded by MaxKeys: past it, the least recently used names and
// addresses are dropped. A bucket that has refilled completely behaves
// exactly like a fresh one, so dropping an idle key loses nothing. A key
// dropped before it refilled starts over with a full burst; that can only
// happen when more than MaxKeys keys were used within one refill period
// (NameBurst/PerName, 2 minutes by default), so MaxKeys should be well above
// the number of distinct names and addresses expected in that time.
type Limiter struct {
	perName, perAddr     rate.Limit
	nameBurst, addrBurst int
	max                  int
	now                  func() time.Time

	mu    sync.Mutex
	keys  map[string]*list.Element // values are *bucket
	order *list.List               // least recently used at the front
}

type bucket struct {
	key string
	lim *rate.Limiter
}

// NewLimiter returns a Limiter for cfg, or an error wrapping
// ErrInvalidConfig.
func NewLimiter(cfg LimiterConfig) (*Limiter, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	l := &Limiter{
		perName: cfg.PerName, nameBurst: cfg.NameBurst,
		perAddr: cfg.PerAddr, addrBurst: cfg.AddrBurst,
		max: cfg.MaxKeys, now: cfg.Now,
		keys: make(map[string]*list.Element), order: list.New(),
	}
	if l.perName == 0 {
		l.perName = DefaultPerName
	}
	if l.nameBurst == 0 {
		l.nameBurst = DefaultNameBurst
	}
	if l.perAddr == 0 {
		l.perAddr = DefaultPerAddr
	}
	if l.addrBurst == 0 {
		l.addrBurst = DefaultAddrBurst
	}
	if l.max == 0 {
		l.max = DefaultMaxKeys
	}
	if l.now == nil {
		l.now = time.Now
	}
	return l, nil
}

// Allow records a login attempt for the user name (compared
// case-insensitively) from the client address addr (an IP, with or without
// a port) and reports whether it may go ahead. Both the name's and the
// address's bucket must allow it; a refused attempt takes nothing from
// either. If refused, retryAfter is how long until both would allow one
// attempt (rounded up to a millisecond), assuming no other attempts.
func (l *Limiter) Allow(name, addr string) (ok bool, retryAfter time.Duration) {
	nameKey := "n:" + strings.ToLower(name)
	addrKey := "a:" + addrKeyOf(addr)

	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	n := l.bucketLocked(nameKey, l.perName, l.nameBurst)
	a := l.bucketLocked(addrKey, l.perAddr, l.addrBurst)
	wait := max(waitFor(n, now), waitFor(a, now))
	if wait > 0 {
		return false, wait
	}
	n.AllowN(now, 1)
	a.AllowN(now, 1)
	return true, 0
}

// Len returns the number of tracked names and addresses.
func (l *Limiter) Len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.keys)
}

// bucketLocked returns key's bucket, creating it full if new, marking it
// most recently used and dropping least recently used keys past MaxKeys.
func (l *Limiter) bucketLocked(key string, r rate.Limit, burst int) *rate.Limiter {
	if el, ok := l.keys[key]; ok {
		l.order.MoveToBack(el)
		return el.Value.(*bucket).lim
	}
	for len(l.keys) >= l.max {
		el := l.order.Front()
		delete(l.keys, l.order.Remove(el).(*bucket).key)
	}
	b := &bucket{key: key, lim: rate.NewLimiter(r, burst)}
	l.keys[key] = l.order.PushBack(b)
	return b.lim
}

// waitFor returns how long until lim holds one token (0: it does now),
// in whole milliseconds: the shortest such wait after which lim really
// allows an attempt, despite floating-point rounding in the bucket.
func waitFor(lim *rate.Limiter, now time.Time) time.Duration {
	if lim.Limit() == rate.Inf || lim.TokensAt(now) >= 1 {
		return 0
	}
	secs := (1 - lim.TokensAt(now)) / float64(lim.Limit())
	// Round up to a millisecond, forgiving a microsecond of rounding error
	// so that an exact 40 s does not come out as 40.001 s.
	d := max(time.Duration(math.Ceil(secs*1e3-1e-3)), 1) * time.Millisecond
	for i := 0; i < 3 && lim.TokensAt(now.Add(d)) < 1; i++ {
		d += time.Millisecond
	}
	return d
}

// addrKeyOf returns the rate-limit key of a client address: the IP without
// port or zone, IPv4-mapped IPv6 as IPv4, IPv6 reduced to its /64. A string
// that is not an IP is used as given.
func addrKeyOf(addr string) string {
	if host, _, err := net.SplitHostPort(addr); err == nil {
		addr = host
	}
	addr = strings.TrimSuffix(strings.TrimPrefix(addr, "["), "]")
	ip, err := netip.ParseAddr(addr)
	if err != nil {
		return addr
	}
	ip = ip.WithZone("").Unmap()
	if ip.Is6() {
		p, _ := ip.Prefix(64)
		return p.String()
	}
	return ip.String()
}
