package gateway

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"testing"
)

func TestSmokePutGet(t *testing.T) {
	e := newEnv(t, envOpts{})
	alice := e.user("alice")
	data := make([]byte, 5<<20+123)
	rand.Read(data)
	a := alice.do("PUT", "/v1/files/docs/a.bin", bytes.NewReader(data), map[string]string{"If-None-Match": "*"})
	if a.status != 201 {
		t.Fatalf("put: %d %s", a.status, a.body)
	}
	g := alice.do("GET", "/v1/files/docs/a.bin", nil, nil)
	if g.status != 200 || !bytes.Equal(g.body, data) {
		t.Fatalf("get: %d, %d bytes", g.status, len(g.body))
	}
	sum := sha256.Sum256(data)
	if g.hdr.Get(HeaderSHA256) != hex.EncodeToString(sum[:]) || g.hdr.Get("ETag") != `"1"` {
		t.Fatalf("headers %v", g.hdr)
	}
	r := alice.do("GET", "/v1/files/docs/a.bin", nil, map[string]string{"Range": "bytes=1048570-1048580"})
	if r.status != 206 || !bytes.Equal(r.body, data[1048570:1048581]) {
		t.Fatalf("range: %d %q", r.status, r.body)
	}
	c := alice.do("PUT", "/v1/files/docs/a.bin", bytes.NewReader([]byte("x")), map[string]string{"If-Match": "7"})
	if c.status != 409 || c.json()["current_rev"] != float64(1) {
		t.Fatalf("conflict: %d %s", c.status, c.body)
	}
}
