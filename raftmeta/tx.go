package raftmeta

import (
	"encoding/json"
	"errors"
	"fmt"

	"github.com/cockroachdb/pebble/v2"
)

// errStore marks a storage failure inside apply: the entry cannot be applied
// deterministically, so the FSM stops (see FSM.fail).
var errStore = errors.New("store failure")

// reader is the read side shared by apply transactions (an indexed batch) and
// queries (a Pebble snapshot).
type reader interface {
	Get(key []byte) ([]byte, interface{ Close() error }, error)
	NewIter(o *pebble.IterOptions) (*pebble.Iterator, error)
}

// pebbleReader adapts pebble.Reader's io.Closer return to reader.
type pebbleReader struct{ r pebble.Reader }

func (p pebbleReader) Get(key []byte) ([]byte, interface{ Close() error }, error) {
	v, c, err := p.r.Get(key)
	if err != nil {
		return nil, nil, err
	}
	return v, c, nil
}

func (p pebbleReader) NewIter(o *pebble.IterOptions) (*pebble.Iterator, error) {
	return p.r.NewIter(o)
}

// view is typed access to one group's keys through a reader.
type view struct {
	r reader
	k keys
}

// getJSON loads key into v; it reports false if the key is absent.
func (v *view) getJSON(key []byte, out any) (bool, error) {
	b, c, err := v.r.Get(key)
	if errors.Is(err, pebble.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("%w: get: %v", errStore, err)
	}
	defer c.Close()
	if err := json.Unmarshal(b, out); err != nil {
		return false, fmt.Errorf("%w: decode %q: %v", ErrCorruptStore, key, err)
	}
	return true, nil
}

// getU64 loads an 8-byte big-endian value.
func (v *view) getU64(key []byte) (uint64, bool, error) {
	b, c, err := v.r.Get(key)
	if errors.Is(err, pebble.ErrNotFound) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, fmt.Errorf("%w: get: %v", errStore, err)
	}
	defer c.Close()
	if len(b) != 8 {
		return 0, false, fmt.Errorf("%w: value of %q has %d bytes, want 8", ErrCorruptStore, key, len(b))
	}
	return beU64(b), true, nil
}

// scan calls fn for each key in [lo, hi) in order until fn returns false.
// The slices passed to fn are valid only during the call.
func (v *view) scan(lo, hi []byte, reverse bool, fn func(k, val []byte) (bool, error)) (err error) {
	it, err := v.r.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: hi})
	if err != nil {
		return fmt.Errorf("%w: iter: %v", errStore, err)
	}
	defer func() {
		// Always closed, also when fn panics.
		if cerr := it.Close(); cerr != nil && err == nil {
			err = fmt.Errorf("%w: iter: %v", errStore, cerr)
		}
	}()
	var ok bool
	if reverse {
		ok = it.Last()
	} else {
		ok = it.First()
	}
	for ; ok; ok = step(it, reverse) {
		val, err := it.ValueAndErr()
		if err != nil {
			return fmt.Errorf("%w: iter value: %v", errStore, err)
		}
		more, err := fn(it.Key(), val)
		if err != nil {
			return err
		}
		if !more {
			break
		}
	}
	return nil
}

func step(it *pebble.Iterator, reverse bool) bool {
	if reverse {
		return it.Prev()
	}
	return it.Next()
}

func beU64(b []byte) uint64 {
	_ = b[7]
	return uint64(b[0])<<56 | uint64(b[1])<<48 | uint64(b[2])<<40 | uint64(b[3])<<32 |
		uint64(b[4])<<24 | uint64(b[5])<<16 | uint64(b[6])<<8 | uint64(b[7])
}

func (v *view) user(id uint64) (*User, error) {
	u := new(User)
	ok, err := v.getJSON(v.k.user(id), u)
	if err != nil || !ok {
		return nil, err
	}
	return u, nil
}

func (v *view) userByName(fold string) (*User, error) {
	id, ok, err := v.getU64(v.k.userName(fold))
	if err != nil || !ok {
		return nil, err
	}
	return v.user(id)
}

func (v *view) namespace(ns uint64) (*Namespace, error) {
	n := new(Namespace)
	ok, err := v.getJSON(v.k.namespace(ns), n)
	if err != nil || !ok {
		return nil, err
	}
	return n, nil
}

func (v *view) node(ns, id uint64) (*Node, error) {
	n := new(Node)
	ok, err := v.getJSON(v.k.node(ns, id), n)
	if err != nil || !ok {
		return nil, err
	}
	return n, nil
}

// child returns the node linked at (parent, fold) in the tree, or nil.
func (v *view) child(ns, parent uint64, fold string) (*Node, error) {
	return v.childWith(ns, parent, fold, func(id uint64) (*Node, error) { return v.node(ns, id) })
}

// childWith is child, loading the node through node (a commit's cache).
func (v *view) childWith(ns, parent uint64, fold string, node func(uint64) (*Node, error)) (*Node, error) {
	id, ok, err := v.getU64(v.k.child(ns, parent, fold))
	if err != nil || !ok {
		return nil, err
	}
	n, err := node(id)
	if err != nil {
		return nil, err
	}
	if n == nil {
		return nil, fmt.Errorf("%w: tree entry names missing node %d", ErrCorruptStore, id)
	}
	return n, nil
}

func (v *view) revision(ns, id, rev uint64) (*Revision, error) {
	r := new(Revision)
	ok, err := v.getJSON(v.k.rev(ns, id, rev), r)
	if err != nil || !ok {
		return nil, err
	}
	return r, nil
}

// tx is one entry's writes: an indexed batch, so later ops in a commit see
// earlier ones, discarded whole if any op fails.
type tx struct {
	view
	b     *pebble.Batch
	index uint64 // Raft index of the entry
	now   int64  // the entry's proposal time
}

func (t *tx) putJSON(key []byte, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encode: %w", err)
	}
	if err := t.b.Set(key, b, nil); err != nil {
		return fmt.Errorf("%w: set: %v", errStore, err)
	}
	return nil
}

func (t *tx) putU64(key []byte, v uint64) error {
	if err := t.b.Set(key, u64(v), nil); err != nil {
		return fmt.Errorf("%w: set: %v", errStore, err)
	}
	return nil
}

func (t *tx) del(key []byte) error {
	if err := t.b.Delete(key, nil); err != nil {
		return fmt.Errorf("%w: delete: %v", errStore, err)
	}
	return nil
}

func (t *tx) delRange(lo, hi []byte) error {
	if err := t.b.DeleteRange(lo, hi, nil); err != nil {
		return fmt.Errorf("%w: delete range: %v", errStore, err)
	}
	return nil
}

// counters are the group's allocation state.
type counters struct {
	NextID   uint64 `json:"next_id"`
	DedupLow uint64 `json:"dedup_low"` // dedup queue entries below this index are evicted

	fresh bool // not stored yet: the group's state is new
}

func (t *tx) counters() (*counters, error) {
	c := &counters{NextID: 1}
	ok, err := t.getJSON(t.k.counters(), c)
	if err != nil {
		return nil, err
	}
	c.fresh = !ok
	return c, nil
}

// putCounters stores c. The group's first counters record comes before
// its first revision, so its block reference index is complete from the
// start: that record brings the index's version marker.
func (t *tx) putCounters(c *counters) error {
	if c.fresh {
		if err := t.putU64(t.k.refsVersion(), refIndexVersion); err != nil {
			return err
		}
		c.fresh = false
	}
	return t.putJSON(t.k.counters(), c)
}

// newID allocates a group-unique ID (users, namespaces and nodes share the
// sequence).
func (t *tx) newID() (uint64, error) {
	c, err := t.counters()
	if err != nil {
		return 0, err
	}
	id := c.NextID
	c.NextID++
	return id, t.putCounters(c)
}
