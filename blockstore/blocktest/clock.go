package blocktest

import (
	"sync"
	"time"
)

// Clock is a manual clock, safe for concurrent use: time stands still
// until Advance moves it. Pass its Now method as a store's clock. The zero
// Clock reads the zero time; use NewClock.
type Clock struct {
	mu  sync.Mutex
	now time.Time
}

// NewClock returns a Clock that reads start (without its monotonic
// reading, so that times compare by wall clock alone).
func NewClock(start time.Time) *Clock {
	return &Clock{now: start.Round(0)}
}

// Now returns the clock's current time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// Advance moves the clock forward by d (backward if d is negative).
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}
