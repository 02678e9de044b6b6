// Package memstore is an in-memory blockstore.Store for unit tests. It keeps
// the Store contract exactly (verification, conditional delete, stats) but
// nothing is durable.
package memstore

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/coffer-dev/coffer/blockstore"
)

// Config configures a Store. The zero value is usable.
type Config struct {
	// MaxBlockSize is the largest block accepted (default
	// blockstore.DefaultMaxBlockSize).
	MaxBlockSize int
	// Now is the clock (default time.Now); tests of grace periods set it.
	Now func() time.Time
	// OnCorrupt, if set, is called (without locks held) with the ref of a
	// copy that failed verification on read, so the owner can repair it.
	OnCorrupt func(blockstore.Ref)
}

type block struct {
	data     []byte
	size     int64 // len(data) when stored; Corrupt may change data's length
	storedAt time.Time
}

// Store is an in-memory block store. Use New.
type Store struct {
	cfg Config

	mu     sync.RWMutex
	blocks map[blockstore.Ref]*block
	stats  blockstore.Stats
	closed bool
}

var _ blockstore.Store = (*Store)(nil)

// New returns an empty store.
func New(cfg Config) (*Store, error) {
	if cfg.MaxBlockSize < 0 {
		return nil, fmt.Errorf("%w: memstore: MaxBlockSize %d < 0", blockstore.ErrInvalidConfig, cfg.MaxBlockSize)
	}
	if cfg.MaxBlockSize == 0 {
		cfg.MaxBlockSize = blockstore.DefaultMaxBlockSize
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Store{cfg: cfg, blocks: make(map[blockstore.Ref]*block)}, nil
}

func (s *Store) check(ctx context.Context) error {
	if s.closed {
		return blockstore.ErrClosed
	}
	return ctx.Err()
}

// Put implements blockstore.Store.
func (s *Store) Put(ctx context.Context, ref blockstore.Ref, data []byte) error {
	if len(data) > s.cfg.MaxBlockSize {
		return fmt.Errorf("%w: %d bytes > %d", blockstore.ErrTooLarge, len(data), s.cfg.MaxBlockSize)
	}
	if err := ref.Verify(data); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.check(ctx); err != nil {
		return err
	}
	now := s.cfg.Now()
	if b, ok := s.blocks[ref]; ok {
		b.storedAt = now
		s.stats.Dedups++
		return nil
	}
	s.blocks[ref] = &block{data: slices.Clone(data), size: int64(len(data)), storedAt: now}
	s.stats.Blocks++
	s.stats.Bytes += int64(len(data))
	s.stats.DiskBytes += int64(len(data))
	s.stats.BytesWritten += int64(len(data))
	s.stats.Puts++
	s.stats.BytesPut += int64(len(data))
	return nil
}

// Get implements blockstore.Store.
func (s *Store) Get(ctx context.Context, ref blockstore.Ref) ([]byte, error) {
	s.mu.RLock()
	if err := s.check(ctx); err != nil {
		s.mu.RUnlock()
		return nil, err
	}
	b, ok := s.blocks[ref]
	var data []byte
	if ok {
		data = slices.Clone(b.data)
	}
	s.mu.RUnlock()
	if !ok {
		return nil, fmt.Errorf("%w: %s", blockstore.ErrNotFound, ref.Short())
	}
	if err := ref.Verify(data); err != nil {
		s.dropCorrupt(ref, b)
		return nil, fmt.Errorf("%w: %s: %v", blockstore.ErrCorrupt, ref.Short(), err)
	}
	s.mu.Lock()
	s.stats.Gets++
	s.stats.BytesRead += int64(len(data))
	s.mu.Unlock()
	return data, nil
}

func (s *Store) dropCorrupt(ref blockstore.Ref, b *block) {
	s.mu.Lock()
	if cur, ok := s.blocks[ref]; ok && cur == b {
		delete(s.blocks, ref)
		s.stats.Blocks--
		s.stats.Bytes -= b.size
		s.stats.DiskBytes -= b.size
	}
	s.stats.Corrupt++
	s.mu.Unlock()
	if s.cfg.OnCorrupt != nil {
		s.cfg.OnCorrupt(ref)
	}
}

// Has implements blockstore.Store.
func (s *Store) Has(ctx context.Context, refs []blockstore.Ref) ([]bool, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if err := s.check(ctx); err != nil {
		return nil, err
	}
	out := make([]bool, len(refs))
	for i, r := range refs {
		_, out[i] = s.blocks[r]
	}
	return out, nil
}

// Delete implements blockstore.Store.
func (s *Store) Delete(ctx context.Context, ref blockstore.Ref, storedBefore time.Time) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.check(ctx); err != nil {
		return false, err
	}
	b, ok := s.blocks[ref]
	if !ok || !b.storedAt.Before(storedBefore) {
		return false, nil
	}
	delete(s.blocks, ref)
	s.stats.Blocks--
	s.stats.Bytes -= b.size
	s.stats.DiskBytes -= b.size
	s.stats.Deletes++
	return true, nil
}

// Enumerate implements blockstore.Store.
func (s *Store) Enumerate(ctx context.Context, from blockstore.Ref, fn func(blockstore.BlockInfo) error) error {
	if fn == nil {
		return fmt.Errorf("%w: nil callback", blockstore.ErrInvalidArgument)
	}
	s.mu.RLock()
	if err := s.check(ctx); err != nil {
		s.mu.RUnlock()
		return err
	}
	infos := make([]blockstore.BlockInfo, 0, len(s.blocks))
	for r, b := range s.blocks {
		if slices.Compare(r[:], from[:]) >= 0 {
			infos = append(infos, blockstore.BlockInfo{Ref: r, Size: b.size, StoredAt: b.storedAt})
		}
	}
	s.mu.RUnlock()
	slices.SortFunc(infos, func(a, b blockstore.BlockInfo) int { return slices.Compare(a.Ref[:], b.Ref[:]) })
	for _, info := range infos {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := fn(info); err != nil {
			if errors.Is(err, blockstore.ErrStop) {
				return nil
			}
			return err
		}
	}
	return nil
}

// Stats implements blockstore.Store.
func (s *Store) Stats(ctx context.Context) (blockstore.Stats, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if err := s.check(ctx); err != nil {
		return blockstore.Stats{}, err
	}
	return s.stats, nil
}

// Close implements blockstore.Store.
func (s *Store) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	s.blocks = nil
	return nil
}

// Corrupt flips one bit of the stored copy of ref, for tests of
// verification and repair. It reports whether the block was stored.
func (s *Store) Corrupt(ref blockstore.Ref) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	b, ok := s.blocks[ref]
	if !ok {
		return false
	}
	if len(b.data) == 0 {
		b.data = []byte{0}
	} else {
		b.data[len(b.data)/2] ^= 0x01
	}
	return true
}
