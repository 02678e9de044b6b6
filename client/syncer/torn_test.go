package syncer

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/coffer-dev/coffer/internal/testcluster"
)

// A file that changes while the engine reads it (to hash it, or to send
// its blocks) is read again: the server never gets a torn version, and
// what it gets in the end is the file's last content.
func TestFileChangingWhileReadIsNeverTorn(t *testing.T) {
	cl := testcluster.Start(t, 1)
	api := &recorder{Client: cl.AddUser(t, "gina", "gina password"), committed: map[string]bool{}}
	m := newMemFS()
	no := false
	e, err := Open(Config{FS: m, StateDir: t.TempDir(), API: api, CaseInsensitive: &no, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	versions := [][]byte{}
	for i := range 4 {
		v := make([]byte, 600<<10) // several blocks
		for j := range v {
			v[j] = byte(i*31 + j*7)
		}
		versions = append(versions, v)
	}
	m.userWrite("doc.bin", versions[0])
	// The first open of doc.bin (the scan's first read) and the third (the
	// upload's read of its blocks, after the scan's second read) each
	// rewrite it first.
	opens, rewrites := 0, 0
	m.onOpen = func(p string) {
		if p != "doc.bin" {
			return
		}
		opens++
		if opens == 1 || opens == 3 {
			rewrites++
			m.userWrite("doc.bin", versions[rewrites])
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	sum, err := e.Sync(ctx)
	if err != nil || sum.Pending != 0 {
		t.Fatalf("sync: %+v, %v", sum, err)
	}
	en, err := api.Stat(ctx, "/doc.bin", false)
	if err != nil {
		t.Fatal(err)
	}
	if en.Hash != hashOf(versions[2]) {
		t.Fatalf("the server has %s, want the last version %s", en.Hash[:12], hashOf(versions[2])[:12])
	}
	if len(api.committed) != 1 {
		t.Fatalf("%d contents committed, want only the last version", len(api.committed))
	}
	if rewrites != 2 || sum.Skipped < 1 {
		t.Fatalf("rewrites %d, skipped %d: the test did not exercise both reads", rewrites, sum.Skipped)
	}
}

// A file that is still being written when the scan reads it (three reads
// in a row see it change) is not reported as synced: Sync waits for it to
// settle and uploads it in a later round of the same call.
func TestFileBeingWrittenIsWaitedFor(t *testing.T) {
	cl := testcluster.Start(t, 1)
	api := &recorder{Client: cl.AddUser(t, "hank", "hank password"), committed: map[string]bool{}}
	m := newMemFS()
	no := false
	e, err := Open(Config{FS: m, StateDir: t.TempDir(), API: api, CaseInsensitive: &no, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	m.userWrite("log.txt", []byte("line 0\n"))
	writes := 0
	m.onOpen = func(p string) {
		if p == "log.txt" && writes < ingestTries {
			writes++
			m.userWrite("log.txt", []byte(strings.Repeat("line\n", writes+1)))
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	sum, err := e.Sync(ctx)
	if err != nil || sum.Pending != 0 || sum.Uploaded != 1 || sum.Rounds < 2 {
		t.Fatalf("sync: %+v, %v", sum, err)
	}
	en, err := api.Stat(ctx, "/log.txt", false)
	if err != nil || en.Hash != hashOf([]byte(strings.Repeat("line\n", ingestTries+1))) {
		t.Fatalf("the server has %+v, %v", en, err)
	}
}
