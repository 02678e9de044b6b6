package raftmeta

import (
	"context"
	"encoding/json"
	"fmt"
)

// LiveBlocks calls fn with every block named by the group's retained state:
// the current content of every node (deleted ones included), every
// retained revision and every upload session not yet deleted, of every
// namespace (those of deleted users too, until they are reclaimed). A ref
// may be passed more than once. It is the mark phase of block garbage
// collection (package blockstore/gc): the caller adds the refs to a live
// set.
//
// The walk reads one consistent snapshot of this replica's applied state,
// whose applied Raft index it returns; on a follower that state may be
// behind the leader's. The garbage collector's safety argument needs the
// time of that state, not of the walk, so take the GC cutoff before
// calling LiveBlocks (gc.Cutoff, then LiveBlocks on every shard, then
// gc.RunAt). fn's error (or ctx's) stops the walk and is returned.
func (f *FSM) LiveBlocks(ctx context.Context, fn func(Block) error) (applied uint64, err error) {
	if fn == nil {
		return 0, fmt.Errorf("%w: nil LiveBlocks callback", ErrInvalidArgument)
	}
	snap := f.newSnapshot()
	defer snap.Close()
	v := &view{r: pebbleReader{snap}, k: f.k}
	applied, _, err = v.getU64(f.k.applied())
	if err != nil {
		return 0, err
	}
	visit := func(tag byte, decode func([]byte) ([]Block, error)) error {
		lo := f.k.Key(tag)
		n := 0
		return v.scan(lo, prefixEnd(lo), false, func(key, val []byte) (bool, error) {
			if n++; n%1024 == 0 {
				if err := ctx.Err(); err != nil {
					return false, err
				}
			}
			blocks, err := decode(val)
			if err != nil {
				return false, fmt.Errorf("%w: decode %q: %v", ErrCorruptStore, key, err)
			}
			for _, b := range blocks {
				if err := fn(b); err != nil {
					return false, err
				}
			}
			return true, nil
		})
	}
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	err = visit(tagNode, func(val []byte) ([]Block, error) {
		var n struct {
			Blocks []Block `json:"blocks"`
		}
		err := json.Unmarshal(val, &n)
		return n.Blocks, err
	})
	if err != nil {
		return 0, err
	}
	err = visit(tagRev, func(val []byte) ([]Block, error) {
		var r struct {
			Blocks []Block `json:"blocks"`
		}
		err := json.Unmarshal(val, &r)
		return r.Blocks, err
	})
	if err != nil {
		return 0, err
	}
	// Blocks of open upload sessions (expired ones too, until the prune
	// pass deletes them): a finishing commit will name them.
	err = visit(tagUpBlock, func(val []byte) ([]Block, error) {
		b, err := decodeUpBlock(val)
		return []Block{b}, err
	})
	if err != nil {
		return 0, err
	}
	return applied, nil
}

// LiveBlocks is FSM.LiveBlocks on this replica (no leadership check: any
// replica's applied state is a consistent, if possibly older, snapshot).
func (s *Shard) LiveBlocks(ctx context.Context, fn func(Block) error) (applied uint64, err error) {
	err = s.withDB(func() error {
		applied, err = s.fsm.LiveBlocks(ctx, fn)
		return err
	})
	return applied, err
}
