package replica

import (
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/coffer-dev/coffer/blockstore"
)

// Defaults of Config.
const (
	DefaultR               = 3
	DefaultW               = 2
	DefaultPutTimeout      = 30 * time.Second
	DefaultGetTimeout      = 10 * time.Second
	DefaultRetryBackoffMin = time.Second
	DefaultRetryBackoffMax = time.Minute
	DefaultRetryQueueSize  = 100_000
	DefaultRepairInterval  = time.Hour
	DefaultRepairDebounce  = time.Second
	DefaultRepairRate      = 32 << 20
	DefaultScrubInterval   = 24 * time.Hour
	DefaultScrubRate       = 16 << 20
	DefaultBackgroundBytes = 256 << 20
)

// Config configures a Replicator. Membership and Dialer are required; a
// zero value elsewhere means the default. Self and Local go together: both
// set on a block node, both empty on a gateway-only node.
type Config struct {
	// Self is this node's ID among the block nodes, "" on a gateway-only
	// node. Placement on Self uses Local directly instead of dialling.
	Self NodeID
	// Local is the node's own store (nil on a gateway-only node). The
	// repairer and scrubber work on it; the Replicator does not close it.
	Local blockstore.Store

	// R is the number of replicas of each block (default 3); W is how many
	// must acknowledge a Put durably before it returns (default 2;
	// 1 <= W <= R).
	R int
	W int

	// Membership is the live set of block nodes (required).
	Membership Membership
	// Dialer reaches the other block nodes (required).
	Dialer Dialer
	// Logger receives the package's logs (default: discarded).
	Logger *slog.Logger
	// Now is the clock of the retry queue and of handoff (default
	// time.Now).
	Now func() time.Time

	// PutTimeout and GetTimeout bound one attempt on one replica (defaults
	// 30s and 10s). GetTimeout also bounds Has calls.
	PutTimeout time.Duration
	GetTimeout time.Duration

	// RetryBackoffMin and RetryBackoffMax bound the exponential backoff of
	// a failed background write in the retry queue (defaults 1s and 1m).
	RetryBackoffMin time.Duration
	RetryBackoffMax time.Duration
	// RetryQueueSize bounds the retry queue (default 100000). When it is
	// full the entry queued longest ago is dropped and counted; the
	// periodic repairer is the backstop.
	RetryQueueSize int

	// RepairInterval is how often the repairer walks the local store
	// (default 1h; negative turns the timer off). RepairDebounce is how long
	// the repairer waits after a membership change for the set to settle
	// (default 1s; negative turns repair-on-change off).
	RepairInterval time.Duration
	RepairDebounce time.Duration
	// RepairRate limits the bytes per second the repairer pushes (default
	// 32 MiB/s; -1 = unlimited).
	RepairRate int64

	// ScrubInterval is how often the scrubber reads every local block
	// (default 24h; negative turns the timer off). ScrubRate limits the
	// bytes per second it reads (default 16 MiB/s; -1 = unlimited).
	ScrubInterval time.Duration
	ScrubRate     int64

	// BackgroundBytes bounds the block data held by writes that are still
	// running after their Put returned, and by read repairs (default
	// 256 MiB). A write or read repair that finds the budget spent does
	// not keep the data: it is cancelled (or not started) and its node
	// goes to the retry queue, which fetches the block again when it
	// retries.
	BackgroundBytes int64
}

// Validate reports every problem of c at once, in one error that wraps
// blockstore.ErrInvalidConfig. Zero values stand for their defaults.
func (c Config) Validate() error {
	_, err := c.withDefaults()
	return err
}

func (c Config) withDefaults() (Config, error) {
	var probs []string
	bad := func(format string, args ...any) { probs = append(probs, fmt.Sprintf(format, args...)) }

	if c.Membership == nil {
		bad("Membership is required")
	}
	if c.Dialer == nil {
		bad("Dialer is required")
	}
	if c.Self == "" && c.Local != nil {
		bad("Local is set but Self is empty")
	}
	if c.Self != "" && c.Local == nil {
		bad("Self %q is set but Local is nil", c.Self)
	}
	if c.R < 0 {
		bad("R %d < 0", c.R)
	}
	if c.R == 0 {
		c.R = DefaultR
	}
	if c.W < 0 {
		bad("W %d < 0", c.W)
	}
	if c.W == 0 {
		c.W = min(DefaultW, c.R)
	}
	if c.W > c.R {
		bad("W %d > R %d", c.W, c.R)
	}
	dur := func(name string, p *time.Duration, def time.Duration, negOK bool) {
		switch {
		case *p == 0:
			*p = def
		case *p < 0 && !negOK:
			bad("%s %v < 0", name, *p)
		}
	}
	dur("PutTimeout", &c.PutTimeout, DefaultPutTimeout, false)
	dur("GetTimeout", &c.GetTimeout, DefaultGetTimeout, false)
	dur("RetryBackoffMin", &c.RetryBackoffMin, DefaultRetryBackoffMin, false)
	dur("RetryBackoffMax", &c.RetryBackoffMax, max(DefaultRetryBackoffMax, c.RetryBackoffMin), false)
	if c.RetryBackoffMin > 0 && c.RetryBackoffMax > 0 && c.RetryBackoffMin > c.RetryBackoffMax {
		bad("RetryBackoffMin %v > RetryBackoffMax %v", c.RetryBackoffMin, c.RetryBackoffMax)
	}
	if c.RetryQueueSize < 0 {
		bad("RetryQueueSize %d < 0", c.RetryQueueSize)
	}
	if c.RetryQueueSize == 0 {
		c.RetryQueueSize = DefaultRetryQueueSize
	}
	dur("RepairInterval", &c.RepairInterval, DefaultRepairInterval, true)
	dur("RepairDebounce", &c.RepairDebounce, DefaultRepairDebounce, true)
	dur("ScrubInterval", &c.ScrubInterval, DefaultScrubInterval, true)
	rateOK := func(name string, p *int64, def int64) {
		switch {
		case *p == 0:
			*p = def
		case *p < -1:
			bad("%s %d (use -1 for unlimited)", name, *p)
		}
	}
	rateOK("RepairRate", &c.RepairRate, DefaultRepairRate)
	rateOK("ScrubRate", &c.ScrubRate, DefaultScrubRate)
	switch {
	case c.BackgroundBytes < 0:
		bad("BackgroundBytes %d < 0", c.BackgroundBytes)
	case c.BackgroundBytes == 0:
		c.BackgroundBytes = DefaultBackgroundBytes
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if len(probs) > 0 {
		return c, fmt.Errorf("%w: replica: %s", blockstore.ErrInvalidConfig, strings.Join(probs, "; "))
	}
	return c, nil
}
