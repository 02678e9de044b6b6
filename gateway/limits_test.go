package gateway

import (
	"bytes"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/coffer-dev/coffer/internal/wire"
)

// TestMaxInFlight: beyond MaxInFlight a request is refused at once with
// 429 overloaded; long-polls do not count.
func TestMaxInFlight(t *testing.T) {
	e := newEnv(t, envOpts{configure: func(c *Config) { c.MaxInFlight = 1 }})
	alice := e.user("alice")

	// A PUT whose body is held open holds the one slot.
	pr, pw := io.Pipe()
	t.Cleanup(func() { pw.CloseWithError(io.ErrUnexpectedEOF) }) // before the server closes, should the test stop early
	type result struct {
		a   answer
		err error
	}
	done := make(chan result, 1)
	go func() {
		a, err := alice.tryDo("PUT", "/v1/files/slow.bin", pr, nil)
		done <- result{a, err}
	}()
	if _, err := pw.Write([]byte("first bytes ")); err != nil {
		t.Fatal(err)
	}
	// Nothing else is in flight: wait (without competing for the slot)
	// until the PUT holds it.
	waitFor(t, 10*time.Second, "the PUT to hold the slot", func() bool {
		select {
		case r := <-done:
			t.Fatalf("the held PUT ended: %v HTTP %d %s", r.err, r.a.status, r.a.body)
		default:
		}
		return len(e.gw.inflight) == 1
	})
	refused := alice.do("GET", "/v1/whoami", nil, nil)
	want(t, "a request while the PUT holds the slot", refused, 429, "overloaded")
	if refused.hdr.Get("Retry-After") != "1" {
		t.Errorf("429 with Retry-After %q", refused.hdr.Get("Retry-After"))
	}
	for _, p := range []string{"/v1/files/other", "/v1/changes", "/v1/admin/users"} {
		want(t, "GET "+p+" while busy", alice.do("GET", p, nil, nil), 429, "overloaded")
	}
	// A long-poll has its own bound.
	p := alice.do("GET", "/v1/changes?wait=50ms", nil, nil)
	want(t, "a long-poll while busy", p, 200, "")
	// Logins are not bounded by it (they are rate-limited instead).
	want(t, "a login while busy", (&sess{e: e}).do("POST", "/v1/login", strings.NewReader(`{"name":"alice","password":"alice-pw"}`), nil), 200, "")

	if _, err := pw.Write([]byte("last bytes")); err != nil {
		t.Fatal(err)
	}
	pw.Close()
	r := <-done
	if r.err != nil {
		t.Fatal(r.err)
	}
	want(t, "the slow PUT", r.a, 201, "")
	want(t, "whoami once free", alice.do("GET", "/v1/whoami", nil, nil), 200, "")
	if g := alice.do("GET", "/v1/files/slow.bin", nil, nil); string(g.body) != "first bytes last bytes" {
		t.Errorf("the slow file: %q", g.body)
	}
}

// TestMaxLongPolls: beyond MaxLongPolls a long-poll is refused with 429.
func TestMaxLongPolls(t *testing.T) {
	e := newEnv(t, envOpts{configure: func(c *Config) { c.MaxLongPolls = 1 }})
	alice := e.user("alice")
	done := make(chan error, 1)
	go func() {
		a, err := alice.tryDo("GET", "/v1/changes?wait=10s", nil, nil)
		if err == nil && a.status != 200 {
			err = io.ErrUnexpectedEOF
		}
		done <- err
	}()
	waitFor(t, 10*time.Second, "the long-poll to start", func() bool { return len(e.gw.polls) == 1 })
	a := alice.do("GET", "/v1/changes?wait=1s", nil, nil)
	if want(t, "a second long-poll", a, 429, "overloaded") && a.hdr.Get("Retry-After") == "" {
		t.Errorf("429 without Retry-After")
	}
	want(t, "a plain read of the feed", alice.do("GET", "/v1/changes", nil, nil), 200, "")
	want(t, "a commit ends the first", alice.put("/x", []byte("x"), nil), 201, "")
	if err := <-done; err != nil {
		t.Fatalf("the first long-poll: %v", err)
	}
}

// TestUserRate: each user's requests are limited by a token bucket.
func TestUserRate(t *testing.T) {
	e := newEnv(t, envOpts{configure: func(c *Config) { c.UserRate, c.UserBurst = 1, 2 }})
	alice, bob := e.user("alice"), e.user("bob")
	want(t, "1st", alice.do("GET", "/v1/whoami", nil, nil), 200, "")
	want(t, "2nd", alice.do("GET", "/v1/files/x", nil, nil), 404, "not_found")
	a := alice.do("GET", "/v1/whoami", nil, nil)
	if want(t, "3rd", a, 429, "rate_limited") && a.hdr.Get("Retry-After") != "1" {
		t.Errorf("Retry-After %q", a.hdr.Get("Retry-After"))
	}
	want(t, "the change feed too", alice.do("GET", "/v1/changes", nil, nil), 429, "rate_limited")
	want(t, "another user", bob.do("GET", "/v1/whoami", nil, nil), 200, "")
	e.clk.add(time.Second)
	want(t, "a second later", alice.do("GET", "/v1/whoami", nil, nil), 200, "")
	want(t, "and then", alice.do("GET", "/v1/whoami", nil, nil), 429, "rate_limited")
}

// TestJSONBodies: JSON bodies are bounded and decoded strictly.
func TestJSONBodies(t *testing.T) {
	e := newEnv(t, envOpts{configure: func(c *Config) { c.MaxJSONBody = 512 }})
	alice := e.user("alice")
	big := wire.CommitRequest{}
	for range 20 {
		big.Ops = append(big.Ops, wire.Op{Kind: "mkdir", Path: "/some/longish/folder/name"})
	}
	bigBody, _ := jsonMarshal(big)
	if len(bigBody) <= 512 {
		t.Fatalf("the big body is %d bytes", len(bigBody))
	}
	refs := wire.MissingRequest{}
	for range 10 {
		refs.Refs = append(refs.Refs, sha([]byte("x")))
	}
	bigRefs, _ := jsonMarshal(refs)
	for _, tc := range []struct {
		name, method, path, body string
		status                   int
		code                     string
	}{
		{"commit over MaxJSONBody", "POST", "/v1/commit", bigBody, 413, "too_large"},
		{"missing over MaxJSONBody", "POST", "/v1/blocks/missing", bigRefs, 413, "too_large"},
		{"move over MaxJSONBody", "POST", "/v1/move", `{"from":"/a","to":"/` + strings.Repeat("b", 600) + `"}`, 413, "too_large"},
		{"login over its bound", "POST", "/v1/login", `{"name":"alice","password":"` + strings.Repeat("p", 5000) + `"}`, 413, "too_large"},
		{"unknown field in a commit", "POST", "/v1/commit", `{"ops":[{"kind":"mkdir","path":"/a"}],"force":true}`, 400, "invalid_argument"},
		{"unknown field in an op", "POST", "/v1/commit", `{"ops":[{"kind":"mkdir","path":"/a","owner":"bob"}]}`, 400, "invalid_argument"},
		{"unknown field in a move", "POST", "/v1/move", `{"from":"/a","to":"/b","overwrite":true}`, 400, "invalid_argument"},
		{"unknown field in a restore", "POST", "/v1/restore", `{"path":"/a","rev":1,"all":true}`, 400, "invalid_argument"},
		{"two JSON values", "POST", "/v1/commit", `{"ops":[]} {"ops":[]}`, 400, "invalid_argument"},
		{"not JSON", "POST", "/v1/commit", `ops`, 400, "invalid_argument"},
		{"wrong type", "POST", "/v1/commit", `{"ops":"mkdir"}`, 400, "invalid_argument"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			want(t, tc.name, alice.do(tc.method, tc.path, bytes.NewReader([]byte(tc.body)), nil), tc.status, tc.code)
		})
	}
	want(t, "nothing was made", alice.do("GET", "/v1/stat/a", nil, nil), 404, "not_found")
	want(t, "a body within the bound", alice.postJSON("/v1/commit", wire.CommitRequest{Ops: []wire.Op{{Kind: "mkdir", Path: "/a"}}}, nil), 200, "")
}
