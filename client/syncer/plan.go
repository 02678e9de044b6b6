package syncer

import (
	"slices"
	"strings"

	"golang.org/x/text/cases"
	"golang.org/x/text/unicode/norm"

	"github.com/coffer-dev/coffer/internal/wire"
)

// Local is a file or folder in the local tree, as the last scan saw it.
type Local struct {
	Path   string // the key: relative, slash-separated, NFC
	Real   string // the path as the file system spells it (NFD on some systems)
	Dir    bool
	Size   int64
	Mtime  int64 // Unix ns
	Exec   bool
	Inode  uint64
	Hash   string       // SHA-256 of the content (files)
	Blocks []wire.Block // its content-defined blocks (files)
}

// Remote is a live file or folder in the remote tree under the sync root.
type Remote struct {
	ID     uint64 `json:"id"`
	Parent uint64 `json:"parent"`
	Name   string `json:"name"`
	Path   string `json:"-"` // relative to the sync root (computed)
	Dir    bool   `json:"dir,omitempty"`
	Rev    uint64 `json:"rev"`
	Size   int64  `json:"size"`
	Hash   string `json:"hash,omitempty"`
	Mode   uint32 `json:"mode,omitempty"`  // 0: not known (a feed record older than the field)
	Mtime  int64  `json:"mtime,omitempty"` // Unix ns
}

// Base is the state both sides had when a path was last in sync: the merge
// base of the three-way comparison.
type Base struct {
	Path   string       `json:"-"`
	ID     uint64       `json:"id"`
	Rev    uint64       `json:"rev"`
	Dir    bool         `json:"dir,omitempty"`
	Size   int64        `json:"size"`
	Hash   string       `json:"hash,omitempty"`
	Exec   bool         `json:"exec,omitempty"`
	Mtime  int64        `json:"mtime"` // the local file's, when recorded
	Inode  uint64       `json:"inode"`
	Blocks []wire.Block `json:"blocks,omitempty"`
}

// Kind is what an Action does.
type Kind int

// The kinds of Action.
const (
	MoveLocal    Kind = iota + 1 // rename From to To locally (it moved remotely)
	MoveRemote                   // move From to To remotely (it moved locally)
	Upload                       // put the local file at Path
	MkdirRemote                  // make the folder Path remotely
	DeleteRemote                 // delete Path remotely
	Download                     // fetch the remote file at Path
	MkdirLocal                   // make the folder Path locally
	DeleteLocal                  // delete Path locally
	Conflict                     // rename the local Path to a conflicted copy
	Record                       // both sides agree: record the base
	Forget                       // both sides lack Path: drop its base
	Refresh                      // the remote revision moved but not the content: record it
	CaseClash                    // rename the new local Path: another path differs from it in case only
)

var kindNames = map[Kind]string{
	MoveLocal: "move-local", MoveRemote: "move-remote", Upload: "upload", MkdirRemote: "mkdir-remote",
	DeleteRemote: "delete-remote", Download: "download", MkdirLocal: "mkdir-local", DeleteLocal: "delete-local",
	Conflict: "conflict", Record: "record", Forget: "forget", Refresh: "refresh", CaseClash: "case-clash",
}

func (k Kind) String() string { return kindNames[k] }

// Action is one step of a plan.
type Action struct {
	Kind   Kind
	Path   string // the target (for moves: the source)
	To     string // a move's destination
	Local  *Local
	Remote *Remote
	Base   *Base
}

// Trees are the three trees a plan compares, keyed by relative NFC path.
type Trees struct {
	Base   map[string]*Base
	Local  map[string]*Local
	Remote map[string]*Remote
	// NoMove lists source paths whose move failed earlier: Plan does not
	// try them again as moves (they sync as a delete and a create).
	NoMove map[string]bool
}

// under reports whether p is dir or below it.
func under(p, dir string) bool {
	return p == dir || strings.HasPrefix(p, dir+"/")
}

// parentOf is the folder that holds p ("" for the root's children).
func parentOf(p string) string {
	if i := strings.LastIndexByte(p, '/'); i >= 0 {
		return p[:i]
	}
	return ""
}

func depth(p string) int { return strings.Count(p, "/") }

// Plan compares the trees and returns what brings them together. Moves
// come alone: when Plan finds any, it returns only moves, and the caller
// runs them and plans again (paths below a moved folder change with it).
// Plan is a pure function of t.
func Plan(t Trees) []Action {
	if moves := planMoves(t); len(moves) > 0 {
		return moves
	}
	paths := make([]string, 0, len(t.Base)+len(t.Local))
	seen := map[string]bool{}
	add := func(p string) {
		if !seen[p] {
			seen[p] = true
			paths = append(paths, p)
		}
	}
	for p := range t.Base {
		add(p)
	}
	for p := range t.Local {
		add(p)
	}
	for p := range t.Remote {
		add(p)
	}
	slices.Sort(paths)
	clashes := caseClashes(t, paths)
	var out []Action
	var clashed []string
	for _, p := range paths {
		if len(clashed) > 0 && under(p, clashed[len(clashed)-1]) {
			continue // below a folder that moves aside
		}
		if clashes[p] {
			clashed = append(clashed, p)
			out = append(out, Action{Kind: CaseClash, Path: p, Local: t.Local[p], Remote: t.Remote[p], Base: t.Base[p]})
			continue
		}
		out = append(out, planPath(t, p)...)
	}
	return out
}

// fold is the server's case folding of a path (NFC, then Unicode case
// folding): two names in one folder may not fold alike.
func fold(p string) string { return folder.String(norm.NFC.String(p)) }

var folder = cases.Fold()

// caseClashes finds the local paths the plan would create remotely that
// fold like another path: one the server has, or a local one that sorts
// first. The server refuses them, so they move aside.
func caseClashes(t Trees, paths []string) map[string]bool {
	owner := map[string]string{}
	for p := range t.Remote {
		owner[fold(p)] = p
	}
	var out map[string]bool
	for _, p := range paths {
		l := t.Local[p]
		if l == nil || t.Remote[p] != nil || !localChanged(t.Base[p], l) {
			continue
		}
		f := fold(p)
		if o, ok := owner[f]; ok && o != p {
			if out == nil {
				out = map[string]bool{}
			}
			out[p] = true
			continue
		}
		owner[f] = p
	}
	return out
}

// planMoves finds renames: a base node whose ID sits at another remote
// path (it moved remotely), or whose inode sits at another local path (it
// moved locally). Folders go first, and nothing below a moved folder is
// looked at: its paths change with the folder.
func planMoves(t Trees) []Action {
	byID := make(map[uint64]*Remote, len(t.Remote))
	for _, r := range t.Remote {
		byID[r.ID] = r
	}
	byInode := map[uint64][]*Local{}
	for _, l := range t.Local {
		if l.Inode != 0 {
			byInode[l.Inode] = append(byInode[l.Inode], l)
		}
	}
	bases := make([]*Base, 0, len(t.Base))
	for _, b := range t.Base {
		bases = append(bases, b)
	}
	// Shallow first, then by path: a folder's move covers its contents.
	slices.SortFunc(bases, func(a, b *Base) int {
		if d := depth(a.Path) - depth(b.Path); d != 0 {
			return d
		}
		return strings.Compare(a.Path, b.Path)
	})
	var out []Action
	var moved []string // sources and destinations taken by moves so far
	busy := func(p string) bool {
		for _, m := range moved {
			if under(p, m) || under(m, p) {
				return true
			}
		}
		return false
	}
	taken := map[string]bool{} // folded paths the server has or had
	for p := range t.Remote {
		taken[fold(p)] = true
	}
	for p := range t.Base {
		taken[fold(p)] = true
	}
	for _, b := range bases {
		if busy(b.Path) || t.NoMove[b.Path] {
			continue
		}
		l := t.Local[b.Path]
		r := byID[b.ID]
		// Moved remotely: the node is elsewhere, the local copy still here.
		if r != nil && r.Path != b.Path && r.Dir == b.Dir && l != nil && l.Dir == b.Dir &&
			t.Local[r.Path] == nil && t.Base[r.Path] == nil && !busy(r.Path) {
			out = append(out, Action{Kind: MoveLocal, Path: b.Path, To: r.Path, Local: l, Remote: r, Base: b})
			moved = append(moved, b.Path, r.Path)
			continue
		}
		// Moved locally: the path is empty here, its inode elsewhere, and
		// the remote node unchanged where it was.
		if l != nil || b.Inode == 0 || r == nil || r.Path != b.Path || r.Rev != b.Rev {
			continue
		}
		cands := byInode[b.Inode]
		if len(cands) != 1 {
			continue
		}
		n := cands[0]
		if n.Dir != b.Dir || taken[fold(n.Path)] || busy(n.Path) {
			continue
		}
		out = append(out, Action{Kind: MoveRemote, Path: b.Path, To: n.Path, Local: n, Remote: r, Base: b})
		moved = append(moved, b.Path, n.Path)
	}
	return out
}

// localChanged says whether the local side differs from the base.
func localChanged(b *Base, l *Local) bool {
	switch {
	case b == nil || l == nil:
		return (b == nil) != (l == nil)
	case b.Dir != l.Dir:
		return true
	case b.Dir:
		return false
	}
	return l.Hash != b.Hash || l.Exec != b.Exec
}

// remoteChanged says whether the remote side differs from the base.
func remoteChanged(b *Base, r *Remote) bool {
	switch {
	case b == nil || r == nil:
		return (b == nil) != (r == nil)
	case b.Dir != r.Dir || b.ID != r.ID:
		return true
	case b.Dir:
		return false
	}
	return r.Rev != b.Rev
}

// planPath decides one path once no moves are left.
func planPath(t Trees, p string) []Action {
	b, l, r := t.Base[p], t.Local[p], t.Remote[p]
	lc, rc := localChanged(b, l), remoteChanged(b, r)
	act := func(k Kind) Action { return Action{Kind: k, Path: p, Local: l, Remote: r, Base: b} }
	switch {
	case !lc && !rc:
		return nil
	case lc && !rc: // push the local change
		var out []Action
		if b != nil && r != nil && (l == nil || l.Dir != b.Dir) {
			if b.Dir && !remoteSubtreeKnown(t, p) {
				// Something new arrived inside the folder deleted here: the
				// new content wins, and the folder stays (the download of
				// what is new makes it again locally). A file put in its
				// place here is kept as a conflicted copy.
				if l != nil {
					return []Action{act(Conflict)}
				}
				return nil
			}
			out = append(out, act(DeleteRemote))
		}
		switch {
		case l == nil:
		case l.Dir && (b == nil || !b.Dir):
			out = append(out, act(MkdirRemote))
		case !l.Dir:
			out = append(out, act(Upload))
		}
		if b != nil && r == nil && l == nil {
			out = append(out, act(Forget))
		}
		return out
	case !lc && rc: // pull the remote change
		var out []Action
		if l != nil && (r == nil || r.Dir != l.Dir) {
			out = append(out, act(DeleteLocal))
		}
		switch {
		case r == nil:
			if l == nil {
				out = append(out, act(Forget))
			}
		case r.Dir && (l == nil || !l.Dir):
			out = append(out, act(MkdirLocal))
		case r.Dir:
			out = append(out, act(Record)) // the same folder, a new node
		case l != nil && !l.Dir && b != nil && b.Hash == r.Hash:
			out = append(out, act(Refresh)) // a new revision of the same bytes
		default:
			out = append(out, act(Download))
		}
		return out
	}
	// Both changed.
	switch {
	case l == nil && r == nil:
		return []Action{act(Forget)}
	case l == nil: // deleted here, changed there: the change wins
		if r.Dir {
			return []Action{act(MkdirLocal)}
		}
		return []Action{act(Download)}
	case r == nil: // changed here, deleted there: the change wins
		if l.Dir {
			return []Action{act(MkdirRemote)}
		}
		return []Action{act(Upload)}
	case l.Dir && r.Dir:
		return []Action{act(Record)}
	case !l.Dir && !r.Dir && l.Hash == r.Hash:
		// The same bytes: take the remote executable bit (Refresh reads it).
		return []Action{act(Refresh)}
	}
	// Different content, or a file against a folder: keep both. The local
	// one moves aside (and is uploaded under its new name next round); the
	// remote one then takes the path.
	return []Action{act(Conflict)}
}

// remoteSubtreeKnown reports whether everything below the remote folder p
// is as the base has it: only then may a local delete of the folder
// delete it remotely (which deletes all below it).
func remoteSubtreeKnown(t Trees, p string) bool {
	for q, r := range t.Remote {
		if q != p && under(q, p) && remoteChanged(t.Base[q], r) {
			return false
		}
	}
	return true
}
