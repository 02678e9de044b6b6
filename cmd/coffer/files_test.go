package main

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coffer-dev/coffer/internal/wire"
)

// sessionServer fakes login, logout and whoami: whoami needs the token
// from login (or Basic admin:secret).
type sessionServer struct {
	*httptest.Server
	mu      sync.Mutex
	revoked bool
	auths   []string
}

func newSessionServer(t *testing.T) *sessionServer {
	s := &sessionServer{}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		defer s.mu.Unlock()
		s.auths = append(s.auths, r.Header.Get("Authorization"))
		bearer := r.Header.Get("Authorization") == "Bearer v1.tok"
		u, p, basic := r.BasicAuth()
		basic = basic && u == "admin" && p == "secret"
		switch r.URL.Path {
		case "/v1/login":
			var req map[string]string
			json.NewDecoder(r.Body).Decode(&req)
			if req["name"] != "alice" || req["password"] != "pw" {
				answer(w, 401, wire.Error{Code: "unauthenticated", Message: "bad credentials"})
				return
			}
			s.revoked = false
			answer(w, 200, map[string]any{"token": "v1.tok", "expires": time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC), "user": "alice"})
		case "/v1/logout":
			s.revoked = true
			answer(w, 200, map[string]bool{"ok": true})
		case "/v1/whoami":
			switch {
			case bearer && s.revoked:
				answer(w, 401, wire.Error{Code: "token_revoked", Message: "the session was ended"})
			case bearer:
				answer(w, 200, map[string]any{"user": "alice", "quota": 0, "used": 2048, "files": 2})
			case basic:
				answer(w, 200, map[string]any{"user": "admin", "admin": true})
			default:
				answer(w, 401, wire.Error{Code: "unauthenticated", Message: "no credentials"})
			}
		}
	}))
	t.Cleanup(s.Close)
	return s
}

func TestLoginSavesToken(t *testing.T) {
	srv := newSessionServer(t)
	cfg := t.TempDir()
	env := map[string]string{"COFFER_SERVER": srv.URL, "XDG_CONFIG_HOME": cfg}

	if r := runCoffer(t, env, "", "whoami"); r.code != 2 || !strings.Contains(r.stderr, "a password is needed") {
		t.Errorf("whoami before login: %+v", r)
	}
	if r := runCoffer(t, env, "nope\n", "login", "alice", "--password-stdin"); r.code != 1 {
		t.Errorf("login with a wrong password: %+v", r)
	}
	if _, err := os.Stat(filepath.Join(cfg, "coffer", sessionFile)); !os.IsNotExist(err) {
		t.Errorf("a failed login left a session file: %v", err)
	}
	r := runCoffer(t, env, "pw\n", "login", "alice", "--password-stdin")
	if r.code != 0 || !strings.HasPrefix(r.stdout, "logged in as alice until ") {
		t.Fatalf("login: %+v", r)
	}
	st, err := os.Stat(filepath.Join(cfg, "coffer", sessionFile))
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("session file: %v, %v", st, err)
	}
	// The token is used without any password, and the server is remembered.
	delete(env, "COFFER_SERVER")
	r = runCoffer(t, env, "", "--json", "whoami")
	var w struct {
		User string
		Used int64
	}
	if r.code != 0 || json.Unmarshal([]byte(r.stdout), &w) != nil || w.User != "alice" || w.Used != 2048 {
		t.Errorf("whoami with the token: %+v", r)
	}
	if got := srv.auths[len(srv.auths)-1]; got != "Bearer v1.tok" {
		t.Errorf("whoami sent Authorization %q", got)
	}
	if r := runCoffer(t, env, "", "logout"); r.code != 0 || r.stdout != "logged out alice\n" {
		t.Errorf("logout: %+v", r)
	}
	if _, err := os.Stat(filepath.Join(cfg, "coffer", sessionFile)); !os.IsNotExist(err) {
		t.Errorf("session file after logout: %v", err)
	}
	// Without the token: Basic credentials as before.
	env["COFFER_PASSWORD"] = "secret"
	if r := runCoffer(t, env, "", "whoami"); r.code != 0 || !strings.HasPrefix(r.stdout, "admin (admin)") {
		t.Errorf("whoami with Basic: %+v", r)
	}
}

func TestEndedSession(t *testing.T) {
	srv := newSessionServer(t)
	env := map[string]string{"COFFER_SERVER": srv.URL, "XDG_CONFIG_HOME": t.TempDir()}
	if r := runCoffer(t, env, "pw\n", "login", "alice", "--password-stdin"); r.code != 0 {
		t.Fatalf("login: %+v", r)
	}
	srv.mu.Lock()
	srv.revoked = true
	srv.mu.Unlock()
	r := runCoffer(t, env, "", "whoami")
	if r.code != 1 || !strings.Contains(r.stderr, "run 'coffer login NAME'") {
		t.Errorf("whoami with a revoked token: %+v", r)
	}
}

func TestFileCommandUsage(t *testing.T) {
	env := map[string]string{"COFFER_SERVER": deadServer(t), "COFFER_PASSWORD": "x"}
	for _, args := range [][]string{
		{"restore", "/a"},
		{"put", "onlyone"},
		{"get", "/a"},
		{"mv", "/a"},
		{"ls", "/a", "/b"},
		{"history"},
		{"rm", "--if-match", "x", "/a"},
		{"login"},
	} {
		if r := runCoffer(t, env, "", args...); r.code != 2 {
			t.Errorf("%q: exit %d, want 2 (stderr %q)", args, r.code, r.stderr)
		}
	}
}

// A session started with --server remembers that server: the token goes
// there later, not to the default. An explicit other --user is not run
// with alice's token. logout ends the saved session with its token even
// when Basic credentials are given.
func TestSessionServerUserAndLogout(t *testing.T) {
	srv := newSessionServer(t)
	cfg := t.TempDir()
	env := map[string]string{"XDG_CONFIG_HOME": cfg}
	if r := runCoffer(t, env, "pw\n", "--server", srv.URL, "login", "alice", "--password-stdin"); r.code != 0 {
		t.Fatalf("login: %+v", r)
	}
	if r := runCoffer(t, env, "", "whoami"); r.code != 0 || !strings.HasPrefix(r.stdout, "alice") {
		t.Fatalf("whoami after a --server login, without --server: %+v", r)
	}
	env["COFFER_PASSWORD"] = "secret"
	if r := runCoffer(t, env, "", "--user", "admin", "whoami"); r.code != 0 || !strings.HasPrefix(r.stdout, "admin") {
		t.Errorf("whoami --user admin with alice's session saved: %+v", r)
	}
	if got := srv.auths[len(srv.auths)-1]; !strings.HasPrefix(got, "Basic ") {
		t.Errorf("--user admin sent %q, not admin's Basic credentials", got)
	}
	if r := runCoffer(t, env, "secret\n", "--password-stdin", "logout"); r.code != 0 {
		t.Fatalf("logout: %+v", r)
	}
	if got := srv.auths[len(srv.auths)-1]; got != "Bearer v1.tok" {
		t.Errorf("logout sent %q, not the session's token", got)
	}
	srv.mu.Lock()
	revoked := srv.revoked
	srv.mu.Unlock()
	if !revoked {
		t.Errorf("logout did not end the session on the server")
	}
}
