package localstore

import (
	"context"
	"errors"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/coffer-dev/coffer/blockstore"
)

var ctx = context.Background()

func block(rng *rand.Rand, size int) (blockstore.Ref, []byte) {
	b := make([]byte, size)
	for i := range b {
		b[i] = byte(rng.Uint32())
	}
	return blockstore.Sum(b), b
}

func open(t *testing.T, cfg Config) *Store {
	t.Helper()
	if cfg.Dir == "" {
		cfg.Dir = t.TempDir()
	}
	if cfg.MinFreeBytes == 0 {
		cfg.MinFreeBytes = -1
	}
	s, err := Open(cfg)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func mustPut(t *testing.T, s *Store, ref blockstore.Ref, data []byte) {
	t.Helper()
	if err := s.Put(ctx, ref, data); err != nil {
		t.Fatalf("Put %s: %v", ref.Short(), err)
	}
}

func mustGet(t *testing.T, s *Store, ref blockstore.Ref, want []byte) {
	t.Helper()
	got, err := s.Get(ctx, ref)
	if err != nil {
		t.Fatalf("Get %s: %v", ref.Short(), err)
	}
	if string(got) != string(want) {
		t.Fatalf("Get %s: wrong bytes", ref.Short())
	}
}

func stats(t *testing.T, s *Store) blockstore.Stats {
	t.Helper()
	st, err := s.Stats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// flip damages one byte at off in the file at path, on disk.
func flip(t *testing.T, path string, off int64) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b := make([]byte, 1)
	if _, err := f.ReadAt(b, off); err != nil {
		t.Fatal(err)
	}
	b[0] ^= 0x40
	if _, err := f.WriteAt(b, off); err != nil {
		t.Fatal(err)
	}
}

func TestConfigValidation(t *testing.T) {
	dir := t.TempDir()
	cases := []struct {
		name string
		cfg  Config
	}{
		{"no dir", Config{}},
		{"negative max block", Config{Dir: dir, MaxBlockSize: -1}},
		{"negative segment", Config{Dir: dir, SegmentSize: -1}},
		{"segment smaller than a block", Config{Dir: dir, MaxBlockSize: 1 << 20, SegmentSize: 1 << 20}},
		{"segment too large", Config{Dir: dir, SegmentSize: 1 << 41}},
		{"bad reserve", Config{Dir: dir, MinFreeBytes: -2}},
		{"garbage ratio > 1", Config{Dir: dir, CompactGarbageRatio: 1.5}},
		{"garbage ratio < 0", Config{Dir: dir, CompactGarbageRatio: -0.1}},
		{"bad rate", Config{Dir: dir, CompactRate: -2}},
		{"negative cache", Config{Dir: dir, IndexCacheBytes: -1}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s, err := Open(c.cfg)
			if err == nil {
				s.Close()
				t.Fatal("Open succeeded")
			}
			if !errors.Is(err, blockstore.ErrInvalidConfig) {
				t.Fatalf("err = %v, want ErrInvalidConfig", err)
			}
		})
	}
	got, err := Config{Dir: dir}.withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	if got.MaxBlockSize != blockstore.DefaultMaxBlockSize || got.SegmentSize != DefaultSegmentSize ||
		got.MinFreeBytes != DefaultMinFreeBytes || got.CompactGarbageRatio != DefaultCompactGarbageRatio ||
		got.CompactRate != DefaultCompactRate || got.Now == nil || got.Logger == nil {
		t.Fatalf("defaults not applied: %+v", got)
	}
}

// A byte flipped in a segment file on disk is detected on read: the copy is
// never returned, it is dropped and counted, OnCorrupt fires, and a re-Put
// stores a good copy again.
func TestCorruptionOnDisk(t *testing.T) {
	for _, where := range []string{"data", "header"} {
		t.Run(where, func(t *testing.T) {
			corrupted := make(chan blockstore.Ref, 1)
			s := open(t, Config{OnCorrupt: func(r blockstore.Ref) { corrupted <- r }})
			rng := rand.New(rand.NewPCG(1, 2))
			ref, data := block(rng, 100_000)
			other, odata := block(rng, 5000)
			mustPut(t, s, ref, data)
			mustPut(t, s, other, odata)
			loc, err := s.Locate(ctx, ref)
			if err != nil {
				t.Fatal(err)
			}
			off := loc.Offset + loc.Length/2
			if where == "header" {
				off = loc.Offset - headerSize + 20 // inside the ref field
			}
			flip(t, loc.Path, off)
			if _, err := s.Get(ctx, ref); !errors.Is(err, blockstore.ErrCorrupt) {
				t.Fatalf("Get after flip: %v, want ErrCorrupt", err)
			}
			select {
			case r := <-corrupted:
				if r != ref {
					t.Fatalf("OnCorrupt(%s), want %s", r.Short(), ref.Short())
				}
			default:
				t.Fatal("OnCorrupt not called")
			}
			if st := stats(t, s); st.Corrupt != 1 || st.Blocks != 1 {
				t.Fatalf("stats after corruption: %+v", st)
			}
			if has, _ := s.Has(ctx, []blockstore.Ref{ref, other}); has[0] || !has[1] {
				t.Fatalf("Has = %v, want [false true]", has)
			}
			if _, err := s.Get(ctx, ref); !errors.Is(err, blockstore.ErrNotFound) {
				t.Fatalf("second Get: %v, want ErrNotFound", err)
			}
			mustGet(t, s, other, odata)
			mustPut(t, s, ref, data)
			mustGet(t, s, ref, data)
		})
	}
}

func TestTruncatedSegmentIsCorrupt(t *testing.T) {
	s := open(t, Config{})
	rng := rand.New(rand.NewPCG(3, 4))
	ref, data := block(rng, 64<<10)
	mustPut(t, s, ref, data)
	loc, err := s.Locate(ctx, ref)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(loc.Path, loc.Offset+10); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get(ctx, ref); !errors.Is(err, blockstore.ErrCorrupt) {
		t.Fatalf("Get of truncated record: %v, want ErrCorrupt", err)
	}
}

func TestReopenKeepsBlocksAndDropsOrphans(t *testing.T) {
	dir := t.TempDir()
	rng := rand.New(rand.NewPCG(5, 6))
	s, err := Open(Config{Dir: dir, MinFreeBytes: -1, SegmentSize: 1 << 20, MaxBlockSize: 256 << 10})
	if err != nil {
		t.Fatal(err)
	}
	want := map[blockstore.Ref][]byte{}
	for range 20 {
		ref, data := block(rng, 100_000+rng.IntN(100_000))
		mustPut(t, s, ref, data)
		want[ref] = data
	}
	before := stats(t, s)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	// A record written by a Put that crashed before its index entry: a
	// segment nothing points to.
	orphan := filepath.Join(dir, "segments", segmentName(999))
	if err := os.WriteFile(orphan, make([]byte, 4096), 0o600); err != nil {
		t.Fatal(err)
	}
	s2 := open(t, Config{Dir: dir, SegmentSize: 1 << 20, MaxBlockSize: 256 << 10})
	for ref, data := range want {
		mustGet(t, s2, ref, data)
	}
	after := stats(t, s2)
	if after.Blocks != before.Blocks || after.Bytes != before.Bytes {
		t.Fatalf("after reopen %d blocks/%d bytes, before %d/%d", after.Blocks, after.Bytes, before.Blocks, before.Bytes)
	}
	if _, err := os.Stat(orphan); !os.IsNotExist(err) {
		t.Fatalf("orphan segment not removed: %v", err)
	}
	// New writes go to a new segment numbered after the orphan.
	ref, data := block(rng, 1000)
	mustPut(t, s2, ref, data)
	loc, err := s2.Locate(ctx, ref)
	if err != nil {
		t.Fatal(err)
	}
	if filepath.Base(loc.Path) != segmentName(1000) {
		t.Fatalf("new block in %s, want %s", loc.Path, segmentName(1000))
	}
}

// What a crash can leave behind, since a Put syncs its record and its
// index entry in parallel: an entry past the end of its segment, or one
// whose record's bytes never reached the disk. Open drops both (neither
// Put was acknowledged), so Has never claims a copy that is not there. An
// index naming a segment file that does not exist is another directory's
// index: Open refuses it.
func TestOpenDropsEntriesACrashLeft(t *testing.T) {
	dir := t.TempDir()
	cfg := Config{Dir: dir, MinFreeBytes: -1}
	s, err := Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(7, 8))
	keepRef, keep := block(rng, 1000)
	tornRef, torn := block(rng, 1000)
	rotRef, rot := block(rng, 1000)
	mustPut(t, s, keepRef, keep)
	mustPut(t, s, rotRef, rot)
	mustPut(t, s, tornRef, torn) // last record of the segment
	tornLoc, _ := s.Locate(ctx, tornRef)
	rotLoc, _ := s.Locate(ctx, rotRef)
	s.Close()
	// The torn record's bytes never made it; the other one's were garbage.
	if err := os.Truncate(tornLoc.Path, tornLoc.Offset+10); err != nil {
		t.Fatal(err)
	}
	flip(t, rotLoc.Path, rotLoc.Offset+5)
	s2 := open(t, cfg)
	has, err := s2.Has(ctx, []blockstore.Ref{keepRef, tornRef, rotRef})
	if err != nil || !has[0] || has[1] || has[2] {
		t.Fatalf("Has after reopen = %v, %v; want [true false false]", has, err)
	}
	mustGet(t, s2, keepRef, keep)
	if st := stats(t, s2); st.Blocks != 1 || st.Bytes != 1000 {
		t.Fatalf("stats after reopen: %+v", st)
	}
	mustPut(t, s2, tornRef, torn)
	mustGet(t, s2, tornRef, torn)
	s2.Close()

	if err := os.Remove(tornLoc.Path); err != nil {
		t.Fatal(err)
	}
	if s, err := Open(cfg); !errors.Is(err, blockstore.ErrCorrupt) {
		if err == nil {
			s.Close()
		}
		t.Fatalf("Open with a segment file missing: %v, want ErrCorrupt", err)
	}
}

func TestCompaction(t *testing.T) {
	dir := t.TempDir()
	clock := time.Unix(1_700_000_000, 0)
	now := func() time.Time { return clock }
	cfg := Config{Dir: dir, SegmentSize: 1 << 20, MaxBlockSize: 128 << 10, CompactRate: -1, DisableAutoCompact: true, Now: now}
	s := open(t, cfg)
	rng := rand.New(rand.NewPCG(9, 10))
	type blk struct {
		data []byte
		at   time.Time
	}
	keep := map[blockstore.Ref]blk{}
	var drop []blockstore.Ref
	for i := range 60 {
		clock = clock.Add(time.Second)
		ref, data := block(rng, 60_000+rng.IntN(60_000))
		mustPut(t, s, ref, data)
		if i%4 == 0 {
			keep[ref] = blk{data, clock}
		} else {
			drop = append(drop, ref)
		}
	}
	for _, ref := range drop {
		if ok, err := s.Delete(ctx, ref, clock.Add(time.Hour)); err != nil || !ok {
			t.Fatalf("Delete: %v %v", ok, err)
		}
	}
	before := stats(t, s)
	rep, err := s.Compact(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Segments == 0 || rep.Moved == 0 || rep.BytesFreed == 0 {
		t.Fatalf("compaction did nothing: %+v", rep)
	}
	after := stats(t, s)
	if after.DiskBytes >= before.DiskBytes {
		t.Fatalf("disk bytes %d -> %d, want fewer", before.DiskBytes, after.DiskBytes)
	}
	if after.Compaction != rep.BytesMoved {
		t.Fatalf("Stats.Compaction %d, report moved %d", after.Compaction, rep.BytesMoved)
	}
	check := func(s *Store) {
		t.Helper()
		n := 0
		err := s.Enumerate(ctx, blockstore.Ref{}, func(b blockstore.BlockInfo) error {
			k, ok := keep[b.Ref]
			if !ok {
				t.Errorf("deleted block %s enumerated", b.Ref.Short())
			} else if !b.StoredAt.Equal(k.at) {
				t.Errorf("StoredAt %v, want %v (compaction must keep it)", b.StoredAt, k.at)
			}
			n++
			return nil
		})
		if err != nil || n != len(keep) {
			t.Fatalf("enumerated %d (%v), want %d", n, err, len(keep))
		}
		for ref, k := range keep {
			mustGet(t, s, ref, k.data)
		}
	}
	check(s)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	check(open(t, cfg))
}

// The background compactor runs by itself when deletes leave a sealed
// segment mostly dead.
func TestAutoCompaction(t *testing.T) {
	s := open(t, Config{SegmentSize: 1 << 20, MaxBlockSize: 128 << 10, CompactRate: -1})
	rng := rand.New(rand.NewPCG(11, 12))
	var refs []blockstore.Ref
	for range 40 {
		ref, data := block(rng, 100_000)
		mustPut(t, s, ref, data)
		refs = append(refs, ref)
	}
	first, _ := s.Locate(ctx, refs[0])
	for _, ref := range refs[:8] {
		if _, err := s.Delete(ctx, ref, time.Now().Add(time.Hour)); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		if _, err := os.Stat(first.Path); os.IsNotExist(err) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("segment %s not compacted away", first.Path)
		}
		time.Sleep(10 * time.Millisecond)
	}
	for _, ref := range refs[8:] {
		if _, err := s.Get(ctx, ref); err != nil {
			t.Fatal(err)
		}
	}
}

// Reads racing with compaction always see the block.
func TestGetDuringCompaction(t *testing.T) {
	s := open(t, Config{SegmentSize: 1 << 20, MaxBlockSize: 128 << 10, CompactRate: -1, DisableAutoCompact: true})
	rng := rand.New(rand.NewPCG(13, 14))
	var keep []blockstore.Ref
	data := map[blockstore.Ref][]byte{}
	for i := range 80 {
		ref, b := block(rng, 30_000)
		mustPut(t, s, ref, b)
		if i%3 == 0 {
			keep = append(keep, ref)
			data[ref] = b
		} else if _, err := s.Delete(ctx, ref, time.Now().Add(time.Hour)); err != nil {
			t.Fatal(err)
		}
	}
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for g := range 3 {
		wg.Go(func() {
			for i := g; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				ref := keep[i%len(keep)]
				got, err := s.Get(ctx, ref)
				if err != nil || string(got) != string(data[ref]) {
					t.Errorf("Get during compaction: %v", err)
					return
				}
			}
		})
	}
	rep, err := s.Compact(ctx)
	close(stop)
	wg.Wait()
	if err != nil || rep.Segments == 0 {
		t.Fatalf("Compact: %+v %v", rep, err)
	}
}

// The free-space reserve refuses a Put before anything is written.
func TestDiskFullReserve(t *testing.T) {
	s := open(t, Config{MinFreeBytes: 1 << 62})
	ref, data := block(rand.New(rand.NewPCG(15, 16)), 1000)
	before := stats(t, s)
	if err := s.Put(ctx, ref, data); !errors.Is(err, blockstore.ErrDiskFull) {
		t.Fatalf("Put: %v, want ErrDiskFull", err)
	}
	after := stats(t, s)
	if after.Blocks != before.Blocks || after.Puts != 0 || after.BytesWritten != before.BytesWritten {
		t.Fatalf("a refused Put changed the store: %+v", after)
	}
	if has, _ := s.Has(ctx, []blockstore.Ref{ref}); has[0] {
		t.Fatal("refused block is present")
	}
}

// A real full file system (a small tmpfs): Puts fail with ErrDiskFull, no
// partial block is visible, every acknowledged block still reads back, and
// after deletes and compaction free room, Puts work again.
func TestDiskFullTmpfs(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("mounting a tmpfs needs root")
	}
	dir := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=12m", "tmpfs", dir).CombinedOutput(); err != nil {
		t.Skipf("cannot mount tmpfs: %v: %s", err, out)
	}
	t.Cleanup(func() { _ = exec.Command("umount", "-l", dir).Run() })
	cfg := Config{Dir: dir, MinFreeBytes: -1, SegmentSize: 2 << 20, MaxBlockSize: 512 << 10, IndexCacheBytes: 1 << 20, CompactRate: -1, DisableAutoCompact: true}
	s, err := Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	rng := rand.New(rand.NewPCG(17, 18))
	stored := map[blockstore.Ref][]byte{}
	var full error
	for range 100 {
		ref, data := block(rng, 500_000)
		err := s.Put(ctx, ref, data)
		if err != nil {
			full = err
			if has, _ := s.Has(ctx, []blockstore.Ref{ref}); has[0] {
				t.Fatal("failed Put left the block visible")
			}
			break
		}
		stored[ref] = data
	}
	if !errors.Is(full, blockstore.ErrDiskFull) {
		t.Fatalf("filling a 12 MiB tmpfs: %v, want ErrDiskFull", full)
	}
	if len(stored) == 0 {
		t.Fatal("nothing fit")
	}
	for ref, data := range stored {
		mustGet(t, s, ref, data)
	}
	if st := stats(t, s); st.Blocks != int64(len(stored)) {
		t.Fatalf("Blocks = %d, want %d", st.Blocks, len(stored))
	}
	// Free room: delete all but one block and compact.
	var last blockstore.Ref
	for ref := range stored {
		last = ref
	}
	for ref := range stored {
		if ref != last {
			if _, err := s.Delete(ctx, ref, time.Now().Add(time.Hour)); err != nil {
				t.Fatal(err)
			}
		}
	}
	rep, err := s.Compact(ctx)
	if err != nil {
		t.Fatal(err)
	}
	ref, data := block(rng, 500_000)
	if err := s.Put(ctx, ref, data); err != nil {
		out, _ := exec.Command("sh", "-c", "ls -laR "+dir+"; df "+dir).CombinedOutput()
		t.Fatalf("Put after compaction %+v: %v\n%s", rep, err, out)
	}
	mustGet(t, s, ref, data)
	mustGet(t, s, last, stored[last])
}

// Concurrent writers share fdatasyncs: while one sync runs, every write
// that completes joins the next one.
func TestGroupSync(t *testing.T) {
	release := make(chan struct{})
	started := make(chan struct{}, 10)
	var syncs int
	var sy syncer
	sy.init(func() error {
		syncs++ // only one sync runs at a time
		started <- struct{}{}
		<-release
		return nil
	}, nil)
	first := sy.ticket()
	done := make(chan error, 20)
	go func() { done <- sy.wait(first) }()
	<-started // the first sync is running
	const n = 10
	for range n {
		tk := sy.ticket()
		go func() { done <- sy.wait(tk) }()
	}
	// Wait until all n are parked on the cond (they cannot finish before the
	// first sync is released).
	deadline := time.Now().Add(10 * time.Second)
	for {
		sy.mu.Lock()
		w := sy.written
		sy.mu.Unlock()
		if w == n+1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("tickets not taken")
		}
		time.Sleep(time.Millisecond)
	}
	close(release)
	for range n + 1 {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
	if syncs != 2 {
		t.Fatalf("%d syncs for %d writes arriving during one sync, want 2", syncs, n+1)
	}
}

func TestFailedSyncStopsWrites(t *testing.T) {
	var sy syncer
	boom := errors.New("EIO")
	sy.init(func() error { return boom }, nil)
	if err := sy.wait(sy.ticket()); !errors.Is(err, boom) {
		t.Fatalf("wait: %v", err)
	}
	if err := sy.wait(sy.ticket()); !errors.Is(err, boom) {
		t.Fatalf("a sync after a failed one: %v, want the failure", err)
	}
}

// Puts racing with compaction: a segment that has just been filled and
// sealed must not look dead to the compactor before the Put's index entry
// counts its record live (a review found acknowledged blocks lost to this).
func TestPutDuringCompaction(t *testing.T) {
	const size = 4 << 10
	dir := t.TempDir()
	cfg := Config{Dir: dir, MaxBlockSize: size, SegmentSize: size + headerSize, CompactRate: -1, DisableAutoCompact: true}
	s := open(t, cfg)
	stop := make(chan struct{})
	compacted := make(chan error, 1)
	go func() {
		for {
			select {
			case <-stop:
				compacted <- nil
				return
			default:
			}
			if _, err := s.Compact(ctx); err != nil {
				compacted <- err
				return
			}
		}
	}()
	var mu sync.Mutex
	stored := map[blockstore.Ref][]byte{}
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(g), 99))
			for range 150 {
				ref, data := block(rng, size)
				if err := s.Put(ctx, ref, data); err != nil {
					t.Errorf("Put: %v", err)
					return
				}
				mu.Lock()
				stored[ref] = data
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	close(stop)
	if err := <-compacted; err != nil {
		t.Fatal(err)
	}
	check := func(s *Store) {
		t.Helper()
		for ref, data := range stored {
			mustGet(t, s, ref, data)
		}
	}
	check(s)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	check(open(t, cfg))
}

// A Put of a block whose stored copy rotted replaces the copy instead of
// reporting the bad one as stored.
func TestPutReplacesRottedCopy(t *testing.T) {
	s := open(t, Config{})
	ref, data := block(rand.New(rand.NewPCG(21, 22)), 50_000)
	mustPut(t, s, ref, data)
	loc, err := s.Locate(ctx, ref)
	if err != nil {
		t.Fatal(err)
	}
	flip(t, loc.Path, loc.Offset+100)
	mustPut(t, s, ref, data)
	mustGet(t, s, ref, data)
	if st := stats(t, s); st.Puts != 2 || st.Dedups != 0 || st.Corrupt != 1 || st.Blocks != 1 {
		t.Fatalf("stats %+v: want 2 puts, 0 dedups, 1 corrupt, 1 block", st)
	}
}
