package blockrpc

import (
	"testing"

	"github.com/coffer-dev/coffer/blockstore"
	"github.com/coffer-dev/coffer/blockstore/blocktest"
	"github.com/coffer-dev/coffer/blockstore/memstore"
)

// TestConformance runs the blockstore conformance suite against a Client
// talking over real TCP to a Server over a memstore.
func TestConformance(t *testing.T) {
	blocktest.Run(t, func(t *testing.T, opts blocktest.Options) blocktest.Harness {
		ms, ts := startMem(t, memstore.Config{MaxBlockSize: opts.MaxBlockSize, Now: opts.Now, OnCorrupt: opts.OnCorrupt},
			ServerConfig{MaxBlockSize: opts.MaxBlockSize})
		c := dial(t, ts.addr, ClientConfig{MaxBlockSize: opts.MaxBlockSize})
		return blocktest.Harness{
			Store: c,
			Corrupt: func(t *testing.T, ref blockstore.Ref) {
				if !ms.Corrupt(ref) {
					t.Fatalf("Corrupt(%s): the server's store does not hold it", ref.Short())
				}
			},
		}
	})
}
