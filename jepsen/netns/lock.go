package netns

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"golang.org/x/sys/unix"
)

// A run is owned by whoever holds the flock on its lock file
// StateDir/run-<run>.lock. The kernel drops the flock when the owner's
// process dies, however it dies, so "lock free" means "owner dead" without
// trusting PIDs (which are reused). The file also holds the owner's state,
// for people and for Sweep's log.

// state is the content of a run's lock file.
type state struct {
	PID     int       `json:"pid"`
	Prefix  string    `json:"prefix"`
	Run     string    `json:"run"`
	Subnet  string    `json:"subnet"`
	Hosts   int       `json:"hosts"`
	Created time.Time `json:"created"`
}

// errBusy: another open file description holds the lock.
var errBusy = errors.New("lock held")

func lockPath(run string) string { return filepath.Join(StateDir, "run-"+run+".lock") }

// tryLock opens (creating if needed) and flocks path without blocking. It
// returns errBusy if the lock is held. After locking it checks that path
// still names the locked file: a sweeper removes a dead run's file while
// holding its lock, and a lock on an unlinked file protects nothing.
func tryLock(path string) (*os.File, error) {
	for {
		f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
		if err != nil {
			return nil, err
		}
		if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
			f.Close()
			if errors.Is(err, unix.EWOULDBLOCK) {
				return nil, errBusy
			}
			return nil, fmt.Errorf("flock %s: %w", path, err)
		}
		var held, named unix.Stat_t
		if err := unix.Fstat(int(f.Fd()), &held); err != nil {
			f.Close()
			return nil, err
		}
		if err := unix.Stat(path, &named); err == nil && named.Ino == held.Ino && named.Dev == held.Dev {
			return f, nil
		}
		f.Close() // removed or replaced meanwhile: start again
	}
}

// lockWait is tryLock that retries until ctx is done.
func lockWait(ctx context.Context, path string) (*os.File, error) {
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		f, err := tryLock(path)
		if !errors.Is(err, errBusy) {
			return f, err
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("waiting for %s: %w", path, context.Cause(ctx))
		case <-tick.C:
		}
	}
}

func writeState(f *os.File, st state) error {
	b, err := json.Marshal(st)
	if err != nil {
		return err
	}
	if err := f.Truncate(0); err != nil {
		return err
	}
	_, err = f.WriteAt(append(b, '\n'), 0)
	return err
}

// readState reads a lock file's state; an empty or unreadable file gives
// the zero state (its creator died before writing it).
func readState(f *os.File) state {
	var st state
	b, err := io.ReadAll(io.NewSectionReader(f, 0, 1<<16))
	if err == nil {
		_ = json.Unmarshal(b, &st)
	}
	return st
}

func readStateFile(path string) state {
	f, err := os.Open(path)
	if err != nil {
		return state{}
	}
	defer f.Close()
	return readState(f)
}
