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
func Ingest(ctx context.Context, r io.Reader) (Manifest, error) {
	var m Manifest
	whole := make(chan []byte, 4)
	done := make(chan hash.Hash, 1)
	go func() {
		h := sha256.New()
		for b := range whole {
			h.Write(b)
		}
		done <- h
	}()
	err := cdc.Split(ctx, r, cdc.Config{}, 0, func(c cdc.Chunk) error {
		m.Blocks = append(m.Blocks, wire.Block{Ref: hex.EncodeToString(c.Sum[:]), Size: int64(c.Size)})
		m.Size += int64(c.Size)
		whole <- c.Data
		return nil
	})
	close(whole)
	h := <-done
	if err != nil {
		return Manifest{}, err
	}
	m.Hash = hex.EncodeToString(h.Sum(nil))
	return m, nil
}
