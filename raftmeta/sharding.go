package raftmeta

import (
	"crypto/sha256"
	"encoding/binary"
	"fmt"

	"github.com/cockroachdb/pebble/v2"

	"github.com/coffer-dev/coffer/raftmeta/metapath"
)

// ShardOf returns the group ID of the shard that holds user name in a
// cluster of shards shard groups: 1 + SHA-256(folded name) mod shards. The
// name is cleaned and case-folded first, so every spelling a login accepts
// maps to the same shard. Group 0 is the cluster's system group, never a
// shard.
func ShardOf(name string, shards int) (uint64, error) {
	if shards < 1 {
		return 0, fmt.Errorf("%w: %d shards", ErrInvalidArgument, shards)
	}
	clean, err := CleanUserName(name)
	if err != nil {
		return 0, err
	}
	sum := sha256.Sum256([]byte(metapath.Fold(clean)))
	return 1 + binary.BigEndian.Uint64(sum[:8])%uint64(shards), nil
}

// DropGroup deletes every key of group from db, durably: the state of a
// replica that was moved off this node. The group's Shard must be closed.
func DropGroup(db *pebble.DB, group uint64) error {
	lo, hi := newKeys(group).Bounds()
	if err := db.DeleteRange(lo, hi, pebble.Sync); err != nil {
		return fmt.Errorf("drop group %d state: %w", group, err)
	}
	return nil
}
