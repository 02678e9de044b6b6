package check

import (
	"fmt"
	"path"
	"regexp"
	"slices"
	"strings"
)

// Converged checks that several trees are identical. trees maps a tree's
// name (a device's folder, "server") to its files: path → SHA-256. Every
// tree is compared with the first by name; fewer than two trees is invalid
// (nothing was compared).
func Converged(trees map[string]map[string]string) Result {
	const name = "converged"
	var p problems
	names := sortedKeys(trees)
	if len(names) < 2 {
		p.add("need at least two trees to compare, got %d", len(names))
		return p.result(name, "not checked")
	}
	ref := trees[names[0]]
	diffs := 0
	for _, other := range names[1:] {
		t := trees[other]
		for _, pth := range sortedKeys(ref) {
			h, ok := t[pth]
			switch {
			case !ok:
				diffs++
				p.add("%q is in %s but not in %s", pth, names[0], other)
			case h != ref[pth]:
				diffs++
				p.add("%q differs: %s in %s, %s in %s", pth, ref[pth], names[0], h, other)
			}
		}
		for _, pth := range sortedKeys(t) {
			if _, ok := ref[pth]; !ok {
				diffs++
				p.add("%q is in %s but not in %s", pth, other, names[0])
			}
		}
	}
	summary := fmt.Sprintf("%d trees (%s), %d files in %s", len(names), strings.Join(names, ", "), len(ref), names[0])
	if diffs == 0 {
		summary += ": identical"
	}
	return p.result(name, summary)
}

// Edit is an acknowledged edit: the content (SHA-256) a device wrote at a
// path and synced, and Prev, the SHA-256 of what the file held on the
// device just before ("" if there was no file): the edit is based on it.
type Edit struct {
	Device string `json:"device"`
	Path   string `json:"path"`
	SHA256 string `json:"sha256"`
	Prev   string `json:"prev,omitempty"`
}

// FileRev is one revision the server keeps of a file: its number, the
// SHA-256 of its content, and whether it is a deletion (which has no
// content).
type FileRev struct {
	Rev     uint64 `json:"rev"`
	SHA256  string `json:"sha256,omitempty"`
	Deleted bool   `json:"deleted,omitempty"`
}

// Edits checks that no acknowledged edit is lost or silently overwritten.
// trees are the final trees (name → path → SHA-256: the devices' folders
// and the server); history maps a path to every revision the server keeps
// of it (in any order). No trees is invalid.
//
// Lost: in every tree, each edit's content must be at its path, or in a
// conflicted copy of it in the same folder ("NAME (conflicted copy HOST
// YYYY-MM-DD HHMMSS).EXT", possibly numbered or nested), or in the
// server's history of the path or of such a copy (a later edit superseded
// it).
//
// Silent overwrite: an edit whose content is in the history of its own
// path must directly follow the content it was based on. The first
// revision r with its content must come right after a revision holding
// Prev (Prev "": r is 1 or follows a deletion), and a later revision with
// its content may only follow one with the same content (a change of
// metadata). Otherwise the edit was committed over a revision its device
// never saw. An edit found only in a conflicted copy was diverted there,
// which is right, and is not checked. A revision r-1 missing from the
// history is reported: the rule cannot be checked.
func Edits(edits []Edit, trees map[string]map[string]string, history map[string][]FileRev) Result {
	const name = "edits"
	var p problems
	names := sortedKeys(trees)
	if len(names) == 0 {
		p.add("no trees given")
		return p.result(name, "not checked")
	}
	contents := make(map[string][]string, len(history)) // path → content hashes of its live revisions
	byRev := make(map[string]map[uint64]FileRev, len(history))
	for _, pth := range sortedKeys(history) {
		revs := map[uint64]FileRev{}
		for _, r := range history[pth] {
			if old, dup := revs[r.Rev]; dup && (old.Deleted != r.Deleted || !sameHash(old.SHA256, r.SHA256)) {
				p.add("malformed history of %q: rev %d listed twice with different content", pth, r.Rev)
			}
			revs[r.Rev] = r
			if !r.Deleted {
				contents[pth] = append(contents[pth], r.SHA256)
			}
		}
		byRev[pth] = revs
	}
	histDirs := indexByDir(contents)
	treeDirs := make(map[string]map[string][]string, len(names))
	for _, tn := range names {
		treeDirs[tn] = indexByDir(trees[tn])
	}
	var atPath, asCopy, inHistory, lost, ordered, overwritten, unverified int
	for _, e := range edits {
		worst := 0 // 0 at path, 1 copy, 2 history, 3 lost: the worst tree counts
		var missing []string
		for _, tn := range names {
			w := findEdit(e, trees[tn], treeDirs[tn], contents, histDirs)
			if w == 3 {
				missing = append(missing, tn)
			}
			worst = max(worst, w)
		}
		switch worst {
		case 0:
			atPath++
		case 1:
			asCopy++
		case 2:
			inHistory++
		default:
			lost++
			p.add("lost edit: %s wrote %s to %q; in %s it is neither there, nor in a conflicted copy, nor in the server's history",
				e.Device, e.SHA256, e.Path, strings.Join(missing, ", "))
		}
		switch checkEditOrder(e, byRev[e.Path], &p) {
		case orderFollows:
			ordered++
		case orderBroken:
			overwritten++
		case orderUnknown:
			unverified++
		}
	}
	summary := fmt.Sprintf("%d acknowledged edits in %d trees: %d at their path, %d as conflicted copies, %d only in history, %d lost; "+
		"%d in their path's history: %d directly after the revision they were based on, %d silent overwrites",
		len(edits), len(names), atPath, asCopy, inHistory, lost, ordered+overwritten+unverified, ordered, overwritten)
	if unverified > 0 {
		summary += fmt.Sprintf(", %d not verifiable (the revision before is not kept)", unverified)
	}
	return p.result(name, summary)
}

// The verdicts of checkEditOrder.
const (
	orderNotInHistory = iota // not in its path's history: nothing to check
	orderFollows             // its revision follows the one it was based on
	orderUnknown             // the revision before it is not in the history
	orderBroken              // a silent overwrite (the worst verdict)
)

// checkEditOrder checks that e's revisions in revs (its path's history,
// by number) follow the content e was based on, and reports each breach.
func checkEditOrder(e Edit, revs map[uint64]FileRev, p *problems) int {
	holds := func(r FileRev, h string) bool { return !r.Deleted && sameHash(r.SHA256, h) }
	var hits []uint64
	for n, r := range revs {
		if holds(r, e.SHA256) {
			hits = append(hits, n)
		}
	}
	if len(hits) == 0 {
		return orderNotInHistory
	}
	slices.Sort(hits)
	verdict := orderFollows
	describe := func(r FileRev) string {
		if r.Deleted {
			return "a deletion"
		}
		return r.SHA256
	}
	based := e.Prev
	if based == "" {
		based = "no file"
	}
	first := hits[0]
	if first == 0 {
		p.add("malformed history of %q: a revision numbered 0", e.Path)
		return orderUnknown
	}
	before, kept := revs[first-1]
	switch {
	case first == 1 && e.Prev == "":
	case first == 1:
		verdict = orderBroken
		p.add("silent overwrite: %s wrote %s to %q based on %s, but it is the file's first revision (rev 1): the content it was based on is not before it",
			e.Device, e.SHA256, e.Path, e.Prev)
	case !kept:
		verdict = orderUnknown
		p.add("silent overwrite unverifiable: %s wrote %s to %q at rev %d, but rev %d is not in the server's history",
			e.Device, e.SHA256, e.Path, first, first-1)
	case e.Prev == "" && before.Deleted, e.Prev != "" && holds(before, e.Prev):
	default:
		verdict = orderBroken
		p.add("silent overwrite: %s wrote %s to %q at rev %d based on %s, but rev %d before it holds %s, which the edit overwrote unseen",
			e.Device, e.SHA256, e.Path, first, based, first-1, describe(before))
	}
	for _, n := range hits[1:] {
		before, kept := revs[n-1]
		switch {
		case !kept:
			verdict = max(verdict, orderUnknown)
			p.add("silent overwrite unverifiable: %s's edit %s of %q (first at rev %d) is again at rev %d, but rev %d is not in the server's history",
				e.Device, e.SHA256, e.Path, first, n, n-1)
		case !holds(before, e.SHA256):
			verdict = orderBroken
			p.add("silent overwrite: %s's edit %s of %q (first at rev %d) was written again at rev %d over %s at rev %d",
				e.Device, e.SHA256, e.Path, first, n, describe(before), n-1)
		}
	}
	return verdict
}

func sameHash(a, b string) bool { return strings.EqualFold(a, b) }

// findEdit says where e's content is for one tree: 0 at its path, 1 in a
// conflicted copy, 2 in the server's history (contents: path → the content
// of each revision), 3 nowhere.
func findEdit(e Edit, tree map[string]string, treeDirs map[string][]string, contents map[string][]string, histDirs map[string][]string) int {
	same := func(h string) bool { return sameHash(h, e.SHA256) }
	if h, ok := tree[e.Path]; ok && same(h) {
		return 0
	}
	isCopy := conflictedCopyOf(e.Path)
	dir := path.Dir(e.Path)
	for _, pth := range treeDirs[dir] {
		if isCopy(pth) && same(tree[pth]) {
			return 1
		}
	}
	if slices.ContainsFunc(contents[e.Path], same) {
		return 2
	}
	for _, pth := range histDirs[dir] {
		if isCopy(pth) && slices.ContainsFunc(contents[pth], same) {
			return 2
		}
	}
	return 3
}

// conflictedCopyOf returns a test for the names the sync client gives a
// conflicted copy of p: "STEM (conflicted copy HOST DATE TIME[ N])EXT" in
// p's folder, where a copy of a copy adds another parenthesis.
func conflictedCopyOf(p string) func(string) bool {
	dir, base := path.Split(p)
	ext := path.Ext(base)
	if ext == base { // ".bashrc"
		ext = ""
	}
	stem := strings.TrimSuffix(base, ext)
	re := regexp.MustCompile(`^` + regexp.QuoteMeta(dir+stem) +
		`(?: \(conflicted copy .+ \d{4}-\d{2}-\d{2} \d{6}(?: \d+)?\))+` + regexp.QuoteMeta(ext) + `$`)
	return re.MatchString
}

func indexByDir[V any](m map[string]V) map[string][]string {
	out := map[string][]string{}
	for p := range m {
		d := path.Dir(p)
		out[d] = append(out[d], p)
	}
	return out
}
