package raftmeta

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"reflect"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/coffer-dev/coffer/internal/raftgroup"
	"github.com/coffer-dev/coffer/raftmeta/metapath"
	"github.com/hashicorp/raft"
)

// ---------------------------------------------------------------- users

func TestUserCreate(t *testing.T) {
	h := fxNew(t)
	created := h.now
	u := h.createUser("alice", 1000)
	want := &User{ID: 1, Name: "alice", PasswordHash: "hash-alice", Quota: 1000, Namespace: 2, Created: time.Unix(0, created).UTC()}
	if !reflect.DeepEqual(u, want) {
		t.Fatalf("user = %+v, want %+v", u, want)
	}
	ns := h.nsRec(u.Namespace)
	if *ns != (Namespace{ID: 2, Owner: 1, Root: 3}) {
		t.Fatalf("namespace = %+v", ns)
	}
	root := h.mustStat(u.Namespace, "/")
	if !root.Dir || root.ID != 3 || root.Rev != 1 || root.Path != "/" || root.Deleted {
		t.Fatalf("root = %+v", root)
	}
	if revs := h.history(u.Namespace, "/"); len(revs) != 1 || revs[0].Op != OpMkdir || !revs[0].Dir {
		t.Fatalf("root history = %+v", revs)
	}
	if l := h.listAll(u.Namespace, "/", ListOptions{Recursive: true, IncludeDeleted: true}); len(l) != 0 {
		t.Fatalf("new namespace lists %v", fxPaths(l))
	}
	// Lookups are case-insensitive and see the stored user.
	for _, name := range []string{"alice", "ALICE", "Alice"} {
		got, err := h.v().userByName(metapath.Fold(name))
		if err != nil || !reflect.DeepEqual(got, want) {
			t.Fatalf("userByName(%q) = %+v, %v", name, got, err)
		}
	}
	// The next user gets the next IDs: users, namespaces and nodes share one
	// sequence.
	b := h.createUser("bob", 0)
	if b.ID != 4 || b.Namespace != 5 || h.nsRec(5).Root != 6 {
		t.Fatalf("second user %+v, namespace %+v", b, h.nsRec(b.Namespace))
	}
	// A third user with admin rights.
	res := h.apply(&command{Type: cmdCreateUser, CreateUser: &createUserCmd{Name: "root", PasswordHash: "x", Admin: true}})
	if res.Err != nil || !res.User.Admin {
		t.Fatalf("create admin: %+v", res)
	}
}

func TestUserNameCollisions(t *testing.T) {
	cases := []struct {
		name          string
		first, second string
		code          Code
	}{
		{"identical", "alice", "alice", CodeExists},
		{"ASCII case", "alice", "ALICE", CodeExists},
		{"mixed case", "Alice", "aLiCe", CodeExists},
		{"sharp s folds to ss", "Straße", "STRASSE", CodeExists},
		{"ss folds like sharp s", "strasse", "Straße", CodeExists},
		{"capital sharp s", "straße", "STRAẞE", CodeExists},
		{"Greek final sigma", "ΟΔΥΣΣΕΥΣ", "οδυσσευς", CodeExists},
		{"NFD equals NFC", "café", "cafe\u0301", CodeExists},
		{"different names", "alice", "alice2", CodeOK},
		{"dotless i is not i", "ali", "alı", CodeOK},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := fxNew(t)
			u := h.createUser(tc.first, 0)
			res := h.apply(&command{Type: cmdCreateUser, CreateUser: &createUserCmd{Name: tc.second, PasswordHash: "h"}})
			if res.Err == nil {
				fxWantCode(t, nil, tc.code)
				if res.User.Namespace == u.Namespace || res.User.ID == u.ID {
					t.Fatalf("second user %+v shares IDs with %+v", res.User, u)
				}
				return
			}
			fxWantCode(t, res.Err, tc.code)
			if res.Err.Op != -1 {
				t.Fatalf("user error has op %d, want -1", res.Err.Op)
			}
			// The refusal allocated nothing.
			if c := h.counters(); c.NextID != 4 {
				t.Fatalf("next ID %d after a refused create, want 4", c.NextID)
			}
		})
	}
}

func TestUserCreateInvalid(t *testing.T) {
	cases := []struct {
		name  string
		cmd   createUserCmd
		code  Code
		clean string // the stored name when accepted
	}{
		{"empty name", createUserCmd{Name: "", PasswordHash: "h"}, CodeInvalidName, ""},
		{"leading dash", createUserCmd{Name: "-bob", PasswordHash: "h"}, CodeInvalidName, ""},
		{"leading dot", createUserCmd{Name: ".bob", PasswordHash: "h"}, CodeInvalidName, ""},
		{"space", createUserCmd{Name: "bo b", PasswordHash: "h"}, CodeInvalidName, ""},
		{"slash", createUserCmd{Name: "bob/x", PasswordHash: "h"}, CodeInvalidName, ""},
		{"colon", createUserCmd{Name: "bob:x", PasswordHash: "h"}, CodeInvalidName, ""},
		{"NUL", createUserCmd{Name: "bob\x00", PasswordHash: "h"}, CodeInvalidName, ""},
		{"invalid UTF-8", createUserCmd{Name: "bob\xff", PasswordHash: "h"}, CodeInvalidName, ""},
		{"65 bytes", createUserCmd{Name: strings.Repeat("a", 65), PasswordHash: "h"}, CodeInvalidName, ""},
		{"leading combining mark", createUserCmd{Name: "\u0301bob", PasswordHash: "h"}, CodeInvalidName, ""},
		{"empty password hash", createUserCmd{Name: "bob", PasswordHash: ""}, CodeInvalidArgument, ""},
		{"negative quota", createUserCmd{Name: "bob", PasswordHash: "h", Quota: -1}, CodeInvalidArgument, ""},
		{"64 bytes", createUserCmd{Name: strings.Repeat("a", 64), PasswordHash: "h"}, CodeOK, strings.Repeat("a", 64)},
		{"punctuation inside", createUserCmd{Name: "a.b_c-d@e+f", PasswordHash: "h"}, CodeOK, "a.b_c-d@e+f"},
		{"non-Latin letters and digits", createUserCmd{Name: "Ωμέγα٣", PasswordHash: "h"}, CodeOK, "Ωμέγα٣"},
		{"stored NFC", createUserCmd{Name: "cafe\u0301", PasswordHash: "h"}, CodeOK, "café"},
	}
	h := fxNew(t)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			defer h.use(t)()
			before := h.counters()
			c := tc.cmd
			res := h.apply(&command{Type: cmdCreateUser, CreateUser: &c})
			if tc.code != CodeOK {
				fxWantCode(t, res.Err, tc.code)
				if res.User != nil {
					t.Fatalf("refused create returned user %+v", res.User)
				}
				if after := h.counters(); after != before {
					t.Fatalf("refused create changed the counters %+v -> %+v", before, after)
				}
				return
			}
			if res.Err != nil {
				t.Fatalf("create %q: %v", c.Name, res.Err)
			}
			if res.User.Name != tc.clean {
				t.Fatalf("stored name %q, want %q", res.User.Name, tc.clean)
			}
		})
	}
}

func TestUserSetPasswordAndQuota(t *testing.T) {
	h := fxNew(t)
	u := h.createUser("alice", 0)
	setPw := func(name, hash string) *result {
		return h.apply(&command{Type: cmdSetPassword, SetPassword: &setPasswordCmd{Name: name, PasswordHash: hash}})
	}
	setQuota := func(name string, q int64) *result {
		return h.apply(&command{Type: cmdSetQuota, SetQuota: &setQuotaCmd{Name: name, Quota: q}})
	}
	cases := []struct {
		name string
		run  func() *result
		code Code
	}{
		{"set password", func() *result { return setPw("ALICE", "new-hash") }, CodeOK},
		{"empty password hash", func() *result { return setPw("alice", "") }, CodeInvalidArgument},
		{"password of unknown user", func() *result { return setPw("nobody", "h") }, CodeNotFound},
		{"password of invalid name", func() *result { return setPw("no body", "h") }, CodeNotFound},
		{"set quota", func() *result { return setQuota("Alice", 10) }, CodeOK},
		{"negative quota", func() *result { return setQuota("alice", -5) }, CodeInvalidArgument},
		{"quota of unknown user", func() *result { return setQuota("nobody", 5) }, CodeNotFound},
		{"malformed command", func() *result { return h.apply(&command{Type: cmdSetQuota}) }, CodeInvalidArgument},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			defer h.use(t)()
			res := tc.run()
			if res.Err != nil || tc.code != CodeOK {
				fxWantCode(t, res.Err, tc.code)
			}
		})
	}
	got, err := h.v().userByName("alice")
	if err != nil || got.PasswordHash != "new-hash" || got.Quota != 10 || got.ID != u.ID {
		t.Fatalf("user after updates = %+v, %v", got, err)
	}
	// The new quota is enforced; 0 lifts it.
	oe := h.refused(u.Namespace, fxPut("/big", strings.Repeat("x", 11)))
	fxWantOpErr(t, oe, CodeQuota, 0, OpPut, 0)
	if res := setQuota("alice", 0); res.Err != nil {
		t.Fatal(res.Err)
	}
	h.must(u.Namespace, fxPut("/big", strings.Repeat("x", 11)))
}

func TestUserDelete(t *testing.T) {
	h := fxNew(t)
	old := h.createUser("alice", 0)
	h.must(old.Namespace, fxPut("/f", "data"))
	res := h.apply(&command{Type: cmdDeleteUser, DeleteUser: &userNameCmd{Name: "ALICE"}})
	if res.Err != nil || !res.User.Deleted || res.User.ID != old.ID {
		t.Fatalf("delete user: %+v", res)
	}
	if u, err := h.v().userByName("alice"); u != nil || err != nil {
		t.Fatalf("deleted user still found by name: %+v, %v", u, err)
	}
	if u, err := h.v().user(old.ID); err != nil || u == nil || !u.Deleted {
		t.Fatalf("deleted user record = %+v, %v", u, err)
	}
	if !h.nsRec(old.Namespace).Deleted {
		t.Fatal("namespace of a deleted user not marked deleted")
	}

	// The old namespace answers not_found to commits and to every read.
	res = h.apply(&command{Type: cmdCommit, Commit: &commitCmd{Namespace: old.Namespace, Ops: []Op{fxPut("/g", "x")}}})
	fxWantCode(t, res.Err, CodeNotFound)
	_, err := h.v().stat(old.Namespace, Target{Path: "/f"}, StatOptions{IncludeDeleted: true})
	fxWantCode(t, err, CodeNotFound)
	_, err = h.v().list(old.Namespace, Target{Path: "/"}, ListOptions{})
	fxWantCode(t, err, CodeNotFound)
	_, err = h.v().history(old.Namespace, Target{Path: "/f"}, HistoryOptions{})
	fxWantCode(t, err, CodeNotFound)
	_, err = h.v().changes(old.Namespace, 0, 0)
	fxWantCode(t, err, CodeNotFound)

	// Updates and a second delete of the name are not_found.
	for _, c := range []*command{
		{Type: cmdDeleteUser, DeleteUser: &userNameCmd{Name: "alice"}},
		{Type: cmdSetPassword, SetPassword: &setPasswordCmd{Name: "alice", PasswordHash: "h"}},
		{Type: cmdSetQuota, SetQuota: &setQuotaCmd{Name: "alice", Quota: 1}},
	} {
		fxWantCode(t, h.apply(c).Err, CodeNotFound)
	}

	// The name is free again: a new user with new IDs and an empty namespace.
	again := h.createUser("Alice", 0)
	if again.ID == old.ID || again.Namespace == old.Namespace {
		t.Fatalf("re-created user %+v reuses IDs of %+v", again, old)
	}
	if l := h.listAll(again.Namespace, "/", ListOptions{Recursive: true, IncludeDeleted: true}); len(l) != 0 {
		t.Fatalf("re-created user's namespace lists %v", fxPaths(l))
	}
	h.gone(again.Namespace, "/f")
	if got, _ := h.v().userByName("alice"); got == nil || got.ID != again.ID {
		t.Fatalf("name lookup gives %+v, want the new user", got)
	}
	// The old namespace stays dead.
	res = h.apply(&command{Type: cmdCommit, Commit: &commitCmd{Namespace: old.Namespace, Ops: []Op{fxPut("/g", "x")}}})
	fxWantCode(t, res.Err, CodeNotFound)
}

// ---------------------------------------------------------------- commits

// fxCase is one commit-op table case: setup commits (one per op), then the
// op under test in a commit of its own, in a fresh namespace.
type fxCase struct {
	name    string
	setup   []Op
	op      Op
	mk      func(h *fxHarness, ns uint64) Op // builds the op instead of op
	code    Code
	current uint64
	path    string // the OpError's Path, when set
	check   func(t *testing.T, h *fxHarness, ns uint64, res *CommitResult)
}

func fxRunCases(t *testing.T, cases []fxCase) {
	t.Helper()
	h := fxNew(t)
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			defer h.use(t)()
			u := h.createUser("u"+strconv.Itoa(i), 0)
			ns := u.Namespace
			for _, op := range tc.setup {
				h.must(ns, op)
			}
			op := tc.op
			if tc.mk != nil {
				op = tc.mk(h, ns)
			}
			before := *h.nsRec(ns)
			next := h.counters().NextID
			res, oe := h.commit(ns, op)
			if tc.code == CodeOK {
				if oe != nil {
					t.Fatalf("commit %+v: %v", op, oe)
				}
				if len(res.Ops) != 1 || res.Seq != before.Head+1 || res.Index != h.index {
					t.Fatalf("commit result %+v (head was %d, index %d)", res, before.Head, h.index)
				}
			} else {
				fxWantOpErr(t, oe, tc.code, 0, op.Kind, tc.current)
				if tc.path != "" && oe.Path != tc.path {
					t.Fatalf("error path %q, want %q", oe.Path, tc.path)
				}
				if after := *h.nsRec(ns); after != before {
					t.Fatalf("refused commit changed the namespace %+v -> %+v", before, after)
				}
				if n := h.counters().NextID; n != next {
					t.Fatalf("refused commit moved the ID counter %d -> %d", next, n)
				}
			}
			if tc.check != nil {
				tc.check(t, h, ns, res)
			}
		})
	}
}

// fxLongPath returns a path of n components of 255 bytes each, plus tail.
func fxLongPath(n int, tail string) string {
	var b strings.Builder
	for i := 0; i < n; i++ {
		b.WriteString("/")
		b.WriteString(strings.Repeat(string(rune('a'+i%26)), 255))
	}
	return b.String() + tail
}

func TestCommitPut(t *testing.T) {
	longOK := fxLongPath(16, "")                                 // 4096 bytes
	longBad := fxLongPath(15, "/"+strings.Repeat("z", 254)+"/a") // 4097 bytes
	if len(longOK) != metapath.MaxPathBytes || len(longBad) != metapath.MaxPathBytes+1 {
		t.Fatalf("bad fixture lengths %d %d", len(longOK), len(longBad))
	}
	withOp := func(op Op, fn func(*Op)) Op { fn(&op); return op }
	cases := []fxCase{
		{name: "new file is rev 1 and missing parents are created", op: fxPut("/a/b/c.txt", "hello"),
			check: func(t *testing.T, h *fxHarness, ns uint64, res *CommitResult) {
				if r := res.Ops[0]; r.Rev != 1 || r.Path != "/a/b/c.txt" {
					t.Fatalf("op result %+v", r)
				}
				for _, p := range []string{"/a", "/a/b"} {
					if d := h.mustStat(ns, p); !d.Dir || d.Rev != 1 || d.Mode != 0o755 || d.Path != p {
						t.Fatalf("parent %s = %+v", p, d)
					}
				}
				f := h.mustStat(ns, "/a/b/c.txt")
				want := fxPut("/a/b/c.txt", "hello")
				if f.Dir || f.Rev != 1 || f.Size != 5 || f.Hash != want.Hash || !reflect.DeepEqual(f.Blocks, want.Blocks) ||
					f.Mode != 0o644 || f.Mtime != 1000 || f.ID != res.Ops[0].NodeID || f.Modified != h.now-h.step {
					t.Fatalf("file = %+v", f)
				}
				if n := h.nsRec(ns); n.Used != 5 || n.Files != 1 || n.Head != 1 || n.Start != 1 {
					t.Fatalf("namespace = %+v", n)
				}
				rec := h.lastRecord(ns)
				var got []string
				for _, c := range rec.Changes {
					got = append(got, fmt.Sprintf("%s %s %d", c.Op, c.Path, c.Rev))
				}
				if want := "mkdir /a 1,mkdir /a/b 1,put /a/b/c.txt 1"; strings.Join(got, ",") != want {
					t.Fatalf("journal changes %q, want %q", got, want)
				}
			}},
		{name: "IfNoneMatch on a missing path creates", op: Op{Kind: OpPut, Path: "/f", IfNoneMatch: true, Size: 1, Hash: fxSum("x"), Blocks: []Block{{Ref: fxSum("x"), Size: 1}}}},
		{name: "IfNoneMatch on an existing file conflicts", setup: []Op{fxPut("/f", "1")},
			op: withOp(fxPut("/f", "2"), func(o *Op) { o.IfNoneMatch = true }), code: CodeConflict, current: 1, path: "/f"},
		{name: "IfNoneMatch on a tombstone revives it", setup: []Op{fxPut("/f", "1"), fxDel("/f")},
			op: withOp(fxPut("/f", "2"), func(o *Op) { o.IfNoneMatch = true }),
			check: func(t *testing.T, h *fxHarness, ns uint64, res *CommitResult) {
				if res.Ops[0].Rev != 3 || len(h.history(ns, "/f")) != 3 {
					t.Fatalf("revived file rev %d, history %+v", res.Ops[0].Rev, h.history(ns, "/f"))
				}
				if n := h.nsRec(ns); n.Files != 1 || n.Used != 1 {
					t.Fatalf("namespace = %+v", n)
				}
			}},
		{name: "IfMatch with the current rev overwrites as rev+1", setup: []Op{fxPut("/f", "one"), fxPut("/f", "two")},
			op: fxPutIf("/f", "three!", 2),
			check: func(t *testing.T, h *fxHarness, ns uint64, res *CommitResult) {
				f := h.mustStat(ns, "/f")
				if f.Rev != 3 || f.Hash != fxSum("three!") || res.Ops[0].Rev != 3 {
					t.Fatalf("file = %+v", f)
				}
				if n := h.nsRec(ns); n.Used != 6 || n.Files != 1 {
					t.Fatalf("namespace = %+v", n)
				}
			}},
		{name: "IfMatch with a stale rev conflicts", setup: []Op{fxPut("/f", "one"), fxPut("/f", "two")},
			op: fxPutIf("/f", "three", 1), code: CodeConflict, current: 2, path: "/f"},
		{name: "IfMatch on a missing path conflicts with current 0", op: fxPutIf("/nope", "x", 1), code: CodeConflict, current: 0},
		{name: "IfMatch with a tombstone's rev counts", setup: []Op{fxPut("/f", "1"), fxDel("/f")}, op: fxPutIf("/f", "2", 2)},
		{name: "onto a folder", setup: []Op{fxMkdir("/d")}, op: fxPut("/d", "x"), code: CodeIsFolder, current: 1},
		{name: "onto the root", op: fxPut("/", "x"), code: CodeIsFolder},
		{name: "under a file", setup: []Op{fxPut("/f", "x")}, op: fxPut("/f/g", "y"), code: CodeNotFolder, path: "/f"},
		{name: "deep under a file", setup: []Op{fxPut("/a/f", "x")}, op: fxPut("/a/f/g/h", "y"), code: CodeNotFolder, path: "/a/f"},
		{name: "a name differing only by case", setup: []Op{fxPut("/Readme.md", "x")}, op: fxPut("/README.MD", "y"), code: CodeCaseConflict, current: 1},
		{name: "a name differing only by Unicode case", setup: []Op{fxPut("/Straße.txt", "x")}, op: fxPut("/STRASSE.TXT", "y"), code: CodeCaseConflict, current: 1},
		{name: "a name differing only by normalisation is the same name", setup: []Op{fxPut("/café", "x")}, op: fxPut("/cafe\u0301", "yy"),
			check: func(t *testing.T, h *fxHarness, ns uint64, res *CommitResult) {
				if res.Ops[0].Rev != 2 || res.Ops[0].Path != "/café" {
					t.Fatalf("op result %+v", res.Ops[0])
				}
			}},
		{name: "parent folders match case-insensitively", setup: []Op{fxMkdir("/Docs")}, op: fxPut("/DOCS/a", "x"),
			check: func(t *testing.T, h *fxHarness, ns uint64, res *CommitResult) {
				if res.Ops[0].Path != "/Docs/a" {
					t.Fatalf("op path %q, want /Docs/a", res.Ops[0].Path)
				}
				if l := h.listAll(ns, "/", ListOptions{Recursive: true}); fxJoin(fxPaths(l)) != "/Docs /Docs/a" {
					t.Fatalf("listing %v", fxPaths(l))
				}
			}},
		{name: "overwrite keeps the node and adjusts usage", setup: []Op{fxPut("/f", "12345")}, op: fxPut("/f", "12"),
			check: func(t *testing.T, h *fxHarness, ns uint64, res *CommitResult) {
				if e := h.mustStat(ns, "/f"); e.ID != res.Ops[0].NodeID || e.Rev != 2 {
					t.Fatalf("file %+v", e)
				}
				if n := h.nsRec(ns); n.Used != 2 || n.Files != 1 {
					t.Fatalf("namespace %+v", n)
				}
			}},
		{name: "empty file", op: Op{Kind: OpPut, Path: "/empty", Hash: fxSum("")},
			check: func(t *testing.T, h *fxHarness, ns uint64, res *CommitResult) {
				if e := h.mustStat(ns, "/empty"); e.Size != 0 || len(e.Blocks) != 0 {
					t.Fatalf("file %+v", e)
				}
			}},
		{name: "mode keeps the executable bit", op: withOp(fxPut("/run.sh", "x"), func(o *Op) { o.Mode = 0o4755 }),
			check: func(t *testing.T, h *fxHarness, ns uint64, res *CommitResult) {
				if e := h.mustStat(ns, "/run.sh"); e.Mode != 0o4755 {
					t.Fatalf("mode %o", e.Mode)
				}
			}},
		{name: "mode 0 means 0644", op: withOp(fxPut("/f", "x"), func(o *Op) { o.Mode = 0 }),
			check: func(t *testing.T, h *fxHarness, ns uint64, res *CommitResult) {
				if e := h.mustStat(ns, "/f"); e.Mode != 0o644 {
					t.Fatalf("mode %o", e.Mode)
				}
			}},
		{name: "into a deleted folder revives it", setup: []Op{fxPut("/d/old", "x"), fxDel("/d")}, op: fxPut("/d/new", "y"),
			check: func(t *testing.T, h *fxHarness, ns uint64, res *CommitResult) {
				if d := h.mustStat(ns, "/d"); d.Rev != 3 {
					t.Fatalf("revived folder %+v", d)
				}
				h.gone(ns, "/d/old")
			}},
		{name: "4096-byte path", op: fxPut(longOK, "x")},
		{name: "255-byte name", op: fxPut("/"+strings.Repeat("n", 255), "x")},
		{name: "invalid path: dot-dot", op: fxPut("/a/../b", "x"), code: CodeInvalidPath, path: "/a/../b"},
		{name: "invalid path: dot", op: fxPut("/a/./b", "x"), code: CodeInvalidPath},
		{name: "invalid path: empty component", op: fxPut("/a//b", "x"), code: CodeInvalidPath},
		{name: "invalid path: control character", op: fxPut("/a\x01b", "x"), code: CodeInvalidPath},
		{name: "invalid path: NUL", op: fxPut("/a\x00b", "x"), code: CodeInvalidPath},
		{name: "invalid path: 256-byte component", op: fxPut("/"+strings.Repeat("n", 256), "x"), code: CodeInvalidPath},
		{name: "invalid path: 4097 bytes", op: fxPut(longBad, "x"), code: CodeInvalidPath},
		{name: "bad content: size does not match blocks", op: withOp(fxPut("/f", "abcdef"), func(o *Op) { o.Size = 7 }), code: CodeInvalidArgument},
		{name: "bad content: zero hash", op: withOp(fxPut("/f", "abc"), func(o *Op) { o.Hash = Sum{} }), code: CodeInvalidArgument},
		{name: "bad content: mode bits beyond 07777", op: withOp(fxPut("/f", "abc"), func(o *Op) { o.Mode = 0o10644 }), code: CodeInvalidArgument},
		{name: "bad content: zero-size block", op: withOp(fxPut("/f", "abc"), func(o *Op) { o.Blocks = append(o.Blocks, Block{Ref: fxSum("z")}) }), code: CodeInvalidArgument},
		{name: "bad content: block without ref", op: withOp(fxPut("/f", "abc"), func(o *Op) { o.Blocks[0].Ref = Sum{} }), code: CodeInvalidArgument},
		{name: "bad content: negative size", op: Op{Kind: OpPut, Path: "/f", Size: -1, Hash: fxSum("x")}, code: CodeInvalidArgument},
		{name: "unknown op kind", op: Op{Kind: "chmod", Path: "/f"}, code: CodeInvalidArgument},
	}
	fxRunCases(t, cases)
}

func TestCommitMkdir(t *testing.T) {
	cases := []fxCase{
		{name: "nested folders are created", op: fxMkdir("/a/b/c"),
			check: func(t *testing.T, h *fxHarness, ns uint64, res *CommitResult) {
				if r := res.Ops[0]; r.Rev != 1 || r.Path != "/a/b/c" {
					t.Fatalf("op result %+v", r)
				}
				for _, p := range []string{"/a", "/a/b", "/a/b/c"} {
					if d := h.mustStat(ns, p); !d.Dir || d.Rev != 1 || d.Mode != 0o755 {
						t.Fatalf("%s = %+v", p, d)
					}
				}
				if n := h.nsRec(ns); n.Files != 0 || n.Used != 0 || n.Head != 1 {
					t.Fatalf("namespace %+v", n)
				}
			}},
		{name: "mode is kept", op: Op{Kind: OpMkdir, Path: "/private", Mode: 0o700, Mtime: 77},
			check: func(t *testing.T, h *fxHarness, ns uint64, res *CommitResult) {
				if d := h.mustStat(ns, "/private"); d.Mode != 0o700 || d.Mtime != 77 {
					t.Fatalf("folder %+v", d)
				}
			}},
		{name: "existing folder", setup: []Op{fxMkdir("/d")}, op: fxMkdir("/d"), code: CodeExists, current: 1},
		{name: "existing file", setup: []Op{fxPut("/f", "x")}, op: fxMkdir("/f"), code: CodeExists, current: 1},
		{name: "root", op: fxMkdir("/"), code: CodeExists},
		{name: "case conflict with a folder", setup: []Op{fxMkdir("/Photos")}, op: fxMkdir("/photos"), code: CodeCaseConflict, current: 1},
		{name: "case conflict with a file", setup: []Op{fxPut("/notes", "x")}, op: fxMkdir("/NOTES"), code: CodeCaseConflict, current: 1},
		{name: "IfNoneMatch on an existing folder", setup: []Op{fxMkdir("/d")}, op: Op{Kind: OpMkdir, Path: "/d", IfNoneMatch: true}, code: CodeConflict, current: 1},
		{name: "IfMatch on a missing folder", op: Op{Kind: OpMkdir, Path: "/d", IfMatch: 3}, code: CodeConflict, current: 0},
		{name: "under a file", setup: []Op{fxPut("/f", "x")}, op: fxMkdir("/f/d"), code: CodeNotFolder, path: "/f"},
		{name: "invalid path", op: fxMkdir("/d/.."), code: CodeInvalidPath},
		{name: "over a deleted folder revives the same node", setup: []Op{fxMkdir("/d"), fxPut("/d/f", "x"), fxDel("/d")}, op: fxMkdir("/d"),
			check: func(t *testing.T, h *fxHarness, ns uint64, res *CommitResult) {
				d := h.mustStat(ns, "/d")
				if d.Rev != 3 || d.ID != res.Ops[0].NodeID {
					t.Fatalf("revived folder %+v", d)
				}
				if revs := h.history(ns, "/d"); len(revs) != 3 || revs[1].Op != OpDelete {
					t.Fatalf("history %+v", revs)
				}
				h.gone(ns, "/d/f") // its contents stay deleted
				if f := h.mustStatAny(ns, "/d/f"); !f.Deleted {
					t.Fatalf("child %+v", f)
				}
			}},
		{name: "over a deleted file makes a new folder", setup: []Op{fxPut("/x", "data"), fxDel("/x")}, op: fxMkdir("/x"),
			check: func(t *testing.T, h *fxHarness, ns uint64, res *CommitResult) {
				d := h.mustStat(ns, "/x")
				if !d.Dir || d.Rev != 1 {
					t.Fatalf("folder %+v", d)
				}
				// The old file's history is still reachable by its ID.
				old, err := h.statID(ns, d.ID-1)
				if err != nil || !old.Deleted || old.Dir || len(h.historyID(ns, old.ID)) != 2 {
					t.Fatalf("old file %+v, %v", old, err)
				}
			}},
	}
	fxRunCases(t, cases)
}

func TestCommitDelete(t *testing.T) {
	cases := []fxCase{
		{name: "file becomes a tombstone revision", setup: []Op{fxPut("/f", "data")}, op: fxDel("/f"),
			check: func(t *testing.T, h *fxHarness, ns uint64, res *CommitResult) {
				if res.Ops[0].Rev != 2 {
					t.Fatalf("op result %+v", res.Ops[0])
				}
				h.gone(ns, "/f")
				e := h.mustStatAny(ns, "/f")
				if !e.Deleted || e.Rev != 2 || e.Size != 0 || !e.Hash.IsZero() || len(e.Blocks) != 0 {
					t.Fatalf("tombstone %+v", e)
				}
				revs := h.history(ns, "/f")
				if len(revs) != 2 || !revs[0].Deleted || revs[0].Op != OpDelete || revs[0].Rev != 2 ||
					revs[1].Hash != fxSum("data") || revs[1].Rev != 1 {
					t.Fatalf("history %+v", revs)
				}
				if n := h.nsRec(ns); n.Used != 0 || n.Files != 0 {
					t.Fatalf("namespace %+v", n)
				}
				if l := h.listAll(ns, "/", ListOptions{}); len(l) != 0 {
					t.Fatalf("listing %v", fxPaths(l))
				}
			}},
		{name: "folder tombstones every live descendant",
			setup: []Op{fxPut("/d/e/f2", "22"), fxPut("/d/e/f3", "333"), fxPut("/d/f1", "1"), fxPut("/d/old", "x"), fxDel("/d/old"), fxPut("/keep", "4444")},
			op:    fxDel("/d"),
			check: func(t *testing.T, h *fxHarness, ns uint64, res *CommitResult) {
				for _, p := range []string{"/d", "/d/e", "/d/e/f2", "/d/e/f3", "/d/f1"} {
					h.gone(ns, p)
					if e := h.mustStatAny(ns, p); !e.Deleted {
						t.Fatalf("%s not deleted: %+v", p, e)
					}
				}
				// An already deleted descendant is not deleted again.
				if e := h.mustStatAny(ns, "/d/old"); e.Rev != 2 {
					t.Fatalf("/d/old = %+v", e)
				}
				if n := h.nsRec(ns); n.Used != 4 || n.Files != 1 {
					t.Fatalf("namespace %+v", n)
				}
				rec := h.lastRecord(ns)
				var got []string
				for _, c := range rec.Changes {
					if c.Op != OpDelete || !c.Deleted {
						t.Fatalf("change %+v", c)
					}
					got = append(got, c.Path)
				}
				sort.Strings(got)
				if want := "/d /d/e /d/e/f2 /d/e/f3 /d/f1"; fxJoin(got) != want {
					t.Fatalf("journal lists %q, want %q", got, want)
				}
			}},
		{name: "path is matched case-insensitively", setup: []Op{fxPut("/f", "x")}, op: fxDel("/F")},
		{name: "root", op: fxDel("/"), code: CodeInvalidMove},
		{name: "missing", op: fxDel("/nope"), code: CodeNotFound},
		{name: "missing parent", op: fxDel("/no/pe"), code: CodeNotFound, path: "/no"},
		{name: "under a file", setup: []Op{fxPut("/f", "x")}, op: fxDel("/f/g"), code: CodeNotFolder, path: "/f"},
		{name: "IfMatch right", setup: []Op{fxPut("/f", "x"), fxPut("/f", "y")}, op: Op{Kind: OpDelete, Path: "/f", IfMatch: 2}},
		{name: "IfMatch wrong", setup: []Op{fxPut("/f", "x"), fxPut("/f", "y")}, op: Op{Kind: OpDelete, Path: "/f", IfMatch: 1}, code: CodeConflict, current: 2},
		{name: "already deleted", setup: []Op{fxPut("/f", "x"), fxDel("/f")}, op: fxDel("/f"), code: CodeNotFound},
		{name: "already deleted, IfMatch the tombstone's rev", setup: []Op{fxPut("/f", "x"), fxDel("/f")},
			op: Op{Kind: OpDelete, Path: "/f", IfMatch: 2}, code: CodeNotFound},
		{name: "already deleted, IfMatch another rev", setup: []Op{fxPut("/f", "x"), fxDel("/f")},
			op: Op{Kind: OpDelete, Path: "/f", IfMatch: 1}, code: CodeConflict, current: 2},
		{name: "invalid path", op: fxDel("/a/../b"), code: CodeInvalidPath},
	}
	fxRunCases(t, cases)
}

func TestCommitMove(t *testing.T) {
	cases := []fxCase{
		{name: "rename keeps the node ID and its history", setup: []Op{fxPut("/a", "1"), fxPut("/a", "22")}, op: fxMove("/a", "/b"),
			check: func(t *testing.T, h *fxHarness, ns uint64, res *CommitResult) {
				h.gone(ns, "/a")
				b := h.mustStat(ns, "/b")
				if b.ID != res.Ops[0].NodeID || b.Rev != 3 || b.Hash != fxSum("22") || b.Name != "b" || res.Ops[0].Path != "/b" {
					t.Fatalf("moved file %+v, result %+v", b, res.Ops[0])
				}
				revs := h.history(ns, "/b")
				if len(revs) != 3 || revs[0].Op != OpMove || revs[0].Name != "b" || revs[1].Name != "a" || revs[2].Hash != fxSum("1") {
					t.Fatalf("history %+v", revs)
				}
				if n := h.nsRec(ns); n.Used != 2 || n.Files != 1 {
					t.Fatalf("namespace %+v", n)
				}
				c := h.lastRecord(ns).Changes
				if len(c) != 1 || c[0].Op != OpMove || c[0].OldPath != "/a" || c[0].Path != "/b" {
					t.Fatalf("journal %+v", c)
				}
			}},
		{name: "folder move leaves descendants untouched",
			setup: []Op{fxPut("/d/e/f", "x"), fxPut("/d/g", "y")},
			op:    fxMove("/d", "/x/y"),
			check: func(t *testing.T, h *fxHarness, ns uint64, res *CommitResult) {
				h.gone(ns, "/d")
				d := h.mustStat(ns, "/x/y")
				if d.ID != res.Ops[0].NodeID || d.Rev != 2 {
					t.Fatalf("moved folder %+v", d)
				}
				for _, p := range []string{"/x/y/e", "/x/y/e/f", "/x/y/g"} {
					e := h.mustStat(ns, p)
					if e.Rev != 1 || e.Path != p {
						t.Fatalf("%s = %+v", p, e)
					}
				}
				c := h.lastRecord(ns).Changes
				if len(c) != 2 || c[0].Path != "/x" || c[1].OldPath != "/d" || c[1].Path != "/x/y" {
					t.Fatalf("journal %+v", c)
				}
			}},
		{name: "into its own subtree", setup: []Op{fxMkdir("/d/e")}, op: fxMove("/d", "/d/e/f"), code: CodeInvalidMove},
		{name: "into its own subtree, other case", setup: []Op{fxMkdir("/d/e")}, op: fxMove("/d", "/D/E"), code: CodeInvalidMove},
		{name: "onto itself", setup: []Op{fxPut("/f", "x")}, op: fxMove("/f", "/f"), code: CodeInvalidMove},
		{name: "the root", op: fxMove("/", "/x"), code: CodeInvalidMove},
		{name: "onto the root", setup: []Op{fxPut("/f", "x")}, op: fxMove("/f", "/"), code: CodeInvalidMove},
		{name: "onto a live file", setup: []Op{fxPut("/a", "x"), fxPut("/b", "y"), fxPut("/b", "z")}, op: fxMove("/a", "/b"), code: CodeExists, current: 2, path: "/b"},
		{name: "onto a live folder", setup: []Op{fxPut("/a", "x"), fxMkdir("/b")}, op: fxMove("/a", "/B"), code: CodeExists, current: 1},
		{name: "onto a tombstone", setup: []Op{fxPut("/a", "x"), fxPut("/b", "y"), fxDel("/b")}, op: fxMove("/a", "/b"),
			check: func(t *testing.T, h *fxHarness, ns uint64, res *CommitResult) {
				b := h.mustStat(ns, "/b")
				if b.Hash != fxSum("x") || b.Rev != 2 {
					t.Fatalf("/b = %+v", b)
				}
				// The replaced tombstone keeps its history, by ID.
				if old, err := h.statID(ns, b.ID+1); err != nil || !old.Deleted || len(h.historyID(ns, old.ID)) != 2 {
					t.Fatalf("replaced tombstone %+v, %v", old, err)
				}
			}},
		{name: "case-only rename of the same node", setup: []Op{fxPut("/readme", "x")}, op: fxMove("/readme", "/README"),
			check: func(t *testing.T, h *fxHarness, ns uint64, res *CommitResult) {
				e := h.mustStat(ns, "/readme")
				if e.Name != "README" || e.Path != "/README" || e.Rev != 2 || e.ID != res.Ops[0].NodeID {
					t.Fatalf("renamed %+v", e)
				}
				if l := h.listAll(ns, "/", ListOptions{IncludeDeleted: true}); len(l) != 1 {
					t.Fatalf("listing %v", fxPaths(l))
				}
			}},
		{name: "missing", op: fxMove("/nope", "/x"), code: CodeNotFound},
		{name: "deleted", setup: []Op{fxPut("/f", "x"), fxDel("/f")}, op: fxMove("/f", "/g"), code: CodeNotFound},
		{name: "IfMatch wrong", setup: []Op{fxPut("/f", "x")}, op: Op{Kind: OpMove, Path: "/f", To: "/g", IfMatch: 7}, code: CodeConflict, current: 1},
		{name: "IfMatch right", setup: []Op{fxPut("/f", "x")}, op: Op{Kind: OpMove, Path: "/f", To: "/g", IfMatch: 1}},
		{name: "destination under a file", setup: []Op{fxPut("/f", "x"), fxPut("/g", "y")}, op: fxMove("/f", "/g/f"), code: CodeNotFolder, path: "/g"},
		{name: "invalid destination", setup: []Op{fxPut("/f", "x")}, op: fxMove("/f", "/a/../b"), code: CodeInvalidPath, path: "/a/../b"},
		{name: "invalid source", op: fxMove("/a\x00", "/b"), code: CodeInvalidPath},
	}
	fxRunCases(t, cases)
}

// TestCommitInvalidUTF8 applies ops with invalid UTF-8 straight to a
// transaction: the JSON command encoding cannot carry such bytes (it turns
// them into U+FFFD), so this is the only way they reach the commit logic.
func TestCommitInvalidUTF8(t *testing.T) {
	h := fxNew(t)
	ns := h.createUser("alice", 0).Namespace
	h.must(ns, fxPut("/f", "x"))
	for _, op := range []Op{fxPut("/a\xffb", "x"), fxMkdir("/\xc3"), fxDel("/f\xff"), fxMove("/f", "/g\xfe"), fxRestore("/\xff", 1)} {
		b := h.d.db.NewIndexedBatch()
		tx := &tx{view: view{r: pebbleReader{b}, k: h.f.k}, b: b, index: h.index + 1, now: h.now}
		res, err := tx.commit("", &commitCmd{Namespace: ns, Ops: []Op{op}})
		b.Close()
		if err != nil {
			t.Fatal(err)
		}
		fxWantOpErr(t, res.Err, CodeInvalidPath, 0, op.Kind, 0)
	}
}

// TestCommitMoveFolderIsO1 checks that moving a folder rewrites only the
// folder: every descendant's stored record stays byte-identical.
func TestCommitMoveFolderIsO1(t *testing.T) {
	h := fxNew(t)
	ns := h.createUser("alice", 0).Namespace
	h.must(ns, fxPut("/d/e/f", "x"), fxPut("/d/e/g", "y"), fxPut("/d/h", "z"), fxMkdir("/d/e/empty"))
	paths := []string{"/d/e", "/d/e/f", "/d/e/g", "/d/h", "/d/e/empty"}
	ids := map[string]uint64{}
	raw := map[string][]byte{}
	for _, p := range paths {
		ids[p] = h.mustStat(ns, p).ID
		raw[p] = h.rawNode(ns, ids[p])
	}
	d := h.mustStat(ns, "/d")
	h.now += int64(time.Hour)
	res := h.must(ns, fxMove("/d", "/Archive/2025"))
	c := h.lastRecord(ns).Changes
	if len(c) != 2 || c[1].NodeID != d.ID || c[1].OldPath != "/d" || c[1].Path != "/Archive/2025" {
		t.Fatalf("journal lists %+v; want the new parent and the moved folder only", c)
	}
	if res.Ops[0].NodeID != d.ID {
		t.Fatalf("moved folder got ID %d, had %d", res.Ops[0].NodeID, d.ID)
	}
	for _, p := range paths {
		if got := h.rawNode(ns, ids[p]); !bytes.Equal(got, raw[p]) {
			t.Fatalf("node %s rewritten by the move:\n%s\n%s", p, raw[p], got)
		}
		np := "/Archive/2025" + strings.TrimPrefix(p, "/d")
		e := h.mustStat(ns, np)
		if e.ID != ids[p] || e.Path != np {
			t.Fatalf("%s resolves to %+v", np, e)
		}
		if e, err := h.statID(ns, ids[p]); err != nil || e.Path != np {
			t.Fatalf("node %d has path %+v, %v; want %s", ids[p], e, err, np)
		}
		h.gone(ns, p)
	}
	want := []string{"/Archive", "/Archive/2025", "/Archive/2025/e", "/Archive/2025/e/empty", "/Archive/2025/e/f", "/Archive/2025/e/g", "/Archive/2025/h"}
	if got := fxPaths(h.listAll(ns, "/", ListOptions{Recursive: true})); !slices.Equal(got, want) {
		t.Fatalf("listing %v, want %v", got, want)
	}
}

func TestRestore(t *testing.T) {
	withMode := func(op Op, mode uint32) Op { op.Mode = mode; return op }
	cases := []fxCase{
		{name: "live file to an old revision", setup: []Op{fxPut("/f", "one"), fxPut("/f", "second")}, op: fxRestore("/f", 1),
			check: func(t *testing.T, h *fxHarness, ns uint64, res *CommitResult) {
				f := h.mustStat(ns, "/f")
				if f.Rev != 3 || f.Hash != fxSum("one") || f.Size != 3 || f.ID != res.Ops[0].NodeID || !reflect.DeepEqual(f.Blocks, fxPut("", "one").Blocks) {
					t.Fatalf("restored %+v", f)
				}
				revs := h.history(ns, "/f")
				if len(revs) != 3 || revs[0].Op != OpRestore || revs[0].From != 1 || revs[0].Hash != fxSum("one") {
					t.Fatalf("history %+v", revs)
				}
				if n := h.nsRec(ns); n.Used != 3 || n.Files != 1 {
					t.Fatalf("namespace %+v", n)
				}
				if c := h.lastRecord(ns).Changes; len(c) != 1 || c[0].Op != OpRestore || c[0].Rev != 3 {
					t.Fatalf("journal %+v", c)
				}
			}},
		{name: "deleted file comes back with its history", setup: []Op{fxPut("/f", "one"), fxDel("/f")}, op: fxRestore("/f", 1),
			check: func(t *testing.T, h *fxHarness, ns uint64, res *CommitResult) {
				f := h.mustStat(ns, "/f")
				if f.Rev != 3 || f.Deleted || f.Hash != fxSum("one") {
					t.Fatalf("restored %+v", f)
				}
				if revs := h.history(ns, "/f"); len(revs) != 3 || revs[1].Op != OpDelete {
					t.Fatalf("history %+v", revs)
				}
				if n := h.nsRec(ns); n.Used != 3 || n.Files != 1 {
					t.Fatalf("namespace %+v", n)
				}
			}},
		{name: "file in a deleted folder revives the folders", setup: []Op{fxPut("/d/e/f", "xyz"), fxPut("/d/other", "o"), fxDel("/d")},
			op: fxRestore("/d/e/f", 1),
			check: func(t *testing.T, h *fxHarness, ns uint64, res *CommitResult) {
				for _, p := range []string{"/d", "/d/e"} {
					if d := h.mustStat(ns, p); !d.Dir || d.Rev != 3 {
						t.Fatalf("%s = %+v", p, d)
					}
				}
				if f := h.mustStat(ns, "/d/e/f"); f.Rev != 3 || f.Hash != fxSum("xyz") {
					t.Fatalf("file %+v", f)
				}
				h.gone(ns, "/d/other")
				if n := h.nsRec(ns); n.Used != 3 || n.Files != 1 {
					t.Fatalf("namespace %+v", n)
				}
				var got []string
				for _, c := range h.lastRecord(ns).Changes {
					got = append(got, string(c.Op)+" "+c.Path)
				}
				if want := "mkdir /d,mkdir /d/e,restore /d/e/f"; strings.Join(got, ",") != want {
					t.Fatalf("journal %q, want %q", got, want)
				}
			}},
		{name: "undo a restore", setup: []Op{fxPut("/f", "one"), fxPut("/f", "two"), fxRestore("/f", 1)}, op: fxRestore("/f", 2),
			check: func(t *testing.T, h *fxHarness, ns uint64, res *CommitResult) {
				f := h.mustStat(ns, "/f")
				if f.Rev != 4 || f.Hash != fxSum("two") {
					t.Fatalf("file %+v", f)
				}
				if revs := h.history(ns, "/f"); revs[0].From != 2 || revs[1].From != 1 {
					t.Fatalf("history %+v", revs)
				}
			}},
		{name: "restore the current revision", setup: []Op{fxPut("/f", "one")}, op: fxRestore("/f", 1),
			check: func(t *testing.T, h *fxHarness, ns uint64, res *CommitResult) {
				if f := h.mustStat(ns, "/f"); f.Rev != 2 || f.Hash != fxSum("one") {
					t.Fatalf("file %+v", f)
				}
			}},
		{name: "a tombstone revision", setup: []Op{fxPut("/f", "one"), fxDel("/f"), fxPut("/f", "two")}, op: fxRestore("/f", 2), code: CodeInvalidArgument},
		{name: "a revision that does not exist", setup: []Op{fxPut("/f", "one")}, op: fxRestore("/f", 9), code: CodeNotFound, current: 1},
		{name: "revision 0", setup: []Op{fxPut("/f", "one")}, op: fxRestore("/f", 0), code: CodeInvalidArgument},
		{name: "a folder", setup: []Op{fxMkdir("/d")}, op: fxRestore("/d", 1), code: CodeIsFolder},
		{name: "the root", op: fxRestore("/", 1), code: CodeNotFound},
		{name: "missing path", op: fxRestore("/nope", 1), code: CodeNotFound},
		{name: "IfMatch wrong", setup: []Op{fxPut("/f", "one"), fxPut("/f", "two")}, op: Op{Kind: OpRestore, Path: "/f", Rev: 1, IfMatch: 1}, code: CodeConflict, current: 2},
		{name: "IfMatch right", setup: []Op{fxPut("/f", "one"), fxPut("/f", "two")}, op: Op{Kind: OpRestore, Path: "/f", Rev: 1, IfMatch: 2}},
		{name: "by node ID to its old place",
			setup: []Op{fxPut("/f", "one"), fxDel("/f")},
			mk: func(h *fxHarness, ns uint64) Op {
				return Op{Kind: OpRestore, NodeID: h.mustStatAny(ns, "/f").ID, Rev: 1}
			},
			check: func(t *testing.T, h *fxHarness, ns uint64, res *CommitResult) {
				if f := h.mustStat(ns, "/f"); f.Rev != 3 || f.ID != res.Ops[0].NodeID {
					t.Fatalf("file %+v", f)
				}
			}},
		{name: "by node ID when its place is taken",
			setup: []Op{fxPut("/f", "one"), fxMove("/f", "/g"), fxDel("/g"), fxMkdir("/g")},
			mk: func(h *fxHarness, ns uint64) Op {
				return Op{Kind: OpRestore, NodeID: h.mustStat(ns, "/g").ID - 1, Rev: 1}
			},
			code: CodeExists, current: 1, path: "/g"},
		{name: "by node ID to a new place",
			setup: []Op{fxPut("/f", "one"), fxDel("/f"), fxMkdir("/f")},
			mk: func(h *fxHarness, ns uint64) Op {
				return Op{Kind: OpRestore, NodeID: h.mustStat(ns, "/f").ID - 1, Rev: 1, Path: "/restored/f"}
			},
			check: func(t *testing.T, h *fxHarness, ns uint64, res *CommitResult) {
				f := h.mustStat(ns, "/restored/f")
				if f.ID != res.Ops[0].NodeID || f.Hash != fxSum("one") || res.Ops[0].Path != "/restored/f" {
					t.Fatalf("file %+v", f)
				}
				if d := h.mustStat(ns, "/f"); !d.Dir {
					t.Fatalf("/f = %+v", d)
				}
				if l := fxPaths(h.listAll(ns, "/", ListOptions{Recursive: true, IncludeDeleted: true})); fxJoin(l) != "/f /restored /restored/f" {
					t.Fatalf("listing %v", l)
				}
			}},
		{name: "by unknown node ID", op: Op{Kind: OpRestore, NodeID: 999, Rev: 1}, code: CodeNotFound},
		{name: "after a rename: content comes back, the name stays",
			setup: []Op{withMode(fxPut("/a", "one"), 0o755), fxPut("/a", "two"), fxMove("/a", "/b")},
			op:    fxRestore("/b", 1),
			check: func(t *testing.T, h *fxHarness, ns uint64, res *CommitResult) {
				b := h.mustStat(ns, "/b")
				if b.Name != "b" || b.Hash != fxSum("one") || b.Mode != 0o755 || b.Rev != 4 {
					t.Fatalf("/b = %+v", b)
				}
				h.gone(ns, "/a")
			}},
		{name: "into the live folder that took its folder's place",
			setup: []Op{fxPut("/d/f", "one"), fxPut("/e/g", "two"), fxDel("/d"), fxMove("/e", "/d")},
			mk: func(h *fxHarness, ns uint64) Op {
				return Op{Kind: OpRestore, NodeID: h.nsRec(ns).Root + 2, Rev: 1}
			},
			check: func(t *testing.T, h *fxHarness, ns uint64, res *CommitResult) {
				root := h.nsRec(ns).Root
				f := h.mustStat(ns, "/d/f")
				d := h.mustStat(ns, "/d")
				if f.ID != root+2 || f.Hash != fxSum("one") || f.ParentID != d.ID || d.ID != root+3 {
					t.Fatalf("/d/f = %+v in /d = %+v", f, d)
				}
				if old, err := h.statID(ns, root+1); err != nil || !old.Deleted {
					t.Fatalf("the replaced folder %+v, %v", old, err)
				}
				if l := fxPaths(h.listAll(ns, "/", ListOptions{Recursive: true})); fxJoin(l) != "/d /d/f /d/g" {
					t.Fatalf("listing %v", l)
				}
			}},
		{name: "when a file took its folder's place",
			setup: []Op{fxPut("/d/f", "one"), fxDel("/d"), fxPut("/d", "file")},
			mk: func(h *fxHarness, ns uint64) Op {
				return Op{Kind: OpRestore, NodeID: h.nsRec(ns).Root + 2, Rev: 1}
			},
			code: CodeNotFolder, path: "/d"},
		{name: "by node ID to the root",
			setup: []Op{fxPut("/f", "one"), fxDel("/f")},
			mk: func(h *fxHarness, ns uint64) Op {
				return Op{Kind: OpRestore, NodeID: h.mustStatAny(ns, "/f").ID, Rev: 1, Path: "/"}
			},
			code: CodeIsFolder},
		{name: "by node ID to an invalid path",
			setup: []Op{fxPut("/f", "one"), fxDel("/f")},
			mk: func(h *fxHarness, ns uint64) Op {
				return Op{Kind: OpRestore, NodeID: h.mustStatAny(ns, "/f").ID, Rev: 1, Path: "/a/../b"}
			},
			code: CodeInvalidPath},
		{name: "by node ID of a folder",
			setup: []Op{fxMkdir("/d")},
			mk: func(h *fxHarness, ns uint64) Op {
				return Op{Kind: OpRestore, NodeID: h.mustStat(ns, "/d").ID, Rev: 1}
			},
			code: CodeIsFolder},
		{name: "by node ID of the root",
			mk: func(h *fxHarness, ns uint64) Op {
				return Op{Kind: OpRestore, NodeID: h.mustStat(ns, "/").ID, Rev: 1}
			},
			code: CodeNotFound},
	}
	fxRunCases(t, cases)
}

func TestQuota(t *testing.T) {
	h := fxNew(t)
	u := h.createUser("alice", 10)
	ns := u.Namespace
	h.must(ns, fxPut("/a", "123456"))
	fxWantOpErr(t, h.refused(ns, fxPut("/b", "12345")), CodeQuota, 0, OpPut, 0)
	if n := h.nsRec(ns); n.Used != 6 || n.Files != 1 {
		t.Fatalf("namespace after refusal %+v", n)
	}
	h.gone(ns, "/b")
	// Exactly at the quota fits; one byte more does not.
	h.must(ns, fxPut("/b", "1234"))
	fxWantOpErr(t, h.refused(ns, fxPut("/c", "1")), CodeQuota, 0, OpPut, 0)
	// Overwriting counts only the difference.
	h.must(ns, fxPut("/a", "12"))
	h.must(ns, fxPut("/c", "1234"))
	fxWantOpErr(t, h.refused(ns, fxPut("/a", "123")), CodeQuota, 0, OpPut, 0)
	// A delete frees space; a delete and a put in one batch fit together.
	h.must(ns, fxDel("/b"))
	h.must(ns, fxPut("/d", "1234"))
	h.must(ns, fxDel("/d"), fxPut("/e", "1234"))
	if n := h.nsRec(ns); n.Used != 10 || n.Files != 3 {
		t.Fatalf("namespace %+v", n)
	}
	// A restore that would exceed the quota is refused too.
	fxWantOpErr(t, h.refused(ns, fxDel("/a"), fxDel("/c"), fxRestore("/d", 1), fxPut("/x", "12345")), CodeQuota, 3, OpPut, 0)
	fxWantOpErr(t, h.refused(ns, fxRestore("/d", 1)), CodeQuota, 0, OpRestore, 0)
	// Lowering the quota under the usage keeps what is there; shrinking and
	// deleting still work, growing does not.
	if res := h.apply(&command{Type: cmdSetQuota, SetQuota: &setQuotaCmd{Name: "alice", Quota: 5}}); res.Err != nil {
		t.Fatal(res.Err)
	}
	h.must(ns, fxPut("/e", "12"))
	fxWantOpErr(t, h.refused(ns, fxPut("/e", "123")), CodeQuota, 0, OpPut, 0)
	h.must(ns, fxDel("/c"))
	// Quota 0 is unlimited.
	v := h.createUser("bob", 0)
	huge := Op{Kind: OpPut, Path: "/huge", Size: 2 * MaxBlockSize, Hash: fxSum("huge"), Blocks: []Block{{Ref: fxSum("h1"), Size: MaxBlockSize}, {Ref: fxSum("h2"), Size: MaxBlockSize}}}
	h.must(v.Namespace, huge)
	if n := h.nsRec(v.Namespace); n.Used != 2*MaxBlockSize {
		t.Fatalf("namespace %+v", n)
	}
}

// ---------------------------------------------------------------- batches

func TestBatchAtomicity(t *testing.T) {
	h := fxNew(t)
	ns := h.createUser("alice", 0).Namespace
	h.must(ns, fxPut("/existing", "abc"), fxPut("/existing", "abcd"))
	before := *h.nsRec(ns)
	ctr := h.counters()
	hashBefore := h.contentHash()

	cases := []struct {
		name    string
		ops     []Op
		op      int
		code    Code
		current uint64
	}{
		{"last op is a stale IfMatch", []Op{fxPut("/new1", "x"), fxMkdir("/dir"), fxPut("/dir/f", "y"), fxDel("/existing"), fxPutIf("/existing", "z", 2)}, 4, CodeConflict, 3},
		{"last op conflicts on a live file", []Op{fxPut("/new1", "x"), fxMove("/existing", "/moved"), fxPutIf("/moved", "z", 1)}, 2, CodeConflict, 3},
		{"middle op fails", []Op{fxPut("/new1", "x"), fxDel("/nope"), fxPut("/new2", "y")}, 1, CodeNotFound, 0},
		{"first op fails", []Op{fxPut("/a/../b", "x"), fxPut("/new2", "y")}, 0, CodeInvalidPath, 0},
		{"a later op undoes nothing", []Op{fxDel("/existing"), fxPut("/existing", "again"), fxMkdir("/existing")}, 2, CodeExists, 4},
		{"bad content in a later op", []Op{fxPut("/new1", "x"), {Kind: OpPut, Path: "/bad", Size: 1, Hash: fxSum("b")}}, 1, CodeInvalidArgument, 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			defer h.use(t)()
			oe := h.refused(ns, tc.ops...)
			fxWantOpErr(t, oe, tc.code, tc.op, tc.ops[tc.op].Kind, tc.current)
			for _, p := range []string{"/new1", "/new2", "/dir", "/dir/f", "/moved"} {
				if e, err := h.statAny(ns, p); CodeOf(err) != CodeNotFound {
					t.Fatalf("%s left behind: %+v, %v", p, e, err)
				}
			}
			if e := h.mustStat(ns, "/existing"); e.Rev != 2 || e.Hash != fxSum("abcd") {
				t.Fatalf("/existing = %+v", e)
			}
			if after := *h.nsRec(ns); after != before {
				t.Fatalf("namespace %+v -> %+v", before, after)
			}
			if c := h.counters(); c != ctr {
				t.Fatalf("counters %+v -> %+v", ctr, c)
			}
			if got := h.contentHash(); got != hashBefore {
				t.Fatal("a refused batch changed the state")
			}
		})
	}
	// The next create gets exactly the ID it would have got.
	res := h.must(ns, fxPut("/new1", "x"))
	if res.Ops[0].NodeID != ctr.NextID || res.Seq != before.Head+1 {
		t.Fatalf("next commit %+v; want node %d, seq %d", res, ctr.NextID, before.Head+1)
	}
}

func TestBatchOpsSeeEarlierOps(t *testing.T) {
	h := fxNew(t)
	ns := h.createUser("alice", 0).Namespace
	h.must(ns, fxPut("/old", "0"))
	res := h.must(ns,
		fxMkdir("/p"),
		fxPut("/p/f", "one"),
		fxPut("/p/f", "two"),
		fxMove("/p/f", "/p/g"),
		fxRestore("/p/g", 1),
		fxDel("/old"),
		fxMove("/p", "/q"),
		fxPut("/old", "back"),
	)
	want := []struct {
		rev  uint64
		path string
	}{{1, "/q"}, {1, "/q/g"}, {2, "/q/g"}, {3, "/q/g"}, {4, "/q/g"}, {2, "/old"}, {2, "/q"}, {3, "/old"}}
	for i, w := range want {
		if r := res.Ops[i]; r.Rev != w.rev || r.Path != w.path {
			t.Fatalf("op %d result %+v, want rev %d path %s", i, r, w.rev, w.path)
		}
	}
	g := h.mustStat(ns, "/q/g")
	if g.Rev != 4 || g.Hash != fxSum("one") {
		t.Fatalf("/q/g = %+v", g)
	}
	if n := h.nsRec(ns); n.Used != 7 || n.Files != 2 || n.Head != 2 {
		t.Fatalf("namespace %+v", n)
	}
	// One journal record, one change per node, each as it was after the
	// commit, in the order the nodes were first touched.
	rec := h.lastRecord(ns)
	var got []string
	for _, c := range rec.Changes {
		got = append(got, fmt.Sprintf("%s %s %d %q", c.Op, c.Path, c.Rev, c.OldPath))
	}
	wantCh := []string{`move /q 2 ""`, `restore /q/g 4 ""`, `put /old 3 ""`}
	if !slices.Equal(got, wantCh) {
		t.Fatalf("changes %q, want %q", got, wantCh)
	}
	// Mixed invalid commands.
	for _, c := range []*command{
		{Type: cmdCommit, Commit: &commitCmd{Namespace: ns}},
		{Type: cmdCommit, Commit: &commitCmd{Namespace: ns, Ops: make([]Op, MaxOpsPerCommit+1)}},
		{Type: cmdCommit},
		{Type: 99},
	} {
		fxWantCode(t, h.apply(c).Err, CodeInvalidArgument)
	}
	fxWantCode(t, h.apply(&command{Type: cmdCommit, Commit: &commitCmd{Namespace: 12345, Ops: []Op{fxPut("/x", "x")}}}).Err, CodeNotFound)
	// Undecodable entries are refused, and still applied (as no-ops).
	idx := h.index + 1
	out := h.applyLogs(&raft.Log{Index: idx, Term: 1, Type: raft.LogCommand, Data: []byte("garbage")},
		&raft.Log{Index: idx + 1, Term: 1, Type: raft.LogCommand, Data: []byte{raftgroup.CommandVersion, '{'}})
	h.index += 2
	for _, o := range out {
		fxWantCode(t, o.(*result).Err, CodeInvalidArgument)
	}
	if h.f.AppliedIndex() != idx+1 {
		t.Fatalf("applied index %d, want %d", h.f.AppliedIndex(), idx+1)
	}
}

// TestJournalMoveAfterChange checks that a node changed and then moved in
// one commit is journalled with the path it had before the commit.
func TestJournalMoveAfterChange(t *testing.T) {
	h := fxNew(t)
	ns := h.createUser("alice", 0).Namespace
	h.must(ns, fxPut("/f", "one"), fxMkdir("/d"))
	h.must(ns, fxPut("/f", "two"), fxMove("/f", "/g"), fxMkdir("/d/e"), fxMove("/d", "/d2"), fxPut("/new", "n"), fxMove("/new", "/new2"))
	got := map[string]string{}
	for _, c := range h.lastRecord(ns).Changes {
		got[c.Path] = fmt.Sprintf("%s %q", c.Op, c.OldPath)
	}
	want := map[string]string{
		"/g":    `move "/f"`,
		"/d2":   `move "/d"`,
		"/d2/e": `mkdir ""`,
		"/new2": `move ""`, // created by this commit: it had no path before
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("changes %v, want %v", got, want)
	}
}

// ---------------------------------------------------------------- dedup

func TestDedupSameRequestID(t *testing.T) {
	h := fxNew(t)
	ns := h.createUser("alice", 0).Namespace
	first, oe := h.commitRID(ns, "req-1", fxPut("/f", "one"), fxMkdir("/d"))
	if oe != nil {
		t.Fatal(oe)
	}
	head, hash := h.nsRec(ns).Head, h.contentHash()
	for i := 0; i < 3; i++ {
		// Even a retry carrying different ops gets the first result.
		again, oe := h.commitRID(ns, "req-1", fxPut("/f", "two"))
		if oe != nil || !reflect.DeepEqual(again, first) {
			t.Fatalf("retry %d = %+v, %v; want %+v", i, again, oe, first)
		}
	}
	if h.nsRec(ns).Head != head || h.contentHash() != hash {
		t.Fatal("a retried request changed the state")
	}
	if revs := h.history(ns, "/f"); len(revs) != 1 {
		t.Fatalf("history %+v", revs)
	}

	// A refusal is remembered too, even once the command would succeed.
	_, oe = h.commitRID(ns, "req-2", Op{Kind: OpPut, Path: "/f", IfNoneMatch: true, Size: 1, Hash: fxSum("x"), Blocks: []Block{{Ref: fxSum("x"), Size: 1}}})
	fxWantOpErr(t, oe, CodeConflict, 0, OpPut, 1)
	h.must(ns, fxDel("/f"))
	head, hash = h.nsRec(ns).Head, h.contentHash()
	_, oe2 := h.commitRID(ns, "req-2", Op{Kind: OpPut, Path: "/f", IfNoneMatch: true, Size: 1, Hash: fxSum("x"), Blocks: []Block{{Ref: fxSum("x"), Size: 1}}})
	if !reflect.DeepEqual(oe2, oe) {
		t.Fatalf("retried refusal %+v, want %+v", oe2, oe)
	}
	if h.nsRec(ns).Head != head || h.contentHash() != hash {
		t.Fatal("a retried refusal changed the state")
	}

	// The same ID in another namespace is another request.
	ns2 := h.createUser("bob", 0).Namespace
	other, oe := h.commitRID(ns2, "req-1", fxPut("/f", "bob"))
	if oe != nil || other.Seq != 1 || other.Ops[0].Rev != 1 {
		t.Fatalf("other namespace: %+v, %v", other, oe)
	}
	if e := h.mustStat(ns2, "/f"); e.Hash != fxSum("bob") {
		t.Fatalf("other namespace file %+v", e)
	}

	// User commands are deduplicated as well.
	c := func() *result {
		return h.apply(&command{Type: cmdCreateUser, RequestID: "mk-carol", CreateUser: &createUserCmd{Name: "carol", PasswordHash: "h"}})
	}
	r1 := c()
	next := h.counters().NextID
	r2 := c()
	if r1.Err != nil || !reflect.DeepEqual(r1, r2) || h.counters().NextID != next {
		t.Fatalf("create retried: %+v then %+v", r1, r2)
	}
}

func TestDedupWindow(t *testing.T) {
	const window = 4
	h := fxNewWith(t, fxOpenDB(t), 1, window)
	ns := h.createUser("alice", 0).Namespace // index 1
	first, oe := h.commitRID(ns, "x", fxPut("/f", "one"))
	if oe != nil || first.Ops[0].Rev != 1 {
		t.Fatalf("first: %+v, %v", first, oe)
	}
	// Within the window a retry is answered from memory.
	for i := 0; i < window-2; i++ {
		h.must(ns, fxMkdir("/d"+strconv.Itoa(i)))
	}
	if again, _ := h.commitRID(ns, "x", fxPut("/f", "one")); !reflect.DeepEqual(again, first) {
		t.Fatalf("retry within the window = %+v, want %+v", again, first)
	}
	// Push it out of the window with commands that carry request IDs (the
	// eviction runs as those are remembered).
	for i := 0; i <= window; i++ {
		if _, oe := h.commitRID(ns, "other-"+strconv.Itoa(i), fxMkdir("/e"+strconv.Itoa(i))); oe != nil {
			t.Fatal(oe)
		}
	}
	if held, err := h.v().getJSON(h.f.k.dedup(ns, "x"), new(result)); err != nil || held {
		t.Fatalf("request ID outside the window still held (%v, %v)", held, err)
	}
	fresh, oe := h.commitRID(ns, "x", fxPut("/f", "one"))
	if oe != nil || fresh.Ops[0].Rev != 2 || fresh.Seq == first.Seq {
		t.Fatalf("retry after the window = %+v, %v; want a fresh apply (rev 2)", fresh, oe)
	}
	// And it is remembered afresh.
	if again, _ := h.commitRID(ns, "x", fxPut("/f", "one")); !reflect.DeepEqual(again, fresh) {
		t.Fatalf("retry = %+v, want %+v", again, fresh)
	}
	// The window's records do not pile up: only recent IDs are held.
	n := 0
	lo := h.f.k.Key(tagDedup)
	if err := h.v().scan(lo, prefixEnd(lo), false, func(_, _ []byte) (bool, error) { n++; return true, nil }); err != nil {
		t.Fatal(err)
	}
	if n > window+1 {
		t.Fatalf("%d dedup records held with a window of %d", n, window)
	}
}

// ---------------------------------------------------------------- journal

func TestJournalSeqAndPaging(t *testing.T) {
	h := fxNew(t)
	ns := h.createUser("alice", 0).Namespace
	ns2 := h.createUser("bob", 0).Namespace
	type rec struct {
		index uint64
		time  int64
		rid   string
	}
	var want []rec
	for i := 0; i < 12; i++ {
		rid := "r" + strconv.Itoa(i)
		at := h.now
		res, oe := h.commitRID(ns, rid, fxPut("/f"+strconv.Itoa(i%5), strconv.Itoa(i)))
		if oe != nil {
			t.Fatal(oe)
		}
		want = append(want, rec{h.index, at, rid})
		if res.Seq != uint64(len(want)) || res.Index != h.index {
			t.Fatalf("commit %d: %+v", i, res)
		}
		// Refused commits and commits to other namespaces take no seq here.
		h.refused(ns, fxDel("/nope"))
		h.must(ns2, fxPut("/g"+strconv.Itoa(i), "x"))
	}
	all := h.journal(ns)
	if len(all) != len(want) {
		t.Fatalf("%d records, want %d", len(all), len(want))
	}
	for i, r := range all {
		if r.Seq != uint64(i+1) || r.Index != want[i].index || r.Time != want[i].time || r.RequestID != want[i].rid || len(r.Changes) != 1 {
			t.Fatalf("record %d = %+v, want %+v", i, r, want[i])
		}
	}
	if n := h.nsRec(ns2); n.Head != 12 || n.Start != 1 {
		t.Fatalf("other namespace %+v", n)
	}
	for limit := 1; limit <= 13; limit++ {
		var got []JournalRecord
		cursor := uint64(0)
		for {
			p, err := h.v().changes(ns, cursor, limit)
			if err != nil {
				t.Fatal(err)
			}
			if p.Head != 12 || len(p.Records) > limit {
				t.Fatalf("limit %d: page %+v", limit, p)
			}
			got = append(got, p.Records...)
			if p.More != (p.Cursor < 12) || (len(p.Records) > 0 && p.Cursor != p.Records[len(p.Records)-1].Seq) {
				t.Fatalf("limit %d: page cursor %d more %v", limit, p.Cursor, p.More)
			}
			if !p.More {
				break
			}
			cursor = p.Cursor
		}
		if !reflect.DeepEqual(got, all) {
			t.Fatalf("limit %d: paged records differ", limit)
		}
	}
	// At the head: an empty page; past it: cursor_expired.
	p, err := h.v().changes(ns, 12, 0)
	if err != nil || len(p.Records) != 0 || p.More || p.Cursor != 12 {
		t.Fatalf("changes at head = %+v, %v", p, err)
	}
	_, err = h.v().changes(ns, 13, 0)
	fxWantCode(t, err, CodeCursorExpired)
	// An empty journal.
	ns3 := h.createUser("carol", 0).Namespace
	if p, err := h.v().changes(ns3, 0, 0); err != nil || len(p.Records) != 0 || p.Head != 0 {
		t.Fatalf("empty journal %+v, %v", p, err)
	}
	_, err = h.v().changes(ns3, 1, 0)
	fxWantCode(t, err, CodeCursorExpired)
}

func TestJournalChanges(t *testing.T) {
	h := fxNew(t)
	ns := h.createUser("alice", 0).Namespace
	h.must(ns, fxPut("/d/a", "1"), fxPut("/d/s/b", "22"), fxPut("/x", "3"))
	chk := func(name string, want ...string) {
		t.Helper()
		var got []string
		for _, c := range h.lastRecord(ns).Changes {
			s := fmt.Sprintf("%s %s r%d", c.Op, c.Path, c.Rev)
			if c.OldPath != "" {
				s += " from " + c.OldPath
			}
			if c.Deleted {
				s += " deleted"
			}
			got = append(got, s)
		}
		if !slices.Equal(got, want) {
			t.Fatalf("%s: changes\n%q\nwant\n%q", name, got, want)
		}
	}
	chk("create", "mkdir /d r1", "put /d/a r1", "mkdir /d/s r1", "put /d/s/b r1", "put /x r1")
	h.must(ns, fxMove("/d", "/e"))
	chk("folder move", "move /e r2 from /d")
	h.must(ns, fxMove("/x", "/e/s/x"))
	chk("file move", "move /e/s/x r2 from /x")
	h.must(ns, fxDel("/e"))
	chk("subtree delete", "delete /e/a r2 deleted", "delete /e/s/b r2 deleted", "delete /e/s/x r3 deleted", "delete /e/s r2 deleted", "delete /e r3 deleted")
	h.must(ns, fxRestore("/e/s/x", 1))
	chk("restore", "mkdir /e r4", "mkdir /e/s r3", "restore /e/s/x r4")
	c := h.lastRecord(ns).Changes[2]
	if c.Hash != fxSum("3") || c.Size != 1 || c.Dir || c.Name != "x" || c.ParentID != h.mustStat(ns, "/e/s").ID {
		t.Fatalf("restore change %+v", c)
	}
}

// ---------------------------------------------------------------- listing

func fxListTree(h *fxHarness, ns uint64) {
	h.t.Helper()
	h.must(ns,
		fxPut("/a/x", "1"), fxPut("/a/Y/z", "22"), fxPut("/a/Y/w", "333"), fxMkdir("/a/empty"),
		fxPut("/B", "4444"), fxMkdir("/c"), fxPut("/c/k1", "5"), fxPut("/c/K2", "6"),
		fxPut("/d", "gone"), fxPut("/e/f", "gone"), fxPut("/e/g/h", "gone"),
		fxPut("/Ω", "o"), fxPut("/ß", "s"), fxPut("/0", "0"),
	)
	h.must(ns, fxDel("/d"), fxDel("/e"), fxDel("/a/x"))
}

func TestListListing(t *testing.T) {
	h := fxNew(t)
	ns := h.createUser("alice", 0).Namespace
	fxListTree(h, ns)
	cases := []struct {
		name string
		path string
		o    ListOptions
		want string
	}{
		{"root", "/", ListOptions{}, "/0 /a /B /c /ß /Ω"},
		{"root with deleted", "/", ListOptions{IncludeDeleted: true}, "/0 /a /B /c /d /e /ß /Ω"},
		{"recursive", "/", ListOptions{Recursive: true}, "/0 /a /a/empty /a/Y /a/Y/w /a/Y/z /B /c /c/k1 /c/K2 /ß /Ω"},
		{"recursive with deleted", "/", ListOptions{Recursive: true, IncludeDeleted: true},
			"/0 /a /a/empty /a/x /a/Y /a/Y/w /a/Y/z /B /c /c/k1 /c/K2 /d /e /e/f /e/g /e/g/h /ß /Ω"},
		{"subfolder", "/a", ListOptions{}, "/a/empty /a/Y"},
		{"subfolder, other case", "/A/y", ListOptions{}, "/a/Y/w /a/Y/z"},
		{"subfolder recursive with deleted", "/a", ListOptions{Recursive: true, IncludeDeleted: true}, "/a/empty /a/x /a/Y /a/Y/w /a/Y/z"},
		{"deleted folder with deleted", "/e", ListOptions{Recursive: true, IncludeDeleted: true}, "/e/f /e/g /e/g/h"},
		{"empty folder", "/a/empty", ListOptions{Recursive: true}, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			defer h.use(t)()
			full := h.listAll(ns, tc.path, tc.o)
			if got := fxJoin(fxPaths(full)); got != tc.want {
				t.Fatalf("listing\n%s\nwant\n%s", got, tc.want)
			}
			if p := fxPaths(full); !slices.Equal(p, fxSorted(p)) {
				t.Fatalf("listing %v is not in folded name order", p)
			}
			for _, e := range full {
				if st, err := h.statAny(ns, e.Path); err != nil || !reflect.DeepEqual(*st, e) {
					t.Fatalf("entry %+v, stat %+v, %v", e, st, err)
				}
			}
			// Every page size gives the same listing, in full pages.
			for limit := 1; limit <= len(full)+1; limit++ {
				o := tc.o
				o.Limit = limit
				var got []Entry
				for pages := 0; ; pages++ {
					p, err := h.v().list(ns, Target{Path: tc.path}, o)
					if err != nil {
						t.Fatal(err)
					}
					got = append(got, p.Entries...)
					if p.NextPageToken == "" {
						break
					}
					if pages > len(full) {
						t.Fatalf("limit %d: more pages than entries", limit)
					}
					if len(p.Entries) != limit {
						t.Fatalf("limit %d: a page of %d entries", limit, len(p.Entries))
					}
					o.PageToken = p.NextPageToken
				}
				if !reflect.DeepEqual(got, full) && !(len(got) == 0 && len(full) == 0) {
					t.Fatalf("limit %d: pages give\n%s\nwant\n%s", limit, fxJoin(fxPaths(got)), fxJoin(fxPaths(full)))
				}
			}
		})
	}
	for _, tc := range []struct {
		name string
		path string
		o    ListOptions
		code Code
	}{
		{"a file", "/B", ListOptions{}, CodeNotFolder},
		{"missing", "/nope", ListOptions{}, CodeNotFound},
		{"deleted folder", "/e", ListOptions{}, CodeNotFound},
		{"under a file", "/B/x", ListOptions{}, CodeNotFolder},
		{"bad page token", "/", ListOptions{PageToken: "!!"}, CodeInvalidArgument},
		{"empty page token list", "/", ListOptions{PageToken: encodePageToken(nil)}, CodeInvalidArgument},
		{"invalid path", "/a/../b", ListOptions{}, CodeInvalidPath},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := h.v().list(ns, Target{Path: tc.path}, tc.o)
			fxWantCode(t, err, tc.code)
		})
	}
}

// TestListPagingWhileChanging changes the tree between pages: entries that
// exist throughout are listed exactly once, nothing is listed twice, and the
// pages stay in listing order.
func TestListPagingWhileChanging(t *testing.T) {
	for _, recursive := range []bool{false, true} {
		for limit := 1; limit <= 4; limit++ {
			t.Run(fmt.Sprintf("recursive=%v/limit=%d", recursive, limit), func(t *testing.T) {
				h := fxNew(t)
				ns := h.createUser("alice", 0).Namespace
				var ops []Op
				for _, p := range []string{"/b", "/d", "/f", "/h", "/j", "/l", "/n", "/p"} {
					ops = append(ops, fxPut(p+"/1", "x"), fxPut(p+"/3", "x"), fxPut(p+"5", "x"))
				}
				h.must(ns, ops...)
				o := ListOptions{Recursive: recursive, Limit: limit}
				initial := fxPaths(h.listAll(ns, "/", o))
				touched := map[string]bool{}
				rnd := rand.New(rand.NewPCG(uint64(limit), 7))
				var got []string
				for step := 0; ; step++ {
					p, err := h.v().list(ns, Target{Path: "/"}, o)
					if err != nil {
						t.Fatal(err)
					}
					got = append(got, fxPaths(p.Entries)...)
					if p.NextPageToken == "" {
						break
					}
					if step > 200 {
						t.Fatal("paging does not end")
					}
					o.PageToken = p.NextPageToken
					// Add a name before and after the position, delete one.
					letter := string(rune('a' + rnd.IntN(17)))
					add := fmt.Sprintf("/%s%d", letter, step)
					if recursive && step%2 == 0 {
						add = fmt.Sprintf("/%s/n%d", string(rune('b'+2*rnd.IntN(8))), step)
					}
					touched[add] = true
					h.must(ns, fxPut(add, "new"))
					if victim := initial[rnd.IntN(len(initial))]; !touched[victim] {
						if _, oe := h.commit(ns, fxDel(victim)); oe == nil {
							for _, q := range initial {
								if q == victim || strings.HasPrefix(q, victim+"/") {
									touched[q] = true
								}
							}
						}
					}
				}
				seen := map[string]int{}
				for i, p := range got {
					seen[p]++
					if seen[p] > 1 {
						t.Fatalf("%s listed twice in %v", p, got)
					}
					if i > 0 && !fxListOrder(got[i-1], p) {
						t.Fatalf("%s listed after %s", p, got[i-1])
					}
				}
				for _, p := range initial {
					if !touched[p] && seen[p] != 1 {
						t.Fatalf("%s existed throughout but was listed %d times: %v", p, seen[p], got)
					}
				}
			})
		}
	}
}

// ---------------------------------------------------------------- retention

func TestPruneRetention(t *testing.T) {
	const sec = int64(time.Second)
	// /f gets revisions 1..6 at 10s, 20s, ... 60s; pruning runs at 65s.
	cases := []struct {
		name        string
		keepFor     int64
		keepLast    int
		deleted     bool // delete /f as a 7th revision at 62s
		wantRevs    []uint64
		wantPruned  int
		wantRecords int
	}{
		{"keep for 30s, last 2", 30 * sec, 2, false, []uint64{6, 5, 4}, 3, 3},
		{"keep for 30s, last 0", 30 * sec, 0, false, []uint64{6, 5, 4}, 3, 3},
		{"keep last 5, for 0", 0, 5, false, []uint64{6, 5, 4, 3, 2}, 1, 6},
		{"keep last 1, for 0: only the current", 0, 1, false, []uint64{6}, 5, 6},
		{"keep nothing: still the current", 0, 0, false, []uint64{6}, 5, 6},
		{"keep for 25s exactly at a boundary", 25 * sec, 0, false, []uint64{6, 5, 4}, 3, 3},
		{"keep everything", int64(time.Hour), 10, false, []uint64{6, 5, 4, 3, 2, 1}, 0, 0},
		{"deleted file keeps its tombstone", 0, 2, true, []uint64{7, 6}, 5, 7},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := fxNew(t)
			ns := h.createUser("alice", 0).Namespace
			h.step = 0
			base := h.now
			for i := 1; i <= 6; i++ {
				h.now = base + int64(i)*10*sec
				h.must(ns, fxPut("/f", strings.Repeat("v", i)))
			}
			if tc.deleted {
				h.now = base + 62*sec
				h.must(ns, fxDel("/f"))
			}
			h.now = base + 65*sec
			res, steps := h.pruneAll(time.Duration(tc.keepFor), tc.keepLast, 1000)
			if steps != 1 || res.Revisions != tc.wantPruned || res.Records != tc.wantRecords {
				t.Fatalf("prune = %+v in %d steps; want %d revisions, %d records", res, steps, tc.wantPruned, tc.wantRecords)
			}
			var got []uint64
			for _, r := range h.history(ns, "/f") {
				got = append(got, r.Rev)
			}
			if !slices.Equal(got, tc.wantRevs) {
				t.Fatalf("kept revisions %v, want %v", got, tc.wantRevs)
			}
			// The root's only (current) revision is always kept.
			if revs := h.history(ns, "/"); len(revs) != 1 {
				t.Fatalf("root history %+v", revs)
			}
			// A pruned revision cannot be restored.
			oldest := tc.wantRevs[len(tc.wantRevs)-1]
			if oldest > 1 {
				oe := h.refused(ns, fxRestore("/f", oldest-1))
				fxWantCode(t, oe, CodeNotFound)
			}
			// The journal starts after the trimmed records.
			n := h.nsRec(ns)
			head := uint64(6)
			if tc.deleted {
				head = 7
			}
			if n.Head != head || n.Start != uint64(tc.wantRecords)+1 {
				t.Fatalf("namespace %+v", n)
			}
			if tc.wantRecords > 0 {
				_, err := h.v().changes(ns, n.Start-2, 0)
				fxWantCode(t, err, CodeCursorExpired)
			}
			p, err := h.v().changes(ns, n.Start-1, 0)
			if err != nil || uint64(len(p.Records)) != head-n.Start+1 || (len(p.Records) > 0 && p.Records[0].Seq != n.Start) {
				t.Fatalf("changes from start %d: %+v, %v", n.Start, p, err)
			}
			// A second prune at the same time finds nothing more.
			if again, _ := h.pruneAll(time.Duration(tc.keepFor), tc.keepLast, 1000); again.Revisions != 0 || again.Records != 0 {
				t.Fatalf("second prune %+v", again)
			}
			// The journal keeps going after a trim.
			res2 := h.must(ns, fxPut("/f", "after"))
			if res2.Seq != head+1 {
				t.Fatalf("seq after trim %d", res2.Seq)
			}
		})
	}
	t.Run("bad parameters", func(t *testing.T) {
		h := fxNew(t)
		for _, c := range []pruneCmd{{Max: 0}, {Max: 1, KeepLast: -1}, {Max: 1, KeepFor: -1}} {
			fxWantCode(t, h.apply(&command{Type: cmdPrune, Prune: &c}).Err, CodeInvalidArgument)
		}
	})
}

// TestPruneSteps checks that a prune in small steps ends in the same state
// as one in a single step, with the same totals.
func TestPruneSteps(t *testing.T) {
	build := func(t *testing.T) *fxHarness {
		h := fxNew(t)
		for u := 0; u < 3; u++ {
			ns := h.createUser("user"+strconv.Itoa(u), 0).Namespace
			for i := 0; i < 6; i++ {
				h.must(ns, fxPut(fmt.Sprintf("/d%d/f%d", i%2, i%3), strconv.Itoa(i)), fxPut("/g", strconv.Itoa(i)))
			}
			h.must(ns, fxDel("/d1"))
		}
		h.now += int64(time.Minute)
		return h
	}
	one := build(t)
	total, steps := one.pruneAll(30*time.Second, 2, 1000)
	if steps != 1 || total.Revisions == 0 || total.Records != 3*7 {
		t.Fatalf("single-step prune %+v in %d steps", total, steps)
	}
	for _, max := range []int{1, 2, 5} {
		t.Run("max="+strconv.Itoa(max), func(t *testing.T) {
			h := build(t)
			got, steps := h.pruneAll(30*time.Second, 2, max)
			if steps < 2 || !reflect.DeepEqual(got, total) {
				t.Fatalf("prune with max %d = %+v in %d steps; want %+v in several", max, got, steps, total)
			}
			if h.contentHash() != one.contentHash() {
				t.Fatal("stepwise prune ends in another state")
			}
		})
	}
}

// ---------------------------------------------------------------- replay

func fxBusyHistory(h *fxHarness) {
	h.t.Helper()
	u := h.createUser("alice", 100)
	ns := u.Namespace
	h.must(ns, fxPut("/a/b", "one"), fxMkdir("/c"))
	h.must(ns, fxPut("/a/b", "two"))
	h.refused(ns, fxDel("/nope"))
	h.commitRID(ns, "rid-1", fxMove("/a", "/c/a"))
	h.must(ns, fxDel("/c"))
	h.must(ns, fxRestore("/c/a/b", 1))
	h.apply(&command{Type: cmdSetQuota, SetQuota: &setQuotaCmd{Name: "alice", Quota: 50}})
	v := h.createUser("bob", 0)
	h.commitRID(v.Namespace, "rid-1", fxPut("/x", "x"))
	h.apply(&command{Type: cmdDeleteUser, DeleteUser: &userNameCmd{Name: "bob"}})
	h.prune(pruneCmd{KeepFor: 0, KeepLast: 1, Max: 100})
}

func TestReplayIdempotence(t *testing.T) {
	h := fxNew(t)
	fxBusyHistory(h)
	hash, idx := h.stateHash()
	if idx != h.index || idx != uint64(len(h.logs)) {
		t.Fatalf("applied index %d, %d entries", idx, len(h.logs))
	}
	// Re-applying every entry, one by one or in one batch, changes nothing
	// and answers nothing.
	skipped := h.f.Skipped()
	for _, l := range h.logs {
		if out := h.applyLogs(l); !fxNoResult(out[0]) {
			t.Fatalf("replayed entry %d answered %+v", l.Index, out[0])
		}
	}
	for _, o := range h.applyLogs(h.logs...) {
		if !fxNoResult(o) {
			t.Fatalf("replayed batch answered %+v", o)
		}
	}
	if got, gi := h.stateHash(); got != hash || gi != idx {
		t.Fatal("replay changed the state")
	}
	if n := h.f.Skipped() - skipped; n != 2*uint64(len(h.logs)) {
		t.Fatalf("%d entries counted as skipped, want %d", n, 2*len(h.logs))
	}

	// A new FSM on the same DB (a restart) knows where it was.
	h.f = h.openFSM()
	if h.f.AppliedIndex() != idx {
		t.Fatalf("reopened FSM at %d, want %d", h.f.AppliedIndex(), idx)
	}
	h.applyLogs(h.logs...)
	if got, _ := h.stateHash(); got != hash {
		t.Fatal("replay after a restart changed the state")
	}
	// The same across a Pebble restart (unsynced applies survive a clean
	// close).
	h.d.reopen(t)
	h.f = h.openFSM()
	if h.f.AppliedIndex() != idx {
		t.Fatalf("FSM after a Pebble restart at %d, want %d", h.f.AppliedIndex(), idx)
	}
	h.applyLogs(h.logs...)
	if got, _ := h.stateHash(); got != hash {
		t.Fatal("replay after a Pebble restart changed the state")
	}

	// A batch that mixes old and new entries applies only the new ones; a
	// non-command entry advances the applied index.
	ns := h.createUser("carol", 0).Namespace
	n := h.index
	put := h.entry(&command{Type: cmdCommit, Commit: &commitCmd{Namespace: ns, Ops: []Op{fxPut("/f", "x")}}})
	h.index++
	noop := &raft.Log{Index: h.index, Term: 1, Type: raft.LogNoop}
	out := h.applyLogs(h.logs[n-2], h.logs[n-1], put, noop)
	if !fxNoResult(out[0]) || !fxNoResult(out[1]) || out[2].(*result).Err != nil || !fxNoResult(out[3]) {
		t.Fatalf("mixed batch answered %+v", out)
	}
	if h.f.AppliedIndex() != noop.Index {
		t.Fatalf("applied %d, want %d", h.f.AppliedIndex(), noop.Index)
	}
	if e := h.mustStat(ns, "/f"); e.Rev != 1 {
		t.Fatalf("file %+v", e)
	}
	// Two replicas fed the same entries agree.
	other := fxNew(t)
	other.applyLogs(h.logs...)
	other.applyLogs(noop)
	a, ai := h.stateHash()
	b, bi := other.stateHash()
	if a != b || ai != bi {
		t.Fatalf("replicas differ: %x@%d vs %x@%d", a, ai, b, bi)
	}
}

// ---------------------------------------------------------------- snapshots

// fxSink collects a snapshot in memory (raft.SnapshotSink).
type fxSink struct {
	bytes.Buffer
	closed, cancelled bool
}

func (s *fxSink) ID() string    { return "fx" }
func (s *fxSink) Close() error  { s.closed = true; return nil }
func (s *fxSink) Cancel() error { s.cancelled = true; return nil }

func fxSnapshot(t *testing.T, h *fxHarness) []byte {
	t.Helper()
	return fxSnapshotWhile(t, h, nil)
}

// fxSnapshotWhile takes a snapshot as Raft does and persists it while
// during runs (on the test goroutine, as the FSM goroutine would).
func fxSnapshotWhile(t *testing.T, h *fxHarness, during func()) []byte {
	t.Helper()
	snap, err := h.f.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	defer snap.Release()
	sink := &fxSink{}
	done := make(chan error, 1)
	go func() { done <- snap.Persist(sink) }()
	if during != nil {
		during()
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if !sink.closed || sink.cancelled {
		t.Fatalf("sink closed %v cancelled %v", sink.closed, sink.cancelled)
	}
	return sink.Bytes()
}

func TestSnapshotRoundTrip(t *testing.T) {
	src := fxNew(t)
	fxBusyHistory(src)
	want, idx := src.stateHash()
	// Entries applied while the snapshot is persisted do not leak into it.
	var later *User
	data := fxSnapshotWhile(t, src, func() {
		later = src.createUser("late", 0)
		for i := 0; i < 20; i++ {
			src.must(later.Namespace, fxPut("/f"+strconv.Itoa(i), "x"))
		}
	})

	// Into a fresh DB.
	dst := fxNew(t)
	if err := dst.f.Restore(io.NopCloser(bytes.NewReader(data))); err != nil {
		t.Fatal(err)
	}
	if got, gi := dst.stateHash(); got != want || gi != idx || dst.f.AppliedIndex() != idx {
		t.Fatalf("restored state %x@%d (FSM at %d), want %x@%d", got, gi, dst.f.AppliedIndex(), want, idx)
	}
	if u, _ := dst.v().userByName("late"); u != nil {
		t.Fatalf("snapshot holds a later user %+v", u)
	}
	// The writer and the restore agree on a direct stream too.
	var buf bytes.Buffer
	if err := writeSnapshot(&buf, pebbleReader{dst.d.db}, dst.f.k); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(buf.Bytes(), data) {
		t.Fatal("a snapshot of the restored state differs from the original snapshot")
	}
	// Both continue identically from there.
	dst.applyLogs(src.logs[idx:]...)
	a, _ := src.stateHash()
	b, _ := dst.stateHash()
	if a != b {
		t.Fatal("replicas differ after applying the same entry past the snapshot")
	}
	// The restore marker is not part of the state hash (nor of a snapshot).
	before, _ := dst.stateHash()
	if err := dst.d.db.Set(dst.f.k.restoring(), u64(1), pebble.Sync); err != nil {
		t.Fatal(err)
	}
	if got, _ := dst.stateHash(); got != before {
		t.Fatal("the restore marker changes the state hash")
	}
	var marked bytes.Buffer
	if err := writeSnapshot(&marked, pebbleReader{dst.d.db}, dst.f.k); err != nil {
		t.Fatal(err)
	}
	if err := dst.d.db.Delete(dst.f.k.restoring(), pebble.Sync); err != nil {
		t.Fatal(err)
	}
	var unmarked bytes.Buffer
	if err := writeSnapshot(&unmarked, pebbleReader{dst.d.db}, dst.f.k); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(marked.Bytes(), unmarked.Bytes()) {
		t.Fatal("the restore marker is written into snapshots")
	}
	// A restart of the restored FSM keeps its applied index.
	dst.f = dst.openFSM()
	if dst.f.AppliedIndex() != src.index {
		t.Fatalf("reopened at %d", dst.f.AppliedIndex())
	}

	// Into a DB that holds another group and an older state of this one:
	// this group is replaced, the other is untouched.
	db := fxOpenDB(t)
	otherGroup := fxNewWith(t, db, 2, 1000)
	fxBusyHistory(otherGroup)
	otherGroup.createUser("extra", 0)
	otherHash, otherIdx := otherGroup.stateHash()
	stale := fxNewWith(t, db, 1, 1000)
	stale.createUser("stale", 0)
	stale.createUser("stale2", 0)
	idx2, err := restoreSnapshot(db.db, newKeys(1), bytes.NewReader(data))
	if err != nil || idx2 != idx {
		t.Fatalf("restoreSnapshot = %d, %v", idx2, err)
	}
	if got, _ := stale.stateHash(); got != want {
		t.Fatal("restore into a shared DB gives another state")
	}
	if got, gi := otherGroup.stateHash(); got != otherHash || gi != otherIdx {
		t.Fatal("restore touched another group's keys")
	}
	if u, _ := stale.v().userByName("stale"); u != nil {
		t.Fatal("restore left keys of the replaced state")
	}
	// A snapshot of group 2 restores into group 3 of the same DB.
	var b2 bytes.Buffer
	if err := writeSnapshot(&b2, pebbleReader{db.db}, newKeys(2)); err != nil {
		t.Fatal(err)
	}
	if _, err := restoreSnapshot(db.db, newKeys(3), &b2); err != nil {
		t.Fatal(err)
	}
	g3, g3i, err := stateHash(pebbleReader{db.db}, newKeys(3))
	if err != nil || g3 != otherHash || g3i != otherIdx {
		t.Fatalf("group 3 = %x@%d, %v; want group 2's state", g3, g3i, err)
	}
}

func TestSnapshotCorrupt(t *testing.T) {
	src := fxNew(t)
	fxBusyHistory(src)
	data := fxSnapshot(t, src)
	n := len(data)
	flip := func(i int) []byte {
		b := append([]byte(nil), data...)
		b[i] ^= 0x10
		return b
	}
	cases := []struct {
		name string
		data []byte
	}{
		{"empty", nil},
		{"magic only", data[:12]},
		{"header only", data[:20]},
		{"cut in the records", data[:n/2]},
		{"cut before the end mark", data[:n-32-8-1]},
		{"cut before the count", data[:n-32-8]},
		{"cut in the checksum", data[:n-5]},
		{"one byte short", data[:n-1]},
		{"flip in the magic", flip(3)},
		{"flip in the applied index", flip(17)},
		{"flip in the first record", flip(22)},
		{"flip in the middle", flip(n / 2)},
		{"flip in the count", flip(n - 33)},
		{"flip in the checksum", flip(n - 1)},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			db := fxOpenDB(t)
			other := fxNewWith(t, db, 2, 1000)
			other.createUser("bystander", 0)
			otherHash, _ := other.stateHash()
			h := fxNewWith(t, db, 1, 1000)
			h.createUser("before", 0)
			_, err := restoreSnapshot(db.db, h.f.k, bytes.NewReader(tc.data))
			if err == nil {
				t.Fatal("restore of a damaged snapshot succeeded")
			}
			if !errors.Is(err, errBadSnapshot) {
				t.Fatalf("error %v does not wrap errBadSnapshot", err)
			}
			if err := h.f.Restore(io.NopCloser(bytes.NewReader(tc.data))); err == nil {
				t.Fatal("FSM.Restore of a damaged snapshot succeeded")
			}
			// Whether the restore got going or not, a restart must not see a
			// half-restored mix: it starts from an empty group.
			if _, marked, _ := h.v().getU64(h.f.k.restoring()); marked {
				f := h.openFSM()
				if f.AppliedIndex() != 0 {
					t.Fatalf("FSM after an interrupted restore at %d", f.AppliedIndex())
				}
				if k := fxGroupKeys(t, db.db, 1); k != 0 {
					t.Fatalf("%d keys left after discarding an interrupted restore", k)
				}
			} else if len(tc.data) >= 20 && bytes.Equal(tc.data[:12], snapMagic) {
				t.Fatal("no restore marker after a failed restore that began")
			}
			if got, _ := other.stateHash(); got != otherHash {
				t.Fatal("a failed restore touched another group")
			}
			// A good snapshot still restores afterwards.
			if err := h.f.Restore(io.NopCloser(bytes.NewReader(data))); err != nil {
				t.Fatal(err)
			}
			want, _ := src.stateHash()
			if got, _ := h.stateHash(); got != want {
				t.Fatal("restore after a failed one gives another state")
			}
		})
	}
}

// ---------------------------------------------------------------- property

// fxModelEntry is what the model knows of a live path.
type fxModelEntry struct {
	dir  bool
	hash Sum
	size int64
}

// fxModel mirrors the live tree by folded path.
type fxModel map[string]fxModelEntry

func fxFold(p string) string {
	parts := metapath.Split(p)
	for i, s := range parts {
		parts[i] = metapath.Fold(s)
	}
	return "/" + strings.Join(parts, "/")
}

func (m fxModel) ensureParents(p string) {
	for dir, _ := metapath.Parent(p); dir != "/"; dir, _ = metapath.Parent(dir) {
		m[dir] = fxModelEntry{dir: true}
	}
}

func (m fxModel) clone() fxModel {
	c := make(fxModel, len(m))
	for k, v := range m {
		c[k] = v
	}
	return c
}

// apply updates the model with an op that succeeded.
func (m fxModel) apply(op Op, restored *Revision) {
	p := fxFold(op.Path)
	switch op.Kind {
	case OpPut:
		m.ensureParents(p)
		m[p] = fxModelEntry{hash: op.Hash, size: op.Size}
	case OpMkdir:
		m.ensureParents(p)
		m[p] = fxModelEntry{dir: true}
	case OpDelete:
		for k := range m {
			if k == p || strings.HasPrefix(k, p+"/") {
				delete(m, k)
			}
		}
	case OpMove:
		to := fxFold(op.To)
		moved := fxModel{}
		for k, v := range m {
			if k == p || strings.HasPrefix(k, p+"/") {
				moved[to+k[len(p):]] = v
				delete(m, k)
			}
		}
		m.ensureParents(to)
		for k, v := range moved {
			m[k] = v
		}
	case OpRestore:
		m.ensureParents(p)
		m[p] = fxModelEntry{hash: restored.Hash, size: restored.Size}
	}
}

func TestPropertyRandomOps(t *testing.T) {
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("COFFER_FSM_SEED"); s != "" {
		v, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatal(err)
		}
		seed = v
	}
	nOps := 300
	if s := os.Getenv("COFFER_FSM_OPS"); s != "" {
		nOps, _ = strconv.Atoi(s)
	}
	t.Logf("seed %d (rerun with COFFER_FSM_SEED=%d)", seed, seed)
	rnd := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	fxProperty(t, rnd, nOps)
}

func fxProperty(t *testing.T, rnd *rand.Rand, nOps int) {
	h := fxNewWith(t, fxOpenDB(t), 1, 50)
	ns := h.createUser("prop", 0).Namespace
	paths := []string{"/", "/a", "/b", "/a/x", "/a/y", "/A/X", "/b/x", "/a/c/x", "/a/c", "/x", "/B/c/y", "/ß", "/SS"}
	contents := []string{"", "1", "22", "333", "4444", "55555"}
	pick := func(ss []string) string { return ss[rnd.IntN(len(ss))] }
	model := fxModel{}
	lastRev := map[uint64]uint64{} // node ID -> highest revision seen
	var ridsSeen []string
	stats := map[string]int{} // outcomes, for the log

	// randomOp makes an op against the current state; restores by node ID
	// only as a batch's last op, where the result's path is where it landed.
	randomOp := func(last bool) Op {
		p := pick(paths)
		switch k := rnd.IntN(10); {
		case k < 3:
			op := fxPut(p, pick(contents))
			switch rnd.IntN(6) {
			case 0:
				op.IfNoneMatch = true
			case 1:
				if e, err := h.statAny(ns, p); err == nil {
					op.IfMatch = e.Rev
				} else {
					op.IfMatch = 1
				}
			}
			return op
		case k < 4:
			return fxMkdir(p)
		case k < 6:
			op := fxDel(p)
			if rnd.IntN(4) == 0 {
				if e, err := h.statAny(ns, p); err == nil {
					op.IfMatch = e.Rev - uint64(rnd.IntN(2))
				}
			}
			return op
		case k < 8:
			return fxMove(p, pick(paths))
		default:
			e, err := h.statAny(ns, p)
			if err != nil {
				return fxRestore(p, 1)
			}
			revs := h.historyID(ns, e.ID)
			rv := revs[rnd.IntN(len(revs))]
			op := fxRestore(p, rv.Rev+uint64(rnd.IntN(2))*uint64(rnd.IntN(3)))
			if last && rnd.IntN(4) == 0 {
				op = Op{Kind: OpRestore, NodeID: e.ID, Rev: op.Rev}
				if rnd.IntN(2) == 0 {
					op.Path = pick(paths)
				}
			}
			return op
		}
	}

	check := func(step int, what string) {
		t.Helper()
		// The live tree is the model's.
		list := h.listAll(ns, "/", ListOptions{Recursive: true, Limit: 1 + rnd.IntN(7)})
		got := fxModel{}
		var used, files int64
		for _, e := range list {
			got[fxFold(e.Path)] = fxModelEntry{dir: e.Dir, hash: e.Hash, size: e.Size}
			if !e.Dir {
				used += e.Size
				files++
			}
			if e.Rev < lastRev[e.ID] {
				t.Fatalf("step %d (%s): %s at rev %d, saw rev %d before", step, what, e.Path, e.Rev, lastRev[e.ID])
			}
			lastRev[e.ID] = e.Rev
			revs := h.historyID(ns, e.ID)
			if revs[0].Rev != e.Rev || revs[0].Hash != e.Hash || revs[0].Deleted {
				t.Fatalf("step %d (%s): %s current rev %d, history head %+v", step, what, e.Path, e.Rev, revs[0])
			}
			for i := 1; i < len(revs); i++ {
				if revs[i].Rev >= revs[i-1].Rev {
					t.Fatalf("step %d: history of %s not strictly decreasing: %+v", step, e.Path, revs)
				}
			}
		}
		if !reflect.DeepEqual(got, model) {
			var gk, mk []string
			for k, v := range got {
				gk = append(gk, fmt.Sprintf("%s%v", k, v.dir))
			}
			for k, v := range model {
				mk = append(mk, fmt.Sprintf("%s%v", k, v.dir))
			}
			sort.Strings(gk)
			sort.Strings(mk)
			t.Fatalf("step %d (%s): tree\n%v\nmodel\n%v", step, what, gk, mk)
		}
		if err := h.checkLinks(ns); err != nil {
			t.Fatalf("step %d (%s): %v", step, what, err)
		}
		n := h.nsRec(ns)
		if n.Used != used || n.Files != files {
			t.Fatalf("step %d (%s): namespace used %d files %d; live files add up to %d, %d", step, what, n.Used, n.Files, used, files)
		}
	}

	for step := 0; step < nOps; step++ {
		if rnd.IntN(40) == 0 {
			before := model.clone()
			h.pruneAll(time.Duration(rnd.IntN(20))*time.Second, rnd.IntN(3), 1+rnd.IntN(4))
			model = before
			check(step, "prune")
			continue
		}
		nBatch := 1
		if rnd.IntN(4) == 0 {
			nBatch = 2 + rnd.IntN(3)
		}
		var ops []Op
		// Batches are generated against the state before the batch; later
		// ops may well fail, which refuses the whole batch.
		for i := 0; i < nBatch; i++ {
			ops = append(ops, randomOp(i == nBatch-1))
		}
		rid := ""
		if rnd.IntN(3) == 0 {
			rid = "rid-" + strconv.Itoa(step)
			if len(ridsSeen) > 0 && rnd.IntN(4) == 0 {
				rid = ridsSeen[rnd.IntN(len(ridsSeen))]
			}
			ridsSeen = append(ridsSeen, rid)
		}
		before := *h.nsRec(ns)
		ctr := h.counters()
		hashBefore := h.contentHash()
		dedupHit := false
		if rid != "" {
			ok, err := h.v().getJSON(h.f.k.dedup(ns, rid), new(result))
			if err != nil {
				t.Fatal(err)
			}
			dedupHit = ok
		}
		what := fmt.Sprintf("%+v rid %q", ops, rid)
		res, oe := h.commitRID(ns, rid, ops...)
		if dedupHit {
			stats["dedup hit"]++
			if h.contentHash() != hashBefore {
				t.Fatalf("step %d (%s): a retried request ID changed the state", step, what)
			}
			check(step, what)
			continue
		}
		after := *h.nsRec(ns)
		if oe != nil {
			stats[fmt.Sprintf("%s %s", ops[max(oe.Op, 0)].Kind, oe.Code)]++
			if oe.Op < 0 || oe.Op >= len(ops) || oe.Kind != ops[oe.Op].Kind {
				t.Fatalf("step %d (%s): error %+v names no op of the batch", step, what, oe)
			}
			if after != before || h.counters().NextID != ctr.NextID {
				t.Fatalf("step %d (%s): refused batch changed the namespace %+v -> %+v", step, what, before, after)
			}
			check(step, what+" -> "+oe.Error())
			continue
		}
		if res.Seq != before.Head+1 || after.Head != res.Seq {
			t.Fatalf("step %d (%s): seq %d after head %d (now %d)", step, what, res.Seq, before.Head, after.Head)
		}
		for i, op := range ops {
			stats[fmt.Sprintf("%s ok", op.Kind)]++
			var restored *Revision
			if op.Kind == OpRestore {
				if op.NodeID != 0 {
					// Where a restore by ID lands depends on the node's past.
					op.Path = res.Ops[i].Path
				}
				// Revisions never change: the restored one is still there.
				for _, rv := range h.historyID(ns, res.Ops[i].NodeID) {
					if rv.Rev == op.Rev {
						restored = &rv
					}
				}
				if restored == nil || restored.Deleted {
					t.Fatalf("step %d (%s): op %d restored revision %d, which is %+v", step, what, i, op.Rev, restored)
				}
			}
			model.apply(op, restored)
			r := res.Ops[i]
			if r.Rev <= lastRev[r.NodeID] {
				t.Fatalf("step %d (%s): op %d gave %+v, rev %d seen before", step, what, i, r, lastRev[r.NodeID])
			}
			lastRev[r.NodeID] = r.Rev
		}
		// The last op's target is visible as that op left it.
		last, lr := ops[len(ops)-1], res.Ops[len(ops)-1]
		e, err := h.statID(ns, lr.NodeID)
		if err != nil {
			t.Fatalf("step %d (%s): stat node %d: %v", step, what, lr.NodeID, err)
		}
		switch last.Kind {
		case OpDelete:
			if !e.Deleted {
				t.Fatalf("step %d (%s): deleted node is %+v", step, what, e)
			}
		case OpPut:
			if e.Deleted || e.Hash != last.Hash {
				t.Fatalf("step %d (%s): put node is %+v", step, what, e)
			}
		case OpRestore:
			if hr := h.historyID(ns, e.ID); e.Deleted || hr[0].Op != OpRestore || hr[0].From != last.Rev {
				t.Fatalf("step %d (%s): restored node is %+v, history %+v", step, what, e, hr[0])
			}
		}
		if !e.Deleted && fxFold(e.Path) != fxFold(lr.Path) {
			t.Fatalf("step %d (%s): node at %s, result says %s", step, what, e.Path, lr.Path)
		}
		check(step, what)
	}
	t.Logf("outcomes: %v", stats)
	// The journal is gap-free from its start to its head.
	n := h.nsRec(ns)
	recs := h.journal(ns)
	for i, r := range recs {
		if r.Seq != n.Start+uint64(i) {
			t.Fatalf("journal record %d has seq %d (start %d)", i, r.Seq, n.Start)
		}
	}
	if len(recs) > 0 && recs[len(recs)-1].Seq != n.Head {
		t.Fatalf("journal ends at %d, head %d", recs[len(recs)-1].Seq, n.Head)
	}
	// Replaying the whole log into a second FSM reproduces the state.
	twin := fxNewWith(t, fxOpenDB(t), 1, 50)
	twin.applyLogs(h.logs...)
	a, _ := h.stateHash()
	b, _ := twin.stateHash()
	if a != b {
		t.Fatal("a second FSM fed the same log has another state")
	}
}

// ---------------------------------------------------------------- notifications

func TestFSMNotify(t *testing.T) {
	h := fxNew(t)
	a := h.createUser("alice", 0).Namespace
	b := h.createUser("bob", 0).Namespace
	closed := func(ch <-chan struct{}) bool {
		select {
		case <-ch:
			return true
		default:
			return false
		}
	}
	chA, chB, applied := h.f.changed(a), h.f.changed(b), h.f.p.Moved()
	if h.f.changed(a) != chA {
		t.Fatal("two waiters on one namespace get different channels")
	}
	h.refused(a, fxDel("/nope"))
	if closed(chA) || closed(chB) || !closed(applied) {
		t.Fatal("a refused commit woke namespace waiters, or the applied index waiters slept")
	}
	h.must(a, fxPut("/f", "x"))
	if !closed(chA) || closed(chB) {
		t.Fatal("a commit to one namespace woke the wrong waiters")
	}
	applied = h.f.p.Moved()
	if closed(applied) {
		t.Fatal("a fresh applied-index channel is already closed")
	}
	// A dedup hit changes nothing, so it wakes no namespace waiter.
	h.commitRID(b, "r", fxPut("/g", "x"))
	if !closed(chB) {
		t.Fatal("commit to bob did not wake bob's waiter")
	}
	chB = h.f.changed(b)
	h.commitRID(b, "r", fxPut("/g", "x"))
	if closed(chB) {
		t.Fatal("a deduplicated retry woke a waiter")
	}
	// A restore wakes everyone.
	data := fxSnapshot(t, h)
	chA = h.f.changed(a)
	if err := h.f.Restore(io.NopCloser(bytes.NewReader(data))); err != nil {
		t.Fatal(err)
	}
	if !closed(chA) || !closed(chB) {
		t.Fatal("a restore did not wake the waiters")
	}
}

// TestCommitNamespaceIsolation checks that namespaces share nothing but
// the ID sequence: the same paths are independent, and node IDs of one
// namespace mean nothing in another.
func TestCommitNamespaceIsolation(t *testing.T) {
	h := fxNew(t)
	a := h.createUser("alice", 0).Namespace
	b := h.createUser("bob", 0).Namespace
	ra := h.must(a, fxPut("/f", "alice"), fxMkdir("/d"))
	h.must(b, fxPut("/f", "bob"))
	if e := h.mustStat(b, "/f"); e.Hash != fxSum("bob") || e.Rev != 1 {
		t.Fatalf("bob's /f = %+v", e)
	}
	h.gone(b, "/d")
	id := ra.Ops[0].NodeID
	if _, err := h.v().stat(b, Target{ID: id}, StatOptions{IncludeDeleted: true}); CodeOf(err) != CodeNotFound {
		t.Fatalf("alice's node %d seen from bob's namespace: %v", id, err)
	}
	if _, err := h.v().history(b, Target{ID: id}, HistoryOptions{}); CodeOf(err) != CodeNotFound {
		t.Fatalf("alice's history seen from bob's namespace: %v", err)
	}
	h.must(a, fxDel("/f"))
	fxWantOpErr(t, h.refused(b, Op{Kind: OpRestore, NodeID: id, Rev: 1}), CodeNotFound, 0, OpRestore, 0)
	if n := h.nsRec(b); n.Used != 3 || n.Files != 1 || n.Head != 1 {
		t.Fatalf("bob's namespace %+v", n)
	}
	if n := h.nsRec(a); n.Used != 0 || n.Files != 0 || n.Head != 2 {
		t.Fatalf("alice's namespace %+v", n)
	}
}

// TestHistoryFromRev checks HistoryOptions.Rev: the history starts at that
// revision, so one revision can be read, and older ones paged through.
func TestHistoryFromRev(t *testing.T) {
	h := fxNew(t)
	ns := h.createUser("alice", 0).Namespace
	for _, data := range []string{"one", "two", "three", "four"} {
		h.must(ns, fxPut("/f", data))
	}
	h.must(ns, fxDel("/f"))
	revs := func(o HistoryOptions) string {
		t.Helper()
		rs, err := h.v().history(ns, Target{Path: "/f"}, o)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, r := range rs {
			out = append(out, strconv.FormatUint(r.Rev, 10))
		}
		return strings.Join(out, " ")
	}
	cases := []struct {
		o    HistoryOptions
		want string
	}{
		{HistoryOptions{}, "5 4 3 2 1"},
		{HistoryOptions{Rev: 3}, "3 2 1"},
		{HistoryOptions{Rev: 3, Limit: 1}, "3"},
		{HistoryOptions{Rev: 1}, "1"},
		{HistoryOptions{Rev: 9}, "5 4 3 2 1"},
		{HistoryOptions{Rev: math.MaxUint64, Limit: 2}, "5 4"},
	}
	for _, tc := range cases {
		if got := revs(tc.o); got != tc.want {
			t.Errorf("%+v: revisions %q, want %q", tc.o, got, tc.want)
		}
	}
	// A pruned revision: Limit 1 gives the next older one.
	h.now += int64(48 * time.Hour)
	h.pruneAll(time.Hour, 2, 100)
	if got := revs(HistoryOptions{Rev: 3, Limit: 1}); got != "" {
		t.Errorf("Rev 3 after pruning all but 5 and 4: %q, want none", got)
	}
	if got := revs(HistoryOptions{Rev: 4, Limit: 1}); got != "4" {
		t.Errorf("Rev 4: %q", got)
	}
}
