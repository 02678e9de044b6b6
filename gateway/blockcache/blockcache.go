// Package blockcache is the gateway's in-memory LRU cache of immutable,
// content-addressed blocks, bounded in bytes, with concurrent loads of the
// same block collapsed into one fetch.
//
// A block is named by its SHA-256 ([32]byte, the value of a
// blockstore.Ref), so a cached block is never stale: the cache needs no
// invalidation, only eviction.
package blockcache

import (
	"context"
	"errors"
	"fmt"
	"sync"
)

// DefaultMaxBytes is the bound of a Config with MaxBytes 0.
const DefaultMaxBytes = 256 << 20

// MinMaxBytes is the smallest positive MaxBytes Validate accepts: a smaller
// bound is almost certainly a unit mistake (MaxBytes counts bytes, not KiB
// or MiB) and would cache next to nothing.
const MinMaxBytes = 64 << 10

// EntryOverhead is what an entry is counted as beyond len(data): its key,
// list links, slice header and map slot.
const EntryOverhead = 128

// ErrInvalidConfig: a Config failed Validate (New returns it wrapped).
var ErrInvalidConfig = errors.New("invalid block cache config")

// Config configures a Cache.
type Config struct {
	// MaxBytes bounds the cache: the sum over entries of len(data) +
	// EntryOverhead never exceeds it. 0 means DefaultMaxBytes; a negative
	// value disables caching (Get always misses, Add keeps nothing, Load
	// still collapses concurrent fetches). A positive value must be at
	// least MinMaxBytes. Blocks larger than MaxBytes/8 are never cached, so
	// that one block cannot flush most of the cache.
	MaxBytes int64
}

// Validate reports the problems of c in one error wrapping
// ErrInvalidConfig, or nil if c is valid.
func (c Config) Validate() error {
	if c.MaxBytes > 0 && c.MaxBytes < MinMaxBytes {
		return fmt.Errorf("%w: MaxBytes %d < %d (it counts bytes; negative disables the cache)", ErrInvalidConfig, c.MaxBytes, MinMaxBytes)
	}
	return nil
}

// Stats are a cache's counters since New.
type Stats struct {
	// Hits and Misses count Get and Load calls answered from the cache or
	// not (a Load that waits for another caller's fetch is a miss).
	Hits, Misses uint64
	// Evictions counts entries dropped to make room.
	Evictions uint64
	// Bytes is the cache's size as bounded by MaxBytes (data plus
	// EntryOverhead per entry); Entries the number of blocks held.
	Bytes   int64
	Entries int
}

// Cache is an LRU cache of blocks. It is safe for concurrent use. The
// cached slices are shared: neither the cache nor anyone who gave a block
// to it or got one from it may modify them.
type Cache struct {
	max   int64 // < 0: disabled
	limit int64 // the largest block cached

	mu      sync.Mutex
	entries map[[32]byte]*entry
	lru     entry // sentinel of a ring: lru.next is the most recently used
	bytes   int64
	flights map[[32]byte]*flight
	stats   Stats // Bytes and Entries are filled in by Stats
}

type entry struct {
	ref        [32]byte
	data       []byte
	prev, next *entry
}

// flight is one fetch, shared by the Load calls waiting for it.
type flight struct {
	done    chan struct{} // closed once data and err are set
	data    []byte
	err     error
	waiters int                // callers still waiting, guarded by Cache.mu
	cancel  context.CancelFunc // cancels the fetch's context
}

// New returns an empty cache, or an error wrapping ErrInvalidConfig.
func New(cfg Config) (*Cache, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.MaxBytes == 0 {
		cfg.MaxBytes = DefaultMaxBytes
	}
	c := &Cache{
		max:     cfg.MaxBytes,
		limit:   cfg.MaxBytes / 8,
		entries: make(map[[32]byte]*entry),
		flights: make(map[[32]byte]*flight),
	}
	c.lru.next, c.lru.prev = &c.lru, &c.lru
	return c, nil
}

// Get returns the cached block ref and true, or nil and false. The caller
// must not modify the block.
func (c *Cache) Get(ref [32]byte) ([]byte, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e := c.entries[ref]; e != nil {
		c.stats.Hits++
		c.touch(e)
		return e.data, true
	}
	c.stats.Misses++
	return nil, false
}

// Add caches data as block ref, which the caller has verified to be its
// SHA-256. The cache keeps data itself, not a copy: nobody may modify it
// afterwards. Adding a cached block only marks it used; a block larger
// than MaxBytes/8, or any block of a disabled cache, is not cached. Least
// recently used blocks are evicted to make room.
func (c *Cache) Add(ref [32]byte, data []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.add(ref, data)
}

// Load returns block ref from the cache, or else from fetch, caching what
// fetch returns (errors are not cached). Concurrent Loads of a block that
// is not cached share one call of fetch, and all get its result.
//
// fetch runs in a goroutine of its own, with a context that carries the
// values of the ctx of the Load that started it (but not its deadline:
// fetch bounds its own time) and is canceled once no Load waits for it
// any more. A Load whose ctx ends returns ctx.Err() at
// once, while the fetch goes on for the other callers; a Load after that
// starts a new fetch. A Load with an ended ctx is still answered from the
// cache. The returned block must not be modified.
func (c *Cache) Load(ctx context.Context, ref [32]byte, fetch func(ctx context.Context) ([]byte, error)) ([]byte, error) {
	c.mu.Lock()
	if e := c.entries[ref]; e != nil {
		c.stats.Hits++
		c.touch(e)
		c.mu.Unlock()
		return e.data, nil
	}
	c.stats.Misses++
	if err := ctx.Err(); err != nil {
		c.mu.Unlock()
		return nil, err
	}
	f := c.flights[ref]
	if f == nil {
		fctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
		f = &flight{done: make(chan struct{}), cancel: cancel}
		c.flights[ref] = f
		go c.fetch(fctx, ref, f, fetch)
	}
	f.waiters++
	c.mu.Unlock()

	select {
	case <-f.done:
		return f.data, f.err
	case <-ctx.Done():
	}
	select {
	case <-f.done: // both ready: the result wins
		return f.data, f.err
	default:
	}
	c.mu.Lock()
	if f.waiters--; f.waiters == 0 {
		// Nobody waits any more: stop the fetch, and let the next Load
		// start afresh rather than join a canceled fetch.
		f.cancel()
		if c.flights[ref] == f {
			delete(c.flights, ref)
		}
	}
	c.mu.Unlock()
	return nil, ctx.Err()
}

// fetch runs flight f and publishes its result.
func (c *Cache) fetch(ctx context.Context, ref [32]byte, f *flight, fetch func(context.Context) ([]byte, error)) {
	defer f.cancel()
	data, err := fetch(ctx)
	c.mu.Lock()
	if c.flights[ref] == f {
		delete(c.flights, ref)
	}
	if err == nil {
		c.add(ref, data)
	}
	f.data, f.err = data, err
	c.mu.Unlock()
	close(f.done)
}

// Stats returns the cache's counters.
func (c *Cache) Stats() Stats {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := c.stats
	s.Bytes = c.bytes
	s.Entries = len(c.entries)
	return s
}

// add caches data under ref, evicting as needed. c.mu is held.
func (c *Cache) add(ref [32]byte, data []byte) {
	if e := c.entries[ref]; e != nil {
		c.touch(e)
		return
	}
	size := int64(len(data)) + EntryOverhead
	if c.max < 0 || int64(len(data)) > c.limit || size > c.max {
		return
	}
	for c.bytes+size > c.max {
		c.remove(c.lru.prev)
		c.stats.Evictions++
	}
	e := &entry{ref: ref, data: data}
	c.entries[ref] = e
	c.bytes += size
	c.pushFront(e)
}

// touch marks e most recently used.
func (c *Cache) touch(e *entry) {
	if c.lru.next == e {
		return
	}
	e.prev.next, e.next.prev = e.next, e.prev
	c.pushFront(e)
}

func (c *Cache) pushFront(e *entry) {
	e.prev, e.next = &c.lru, c.lru.next
	e.prev.next, e.next.prev = e, e
}

func (c *Cache) remove(e *entry) {
	e.prev.next, e.next.prev = e.next, e.prev
	e.prev, e.next = nil, nil
	delete(c.entries, e.ref)
	c.bytes -= int64(len(e.data)) + EntryOverhead
}
