package gateway

import (
	"bytes"
	"fmt"
	"strings"
	"testing"

	"github.com/coffer-dev/coffer/internal/wire"
	"github.com/coffer-dev/coffer/raftmeta"
)

// TestIsolation: bob, knowing everything alice's requests revealed to her
// (paths, node IDs, revisions, block refs, receipts, upload IDs,
// idempotency keys), can neither read nor change any of it.
func TestIsolation(t *testing.T) {
	e := newEnv(t, envOpts{})
	alice, bob := e.user("alice"), e.user("bob")

	// alice's world.
	secret := randBytes(3000)
	a := alice.put("/secret/a.txt", secret, map[string]string{IdempotencyHeader: "key-1"})
	want(t, "alice put", a, 201, "")
	file := decodeAs[wire.FileResult](t, a)
	want(t, "alice put v2", alice.put("/secret/a.txt", secret[:100], nil), 200, "")
	a = alice.do("POST", "/v1/mkdir/secret/dir", nil, nil)
	want(t, "alice mkdir", a, 201, "")
	dir := decodeAs[wire.FileResult](t, a)
	want(t, "alice deleted file", alice.put("/secret/gone.txt", []byte("gone"), nil), 201, "")
	a = alice.do("DELETE", "/v1/files/secret/gone.txt", nil, nil)
	want(t, "alice delete", a, 200, "")
	gone := decodeAs[wire.FileResult](t, a)
	upload := alice.createUpload(wire.UploadRequest{Path: "/secret/up.bin"})
	want(t, "alice append", alice.appendAt(upload, 0, []byte("partial upload")), 200, "")
	unsent := randBytes(800) // uploaded as a block, not committed
	receipt := alice.putBlock(unsent)
	fileRef := sha(secret) // one block
	// bob's own file, whose block he may read.
	own := randBytes(500)
	want(t, "bob put", bob.put("/own.bin", own, nil), 201, "")

	snapshot := func() string {
		var b strings.Builder
		for _, p := range []string{
			"/v1/files/secret/a.txt", "/v1/files/secret/a.txt?rev=1", "/v1/history/secret/a.txt", "/v1/history/?id=" + itoa(gone.ID),
			"/v1/stat/secret/dir", "/v1/list/?recursive=1&deleted=1", "/v1/uploads/" + upload, "/v1/changes",
		} {
			a := alice.do("GET", p, nil, nil)
			fmt.Fprintf(&b, "%s: %d %s %s\n%x\n", p, a.status, a.hdr.Get("ETag"), a.hdr.Get(HeaderSHA256), sha(a.body))
		}
		return b.String()
	}
	before := snapshot()

	rcpts := func(ops []wire.Op, receipts ...string) string {
		b, _ := jsonMarshal(wire.CommitRequest{Ops: ops, Receipts: receipts})
		return b
	}
	stealOp := wire.Op{Kind: "put", Path: "/stolen.txt", Size: int64(len(secret)), Hash: fileRef, Blocks: []wire.Block{{Ref: fileRef, Size: int64(len(secret))}}}
	stealUnsent := putOp("/stolen2.bin", unsent)
	id, did, gid := itoa(file.ID), itoa(dir.ID), itoa(gone.ID)
	for _, tc := range []struct {
		name, method, path, body string
		hdr                      map[string]string
		status                   int
		code                     string
	}{
		{"get her file by path", "GET", "/v1/files/secret/a.txt", "", nil, 404, "not_found"},
		{"head her file", "HEAD", "/v1/files/secret/a.txt", "", nil, 404, ""},
		{"get a revision of her path", "GET", "/v1/files/secret/a.txt?rev=1", "", nil, 404, "not_found"},
		{"range of her file", "GET", "/v1/files/secret/a.txt", "", map[string]string{"Range": "bytes=0-9"}, 404, "not_found"},
		{"stat her path", "GET", "/v1/stat/secret/a.txt", "", nil, 404, "not_found"},
		{"stat her file by id", "GET", "/v1/stat/?id=" + id, "", nil, 404, "not_found"},
		{"stat her deleted file by id", "GET", "/v1/stat/?id=" + gid + "&deleted=1", "", nil, 404, "not_found"},
		{"stat her folder by id", "GET", "/v1/stat/?id=" + did, "", nil, 404, "not_found"},
		{"list her folder", "GET", "/v1/list/secret", "", nil, 404, "not_found"},
		{"list her folder by id", "GET", "/v1/list/?id=" + did, "", nil, 404, "not_found"},
		{"history of her path", "GET", "/v1/history/secret/a.txt", "", nil, 404, "not_found"},
		{"history by her id", "GET", "/v1/history/?id=" + id, "", nil, 404, "not_found"},
		{"history of her deleted file", "GET", "/v1/history/?id=" + gid, "", nil, 404, "not_found"},
		{"delete her path", "DELETE", "/v1/files/secret/a.txt", "", nil, 404, "not_found"},
		{"delete with her revision", "DELETE", "/v1/files/secret/a.txt", "", map[string]string{"If-Match": "2"}, 404, "not_found"},
		{"move her file", "POST", "/v1/move", `{"from":"/secret/a.txt","to":"/mine.txt"}`, nil, 404, "not_found"},
		{"restore her path", "POST", "/v1/restore", `{"path":"/secret/a.txt","rev":1}`, nil, 404, "not_found"},
		{"restore her id", "POST", "/v1/restore", `{"id":` + id + `,"rev":1,"to":"/stolen.txt"}`, nil, 404, "not_found"},
		{"restore her deleted file", "POST", "/v1/restore", `{"id":` + gid + `,"rev":1,"to":"/stolen.txt"}`, nil, 404, "not_found"},
		{"commit a restore of her id", "POST", "/v1/commit", `{"ops":[{"kind":"restore","node_id":` + id + `,"rev":1,"path":"/stolen.txt"}]}`, nil, 404, "not_found"},
		{"commit a move of her path", "POST", "/v1/commit", `{"ops":[{"kind":"move","path":"/secret/a.txt","to":"/x"}]}`, nil, 404, "not_found"},
		{"get her upload", "GET", "/v1/uploads/" + upload, "", nil, 404, "not_found"},
		{"append to her upload", "PATCH", "/v1/uploads/" + upload, "more", map[string]string{OffsetHeader: "14"}, 404, "not_found"},
		{"finish her upload", "POST", "/v1/uploads/" + upload + "/finish", "", nil, 404, "not_found"},
		{"finish her upload with a key", "POST", "/v1/uploads/" + upload + "/finish", "", map[string]string{IdempotencyHeader: "f"}, 404, "not_found"},
		{"delete her upload", "DELETE", "/v1/uploads/" + upload, "", nil, 404, "not_found"},
		{"commit her file's block", "POST", "/v1/commit", rcpts([]wire.Op{stealOp}), nil, 404, "not_found"},
		{"commit her file's block with her receipt", "POST", "/v1/commit", rcpts([]wire.Op{stealOp}, receipt), nil, 400, "invalid_argument"},
		{"commit her uploaded block with her receipt", "POST", "/v1/commit", rcpts([]wire.Op{stealUnsent}, receipt), nil, 400, "invalid_argument"},
		{"commit her uploaded block", "POST", "/v1/commit", rcpts([]wire.Op{stealUnsent}), nil, 404, "not_found"},
		{"read her file's block", "POST", "/v1/blocks/read", `{"refs":["` + fileRef + `"]}`, nil, 404, "not_found"},
		{"read her uploaded block", "POST", "/v1/blocks/read", `{"refs":["` + sha(unsent) + `"]}`, nil, 404, "not_found"},
		{"read her block after his own", "POST", "/v1/blocks/read", `{"refs":["` + sha(own) + `","` + fileRef + `"]}`, nil, 404, "not_found"},
		{"a revision of his own missing file", "GET", "/v1/files/mine.txt?rev=1", "", nil, 404, "not_found"},
		{"a revision of her revision numbers on his path", "GET", "/v1/files/secret/a.txt?rev=2", "", nil, 404, "not_found"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := bob.do(tc.method, tc.path, strings.NewReader(tc.body), tc.hdr)
			want(t, tc.method+" "+tc.path, a, tc.status, tc.code)
			if bytes.Contains(a.body, secret[:16]) {
				t.Errorf("the answer holds alice's bytes")
			}
		})
	}
	// A batch read names the first block he may not read, and has served
	// nothing of his before it.
	if a := bob.postJSON("/v1/blocks/read", readRequest{Refs: []string{sha(own), fileRef}}, nil); !strings.Contains(a.json()["message"].(string), fileRef) || bytes.Contains(a.body, own[:16]) {
		t.Errorf("bob's read of his and her block: %s", a.body)
	}
	if _, frames, _ := bob.readBatch(sha(own)); len(frames) != 1 || !bytes.Equal(frames[0].data, own) {
		t.Errorf("bob's read of his own block: %v", frames)
	}
	// Dedup reveals nothing: her refs are missing for him.
	if got := bob.missing(fileRef, sha(unsent)); len(got) != 2 {
		t.Errorf("bob's missing of alice's refs: %v", got)
	}
	// Her idempotency key, reused by him, is his own request: a new file of
	// his, not her commit's answer.
	mine := []byte("bob's own bytes")
	a = bob.put("/secret/a.txt", mine, map[string]string{IdempotencyHeader: "key-1"})
	if want(t, "bob put with her key", a, 201, "") {
		r := decodeAs[wire.FileResult](t, a)
		if r.ID == file.ID || r.Hash != sha(mine) || r.Rev != 1 {
			t.Errorf("bob's put answered %+v (alice's was %+v)", r, file)
		}
	}
	// Paths act on his own namespace only.
	want(t, "bob mkdir her folder's path", bob.do("POST", "/v1/mkdir/secret/dir", nil, nil), 201, "")
	l := decodeAs[raftmeta.ListPage](t, bob.do("GET", "/v1/list/secret", nil, nil))
	if len(l.Entries) != 2 {
		t.Errorf("bob's /secret lists %+v", l.Entries)
	}
	if g := bob.do("GET", "/v1/files/secret/a.txt", nil, nil); !bytes.Equal(g.body, mine) {
		t.Errorf("bob reads %q", g.body)
	}

	// Admin routes are not his; no token is nobody.
	for _, r := range []struct{ method, path, body string }{
		{"GET", "/v1/admin/users", ""},
		{"POST", "/v1/admin/users", `{"name":"mallory","password":"x","admin":true}`},
		{"GET", "/v1/admin/users/alice", ""},
		{"PUT", "/v1/admin/users/alice/password", `{"new":"owned"}`},
		{"PUT", "/v1/admin/users/bob/quota", `{"quota":0}`},
		{"POST", "/v1/admin/users/alice/logout", ""},
		{"DELETE", "/v1/admin/users/alice", ""},
	} {
		want(t, "bob "+r.method+" "+r.path, bob.do(r.method, r.path, strings.NewReader(r.body), nil), 403, "forbidden")
	}
	anon := &sess{e: e}
	for _, r := range []struct{ method, path string }{
		{"GET", "/v1/whoami"}, {"GET", "/v1/files/secret/a.txt"}, {"PUT", "/v1/files/x"}, {"GET", "/v1/changes"},
		{"GET", "/v1/changes?wait=1s"}, {"POST", "/v1/commit"}, {"GET", "/v1/uploads/" + upload}, {"GET", "/v1/admin/users"},
		{"POST", "/v1/logout"}, {"PUT", "/v1/blocks/" + fileRef},
	} {
		a := anon.do(r.method, r.path, strings.NewReader(""), nil)
		if want(t, "no token "+r.method+" "+r.path, a, 401, "unauthenticated") && a.hdr.Get("WWW-Authenticate") == "" {
			t.Errorf("401 without WWW-Authenticate")
		}
	}
	bad := &sess{e: e, token: alice.token[:len(alice.token)-4] + "AAAA"}
	want(t, "a forged token", bad.do("GET", "/v1/whoami", nil, nil), 401, "unauthenticated")
	mallory := &sess{e: e}
	a = mallory.do("GET", "/v1/whoami", nil, map[string]string{"Authorization": "Basic " + basic("alice", "wrong")})
	want(t, "basic with a wrong password", a, 401, "unauthenticated")

	if after := snapshot(); after != before {
		t.Errorf("alice's data changed:\nbefore:\n%s\nafter:\n%s", before, after)
	}
	if g := alice.do("GET", "/v1/files/secret/a.txt?rev=1", nil, nil); !bytes.Equal(g.body, secret) {
		t.Errorf("alice's first revision changed")
	}
	if got := alice.uploadOffset(upload); got != 14 {
		t.Errorf("alice's upload is at %d", got)
	}
	if u := decodeAs[wire.UserInfo](t, e.login("root", "rootpw").do("GET", "/v1/admin/users/alice", nil, nil)); u.Name != "alice" {
		t.Errorf("alice's account: %+v", u)
	}
}
