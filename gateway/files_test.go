package gateway

import (
	"bytes"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"strconv"
	"strings"
	"testing"

	"github.com/coffer-dev/coffer/internal/cdc"
	"github.com/coffer-dev/coffer/internal/wire"
	"github.com/coffer-dev/coffer/raftmeta"
)

// TestFileRoundTrip puts files of edge sizes and reads back the same bytes
// with the same metadata.
func TestFileRoundTrip(t *testing.T) {
	e := newEnv(t, envOpts{})
	alice := e.user("alice")
	for _, tc := range []struct {
		name string
		size int
	}{
		{"empty", 0},
		{"one byte", 1},
		{"exactly 4 MiB", 4 << 20},
	} {
		t.Run(tc.name, func(t *testing.T) {
			data := randBytes(tc.size)
			p := "/rt/" + strings.ReplaceAll(tc.name, " ", "-") + ".bin"
			a := alice.put(p, data, map[string]string{"If-None-Match": "*"})
			if !want(t, "put", a, 201, "") {
				return
			}
			res := decodeAs[wire.FileResult](t, a)
			if res.Path != p || res.Rev != 1 || res.Size == nil || *res.Size != int64(tc.size) || res.Hash != sha(data) || res.ID == 0 || res.Seq == 0 {
				t.Errorf("put answered %+v", res)
			}
			if a.hdr.Get("ETag") != `"1"` {
				t.Errorf("put ETag %q", a.hdr.Get("ETag"))
			}
			g := alice.do("GET", "/v1/files"+p, nil, nil)
			if !want(t, "get", g, 200, "") {
				return
			}
			if !bytes.Equal(g.body, data) {
				t.Errorf("get returned %d bytes, want %d equal ones", len(g.body), len(data))
			}
			for h, v := range map[string]string{
				"ETag": `"1"`, HeaderRev: "1", HeaderID: strconv.FormatUint(res.ID, 10), HeaderSHA256: sha(data),
				"Content-Length": strconv.Itoa(tc.size), "Content-Type": "application/octet-stream",
			} {
				if g.hdr.Get(h) != v {
					t.Errorf("get %s = %q, want %q", h, g.hdr.Get(h), v)
				}
			}
		})
	}
}

// TestLargeFileThroughUploadSession puts a file of more than 1024 blocks:
// the gateway commits it through an upload session in batches.
func TestLargeFileThroughUploadSession(t *testing.T) {
	e := newEnv(t, envOpts{configure: func(c *Config) { c.Chunking = cdc.Config{Min: 64, Avg: 128, Max: 256} }})
	alice := e.user("alice")
	data := randBytes(400 << 10)
	a := alice.put("/big.bin", data, map[string]string{HeaderSHA256: sha(data)})
	if !want(t, "put", a, 201, "") {
		return
	}
	if res := decodeAs[wire.FileResult](t, a); res.Rev != 1 || res.Size == nil || *res.Size != int64(len(data)) || res.Hash != sha(data) {
		t.Errorf("put answered %+v", res)
	}
	st := alice.do("GET", "/v1/stat/big.bin", nil, nil)
	want(t, "stat", st, 200, "")
	ent := decodeAs[raftmeta.Entry](t, st)
	if len(ent.Blocks) <= blocksPerAppend {
		t.Fatalf("the file has %d blocks; the test needs more than %d", len(ent.Blocks), blocksPerAppend)
	}
	var sum int64
	for _, b := range ent.Blocks {
		sum += b.Size
	}
	if sum != int64(len(data)) || ent.Size != sum {
		t.Errorf("blocks add up to %d, size %d, want %d", sum, ent.Size, len(data))
	}
	g := alice.do("GET", "/v1/files/big.bin", nil, nil)
	if want(t, "get", g, 200, "") && !bytes.Equal(g.body, data) {
		t.Errorf("get returned %d bytes, not the %d put", len(g.body), len(data))
	}
	// A range across many small blocks.
	r := alice.do("GET", "/v1/files/big.bin", nil, map[string]string{"Range": "bytes=100000-300000"})
	if want(t, "range", r, 206, "") && !bytes.Equal(r.body, data[100000:300001]) {
		t.Errorf("range returned %d wrong bytes", len(r.body))
	}
	// A second revision over it, also through a session.
	data2 := randBytes(300 << 10)
	a = alice.put("/big.bin", data2, map[string]string{"If-Match": "1"})
	want(t, "put v2", a, 200, "")
	if g := alice.do("GET", "/v1/files/big.bin", nil, nil); !bytes.Equal(g.body, data2) {
		t.Errorf("v2: HTTP %d, %d bytes", g.status, len(g.body))
	}
	if g := alice.do("GET", "/v1/files/big.bin?rev=1", nil, nil); !bytes.Equal(g.body, data) {
		t.Errorf("rev 1: HTTP %d, %d bytes", g.status, len(g.body))
	}
}

// TestLargePutConflictLeavesNoUpload: a large PUT whose precondition fails
// commits nothing and leaves no upload session behind (sessions count
// against MaxUploadsPerNamespace for 24 h).
func TestLargePutConflictLeavesNoUpload(t *testing.T) {
	e := newEnv(t, envOpts{configure: func(c *Config) { c.Chunking = cdc.Config{Min: 64, Avg: 128, Max: 256} }})
	alice := e.user("alice")
	want(t, "put small", alice.put("/taken.bin", []byte("x"), nil), 201, "")
	data := randBytes(300 << 10)
	a := alice.put("/taken.bin", data, map[string]string{"If-None-Match": "*", IdempotencyHeader: "big-1"})
	if !want(t, "large put over an existing file", a, 409, "conflict") {
		return
	}
	if a.json()["current_rev"] != float64(1) {
		t.Errorf("current_rev in %s", a.body)
	}
	if g := alice.do("GET", "/v1/files/taken.bin", nil, nil); string(g.body) != "x" {
		t.Errorf("the old revision changed: %q", g.body)
	}
	id := uploadIDOf("k" + strconv.FormatUint(e.userID("alice"), 36) + ".big-1")
	want(t, "the PUT's upload session", alice.do("GET", "/v1/uploads/"+id, nil, nil), 404, "not_found")
}

func TestFileHeadersAndConditionalGets(t *testing.T) {
	e := newEnv(t, envOpts{})
	alice := e.user("alice")
	v1 := []byte("0123456789abcdefghijklmnopqrstuvwxyz")
	const mtime = "1700000000123456789"
	a := alice.put("/h/notes.txt", v1, map[string]string{HeaderMtime: mtime, HeaderMode: "755", HeaderSHA256: sha(v1)})
	if !want(t, "put", a, 201, "") {
		return
	}
	id := decodeAs[wire.FileResult](t, a).ID

	g := alice.do("GET", "/v1/files/h/notes.txt", nil, nil)
	want(t, "get", g, 200, "")
	for h, v := range map[string]string{
		"ETag": `"1"`, HeaderMtime: mtime, HeaderMode: "755", HeaderSHA256: sha(v1),
		HeaderID: strconv.FormatUint(id, 10), HeaderRev: "1", "Content-Type": "text/plain; charset=utf-8",
		"Accept-Ranges": "bytes",
	} {
		if g.hdr.Get(h) != v {
			t.Errorf("get %s = %q, want %q", h, g.hdr.Get(h), v)
		}
	}
	st := decodeAs[raftmeta.Entry](t, alice.do("GET", "/v1/stat/h/notes.txt", nil, nil))
	if st.Mode != 0o755 || strconv.FormatInt(st.Mtime, 10) != mtime || st.Size != int64(len(v1)) {
		t.Errorf("stat %+v", st)
	}

	h := alice.do("HEAD", "/v1/files/h/notes.txt", nil, nil)
	if want(t, "head", h, 200, "") && (len(h.body) != 0 || h.hdr.Get("Content-Length") != strconv.Itoa(len(v1)) || h.hdr.Get("ETag") != `"1"`) {
		t.Errorf("head: %d body bytes, headers %v", len(h.body), h.hdr)
	}

	r := alice.do("GET", "/v1/files/h/notes.txt", nil, map[string]string{"Range": "bytes=10-19"})
	if want(t, "range", r, 206, "") {
		if string(r.body) != string(v1[10:20]) || r.hdr.Get("Content-Range") != fmt.Sprintf("bytes 10-19/%d", len(v1)) {
			t.Errorf("range: %q, Content-Range %q", r.body, r.hdr.Get("Content-Range"))
		}
	}
	r = alice.do("GET", "/v1/files/h/notes.txt", nil, map[string]string{"Range": "bytes=-5"})
	if want(t, "suffix range", r, 206, "") && string(r.body) != string(v1[len(v1)-5:]) {
		t.Errorf("suffix range: %q", r.body)
	}
	m := alice.do("GET", "/v1/files/h/notes.txt", nil, map[string]string{"Range": "bytes=0-3,20-24"})
	if want(t, "multi-range", m, 206, "") {
		mt, params, err := mime.ParseMediaType(m.hdr.Get("Content-Type"))
		if err != nil || mt != "multipart/byteranges" {
			t.Fatalf("multi-range Content-Type %q", m.hdr.Get("Content-Type"))
		}
		mr := multipart.NewReader(bytes.NewReader(m.body), params["boundary"])
		var got []string
		for {
			part, err := mr.NextPart()
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(part)
			got = append(got, part.Header.Get("Content-Range")+"="+string(b))
		}
		wantParts := []string{fmt.Sprintf("bytes 0-3/%d=0123", len(v1)), fmt.Sprintf("bytes 20-24/%d=klmno", len(v1))}
		if fmt.Sprint(got) != fmt.Sprint(wantParts) {
			t.Errorf("parts %q, want %q", got, wantParts)
		}
	}
	want(t, "unsatisfiable range", alice.do("GET", "/v1/files/h/notes.txt", nil, map[string]string{"Range": "bytes=1000-2000"}), 416, "")

	nm := alice.do("GET", "/v1/files/h/notes.txt", nil, map[string]string{"If-None-Match": `"1"`})
	if want(t, "If-None-Match current", nm, 304, "") && len(nm.body) != 0 {
		t.Errorf("304 with a body %q", nm.body)
	}

	// A second revision; the old one stays readable by ?rev.
	v2 := []byte("second revision")
	a = alice.put("/h/notes.txt", v2, map[string]string{"If-Match": `"1"`})
	if want(t, "put v2", a, 200, "") && (decodeAs[wire.FileResult](t, a).Rev != 2 || a.hdr.Get("ETag") != `"2"`) {
		t.Errorf("put v2: %s ETag %q", a.body, a.hdr.Get("ETag"))
	}
	want(t, "If-None-Match stale", alice.do("GET", "/v1/files/h/notes.txt", nil, map[string]string{"If-None-Match": `"1"`}), 200, "")
	old := alice.do("GET", "/v1/files/h/notes.txt?rev=1", nil, nil)
	if want(t, "?rev=1", old, 200, "") {
		if !bytes.Equal(old.body, v1) || old.hdr.Get("ETag") != `"1"` || old.hdr.Get(HeaderMode) != "755" || old.hdr.Get(HeaderSHA256) != sha(v1) {
			t.Errorf("?rev=1: %q, headers %v", old.body, old.hdr)
		}
	}
	if cur := alice.do("GET", "/v1/files/h/notes.txt", nil, nil); !bytes.Equal(cur.body, v2) || cur.hdr.Get(HeaderMode) != "644" {
		t.Errorf("current: %q mode %q", cur.body, cur.hdr.Get(HeaderMode))
	}
	want(t, "?rev=2 with If-None-Match", alice.do("GET", "/v1/files/h/notes.txt?rev=2", nil, map[string]string{"If-None-Match": `"2"`}), 304, "")

	for _, tc := range []struct {
		name, method, path string
		hdr                map[string]string
		status             int
		code               string
	}{
		{"nonexistent revision", "GET", "/v1/files/h/notes.txt?rev=3", nil, 404, "not_found"},
		{"revision 0", "GET", "/v1/files/h/notes.txt?rev=0", nil, 400, "invalid_argument"},
		{"bad revision", "GET", "/v1/files/h/notes.txt?rev=x", nil, 400, "invalid_argument"},
		{"no such file", "GET", "/v1/files/h/none.txt", nil, 404, "not_found"},
		{"no such folder", "GET", "/v1/files/none/a.txt", nil, 404, "not_found"},
		{"a folder", "GET", "/v1/files/h", nil, 409, "is_a_folder"},
		{"a folder, HEAD", "HEAD", "/v1/files/h", nil, 409, ""},
		{"the root", "GET", "/v1/files/", nil, 409, "is_a_folder"},
		{"NUL in the path", "GET", "/v1/files/h/a%00b", nil, 400, "invalid_path"},
		{"invalid UTF-8", "GET", "/v1/files/h/%ff", nil, 400, "invalid_path"},
		{"put NUL in the path", "PUT", "/v1/files/h/a%00b", nil, 400, "invalid_path"},
		{"put to the root", "PUT", "/v1/files/", nil, 409, "is_a_folder"},
		{"put over a folder", "PUT", "/v1/files/h", nil, 409, "is_a_folder"},
		{"put under a file", "PUT", "/v1/files/h/notes.txt/x", nil, 409, "not_a_folder"},
		{"bad mode", "PUT", "/v1/files/h/m", map[string]string{HeaderMode: "rwx"}, 400, "invalid_argument"},
		{"mode too big", "PUT", "/v1/files/h/m", map[string]string{HeaderMode: "17777"}, 400, "invalid_argument"},
		{"bad mtime", "PUT", "/v1/files/h/m", map[string]string{HeaderMtime: "yesterday"}, 400, "invalid_argument"},
		{"bad sha256", "PUT", "/v1/files/h/m", map[string]string{HeaderSHA256: "abc"}, 400, "invalid_argument"},
		{"bad If-Match", "PUT", "/v1/files/h/m", map[string]string{"If-Match": "x"}, 400, "invalid_argument"},
		{"If-None-Match a revision", "PUT", "/v1/files/h/m", map[string]string{"If-None-Match": `"2"`}, 400, "invalid_argument"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := alice.do(tc.method, tc.path, strings.NewReader("body"), tc.hdr)
			want(t, tc.method+" "+tc.path, a, tc.status, tc.code)
		})
	}
	if revs := alice.history("/h/notes.txt"); len(revs) != 2 {
		t.Errorf("history has %d revisions, want 2", len(revs))
	}
	want(t, "refused puts created nothing", alice.do("GET", "/v1/stat/h/m", nil, nil), 404, "not_found")
}

// TestPutRefusals: a PUT refused for its content commits nothing and
// leaves the current revision as it was.
func TestPutRefusals(t *testing.T) {
	e := newEnv(t, envOpts{configure: func(c *Config) { c.MaxFileSize = 1000 }})
	alice := e.user("alice")
	old := []byte("the old revision")
	want(t, "put", alice.put("/f", old, nil), 201, "")
	headBefore := alice.head()

	for _, tc := range []struct {
		name    string
		body    io.Reader
		hdr     map[string]string
		status  int
		code    string
		newPath bool
	}{
		{"sha256 mismatch", bytes.NewReader([]byte("other bytes")), map[string]string{HeaderSHA256: sha([]byte("not them"))}, 400, "hash_mismatch", false},
		{"sha256 mismatch, new path", bytes.NewReader([]byte("other bytes")), map[string]string{HeaderSHA256: sha([]byte("not them"))}, 400, "hash_mismatch", true},
		{"over MaxFileSize, with length", bytes.NewReader(randBytes(1001)), nil, 413, "too_large", false},
		{"over MaxFileSize, chunked", io.MultiReader(bytes.NewReader(randBytes(1001))), nil, 413, "too_large", false},
		{"over MaxFileSize, new path", bytes.NewReader(randBytes(1001)), nil, 413, "too_large", true},
		{"If-None-Match on an existing file", strings.NewReader("x"), map[string]string{"If-None-Match": "*"}, 409, "conflict", false},
		{"If-Match of an old revision", strings.NewReader("x"), map[string]string{"If-Match": "7"}, 409, "conflict", false},
		{"If-Match and If-None-Match", strings.NewReader("x"), map[string]string{"If-Match": "1", "If-None-Match": "*"}, 400, "invalid_argument", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := "/v1/files/f"
			if tc.newPath {
				p = "/v1/files/new-" + strconv.Itoa(len(tc.name))
			}
			a := alice.do("PUT", p, tc.body, tc.hdr)
			want(t, "put", a, tc.status, tc.code)
			if tc.code == "conflict" && a.json()["current_rev"] != float64(1) {
				t.Errorf("conflict without current_rev 1: %s", a.body)
			}
			if tc.newPath {
				want(t, "the new path", alice.do("GET", p, nil, nil), 404, "not_found")
			}
		})
	}
	if g := alice.do("GET", "/v1/files/f", nil, nil); !bytes.Equal(g.body, old) || g.hdr.Get("ETag") != `"1"` {
		t.Errorf("the old revision changed: %q %v", g.body, g.hdr.Get("ETag"))
	}
	if revs := alice.history("/f"); len(revs) != 1 {
		t.Errorf("history has %d revisions, want 1", len(revs))
	}
	if h := alice.head(); h != headBefore {
		t.Errorf("journal head moved from %d to %d", headBefore, h)
	}
	want(t, "exactly MaxFileSize", alice.put("/max", randBytes(1000), nil), 201, "")
	// If-Match on a path that does not exist: the current revision is 0.
	a := alice.put("/nothing-here", []byte("x"), map[string]string{"If-Match": "1"})
	if want(t, "If-Match on nothing", a, 409, "conflict") {
		if _, ok := a.json()["current_rev"]; ok {
			t.Errorf("current_rev present for a missing file: %s", a.body)
		}
	}
}

func TestDeleteWithIfMatch(t *testing.T) {
	e := newEnv(t, envOpts{})
	alice := e.user("alice")
	want(t, "put 1", alice.put("/d.txt", []byte("1"), nil), 201, "")
	want(t, "put 2", alice.put("/d.txt", []byte("2"), nil), 200, "")
	a := alice.do("DELETE", "/v1/files/d.txt", nil, map[string]string{"If-Match": "1"})
	if want(t, "stale delete", a, 409, "conflict") && a.json()["current_rev"] != float64(2) {
		t.Errorf("current_rev in %s", a.body)
	}
	want(t, "still there", alice.do("GET", "/v1/files/d.txt", nil, nil), 200, "")
	a = alice.do("DELETE", "/v1/files/d.txt", nil, map[string]string{"If-Match": `"2"`})
	if want(t, "delete", a, 200, "") {
		if r := decodeAs[wire.FileResult](t, a); r.Rev != 3 || a.hdr.Get("ETag") != `"3"` {
			t.Errorf("delete answered %s, ETag %q", a.body, a.hdr.Get("ETag"))
		}
	}
	want(t, "get deleted", alice.do("GET", "/v1/files/d.txt", nil, nil), 404, "not_found")
	want(t, "delete again", alice.do("DELETE", "/v1/files/d.txt", nil, nil), 404, "not_found")
	want(t, "delete nothing", alice.do("DELETE", "/v1/files/none", nil, nil), 404, "not_found")
	if g := alice.do("GET", "/v1/files/d.txt?rev=2", nil, nil); g.status != 200 || string(g.body) != "2" {
		t.Errorf("rev 2 of the deleted file: %d %q", g.status, g.body)
	}
	want(t, "the deletion revision", alice.do("GET", "/v1/files/d.txt?rev=3", nil, nil), 404, "not_found")
	// A put over the deleted file continues its history: If-Match of the
	// tombstone works.
	a = alice.put("/d.txt", []byte("back"), map[string]string{"If-Match": "3"})
	if want(t, "put over the tombstone", a, 200, "") && decodeAs[wire.FileResult](t, a).Rev != 4 {
		t.Errorf("put over the tombstone: %s", a.body)
	}
}

// TestCutOffBodyCommitsNothing: a PUT whose connection breaks midway
// commits nothing; the old revision stays.
func TestCutOffBodyCommitsNothing(t *testing.T) {
	e := newEnv(t, envOpts{})
	alice := e.user("alice")
	old := []byte("old content")
	want(t, "put", alice.put("/cut.bin", old, nil), 201, "")
	headBefore := alice.head()
	putsBefore := e.blocks.putCount()

	a := alice.cutOff("PUT", "/v1/files/cut.bin", nil, 3<<20, randBytes(1<<20))
	want(t, "the cut-off PUT", a, 400, "incomplete_body")
	if g := alice.do("GET", "/v1/files/cut.bin", nil, nil); g.status != 200 || !bytes.Equal(g.body, old) || g.hdr.Get("ETag") != `"1"` {
		t.Errorf("after the cut: HTTP %d, %d bytes, ETag %q", g.status, len(g.body), g.hdr.Get("ETag"))
	}
	if revs := alice.history("/cut.bin"); len(revs) != 1 {
		t.Errorf("history has %d revisions, want 1", len(revs))
	}
	if h := alice.head(); h != headBefore {
		t.Errorf("journal head moved from %d to %d", headBefore, h)
	}
	t.Logf("%d blocks stored before the cut (garbage for the collector)", e.blocks.putCount()-putsBefore)
}

// TestBlockStoreFailure: a PUT whose blocks cannot be stored is 503 and
// commits nothing.
func TestBlockStoreFailure(t *testing.T) {
	e := newEnv(t, envOpts{})
	alice := e.user("alice")
	want(t, "put", alice.put("/f", []byte("v1"), nil), 201, "")
	e.blocks.mu.Lock()
	e.blocks.failPuts = true
	e.blocks.mu.Unlock()
	for _, p := range []string{"/f", "/g"} {
		a := alice.put(p, randBytes(1000), nil)
		if want(t, "put "+p, a, 503, "unavailable") && a.hdr.Get("Retry-After") == "" {
			t.Errorf("503 without Retry-After")
		}
	}
	a := alice.do("PUT", "/v1/blocks/"+sha([]byte("blk")), strings.NewReader("blk"), nil)
	want(t, "put block", a, 503, "unavailable")
	if g := alice.do("GET", "/v1/files/f", nil, nil); string(g.body) != "v1" {
		t.Errorf("the old revision changed: %d %q", g.status, g.body)
	}
	want(t, "the new path", alice.do("GET", "/v1/files/g", nil, nil), 404, "not_found")
	if revs := alice.history("/f"); len(revs) != 1 {
		t.Errorf("history has %d revisions, want 1", len(revs))
	}
}
