package raftmeta

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math"
	"strings"

	"github.com/coffer-dev/coffer/raftmeta/metapath"
)

// Target names a file or folder: by ID when ID is non-zero, else by Path.
type Target struct {
	Path string
	ID   uint64
}

func (t Target) String() string {
	if t.ID != 0 {
		return fmt.Sprintf("node %d", t.ID)
	}
	return t.Path
}

// ReadOptions choose the consistency of a read. The default is
// linearizable: served by the leader after a leadership check, it sees every
// commit acknowledged before it began. Stale reads are served by whichever
// replica is asked, from its applied state, and may miss recent commits.
type ReadOptions struct {
	Stale bool
}

// StatOptions configure Stat.
type StatOptions struct {
	ReadOptions
	// IncludeDeleted resolves a path to a deleted node (a tombstone) too.
	IncludeDeleted bool
}

// ListOptions configure List.
type ListOptions struct {
	ReadOptions
	Recursive      bool
	IncludeDeleted bool
	// Limit is the page size: default 1000, at most 10000.
	Limit int
	// PageToken continues a listing where the previous page ended.
	PageToken string
}

// ListPage is one page of a listing, in name order (case-folded), each
// folder followed by its contents when recursive. NextPageToken is empty on
// the last page.
type ListPage struct {
	Entries       []Entry `json:"entries"`
	NextPageToken string  `json:"next_page_token,omitempty"`
}

// HistoryOptions configure History.
type HistoryOptions struct {
	ReadOptions
	// Limit bounds the revisions returned, newest first: default 100, at
	// most 10000.
	Limit int
	// Rev, if non-zero, starts the history at that revision: only
	// revisions numbered Rev or lower are returned. With Limit 1 that is
	// revision Rev if it is retained (else the next older one: check its
	// Rev); Rev one below the last one returned pages further back.
	Rev uint64
}

// ChangesPage is a run of journal records after a cursor. Cursor is the
// position after them (the last record's Seq, or the cursor given when
// there were none); More reports whether records follow.
type ChangesPage struct {
	Records []JournalRecord `json:"records"`
	Cursor  uint64          `json:"cursor"`
	Head    uint64          `json:"head"`
	More    bool            `json:"more"`
}

// UsersOptions configure Users.
type UsersOptions struct {
	ReadOptions
	// Limit is the page size: default 1000, at most 10000.
	Limit int
	// PageToken continues a listing where the previous page ended.
	PageToken string
}

// UserPage is one page of the users of a shard, in case-folded name order.
// NextPageToken is empty on the last page.
type UserPage struct {
	Users         []User `json:"users"`
	NextPageToken string `json:"next_page_token,omitempty"`
}

const (
	defaultUsersLimit   = 1000
	defaultListLimit    = 1000
	defaultHistoryLimit = 100
	defaultChangesLimit = 1000
	maxPageLimit        = 10000
)

// HistoryPageSize is the number of revisions History returns at most
// for HistoryOptions.Limit n (a full page means older ones may follow).
func HistoryPageSize(n int) int { return pageLimit(n, defaultHistoryLimit) }

func pageLimit(n, def int) int {
	switch {
	case n <= 0:
		return def
	case n > maxPageLimit:
		return maxPageLimit
	}
	return n
}

func (v *view) liveNamespace(id uint64) (*Namespace, error) {
	ns, err := v.namespace(id)
	if err != nil {
		return nil, err
	}
	if ns == nil || ns.Deleted {
		return nil, opErr(CodeNotFound, "", fmt.Sprintf("no namespace %d", id))
	}
	return ns, nil
}

// resolve finds the node a target names.
func (v *view) resolve(ns *Namespace, t Target, includeDeleted bool) (*Node, string, error) {
	if t.ID != 0 {
		n, err := v.node(ns.ID, t.ID)
		if err != nil {
			return nil, "", err
		}
		if n == nil || (n.Deleted && !includeDeleted) {
			return nil, "", opErr(CodeNotFound, t.String(), "")
		}
		p, err := pathOf(v, ns, n.ID)
		return n, p, err
	}
	p, err := metapath.Clean(t.Path)
	if err != nil {
		return nil, "", opErr(CodeInvalidPath, t.Path, err.Error())
	}
	cur, err := v.node(ns.ID, ns.Root)
	if err != nil {
		return nil, "", err
	}
	if cur == nil {
		return nil, "", fmt.Errorf("%w: namespace %d has no root", ErrCorruptStore, ns.ID)
	}
	names := []string{}
	for _, name := range metapath.Split(p) {
		if !cur.Dir {
			return nil, "", opErr(CodeNotFolder, "/"+strings.Join(names, "/"), "")
		}
		next, err := v.child(ns.ID, cur.ID, metapath.Fold(name))
		if err != nil {
			return nil, "", err
		}
		if next == nil || (next.Deleted && !includeDeleted) {
			return nil, "", opErr(CodeNotFound, p, "")
		}
		names = append(names, next.Name)
		cur = next
	}
	return cur, "/" + strings.Join(names, "/"), nil
}

func (v *view) stat(nsID uint64, t Target, o StatOptions) (*Entry, error) {
	ns, err := v.liveNamespace(nsID)
	if err != nil {
		return nil, err
	}
	n, p, err := v.resolve(ns, t, o.IncludeDeleted)
	if err != nil {
		return nil, err
	}
	return &Entry{Node: *n, Path: p}, nil
}

func encodePageToken(folds []string) string {
	b, _ := json.Marshal(folds)
	return base64.RawURLEncoding.EncodeToString(b)
}

func decodePageToken(tok string) ([]string, error) {
	if tok == "" {
		return nil, nil
	}
	b, err := base64.RawURLEncoding.DecodeString(tok)
	var folds []string
	if err == nil {
		err = json.Unmarshal(b, &folds)
	}
	if err != nil || len(folds) == 0 {
		return nil, opErr(CodeInvalidArgument, "", "bad page token")
	}
	return folds, nil
}

// list pages through a folder. The page token is the case-folded path,
// relative to the listed folder, of the last entry returned: a listing
// resumes right after it, so pages stay correct while the tree changes.
func (v *view) list(nsID uint64, t Target, o ListOptions) (*ListPage, error) {
	ns, err := v.liveNamespace(nsID)
	if err != nil {
		return nil, err
	}
	dir, dirPath, err := v.resolve(ns, t, o.IncludeDeleted)
	if err != nil {
		return nil, err
	}
	if !dir.Dir {
		return nil, opErr(CodeNotFolder, dirPath, "")
	}
	resume, err := decodePageToken(o.PageToken)
	if err != nil {
		return nil, err
	}
	l := &lister{v: v, ns: ns, o: o, limit: pageLimit(o.Limit, defaultListLimit), page: &ListPage{Entries: []Entry{}}}
	if _, err := l.walk(dir, dirPath, resume, nil); err != nil {
		return nil, err
	}
	return l.page, nil
}

type lister struct {
	v     *view
	ns    *Namespace
	o     ListOptions
	limit int
	page  *ListPage
	last  []string // folded path of the last entry emitted
}

func (l *lister) visible(n *Node) bool { return !n.Deleted || l.o.IncludeDeleted }

// walk emits d's children (and, recursively, their subtrees) after the
// resume point. It reports true when the page is full.
func (l *lister) walk(d *Node, dpath string, resume, stack []string) (bool, error) {
	v, ns := l.v, l.ns
	lo := v.k.children(ns.ID, d.ID)
	start := lo
	if len(resume) > 0 {
		if l.o.Recursive {
			c, err := v.child(ns.ID, d.ID, resume[0])
			if err != nil {
				return false, err
			}
			if c != nil && c.Dir && l.visible(c) {
				full, err := l.walk(c, metapath.Join(dpath, c.Name), resume[1:], append(stack, resume[0]))
				if full || err != nil {
					return full, err
				}
			}
		}
		start = append(v.k.child(ns.ID, d.ID, resume[0]), 0)
	}
	type kid struct {
		fold string
		id   uint64
	}
	var kids []kid
	// Collect one page's worth of children before descending, so no
	// iterator stays open across the recursion.
	err := v.scan(start, prefixEnd(lo), false, func(k, val []byte) (bool, error) {
		if len(val) != 8 {
			return false, fmt.Errorf("%w: tree value of %d bytes", ErrCorruptStore, len(val))
		}
		kids = append(kids, kid{string(k[len(lo):]), beU64(val)})
		return len(kids) <= l.limit, nil
	})
	if err != nil {
		return false, err
	}
	for len(kids) > 0 {
		for _, k := range kids {
			n, err := v.node(ns.ID, k.id)
			if err != nil {
				return false, err
			}
			if n == nil {
				return false, fmt.Errorf("%w: tree entry names missing node %d", ErrCorruptStore, k.id)
			}
			if !l.visible(n) {
				continue
			}
			if len(l.page.Entries) >= l.limit {
				l.page.NextPageToken = encodePageToken(l.last)
				return true, nil
			}
			p := metapath.Join(dpath, n.Name)
			l.page.Entries = append(l.page.Entries, Entry{Node: *n, Path: p})
			l.last = append(append([]string(nil), stack...), k.fold)
			if l.o.Recursive && n.Dir {
				full, err := l.walk(n, p, nil, append(append([]string(nil), stack...), k.fold))
				if full || err != nil {
					return full, err
				}
			}
		}
		// More children than one batch: continue after the last one.
		lastKey := append(v.k.child(ns.ID, d.ID, kids[len(kids)-1].fold), 0)
		kids = kids[:0]
		err := v.scan(lastKey, prefixEnd(lo), false, func(k, val []byte) (bool, error) {
			kids = append(kids, kid{string(k[len(lo):]), beU64(val)})
			return len(kids) <= l.limit, nil
		})
		if err != nil {
			return false, err
		}
	}
	return false, nil
}

func (v *view) history(nsID uint64, t Target, o HistoryOptions) ([]Revision, error) {
	ns, err := v.liveNamespace(nsID)
	if err != nil {
		return nil, err
	}
	n, _, err := v.resolve(ns, t, true)
	if err != nil {
		return nil, err
	}
	limit := pageLimit(o.Limit, defaultHistoryLimit)
	revs := []Revision{}
	lo := v.k.revs(ns.ID, n.ID)
	hi := prefixEnd(lo)
	if o.Rev != 0 && o.Rev < math.MaxUint64 {
		hi = v.k.rev(ns.ID, n.ID, o.Rev+1)
	}
	err = v.scan(lo, hi, true, func(_, val []byte) (bool, error) {
		var r Revision
		if err := json.Unmarshal(val, &r); err != nil {
			return false, fmt.Errorf("%w: revision: %v", ErrCorruptStore, err)
		}
		revs = append(revs, r)
		return len(revs) < limit, nil
	})
	return revs, err
}

func (v *view) changes(nsID, cursor uint64, limit int) (*ChangesPage, error) {
	return v.changesAt(nsID, cursor, limit, false)
}

// changesAt is changes; on a stale read a cursor ahead of this replica's
// head (taken from a replica further ahead) is "nothing yet", not expired.
func (v *view) changesAt(nsID, cursor uint64, limit int, stale bool) (*ChangesPage, error) {
	ns, err := v.liveNamespace(nsID)
	if err != nil {
		return nil, err
	}
	if cursor > ns.Head && stale {
		return &ChangesPage{Records: []JournalRecord{}, Cursor: cursor, Head: ns.Head}, nil
	}
	if cursor > ns.Head {
		return nil, opErr(CodeCursorExpired, "", fmt.Sprintf("cursor %d is ahead of the journal (head %d)", cursor, ns.Head))
	}
	if ns.Start > 0 && cursor+1 < ns.Start {
		return nil, opErr(CodeCursorExpired, "", fmt.Sprintf("cursor %d is older than the journal's start %d", cursor, ns.Start))
	}
	limit = pageLimit(limit, defaultChangesLimit)
	page := &ChangesPage{Records: []JournalRecord{}, Cursor: cursor, Head: ns.Head}
	lo := v.k.journal(ns.ID, cursor+1)
	err = v.scan(lo, prefixEnd(v.k.journals(ns.ID)), false, func(_, val []byte) (bool, error) {
		var r JournalRecord
		if err := json.Unmarshal(val, &r); err != nil {
			return false, fmt.Errorf("%w: journal: %v", ErrCorruptStore, err)
		}
		page.Records = append(page.Records, r)
		page.Cursor = r.Seq
		return len(page.Records) < limit, nil
	})
	page.More = page.Cursor < ns.Head
	return page, err
}

// users pages through the live users in case-folded name order (the name
// index holds live users only). The page token is the folded name of the
// last user returned, so pages stay correct while users come and go.
func (v *view) users(o UsersOptions) (*UserPage, error) {
	lo := v.k.Key(tagUserName)
	start := lo
	if o.PageToken != "" {
		folds, err := decodePageToken(o.PageToken)
		if err != nil {
			return nil, err
		}
		if len(folds) != 1 {
			return nil, opErr(CodeInvalidArgument, "", "bad page token")
		}
		start = append(v.k.userName(folds[0]), 0)
	}
	limit := pageLimit(o.Limit, defaultUsersLimit)
	page := &UserPage{Users: []User{}}
	var last string
	err := v.scan(start, prefixEnd(lo), false, func(k, val []byte) (bool, error) {
		if len(page.Users) >= limit {
			page.NextPageToken = encodePageToken([]string{last})
			return false, nil
		}
		if len(val) != 8 {
			return false, fmt.Errorf("%w: user name index value of %d bytes", ErrCorruptStore, len(val))
		}
		u, err := v.user(beU64(val))
		if err != nil {
			return false, err
		}
		if u == nil {
			return false, fmt.Errorf("%w: user name index names missing user %d", ErrCorruptStore, beU64(val))
		}
		last = string(k[len(lo):])
		if !u.Deleted {
			u.PasswordHash = ""
			page.Users = append(page.Users, *u)
		}
		return true, nil
	})
	return page, err
}
