package syncer

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	bolt "go.etcd.io/bbolt"
)

// The state database: one bbolt file beside the folder's config.
//
//	meta:   "root" → the remote folder's path; "root_id" → its node ID;
//	        "user" → the user name; "cursor" → the change feed position the
//	        remote tree reflects (8 bytes, big-endian)
//	base:   relative path → Base (JSON)
//	remote: node ID (8 bytes) → Remote (JSON), every live node below the
//	        root (the root itself excluded)
var (
	bucketMeta   = []byte("meta")
	bucketBase   = []byte("base")
	bucketRemote = []byte("remote")
	// receipts: block ref → storedReceipt (JSON): receipts of blocks sent
	// but maybe not yet committed, so a sync that restarts after a crash
	// does not send them again.
	bucketReceipts = []byte("receipts")
)

// receiptTTL is how long a stored receipt is used: the server's are
// valid for 6 hours.
const receiptTTL = 5 * time.Hour

type storedReceipt struct {
	Receipt string `json:"r"`
	Got     int64  `json:"t"` // Unix seconds
}

// StateFile is the state database's name inside Config.StateDir.
const StateFile = "state.db"

// ErrStateDB wraps failures of the state database: no later round fixes
// them.
var ErrStateDB = errors.New("state database")

// ErrLocked is returned when another sync of the same folder holds the
// state database.
var ErrLocked = errors.New("another coffer sync is running on this folder")

// state is the open state database.
type state struct {
	db *bolt.DB
}

func openState(dir string, readOnly bool) (*state, error) {
	if !readOnly {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, err
		}
	}
	db, err := bolt.Open(filepath.Join(dir, StateFile), 0o600, &bolt.Options{Timeout: time.Second, ReadOnly: readOnly})
	if errors.Is(err, bolt.ErrTimeout) {
		return nil, ErrLocked
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrStateDB, err)
	}
	if !readOnly {
		err = db.Update(func(tx *bolt.Tx) error {
			for _, b := range [][]byte{bucketMeta, bucketBase, bucketRemote, bucketReceipts} {
				if _, err := tx.CreateBucketIfNotExists(b); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			db.Close()
			return nil, fmt.Errorf("%w: %w", ErrStateDB, err)
		}
	}
	return &state{db: db}, nil
}

func (s *state) close() error { return s.db.Close() }

func u64key(v uint64) []byte { return binary.BigEndian.AppendUint64(nil, v) }

// meta reads a meta value ("" if unset).
func (s *state) meta(key string) (string, error) {
	var v string
	err := s.db.View(func(tx *bolt.Tx) error {
		if b := tx.Bucket(bucketMeta); b != nil {
			v = string(b.Get([]byte(key)))
		}
		return nil
	})
	return v, err
}

func (s *state) setMeta(kv map[string]string) error {
	return dbErr(s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketMeta)
		for k, v := range kv {
			if err := b.Put([]byte(k), []byte(v)); err != nil {
				return err
			}
		}
		return nil
	}))
}

// load reads the base and remote trees and the cursor.
func (s *state) load() (map[string]*Base, map[uint64]*Remote, uint64, error) {
	base := map[string]*Base{}
	remote := map[uint64]*Remote{}
	var cursor uint64
	err := s.db.View(func(tx *bolt.Tx) error {
		if b := tx.Bucket(bucketMeta); b != nil {
			if v := b.Get([]byte("cursor")); len(v) == 8 {
				cursor = binary.BigEndian.Uint64(v)
			}
		}
		if b := tx.Bucket(bucketBase); b != nil {
			err := b.ForEach(func(k, v []byte) error {
				e := &Base{Path: string(k)}
				if err := json.Unmarshal(v, e); err != nil {
					return fmt.Errorf("base %q: %w", k, err)
				}
				base[e.Path] = e
				return nil
			})
			if err != nil {
				return err
			}
		}
		if b := tx.Bucket(bucketRemote); b != nil {
			return b.ForEach(func(k, v []byte) error {
				e := &Remote{}
				if err := json.Unmarshal(v, e); err != nil {
					return fmt.Errorf("remote node %x: %w", k, err)
				}
				remote[e.ID] = e
				return nil
			})
		}
		return nil
	})
	if err != nil {
		return nil, nil, 0, fmt.Errorf("%w: %w", ErrStateDB, err)
	}
	return base, remote, cursor, nil
}

// baseChange is one change to the base tree: set (B != nil) or delete.
type baseChange struct {
	Path string
	B    *Base
}

// updateBase applies base changes in one transaction.
func (s *state) updateBase(changes []baseChange) error {
	if len(changes) == 0 {
		return nil
	}
	return dbErr(s.db.Update(func(tx *bolt.Tx) error {
		bk := tx.Bucket(bucketBase)
		for _, c := range changes {
			if c.B == nil {
				if err := bk.Delete([]byte(c.Path)); err != nil {
					return err
				}
				continue
			}
			v, err := json.Marshal(c.B)
			if err != nil {
				return err
			}
			if err := bk.Put([]byte(c.Path), v); err != nil {
				return err
			}
		}
		return nil
	}))
}

// moveBase moves every base entry at or below from to the same place
// below to, in one transaction.
func (s *state) moveBase(from, to string) error {
	return dbErr(s.db.Update(func(tx *bolt.Tx) error {
		bk := tx.Bucket(bucketBase)
		type kv struct{ k, v []byte }
		var moving []kv
		err := bk.ForEach(func(k, v []byte) error {
			if under(string(k), from) {
				moving = append(moving, kv{append([]byte(nil), k...), append([]byte(nil), v...)})
			}
			return nil
		})
		if err != nil {
			return err
		}
		for _, m := range moving {
			if err := bk.Delete(m.k); err != nil {
				return err
			}
		}
		for _, m := range moving {
			if err := bk.Put([]byte(to+string(m.k)[len(from):]), m.v); err != nil {
				return err
			}
		}
		return nil
	}))
}

// remoteUpdate replaces the remote tree's changed nodes and the cursor in
// one transaction: set holds nodes to write, del IDs to drop.
func (s *state) remoteUpdate(set []*Remote, del []uint64, cursor uint64, reset bool) error {
	return dbErr(s.db.Update(func(tx *bolt.Tx) error {
		if reset {
			if err := tx.DeleteBucket(bucketRemote); err != nil && !errors.Is(err, bolt.ErrBucketNotFound) {
				return err
			}
			if _, err := tx.CreateBucket(bucketRemote); err != nil {
				return err
			}
		}
		rb := tx.Bucket(bucketRemote)
		for _, id := range del {
			if err := rb.Delete(u64key(id)); err != nil {
				return err
			}
		}
		for _, r := range set {
			v, err := json.Marshal(r)
			if err != nil {
				return err
			}
			if err := rb.Put(u64key(r.ID), v); err != nil {
				return err
			}
		}
		return tx.Bucket(bucketMeta).Put([]byte("cursor"), u64key(cursor))
	}))
}

// dbErr wraps a database failure in ErrStateDB.
func dbErr(err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("%w: %w", ErrStateDB, err)
}

// receipts returns the stored receipts, younger than receiptTTL, of refs.
func (s *state) receipts(refs []string, now time.Time) (map[string]string, error) {
	out := map[string]string{}
	err := s.db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketReceipts)
		for _, ref := range refs {
			var r storedReceipt
			if v := b.Get([]byte(ref)); v != nil && json.Unmarshal(v, &r) == nil &&
				now.Sub(time.Unix(r.Got, 0)) < receiptTTL {
				out[ref] = r.Receipt
			}
		}
		return nil
	})
	return out, dbErr(err)
}

// saveReceipts stores receipts by ref, got now, and drops stale ones
// when there are many.
func (s *state) saveReceipts(rs map[string]string, now time.Time) error {
	if len(rs) == 0 {
		return nil
	}
	return dbErr(s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketReceipts)
		for ref, r := range rs {
			v, _ := json.Marshal(storedReceipt{Receipt: r, Got: now.Unix()})
			if err := b.Put([]byte(ref), v); err != nil {
				return err
			}
		}
		if b.Stats().KeyN < 100000 {
			return nil
		}
		var stale [][]byte
		b.ForEach(func(k, v []byte) error {
			var r storedReceipt
			if json.Unmarshal(v, &r) != nil || now.Sub(time.Unix(r.Got, 0)) >= receiptTTL {
				stale = append(stale, append([]byte(nil), k...))
			}
			return nil
		})
		for _, k := range stale {
			if err := b.Delete(k); err != nil {
				return err
			}
		}
		return nil
	}))
}

// clearReceipts drops every stored receipt.
func (s *state) clearReceipts() error {
	return dbErr(s.db.Update(func(tx *bolt.Tx) error {
		if err := tx.DeleteBucket(bucketReceipts); err != nil {
			return err
		}
		_, err := tx.CreateBucket(bucketReceipts)
		return err
	}))
}
