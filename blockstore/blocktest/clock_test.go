package blocktest

import (
	"sync"
	"testing"
	"time"
)

func TestClock(t *testing.T) {
	start := time.Date(2030, 5, 6, 7, 8, 9, 10, time.UTC)
	c := NewClock(start)
	if got := c.Now(); !got.Equal(start) {
		t.Fatalf("Now = %v, want %v", got, start)
	}
	if got := c.Now(); !got.Equal(c.Now()) {
		t.Fatal("the clock moved by itself")
	}
	for _, tc := range []struct {
		d    time.Duration
		want time.Time
	}{
		{time.Nanosecond, start.Add(time.Nanosecond)},
		{time.Hour, start.Add(time.Hour + time.Nanosecond)},
		{-time.Hour, start.Add(time.Nanosecond)},
		{0, start.Add(time.Nanosecond)},
	} {
		c.Advance(tc.d)
		if got := c.Now(); !got.Equal(tc.want) {
			t.Fatalf("after Advance(%v): Now = %v, want %v", tc.d, got, tc.want)
		}
	}
}

func TestClockStripsMonotonic(t *testing.T) {
	wall := time.Now()
	c := NewClock(wall)
	if got := c.Now(); got != wall.Round(0) {
		t.Fatalf("Now = %#v, want the wall clock reading of %v without a monotonic reading", got, wall)
	}
}

func TestClockConcurrent(t *testing.T) {
	start := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	c := NewClock(start)
	const goroutines, steps = 8, 500
	var wg sync.WaitGroup
	for range goroutines {
		wg.Go(func() {
			prev := c.Now()
			for range steps {
				c.Advance(time.Millisecond)
				now := c.Now()
				if now.Before(prev) {
					t.Errorf("Now went back from %v to %v", prev, now)
					return
				}
				prev = now
			}
		})
	}
	wg.Wait()
	if got, want := c.Now(), start.Add(goroutines*steps*time.Millisecond); !got.Equal(want) {
		t.Fatalf("after %d concurrent Advances: Now = %v, want %v", goroutines*steps, got, want)
	}
}
