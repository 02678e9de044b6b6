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
// path and synced.
type Edit struct {
	Device string `json:"device"`
	Path   string `json:"path"`
	SHA256 string `json:"sha256"`
}

// Edits checks that no acknowledged edit is lost. trees are the final
// trees (name → path → SHA-256: the devices' folders and the server);
// history maps a path to the SHA-256 of every revision the server keeps of
// it. In every tree, each edit's content must be at its path, or in a
// conflicted copy of it in the same folder ("NAME (conflicted copy HOST
// YYYY-MM-DD HHMMSS).EXT", possibly numbered or nested), or in the
// server's history of the path or of such a copy (a later edit superseded
// it). No trees is invalid.
func Edits(edits []Edit, trees map[string]map[string]string, history map[string][]string) Result {
	const name = "edits"
	var p problems
	names := sortedKeys(trees)
	if len(names) == 0 {
		p.add("no trees given")
		return p.result(name, "not checked")
	}
	histDirs := indexByDir(history)
	treeDirs := make(map[string]map[string][]string, len(names))
	for _, tn := range names {
		treeDirs[tn] = indexByDir(trees[tn])
	}
	var atPath, asCopy, inHistory, lost int
	for _, e := range edits {
		worst := 0 // 0 at path, 1 copy, 2 history, 3 lost: the worst tree counts
		var missing []string
		for _, tn := range names {
			w := findEdit(e, trees[tn], treeDirs[tn], history, histDirs)
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
	}
	summary := fmt.Sprintf("%d acknowledged edits in %d trees: %d at their path, %d as conflicted copies, %d only in history, %d lost",
		len(edits), len(names), atPath, asCopy, inHistory, lost)
	return p.result(name, summary)
}

// findEdit says where e's content is for one tree: 0 at its path, 1 in a
// conflicted copy, 2 in the server's history, 3 nowhere.
func findEdit(e Edit, tree map[string]string, treeDirs map[string][]string, history map[string][]string, histDirs map[string][]string) int {
	want := strings.ToLower(e.SHA256)
	same := func(h string) bool { return strings.ToLower(h) == want }
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
	if slices.ContainsFunc(history[e.Path], same) {
		return 2
	}
	for _, pth := range histDirs[dir] {
		if isCopy(pth) && slices.ContainsFunc(history[pth], same) {
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
