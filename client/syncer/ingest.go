package syncer

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"hash"
	"io"

	"github.com/coffer-dev/coffer/internal/cdc"
	"github.com/coffer-dev/coffer/internal/wire"
)

// Manifest describes a file's content: its size, SHA-256 and
// content-defined blocks.
type Manifest struct {
	Size   int64
	Hash   string
	Blocks []wire.Block
}

// Ingest reads r to its end and returns its manifest. Three stages run at
// once: reading and cutting (cdc), hashing each block (cdc's workers), and
// hashing the whole file, so that a two-core machine keeps both cores busy.
// The whole-file hash starts with the second block: a file of one block
// (every file under cdc.DefaultMin, most files) is hashed once, its hash
// being its block's.
func Ingest(ctx context.Context, r io.Reader) (Manifest, error) {
	var m Manifest
	whole := make(chan []byte, 4)
	done := make(chan hash.Hash, 1)
	started := false
	var first []byte
	var firstSum [sha256.Size]byte
	err := cdc.Split(ctx, r, cdc.Config{}, 0, func(c cdc.Chunk) error {
		m.Blocks = append(m.Blocks, wire.Block{Ref: hex.EncodeToString(c.Sum[:]), Size: int64(c.Size)})
		m.Size += int64(c.Size)
		switch {
		case len(m.Blocks) == 1:
			first, firstSum = c.Data, c.Sum
			return nil
		case !started:
			started = true
			go func() {
				h := sha256.New()
				for b := range whole {
					h.Write(b)
				}
				done <- h
			}()
			whole <- first
			first = nil
		}
		whole <- c.Data
		return nil
	})
	close(whole)
	var h hash.Hash
	if started {
		h = <-done
	}
	if err != nil {
		return Manifest{}, err
	}
	switch {
	case started:
		m.Hash = hex.EncodeToString(h.Sum(nil))
	case len(m.Blocks) == 1:
		m.Hash = hex.EncodeToString(firstSum[:])
	default:
		empty := sha256.Sum256(nil)
		m.Hash = hex.EncodeToString(empty[:])
	}
	return m, nil
}
