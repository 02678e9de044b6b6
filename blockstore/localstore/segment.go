package localstore

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/coffer-dev/coffer/blockstore"
)

// segment is one append-only file of block records.
type segment struct {
	id   uint32
	path string
	f    *os.File

	// Guarded by Store.segMu.
	size    int64 // bytes reserved so far (the next record's offset)
	live    int64 // bytes of records the index points to
	users   int   // readers and writers using f right now
	writers int   // writers that reserved space and have not finished
	removed bool  // compacted away: close and unlink when users reaches 0

	sync syncer
}

// syncer shares fdatasyncs among concurrent writers of one file: a writer
// that finished its WriteAt takes a ticket and waits until a sync that
// started after its ticket completes; one of the waiters runs that sync for
// all of them (group commit).
type syncer struct {
	mu       sync.Mutex
	cond     *sync.Cond
	written  uint64 // tickets handed out (writes complete in the page cache)
	synced   uint64 // every ticket <= synced is durable
	running  bool
	err      error // a failed sync poisons the file: what is durable is unknown
	syncFn   func() error
	onSynced func()
}

func (s *syncer) init(syncFn func() error, onSynced func()) {
	s.cond = sync.NewCond(&s.mu)
	s.syncFn = syncFn
	s.onSynced = onSynced
}

// ticket records that a write to the file has completed.
func (s *syncer) ticket() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.written++
	return s.written
}

// wait returns once ticket t is durable.
func (s *syncer) wait(t uint64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for s.synced < t {
		if s.err != nil {
			return s.err
		}
		if s.running {
			s.cond.Wait()
			continue
		}
		s.running = true
		target := s.written
		s.mu.Unlock()
		err := s.syncFn()
		s.mu.Lock()
		s.running = false
		if err != nil {
			s.err = err
		} else {
			s.synced = target
			if s.onSynced != nil {
				s.onSynced()
			}
		}
		s.cond.Broadcast()
	}
	return nil
}

// newSegment wires a segment's syncer to its file.
func (s *Store) newSegment(id uint32, path string, f *os.File, size int64) *segment {
	seg := &segment{id: id, path: path, f: f, size: size}
	seg.sync.init(func() error { return fdatasync(f) }, func() { s.st.syncs.Add(1) })
	return seg
}

func fdatasync(f *os.File) error {
	for {
		err := unix.Fdatasync(int(f.Fd()))
		if err != unix.EINTR {
			if err != nil {
				return fmt.Errorf("fdatasync %s: %w", f.Name(), err)
			}
			return nil
		}
	}
}

// syncDir makes a directory's entries (new or removed files) durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}

func segmentName(id uint32) string { return fmt.Sprintf("%08d.seg", id) }

// listSegments returns the segment ids in dir, ascending.
func listSegments(dir string) ([]uint32, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var ids []uint32
	for _, e := range ents {
		name, ok := strings.CutSuffix(e.Name(), ".seg")
		if !ok || e.IsDir() {
			continue
		}
		id, err := strconv.ParseUint(name, 10, 32)
		if err != nil {
			continue
		}
		ids = append(ids, uint32(id))
	}
	sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
	return ids, nil
}

func isNoSpace(err error) bool {
	return errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT)
}

// diskFull wraps err as ErrDiskFull when it is ENOSPC/EDQUOT.
func diskFull(err error, what string) error {
	if isNoSpace(err) {
		return fmt.Errorf("%w: %s: %v", blockstore.ErrDiskFull, what, err)
	}
	return fmt.Errorf("%s: %w", what, err)
}

// freeBytes returns the bytes available to this process on dir's file
// system.
func freeBytes(dir string) (int64, error) {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return 0, err
	}
	return int64(st.Bavail) * int64(st.Bsize), nil
}

func segDir(root string) string { return filepath.Join(root, "segments") }
