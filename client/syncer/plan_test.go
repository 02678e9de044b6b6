package syncer

import (
	"fmt"
	"slices"
	"strings"
	"testing"
)

func TestPlanCases(t *testing.T) {
	file := func(p, hash string, inode uint64) *Local {
		return &Local{Path: p, Real: p, Hash: hash, Inode: inode, Size: 1}
	}
	dir := func(p string, inode uint64) *Local { return &Local{Path: p, Real: p, Dir: true, Inode: inode} }
	rfile := func(p string, id, rev uint64, hash string) *Remote {
		return &Remote{ID: id, Path: p, Name: p, Rev: rev, Hash: hash, Size: 1}
	}
	rdir := func(p string, id uint64) *Remote { return &Remote{ID: id, Path: p, Name: p, Dir: true, Rev: 1} }
	bfile := func(p string, id, rev uint64, hash string, inode uint64) *Base {
		return &Base{Path: p, ID: id, Rev: rev, Hash: hash, Inode: inode, Size: 1}
	}
	bdir := func(p string, id uint64, inode uint64) *Base {
		return &Base{Path: p, ID: id, Rev: 1, Dir: true, Inode: inode}
	}

	cases := []struct {
		name string
		b    []*Base
		l    []*Local
		r    []*Remote
		want string // "kind path[>to]" joined by "; "
	}{
		{"in sync", []*Base{bfile("a", 1, 1, "h1", 10)}, []*Local{file("a", "h1", 10)}, []*Remote{rfile("a", 1, 1, "h1")}, ""},
		{"new local file", nil, []*Local{file("a", "h1", 10)}, nil, "upload a"},
		{"new remote file", nil, nil, []*Remote{rfile("a", 1, 1, "h1")}, "download a"},
		{"local edit", []*Base{bfile("a", 1, 1, "h1", 10)}, []*Local{file("a", "h2", 10)}, []*Remote{rfile("a", 1, 1, "h1")}, "upload a"},
		{"remote edit", []*Base{bfile("a", 1, 1, "h1", 10)}, []*Local{file("a", "h1", 10)}, []*Remote{rfile("a", 1, 2, "h2")}, "download a"},
		{"remote rev, same bytes", []*Base{bfile("a", 1, 1, "h1", 10)}, []*Local{file("a", "h1", 10)}, []*Remote{rfile("a", 1, 2, "h1")}, "refresh a"},
		{"both edit alike", []*Base{bfile("a", 1, 1, "h1", 10)}, []*Local{file("a", "h2", 10)}, []*Remote{rfile("a", 1, 2, "h2")}, "refresh a"},
		{"both edit", []*Base{bfile("a", 1, 1, "h1", 10)}, []*Local{file("a", "h2", 10)}, []*Remote{rfile("a", 1, 2, "h3")}, "conflict a"},
		{"both new, different", nil, []*Local{file("a", "h2", 10)}, []*Remote{rfile("a", 1, 1, "h3")}, "conflict a"},
		{"local delete", []*Base{bfile("a", 1, 1, "h1", 10)}, nil, []*Remote{rfile("a", 1, 1, "h1")}, "delete-remote a"},
		{"remote delete", []*Base{bfile("a", 1, 1, "h1", 10)}, []*Local{file("a", "h1", 10)}, nil, "delete-local a"},
		{"local edit beats remote delete", []*Base{bfile("a", 1, 1, "h1", 10)}, []*Local{file("a", "h2", 10)}, nil, "upload a"},
		{"remote edit beats local delete", []*Base{bfile("a", 1, 1, "h1", 10)}, nil, []*Remote{rfile("a", 1, 2, "h2")}, "download a"},
		{"both delete", []*Base{bfile("a", 1, 1, "h1", 10)}, nil, nil, "forget a"},
		{"local rename", []*Base{bfile("a", 1, 1, "h1", 10)}, []*Local{file("b", "h1", 10)}, []*Remote{rfile("a", 1, 1, "h1")}, "move-remote a>b"},
		{"remote rename", []*Base{bfile("a", 1, 1, "h1", 10)}, []*Local{file("a", "h1", 10)}, []*Remote{rfile("b", 1, 2, "h1")}, "move-local a>b"},
		{"local rename over a remote change is no move", []*Base{bfile("a", 1, 1, "h1", 10)}, []*Local{file("b", "h1", 10)}, []*Remote{rfile("a", 1, 2, "h2")}, "download a; upload b"},
		{"folder rename moves once",
			[]*Base{bdir("d", 1, 20), bfile("d/x", 2, 1, "h1", 21), bfile("d/y", 3, 1, "h2", 22)},
			[]*Local{dir("e", 20), file("e/x", "h1", 21), file("e/y", "h2", 22)},
			[]*Remote{rdir("d", 1), rfile("d/x", 2, 1, "h1"), rfile("d/y", 3, 1, "h2")},
			"move-remote d>e"},
		{"folder deleted here, new file inside there",
			[]*Base{bdir("d", 1, 20), bfile("d/x", 2, 1, "h1", 21)},
			nil,
			[]*Remote{rdir("d", 1), rfile("d/x", 2, 1, "h1"), rfile("d/new", 4, 1, "h9")},
			"delete-remote d/x; download d/new"},
		{"case clash", nil, []*Local{file("A.txt", "h1", 10)}, []*Remote{rfile("a.txt", 1, 1, "h2")}, "case-clash A.txt; download a.txt"},
		{"file replaced by folder here", []*Base{bfile("a", 1, 1, "h1", 10)}, []*Local{dir("a", 11)}, []*Remote{rfile("a", 1, 1, "h1")}, "delete-remote a; mkdir-remote a"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			tr := Trees{Base: map[string]*Base{}, Local: map[string]*Local{}, Remote: map[string]*Remote{}}
			for _, b := range c.b {
				tr.Base[b.Path] = b
			}
			for _, l := range c.l {
				tr.Local[l.Path] = l
			}
			for _, r := range c.r {
				tr.Remote[r.Path] = r
			}
			var got []string
			for _, a := range Plan(tr) {
				s := fmt.Sprintf("%s %s", a.Kind, a.Path)
				if a.To != "" {
					s += ">" + a.To
				}
				got = append(got, s)
			}
			slices.Sort(got)
			if g := strings.Join(got, "; "); g != c.want {
				t.Fatalf("plan: %q\nwant: %q", g, c.want)
			}
		})
	}
}
