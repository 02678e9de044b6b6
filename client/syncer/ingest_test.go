package syncer_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"math/rand/v2"
	"testing"

	"github.com/coffer-dev/coffer/client/syncer"
	"github.com/coffer-dev/coffer/internal/cdc"
)

// TestIngest checks the manifest of empty, one-block and many-block
// content: the whole-file hash (taken from the block's for one block),
// the size, and blocks that add up to the content.
func TestIngest(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, size := range []int{0, 1, 1000, cdc.DefaultMin - 1, cdc.DefaultMin + 1, 9 << 20} {
		data := make([]byte, size)
		for i := range data {
			data[i] = byte(rng.Uint32())
		}
		m, err := syncer.Ingest(context.Background(), bytes.NewReader(data))
		if err != nil {
			t.Fatalf("size %d: %v", size, err)
		}
		want := sha256.Sum256(data)
		if m.Hash != hex.EncodeToString(want[:]) || m.Size != int64(size) {
			t.Errorf("size %d: manifest hash %s size %d, want %x %d", size, m.Hash, m.Size, want, size)
		}
		var off int64
		for i, b := range m.Blocks {
			s := sha256.Sum256(data[off : off+b.Size])
			if b.Ref != hex.EncodeToString(s[:]) {
				t.Errorf("size %d: block %d ref %s does not hash its bytes", size, i, b.Ref)
			}
			off += b.Size
		}
		if off != int64(size) || (size > 0 && len(m.Blocks) == 0) {
			t.Errorf("size %d: blocks cover %d bytes (%d blocks)", size, off, len(m.Blocks))
		}
		if size >= 9<<20 && len(m.Blocks) < 3 {
			t.Errorf("size %d: %d blocks, want several", size, len(m.Blocks))
		}
	}
}
