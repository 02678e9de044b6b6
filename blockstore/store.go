package blockstore

import (
	"context"
	"time"
)

// Store is the contract of a block node's local store. Implementations:
// package localstore (Pebble index + append-only segment files, the
// product's store) and package memstore (in memory, for unit tests). Both
// pass the conformance suite in package blocktest.
//
// Every method is safe for concurrent use and takes ctx first; a method
// called after Close fails with ErrClosed.
type Store interface {
	// Put stores data under ref. It verifies that data hashes to ref
	// (ErrHashMismatch) and fits the maximum block size (ErrTooLarge)
	// before writing anything. It returns only once the block is durable
	// (fsynced). Putting a block that is already stored is a no-op that
	// succeeds, except that it refreshes the block's StoredAt (so garbage
	// collection's grace period protects an upload that dedups against an
	// old, unreferenced block). Put does not retain data after it returns.
	Put(ctx context.Context, ref Ref, data []byte) error
	// Get returns a copy of the block's bytes, owned by the caller. The
	// bytes are verified against ref on every read: a copy that fails is
	// never returned (ErrCorrupt; the copy is dropped and counted). A
	// block that is not stored is ErrNotFound.
	Get(ctx context.Context, ref Ref) ([]byte, error)
	// Has reports, for each ref, whether a (not known to be corrupt) copy
	// is stored. The result has len(refs) entries.
	Has(ctx context.Context, refs []Ref) ([]bool, error)
	// Delete removes the block if, and only if, its StoredAt is before
	// storedBefore, and reports whether it did. It is for garbage
	// collection only; the condition is checked atomically with Put's
	// refresh of StoredAt, so a block re-put after the collector decided to
	// delete it survives. A block that is not stored is (false, nil).
	Delete(ctx context.Context, ref Ref, storedBefore time.Time) (bool, error)
	// Enumerate calls fn for every stored block, in Ref order, starting at
	// the first Ref >= from (the zero Ref starts at the beginning), until
	// fn returns an error (which Enumerate returns; ErrStop ends it with
	// nil) or ctx is done. Blocks put or deleted during the walk may or may
	// not be seen.
	Enumerate(ctx context.Context, from Ref, fn func(BlockInfo) error) error
	// Stats returns the store's counters.
	Stats(ctx context.Context) (Stats, error)
	// Close releases the store. It waits for calls in flight to finish.
	Close() error
}

// ErrStop, returned by an Enumerate callback, ends the walk without error.
var ErrStop = stopError{}

type stopError struct{}

func (stopError) Error() string { return "stop enumeration" }

// BlockInfo describes one stored block.
type BlockInfo struct {
	Ref  Ref
	Size int64
	// StoredAt is when the block was first stored or last re-put.
	StoredAt time.Time
}

// Stats are a store's counters. Counters (Puts, BytesPut, ...) count since
// the store was opened; Blocks, Bytes and DiskBytes are current totals.
type Stats struct {
	Blocks int64 // blocks stored
	Bytes  int64 // their total size

	// DiskBytes is the space the store takes on disk (segment files plus
	// index), including garbage not yet compacted away.
	DiskBytes int64
	// BytesWritten counts every byte the store wrote to disk (block
	// records, index WAL and tables, compactions); BytesWritten/BytesPut
	// is its write amplification.
	BytesWritten int64

	Puts       int64 // Put calls that stored a new block
	Dedups     int64 // Put calls for a block already stored
	BytesPut   int64 // bytes of newly stored blocks
	Gets       int64 // successful Get calls
	BytesRead  int64 // bytes returned by Get
	Deletes    int64 // blocks removed by Delete
	Corrupt    int64 // copies that failed verification on read
	Syncs      int64 // fsyncs of block data (concurrent Puts share them)
	Compaction int64 // bytes rewritten by segment compaction

	// FreeBytes is the free space of the file system the store is on
	// (0 when unknown, as for an in-memory store).
	FreeBytes int64
}

// WriteAmplification returns BytesWritten/BytesPut (0 before any Put).
func (s Stats) WriteAmplification() float64 {
	if s.BytesPut == 0 {
		return 0
	}
	return float64(s.BytesWritten) / float64(s.BytesPut)
}
