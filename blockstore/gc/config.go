package gc

import (
	"fmt"
	"log/slog"
	"math"
	"strings"
	"time"

	"github.com/coffer-dev/coffer/blockstore"
)

// DefaultGrace is the grace period unless configured otherwise: a block
// put or refreshed less than a day before the cutoff is never deleted.
const DefaultGrace = 24 * time.Hour

// MinGrace is the shortest grace period Validate accepts unless
// AllowShortGrace is set, so that a typo (Grace: 1, meaning one
// nanosecond) cannot switch off the protection of uploads in flight.
const MinGrace = time.Minute

// Config configures a run. The zero value is usable: a 24 h grace period,
// real deletes, no rate limit, no delete limit.
type Config struct {
	// Grace is how long a block is protected after it was put or last
	// re-put, whatever the mark says (default DefaultGrace). It must be
	// >= 0 and at least MinGrace unless AllowShortGrace is set. Zero means
	// the default; a test that wants (almost) no grace sets a tiny
	// positive value and AllowShortGrace. See the package documentation
	// for how long it must be.
	Grace time.Duration
	// AllowShortGrace allows 0 < Grace < MinGrace (tests only).
	AllowShortGrace bool
	// DryRun counts what would be deleted (Report.WouldDelete,
	// Report.BytesWouldFree) and deletes nothing.
	DryRun bool
	// Now is the clock (default time.Now). The cutoff is Now() - Grace and
	// is compared with the store's StoredAt, so Now should be the store's
	// own clock: any offset between the two shortens or lengthens the
	// effective grace period by that much.
	Now func() time.Time
	// Logger receives the run's summary and per-block delete errors (nil:
	// discard).
	Logger *slog.Logger
	// DeleteRate limits deletes per second (0: unlimited). It must be
	// finite and >= 0. A dry run is not limited.
	DeleteRate float64
	// MaxDeletes stops the run once this many blocks were deleted (or, in
	// a dry run, counted as would-delete) and sets Report.Truncated (0:
	// unlimited). It must be >= 0.
	MaxDeletes int
}

// Validate reports every problem of c at once, in one error wrapping
// blockstore.ErrInvalidConfig, or nil if c is valid. Zero fields are valid
// (they take their defaults).
func (c Config) Validate() error {
	var problems []string
	switch {
	case c.Grace < 0:
		problems = append(problems, fmt.Sprintf("Grace %v < 0", c.Grace))
	case c.Grace > 0 && c.Grace < MinGrace && !c.AllowShortGrace:
		problems = append(problems, fmt.Sprintf("Grace %v < %v (set AllowShortGrace to allow it)", c.Grace, MinGrace))
	}
	if math.IsNaN(c.DeleteRate) || math.IsInf(c.DeleteRate, 0) || c.DeleteRate < 0 {
		problems = append(problems, fmt.Sprintf("DeleteRate %v: want a finite number >= 0 (0 = unlimited)", c.DeleteRate))
	}
	if c.MaxDeletes < 0 {
		problems = append(problems, fmt.Sprintf("MaxDeletes %d < 0 (0 = unlimited)", c.MaxDeletes))
	}
	if len(problems) > 0 {
		return fmt.Errorf("%w: gc: %s", blockstore.ErrInvalidConfig, strings.Join(problems, "; "))
	}
	return nil
}

// withDefaults validates c and fills in its defaults.
func (c Config) withDefaults() (Config, error) {
	if err := c.Validate(); err != nil {
		return c, err
	}
	if c.Grace == 0 {
		c.Grace = DefaultGrace
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	c.Logger = c.Logger.With("component", "gc")
	return c, nil
}
