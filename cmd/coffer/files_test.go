package main

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coffer-dev/coffer/client"
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

// fileServer fakes the file routes put, get and history use: every block
// is missing, commits of put ops are kept, GET serves the committed
// content, and history answers revs.
type fileServer struct {
	*httptest.Server
	mu     sync.Mutex
	blocks map[string][]byte
	files  map[string]wire.Op // path -> the last put op
	revs   []client.Revision  // the answer to any history request
}

func newFileServer(t *testing.T) *fileServer {
	s := &fileServer{blocks: map[string][]byte{}, files: map[string]wire.Op{}}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/blocks/missing", func(w http.ResponseWriter, r *http.Request) {
		var req wire.MissingRequest
		json.NewDecoder(r.Body).Decode(&req)
		answer(w, 200, wire.MissingResponse{Missing: req.Refs})
	})
	mux.HandleFunc("PUT /v1/blocks/{ref}", func(w http.ResponseWriter, r *http.Request) {
		data, _ := io.ReadAll(r.Body)
		s.mu.Lock()
		s.blocks[r.PathValue("ref")] = data
		s.mu.Unlock()
		answer(w, 200, wire.BlockReceipt{Ref: r.PathValue("ref"), Size: int64(len(data)), Receipt: "r-" + r.PathValue("ref")})
	})
	mux.HandleFunc("POST /v1/commit", func(w http.ResponseWriter, r *http.Request) {
		var req wire.CommitRequest
		json.NewDecoder(r.Body).Decode(&req)
		var res client.CommitResult
		s.mu.Lock()
		for i, op := range req.Ops {
			s.files[op.Path] = op
			res.Ops = append(res.Ops, client.OpResult{ID: uint64(i + 1), Rev: 1, Path: op.Path})
		}
		s.mu.Unlock()
		answer(w, 200, res)
	})
	mux.HandleFunc("POST /v1/mkdir/{path...}", func(w http.ResponseWriter, r *http.Request) {
		answer(w, 201, wire.FileResult{Path: "/" + r.PathValue("path"), ID: 9, Rev: 1})
	})
	mux.HandleFunc("GET /v1/stat/{path...}", func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		op, ok := s.files["/"+r.PathValue("path")]
		s.mu.Unlock()
		if !ok {
			answer(w, 404, wire.Error{Code: "not_found", Message: "no file"})
			return
		}
		answer(w, 200, client.Entry{ID: 1, Name: path.Base(op.Path), Path: op.Path, Size: op.Size, Hash: op.Hash, Rev: 1, Blocks: op.Blocks})
	})
	mux.HandleFunc("GET /v1/files/{path...}", func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		op, ok := s.files["/"+r.PathValue("path")]
		var content []byte
		for _, b := range op.Blocks {
			content = append(content, s.blocks[b.Ref]...)
		}
		s.mu.Unlock()
		if !ok {
			answer(w, 404, wire.Error{Code: "not_found", Message: "no file"})
			return
		}
		w.Header().Set("X-Coffer-Sha256", op.Hash)
		w.Header().Set("X-Coffer-Rev", "1")
		w.Header().Set("Content-Length", strconv.Itoa(len(content)))
		w.Write(content)
	})
	mux.HandleFunc("GET /v1/history/{path...}", func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		defer s.mu.Unlock()
		answer(w, 200, map[string]any{"revisions": s.revs})
	})
	s.Server = httptest.NewServer(mux)
	t.Cleanup(s.Close)
	return s
}

// history --json prints each revision with rev, size, mtime, deleted and
// content_hash (and hash, the same, as the API names it).
func TestHistoryJSON(t *testing.T) {
	srv := newFileServer(t)
	h1, h2 := strings.Repeat("ab", 32), strings.Repeat("0", 64)
	srv.revs = []client.Revision{
		{Rev: 3, Op: "delete", Time: 30, Deleted: true, Name: "a", Size: 0, Mtime: 7, Mode: 0o644, Hash: h2},
		{Rev: 2, Op: "restore", Time: 20, Name: "a", Size: 5, Mtime: 7, Mode: 0o644, Hash: h1, RestoredFrom: 1},
		{Rev: 1, Op: "put", Time: 10, Name: "a", Size: 5, Mtime: 6, Mode: 0o600, Hash: h1},
	}
	r := runCoffer(t, map[string]string{"COFFER_SERVER": srv.URL, "COFFER_PASSWORD": "x"}, "", "history", "--json", "/a")
	if r.code != 0 {
		t.Fatalf("history --json: %+v", r)
	}
	var got []map[string]any
	if err := json.Unmarshal([]byte(r.stdout), &got); err != nil || len(got) != 3 {
		t.Fatalf("history --json printed %v:\n%s", err, r.stdout)
	}
	for i, want := range srv.revs {
		g := got[i]
		for k, v := range map[string]any{"rev": float64(want.Rev), "size": float64(want.Size), "mtime": float64(want.Mtime),
			"deleted": want.Deleted, "content_hash": want.Hash, "hash": want.Hash, "op": want.Op, "time": float64(want.Time)} {
			if g[k] != v {
				t.Errorf("revision %d: %s = %v, want %v", want.Rev, k, g[k], v)
			}
		}
	}
	if got[1]["restored_from"] != float64(1) {
		t.Errorf("restored_from: %v", got[1]["restored_from"])
	}
}
