package localstore

// Benchmarks of the local store next to references measured in the same
// run: the disk's raw sequential write bandwidth (with fdatasync) and read
// bandwidth (cold: page cache dropped with fadvise), SHA-256 speed, and the
// alternative design (Pebble holding the blocks, with and without value
// separation). `make bench PKGS=./blockstore/localstore` runs them; the
// figures are in BENCHMARKS.md and the reasoning in blockstore/DESIGN.md.

import (
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"

	"github.com/coffer-dev/coffer/blockstore"
	"github.com/coffer-dev/coffer/internal/diskref"
)

var discard = slog.New(slog.DiscardHandler)

var benchSizes = []int{1 << 20, 4 << 20}

func sizeName(n int) string { return fmt.Sprintf("%dMiB", n>>20) }

// genBlocks returns a function making the i-th distinct block of size
// bytes into buf, and the refs of blocks 0..n-1 (hashed before the timer
// starts, so the benchmark's caller does not pay a second SHA-256).
func genBlocks(b *testing.B, size, n int) (fill func(buf []byte, i int), refs []blockstore.Ref) {
	// Random, so incompressible like most file contents (photos, video,
	// archives): Pebble's block compression would flatter the alternative.
	base := make([]byte, size)
	_, _ = rand.NewChaCha8([32]byte{1}).Read(base)
	fill = func(buf []byte, i int) {
		copy(buf, base)
		binary.LittleEndian.PutUint64(buf, uint64(i)+1)
	}
	refs = make([]blockstore.Ref, n)
	buf := make([]byte, size)
	for i := range refs {
		fill(buf, i)
		refs[i] = blockstore.Sum(buf)
	}
	return fill, refs
}

// BenchmarkRawDisk is the reference: plain sequential file I/O on the disk
// the store's benchmarks use (b.TempDir()).
func BenchmarkRawDisk(b *testing.B) {
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

// putParallel runs b.N distinct Puts from 8 goroutines (2 per core on the
// 2-core reference machine is 4; 8 keeps the disk queue full).
func putParallel(b *testing.B, size int, put func(ref blockstore.Ref, data []byte) error) {
	fill, refs := genBlocks(b, size, b.N)
	var next atomic.Int64
	b.SetBytes(int64(size))
	b.SetParallelism(4)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		buf := make([]byte, size)
		for pb.Next() {
			i := int(next.Add(1) - 1)
			fill(buf, i)
			if err := put(refs[i], buf); err != nil {
				b.Error(err)
				return
			}
		}
	})
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
			putParallel(b, size, func(ref blockstore.Ref, data []byte) error { return s.Put(ctx, ref, data) })
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
			b.Run(name+sizeName(size), func(b *testing.B) {
				s, err := Open(Config{Dir: b.TempDir(), MinFreeBytes: -1})
				if err != nil {
					b.Fatal(err)
				}
				defer s.Close()
				const storeBytes = 256 << 20
				n := storeBytes / size
				fill, refs := genBlocks(b, size, n)
				buf := make([]byte, size)
				for i := range n {
					fill(buf, i)
					if err := s.Put(ctx, refs[i], buf); err != nil {
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
				b.SetBytes(int64(size))
				b.ResetTimer()
				for i := 0; b.Loop(); i++ {
					if i%n == 0 && i > 0 {
						b.StopTimer()
						drop()
						b.StartTimer()
					}
					if _, err := s.Get(ctx, refs[i%n]); err != nil {
						b.Fatal(err)
					}
				}
			})
			// Concurrent readers, as a block node serves them: verification
			// (SHA-256) runs on every core.
			b.Run("Parallel"+name+sizeName(size), func(b *testing.B) {
				s, err := Open(Config{Dir: b.TempDir(), MinFreeBytes: -1})
				if err != nil {
					b.Fatal(err)
				}
				defer s.Close()
				const storeBytes = 256 << 20
				n := storeBytes / size
				fill, refs := genBlocks(b, size, n)
				buf := make([]byte, size)
				for i := range n {
					fill(buf, i)
					if err := s.Put(ctx, refs[i], buf); err != nil {
						b.Fatal(err)
					}
				}
				segs, _ := filepath.Glob(filepath.Join(s.dir, "*.seg"))
				if cold {
					diskref.DropCache(b, segs...)
				}
				// Each pass over the blocks reads them once; the cache is
				// dropped only before the first pass (dropping it under
				// concurrent readers would be timed).
				var next atomic.Int64
				b.SetBytes(int64(size))
				b.SetParallelism(2)
				b.ResetTimer()
				b.RunParallel(func(pb *testing.PB) {
					for pb.Next() {
						i := int(next.Add(1) - 1)
						if _, err := s.Get(ctx, refs[i%n]); err != nil {
							b.Error(err)
							return
						}
					}
				})
			})
		}
	}
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
				opts := &pebble.Options{FormatMajorVersion: pebble.FormatNewest, Logger: pebbleLogger{discard}}
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
				putParallel(b, size, func(ref blockstore.Ref, data []byte) error {
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
