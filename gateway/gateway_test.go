package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/time/rate"

	"github.com/coffer-dev/coffer/gateway/auth"
	"github.com/coffer-dev/coffer/raftmeta"
)

// fakeMeta scripts the few metadata calls authentication makes; the rest
// of Meta is left nil (a call would panic). The file API is tested over a
// real shard (harness_test.go).
type fakeMeta struct {
	Meta
	mu    sync.Mutex
	calls []uint64 // shard of each Authenticate
	users map[string]string
	down  bool
}

func (f *fakeMeta) Authenticate(ctx context.Context, group uint64, name, password string) (*raftmeta.User, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, group)
	if f.down {
		return nil, raftmeta.ErrUnknownOutcome
	}
	if p, ok := f.users[name]; ok && p == password {
		return &raftmeta.User{ID: 7, Name: name, Namespace: 70, Admin: name == "admin"}, nil
	}
	return nil, raftmeta.ErrBadCredentials
}

func (f *fakeMeta) User(ctx context.Context, group uint64, name string, o raftmeta.ReadOptions) (*raftmeta.User, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.users[name]; !ok {
		return nil, raftmeta.ErrNotFound
	}
	return &raftmeta.User{ID: 7, Name: name, Namespace: 70, Admin: name == "admin"}, nil
}

func (f *fakeMeta) TokenRevoked(context.Context, uint64, string, raftmeta.ReadOptions) (bool, error) {
	return false, nil
}

func (f *fakeMeta) Namespace(_ context.Context, _, ns uint64, _ raftmeta.ReadOptions) (*raftmeta.Namespace, error) {
	return &raftmeta.Namespace{ID: ns}, nil
}

type fakeCluster struct{ key []byte }

func (f fakeCluster) Shards() int { return 8 }
func (f fakeCluster) SigningKey(context.Context) ([]byte, error) {
	if f.key == nil {
		return nil, errors.New("not formed")
	}
	return f.key, nil
}

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func newTestServer(t *testing.T, meta *fakeMeta) (*httptest.Server, *clock) {
	t.Helper()
	clk := &clock{t: time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)}
	gw, err := New(Config{Meta: meta, Blocks: &memBlocks{}, Cluster: fakeCluster{key: bytes.Repeat([]byte{1}, 32)}, Now: clk.now,
		TokenTTL: time.Hour, Login: auth.LimiterConfig{PerName: rate.Every(time.Minute), NameBurst: 3}})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	gw.Register(mux)
	ts := httptest.NewServer(mux)
	t.Cleanup(ts.Close)
	return ts, clk
}

func do(t *testing.T, method, url, body string, hdr map[string]string) (*http.Response, map[string]any) {
	t.Helper()
	req, _ := http.NewRequest(method, url, strings.NewReader(body))
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("%s %s: HTTP %d, body %q is not JSON", method, url, resp.StatusCode, b)
	}
	return resp, m
}

func TestLoginAndWhoami(t *testing.T) {
	meta := &fakeMeta{users: map[string]string{"alice": "pw", "admin": "root"}}
	ts, clk := newTestServer(t, meta)

	resp, m := do(t, "POST", ts.URL+"/v1/login", `{"name":"alice","password":"pw"}`, nil)
	if resp.StatusCode != 200 || m["token"] == nil || m["user"] != "alice" {
		t.Fatalf("login: HTTP %d %v", resp.StatusCode, m)
	}
	token := m["token"].(string)
	var cookie *http.Cookie
	for _, c := range resp.Cookies() {
		if c.Name == CookieName {
			cookie = c
		}
	}
	if cookie == nil || !cookie.HttpOnly || cookie.Value != token {
		t.Fatalf("session cookie %+v", cookie)
	}
	wantShard, _ := raftmeta.ShardOf("alice", 8)
	if meta.calls[0] != wantShard {
		t.Errorf("password checked on shard %d, want %d", meta.calls[0], wantShard)
	}

	for name, hdr := range map[string]map[string]string{
		"bearer": {"Authorization": "Bearer " + token},
		"cookie": {"Cookie": CookieName + "=" + token},
		"basic":  {"Authorization": "Basic " + basic("alice", "pw")},
	} {
		resp, m := do(t, "GET", ts.URL+"/v1/whoami", "", hdr)
		if resp.StatusCode != 200 || m["user"] != "alice" || m["namespace"] != float64(70) || m["shard"] != float64(wantShard) {
			t.Errorf("%s: whoami HTTP %d %v", name, resp.StatusCode, m)
		}
	}

	// Refusals, each with the one error shape.
	for _, tc := range []struct {
		name string
		hdr  map[string]string
		code string
	}{
		{"no credentials", nil, "unauthenticated"},
		{"tampered token", map[string]string{"Authorization": "Bearer " + token[:len(token)-2] + "xx"}, "unauthenticated"},
		{"wrong basic password", map[string]string{"Authorization": "Basic " + basic("alice", "nope")}, "unauthenticated"},
	} {
		resp, m := do(t, "GET", ts.URL+"/v1/whoami", "", tc.hdr)
		if resp.StatusCode != 401 || m["code"] != tc.code {
			t.Errorf("%s: HTTP %d %v, want 401 %s", tc.name, resp.StatusCode, m, tc.code)
		}
	}
	clk.add(2 * time.Hour)
	if resp, m := do(t, "GET", ts.URL+"/v1/whoami", "", map[string]string{"Authorization": "Bearer " + token}); resp.StatusCode != 401 || m["code"] != "token_expired" {
		t.Errorf("expired token: HTTP %d %v", resp.StatusCode, m)
	}
}

func TestLoginRefusals(t *testing.T) {
	meta := &fakeMeta{users: map[string]string{"alice": "pw"}}
	ts, _ := newTestServer(t, meta)
	for _, tc := range []struct {
		body   string
		status int
		code   string
	}{
		{`{"name":"alice","password":"bad"}`, 401, "unauthenticated"},
		{`{"name":"nobody","password":"x"}`, 401, "unauthenticated"},
		{`{"name":"bad name!","password":"x"}`, 401, "unauthenticated"},
		{`not json`, 400, "invalid_argument"},
		{`{"name":"alice","password":"pw","extra":1}`, 400, "invalid_argument"},
	} {
		resp, m := do(t, "POST", ts.URL+"/v1/login", tc.body, nil)
		if resp.StatusCode != tc.status || m["code"] != tc.code {
			t.Errorf("login %s: HTTP %d %v, want %d %s", tc.body, resp.StatusCode, m, tc.status, tc.code)
		}
	}
	// The per-name limit is a burst of 3 in this test: one attempt for
	// "alice" above (bodies that do not decode are not attempts), two more
	// here; the 4th is refused with 429 and a Retry-After, even with the
	// right password, and without a password check.
	do(t, "POST", ts.URL+"/v1/login", `{"name":"alice","password":"bad"}`, nil)
	do(t, "POST", ts.URL+"/v1/login", `{"name":"ALICE","password":"bad"}`, nil)
	before := len(meta.calls)
	resp, m := do(t, "POST", ts.URL+"/v1/login", `{"name":"alice","password":"pw"}`, nil)
	if resp.StatusCode != 429 || m["code"] != "rate_limited" || resp.Header.Get("Retry-After") == "" {
		t.Errorf("over the limit: HTTP %d %v (Retry-After %q)", resp.StatusCode, m, resp.Header.Get("Retry-After"))
	}
	if len(meta.calls) != before {
		t.Errorf("a rate-limited login still checked the password")
	}
	// The metadata layer failing is 503, not a wrong password.
	meta.mu.Lock()
	meta.down = true
	meta.mu.Unlock()
	if resp, m := do(t, "POST", ts.URL+"/v1/login", `{"name":"bob","password":"x"}`, nil); resp.StatusCode != 503 || m["code"] != "unavailable" {
		t.Errorf("metadata down: HTTP %d %v", resp.StatusCode, m)
	}
}

func TestConfigValidate(t *testing.T) {
	err := Config{TokenTTL: -1}.Validate()
	if !errors.Is(err, ErrInvalidConfig) {
		t.Fatalf("Validate = %v", err)
	}
	for _, w := range []string{"Meta is required", "Blocks is required", "Cluster is required", "must not be negative"} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("%q does not mention %q", err, w)
		}
	}
}

func basic(user, pw string) string {
	req, _ := http.NewRequest("GET", "/", nil)
	req.SetBasicAuth(user, pw)
	return strings.TrimPrefix(req.Header.Get("Authorization"), "Basic ")
}
