package sysgroup

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/cockroachdb/pebble/v2"
)

// reader is what the state is read through: the DB, a snapshot or an
// indexed batch.
type reader = pebble.Reader

// get returns a copy of key's value and whether it exists.
func get(r reader, key []byte) ([]byte, bool, error) {
	v, c, err := r.Get(key)
	if errors.Is(err, pebble.ErrNotFound) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("%w: get: %v", errStore, err)
	}
	out := append([]byte(nil), v...)
	c.Close()
	return out, true, nil
}

// getU64 reads an 8-byte big-endian value (0 if absent).
func getU64(r reader, key []byte) (uint64, error) {
	v, ok, err := get(r, key)
	if err != nil || !ok {
		return 0, err
	}
	if len(v) != 8 {
		return 0, fmt.Errorf("%w: key %q holds %d bytes, not 8", ErrCorruptStore, key, len(v))
	}
	return binary.BigEndian.Uint64(v), nil
}

// getJSON decodes key's value into v and reports whether it exists.
func getJSON(r reader, key []byte, v any) (bool, error) {
	b, ok, err := get(r, key)
	if err != nil || !ok {
		return false, err
	}
	return true, jsonUnmarshal(key, b, v)
}

// scan calls fn with every key and value in [lo, hi), in key order, until
// fn returns false or an error. The slices are valid only during the call.
func scan(r reader, lo, hi []byte, fn func(k, v []byte) (bool, error)) error {
	it, err := r.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: hi})
	if err != nil {
		return fmt.Errorf("%w: iterate: %v", errStore, err)
	}
	for ok := it.First(); ok; ok = it.Next() {
		v, err := it.ValueAndErr()
		if err != nil {
			it.Close()
			return fmt.Errorf("%w: iterate: %v", errStore, err)
		}
		more, err := fn(it.Key(), v)
		if err != nil {
			it.Close()
			return err
		}
		if !more {
			break
		}
	}
	if err := it.Close(); err != nil {
		return fmt.Errorf("%w: iterate: %v", errStore, err)
	}
	return nil
}

func jsonUnmarshal(key, val []byte, v any) error {
	if err := json.Unmarshal(val, v); err != nil {
		return fmt.Errorf("%w: key %q: %v", ErrCorruptStore, key, err)
	}
	return nil
}
