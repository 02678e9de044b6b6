package main

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/coffer-dev/coffer/client"
	"github.com/coffer-dev/coffer/internal/wire"
)

// userServer fakes the admin user routes over an in-memory set of users,
// for admin with password "secret" (Basic) or the token "admintok".
type userServer struct {
	*httptest.Server
	mu        sync.Mutex
	users     map[string]wire.UserInfo
	passwords map[string]string
	requests  []string // "METHOD escaped-path"
	noKey     []string // writes without an Idempotency-Key
	logouts   map[string]int
}

func newUserServer(t *testing.T) *userServer {
	s := &userServer{
		users: map[string]wire.UserInfo{
			"admin": {Name: "admin", ID: 1, Shard: 1, Admin: true, Namespace: 1, Created: "2025-01-01T00:00:00Z"},
			"alice": {Name: "alice", ID: 1, Shard: 2, Quota: 10 << 30, Used: 3 << 29, Files: 42, Namespace: 1, Created: "2025-01-02T00:00:00Z"},
			"bob":   {Name: "bob", ID: 2, Shard: 1, Used: 512, Files: 1, Namespace: 2, Created: "2025-01-03T00:00:00Z"},
		},
		passwords: map[string]string{"admin": "secret", "alice": "alice-pw", "bob": "bob-pw"},
		logouts:   map[string]int{},
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/admin/users", func(w http.ResponseWriter, r *http.Request) {
		// Pages of two, in name order.
		var names []string
		for n := range s.users {
			names = append(names, n)
		}
		slices.Sort(names)
		start := 0
		if tok := r.URL.Query().Get("page_token"); tok != "" {
			for start < len(names) && names[start] <= tok {
				start++
			}
		}
		out := wire.UserList{Users: []wire.UserInfo{}}
		for _, n := range names[start:min(start+2, len(names))] {
			out.Users = append(out.Users, s.users[n])
		}
		if start+2 < len(names) {
			out.NextPageToken = names[start+1]
		}
		answer(w, 200, out)
	})
	mux.HandleFunc("POST /v1/admin/users", func(w http.ResponseWriter, r *http.Request) {
		var req wire.UserRequest
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
			answer(w, 400, wire.Error{Code: "invalid_argument", Message: err.Error()})
			return
		}
		if _, ok := s.users[req.Name]; ok {
			answer(w, 409, wire.Error{Code: "exists", Message: `user "` + req.Name + `" exists`})
			return
		}
		u := wire.UserInfo{Name: req.Name, ID: 9, Shard: 2, Admin: req.Admin, Quota: req.Quota, Namespace: 9, Created: "2025-02-03T04:05:06Z"}
		s.users[req.Name], s.passwords[req.Name] = u, req.Password
		answer(w, 201, u)
	})
	// known answers 404 for an unknown user.
	known := func(w http.ResponseWriter, r *http.Request) (string, bool) {
		name := r.PathValue("name")
		if _, ok := s.users[name]; !ok {
			answer(w, 404, wire.Error{Code: "not_found", Message: `no user "` + name + `"`})
			return "", false
		}
		return name, true
	}
	ok := func(w http.ResponseWriter) { answer(w, 200, map[string]bool{"ok": true}) }
	mux.HandleFunc("GET /v1/admin/users/{name}", func(w http.ResponseWriter, r *http.Request) {
		if name, found := known(w, r); found {
			answer(w, 200, s.users[name])
		}
	})
	mux.HandleFunc("PUT /v1/admin/users/{name}/password", func(w http.ResponseWriter, r *http.Request) {
		var req wire.PasswordRequest
		json.NewDecoder(r.Body).Decode(&req)
		if name, found := known(w, r); found {
			s.passwords[name] = req.New
			s.logouts[name]++
			ok(w)
		}
	})
	mux.HandleFunc("PUT /v1/admin/users/{name}/quota", func(w http.ResponseWriter, r *http.Request) {
		var req wire.QuotaRequest
		json.NewDecoder(r.Body).Decode(&req)
		if name, found := known(w, r); found {
			u := s.users[name]
			u.Quota = req.Quota
			s.users[name] = u
			ok(w)
		}
	})
	mux.HandleFunc("POST /v1/admin/users/{name}/logout", func(w http.ResponseWriter, r *http.Request) {
		if name, found := known(w, r); found {
			s.logouts[name]++
			ok(w)
		}
	})
	mux.HandleFunc("DELETE /v1/admin/users/{name}", func(w http.ResponseWriter, r *http.Request) {
		if r.PathValue("name") == "admin" {
			answer(w, 400, wire.Error{Code: "invalid_argument", Message: "an admin cannot delete their own account"})
			return
		}
		if name, found := known(w, r); found {
			delete(s.users, name)
			ok(w)
		}
	})
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		defer s.mu.Unlock()
		s.requests = append(s.requests, r.Method+" "+r.URL.EscapedPath())
		if r.Method != http.MethodGet && r.Header.Get("Idempotency-Key") == "" {
			s.noKey = append(s.noKey, r.Method+" "+r.URL.EscapedPath())
		}
		u, p, basic := r.BasicAuth()
		if r.Header.Get("Authorization") != "Bearer admintok" && (!basic || u != "admin" || p != s.passwords["admin"]) {
			answer(w, 401, wire.Error{Code: "unauthenticated", Message: "wrong user name or password"})
			return
		}
		mux.ServeHTTP(w, r)
	}))
	t.Cleanup(s.Close)
	return s
}

// state returns a copy of the users and passwords, and the requests so far
// (which it forgets).
func (s *userServer) state() (map[string]wire.UserInfo, map[string]string, []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	users, pws := map[string]wire.UserInfo{}, map[string]string{}
	for k, v := range s.users {
		users[k] = v
	}
	for k, v := range s.passwords {
		pws[k] = v
	}
	reqs := s.requests
	s.requests = nil
	return users, pws, reqs
}

func (s *userServer) env() map[string]string {
	return map[string]string{"COFFER_SERVER": s.URL, "COFFER_PASSWORD": "secret"}
}

// check compares a run's outcome; a want string of "" must be empty.
func check(t *testing.T, r result, code int, stdout, stderr string) {
	t.Helper()
	if r.code != code || r.stdout != stdout || r.stderr != stderr {
		t.Errorf("got exit %d, stdout %q, stderr %q\nwant exit %d, stdout %q, stderr %q",
			r.code, r.stdout, r.stderr, code, stdout, stderr)
	}
}

func TestUserAdd(t *testing.T) {
	srv := newUserServer(t)
	r := runCoffer(t, srv.env(), "dave-pw\nignored\n", "admin", "user", "add", "dave", "--password-stdin", "--quota", "10GiB")
	check(t, r, 0, "added user dave: quota 10.0 GiB (10737418240 bytes)\n", "")
	users, pws, reqs := srv.state()
	if u := users["dave"]; u.Quota != 10<<30 || u.Admin || pws["dave"] != "dave-pw" {
		t.Errorf("dave: %+v, password %q", u, pws["dave"])
	}
	if !reflect.DeepEqual(reqs, []string{"POST /v1/admin/users"}) {
		t.Errorf("requests %q", reqs)
	}

	r = runCoffer(t, srv.env(), "erin-pw\r\n", "--json", "admin", "user", "add", "erin", "--admin", "--password-stdin")
	var got client.UserInfo
	if err := json.Unmarshal([]byte(r.stdout), &got); err != nil || r.code != 0 || r.stderr != "" {
		t.Fatalf("exit %d, stderr %q, stdout %q: %v", r.code, r.stderr, r.stdout, err)
	}
	want := client.UserInfo{Name: "erin", ID: 9, Shard: 2, Admin: true, Namespace: 9, Created: "2025-02-03T04:05:06Z"}
	if got != want {
		t.Errorf("--json: %+v, want %+v", got, want)
	}
	if _, pws, _ := srv.state(); pws["erin"] != "erin-pw" {
		t.Errorf("erin's password %q", pws["erin"])
	}

	// Taken: the server's message, exit 1.
	r = runCoffer(t, srv.env(), "pw\n", "admin", "user", "add", "alice", "--password-stdin")
	check(t, r, 1, "", "coffer: user \"alice\" exists (exists)\n")

	// Usage errors send nothing.
	srv.state()
	for _, tc := range []struct {
		env    map[string]string
		stdin  string
		args   []string
		stderr string
	}{
		{srv.env(), "", []string{"admin", "user", "add", "frank"}, "a password for frank is needed: type it at a terminal or pass it on stdin with --password-stdin"},
		{srv.env(), "", []string{"admin", "user", "add", "frank", "--password-stdin"}, "--password-stdin: no password on stdin"},
		{srv.env(), "pw\n", []string{"admin", "user", "add", "frank", "--password-stdin", "--quota", "lots"}, `invalid argument "lots" for "--quota" flag: bad size "lots"`},
		{srv.env(), "pw\n", []string{"admin", "user", "add", "--password-stdin"}, "accepts 1 arg(s), received 0"},
		// stdin holds the new password, so the caller's own must come
		// from elsewhere.
		{map[string]string{"COFFER_SERVER": srv.URL}, "pw\n", []string{"admin", "user", "add", "frank", "--password-stdin"}, "--password-stdin reads the new password here"},
	} {
		r := runCoffer(t, tc.env, tc.stdin, tc.args...)
		if r.code != 2 || r.stdout != "" || !strings.Contains(r.stderr, tc.stderr) || !strings.Contains(r.stderr, "--help' for usage") {
			t.Errorf("%q: exit %d, stdout %q, stderr %q; want exit 2 and %q", tc.args, r.code, r.stdout, r.stderr, tc.stderr)
		}
	}
	if _, _, reqs := srv.state(); len(reqs) != 0 {
		t.Errorf("usage errors sent %q", reqs)
	}
	srv.mu.Lock()
	defer srv.mu.Unlock()
	if len(srv.noKey) != 0 {
		t.Errorf("writes without an Idempotency-Key: %q", srv.noKey)
	}
}

// With a saved session the admin's token is sent and stdin holds only the
// new password.
func TestUserPasswdWithSession(t *testing.T) {
	srv := newUserServer(t)
	cfg := t.TempDir()
	os.MkdirAll(filepath.Join(cfg, "coffer"), 0o700)
	session := `{"user":"admin","admin":true,"token":"admintok","expires":"2099-01-01T00:00:00Z"}`
	if err := os.WriteFile(filepath.Join(cfg, "coffer", sessionFile), []byte(session), 0o600); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"COFFER_SERVER": srv.URL, "XDG_CONFIG_HOME": cfg}
	r := runCoffer(t, env, "n3w pw\n", "admin", "user", "passwd", "alice", "--password-stdin")
	check(t, r, 0, "set the password of alice; their sessions have ended\n", "")
	if _, pws, _ := srv.state(); pws["alice"] != "n3w pw" {
		t.Errorf("alice's password %q", pws["alice"])
	}
	// --user naming someone else does not use admin's session.
	r = runCoffer(t, env, "x\n", "--user", "bob", "admin", "user", "passwd", "alice", "--password-stdin")
	if r.code != 2 || !strings.Contains(r.stderr, "--password-stdin reads the new password here") {
		t.Errorf("other user: exit %d, stderr %q", r.code, r.stderr)
	}
}

func TestUserPasswd(t *testing.T) {
	srv := newUserServer(t)
	r := runCoffer(t, srv.env(), "t3mp\n", "--json", "admin", "user", "passwd", "bob", "--password-stdin")
	check(t, r, 0, "{\n  \"user\": \"bob\",\n  \"ok\": true\n}\n", "")
	if _, pws, reqs := srv.state(); pws["bob"] != "t3mp" || !reflect.DeepEqual(reqs, []string{"PUT /v1/admin/users/bob/password"}) {
		t.Errorf("bob's password %q, requests %q", pws["bob"], reqs)
	}
	r = runCoffer(t, srv.env(), "pw\n", "admin", "user", "passwd", "ghost", "--password-stdin")
	check(t, r, 1, "", "coffer: no user \"ghost\" (not_found)\n")
	r = runCoffer(t, srv.env(), "", "admin", "user", "passwd", "bob")
	if r.code != 2 || !strings.Contains(r.stderr, "a password for bob is needed") {
		t.Errorf("no password: exit %d, stderr %q", r.code, r.stderr)
	}
}

func TestUserList(t *testing.T) {
	srv := newUserServer(t)
	r := runCoffer(t, srv.env(), "", "admin", "user", "list")
	if r.code != 0 || r.stderr != "" {
		t.Fatalf("exit %d, stderr %q", r.code, r.stderr)
	}
	var rows [][]string
	for _, l := range strings.Split(strings.TrimSuffix(r.stdout, "\n"), "\n") {
		rows = append(rows, strings.Fields(l))
	}
	want := [][]string{
		{"NAME", "ADMIN", "QUOTA", "USED", "FILES"},
		{"admin", "yes", "unlimited", "0", "B", "0"},
		{"alice", "no", "10.0", "GiB", "1.5", "GiB", "42"},
		{"bob", "no", "unlimited", "512", "B", "1"},
	}
	if !reflect.DeepEqual(rows, want) {
		t.Errorf("table\n%s\nwant rows %q", r.stdout, want)
	}
	// The columns line up.
	lines := strings.Split(r.stdout, "\n")
	if col := strings.Index(lines[0], "USED"); col < 0 || strings.Index(lines[2], "1.5 GiB") != col {
		t.Errorf("USED column not aligned:\n%s", r.stdout)
	}
	if _, _, reqs := srv.state(); len(reqs) != 2 {
		t.Errorf("requests %q, want two pages", reqs)
	}

	r = runCoffer(t, srv.env(), "", "admin", "user", "list", "--json")
	var got []client.UserInfo
	if err := json.Unmarshal([]byte(r.stdout), &got); err != nil || r.code != 0 {
		t.Fatalf("exit %d, stdout %q: %v", r.code, r.stdout, err)
	}
	users, _, _ := srv.state()
	if len(got) != 3 {
		t.Fatalf("got %d users", len(got))
	}
	for _, u := range got {
		w := users[u.Name]
		if (client.UserInfo{Name: w.Name, ID: w.ID, Shard: w.Shard, Admin: w.Admin, Quota: w.Quota, Used: w.Used,
			Files: w.Files, Namespace: w.Namespace, Created: w.Created}) != u {
			t.Errorf("user %+v, want %+v", u, w)
		}
	}

	// No users: an empty array.
	empty := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		answer(w, 200, wire.UserList{Users: []wire.UserInfo{}})
	}))
	defer empty.Close()
	r = runCoffer(t, map[string]string{"COFFER_SERVER": empty.URL, "COFFER_PASSWORD": "x"}, "", "--json", "admin", "user", "list")
	check(t, r, 0, "[]\n", "")
}

func TestUserQuota(t *testing.T) {
	srv := newUserServer(t)
	r := runCoffer(t, srv.env(), "", "admin", "user", "quota", "bob", "500MB")
	check(t, r, 0, "set the quota of bob to 476.8 MiB (500000000 bytes)\n", "")
	if users, _, _ := srv.state(); users["bob"].Quota != 500_000_000 {
		t.Errorf("bob's quota %d", users["bob"].Quota)
	}
	r = runCoffer(t, srv.env(), "", "--json", "admin", "user", "quota", "alice", "0")
	check(t, r, 0, "{\n  \"user\": \"alice\",\n  \"ok\": true,\n  \"quota\": 0\n}\n", "")
	if users, _, _ := srv.state(); users["alice"].Quota != 0 {
		t.Errorf("alice's quota %d", users["alice"].Quota)
	}
	r = runCoffer(t, srv.env(), "", "admin", "user", "quota", "ghost", "1GB")
	check(t, r, 1, "", "coffer: no user \"ghost\" (not_found)\n")
	for _, args := range [][]string{{"bob", "-1"}, {"bob", "1.5B"}, {"bob", "10 parsecs"}, {"bob"}} {
		r := runCoffer(t, srv.env(), "", append([]string{"admin", "user", "quota"}, args...)...)
		if r.code != 2 || r.stdout != "" {
			t.Errorf("quota %q: exit %d, stdout %q, stderr %q", args, r.code, r.stdout, r.stderr)
		}
	}
	if _, _, reqs := srv.state(); len(reqs) != 1 {
		t.Errorf("requests %q, want only the one for ghost", reqs)
	}
}

func TestUserLogout(t *testing.T) {
	srv := newUserServer(t)
	r := runCoffer(t, srv.env(), "", "admin", "user", "logout", "alice")
	check(t, r, 0, "ended every session of alice\n", "")
	r = runCoffer(t, srv.env(), "", "--json", "admin", "user", "logout", "alice")
	check(t, r, 0, "{\n  \"user\": \"alice\",\n  \"ok\": true\n}\n", "")
	srv.mu.Lock()
	n := srv.logouts["alice"]
	srv.mu.Unlock()
	if n != 2 {
		t.Errorf("alice logged out %d times, want 2", n)
	}
	r = runCoffer(t, srv.env(), "", "admin", "user", "logout", "ghost")
	check(t, r, 1, "", "coffer: no user \"ghost\" (not_found)\n")
}

func TestUserRm(t *testing.T) {
	srv := newUserServer(t)
	// From a pipe, without --yes: a usage error, nothing sent.
	r := runCoffer(t, srv.env(), "bob\n", "admin", "user", "rm", "bob")
	if r.code != 2 || r.stdout != "" || !strings.Contains(r.stderr, "pass --yes to delete user bob") {
		t.Errorf("rm without --yes: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
	if users, _, reqs := srv.state(); len(reqs) != 0 || users["bob"].Name != "bob" {
		t.Errorf("rm without --yes sent %q", reqs)
	}
	r = runCoffer(t, srv.env(), "", "admin", "user", "rm", "bob", "--yes")
	check(t, r, 0, "deleted user bob\n", "")
	if users, _, reqs := srv.state(); !reflect.DeepEqual(reqs, []string{"DELETE /v1/admin/users/bob"}) || users["bob"].Name != "" {
		t.Errorf("requests %q, bob %+v", reqs, users["bob"])
	}
	r = runCoffer(t, srv.env(), "", "--json", "admin", "user", "rm", "-y", "alice")
	check(t, r, 0, "{\n  \"user\": \"alice\",\n  \"ok\": true\n}\n", "")
	r = runCoffer(t, srv.env(), "", "admin", "user", "rm", "bob", "--yes")
	check(t, r, 1, "", "coffer: no user \"bob\" (not_found)\n")
	r = runCoffer(t, srv.env(), "", "admin", "user", "rm", "admin", "--yes")
	check(t, r, 1, "", "coffer: an admin cannot delete their own account (invalid_argument)\n")
	// A name with a slash is one path segment.
	r = runCoffer(t, srv.env(), "", "admin", "user", "rm", "a/b", "--yes")
	if _, _, reqs := srv.state(); r.code != 1 || !reflect.DeepEqual(reqs[len(reqs)-1:], []string{"DELETE /v1/admin/users/a%2Fb"}) {
		t.Errorf("exit %d, requests %q", r.code, reqs)
	}
}

func TestUserUsageErrors(t *testing.T) {
	srv := newUserServer(t)
	for _, args := range [][]string{
		{"admin", "user"},
		{"admin", "user", "bogus"},
		{"admin", "user", "list", "extra"},
		{"admin", "user", "passwd"},
		{"admin", "user", "logout"},
		{"admin", "user", "logout", "a", "b"},
		{"admin", "user", "rm"},
		{"admin", "user", "rm", "--yes"},
		{"admin", "user", "quota", "bob", "1GB", "extra"},
	} {
		r := runCoffer(t, srv.env(), "", args...)
		if r.code != 2 || r.stdout != "" || !strings.Contains(r.stderr, "--help' for usage") {
			t.Errorf("%q: exit %d, stdout %q, stderr %q", args, r.code, r.stdout, r.stderr)
		}
	}
	if _, _, reqs := srv.state(); len(reqs) != 0 {
		t.Errorf("usage errors sent %q", reqs)
	}
}

func TestParseSize(t *testing.T) {
	tests := []struct {
		in   string
		want int64
		err  string // "": no error
	}{
		{"0", 0, ""},
		{"unlimited", 0, ""},
		{"Unlimited", 0, ""},
		{"1", 1, ""},
		{"512B", 512, ""},
		{"500MB", 500_000_000, ""},
		{"500mb", 500_000_000, ""},
		{"1kB", 1000, ""},
		{"1KB", 1000, ""},
		{"1KiB", 1024, ""},
		{"1k", 1024, ""},
		{"10GiB", 10 << 30, ""},
		{"10 GiB", 10 << 30, ""},
		{" 10gib ", 10 << 30, ""},
		{"10G", 10 << 30, ""},
		{"1.5GiB", 3 << 29, ""},
		{"1.5GB", 1_500_000_000, ""},
		{"2TB", 2e12, ""},
		{"1PiB", 1 << 50, ""},
		{"7EiB", 7 << 60, ""},
		{"9223372036854775807", 1<<63 - 1, ""},
		{"8EiB", 0, "too large"},
		{"9223372036854775808", 0, "too large"},
		{"1.5B", 0, "not a whole number of bytes"},
		{"0.1", 0, "not a whole number of bytes"},
		{"", 0, "bad size"},
		{"GiB", 0, "bad size"},
		{"-1", 0, "bad size"},
		{"-1GiB", 0, "bad size"},
		{"1e3", 0, "bad size"},
		{"1/2", 0, "bad size"},
		{"1.2.3", 0, "bad size"},
		{"10 parsecs", 0, "bad size"},
		{"1Gb/s", 0, "bad size"},
	}
	for _, tc := range tests {
		got, err := parseSize(tc.in)
		switch {
		case tc.err == "" && (err != nil || got != tc.want):
			t.Errorf("parseSize(%q) = %d, %v; want %d", tc.in, got, err, tc.want)
		case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
			t.Errorf("parseSize(%q) = %d, %v; want an error with %q", tc.in, got, err, tc.err)
		}
	}
}
