package gateway

import (
	"testing"

	"github.com/coffer-dev/coffer/internal/wire"
	"github.com/coffer-dev/coffer/raftmeta"
)

// TestHistoryAndRestore: every change is a revision, a deletion too; any
// kept revision comes back as a new one, and a restore can be undone.
func TestHistoryAndRestore(t *testing.T) {
	e := newEnv(t, envOpts{})
	alice := e.user("alice")
	v1, v2 := []byte("version one"), []byte("version two, longer")
	want(t, "put v1", alice.put("/doc.txt", v1, nil), 201, "")
	want(t, "put v2", alice.put("/doc.txt", v2, nil), 200, "")
	want(t, "delete", alice.do("DELETE", "/v1/files/doc.txt", nil, nil), 200, "")

	revs := alice.history("/doc.txt")
	type rv struct {
		rev     uint64
		op      raftmeta.OpKind
		deleted bool
		size    int
	}
	check := func(what string, revs []raftmeta.Revision, want []rv) {
		t.Helper()
		if len(revs) != len(want) {
			t.Fatalf("%s: %d revisions %+v, want %d", what, len(revs), revs, len(want))
		}
		for i, w := range want {
			r := revs[i]
			if r.Rev != w.rev || r.Op != w.op || r.Deleted != w.deleted || r.Size != int64(w.size) {
				t.Errorf("%s: revision %d is %+v, want %+v", what, i, r, w)
			}
		}
	}
	check("after delete", revs, []rv{{3, raftmeta.OpDelete, true, 0}, {2, raftmeta.OpPut, false, len(v2)}, {1, raftmeta.OpPut, false, len(v1)}})
	if revs[2].Hash.String() != sha(v1) || revs[1].Hash.String() != sha(v2) {
		t.Errorf("revision hashes %s %s", revs[2].Hash, revs[1].Hash)
	}
	if lim := alice.do("GET", "/v1/history/doc.txt?limit=1", nil, nil); len(decodeAs[struct {
		Revisions []raftmeta.Revision `json:"revisions"`
	}](t, lim).Revisions) != 1 {
		t.Errorf("?limit=1: %s", lim.body)
	}

	// Restore revision 1 of the deleted file.
	a := alice.postJSON("/v1/restore", wire.RestoreRequest{Path: "/doc.txt", Rev: 1}, nil)
	if want(t, "restore rev 1", a, 200, "") {
		if r := decodeAs[wire.FileResult](t, a); r.Rev != 4 || r.Path != "/doc.txt" {
			t.Errorf("restore answered %+v", r)
		}
	}
	g := alice.do("GET", "/v1/files/doc.txt", nil, nil)
	if string(g.body) != string(v1) || g.hdr.Get("ETag") != `"4"` || g.hdr.Get(HeaderSHA256) != sha(v1) {
		t.Errorf("after restore: %d %q ETag %s", g.status, g.body, g.hdr.Get("ETag"))
	}
	if r := alice.history("/doc.txt")[0]; r.Rev != 4 || r.Op != raftmeta.OpRestore || r.From != 1 {
		t.Errorf("the restore's revision: %+v", r)
	}

	for _, tc := range []struct {
		name   string
		req    wire.RestoreRequest
		status int
		code   string
	}{
		{"a deletion revision", wire.RestoreRequest{Path: "/doc.txt", Rev: 3}, 400, "invalid_argument"},
		{"a revision that never was", wire.RestoreRequest{Path: "/doc.txt", Rev: 99}, 404, "not_found"},
		{"no revision", wire.RestoreRequest{Path: "/doc.txt"}, 400, "invalid_argument"},
		{"no target", wire.RestoreRequest{Rev: 1}, 400, "invalid_argument"},
		{"no such file", wire.RestoreRequest{Path: "/nothing", Rev: 1}, 404, "not_found"},
		{"stale If-Match", wire.RestoreRequest{Path: "/doc.txt", Rev: 2, IfMatch: 3}, 409, "conflict"},
		{"a folder", wire.RestoreRequest{Path: "/", Rev: 1}, 404, "not_found"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			want(t, "restore", alice.postJSON("/v1/restore", tc.req, nil), tc.status, tc.code)
		})
	}

	// Undo the restore: bring back revision 2, the one before the deletion
	// (with the right If-Match), then redo it by restoring the restore.
	a = alice.postJSON("/v1/restore", wire.RestoreRequest{Path: "/doc.txt", Rev: 2, IfMatch: 4}, nil)
	if want(t, "restore rev 2", a, 200, "") && decodeAs[wire.FileResult](t, a).Rev != 5 {
		t.Errorf("restore rev 2 answered %s", a.body)
	}
	if g := alice.do("GET", "/v1/files/doc.txt", nil, nil); string(g.body) != string(v2) {
		t.Errorf("after undo: %q", g.body)
	}
	a = alice.postJSON("/v1/restore", wire.RestoreRequest{Path: "/doc.txt", Rev: 4}, nil)
	if want(t, "restore rev 4 (the first restore)", a, 200, "") && decodeAs[wire.FileResult](t, a).Rev != 6 {
		t.Errorf("restore rev 4 answered %s", a.body)
	}
	if g := alice.do("GET", "/v1/files/doc.txt", nil, nil); string(g.body) != string(v1) {
		t.Errorf("after redo: %q", g.body)
	}
	// Undo to the deleted state is a delete.
	want(t, "delete again", alice.do("DELETE", "/v1/files/doc.txt", nil, map[string]string{"If-Match": "6"}), 200, "")
	check("at the end", alice.history("/doc.txt"), []rv{
		{7, raftmeta.OpDelete, true, 0}, {6, raftmeta.OpRestore, false, len(v1)}, {5, raftmeta.OpRestore, false, len(v2)},
		{4, raftmeta.OpRestore, false, len(v1)}, {3, raftmeta.OpDelete, true, 0}, {2, raftmeta.OpPut, false, len(v2)}, {1, raftmeta.OpPut, false, len(v1)},
	})
}

// TestRestoreByID: a deleted file whose path another file now holds is
// restored by its node ID, to another path.
func TestRestoreByID(t *testing.T) {
	e := newEnv(t, envOpts{})
	alice := e.user("alice")
	old := []byte("the deleted file")
	a := alice.put("/g.txt", old, nil)
	want(t, "put g", a, 201, "")
	gid := decodeAs[wire.FileResult](t, a).ID
	want(t, "delete g", alice.do("DELETE", "/v1/files/g.txt", nil, nil), 200, "")
	a = alice.put("/h.txt", []byte("the new file"), nil)
	want(t, "put h", a, 201, "")
	hid := decodeAs[wire.FileResult](t, a).ID
	want(t, "move h to g", alice.postJSON("/v1/move", wire.MoveRequest{From: "/h.txt", To: "/g.txt"}, nil), 200, "")

	// The path now names the new file; the old one is reachable by ID.
	if st := decodeAs[raftmeta.Entry](t, alice.do("GET", "/v1/stat/g.txt", nil, nil)); st.ID != hid {
		t.Fatalf("/g.txt is node %d, want %d", st.ID, hid)
	}
	revs := decodeAs[struct {
		Revisions []raftmeta.Revision `json:"revisions"`
	}](t, alice.do("GET", "/v1/history/?id="+itoa(gid), nil, nil)).Revisions
	if len(revs) != 2 || !revs[0].Deleted || revs[1].Size != int64(len(old)) {
		t.Errorf("history by id: %+v", revs)
	}
	st := alice.do("GET", "/v1/stat/?id="+itoa(gid)+"&deleted=1", nil, nil)
	if want(t, "stat deleted by id", st, 200, "") && !decodeAs[raftmeta.Entry](t, st).Deleted {
		t.Errorf("stat by id: %s", st.body)
	}
	want(t, "stat by id without deleted=1", alice.do("GET", "/v1/stat/?id="+itoa(gid), nil, nil), 404, "not_found")

	want(t, "restore by id to its taken place", alice.postJSON("/v1/restore", wire.RestoreRequest{ID: gid, Rev: 1}, nil), 409, "exists")
	a = alice.postJSON("/v1/restore", wire.RestoreRequest{ID: gid, Rev: 1, To: "/restored/g-old.txt"}, nil)
	if want(t, "restore by id to another path", a, 200, "") {
		if r := decodeAs[wire.FileResult](t, a); r.ID != gid || r.Rev != 3 || r.Path != "/restored/g-old.txt" {
			t.Errorf("restore answered %+v", r)
		}
	}
	if g := alice.do("GET", "/v1/files/restored/g-old.txt", nil, nil); string(g.body) != string(old) {
		t.Errorf("restored file: %d %q", g.status, g.body)
	}
	if g := alice.do("GET", "/v1/files/g.txt", nil, nil); string(g.body) != "the new file" {
		t.Errorf("the file at the old path changed: %q", g.body)
	}
	want(t, "restore an unknown id", alice.postJSON("/v1/restore", wire.RestoreRequest{ID: 999999, Rev: 1, To: "/x"}, nil), 404, "not_found")
}
