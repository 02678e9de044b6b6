// Package blocktest is the conformance suite every blockstore.Store implementation runs.
//
// An implementation's test calls Run with a function that opens a fresh,
// empty store for the Options the suite asks for:
//
//	func TestConformance(t *testing.T) {
//		blocktest.Run(t, func(t *testing.T, opts blocktest.Options) blocktest.Harness {
//			s, err := mystore.Open(mystore.Config{Dir: t.TempDir(), MaxBlockSize: opts.MaxBlockSize, Now: opts.Now, OnCorrupt: opts.OnCorrupt})
//			if err != nil {
//				t.Fatal(err)
//			}
//			return blocktest.Harness{Store: s}
//		})
//	}
//
// Where the contract in package blockstore leaves room for more than one
// reading, the suite checks the stricter one; each such place says so in a
// comment.
package blocktest

import (
	"testing"
	"time"

	"github.com/coffer-dev/coffer/blockstore"
)

// Options are what the suite asks of the store it opens. The open function
// passes them on to the implementation's Config.
type Options struct {
	// MaxBlockSize is the largest block the store must accept; 0 means
	// blockstore.DefaultMaxBlockSize. Most cases use a small value (64 KiB)
	// to stay fast.
	MaxBlockSize int
	// Now is the store's clock: the Now of a *Clock the suite controls.
	// StoredAt must be taken from it, to the nanosecond.
	Now func() time.Time
	// OnCorrupt must be called by the store, with the block's ref, when a
	// read finds a corrupt copy. The call may be asynchronous.
	OnCorrupt func(blockstore.Ref)
}

// Harness is an opened store and the test hooks its implementation offers.
type Harness struct {
	// Store is the fresh, empty store under test.
	Store blockstore.Store
	// Corrupt damages the stored copy of ref in place (for example by
	// flipping a byte of the stored block bytes) so that the next read
	// fails verification. The suite only corrupts non-empty blocks, and
	// only while the store is open. nil means the implementation cannot,
	// and the corruption cases are skipped.
	Corrupt func(t *testing.T, ref blockstore.Ref)
	// Reopen closes the store that is currently open (Store, or the one the
	// previous Reopen returned) and opens the same data again with the same
	// Options, returning the new store. Later calls to Corrupt must act on
	// the new store. nil means the store is not durable, and the durability
	// cases are skipped.
	Reopen func(t *testing.T) blockstore.Store
}

// testMaxBlockSize is the MaxBlockSize most cases use.
const testMaxBlockSize = 64 << 10

// opener opens a fresh, empty store; it is Run's open argument.
type opener = func(t *testing.T, opts Options) Harness

var cases = []struct {
	name string
	fn   func(t *testing.T, open opener)
}{
	{"RoundTrip", testRoundTrip},
	{"TooLarge", testTooLarge},
	{"DefaultMaxBlockSize", testDefaultMaxBlockSize},
	{"HashMismatch", testHashMismatch},
	{"NotFound", testNotFound},
	{"Idempotent", testIdempotent},
	{"Ownership", testOwnership},
	{"Has", testHas},
	{"Delete", testDelete},
	{"Enumerate", testEnumerate},
	{"EnumerateWhileMutating", testEnumerateWhileMutating},
	{"Stats", testStats},
	{"Concurrency", testConcurrency},
	{"ConcurrentDeleteAndPut", testConcurrentDeleteAndPut},
	{"ConcurrentDelete", testConcurrentDelete},
	{"Closed", testClosed},
	{"CloseWhileBusy", testCloseWhileBusy},
	{"Context", testContext},
	{"Corruption", testCorruption},
	{"Durability", testDurability},
}

// Run runs every case of the suite as a subtest of t. Each subtest calls
// open for a fresh, empty store and closes the store when it ends
// (t.Cleanup), which may be after the case closed it itself: closing an
// already closed store must return nil or an error wrapping
// blockstore.ErrClosed.
//
// open may call t.Fatal, t.TempDir and t.Cleanup on the t it is given (the
// subtest's); cleanups it registers run after the suite's Close.
func Run(t *testing.T, open func(t *testing.T, opts Options) Harness) {
	t.Helper()
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) { c.fn(t, open) })
	}
}
