package client

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync"
	"testing"

	"github.com/coffer-dev/coffer/internal/wire"
)

// adminCall is one request as the fake admin server saw it.
type adminCall struct {
	method, path, query string
	key                 bool // an Idempotency-Key was sent
	body                string
}

// adminServer fakes the admin user routes as docs/API.md describes them,
// answering with the gateway's wire types, and records the requests.
type adminServer struct {
	*httptest.Server
	mu    sync.Mutex
	calls []adminCall
}

var wireAlice = wire.UserInfo{Name: "alice", ID: 7, Shard: 2, Admin: true, Quota: 10 << 30, Used: 5 << 20,
	Files: 12, Namespace: 9, Created: "2025-03-04T05:06:07Z"}

func newAdminServer(t *testing.T) *adminServer {
	s := &adminServer{}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/admin/users", func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Query().Get("page_token") {
		case "":
			writeJSON(w, 200, wire.UserList{Users: []wire.UserInfo{wireAlice, {Name: "bob", ID: 1, Shard: 1}}, NextPageToken: "1.bob"})
		case "1.bob":
			writeJSON(w, 200, wire.UserList{Users: []wire.UserInfo{}, NextPageToken: "2."})
		case "2.":
			writeJSON(w, 200, wire.UserList{Users: []wire.UserInfo{{Name: "carol", ID: 2, Shard: 2}}})
		case "loop":
			writeJSON(w, 200, wire.UserList{Users: []wire.UserInfo{}, NextPageToken: "loop"})
		default:
			writeJSON(w, 400, wire.Error{Code: "invalid_argument", Message: "bad page_token"})
		}
	})
	mux.HandleFunc("POST /v1/admin/users", func(w http.ResponseWriter, r *http.Request) {
		var req wire.UserRequest
		json.NewDecoder(r.Body).Decode(&req)
		if req.Name == "alice" {
			writeJSON(w, 409, wire.Error{Code: "exists", Message: `user "alice" exists`})
			return
		}
		writeJSON(w, 201, wire.UserInfo{Name: req.Name, ID: 3, Shard: 1, Admin: req.Admin, Quota: req.Quota,
			Namespace: 4, Created: "2025-01-02T03:04:05Z"})
	})
	user := func(w http.ResponseWriter, r *http.Request) bool {
		if r.PathValue("name") != "alice" && r.PathValue("name") != "a b/c" {
			writeJSON(w, 404, wire.Error{Code: "not_found", Message: "no user " + r.PathValue("name")})
			return false
		}
		return true
	}
	mux.HandleFunc("GET /v1/admin/users/{name}", func(w http.ResponseWriter, r *http.Request) {
		if user(w, r) {
			writeJSON(w, 200, wireAlice)
		}
	})
	okAnswer := func(w http.ResponseWriter, r *http.Request) {
		if user(w, r) {
			writeJSON(w, 200, map[string]bool{"ok": true})
		}
	}
	mux.HandleFunc("PUT /v1/admin/users/{name}/password", okAnswer)
	mux.HandleFunc("PUT /v1/admin/users/{name}/quota", okAnswer)
	mux.HandleFunc("POST /v1/admin/users/{name}/logout", okAnswer)
	mux.HandleFunc("DELETE /v1/admin/users/{name}", okAnswer)
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		r.Body = io.NopCloser(strings.NewReader(string(b)))
		s.mu.Lock()
		s.calls = append(s.calls, adminCall{r.Method, r.URL.EscapedPath(), r.URL.RawQuery,
			r.Header.Get("Idempotency-Key") != "", strings.TrimSpace(string(b))})
		s.mu.Unlock()
		mux.ServeHTTP(w, r)
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *adminServer) takeCalls() []adminCall {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.calls
	s.calls = nil
	return c
}

func TestUserInfoDecoding(t *testing.T) {
	srv := newAdminServer(t)
	u, err := newClient(t, srv.URL).User(context.Background(), "alice")
	if err != nil {
		t.Fatal(err)
	}
	want := UserInfo{Name: "alice", ID: 7, Shard: 2, Admin: true, Quota: 10 << 30, Used: 5 << 20, Files: 12,
		Namespace: 9, Created: "2025-03-04T05:06:07Z"}
	if *u != want {
		t.Errorf("got %+v\nwant %+v", *u, want)
	}
	// The JSON field names are the gateway's.
	b, err := json.Marshal(want)
	if err != nil {
		t.Fatal(err)
	}
	var back wire.UserInfo
	if err := json.Unmarshal(b, &back); err != nil || back != wireAlice {
		t.Errorf("client JSON %s decodes as %+v, %v; want %+v", b, back, err, wireAlice)
	}
}

func TestUserCalls(t *testing.T) {
	srv := newAdminServer(t)
	c := newClient(t, srv.URL)
	ctx := context.Background()

	u, err := c.CreateUser(ctx, CreateUserRequest{Name: "dave", Password: "pw", Quota: 1 << 20})
	if err != nil || u.Name != "dave" || u.Quota != 1<<20 || u.Admin || u.ID != 3 {
		t.Errorf("create: %+v, %v", u, err)
	}
	if _, err := c.CreateUser(ctx, CreateUserRequest{Name: "erin", Password: "pw2", Admin: true}); err != nil {
		t.Error(err)
	}
	if err := c.SetUserPassword(ctx, "alice", "new pw"); err != nil {
		t.Error(err)
	}
	if err := c.SetUserQuota(ctx, "a b/c", 0); err != nil {
		t.Error(err)
	}
	if err := c.LogoutUser(ctx, "alice"); err != nil {
		t.Error(err)
	}
	if err := c.DeleteUser(ctx, "a b/c"); err != nil {
		t.Error(err)
	}
	if _, err := c.User(ctx, "a b/c"); err != nil {
		t.Error(err)
	}
	page, err := c.Users(ctx, 2, "1.bob")
	if err != nil || len(page.Users) != 0 || page.NextPageToken != "2." {
		t.Errorf("users page: %+v, %v", page, err)
	}
	want := []adminCall{
		{"POST", "/v1/admin/users", "", true, `{"name":"dave","password":"pw","quota":1048576}`},
		{"POST", "/v1/admin/users", "", true, `{"name":"erin","password":"pw2","admin":true}`},
		{"PUT", "/v1/admin/users/alice/password", "", true, `{"new":"new pw"}`},
		{"PUT", "/v1/admin/users/a%20b%2Fc/quota", "", true, `{"quota":0}`},
		{"POST", "/v1/admin/users/alice/logout", "", true, ""},
		{"DELETE", "/v1/admin/users/a%20b%2Fc", "", true, ""},
		{"GET", "/v1/admin/users/a%20b%2Fc", "", false, ""},
		{"GET", "/v1/admin/users", "limit=2&page_token=1.bob", false, ""},
	}
	if got := srv.takeCalls(); !reflect.DeepEqual(got, want) {
		t.Errorf("calls\n%+v\nwant\n%+v", got, want)
	}
}

func TestAllUsersFollowsPages(t *testing.T) {
	srv := newAdminServer(t)
	users, err := newClient(t, srv.URL).AllUsers(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, u := range users {
		names = append(names, u.Name)
	}
	if !reflect.DeepEqual(names, []string{"alice", "bob", "carol"}) {
		t.Errorf("users %q", names)
	}
	var queries []string
	for _, c := range srv.takeCalls() {
		queries = append(queries, c.query)
	}
	if want := []string{"", "page_token=1.bob", "page_token=2."}; !reflect.DeepEqual(queries, want) {
		t.Errorf("queries %q, want %q", queries, want)
	}
}

func TestAllUsersRepeatedToken(t *testing.T) {
	srv := newCounter(t, func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, 200, wire.UserList{Users: []wire.UserInfo{}, NextPageToken: "same"})
	})
	_, err := newClient(t, srv.URL).AllUsers(context.Background())
	if err == nil || !strings.Contains(err.Error(), "repeated page token") {
		t.Errorf("got %v, want a repeated page token error", err)
	}
	if n := srv.n.Load(); n != 2 {
		t.Errorf("%d requests, want 2", n)
	}
}

func TestUserErrors(t *testing.T) {
	srv := newAdminServer(t)
	c := newClient(t, srv.URL)
	ctx := context.Background()
	_, err := c.User(ctx, "nobody")
	if !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), "no user nobody") {
		t.Errorf("user nobody: %v", err)
	}
	if err := c.DeleteUser(ctx, "nobody"); !errors.Is(err, ErrNotFound) {
		t.Errorf("delete nobody: %v", err)
	}
	if _, err := c.CreateUser(ctx, CreateUserRequest{Name: "alice", Password: "x"}); !errors.Is(err, ErrExists) {
		t.Errorf("create alice again: %v", err)
	}
	if _, err := c.Users(ctx, 0, "bogus"); !errors.Is(err, ErrInvalidArgument) {
		t.Errorf("bad page token: %v", err)
	}
	srv.takeCalls()
	// Names the server would clean into another route are not sent.
	for _, name := range []string{"", ".", ".."} {
		calls := []func() error{
			func() error { _, err := c.User(ctx, name); return err },
			func() error { return c.SetUserPassword(ctx, name, "pw") },
			func() error { return c.SetUserQuota(ctx, name, 1) },
			func() error { return c.LogoutUser(ctx, name) },
			func() error { return c.DeleteUser(ctx, name) },
		}
		for i, call := range calls {
			if err := call(); !errors.Is(err, ErrInvalidArgument) {
				t.Errorf("name %q, call %d: %v, want ErrInvalidArgument", name, i, err)
			}
		}
	}
	if calls := srv.takeCalls(); len(calls) != 0 {
		t.Errorf("bad names sent requests: %+v", calls)
	}
}

// A write carries an Idempotency-Key, so after a 503 it moves on to the
// next server with the same key.
func TestUserWritesFailOverWithTheSameKey(t *testing.T) {
	var mu sync.Mutex
	var keys []string
	record := func(r *http.Request) {
		mu.Lock()
		keys = append(keys, r.Header.Get("Idempotency-Key"))
		mu.Unlock()
	}
	a := newCounter(t, func(w http.ResponseWriter, r *http.Request) { record(r); unavailable(w, r) })
	b := newCounter(t, func(w http.ResponseWriter, r *http.Request) {
		record(r)
		writeJSON(w, 201, wire.UserInfo{Name: "dave", Created: "2025-01-02T03:04:05Z"})
	})
	u, err := newClient(t, a.URL, b.URL).CreateUser(context.Background(), CreateUserRequest{Name: "dave", Password: "pw"})
	if err != nil || u.Name != "dave" {
		t.Fatalf("create: %+v, %v", u, err)
	}
	if len(keys) != 2 || keys[0] == "" || keys[0] != keys[1] {
		t.Errorf("keys %q, want the same key twice", keys)
	}
}
