package raftmeta

import (
	"encoding/json"
	"fmt"
)

// Retention is the revision retention policy: a revision is kept while it is
// younger than KeepFor or among the newest KeepLast revisions of its node;
// a node's current revision is always kept. Journal records older than
// KeepFor are trimmed (a cursor before them gets ErrCursorExpired).
type Retention struct {
	KeepFor  int64 // nanoseconds
	KeepLast int
}

// prune applies the retention policy to at most c.Max nodes, namespaces,
// token revocation records or upload sessions, starting at c.Cursor. The
// cursor is a phase byte ('n': nodes, 's': namespaces' journals, 'k':
// expired token revocations, 'o': expired upload sessions) followed by the
// key suffix to resume at.
func (t *tx) prune(c *pruneCmd) (*result, error) {
	if c.Max <= 0 || c.KeepLast < 0 || c.KeepFor < 0 {
		return &result{Err: opErr(CodeInvalidArgument, "", "bad prune parameters")}, nil
	}
	cutoff := t.now - c.KeepFor
	res := &PruneResult{}
	phase, from := byte(tagNode), []byte(nil)
	if len(c.Cursor) > 0 {
		phase, from = c.Cursor[0], c.Cursor[1:]
	}
	visited := 0
	type del struct{ lo, hi []byte }
	var dels []del      // key ranges: trimmed journal records
	var points [][]byte // single keys: pruned revisions, expired token records
	var nsUpdates []*Namespace
	refs := make(map[refKey]int64) // refs of the pruned revisions, for the reference index

	if phase == tagNode {
		base := t.k.Key(tagNode)
		var stop []byte
		err := t.scan(append(append([]byte(nil), base...), from...), prefixEnd(base), false, func(k, v []byte) (bool, error) {
			if visited >= c.Max {
				stop = append([]byte{tagNode}, k[len(base):]...)
				return false, nil
			}
			visited++
			var n Node
			if err := json.Unmarshal(v, &n); err != nil {
				return false, fmt.Errorf("%w: node: %v", ErrCorruptStore, err)
			}
			// Each revision is judged by its own time: leaders' clocks
			// differ, so revision numbers are not strictly in time order.
			newest := 0
			lo := t.k.revs(n.Namespace, n.ID)
			err := t.scan(lo, prefixEnd(lo), true, func(rk, rv []byte) (bool, error) {
				newest++
				var r Revision
				if err := json.Unmarshal(rv, &r); err != nil {
					return false, fmt.Errorf("%w: revision: %v", ErrCorruptStore, err)
				}
				if r.Rev == n.Rev || newest <= c.KeepLast || r.Time >= cutoff {
					return true, nil
				}
				points = append(points, append([]byte(nil), rk...))
				for _, ref := range distinctRefs(r.Blocks) {
					refs[refKey{n.Namespace, ref}]++
				}
				res.Revisions++
				return true, nil
			})
			return err == nil, err
		})
		if err != nil {
			return nil, err
		}
		if stop != nil {
			res.Next = stop
		} else {
			phase, from = tagNamespace, nil
		}
	}
	if phase == tagNamespace && res.Next == nil {
		base := t.k.Key(tagNamespace)
		var stop []byte
		err := t.scan(append(append([]byte(nil), base...), from...), prefixEnd(base), false, func(k, v []byte) (bool, error) {
			if visited >= c.Max {
				stop = append([]byte{tagNamespace}, k[len(base):]...)
				return false, nil
			}
			visited++
			ns := new(Namespace)
			if err := json.Unmarshal(v, ns); err != nil {
				return false, fmt.Errorf("%w: namespace: %v", ErrCorruptStore, err)
			}
			start := ns.Start
			lo := t.k.journal(ns.ID, ns.Start)
			err := t.scan(lo, prefixEnd(t.k.journals(ns.ID)), false, func(jk, jv []byte) (bool, error) {
				var rec struct {
					Seq  uint64 `json:"seq"`
					Time int64  `json:"time"`
				}
				if err := json.Unmarshal(jv, &rec); err != nil {
					return false, fmt.Errorf("%w: journal: %v", ErrCorruptStore, err)
				}
				if rec.Time >= cutoff {
					return false, nil
				}
				start = rec.Seq + 1
				return true, nil
			})
			if err != nil {
				return false, err
			}
			if start > ns.Start {
				dels = append(dels, del{lo, t.k.journal(ns.ID, start)})
				res.Records += int(start - ns.Start)
				ns.Start = start
				nsUpdates = append(nsUpdates, ns)
			}
			return true, nil
		})
		if err != nil {
			return nil, err
		}
		if stop != nil {
			res.Next = stop
		} else {
			phase, from = tagToken, nil
		}
	}
	if phase == tagToken && res.Next == nil {
		// A token record is judged by its own expiry, against the entry's
		// time, whatever the policy: after it the token is invalid anyway.
		next, expired, err := t.pruneTokens(from, t.now, c.Max, &visited)
		if err != nil {
			return nil, err
		}
		points = append(points, expired...)
		res.Tokens = len(expired)
		if next != nil {
			res.Next = next
		} else {
			phase, from = tagUpload, nil
		}
	}
	if phase == tagUpload && res.Next == nil {
		// Upload sessions too are judged by their own expiry alone.
		next, n, err := t.pruneUploads(from, t.now, c.Max, &visited)
		if err != nil {
			return nil, err
		}
		res.Uploads = n
		res.Next = next
	}
	if err := t.dropRefs(refs); err != nil {
		return nil, err
	}
	for _, k := range points {
		if err := t.del(k); err != nil {
			return nil, err
		}
	}
	for _, d := range dels {
		if err := t.delRange(d.lo, d.hi); err != nil {
			return nil, err
		}
	}
	for _, ns := range nsUpdates {
		if err := t.putJSON(t.k.namespace(ns.ID), ns); err != nil {
			return nil, err
		}
	}
	res.Done = res.Next == nil
	return &result{Prune: res}, nil
}
