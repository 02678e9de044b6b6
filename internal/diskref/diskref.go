// Package diskref measures the reference figures that storage benchmarks
// are read against in the same run: the raw sequential write bandwidth of
// a disk (with fdatasync) and its raw sequential read bandwidth with the
// page cache dropped. It is for benchmarks only.
package diskref

import (
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
)

// WriteFsyncEach writes size-byte blocks sequentially to a new file in
// b.TempDir(), fdatasyncing after each: the durability every block Put has.
func WriteFsyncEach(b *testing.B, size int) {
	writeSeq(b, size, 1)
}

// WriteStream writes size-byte blocks sequentially and fdatasyncs every 64
// MiB (and at the end): the disk's best sequential write rate.
func WriteStream(b *testing.B, size int) {
	writeSeq(b, size, max(1, (64<<20)/size))
}

func writeSeq(b *testing.B, size, syncEvery int) {
	buf := make([]byte, size)
	for i := range buf {
		buf[i] = byte(i)
	}
	f, err := os.Create(filepath.Join(b.TempDir(), "raw"))
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	b.SetBytes(int64(size))
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		if _, err := f.WriteAt(buf, int64(i)*int64(size)); err != nil {
			b.Fatal(err)
		}
		if i%syncEvery == syncEvery-1 {
			if err := unix.Fdatasync(int(f.Fd())); err != nil {
				b.Fatal(err)
			}
		}
	}
	if err := unix.Fdatasync(int(f.Fd())); err != nil {
		b.Fatal(err)
	}
}

// ReadCold reads a 256 MiB file sequentially in size-byte reads, with the
// file's pages dropped from the page cache before every pass.
func ReadCold(b *testing.B, size int) {
	p := filepath.Join(b.TempDir(), "raw")
	const fileBytes = 256 << 20
	n := fileBytes / size
	buf := make([]byte, size)
	f, err := os.Create(p)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	for i := range n {
		if _, err := f.WriteAt(buf, int64(i)*int64(size)); err != nil {
			b.Fatal(err)
		}
	}
	if err := unix.Fdatasync(int(f.Fd())); err != nil {
		b.Fatal(err)
	}
	DropCache(b, p)
	b.SetBytes(int64(size))
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		if i%n == 0 && i > 0 {
			b.StopTimer()
			DropCache(b, p)
			b.StartTimer()
		}
		if _, err := f.ReadAt(buf, int64(i%n)*int64(size)); err != nil {
			b.Fatal(err)
		}
	}
}

// DropCache evicts the files' pages from the page cache
// (posix_fadvise DONTNEED; the files' data must already be synced).
func DropCache(b testing.TB, paths ...string) {
	for _, p := range paths {
		f, err := os.Open(p)
		if err != nil {
			b.Fatal(err)
		}
		err = unix.Fadvise(int(f.Fd()), 0, 0, unix.FADV_DONTNEED)
		f.Close()
		if err != nil {
			b.Fatal(err)
		}
	}
}
