package cdc

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"runtime"
	"sync"
)

// Chunk is one chunk of a stream, as Split hands it out.
type Chunk struct {
	Offset int64    // stream offset of the first byte
	Size   int      // len(Data)
	Sum    [32]byte // SHA-256 of Data
	Data   []byte   // the bytes; owned by the receiver
}

// Split reads r to its end, cutting it into chunks exactly as a Chunker
// with cfg would and hashing each with SHA-256, using workers goroutines
// to hash (0: runtime.GOMAXPROCS(0)) beside the one that reads and cuts.
// It calls fn for every chunk in stream order, one call at a time, from
// the goroutine that called Split. Each Chunk.Data is a fresh slice that
// fn may keep and modify.
//
// Split returns nil after the last chunk; the first error of fn, which
// stops it; a read error of r as is (see Chunker.Next); ctx.Err() if ctx
// ends first; or an error wrapping ErrInvalidConfig for an invalid cfg or
// workers < 0. Besides the chunks fn keeps, it holds at most 2*workers+4
// chunks and a read buffer of up to 2*Max bytes. Before it returns, every
// goroutine it started has ended and r is no longer read; a Read that
// blocks is not interrupted by ctx (close r for that).
func Split(ctx context.Context, r io.Reader, cfg Config, workers int, fn func(Chunk) error) error {
	if workers < 0 {
		return fmt.Errorf("%w: workers %d < 0", ErrInvalidConfig, workers)
	}
	if workers == 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	ch, err := New(r, cfg)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	type job struct {
		c    Chunk
		done chan struct{} // closed when c.Sum is set
	}
	jobs := make(chan *job, workers)
	order := make(chan *job, 2*workers+2)
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for j := range jobs {
				j.c.Sum = sha256.Sum256(j.c.Data)
				close(j.done)
			}
		})
	}
	var (
		readErr  error
		complete bool // the reader reached the end of r
	)
	wg.Go(func() {
		defer close(jobs)
		defer close(order)
		for ctx.Err() == nil {
			data, err := ch.Next()
			if err != nil {
				if err == io.EOF {
					complete = true
				} else {
					readErr = err
				}
				return
			}
			j := &job{
				c:    Chunk{Offset: ch.Offset() - int64(len(data)), Size: len(data), Data: bytes.Clone(data)},
				done: make(chan struct{}),
			}
			select {
			case order <- j:
			case <-ctx.Done():
				return
			}
			jobs <- j // the workers drain jobs until it is closed
		}
	})

	var fnErr error
	for j := range order {
		if fnErr != nil {
			continue // drain, so that the reader is never stuck on order
		}
		<-j.done
		if err := ctx.Err(); err != nil {
			fnErr = err
			continue
		}
		if err := fn(j.c); err != nil {
			fnErr = err
			cancel()
		}
	}
	wg.Wait()
	switch {
	case fnErr != nil:
		return fnErr
	case readErr != nil:
		return readErr
	case !complete:
		return ctx.Err() // the reader stopped for ctx
	}
	return nil
}
