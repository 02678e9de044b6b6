package workload

import (
	"cmp"
	"errors"
	"fmt"
	"path"
	"time"

	"github.com/coffer-dev/coffer/jepsen/check"
)

// Sentinel errors.
var (
	// ErrInvalidConfig: a Config failed Validate. Returned wrapped.
	ErrInvalidConfig = errors.New("invalid workload config")
	// ErrUnknownWorkload: New was given a name that is none of Names.
	ErrUnknownWorkload = errors.New("unknown workload")
)

// ProcessStride is the most process numbers one workload uses: a workload
// made with FirstProcess f uses process numbers in [f, f+ProcessStride), so
// a runner that gives its i-th workload FirstProcess i*ProcessStride never
// sees two workloads share a process.
const ProcessStride = 100

// Defaults of Config.
const (
	DefaultRoot         = "/j"
	DefaultOpTimeout    = 10 * time.Second
	DefaultCheckTimeout = 60 * time.Second
	DefaultKeys         = 3
	// DefaultOpsPerKey keeps every register key under check.Register's
	// limit of check.DefaultMaxOpsPerKey, with room for the final reads.
	DefaultOpsPerKey     = 150
	DefaultMaxUploadSize = 3 << 20
	DefaultFeedWait      = 2 * time.Second
	DefaultSyncFiles     = 10
	DefaultSyncTimeout   = 30 * time.Second
)

// Per-workload defaults of Processes and Pace. Together they make about
// 30 client operations per second (register 20, set 5, upload 2, sync 2
// edits and their syncs, feed long-polls): enough to find bugs, little
// enough that a 2-core machine runs 3 cofferd nodes beside them. The
// register workload's 9 processes drive its 3 keys 3 each.
var defaults = map[string]struct {
	processes int
	pace      time.Duration
}{
	"register": {9, 450 * time.Millisecond},
	"set":      {2, 400 * time.Millisecond},
	"upload":   {2, time.Second},
	"feed":     {2, 0},
	"sync":     {2, time.Second},
}

// Config configures a workload. The zero value of each field is its
// default; New applies the defaults of the workload it makes.
type Config struct {
	// Root is the remote folder all workloads work under, a clean absolute
	// path (default /j); each workload uses Root/<name>.
	Root string
	// FirstProcess is the first of the process numbers the workload uses
	// (at most ProcessStride of them). The runner sets it so that no two
	// workloads share a process.
	FirstProcess int
	// Processes is how many worker processes the workload runs (0: its
	// default: register 9, set 2, upload 2, feed 2 readers). The sync
	// workload always runs two devices and ignores it. The register
	// workload spreads its processes over Keys keys and needs at least one
	// per key.
	Processes int
	// Pace is the mean pause between two operations of one process, drawn
	// uniformly from [Pace/2, 3*Pace/2) (0: the workload's default:
	// register 450 ms, set 400 ms, upload 1 s, sync 1 s; the feed readers
	// long-poll without a pause).
	Pace time.Duration
	// OpTimeout bounds each operation (default 10 s); an operation that
	// runs out of it is recorded as unknown (a mutation) or failed (a
	// read).
	OpTimeout time.Duration
	// CheckTimeout bounds the end-state reads of Check, retried with
	// backoff while the healed cluster settles, and the sync workload's
	// wait for both devices to converge (default 60 s). The upload
	// workload adds a second per 10 MiB it uploaded, to download it all.
	CheckTimeout time.Duration

	// Keys is how many register keys live at once (default 3).
	Keys int
	// OpsPerKey is how many operations a register key takes before it is
	// retired and a fresh key takes its place (default 150; at most
	// check.DefaultMaxOpsPerKey minus room for Check's final reads).
	OpsPerKey int
	// MaxUploadSize is the largest upload in bytes (default 3 MiB, so that
	// some files have several content-defined blocks).
	MaxUploadSize int64
	// FeedWait is the change-feed long-poll wait (default 2 s).
	FeedWait time.Duration
	// SyncFiles is how many files the sync devices edit (default 10);
	// they sometimes create others.
	SyncFiles int
	// SyncTimeout bounds one Sync of a device (default 30 s).
	SyncTimeout time.Duration
}

// finalReadRoom is the number of ops per register key left for Check's
// final reads of the key (one per attempt).
const finalReadRoom = 20

// withDefaults returns c with its zero fields set for workload name.
func (c Config) withDefaults(name string) Config {
	d := defaults[name]
	c.Root = cmp.Or(c.Root, DefaultRoot)
	c.Processes = cmp.Or(c.Processes, d.processes)
	if name == "sync" {
		c.Processes = 2
	}
	c.Pace = cmp.Or(c.Pace, d.pace)
	c.OpTimeout = cmp.Or(c.OpTimeout, DefaultOpTimeout)
	c.CheckTimeout = cmp.Or(c.CheckTimeout, DefaultCheckTimeout)
	c.Keys = cmp.Or(c.Keys, DefaultKeys)
	c.OpsPerKey = cmp.Or(c.OpsPerKey, DefaultOpsPerKey)
	c.MaxUploadSize = cmp.Or(c.MaxUploadSize, DefaultMaxUploadSize)
	c.FeedWait = cmp.Or(c.FeedWait, DefaultFeedWait)
	c.SyncFiles = cmp.Or(c.SyncFiles, DefaultSyncFiles)
	c.SyncTimeout = cmp.Or(c.SyncTimeout, DefaultSyncTimeout)
	return c
}

// Validate reports every problem with c at once; the error wraps
// ErrInvalidConfig. Zero fields are valid (they take defaults); New
// validates the configuration with the defaults of its workload applied,
// which also checks that the register workload has a process per key.
func (c Config) Validate() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if c.Root != "" && (!path.IsAbs(c.Root) || path.Clean(c.Root) != c.Root || c.Root == "/") {
		bad("Root %q: must be a clean absolute path below /", c.Root)
	}
	if c.FirstProcess < 0 {
		bad("FirstProcess %d: must not be negative", c.FirstProcess)
	}
	// One process number is kept for Check's final reads.
	if c.Processes < 0 || c.Processes >= ProcessStride {
		bad("Processes %d: must be 0 to %d", c.Processes, ProcessStride-1)
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{{"Pace", c.Pace}, {"OpTimeout", c.OpTimeout}, {"CheckTimeout", c.CheckTimeout}, {"FeedWait", c.FeedWait}, {"SyncTimeout", c.SyncTimeout}} {
		if d.v < 0 {
			bad("%s %v: must not be negative", d.name, d.v)
		}
	}
	if c.Keys < 0 {
		bad("Keys %d: must not be negative", c.Keys)
	}
	if limit := check.DefaultMaxOpsPerKey - finalReadRoom; c.OpsPerKey < 0 || c.OpsPerKey > limit {
		bad("OpsPerKey %d: must be 0 to %d (the register checker's limit is %d ops per key)", c.OpsPerKey, limit, check.DefaultMaxOpsPerKey)
	}
	if c.MaxUploadSize < 0 || c.MaxUploadSize > 1<<30 {
		bad("MaxUploadSize %d: must be 0 to 1 GiB", c.MaxUploadSize)
	}
	if c.SyncFiles < 0 {
		bad("SyncFiles %d: must not be negative", c.SyncFiles)
	}
	if len(errs) > 0 {
		return fmt.Errorf("%w: %w", ErrInvalidConfig, errors.Join(errs...))
	}
	return nil
}

// validateFor validates c with the defaults of workload name applied.
func (c Config) validateFor(name string) (Config, error) {
	if err := c.Validate(); err != nil {
		return c, err
	}
	c = c.withDefaults(name)
	if name == "register" && c.Processes < c.Keys {
		return c, fmt.Errorf("%w: register: %d processes for %d keys: need at least one per key", ErrInvalidConfig, c.Processes, c.Keys)
	}
	return c, nil
}
