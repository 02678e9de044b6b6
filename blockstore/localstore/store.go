// Package localstore is a block node's durable blockstore.Store: blocks are
// appended to segment files and indexed in Pebble (ref → segment, offset,
// length, stored-at).
package localstore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cockroachdb/pebble/v2"

	"github.com/coffer-dev/coffer/blockstore"
	"github.com/coffer-dev/coffer/internal/pebbleopen"
)

// Store is the Pebble-indexed segment store. Open it with Open.
type Store struct {
	cfg Config
	log *slog.Logger
	db  *pebble.DB
	dir string // segment directory

	// ops is read-held by every call in flight; Close write-holds it.
	ops    sync.RWMutex
	closed bool

	locks refLocks

	segMu    sync.Mutex
	segs     map[uint32]*segment
	active   *segment
	nextSeg  uint32
	failed   error // a failed fdatasync: no more writes
	compactQ chan struct{}

	compactStop context.CancelFunc
	compactDone chan struct{}

	st counters
}

// counters are the Stats fields the store keeps itself.
type counters struct {
	blocks, bytes                     atomic.Int64
	recordBytes                       atomic.Int64 // bytes written to segments
	puts, dedups, bytesPut            atomic.Int64
	gets, bytesRead, deletes, corrupt atomic.Int64
	syncs, compaction                 atomic.Int64
}

var _ blockstore.Store = (*Store)(nil)

// Open opens the store in cfg.Dir, creating it if needed. It scans the
// index once to rebuild the per-segment live-byte counts and removes
// segments nothing points to (records of Puts that crashed before their
// index entry was written).
func Open(cfg Config) (*Store, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	s := &Store{
		cfg:      cfg,
		log:      cfg.Logger.With("component", "localstore"),
		dir:      segDir(cfg.Dir),
		segs:     make(map[uint32]*segment),
		compactQ: make(chan struct{}, 1),
	}
	if err := os.MkdirAll(s.dir, 0o700); err != nil {
		return nil, fmt.Errorf("localstore: %w", err)
	}
	if s.db, err = openIndex(filepath.Join(cfg.Dir, "index"), cfg, s.log); err != nil {
		return nil, err
	}
	if err := s.loadSegments(); err != nil {
		s.closeFiles()
		_ = s.db.Close()
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	s.compactStop = cancel
	s.compactDone = make(chan struct{})
	go s.compactor(ctx)
	return s, nil
}

func openIndex(dir string, cfg Config, log *slog.Logger) (*pebble.DB, error) {
	db, err := pebbleopen.Open(dir, cfg.IndexCacheBytes, log)
	if err != nil {
		return nil, fmt.Errorf("%w: localstore index %s: %v", blockstore.ErrCorrupt, dir, err)
	}
	return db, nil
}

// loadSegments opens the segment files, counts live bytes from the index,
// removes segments with nothing live and starts a fresh active segment.
func (s *Store) loadSegments() error {
	ids, err := listSegments(s.dir)
	if err != nil {
		return fmt.Errorf("localstore: %w", err)
	}
	for _, id := range ids {
		p := filepath.Join(s.dir, segmentName(id))
		f, err := os.OpenFile(p, os.O_RDWR, 0)
		if err != nil {
			return fmt.Errorf("localstore: open segment: %w", err)
		}
		fi, err := f.Stat()
		if err != nil {
			_ = f.Close()
			return fmt.Errorf("localstore: %w", err)
		}
		s.segs[id] = s.newSegment(id, p, f, fi.Size())
		s.nextSeg = max(s.nextSeg, id+1)
	}
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: []byte{prefixBlock}, UpperBound: []byte{prefixBlock + 1}})
	if err != nil {
		return fmt.Errorf("localstore: index: %w", err)
	}
	type entry struct {
		ref blockstore.Ref
		loc location
	}
	var torn []entry
	var last [2]uint32 // the two highest segments with live records
	for ok := it.First(); ok; ok = it.Next() {
		loc, valid := decodeLocation(it.Value())
		seg := s.segs[loc.seg]
		if !valid || len(it.Key()) != 33 || seg == nil {
			key := slices.Clone(it.Key())
			_ = it.Close()
			return fmt.Errorf("%w: localstore index entry %x names no segment file (wrong or damaged directory)", blockstore.ErrCorrupt, key)
		}
		ref := blockstore.Ref(it.Key()[1:])
		if loc.off+loc.recordLen() > seg.size {
			// A Put in flight at a crash: its index entry became durable
			// but its record did not (the two are synced in parallel). It
			// was never acknowledged.
			torn = append(torn, entry{ref, loc})
			continue
		}
		seg.live += loc.recordLen()
		s.st.blocks.Add(1)
		s.st.bytes.Add(int64(loc.length))
		if loc.seg > last[0] {
			last[0], last[1] = loc.seg, last[0]
		} else if loc.seg > last[1] && loc.seg != last[0] {
			last[1] = loc.seg
		}
	}
	if err := it.Close(); err != nil {
		return fmt.Errorf("localstore: index: %w", err)
	}
	for _, e := range torn {
		if err := s.dropIndexEntry(e.ref, e.loc); err != nil {
			return err
		}
	}
	// Records that were being written at a crash can only be in the last
	// segment (or the one before it, for writers that reserved space just
	// before a roll). Their index entries may be durable while their bytes
	// are not: verify those segments' records now, so Has never reports a
	// copy this node does not really have.
	dropped := len(torn)
	for i, id := range last {
		if (i == 1 && id == last[0]) || s.segs[id] == nil || s.segs[id].live == 0 {
			continue
		}
		n, err := s.verifySegment(id)
		if err != nil {
			return err
		}
		dropped += n
	}
	if dropped > 0 {
		s.log.Warn("dropped index entries of records not fully written before a crash", "count", dropped)
	}
	removed := false
	for id, seg := range s.segs {
		if seg.live == 0 {
			_ = seg.f.Close()
			if err := os.Remove(seg.path); err != nil {
				return fmt.Errorf("localstore: %w", err)
			}
			delete(s.segs, id)
			removed = true
		}
	}
	if removed {
		if err := syncDir(s.dir); err != nil {
			return fmt.Errorf("localstore: %w", err)
		}
	}
	return s.rollLocked()
}

// dropIndexEntry removes an index entry found bad while opening (its
// record was not durable), adjusting the counts loadSegments made.
func (s *Store) dropIndexEntry(ref blockstore.Ref, loc location) error {
	b := s.db.NewBatch()
	defer b.Close()
	_ = b.Delete(blockKey(ref), nil)
	_ = b.Delete(segKey(loc.seg, loc.off), nil)
	if err := b.Commit(pebble.Sync); err != nil {
		return fmt.Errorf("localstore: index: %w", err)
	}
	return nil
}

// verifySegment reads and verifies every indexed record of segment id
// while opening, dropping the index entries of bad ones. It returns how
// many it dropped.
func (s *Store) verifySegment(id uint32) (int, error) {
	recs, err := s.segmentContents(id)
	if err != nil {
		return 0, err
	}
	seg := s.segs[id]
	dropped := 0
	for _, r := range recs {
		ref := r.ref
		loc, ok, err := s.lookup(ref)
		if err != nil {
			return dropped, err
		}
		if !ok || loc.seg != id || loc.off != r.off {
			continue
		}
		if buf, err := s.readRecord(ref, loc); recordProblem(buf, err, ref, loc.length) == "" {
			continue
		}
		if err := s.dropIndexEntry(ref, loc); err != nil {
			return dropped, err
		}
		seg.live -= loc.recordLen()
		s.st.blocks.Add(-1)
		s.st.bytes.Add(-int64(loc.length))
		dropped++
	}
	return dropped, nil
}

// rollLocked seals the active segment and starts a new one. segMu held (or
// not yet shared).
func (s *Store) rollLocked() error {
	id := s.nextSeg
	p := filepath.Join(s.dir, segmentName(id))
	f, err := os.OpenFile(p, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return diskFull(err, "localstore: new segment")
	}
	if err := syncDir(s.dir); err != nil {
		_ = f.Close()
		_ = os.Remove(p)
		return diskFull(err, "localstore: new segment")
	}
	seg := s.newSegment(id, p, f, 0)
	s.segs[id] = seg
	s.nextSeg = id + 1
	prev := s.active
	s.active = seg
	if prev != nil {
		s.maybeCompactLocked(prev)
	}
	return nil
}

// enter admits a call; the caller must call s.ops.RUnlock when done.
func (s *Store) enter(ctx context.Context) error {
	s.ops.RLock()
	if s.closed {
		s.ops.RUnlock()
		return blockstore.ErrClosed
	}
	if err := ctx.Err(); err != nil {
		s.ops.RUnlock()
		return err
	}
	return nil
}

// Close stops the compactor, waits for calls in flight and closes the
// index and segment files. Closing twice returns nil.
func (s *Store) Close() error {
	s.compactStop()
	<-s.compactDone
	s.ops.Lock()
	defer s.ops.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	err := s.db.Close()
	s.closeFiles()
	return err
}

func (s *Store) closeFiles() {
	s.segMu.Lock()
	defer s.segMu.Unlock()
	for _, seg := range s.segs {
		_ = seg.f.Close()
	}
}

// lookup reads ref's index entry.
func (s *Store) lookup(ref blockstore.Ref) (location, bool, error) {
	v, closer, err := s.db.Get(blockKey(ref))
	if errors.Is(err, pebble.ErrNotFound) {
		return location{}, false, nil
	}
	if err != nil {
		return location{}, false, fmt.Errorf("localstore: index: %w", err)
	}
	loc, ok := decodeLocation(v)
	_ = closer.Close()
	if !ok {
		return location{}, false, fmt.Errorf("%w: localstore index entry for %s", blockstore.ErrCorrupt, ref.Short())
	}
	return loc, true, nil
}

// acquire pins a segment's file for I/O; release unpins it.
func (s *Store) acquire(id uint32) *segment {
	s.segMu.Lock()
	defer s.segMu.Unlock()
	seg := s.segs[id]
	if seg == nil || seg.removed {
		return nil
	}
	seg.users++
	return seg
}

func (s *Store) release(seg *segment) {
	s.segMu.Lock()
	seg.users--
	f := s.reapLocked(seg)
	s.segMu.Unlock()
	s.unlink(seg, f)
}

// reapLocked detaches the file of a removed segment nobody uses any more
// and returns it (nil if the segment is still in use or already reaped);
// the caller passes it to unlink after releasing segMu, so no disk I/O
// happens under the lock.
func (s *Store) reapLocked(seg *segment) *os.File {
	if !seg.removed || seg.users > 0 || seg.f == nil {
		return nil
	}
	f := seg.f
	seg.f = nil
	return f
}

// unlink closes and removes a reaped segment's file (f nil: nothing to do).
func (s *Store) unlink(seg *segment, f *os.File) {
	if f == nil {
		return
	}
	_ = f.Close()
	if err := os.Remove(seg.path); err != nil && !errors.Is(err, os.ErrNotExist) {
		s.log.Warn("remove compacted segment", "path", seg.path, "err", err)
	}
	if err := syncDir(s.dir); err != nil {
		s.log.Warn("sync segment dir", "err", err)
	}
}

// Put implements blockstore.Store.
func (s *Store) Put(ctx context.Context, ref blockstore.Ref, data []byte) error {
	if len(data) > s.cfg.MaxBlockSize {
		return fmt.Errorf("%w: %d bytes > %d", blockstore.ErrTooLarge, len(data), s.cfg.MaxBlockSize)
	}
	if err := s.enter(ctx); err != nil {
		return err
	}
	defer s.ops.RUnlock()
	if err := ref.Verify(data); err != nil {
		return err
	}
	unlock := s.locks.lock(ref)
	defer unlock()
	if err := ctx.Err(); err != nil {
		return err
	}
	loc, ok, err := s.lookup(ref)
	if err != nil {
		return err
	}
	now := s.cfg.Now().UnixNano()
	if ok {
		if s.intact(ref, loc) {
			// Already stored: refresh StoredAt, durably, so the GC grace
			// period protects the upload that relies on this copy.
			loc.storedAt = now
			if err := s.db.Set(blockKey(ref), loc.encode(), pebble.Sync); err != nil {
				return diskFull(err, "localstore: index")
			}
			s.st.dedups.Add(1)
			return nil
		}
		// The stored copy rotted: drop it and store the good bytes we were
		// given (no repair needed, so no OnCorrupt).
		if err := s.unindex(ref, loc); err != nil {
			return err
		}
		s.st.corrupt.Add(1)
		s.log.Warn("corrupt block copy replaced by a Put", "ref", ref.String(), "segment", loc.seg, "offset", loc.off)
	}
	loc, seg, ticket, err := s.appendRecord(ref, data, now)
	if err != nil {
		return err
	}
	// The record's fdatasync and the index commit run in parallel: the
	// index entry may become durable before the bytes, which is safe
	// because the Put is acknowledged only after both, Open drops or
	// verifies what a crash can leave in between (see loadSegments), and
	// every read verifies anyway.
	synced := make(chan error, 1)
	go func() { synced <- seg.sync.wait(ticket) }()
	ierr := s.commitLocation(ref, loc, nil)
	if derr := <-synced; derr != nil {
		s.fail(derr)
		if ierr == nil {
			// The bytes may be lost: do not leave the entry behind.
			_ = s.unindex(ref, loc)
		}
		s.unpin(seg)
		return fmt.Errorf("localstore: %w", derr)
	}
	s.unpin(seg)
	if ierr != nil {
		return ierr
	}
	s.st.puts.Add(1)
	s.st.bytesPut.Add(int64(len(data)))
	s.st.blocks.Add(1)
	s.st.bytes.Add(int64(len(data)))
	return nil
}

// writeRecord appends a record for the block and returns once it is
// durable. On success the segment stays pinned as being written (so
// compaction cannot take it for dead before the index points into it):
// the caller unpins it once commitLocation has counted the record live.
// On failure the reserved space is dead (never indexed) and nothing stays
// pinned.
func (s *Store) writeRecord(ref blockstore.Ref, data []byte, storedAt int64) (location, *segment, error) {
	loc, seg, ticket, err := s.appendRecord(ref, data, storedAt)
	if err != nil {
		return location{}, nil, err
	}
	if err := seg.sync.wait(ticket); err != nil {
		s.unpin(seg)
		s.fail(err)
		return location{}, nil, fmt.Errorf("localstore: %w", err)
	}
	return loc, seg, nil
}

// appendRecord writes the block's record to the end of the active segment
// (to the page cache) and returns its location, the segment pinned as
// being written, and the sync ticket that makes the record durable.
func (s *Store) appendRecord(ref blockstore.Ref, data []byte, storedAt int64) (location, *segment, uint64, error) {
	recLen := headerSize + int64(len(data))
	seg, off, err := s.reserve(recLen)
	if err != nil {
		return location{}, nil, 0, err
	}
	var hdr [headerSize]byte
	encodeHeader(hdr[:], ref, len(data))
	_, err = seg.f.WriteAt(hdr[:], off)
	if err == nil {
		_, err = seg.f.WriteAt(data, off+headerSize)
	}
	if err != nil {
		s.unpin(seg)
		return location{}, nil, 0, diskFull(err, "localstore: write block")
	}
	s.st.recordBytes.Add(recLen)
	return location{seg: seg.id, off: off, length: len(data), storedAt: storedAt}, seg, seg.sync.ticket(), nil
}

// unpin ends a write's hold on its segment.
func (s *Store) unpin(seg *segment) {
	s.segMu.Lock()
	seg.writers--
	seg.users--
	s.maybeCompactLocked(seg)
	f := s.reapLocked(seg)
	s.segMu.Unlock()
	s.unlink(seg, f)
}

// reserve claims recLen bytes at the end of the active segment, rolling to
// a new segment when it is full, after checking the free-space reserve.
func (s *Store) reserve(recLen int64) (*segment, int64, error) {
	free, err := freeBytes(s.dir)
	if err != nil {
		return nil, 0, fmt.Errorf("localstore: statfs: %w", err)
	}
	if free-recLen < s.cfg.MinFreeBytes {
		return nil, 0, fmt.Errorf("%w: %d bytes free, a %d-byte block would leave less than the %d-byte reserve",
			blockstore.ErrDiskFull, free, recLen, s.cfg.MinFreeBytes)
	}
	s.segMu.Lock()
	defer s.segMu.Unlock()
	if s.failed != nil {
		return nil, 0, fmt.Errorf("localstore: writes stopped after a failed sync: %w", s.failed)
	}
	if s.active.size > 0 && s.active.size+recLen > s.cfg.SegmentSize {
		if err := s.rollLocked(); err != nil {
			return nil, 0, err
		}
	}
	seg := s.active
	off := seg.size
	seg.size += recLen
	seg.writers++
	seg.users++
	return seg, off, nil
}

// fail stops all further writes after a failed fdatasync: the kernel may
// have dropped the dirty pages, so nothing written since the last good sync
// can be trusted. Reads go on; reopening the store resumes writes.
func (s *Store) fail(err error) {
	s.segMu.Lock()
	defer s.segMu.Unlock()
	if s.failed == nil {
		s.failed = err
		s.log.Error("segment sync failed; refusing further writes until reopened", "err", err)
	}
}

// commitLocation durably points ref at loc (and records loc in the
// segment's contents), replacing old if given (compaction), and counts
// loc's record live. The caller holds loc's segment pinned and unpins it
// only afterwards, so compaction never sees the segment as dead while the
// index points into it.
func (s *Store) commitLocation(ref blockstore.Ref, loc location, old *location) error {
	b := s.db.NewBatch()
	defer b.Close()
	_ = b.Set(blockKey(ref), loc.encode(), nil)
	_ = b.Set(segKey(loc.seg, loc.off), ref[:], nil)
	if old != nil {
		_ = b.Delete(segKey(old.seg, old.off), nil)
	}
	if err := b.Commit(pebble.Sync); err != nil {
		return diskFull(err, "localstore: index")
	}
	s.segMu.Lock()
	if seg := s.segs[loc.seg]; seg != nil {
		seg.live += loc.recordLen()
	}
	if old != nil {
		s.deadLocked(*old)
	}
	s.segMu.Unlock()
	return nil
}

// deadLocked accounts a record as garbage and schedules compaction of its
// segment when enough of it is dead. segMu held.
func (s *Store) deadLocked(loc location) {
	seg := s.segs[loc.seg]
	if seg == nil {
		return
	}
	seg.live -= loc.recordLen()
	s.maybeCompactLocked(seg)
}

// unindex removes ref's index entry if it still is loc. The ref lock is
// held.
func (s *Store) unindex(ref blockstore.Ref, loc location) error {
	b := s.db.NewBatch()
	defer b.Close()
	_ = b.Delete(blockKey(ref), nil)
	_ = b.Delete(segKey(loc.seg, loc.off), nil)
	if err := b.Commit(pebble.Sync); err != nil {
		return diskFull(err, "localstore: index")
	}
	s.segMu.Lock()
	s.deadLocked(loc)
	s.segMu.Unlock()
	s.st.blocks.Add(-1)
	s.st.bytes.Add(-int64(loc.length))
	return nil
}

// Get implements blockstore.Store.
func (s *Store) Get(ctx context.Context, ref blockstore.Ref) ([]byte, error) {
	if err := s.enter(ctx); err != nil {
		return nil, err
	}
	data, corrupt, err := s.get(ref)
	s.ops.RUnlock()
	if corrupt && s.cfg.OnCorrupt != nil {
		s.cfg.OnCorrupt(ref)
	}
	return data, err
}

func (s *Store) get(ref blockstore.Ref) (data []byte, corrupt bool, err error) {
	for attempt := 0; ; attempt++ {
		loc, ok, err := s.lookup(ref)
		if err != nil {
			return nil, false, err
		}
		if !ok {
			return nil, false, fmt.Errorf("%w: %s", blockstore.ErrNotFound, ref.Short())
		}
		buf, rerr := s.readRecord(ref, loc)
		if rerr == errMoved && attempt < 3 {
			continue // compaction moved the block between the lookup and now
		}
		why := recordProblem(buf, rerr, ref, loc.length)
		if why == "" {
			s.st.gets.Add(1)
			s.st.bytesRead.Add(int64(loc.length))
			return buf[headerSize:], false, nil
		}
		dropped, derr := s.dropCorrupt(ref, loc)
		if derr != nil {
			return nil, false, derr
		}
		if !dropped && attempt < 3 {
			continue // moved or replaced meanwhile: read the new copy
		}
		return nil, dropped, fmt.Errorf("%w: %s at segment %d offset %d: %s", blockstore.ErrCorrupt, ref.Short(), loc.seg, loc.off, why)
	}
}

var errMoved = errors.New("segment no longer exists")

// readRecord reads loc's whole record (header and data); errMoved if its
// segment has been compacted away.
func (s *Store) readRecord(ref blockstore.Ref, loc location) ([]byte, error) {
	seg := s.acquire(loc.seg)
	if seg == nil {
		return nil, errMoved
	}
	defer s.release(seg)
	buf := make([]byte, loc.recordLen())
	if _, err := seg.f.ReadAt(buf, loc.off); err != nil {
		return nil, err
	}
	return buf, nil
}

// intact reports whether the record at loc holds ref's bytes. The ref
// lock is held, so loc cannot move.
func (s *Store) intact(ref blockstore.Ref, loc location) bool {
	buf, err := s.readRecord(ref, loc)
	return recordProblem(buf, err, ref, loc.length) == ""
}

// recordProblem says why buf, a record read with error err, is not a good
// copy of ref with the given data length, or returns "" if it is.
func recordProblem(buf []byte, err error, ref blockstore.Ref, length int) string {
	switch {
	case err == errMoved:
		return "its segment file is gone"
	case errors.Is(err, io.EOF):
		return "record truncated"
	case err != nil:
		return err.Error()
	case !checkHeader(buf, ref, length):
		return "record header damaged"
	case ref.Verify(buf[headerSize:]) != nil:
		return "bytes do not match the ref"
	}
	return ""
}

// dropCorrupt removes ref's index entry if it still points at loc, and
// counts the corrupt copy.
func (s *Store) dropCorrupt(ref blockstore.Ref, loc location) (bool, error) {
	unlock := s.locks.lock(ref)
	defer unlock()
	cur, ok, err := s.lookup(ref)
	if err != nil {
		return false, err
	}
	if !ok || cur.seg != loc.seg || cur.off != loc.off {
		return false, nil
	}
	if err := s.unindex(ref, cur); err != nil {
		return false, err
	}
	s.st.corrupt.Add(1)
	s.log.Warn("corrupt block copy dropped", "ref", ref.String(), "segment", loc.seg, "offset", loc.off)
	return true, nil
}

// Has implements blockstore.Store.
func (s *Store) Has(ctx context.Context, refs []blockstore.Ref) ([]bool, error) {
	if err := s.enter(ctx); err != nil {
		return nil, err
	}
	defer s.ops.RUnlock()
	out := make([]bool, len(refs))
	for i, r := range refs {
		if i%256 == 255 {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
		}
		_, ok, err := s.lookup(r)
		if err != nil {
			return nil, err
		}
		out[i] = ok
	}
	return out, nil
}

// Delete implements blockstore.Store.
func (s *Store) Delete(ctx context.Context, ref blockstore.Ref, storedBefore time.Time) (bool, error) {
	if err := s.enter(ctx); err != nil {
		return false, err
	}
	defer s.ops.RUnlock()
	unlock := s.locks.lock(ref)
	defer unlock()
	loc, ok, err := s.lookup(ref)
	if err != nil || !ok {
		return false, err
	}
	if !loc.storedTime().Before(storedBefore) {
		return false, nil
	}
	if err := s.unindex(ref, loc); err != nil {
		return false, err
	}
	s.st.deletes.Add(1)
	return true, nil
}

// enumeratePage is how many index entries Enumerate reads per iterator, so a
// slow callback does not pin an iterator (and the files under it).
const enumeratePage = 1024

// Enumerate implements blockstore.Store.
func (s *Store) Enumerate(ctx context.Context, from blockstore.Ref, fn func(blockstore.BlockInfo) error) error {
	if fn == nil {
		return fmt.Errorf("%w: nil Enumerate callback", blockstore.ErrInvalidArgument)
	}
	lower := blockKey(from)
	for {
		page, err := s.enumeratePage(ctx, lower)
		if err != nil {
			return err
		}
		for _, info := range page {
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
		if len(page) < enumeratePage {
			return nil
		}
		last := page[len(page)-1].Ref
		lower = append(blockKey(last), 0) // the next key after last
	}
}

func (s *Store) enumeratePage(ctx context.Context, lower []byte) ([]blockstore.BlockInfo, error) {
	if err := s.enter(ctx); err != nil {
		return nil, err
	}
	defer s.ops.RUnlock()
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: lower, UpperBound: []byte{prefixBlock + 1}})
	if err != nil {
		return nil, fmt.Errorf("localstore: index: %w", err)
	}
	page := make([]blockstore.BlockInfo, 0, 64)
	for ok := it.First(); ok && len(page) < enumeratePage; ok = it.Next() {
		loc, valid := decodeLocation(it.Value())
		if !valid || len(it.Key()) != 33 {
			key := slices.Clone(it.Key())
			_ = it.Close()
			return nil, fmt.Errorf("%w: localstore index entry %x", blockstore.ErrCorrupt, key)
		}
		page = append(page, blockstore.BlockInfo{Ref: blockstore.Ref(it.Key()[1:]), Size: int64(loc.length), StoredAt: loc.storedTime()})
	}
	if err := it.Close(); err != nil {
		return nil, fmt.Errorf("localstore: index: %w", err)
	}
	return page, nil
}

// Stats implements blockstore.Store.
func (s *Store) Stats(ctx context.Context) (blockstore.Stats, error) {
	if err := s.enter(ctx); err != nil {
		return blockstore.Stats{}, err
	}
	defer s.ops.RUnlock()
	m := s.db.Metrics()
	var indexWritten int64
	indexWritten += int64(m.WAL.BytesWritten)
	for _, l := range m.Levels {
		indexWritten += int64(l.TableBytesFlushed + l.TableBytesCompacted + l.BlobBytesFlushed + l.BlobBytesCompacted)
	}
	var segBytes int64
	s.segMu.Lock()
	for _, seg := range s.segs {
		if !seg.removed {
			segBytes += seg.size
		}
	}
	s.segMu.Unlock()
	free, _ := freeBytes(s.cfg.Dir)
	return blockstore.Stats{
		FreeBytes:    free,
		Blocks:       s.st.blocks.Load(),
		Bytes:        s.st.bytes.Load(),
		DiskBytes:    segBytes + int64(m.DiskSpaceUsage()),
		BytesWritten: s.st.recordBytes.Load() + indexWritten,
		Puts:         s.st.puts.Load(),
		Dedups:       s.st.dedups.Load(),
		BytesPut:     s.st.bytesPut.Load(),
		Gets:         s.st.gets.Load(),
		BytesRead:    s.st.bytesRead.Load(),
		Deletes:      s.st.deletes.Load(),
		Corrupt:      s.st.corrupt.Load(),
		Syncs:        s.st.syncs.Load(),
		Compaction:   s.st.compaction.Load(),
	}, nil
}

// Location is where a block's bytes live on disk.
type Location struct {
	Path   string // the segment file
	Offset int64  // of the block's first data byte
	Length int64
}

// Locate returns where ref's bytes are stored, for operators' tools and for
// tests that damage a copy on disk. A block not stored is ErrNotFound.
func (s *Store) Locate(ctx context.Context, ref blockstore.Ref) (Location, error) {
	if err := s.enter(ctx); err != nil {
		return Location{}, err
	}
	defer s.ops.RUnlock()
	loc, ok, err := s.lookup(ref)
	if err != nil {
		return Location{}, err
	}
	if !ok {
		return Location{}, fmt.Errorf("%w: %s", blockstore.ErrNotFound, ref.Short())
	}
	return Location{
		Path:   filepath.Join(s.dir, segmentName(loc.seg)),
		Offset: loc.off + headerSize,
		Length: int64(loc.length),
	}, nil
}

// refLocks serialises the operations on one ref (Put, Delete, dropping a
// corrupt copy, compaction's move) without a global lock.
type refLocks struct {
	mu sync.Mutex
	m  map[blockstore.Ref]*refLock
}

type refLock struct {
	mu   sync.Mutex
	refs int
}

func (l *refLocks) lock(ref blockstore.Ref) (unlock func()) {
	l.mu.Lock()
	if l.m == nil {
		l.m = make(map[blockstore.Ref]*refLock)
	}
	e := l.m[ref]
	if e == nil {
		e = &refLock{}
		l.m[ref] = e
	}
	e.refs++
	l.mu.Unlock()
	e.mu.Lock()
	return func() {
		e.mu.Unlock()
		l.mu.Lock()
		e.refs--
		if e.refs == 0 {
			delete(l.m, ref)
		}
		l.mu.Unlock()
	}
}
