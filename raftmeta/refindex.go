package raftmeta

import (
	"bytes"
	"encoding/json"
	"fmt"
	"sort"

	"github.com/cockroachdb/pebble/v2"
)

// The block reference index (b ns ref -> count) answers "does this
// namespace reference this block?" without a scan: the count is the number
// of retained revision records (r) of the namespace that name the ref, each
// revision counted once however often it names the ref. Commits add to it
// as they write revisions, prune subtracts as it deletes them, in the same
// entry; a ref whose count drops to zero loses its key. Open upload
// sessions are not committed content and are not counted.

// MaxRefsPerQuery bounds the refs one Referenced call asks about.
const MaxRefsPerQuery = 10000

// refIndexVersion is the version of the block reference index this code
// maintains, stored at v. State without it (written before the index
// existed) has its index rebuilt from the revisions when it is opened or
// restored.
const refIndexVersion = 1

// distinctRefs returns the distinct refs of blocks, in first-seen order.
func distinctRefs(blocks []Block) []Sum {
	if len(blocks) == 0 {
		return nil
	}
	seen := make(map[Sum]struct{}, len(blocks))
	out := make([]Sum, 0, len(blocks))
	for _, b := range blocks {
		if _, ok := seen[b.Ref]; !ok {
			seen[b.Ref] = struct{}{}
			out = append(out, b.Ref)
		}
	}
	return out
}

// putRevision writes revision rv of node id and counts its blocks in the
// namespace's reference index. A revision key is written once: revision
// numbers only grow, so rv is always a new record.
func (t *tx) putRevision(ns, id uint64, rv *Revision) error {
	if err := t.putJSON(t.k.rev(ns, id, rv.Rev), rv); err != nil {
		return err
	}
	for _, ref := range distinctRefs(rv.Blocks) {
		if err := t.addRef(ns, ref, 1); err != nil {
			return err
		}
	}
	return nil
}

// addRef adds delta to the count of ref in namespace ns, deleting the key
// when the count reaches zero. A count that would go negative means the
// index and the revisions disagree: ErrCorruptStore.
func (t *tx) addRef(ns uint64, ref Sum, delta int64) error {
	key := t.k.ref(ns, ref)
	n, _, err := t.getU64(key)
	if err != nil {
		return err
	}
	if delta < 0 && uint64(-delta) > n {
		return fmt.Errorf("%w: block reference index of namespace %d counts %d for %s, %d revisions naming it are being deleted", ErrCorruptStore, ns, n, ref, -delta)
	}
	n = uint64(int64(n) + delta)
	if n == 0 {
		return t.del(key)
	}
	return t.putU64(key, n)
}

// refKey names one ref of one namespace.
type refKey struct {
	ns  uint64
	ref Sum
}

// dropRefs subtracts counts (the refs of revisions being deleted) from the
// index, in key order.
func (t *tx) dropRefs(counts map[refKey]int64) error {
	keys := make([]refKey, 0, len(counts))
	for k := range counts {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		if keys[i].ns != keys[j].ns {
			return keys[i].ns < keys[j].ns
		}
		return bytes.Compare(keys[i].ref[:], keys[j].ref[:]) < 0
	})
	for _, k := range keys {
		if err := t.addRef(k.ns, k.ref, -counts[k]); err != nil {
			return err
		}
	}
	return nil
}

// referenced reports for each ref whether the live namespace nsID
// references it.
func (v *view) referenced(nsID uint64, refs []Sum) ([]bool, error) {
	if _, err := v.liveNamespace(nsID); err != nil {
		return nil, err
	}
	out := make([]bool, len(refs))
	for i, ref := range refs {
		_, ok, err := v.getU64(v.k.ref(nsID, ref))
		if err != nil {
			return nil, err
		}
		out[i] = ok
	}
	return out, nil
}

// ensureRefIndex rebuilds the block reference index if the group's state
// was written without it (no version marker). A group that has never
// allocated an ID (no counters record) has no revisions: its first
// counters record brings the marker (see tx.putCounters), so it needs no
// rebuild. It runs before Raft starts (Open) or while a restore holds the
// group (Restore): nothing applies meanwhile.
func (f *FSM) ensureRefIndex() error {
	v := f.dbView()
	ver, ok, err := v.getU64(f.k.refsVersion())
	if err != nil || (ok && ver == refIndexVersion) {
		return err
	}
	if has, err := v.getJSON(f.k.counters(), new(counters)); err != nil || !has {
		return err
	}
	return f.rebuildRefIndex()
}

// rebuildRefIndex replaces the group's block reference index with counts
// taken from its revision records, in one pass over them (a namespace at
// a time: revision keys are ordered by namespace), then sets the version
// marker in a synced batch. Cut off midway, the marker is still absent and
// the next start rebuilds from scratch.
func (f *FSM) rebuildRefIndex() (err error) {
	snap := f.db.NewSnapshot()
	defer snap.Close()
	v := &view{r: pebbleReader{snap}, k: f.k}
	b := f.db.NewBatch()
	defer func() { b.Close() }()
	fail := func(what string, err error) error {
		return fmt.Errorf("%w: rebuild block reference index: %s: %v", errStore, what, err)
	}
	lo, hi := f.k.TagBounds(tagRefs)
	if err := b.DeleteRange(lo, hi, nil); err != nil {
		return fail("delete range", err)
	}
	counts := make(map[Sum]uint64)
	var cur uint64
	var revs, refs int
	flush := func() error {
		for ref, n := range counts {
			if err := b.Set(f.k.ref(cur, ref), u64(n), nil); err != nil {
				return fail("set", err)
			}
			refs++
			if b.Len() >= restoreBatchBytes {
				if err := b.Commit(pebble.NoSync); err != nil {
					return fail("commit", err)
				}
				b.Close()
				b = f.db.NewBatch()
			}
		}
		clear(counts)
		return nil
	}
	rlo, rhi := f.k.TagBounds(tagRev)
	err = v.scan(rlo, rhi, false, func(k, val []byte) (bool, error) {
		if len(k) != len(rlo)+24 {
			return false, fmt.Errorf("%w: revision key %q", ErrCorruptStore, k)
		}
		if ns := beU64(k[len(rlo):]); ns != cur {
			if err := flush(); err != nil {
				return false, err
			}
			cur = ns
		}
		var r struct {
			Blocks []Block `json:"blocks"`
		}
		if err := json.Unmarshal(val, &r); err != nil {
			return false, fmt.Errorf("%w: revision: %v", ErrCorruptStore, err)
		}
		for _, ref := range distinctRefs(r.Blocks) {
			counts[ref]++
		}
		revs++
		return true, nil
	})
	if err != nil {
		return err
	}
	if err := flush(); err != nil {
		return err
	}
	if err := b.Set(f.k.refsVersion(), u64(refIndexVersion), nil); err != nil {
		return fail("set", err)
	}
	if err := b.Commit(pebble.Sync); err != nil {
		return fail("commit", err)
	}
	f.log.Info("built the block reference index", "revisions", revs, "refs", refs)
	return nil
}
