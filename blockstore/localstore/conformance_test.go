package localstore

import (
	"testing"

	"github.com/coffer-dev/coffer/blockstore"
	"github.com/coffer-dev/coffer/blockstore/blocktest"
)

// TestConformance runs the Store contract's suite against the real store:
// corruption flips a byte of the segment file on disk, and Reopen closes
// the store and opens its directory again.
func TestConformance(t *testing.T) {
	blocktest.Run(t, func(t *testing.T, opts blocktest.Options) blocktest.Harness {
		cfg := Config{
			Dir:          t.TempDir(),
			MaxBlockSize: opts.MaxBlockSize,
			SegmentSize:  4 << 20,
			MinFreeBytes: -1,
			Now:          opts.Now,
			OnCorrupt:    opts.OnCorrupt,
		}
		if cfg.MaxBlockSize == 0 || cfg.MaxBlockSize > 1<<20 {
			cfg.SegmentSize = 0
		}
		cur, err := Open(cfg)
		if err != nil {
			t.Fatal(err)
		}
		return blocktest.Harness{
			Store: cur,
			Corrupt: func(t *testing.T, ref blockstore.Ref) {
				loc, err := cur.Locate(ctx, ref)
				if err != nil {
					t.Fatalf("Locate: %v", err)
				}
				flip(t, loc.Path, loc.Offset+loc.Length/2)
			},
			Reopen: func(t *testing.T) blockstore.Store {
				if err := cur.Close(); err != nil {
					t.Fatalf("Close: %v", err)
				}
				if cur, err = Open(cfg); err != nil {
					t.Fatalf("reopen: %v", err)
				}
				t.Cleanup(func() { _ = cur.Close() })
				return cur
			},
		}
	})
}
