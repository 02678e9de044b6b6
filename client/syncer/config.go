package syncer

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path"
	"path/filepath"
	"time"

	"github.com/coffer-dev/coffer/client"
	"github.com/coffer-dev/coffer/internal/wire"
)

// API is what the engine needs of the server; *client.Client has it.
type API interface {
	Whoami(ctx context.Context) (*client.WhoAmI, error)
	Stat(ctx context.Context, path string, deleted bool) (*client.Entry, error)
	ListAll(ctx context.Context, path string, opts client.ListOptions) ([]client.Entry, error)
	Changes(ctx context.Context, cursor uint64, limit int, wait time.Duration) (*client.ChangePage, error)
	MissingBlocks(ctx context.Context, refs []string) ([]string, error)
	PutBlock(ctx context.Context, ref string, data []byte) (*wire.BlockReceipt, error)
	PutBlocks(ctx context.Context, blocks []client.BlockData) ([]wire.BlockReceipt, error)
	ReadBlocks(ctx context.Context, refs []string, fn func(ref string, data []byte) error) error
	Commit(ctx context.Context, key string, ops []wire.Op, receipts []string) (*client.CommitResult, error)
	Download(ctx context.Context, path string, rev uint64, w io.Writer) (*client.FileInfo, error)
	ReadRange(ctx context.Context, path string, rev uint64, off, n int64, w io.Writer) error
}

// Defaults.
const (
	DefaultParallel       = 4
	DefaultRescanInterval = time.Minute
	DefaultDebounce       = 100 * time.Millisecond
	DefaultMaxRounds      = 10
	// StateDirName is the default state folder inside the synced folder
	// (the ignore rules always skip it).
	StateDirName = ".coffer"
)

// Sentinel errors.
var (
	// ErrInvalidConfig: a Config failed validation.
	ErrInvalidConfig = errors.New("invalid sync config")
	// ErrRootMismatch: the state database belongs to another remote
	// folder or user than the one asked for.
	ErrRootMismatch = errors.New("the folder is synced with another remote folder")
)

// Config configures an Engine.
type Config struct {
	// Dir is the local folder (required unless FS is set).
	Dir string
	// FS is the local folder's file system (default OSFS(Dir)).
	FS FS
	// StateDir holds the state database (default Dir/.coffer).
	StateDir string
	// Remote is the remote folder, an absolute path (default: the one the
	// folder synced with before, else "/").
	Remote string
	// User names the account the folder syncs with; a state database of
	// another user is refused. Empty skips the check.
	User string
	// API talks to the server (required).
	API API
	// Host names this device in conflicted copies (default os.Hostname).
	Host string
	// Parallel is how many blocks are uploaded at once (default 4).
	Parallel int
	// RescanInterval is how often Watch scans the whole folder even
	// without file-system events (default 1 min).
	RescanInterval time.Duration
	// Debounce is how long Watch waits after a local event for more
	// (default 100 ms).
	Debounce time.Duration
	// MaxRounds bounds the plan-and-run rounds of one Sync (default 10).
	MaxRounds int
	// CaseInsensitive says the local file system folds case. Nil detects
	// it (OS file systems only; false for others).
	CaseInsensitive *bool
	// Logger receives warnings (skipped symlinks, files that kept
	// changing) and errors in Watch (default: discard).
	Logger *slog.Logger
	// Now is the clock for conflicted-copy names (default time.Now).
	Now func() time.Time
}

// Validate reports every problem at once; the error wraps
// ErrInvalidConfig.
func (c Config) Validate() error {
	var errs []error
	if c.Dir == "" && c.FS == nil {
		errs = append(errs, errors.New("no folder (Dir or FS)"))
	}
	if c.FS == nil && c.Dir != "" {
		if fi, err := os.Stat(c.Dir); err != nil {
			errs = append(errs, fmt.Errorf("folder %s: %w", c.Dir, err))
		} else if !fi.IsDir() {
			errs = append(errs, fmt.Errorf("%s is not a folder", c.Dir))
		}
	}
	if c.FS != nil && c.StateDir == "" {
		errs = append(errs, errors.New("StateDir is required with FS"))
	}
	if c.Remote != "" && (!path.IsAbs(c.Remote) || path.Clean(c.Remote) != c.Remote) {
		errs = append(errs, fmt.Errorf("remote folder %q: must be a clean absolute path", c.Remote))
	}
	if c.API == nil {
		errs = append(errs, errors.New("no API"))
	}
	if c.Parallel < 0 || c.RescanInterval < 0 || c.Debounce < 0 || c.MaxRounds < 0 {
		errs = append(errs, errors.New("Parallel, RescanInterval, Debounce and MaxRounds must not be negative"))
	}
	if len(errs) > 0 {
		return fmt.Errorf("%w: %w", ErrInvalidConfig, errors.Join(errs...))
	}
	return nil
}

func (c Config) withDefaults() Config {
	if c.FS == nil {
		abs, err := filepath.Abs(c.Dir)
		if err == nil {
			c.Dir = abs
		}
		c.FS = OSFS(c.Dir)
	}
	if c.StateDir == "" {
		c.StateDir = filepath.Join(c.Dir, StateDirName)
	}
	if c.Host == "" {
		c.Host, _ = os.Hostname()
		if c.Host == "" {
			c.Host = "unknown"
		}
	}
	if c.Parallel == 0 {
		c.Parallel = DefaultParallel
	}
	if c.RescanInterval == 0 {
		c.RescanInterval = DefaultRescanInterval
	}
	if c.Debounce == 0 {
		c.Debounce = DefaultDebounce
	}
	if c.MaxRounds == 0 {
		c.MaxRounds = DefaultMaxRounds
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return c
}
