package cdc

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"testing"
)

// splitAll returns the chunks Split hands out.
func splitAll(ctx context.Context, r io.Reader, cfg Config, workers int) ([]Chunk, error) {
	var chunks []Chunk
	err := Split(ctx, r, cfg, workers, func(c Chunk) error {
		chunks = append(chunks, c)
		return nil
	})
	return chunks, err
}

func TestSplitMatchesChunker(t *testing.T) {
	for _, tt := range []struct {
		cfg  Config
		size int
	}{
		{small, 3 << 20},
		{Config{}, 20 << 20},
		{small, 0},
		{small, 100},
	} {
		data := randomBytes(17, tt.size)
		want := chunkAll(t, bytes.NewReader(data), tt.cfg)
		for _, workers := range []int{0, 1, 2, 7} {
			r := &randomReader{data, rand.New(rand.NewPCG(uint64(workers), 9)), 512 << 10}
			got, err := splitAll(context.Background(), r, tt.cfg, workers)
			if err != nil {
				t.Fatalf("%+v, %d workers: %v", tt.cfg, workers, err)
			}
			if len(got) != len(want) {
				t.Fatalf("%+v, %d workers: %d chunks, want %d", tt.cfg, workers, len(got), len(want))
			}
			var off int64
			for i, c := range got {
				if c.Offset != off || c.Size != len(want[i]) || len(c.Data) != c.Size ||
					c.Sum != sha256.Sum256(want[i]) || !bytes.Equal(c.Data, want[i]) {
					t.Fatalf("%+v, %d workers: chunk %d at %d, %d bytes, differs from the Chunker's at %d, %d bytes",
						tt.cfg, workers, i, c.Offset, c.Size, off, len(want[i]))
				}
				off += int64(c.Size)
			}
		}
	}
}

// TestSplitDataOwned checks that fn may keep and change the chunks it is
// given: they share no memory with each other or with Split's buffers.
func TestSplitDataOwned(t *testing.T) {
	data := randomBytes(19, 2<<20)
	var kept [][]byte
	err := Split(context.Background(), bytes.NewReader(data), small, 2, func(c Chunk) error {
		kept = append(kept, c.Data)
		for i := range c.Data {
			c.Data[i] ^= 0xff
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	joined := bytes.Join(kept, nil)
	for i := range joined {
		joined[i] ^= 0xff
	}
	if !bytes.Equal(joined, data) {
		t.Error("the chunks fn kept do not make up the data")
	}
}

func TestSplitStops(t *testing.T) {
	data := randomBytes(23, 2<<20)
	errStop := errors.New("stop")
	t.Run("fn error", func(t *testing.T) {
		calls := 0
		err := Split(context.Background(), bytes.NewReader(data), small, 2, func(c Chunk) error {
			calls++
			if calls == 3 {
				return fmt.Errorf("third: %w", errStop)
			}
			return nil
		})
		if !errors.Is(err, errStop) || calls != 3 {
			t.Errorf("Split = %v after %d calls, want errStop after 3", err, calls)
		}
	})
	t.Run("cancel", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		calls := 0
		err := Split(ctx, bytes.NewReader(data), small, 2, func(c Chunk) error {
			calls++
			if calls == 2 {
				cancel()
			}
			return nil
		})
		if !errors.Is(err, context.Canceled) || calls != 2 {
			t.Errorf("Split = %v after %d calls, want context.Canceled after 2", err, calls)
		}
	})
	t.Run("canceled before", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		for _, d := range [][]byte{data, nil} {
			chunks, err := splitAll(ctx, bytes.NewReader(d), small, 2)
			if !errors.Is(err, context.Canceled) || len(chunks) != 0 {
				t.Errorf("%d bytes: Split = %v after %d chunks, want context.Canceled and none", len(d), err, len(chunks))
			}
		}
	})
	t.Run("read error", func(t *testing.T) {
		want := chunkAll(t, bytes.NewReader(data), small)
		got, err := splitAll(context.Background(), &failReader{data: data, err: errBoom}, small, 2)
		if !errors.Is(err, errBoom) {
			t.Fatalf("Split = %v, want errBoom", err)
		}
		if len(got) >= len(want) {
			t.Fatalf("%d chunks before the error, the stream has only %d", len(got), len(want))
		}
		for i, c := range got {
			if !bytes.Equal(c.Data, want[i]) {
				t.Fatalf("chunk %d before the error differs", i)
			}
		}
	})
	t.Run("bad arguments", func(t *testing.T) {
		called := false
		fn := func(Chunk) error { called = true; return nil }
		if err := Split(context.Background(), bytes.NewReader(data), small, -1, fn); !errors.Is(err, ErrInvalidConfig) {
			t.Errorf("workers -1: %v, want ErrInvalidConfig", err)
		}
		if err := Split(context.Background(), bytes.NewReader(data), Config{Min: 1}, 1, fn); !errors.Is(err, ErrInvalidConfig) {
			t.Errorf("Min 1: %v, want ErrInvalidConfig", err)
		}
		if called {
			t.Error("fn called despite bad arguments")
		}
	})
}
