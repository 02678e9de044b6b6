package gateway

import (
	"bytes"
	"strconv"
	"testing"

	"github.com/coffer-dev/coffer/internal/cdc"
	"github.com/coffer-dev/coffer/internal/wire"
	"github.com/coffer-dev/coffer/raftmeta"
)

// createUpload opens a resumable upload and returns its ID.
func (s *sess) createUpload(req wire.UploadRequest) string {
	s.e.t.Helper()
	a := s.postJSON("/v1/uploads", req, nil)
	if a.status != 201 {
		s.e.t.Fatalf("create upload: HTTP %d %s", a.status, a.body)
	}
	u := decodeAs[wire.Upload](s.e.t, a)
	if len(u.ID) != 32 || u.Offset != 0 || a.hdr.Get("Location") != "/v1/uploads/"+u.ID || a.hdr.Get(OffsetHeader) != "0" {
		s.e.t.Fatalf("create upload answered %s, headers %v", a.body, a.hdr)
	}
	return u.ID
}

// appendAt appends data at off.
func (s *sess) appendAt(id string, off int64, data []byte) answer {
	s.e.t.Helper()
	return s.do("PATCH", "/v1/uploads/"+id, bytes.NewReader(data), map[string]string{OffsetHeader: strconv.FormatInt(off, 10)})
}

// uploadOffset returns an upload's offset (failing if it is not there).
func (s *sess) uploadOffset(id string) int64 {
	s.e.t.Helper()
	a := s.do("GET", "/v1/uploads/"+id, nil, nil)
	if a.status != 200 {
		s.e.t.Fatalf("get upload: HTTP %d %s", a.status, a.body)
	}
	u := decodeAs[wire.Upload](s.e.t, a)
	if a.hdr.Get(OffsetHeader) != strconv.FormatInt(u.Offset, 10) {
		s.e.t.Errorf("Upload-Offset %q, body offset %d", a.hdr.Get(OffsetHeader), u.Offset)
	}
	return u.Offset
}

func TestResumableUpload(t *testing.T) {
	e := newEnv(t, envOpts{})
	alice := e.user("alice")
	parts := [][]byte{randBytes(1000), randBytes(1), randBytes(70000)}
	var all []byte
	for _, p := range parts {
		all = append(all, p...)
	}
	id := alice.createUpload(wire.UploadRequest{Path: "/up/file.bin", Mode: 0o600, Mtime: 42})
	var off int64
	for i, p := range parts {
		a := alice.appendAt(id, off, p)
		off += int64(len(p))
		if want(t, "append "+strconv.Itoa(i), a, 200, "") {
			if u := decodeAs[wire.Upload](t, a); u.Offset != off || u.ID != id || u.Path != "/up/file.bin" || a.hdr.Get(OffsetHeader) != strconv.FormatInt(off, 10) {
				t.Errorf("append %d answered %s", i, a.body)
			}
		}
		if got := alice.uploadOffset(id); got != off {
			t.Errorf("after append %d: offset %d, want %d", i, got, off)
		}
		if i == 0 {
			want(t, "not a file before finish", alice.do("GET", "/v1/files/up/file.bin", nil, nil), 404, "not_found")
		}
	}
	for _, wrong := range []int64{0, off - 1, off + 1} {
		a := alice.appendAt(id, wrong, []byte("zz"))
		if want(t, "append at "+strconv.FormatInt(wrong, 10), a, 409, "offset_mismatch") {
			if a.json()["offset"] != float64(off) || a.hdr.Get(OffsetHeader) != strconv.FormatInt(off, 10) {
				t.Errorf("offset_mismatch answer %s, header %q", a.body, a.hdr.Get(OffsetHeader))
			}
		}
	}
	want(t, "append without an offset", alice.do("PATCH", "/v1/uploads/"+id, bytes.NewReader([]byte("x")), nil), 400, "invalid_argument")
	if got := alice.uploadOffset(id); got != off {
		t.Fatalf("refused appends moved the offset to %d", got)
	}

	a := alice.postJSON("/v1/uploads/"+id+"/finish", wire.FinishRequest{Hash: sha([]byte("not it"))}, nil)
	want(t, "finish with a wrong hash", a, 400, "hash_mismatch")
	if got := alice.uploadOffset(id); got != off {
		t.Errorf("after a refused finish: offset %d", got)
	}
	want(t, "finish with a bad body", alice.do("POST", "/v1/uploads/"+id+"/finish", bytes.NewReader([]byte(`{"sha":1}`)), nil), 400, "invalid_argument")

	a = alice.postJSON("/v1/uploads/"+id+"/finish", wire.FinishRequest{Hash: sha(all)}, nil)
	if want(t, "finish", a, 201, "") {
		r := decodeAs[wire.FileResult](t, a)
		if r.Rev != 1 || r.Size == nil || *r.Size != int64(len(all)) || r.Hash != sha(all) || r.Path != "/up/file.bin" || a.hdr.Get("ETag") != `"1"` {
			t.Errorf("finish answered %s", a.body)
		}
	}
	g := alice.do("GET", "/v1/files/up/file.bin", nil, nil)
	if !bytes.Equal(g.body, all) || g.hdr.Get(HeaderSHA256) != sha(all) || g.hdr.Get(HeaderMode) != "600" || g.hdr.Get(HeaderMtime) != "42" {
		t.Errorf("the file: HTTP %d, %d bytes, headers %v", g.status, len(g.body), g.hdr)
	}
	want(t, "the finished upload", alice.do("GET", "/v1/uploads/"+id, nil, nil), 404, "not_found")
	want(t, "finish again", alice.do("POST", "/v1/uploads/"+id+"/finish", nil, nil), 404, "not_found")
	want(t, "append after finish", alice.appendAt(id, off, []byte("x")), 404, "not_found")

	// A finish whose precondition fails leaves the upload for another try.
	id2 := alice.createUpload(wire.UploadRequest{Path: "/up/file.bin", IfNoneMatch: true})
	want(t, "append", alice.appendAt(id2, 0, []byte("second")), 200, "")
	a = alice.do("POST", "/v1/uploads/"+id2+"/finish", nil, nil)
	if want(t, "finish over an existing file", a, 409, "conflict") && a.json()["current_rev"] != float64(1) {
		t.Errorf("conflict answer %s", a.body)
	}
	if got := alice.uploadOffset(id2); got != 6 {
		t.Errorf("after the failed finish: offset %d", got)
	}
	if g := alice.do("GET", "/v1/files/up/file.bin", nil, nil); !bytes.Equal(g.body, all) {
		t.Errorf("the file changed")
	}
	// Delete it; then it is gone.
	want(t, "delete upload", alice.do("DELETE", "/v1/uploads/"+id2, nil, nil), 200, "")
	want(t, "get deleted upload", alice.do("GET", "/v1/uploads/"+id2, nil, nil), 404, "not_found")
	want(t, "delete again", alice.do("DELETE", "/v1/uploads/"+id2, nil, nil), 404, "not_found")

	// An empty upload finishes into an empty file; one with If-Match works.
	id3 := alice.createUpload(wire.UploadRequest{Path: "/up/file.bin", IfMatch: 1})
	a = alice.do("POST", "/v1/uploads/"+id3+"/finish", nil, nil)
	if want(t, "finish an empty upload", a, 200, "") && decodeAs[wire.FileResult](t, a).Rev != 2 {
		t.Errorf("finish answered %s", a.body)
	}
	if g := alice.do("GET", "/v1/files/up/file.bin", nil, nil); g.status != 200 || len(g.body) != 0 || g.hdr.Get(HeaderSHA256) != sha(nil) {
		t.Errorf("the empty file: %d, %d bytes", g.status, len(g.body))
	}

	for _, tc := range []struct {
		name, method, path, body string
		status                   int
		code                     string
	}{
		{"create with a bad path", "POST", "/v1/uploads", `{"path":"a/../b"}`, 400, "invalid_path"},
		{"create with both preconditions", "POST", "/v1/uploads", `{"path":"/a","if_match":1,"if_none_match":true}`, 400, "invalid_argument"},
		{"create with a bad mode", "POST", "/v1/uploads", `{"path":"/a","mode":65535}`, 400, "invalid_argument"},
		{"create with an unknown field", "POST", "/v1/uploads", `{"path":"/a","size":3}`, 400, "invalid_argument"},
		{"a malformed id", "GET", "/v1/uploads/xyz", "", 404, "not_found"},
		{"an upper-case id", "GET", "/v1/uploads/" + "ABCDEF0123456789ABCDEF0123456789", "", 404, "not_found"},
		{"an unknown id", "GET", "/v1/uploads/" + "abcdef0123456789abcdef0123456789", "", 404, "not_found"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			want(t, tc.name, alice.do(tc.method, tc.path, bytes.NewReader([]byte(tc.body)), nil), tc.status, tc.code)
		})
	}
}

// TestCutOffAppendKeepsWholeBlocks: an append whose body breaks off keeps
// the whole blocks received; the client resumes from the offset.
func TestCutOffAppendKeepsWholeBlocks(t *testing.T) {
	e := newEnv(t, envOpts{configure: func(c *Config) { c.Chunking = cdc.Config{Min: 64, Avg: 128, Max: 256} }})
	alice := e.user("alice")
	data := randBytes(64 << 10)
	id := alice.createUpload(wire.UploadRequest{Path: "/cut.bin"})
	const sent = 40 << 10
	a := alice.cutOff("PATCH", "/v1/uploads/"+id, map[string]string{OffsetHeader: "0"}, len(data), data[:sent])
	want(t, "the cut-off append", a, 400, "incomplete_body")
	off := alice.uploadOffset(id)
	if off <= 0 || off > sent {
		t.Fatalf("after the cut the upload is at %d, want within (0, %d]", off, sent)
	}
	if a.json()["offset"] != float64(off) || a.hdr.Get(OffsetHeader) != strconv.FormatInt(off, 10) {
		t.Errorf("the cut-off answer %s (Upload-Offset %q), the upload is at %d", a.body, a.hdr.Get(OffsetHeader), off)
	}
	t.Logf("kept %d of %d bytes sent", off, sent)
	want(t, "resume", alice.appendAt(id, off, data[off:]), 200, "")
	a = alice.postJSON("/v1/uploads/"+id+"/finish", wire.FinishRequest{Hash: sha(data)}, nil)
	want(t, "finish", a, 201, "")
	if g := alice.do("GET", "/v1/files/cut.bin", nil, nil); !bytes.Equal(g.body, data) {
		t.Errorf("the file: HTTP %d, %d bytes, want the %d sent", g.status, len(g.body), len(data))
	}
}

// TestUploadSurvivesGatewayRestart: the session lives in the shard, so a
// new gateway (another Server over the same shard and blocks) continues it.
func TestUploadSurvivesGatewayRestart(t *testing.T) {
	e := newEnv(t, envOpts{})
	alice := e.user("alice")
	p1, p2 := randBytes(3000), randBytes(5000)
	id := alice.createUpload(wire.UploadRequest{Path: "/restart.bin", Mode: 0o640})
	want(t, "append via the first gateway", alice.appendAt(id, 0, p1), 200, "")
	e.ts.CloseClientConnections()

	other := alice.via(e.secondGateway())
	if got := other.uploadOffset(id); got != int64(len(p1)) {
		t.Fatalf("the new gateway sees offset %d, want %d", got, len(p1))
	}
	want(t, "append via the new gateway", other.appendAt(id, int64(len(p1)), p2), 200, "")
	all := append(append([]byte{}, p1...), p2...)
	a := other.postJSON("/v1/uploads/"+id+"/finish", wire.FinishRequest{Hash: sha(all)}, nil)
	want(t, "finish via the new gateway", a, 201, "")
	g := alice.do("GET", "/v1/files/restart.bin", nil, nil)
	if !bytes.Equal(g.body, all) || g.hdr.Get(HeaderMode) != "640" {
		t.Errorf("the file: HTTP %d, %d bytes, mode %q", g.status, len(g.body), g.hdr.Get(HeaderMode))
	}
	var st raftmeta.Entry = decodeAs[raftmeta.Entry](t, other.do("GET", "/v1/stat/restart.bin", nil, nil))
	if st.Hash.String() != sha(all) || st.Size != int64(len(all)) {
		t.Errorf("stat %+v", st)
	}
}

// TestUploadMaxFileSize: an append that would take the upload past
// MaxFileSize is refused and keeps nothing of its body.
func TestUploadMaxFileSize(t *testing.T) {
	e := newEnv(t, envOpts{configure: func(c *Config) { c.MaxFileSize = 1000 }})
	alice := e.user("alice")
	data := randBytes(1000)
	id := alice.createUpload(wire.UploadRequest{Path: "/limited.bin"})
	want(t, "append 600", alice.appendAt(id, 0, data[:600]), 200, "")
	want(t, "append 401 more", alice.appendAt(id, 600, randBytes(401)), 413, "too_large")
	if got := alice.uploadOffset(id); got != 600 {
		t.Fatalf("after the refused append: offset %d", got)
	}
	want(t, "append the last 400", alice.appendAt(id, 600, data[600:]), 200, "")
	want(t, "finish", alice.postJSON("/v1/uploads/"+id+"/finish", wire.FinishRequest{Hash: sha(data)}, nil), 201, "")
	if g := alice.do("GET", "/v1/files/limited.bin", nil, nil); !bytes.Equal(g.body, data) {
		t.Errorf("the file: HTTP %d, %d bytes", g.status, len(g.body))
	}
}
