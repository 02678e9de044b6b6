package raftmeta

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/coffer-dev/coffer/internal/pebbleopen"
	"github.com/coffer-dev/coffer/raftmeta/hclogslog"
	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
	"go.etcd.io/bbolt"
)

// RaftStores are a group's Raft log, stable store and snapshots on disk:
// DIR/raft.db (bbolt, fsync on every write) and DIR/snapshots/.
type RaftStores struct {
	Bolt      *raftboltdb.BoltStore // the log store and the stable store
	Snapshots *raft.FileSnapshotStore
}

// OpenRaftStores opens (creating if needed) the Raft stores under dir. A
// corrupt file gives an ErrCorruptStore naming it, never a panic.
func OpenRaftStores(dir string, log *slog.Logger) (st *RaftStores, err error) {
	if log == nil {
		log = slog.Default()
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("raft stores: %w", err)
	}
	path := filepath.Join(dir, "raft.db")
	defer func() {
		if r := recover(); r != nil {
			st, err = nil, fmt.Errorf("%w: %s: %v", ErrCorruptStore, path, r)
		}
	}()
	bolt, err := raftboltdb.New(raftboltdb.Options{
		Path:        path,
		BoltOptions: &bbolt.Options{Timeout: 2 * time.Second},
	})
	if err != nil {
		if errors.Is(err, bbolt.ErrTimeout) {
			return nil, fmt.Errorf("%s is locked by another process: %w", path, err)
		}
		return nil, fmt.Errorf("%w: %s: %v", ErrCorruptStore, path, err)
	}
	// Read both ends of the log now, so damage shows here.
	if _, err := bolt.FirstIndex(); err != nil {
		bolt.Close()
		return nil, fmt.Errorf("%w: %s: %v", ErrCorruptStore, path, err)
	}
	if last, err := bolt.LastIndex(); err != nil {
		bolt.Close()
		return nil, fmt.Errorf("%w: %s: %v", ErrCorruptStore, path, err)
	} else if last > 0 {
		var l raft.Log
		if err := bolt.GetLog(last, &l); err != nil {
			bolt.Close()
			return nil, fmt.Errorf("%w: %s: last entry %d: %v", ErrCorruptStore, path, last, err)
		}
	}
	// The store keeps its snapshots in dir/snapshots/<id>/.
	snaps, err := raft.NewFileSnapshotStoreWithLogger(dir, 2,
		hclogslog.New(log.With("component", "raft-snapshots"), hclog.Warn))
	if err != nil {
		bolt.Close()
		return nil, fmt.Errorf("snapshot store: %w", err)
	}
	return &RaftStores{Bolt: bolt, Snapshots: snaps}, nil
}

// Close closes the log and stable store.
func (s *RaftStores) Close() error { return s.Bolt.Close() }

// pebbleCacheBytes is the block cache of a node's state store.
const pebbleCacheBytes = 64 << 20

// OpenPebble opens (creating if needed) the Pebble instance that holds the
// state of every group on a node. A corrupt store gives ErrCorruptStore.
func OpenPebble(dir string, log *slog.Logger) (*pebble.DB, error) {
	if log == nil {
		log = slog.Default()
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("state store: %w", err)
	}
	db, err := pebbleopen.Open(dir, pebbleCacheBytes, log)
	if err != nil {
		if errors.Is(err, fs.ErrPermission) {
			return nil, fmt.Errorf("state store %s: %w", dir, err)
		}
		return nil, fmt.Errorf("%w: %s: %v", ErrCorruptStore, dir, err)
	}
	return db, nil
}
