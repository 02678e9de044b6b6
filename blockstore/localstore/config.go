package localstore

import (
	"fmt"
	"log/slog"
	"time"

	"github.com/coffer-dev/coffer/blockstore"
)

// Defaults.
const (
	DefaultSegmentSize         = 256 << 20
	DefaultMinFreeBytes        = 64 << 20
	DefaultCompactGarbageRatio = 0.5
	DefaultCompactRate         = 64 << 20
	DefaultIndexCacheBytes     = 32 << 20
)

// Config configures a Store. Dir is required; every other field has a
// default.
type Config struct {
	// Dir holds the store: Dir/index (Pebble) and Dir/segments/*.seg.
	Dir string
	// MaxBlockSize is the largest block accepted (default
	// blockstore.DefaultMaxBlockSize).
	MaxBlockSize int
	// SegmentSize is the size at which a segment file is sealed and a new
	// one started (default 256 MiB; at least one maximum-size record).
	SegmentSize int64
	// MinFreeBytes is the free space kept on the file system: a Put that
	// would leave less fails with ErrDiskFull before writing anything, which
	// also keeps room for the index's own writes. Default 64 MiB; -1 turns
	// the reserve off (ENOSPC is still reported as ErrDiskFull).
	MinFreeBytes int64
	// CompactGarbageRatio is the share of dead bytes at which a sealed
	// segment is compacted: its live blocks are copied to the active segment
	// and the file is removed. Default 0.5; in (0, 1].
	CompactGarbageRatio float64
	// CompactRate limits compaction's copying, in bytes per second
	// (default 64 MiB/s; -1 = unlimited), so it does not starve user
	// traffic.
	CompactRate int64
	// DisableAutoCompact stops the background compactor; Compact still
	// works when called.
	DisableAutoCompact bool
	// IndexCacheBytes is the Pebble block cache of the index (default 32
	// MiB).
	IndexCacheBytes int64
	// Now is the clock for StoredAt (default time.Now).
	Now func() time.Time
	// OnCorrupt, if set, is called with the ref of a copy that failed
	// verification on read, after the copy was dropped from the index and
	// with no store locks held, so the owner can repair it. It must not
	// block for long (enqueue the repair).
	OnCorrupt func(blockstore.Ref)
	// Logger receives the store's logs (default: discarded).
	Logger *slog.Logger
}

func (c Config) withDefaults() (Config, error) {
	if c.Dir == "" {
		return c, fmt.Errorf("%w: localstore: Dir is required", blockstore.ErrInvalidConfig)
	}
	if c.MaxBlockSize < 0 {
		return c, fmt.Errorf("%w: localstore: MaxBlockSize %d < 0", blockstore.ErrInvalidConfig, c.MaxBlockSize)
	}
	if c.MaxBlockSize == 0 {
		c.MaxBlockSize = blockstore.DefaultMaxBlockSize
	}
	if c.SegmentSize < 0 {
		return c, fmt.Errorf("%w: localstore: SegmentSize %d < 0", blockstore.ErrInvalidConfig, c.SegmentSize)
	}
	if c.SegmentSize == 0 {
		c.SegmentSize = DefaultSegmentSize
	}
	if c.SegmentSize < int64(c.MaxBlockSize)+headerSize {
		return c, fmt.Errorf("%w: localstore: SegmentSize %d smaller than one %d-byte block record", blockstore.ErrInvalidConfig, c.SegmentSize, c.MaxBlockSize)
	}
	if c.SegmentSize > maxSegmentSize {
		return c, fmt.Errorf("%w: localstore: SegmentSize %d > %d", blockstore.ErrInvalidConfig, c.SegmentSize, int64(maxSegmentSize))
	}
	switch {
	case c.MinFreeBytes == 0:
		c.MinFreeBytes = DefaultMinFreeBytes
	case c.MinFreeBytes == -1:
		c.MinFreeBytes = 0
	case c.MinFreeBytes < 0:
		return c, fmt.Errorf("%w: localstore: MinFreeBytes %d (use -1 to turn the reserve off)", blockstore.ErrInvalidConfig, c.MinFreeBytes)
	}
	if c.CompactGarbageRatio == 0 {
		c.CompactGarbageRatio = DefaultCompactGarbageRatio
	}
	if !(c.CompactGarbageRatio > 0 && c.CompactGarbageRatio <= 1) {
		return c, fmt.Errorf("%w: localstore: CompactGarbageRatio %v not in (0, 1]", blockstore.ErrInvalidConfig, c.CompactGarbageRatio)
	}
	switch {
	case c.CompactRate == 0:
		c.CompactRate = DefaultCompactRate
	case c.CompactRate < -1:
		return c, fmt.Errorf("%w: localstore: CompactRate %d (use -1 for unlimited)", blockstore.ErrInvalidConfig, c.CompactRate)
	}
	if c.IndexCacheBytes < 0 {
		return c, fmt.Errorf("%w: localstore: IndexCacheBytes %d < 0", blockstore.ErrInvalidConfig, c.IndexCacheBytes)
	}
	if c.IndexCacheBytes == 0 {
		c.IndexCacheBytes = DefaultIndexCacheBytes
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c, nil
}
