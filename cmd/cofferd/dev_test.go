package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/coffer-dev/coffer/blockstore/localstore"
)

// The demo `make run` runs, twice on one data directory (a restart): a
// real 3-replica metadata group and 3 block nodes on loopback; the
// Welcome.txt block is stored, committed, read back and verified.
func TestDevRunsAndRestarts(t *testing.T) {
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cfg := devConfig{Dir: dir, AdminPassword: "correct horse battery", Exit: true, Log: slog.New(slog.DiscardHandler)}
	for run := 1; run <= 2; run++ {
		if err := runDev(ctx, cfg); err != nil {
			t.Fatalf("run %d: %v", run, err)
		}
	}
	// Each run stored one distinct block on at least W=2 nodes.
	var copies int64
	for i := range 3 {
		st, err := localstore.Open(localstore.Config{Dir: filepath.Join(dir, fmt.Sprintf("dev%d", i), "blocks")})
		if err != nil {
			t.Fatal(err)
		}
		stats, err := st.Stats(ctx)
		st.Close()
		if err != nil {
			t.Fatal(err)
		}
		copies += stats.Blocks
	}
	if copies < 4 {
		t.Fatalf("%d block copies on the 3 nodes after 2 runs, want at least 4", copies)
	}
	if _, err := os.Stat(filepath.Join(dir, "dev-layout.json")); err != nil {
		t.Fatal(err)
	}
}
