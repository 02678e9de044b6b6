package gateway

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/coffer-dev/coffer/internal/wire"
	"github.com/coffer-dev/coffer/raftmeta"
)

func (s *sess) missing(refs ...string) []string {
	s.e.t.Helper()
	a := s.postJSON("/v1/blocks/missing", wire.MissingRequest{Refs: refs}, nil)
	if a.status != 200 {
		s.e.t.Fatalf("missing: HTTP %d %s", a.status, a.body)
	}
	m := decodeAs[wire.MissingResponse](s.e.t, a).Missing
	sort.Strings(m)
	return m
}

// putBlock uploads one block and returns its receipt.
func (s *sess) putBlock(data []byte) string {
	s.e.t.Helper()
	a := s.do("PUT", "/v1/blocks/"+sha(data), bytes.NewReader(data), nil)
	if a.status != 200 {
		s.e.t.Fatalf("put block: HTTP %d %s", a.status, a.body)
	}
	rc := decodeAs[wire.BlockReceipt](s.e.t, a)
	if rc.Ref != sha(data) || rc.Size != int64(len(data)) || !strings.HasPrefix(rc.Receipt, "r1.") {
		s.e.t.Fatalf("put block answered %+v", rc)
	}
	return rc.Receipt
}

// putOp is a commit op putting data as one block at p.
func putOp(p string, data []byte) wire.Op {
	return wire.Op{Kind: "put", Path: p, Size: int64(len(data)), Hash: sha(data), Mode: 0o644,
		Blocks: []wire.Block{{Ref: sha(data), Size: int64(len(data))}}}
}

func sorted(s ...string) []string {
	sort.Strings(s)
	return s
}

// TestMissingBlocksPerNamespace: dedup answers about the caller's own
// namespace only.
func TestMissingBlocksPerNamespace(t *testing.T) {
	e := newEnv(t, envOpts{})
	alice, bob := e.user("alice"), e.user("bob")
	data, other := randBytes(5000), randBytes(300)
	ref, oref := sha(data), sha(other) // small files are one block each
	if got := alice.missing(ref, oref); !equal(got, sorted(ref, oref)) {
		t.Errorf("new user: missing %v", got)
	}
	if got := alice.missing(); len(got) != 0 {
		t.Errorf("no refs: missing %v", got)
	}
	want(t, "put", alice.put("/a.bin", data, nil), 201, "")
	if got := alice.missing(ref, oref); !equal(got, []string{oref}) {
		t.Errorf("alice after her put: missing %v", got)
	}
	if got := bob.missing(ref, oref); !equal(got, sorted(ref, oref)) {
		t.Errorf("bob (alice stores the bytes): missing %v", got)
	}
	// bob uploads the same bytes: now they are his too.
	want(t, "bob's put", bob.put("/mine.bin", data, nil), 201, "")
	if got := bob.missing(ref); len(got) != 0 {
		t.Errorf("bob after his put: missing %v", got)
	}
	// A deleted file's retained revisions still reference its blocks.
	want(t, "delete", alice.do("DELETE", "/v1/files/a.bin", nil, nil), 200, "")
	if got := alice.missing(ref); len(got) != 0 {
		t.Errorf("alice after the delete: missing %v", got)
	}
	for _, tc := range []struct {
		name, body string
		status     int
		code       string
	}{
		{"bad ref", `{"refs":["xyz"]}`, 400, "invalid_ref"},
		{"not json", `refs`, 400, "invalid_argument"},
		{"unknown field", `{"refs":[],"x":1}`, 400, "invalid_argument"},
	} {
		want(t, tc.name, alice.do("POST", "/v1/blocks/missing", strings.NewReader(tc.body), nil), tc.status, tc.code)
	}
}

func equal(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestPutBlock(t *testing.T) {
	e := newEnv(t, envOpts{})
	alice := e.user("alice")
	data := randBytes(1000)
	big := randBytes(maxBlockBody + 1)
	for _, tc := range []struct {
		name, ref string
		body      []byte
		status    int
		code      string
	}{
		{"wrong hash", sha([]byte("something else")), data, 400, "hash_mismatch"},
		{"bad ref", "not-a-ref", data, 400, "invalid_ref"},
		{"too big", sha(big), big, 413, "too_large"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			want(t, "put block", alice.do("PUT", "/v1/blocks/"+tc.ref, bytes.NewReader(tc.body), nil), tc.status, tc.code)
		})
	}
	// Too big without a Content-Length (chunked): read up to the limit.
	want(t, "too big, chunked", alice.do("PUT", "/v1/blocks/"+sha(big), onlyReader{bytes.NewReader(big)}, nil), 413, "too_large")
	puts := e.blocks.putCount()
	alice.putBlock(data)
	if e.blocks.putCount() != puts+1 {
		t.Errorf("the block was not stored")
	}
	if got, err := e.blocks.Get(t.Context(), mustRef(t, sha(data))); err != nil || !bytes.Equal(got, data) {
		t.Errorf("stored block: %v", err)
	}
	// A receipt does not make the block referenced: it is still missing
	// for the namespace until a commit names it.
	if got := alice.missing(sha(data)); len(got) != 1 {
		t.Errorf("missing after the block upload: %v", got)
	}
}

// onlyReader hides a reader's type, so the request is sent chunked.
type onlyReader struct{ r *bytes.Reader }

func (o onlyReader) Read(p []byte) (int, error) { return o.r.Read(p) }

// TestCommitNeedsReceipts: a commit may name a block its namespace does not
// reference only with a valid receipt of the caller's for that block and
// size.
func TestCommitNeedsReceipts(t *testing.T) {
	e := newEnv(t, envOpts{})
	alice, bob := e.user("alice"), e.user("bob")
	data := randBytes(2000)
	rcBob := bob.putBlock(data)
	rcAlice := alice.putBlock(data)
	headBefore := bob.head()

	// alice's receipt re-addressed to bob's namespace: the MAC no longer
	// fits.
	raw, err := base64.RawURLEncoding.DecodeString(strings.TrimPrefix(rcAlice, "r1."))
	if err != nil || len(raw) != 72 {
		t.Fatalf("receipt %q: %v", rcAlice, err)
	}
	binary.BigEndian.PutUint64(raw, decodeAs[Whoami](t, bob.do("GET", "/v1/whoami", nil, nil)).Namespace)
	tampered := "r1." + base64.RawURLEncoding.EncodeToString(raw)
	wrongSize := putOp("/f.bin", data)
	wrongSize.Size++
	wrongSize.Blocks[0].Size++
	twoSizes := putOp("/f.bin", data)
	twoSizes.Blocks = append(twoSizes.Blocks, wire.Block{Ref: sha(data), Size: int64(len(data)) + 1})
	twoSizes.Size = 2*int64(len(data)) + 1
	for _, tc := range []struct {
		name     string
		ops      []wire.Op
		receipts []string
		status   int
		code     string
	}{
		{"no receipt", []wire.Op{putOp("/f.bin", data)}, nil, 404, "not_found"},
		{"another user's receipt", []wire.Op{putOp("/f.bin", data)}, []string{rcAlice}, 400, "invalid_argument"},
		{"another user's receipt beside his own", []wire.Op{putOp("/f.bin", data)}, []string{rcBob, rcAlice}, 400, "invalid_argument"},
		{"a receipt for a different size", []wire.Op{wrongSize}, []string{rcBob}, 400, "invalid_argument"},
		{"a block named with two sizes", []wire.Op{twoSizes}, []string{rcBob}, 400, "invalid_argument"},
		{"a receipt re-addressed", []wire.Op{putOp("/f.bin", data)}, []string{tampered}, 400, "invalid_argument"},
		{"not a receipt", []wire.Op{putOp("/f.bin", data)}, []string{"hello"}, 400, "invalid_argument"},
		{"a receipt for another block", []wire.Op{putOp("/g.bin", []byte("other"))}, []string{rcBob}, 404, "not_found"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := bob.postJSON("/v1/commit", wire.CommitRequest{Ops: tc.ops, Receipts: tc.receipts}, nil)
			want(t, "commit", a, tc.status, tc.code)
		})
	}
	want(t, "nothing committed", bob.do("GET", "/v1/files/f.bin", nil, nil), 404, "not_found")
	if h := bob.head(); h != headBefore {
		t.Errorf("journal head moved from %d to %d", headBefore, h)
	}

	a := bob.postJSON("/v1/commit", wire.CommitRequest{Ops: []wire.Op{putOp("/f.bin", data)}, Receipts: []string{rcBob}}, nil)
	if want(t, "commit with his receipt", a, 200, "") {
		res := decodeAs[raftmeta.CommitResult](t, a)
		if len(res.Ops) != 1 || res.Ops[0].Rev != 1 || res.Ops[0].Path != "/f.bin" || res.Seq != headBefore+1 {
			t.Errorf("commit answered %+v", res)
		}
	}
	if g := bob.do("GET", "/v1/files/f.bin", nil, nil); !bytes.Equal(g.body, data) {
		t.Errorf("the committed file: %d, %d bytes", g.status, len(g.body))
	}
	// Now his namespace references the block: no receipt needed.
	a = bob.postJSON("/v1/commit", wire.CommitRequest{Ops: []wire.Op{putOp("/copy.bin", data)}}, nil)
	want(t, "commit of a referenced block", a, 200, "")
	// alice's namespace still does not.
	want(t, "alice without a receipt", alice.postJSON("/v1/commit", wire.CommitRequest{Ops: []wire.Op{putOp("/f.bin", data)}}, nil), 404, "not_found")
}

func TestExpiredReceipt(t *testing.T) {
	e := newEnv(t, envOpts{})
	alice := e.user("alice")
	data := randBytes(700)
	rc := alice.putBlock(data)
	e.clk.add(ReceiptTTL - time.Minute)
	alice = e.login("alice", "alice-pw") // the token expired meanwhile
	fresh := alice.putBlock([]byte("fresh"))
	e.clk.add(2 * time.Minute)
	a := alice.postJSON("/v1/commit", wire.CommitRequest{Ops: []wire.Op{putOp("/f.bin", data)}, Receipts: []string{rc}}, nil)
	if want(t, "commit with an expired receipt", a, 400, "invalid_argument") && !strings.Contains(a.json()["message"].(string), "expired") {
		t.Errorf("message: %s", a.body)
	}
	want(t, "nothing committed", alice.do("GET", "/v1/files/f.bin", nil, nil), 404, "not_found")
	want(t, "a receipt within its life", alice.postJSON("/v1/commit", wire.CommitRequest{Ops: []wire.Op{putOp("/fresh", []byte("fresh"))}, Receipts: []string{fresh}}, nil), 200, "")
}

// TestCommitBatchAtomic: a batch whose second op fails applies nothing.
func TestCommitBatchAtomic(t *testing.T) {
	e := newEnv(t, envOpts{})
	alice := e.user("alice")
	want(t, "put", alice.put("/exists.txt", []byte("x"), nil), 201, "")
	headBefore := alice.head()
	a := alice.postJSON("/v1/commit", wire.CommitRequest{Ops: []wire.Op{
		{Kind: "mkdir", Path: "/batch/dir"},
		{Kind: "put", Path: "/exists.txt", IfNoneMatch: true, Size: 1, Hash: sha([]byte("y")), Blocks: []wire.Block{{Ref: sha([]byte("x")), Size: 1}}},
		{Kind: "delete", Path: "/exists.txt"},
	}}, nil)
	if want(t, "batch", a, 409, "conflict") {
		m := a.json()
		if m["op"] != float64(1) || m["path"] != "/exists.txt" || m["current_rev"] != float64(1) {
			t.Errorf("batch error %s", a.body)
		}
	}
	want(t, "the first op's folder", alice.do("GET", "/v1/stat/batch/dir", nil, nil), 404, "not_found")
	want(t, "the first op's parent", alice.do("GET", "/v1/stat/batch", nil, nil), 404, "not_found")
	if g := alice.do("GET", "/v1/files/exists.txt", nil, nil); string(g.body) != "x" {
		t.Errorf("the file changed: %q", g.body)
	}
	if h := alice.head(); h != headBefore {
		t.Errorf("journal head moved from %d to %d", headBefore, h)
	}
	// The first op failing names op 0; an unknown kind is refused too.
	a = alice.postJSON("/v1/commit", wire.CommitRequest{Ops: []wire.Op{{Kind: "delete", Path: "/none"}, {Kind: "mkdir", Path: "/ok"}}}, nil)
	if want(t, "first op fails", a, 404, "not_found") && a.json()["op"] != float64(0) {
		t.Errorf("op in %s", a.body)
	}
	want(t, "unknown kind", alice.postJSON("/v1/commit", wire.CommitRequest{Ops: []wire.Op{{Kind: "explode", Path: "/x"}}}, nil), 400, "invalid_argument")
	want(t, "no ops", alice.postJSON("/v1/commit", wire.CommitRequest{}, nil), 400, "invalid_argument")
	want(t, "bad hash", alice.postJSON("/v1/commit", wire.CommitRequest{Ops: []wire.Op{{Kind: "put", Path: "/x", Hash: "zz"}}}, nil), 400, "invalid_argument")
	// A batch that applies: both ops, one journal record.
	a = alice.postJSON("/v1/commit", wire.CommitRequest{Ops: []wire.Op{{Kind: "mkdir", Path: "/two"}, {Kind: "move", Path: "/exists.txt", To: "/two/moved.txt"}}}, nil)
	if want(t, "good batch", a, 200, "") {
		res := decodeAs[raftmeta.CommitResult](t, a)
		if len(res.Ops) != 2 || res.Seq != headBefore+1 || res.Ops[1].Path != "/two/moved.txt" {
			t.Errorf("batch answered %+v", res)
		}
	}
}
