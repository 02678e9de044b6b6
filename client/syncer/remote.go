package syncer

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/coffer-dev/coffer/client"
	"github.com/coffer-dev/coffer/client/ignore"
	"github.com/coffer-dev/coffer/internal/wire"
	"golang.org/x/text/unicode/norm"
)

// feedPage is how many change records one read of the feed asks for.
const feedPage = 1000

// pull brings the remote tree up to date: a full listing on the first
// run and after a cursor reset, the change feed otherwise.
func (e *Engine) pull(ctx context.Context) error {
	if e.rootID == 0 {
		return e.relist(ctx)
	}
	for {
		page, err := e.api.Changes(ctx, e.cursor, feedPage, 0)
		if errors.Is(err, client.ErrCursorReset) {
			e.log.Info("the change feed was reset; listing the remote folder again")
			return e.relist(ctx)
		}
		if err != nil {
			return fmt.Errorf("reading the change feed: %w", err)
		}
		if err := e.apply(ctx, page); err != nil {
			return err
		}
		if !page.More {
			return nil
		}
	}
}

// relist reads the whole remote folder: the cursor first, so that the
// feed after it covers every change the listing may miss.
func (e *Engine) relist(ctx context.Context) error {
	who, err := e.api.Whoami(ctx)
	if err != nil {
		return fmt.Errorf("whoami: %w", err)
	}
	root, err := e.api.Stat(ctx, e.root, false)
	if errors.Is(err, client.ErrNotFound) && e.root != "/" {
		if err := e.step("mkdir-root"); err != nil {
			return err
		}
		if _, err = e.api.Commit(ctx, "", []wire.Op{{Kind: "mkdir", Path: e.root}}, nil); err != nil && !errors.Is(err, client.ErrExists) {
			return fmt.Errorf("making the remote folder %s: %w", e.root, err)
		}
		root, err = e.api.Stat(ctx, e.root, false)
	}
	if err != nil {
		return fmt.Errorf("the remote folder %s: %w", e.root, err)
	}
	if !root.Dir {
		return fmt.Errorf("%w: the remote %s is a file", ErrInvalidConfig, e.root)
	}
	ents, err := e.api.ListAll(ctx, e.root, client.ListOptions{Recursive: true})
	if err != nil {
		return fmt.Errorf("listing %s: %w", e.root, err)
	}
	nodes := make(map[uint64]*Remote, len(ents))
	set := make([]*Remote, 0, len(ents))
	for _, en := range ents {
		if en.Deleted || en.ID == root.ID {
			continue
		}
		r := remoteOf(en)
		nodes[r.ID] = r
		set = append(set, r)
	}
	if err := e.step("relist"); err != nil {
		return err
	}
	if err := e.st.remoteUpdate(set, nil, who.Cursor, true); err != nil {
		return err
	}
	if err := e.st.setMeta(map[string]string{"root_id": strconv.FormatUint(root.ID, 10)}); err != nil {
		return err
	}
	e.rootID, e.nodes, e.cursor = root.ID, nodes, who.Cursor
	return nil
}

// apply applies one page of the change feed to the remote tree, and
// writes the nodes it touched, and the new cursor, in one transaction.
func (e *Engine) apply(ctx context.Context, page *client.ChangePage) error {
	touched := map[uint64]bool{}
	for _, rec := range page.Records {
		for _, c := range rec.Changes {
			if c.ID == e.rootID {
				if c.Deleted || c.Op == "move" {
					// The synced folder itself went away or moved: start over
					// (a missing root is made again, empty).
					e.log.Warn("the remote folder was moved or deleted", "path", e.root)
					return e.relist(ctx)
				}
				continue
			}
			touched[c.ID] = true
			if c.Deleted {
				delete(e.nodes, c.ID)
				continue
			}
			_, known := e.nodes[c.ID]
			r := &Remote{ID: c.ID, Parent: c.Parent, Name: c.Name, Dir: c.Dir, Rev: c.Rev, Size: c.Size, Hash: c.Hash,
				Mode: c.Mode, Mtime: c.Mtime}
			if !e.inside(r) {
				delete(e.nodes, c.ID) // moved out of the folder (or never in it)
				continue
			}
			e.nodes[c.ID] = r
			if c.Dir && !known && c.Op != "mkdir" {
				// A folder that came in from outside (moved or restored) brings
				// contents the feed does not list.
				kids, err := e.api.ListAll(ctx, c.Path, client.ListOptions{Recursive: true})
				if err != nil && !errors.Is(err, client.ErrNotFound) {
					return fmt.Errorf("listing %s: %w", c.Path, err)
				}
				for _, en := range kids {
					if en.Deleted || en.ID == c.ID {
						continue
					}
					e.nodes[en.ID] = remoteOf(en)
					touched[en.ID] = true
				}
			}
		}
	}
	// Drop nodes that no longer reach the root (below a folder moved out).
	for id, r := range e.nodes {
		if !e.inside(r) {
			delete(e.nodes, id)
			touched[id] = true
		}
	}
	var set []*Remote
	var del []uint64
	for id := range touched {
		if r, ok := e.nodes[id]; ok {
			set = append(set, r)
		} else {
			del = append(del, id)
		}
	}
	if err := e.st.remoteUpdate(set, del, page.Cursor, false); err != nil {
		return err
	}
	e.cursor = page.Cursor
	return nil
}

// inside reports whether r's parent chain reaches the root.
func (e *Engine) inside(r *Remote) bool {
	for range 4096 {
		if r.Parent == e.rootID {
			return true
		}
		p, ok := e.nodes[r.Parent]
		if !ok || !p.Dir {
			return false
		}
		r = p
	}
	return false
}

// remoteTree is the remote tree by relative NFC path, without ignored
// paths and, on a file system that folds case, without the second of two
// paths that differ in case only.
func (e *Engine) remoteTree(m *ignore.Matcher) map[string]*Remote {
	paths := make(map[uint64]string, len(e.nodes))
	var pathOf func(r *Remote, depth int) string
	pathOf = func(r *Remote, depth int) string {
		if p, ok := paths[r.ID]; ok {
			return p
		}
		var p string
		switch {
		case r.Parent == e.rootID:
			p = r.Name
		case depth > 4096:
			return ""
		default:
			parent, ok := e.nodes[r.Parent]
			if !ok {
				return ""
			}
			pp := pathOf(parent, depth+1)
			if pp == "" {
				return ""
			}
			p = pp + "/" + r.Name
		}
		paths[r.ID] = p
		return p
	}
	out := make(map[string]*Remote, len(e.nodes))
	folded := map[string]string{}
	for _, r := range e.nodes {
		p := norm.NFC.String(pathOf(r, 0))
		if p == "" || ignoredPath(m, p, r.Dir) {
			continue
		}
		c := *r
		c.Path = p
		out[p] = &c
	}
	if e.fold {
		skipped := map[string]bool{}
		for _, p := range sortedPaths(out) {
			if skipped[parentOf(p)] {
				skipped[p] = true
				delete(out, p)
				continue
			}
			k := strings.ToLower(p)
			if first, ok := folded[k]; ok {
				e.warnOnce("case:"+p, "skipping a remote path that differs from another in case only", "path", p, "other", first)
				skipped[p] = true
				delete(out, p)
				continue
			}
			folded[k] = p
		}
	}
	return out
}

// ignoredPath reports whether p or any folder above it is ignored.
func ignoredPath(m *ignore.Matcher, p string, dir bool) bool {
	if m.Ignored(p, dir) {
		return true
	}
	for i := 0; i < len(p); i++ {
		if p[i] == '/' && m.Ignored(p[:i], true) {
			return true
		}
	}
	return false
}

// remoteOf is the remote-tree node of a listed entry.
func remoteOf(en client.Entry) *Remote {
	return &Remote{ID: en.ID, Parent: en.Parent, Name: en.Name, Dir: en.Dir, Rev: en.Rev, Size: en.Size,
		Hash: en.Hash, Mode: en.Mode, Mtime: en.Mtime}
}
