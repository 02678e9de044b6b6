package localstore

// Benchmarks of the local store next to references measured in the same
// run: the disk's raw sequential write bandwidth (with fdatasync) and read
// bandwidth (cold: page cache dropped with fadvise), SHA-256 speed, and the
// alternative design (Pebble holding the blocks, with and without value
// separation). `make bench PKGS=./blockstore/localstore` runs them; the
// figures are in BENCHMARKS.md and the reasoning in blockstore/DESIGN.md.

import (
	"crypto/sha256"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"

	"github.com/coffer-dev/coffer/blockstore"
	"github.com/coffer-dev/coffer/blockstore/blocktest"
	"github.com/coffer-dev/coffer/internal/diskref"
	"github.com/coffer-dev/coffer/internal/pebbleopen"
)

var discard = slog.New(slog.DiscardHandler)

var benchSizes = []int{1 << 20, 4 << 20}

func sizeName(n int) string { return fmt.Sprintf("%dMiB", n>>20) }

// BenchmarkRawDisk is the reference: plain sequential file I/O on the disk
// the store's benchmarks use (b.TempDir()).
func BenchmarkRawDisk(b *testing.B) {
	// The first disk benchmark of a process measures slow on the shared
	// VM this was tuned on; a discarded warm-up takes that hit.
	b.Run("Warmup", func(b *testing.B) { diskref.WriteStream(b, 1<<20) })
	for _, size := range benchSizes {
		b.Run("WriteFsyncEach/"+sizeName(size), func(b *testing.B) { diskref.WriteFsyncEach(b, size) })
		b.Run("WriteStream/"+sizeName(size), func(b *testing.B) { diskref.WriteStream(b, size) })
		b.Run("ReadCold/"+sizeName(size), func(b *testing.B) { diskref.ReadCold(b, size) })
	}
}

// BenchmarkSHA256 is the reference for Get's verification cost.
func BenchmarkSHA256(b *testing.B) {
	buf := make([]byte, 4<<20)
	b.SetBytes(int64(len(buf)))
	for b.Loop() {
		sha256.Sum256(buf)
	}
}

// procWriteBytes is write_bytes from /proc/self/io: what this process sent
// to the storage layer, the ground truth for write amplification.
func procWriteBytes(b *testing.B) int64 {
	raw, err := os.ReadFile("/proc/self/io")
	if err != nil {
		b.Skipf("no /proc/self/io: %v", err)
	}
	for _, line := range strings.Split(string(raw), "\n") {
		if v, ok := strings.CutPrefix(line, "write_bytes: "); ok {
			n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
			if err != nil {
				b.Fatal(err)
			}
			return n
		}
	}
	b.Skip("no write_bytes in /proc/self/io")
	return 0
}

func BenchmarkStore(b *testing.B) {
	for _, size := range benchSizes {
		b.Run("Put/"+sizeName(size), func(b *testing.B) {
			s, err := Open(Config{Dir: b.TempDir(), MinFreeBytes: -1})
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			w0 := procWriteBytes(b)
			blocktest.PutParallel(b, size, 1, func(ref blockstore.Ref, data []byte) error { return s.Put(ctx, ref, data) })
			b.StopTimer()
			st, _ := s.Stats(ctx)
			b.ReportMetric(st.WriteAmplification(), "wamp")
			b.ReportMetric(float64(procWriteBytes(b)-w0)/float64(int64(b.N)*int64(size)), "diskwamp")
			b.ReportMetric(float64(st.Puts)/float64(max(1, st.Syncs)), "puts/sync")
		})
		for _, cold := range []bool{true, false} {
			name := "GetWarm/"
			if cold {
				name = "GetCold/"
			}
			// One reader, reading the blocks in the order they were
			// written; the cache is dropped before every pass when cold.
			b.Run(name+sizeName(size), func(b *testing.B) {
				s, refs, drop := loadedStore(b, size, cold)
				b.SetBytes(int64(size))
				b.ResetTimer()
				for i := 0; b.Loop(); i++ {
					if i%len(refs) == 0 && i > 0 {
						b.StopTimer()
						drop()
						b.StartTimer()
					}
					if _, err := s.Get(ctx, refs[i%len(refs)]); err != nil {
						b.Fatal(err)
					}
				}
			})
			// Concurrent readers, as a block node serves them: verification
			// (SHA-256) runs on every core. The cache is dropped only
			// before the first pass (dropping it under concurrent readers
			// would be timed).
			b.Run("Parallel"+name+sizeName(size), func(b *testing.B) {
				s, refs, _ := loadedStore(b, size, cold)
				var next atomic.Int64
				b.SetBytes(int64(size))
				b.SetParallelism(2)
				b.ResetTimer()
				b.RunParallel(func(pb *testing.PB) {
					for pb.Next() {
						i := int(next.Add(1) - 1)
						if _, err := s.Get(ctx, refs[i%len(refs)]); err != nil {
							b.Error(err)
							return
						}
					}
				})
			})
		}
	}
}

// loadedStore returns a store holding 256 MiB of size-byte blocks, their
// refs in write order, and a function that drops the segment files from
// the page cache when cold (and does nothing otherwise); it has been
// called once.
func loadedStore(b *testing.B, size int, cold bool) (*Store, []blockstore.Ref, func()) {
	s, err := Open(Config{Dir: b.TempDir(), MinFreeBytes: -1})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Close() })
	seq := blocktest.NewSeq(size, 2)
	refs := seq.Refs((256 << 20) / size)
	buf := make([]byte, size)
	for i, ref := range refs {
		seq.Fill(buf, i)
		if err := s.Put(ctx, ref, buf); err != nil {
			b.Fatal(err)
		}
	}
	segs, _ := filepath.Glob(filepath.Join(s.dir, "*.seg"))
	drop := func() {
		if cold {
			diskref.DropCache(b, segs...)
		}
	}
	drop()
	return s, refs, drop
}

// BenchmarkPebbleBlocks is the alternative design: blocks stored as Pebble
// values (Sync writes), with and without value separation into blob files.
// wamp is bytes written (WAL, flushes, compactions, blob files) per byte
// stored.
func BenchmarkPebbleBlocks(b *testing.B) {
	for _, sep := range []bool{false, true} {
		for _, size := range benchSizes {
			name := "Plain/"
			if sep {
				name = "ValueSeparation/"
			}
			b.Run(name+sizeName(size), func(b *testing.B) {
				opts := &pebble.Options{FormatMajorVersion: pebble.FormatNewest, Logger: pebbleopen.Logger{L: discard}}
				if sep {
					opts.Experimental.EnableColumnarBlocks = func() bool { return true }
					opts.Experimental.ValueSeparationPolicy = func() pebble.ValueSeparationPolicy {
						return pebble.ValueSeparationPolicy{
							Enabled:               true,
							MinimumSize:           64 << 10,
							MaxBlobReferenceDepth: 10,
							RewriteMinimumAge:     time.Hour,
							TargetGarbageRatio:    0.5,
						}
					}
				}
				db, err := pebble.Open(b.TempDir(), opts)
				if err != nil {
					b.Fatal(err)
				}
				defer db.Close()
				w0 := procWriteBytes(b)
				blocktest.PutParallel(b, size, 1, func(ref blockstore.Ref, data []byte) error {
					if err := ref.Verify(data); err != nil {
						return err
					}
					return db.Set(ref[:], data, pebble.Sync)
				})
				b.StopTimer()
				if err := db.Flush(); err != nil {
					b.Fatal(err)
				}
				m := db.Metrics()
				written := m.WAL.BytesWritten
				for _, l := range m.Levels {
					written += l.TableBytesFlushed + l.TableBytesCompacted + l.BlobBytesFlushed + l.BlobBytesCompacted
				}
				// Compactions would add more with time; this counts the WAL
				// and the flush of everything written.
				stored := float64(int64(b.N) * int64(size))
				b.ReportMetric(float64(written)/stored, "wamp")
				b.ReportMetric(float64(m.WAL.BytesWritten)/stored, "wal/byte")
				b.ReportMetric(float64(procWriteBytes(b)-w0)/stored, "diskwamp")
			})
		}
	}
}
