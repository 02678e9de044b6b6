package gateway

import (
	"strings"
	"testing"

	"github.com/coffer-dev/coffer/internal/wire"
	"github.com/coffer-dev/coffer/raftmeta"
)

// TestIdempotencyKey: a request retried with the same Idempotency-Key is
// applied once and answered as the first time.
func TestIdempotencyKey(t *testing.T) {
	e := newEnv(t, envOpts{})
	alice := e.user("alice")
	data := []byte("once")
	key := map[string]string{IdempotencyHeader: "put-1"}
	first := alice.put("/idem.txt", data, key)
	want(t, "put", first, 201, "")
	again := alice.put("/idem.txt", data, key)
	want(t, "the retried put", again, 201, "")
	if string(again.body) != string(first.body) || again.hdr.Get("ETag") != `"1"` {
		t.Errorf("the retry answered %s, the first %s", again.body, first.body)
	}
	if revs := alice.history("/idem.txt"); len(revs) != 1 {
		t.Errorf("history has %d revisions, want 1", len(revs))
	}
	head := alice.head()
	if head != 1 {
		t.Errorf("journal head %d, want 1", head)
	}
	// Without a key, the same PUT is a new revision.
	want(t, "put without a key", alice.put("/idem.txt", data, nil), 200, "")

	// A commit batch.
	req := wire.CommitRequest{Ops: []wire.Op{{Kind: "mkdir", Path: "/d"}, {Kind: "mkdir", Path: "/d/e"}}}
	c1 := alice.postJSON("/v1/commit", req, map[string]string{IdempotencyHeader: "commit-1"})
	want(t, "commit", c1, 200, "")
	c2 := alice.postJSON("/v1/commit", req, map[string]string{IdempotencyHeader: "commit-1"})
	want(t, "the retried commit", c2, 200, "")
	r1, r2 := decodeAs[raftmeta.CommitResult](t, c1), decodeAs[raftmeta.CommitResult](t, c2)
	if r1.Seq != r2.Seq || r1.Ops[1].Rev != r2.Ops[1].Rev || r1.Ops[1].NodeID != r2.Ops[1].NodeID {
		t.Errorf("the retry answered %+v, the first %+v", r2, r1)
	}
	if h := alice.head(); h != r1.Seq {
		t.Errorf("journal head %d after the retried commit at %d", h, r1.Seq)
	}
	// A delete retried: one deletion, the same answer (not a 404).
	d1 := alice.do("DELETE", "/v1/files/d/e", nil, map[string]string{IdempotencyHeader: "del-1"})
	want(t, "delete", d1, 200, "")
	d2 := alice.do("DELETE", "/v1/files/d/e", nil, map[string]string{IdempotencyHeader: "del-1"})
	if want(t, "the retried delete", d2, 200, "") && string(d1.body) != string(d2.body) {
		t.Errorf("the retry answered %s, the first %s", d2.body, d1.body)
	}
	// A finished upload retried.
	id := alice.createUpload(wire.UploadRequest{Path: "/up.bin"})
	want(t, "append", alice.appendAt(id, 0, data), 200, "")
	f1 := alice.do("POST", "/v1/uploads/"+id+"/finish", nil, map[string]string{IdempotencyHeader: "fin-1"})
	want(t, "finish", f1, 201, "")
	f2 := alice.do("POST", "/v1/uploads/"+id+"/finish", nil, map[string]string{IdempotencyHeader: "fin-1"})
	if f2.status != 200 && f2.status != 201 {
		t.Errorf("the retried finish: HTTP %d %s", f2.status, f2.body)
	} else {
		a, b := decodeAs[wire.FileResult](t, f1), decodeAs[wire.FileResult](t, f2)
		if a.Rev != b.Rev || a.ID != b.ID || a.Seq != b.Seq || a.Hash != b.Hash {
			t.Errorf("the retry answered %+v, the first %+v", b, a)
		}
	}
	if revs := alice.history("/up.bin"); len(revs) != 1 {
		t.Errorf("the upload's file has %d revisions", len(revs))
	}

	for _, tc := range []struct{ name, key string }{
		{"too long", strings.Repeat("k", 81)},
		{"a space", "a key"},
		{"non-ASCII", "clé"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := alice.put("/bad-key.txt", data, map[string]string{IdempotencyHeader: tc.key})
			want(t, "put", a, 400, "invalid_argument")
			want(t, "commit", alice.postJSON("/v1/commit", req, map[string]string{IdempotencyHeader: tc.key}), 400, "invalid_argument")
		})
	}
	want(t, "nothing committed with a bad key", alice.do("GET", "/v1/files/bad-key.txt", nil, nil), 404, "not_found")
	want(t, "an 80-character key", alice.put("/ok-key.txt", data, map[string]string{IdempotencyHeader: strings.Repeat("k", 80)}), 201, "")
}

// TestRetriedFinishAnswersAsFirst: the retry of a finish that created a
// file answers 201, as the first attempt did.
func TestRetriedFinishAnswersAsFirst(t *testing.T) {
	e := newEnv(t, envOpts{})
	alice := e.user("alice")
	id := alice.createUpload(wire.UploadRequest{Path: "/up.bin"})
	want(t, "append", alice.appendAt(id, 0, []byte("x")), 200, "")
	key := map[string]string{IdempotencyHeader: "fin-1"}
	want(t, "finish", alice.do("POST", "/v1/uploads/"+id+"/finish", nil, key), 201, "")
	want(t, "the retried finish", alice.do("POST", "/v1/uploads/"+id+"/finish", nil, key), 201, "")
}
