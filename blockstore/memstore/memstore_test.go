package memstore_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/coffer-dev/coffer/blockstore"
	"github.com/coffer-dev/coffer/blockstore/blocktest"
	"github.com/coffer-dev/coffer/blockstore/memstore"
)

func TestConformance(t *testing.T) {
	blocktest.Run(t, func(t *testing.T, opts blocktest.Options) blocktest.Harness {
		s, err := memstore.New(memstore.Config{MaxBlockSize: opts.MaxBlockSize, Now: opts.Now, OnCorrupt: opts.OnCorrupt})
		if err != nil {
			t.Fatalf("New: %v", err)
		}
		return blocktest.Harness{
			Store: s,
			Corrupt: func(t *testing.T, r blockstore.Ref) {
				if !s.Corrupt(r) {
					t.Fatalf("Corrupt(%s): block not stored", r.Short())
				}
			},
		}
	})
}

func TestConfig(t *testing.T) {
	clock := blocktest.NewClock(time.Date(2025, 1, 2, 3, 4, 5, 6, time.UTC))
	for _, tc := range []struct {
		name    string
		cfg     memstore.Config
		wantErr bool
		wantMax int  // largest block accepted
		wantNow bool // StoredAt comes from clock (else from time.Now)
	}{
		{name: "zero value", cfg: memstore.Config{}, wantMax: blockstore.DefaultMaxBlockSize},
		{name: "max block size", cfg: memstore.Config{MaxBlockSize: 1000}, wantMax: 1000},
		{name: "one-byte blocks", cfg: memstore.Config{MaxBlockSize: 1}, wantMax: 1},
		{name: "clock", cfg: memstore.Config{MaxBlockSize: 10, Now: clock.Now}, wantMax: 10, wantNow: true},
		{name: "negative max block size", cfg: memstore.Config{MaxBlockSize: -1}, wantErr: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := memstore.New(tc.cfg)
			if tc.wantErr {
				if !errors.Is(err, blockstore.ErrInvalidConfig) || s != nil {
					t.Fatalf("New = %v, %v; want nil, ErrInvalidConfig", s, err)
				}
				return
			}
			if err != nil {
				t.Fatalf("New: %v", err)
			}
			defer s.Close()
			ctx := context.Background()
			fits := make([]byte, tc.wantMax)
			if err := s.Put(ctx, blockstore.Sum(fits), fits); err != nil {
				t.Fatalf("Put(%d bytes): %v", len(fits), err)
			}
			tooBig := make([]byte, tc.wantMax+1)
			if err := s.Put(ctx, blockstore.Sum(tooBig), tooBig); !errors.Is(err, blockstore.ErrTooLarge) {
				t.Fatalf("Put(%d bytes) = %v, want ErrTooLarge", len(tooBig), err)
			}
			after := time.Now()
			var at time.Time
			if err := s.Enumerate(ctx, blockstore.Ref{}, func(bi blockstore.BlockInfo) error { at = bi.StoredAt; return nil }); err != nil {
				t.Fatal(err)
			}
			if tc.wantNow {
				if !at.Equal(clock.Now()) {
					t.Fatalf("StoredAt = %v, want the configured clock's %v", at, clock.Now())
				}
			} else if at.After(after) || after.Sub(at) > time.Hour {
				t.Fatalf("StoredAt = %v with the default clock; time.Now is %v", at, after)
			}
		})
	}
}

// TestCorruptEmptyBlock: corrupting the empty block (which has no byte to
// flip) is detected, and dropping it leaves the totals right.
func TestCorruptEmptyBlock(t *testing.T) {
	var reported []blockstore.Ref
	s, err := memstore.New(memstore.Config{OnCorrupt: func(r blockstore.Ref) { reported = append(reported, r) }})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	empty := blockstore.Sum(nil)
	if err := s.Put(ctx, empty, nil); err != nil {
		t.Fatal(err)
	}
	if s.Corrupt(blockstore.Sum([]byte("x"))) {
		t.Fatal("Corrupt of a block that is not stored reported true")
	}
	if !s.Corrupt(empty) {
		t.Fatal("Corrupt(empty block) = false")
	}
	if data, err := s.Get(ctx, empty); !errors.Is(err, blockstore.ErrCorrupt) || data != nil {
		t.Fatalf("Get(corrupted empty block) = %q, %v; want ErrCorrupt", data, err)
	}
	if len(reported) != 1 || reported[0] != empty {
		t.Fatalf("OnCorrupt calls: %v, want one for the empty block", reported)
	}
	st, err := s.Stats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.Blocks != 0 || st.Bytes != 0 || st.DiskBytes != 0 || st.Corrupt != 1 {
		t.Fatalf("Stats after dropping the corrupt empty block: Blocks %d, Bytes %d, DiskBytes %d, Corrupt %d; want 0, 0, 0, 1",
			st.Blocks, st.Bytes, st.DiskBytes, st.Corrupt)
	}
}
