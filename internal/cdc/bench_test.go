package cdc

import (
	"bytes"
	"context"
	"crypto/sha256"
	"io"
	"sync"
	"testing"
)

const benchSize = 64 << 20

// benchData is 64 MiB of pseudo-random bytes, made once.
var benchData = sync.OnceValue(func() []byte { return randomBytes(1, benchSize) })

// BenchmarkChunk cuts 64 MiB with the default Config, without hashing.
func BenchmarkChunk(b *testing.B) {
	data := benchData()
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		c, err := New(bytes.NewReader(data), Config{})
		if err != nil {
			b.Fatal(err)
		}
		for {
			if _, err := c.Next(); err == io.EOF {
				break
			} else if err != nil {
				b.Fatal(err)
			}
		}
	}
}

// BenchmarkSplit cuts and hashes 64 MiB with the default Config on all
// cores: the ingest rate to read against BenchmarkSHA256.
func BenchmarkSplit(b *testing.B) {
	data := benchData()
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		var n int
		err := Split(context.Background(), bytes.NewReader(data), Config{}, 0, func(c Chunk) error {
			n += c.Size
			return nil
		})
		if err != nil || n != len(data) {
			b.Fatalf("Split: %d bytes, %v", n, err)
		}
	}
}

// BenchmarkSHA256 is the reference: plain SHA-256 over the same 64 MiB.
func BenchmarkSHA256(b *testing.B) {
	data := benchData()
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		sha256.Sum256(data)
	}
}
