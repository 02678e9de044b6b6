package client

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coffer-dev/coffer/internal/cdc"
	"github.com/coffer-dev/coffer/internal/wire"
)

func TestRoutePath(t *testing.T) {
	tests := []struct{ prefix, path, want string }{
		{"/v1/list", "", "/v1/list/"},
		{"/v1/list", "/", "/v1/list/"},
		{"/v1/files", "/docs/a.txt", "/v1/files/docs/a.txt"},
		{"/v1/files", "docs/a.txt/", "/v1/files/docs/a.txt"},
		{"/v1/files", "/a b/c?d#e%f", "/v1/files/a%20b/c%3Fd%23e%25f"},
	}
	for _, tc := range tests {
		if got := routePath(tc.prefix, tc.path); got != tc.want {
			t.Errorf("routePath(%q, %q) = %q, want %q", tc.prefix, tc.path, got, tc.want)
		}
	}
}

func TestTokenAuth(t *testing.T) {
	var mu sync.Mutex
	var auths []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		auths = append(auths, r.Header.Get("Authorization"))
		mu.Unlock()
		writeJSON(w, 200, WhoAmI{User: "alice", Quota: 10})
	}))
	defer srv.Close()
	for _, cfg := range []Config{
		{Servers: []string{srv.URL}, Token: "v1.tok", User: "alice", Password: "pw"},
		{Servers: []string{srv.URL}, User: "alice", Password: "pw"},
	} {
		c, err := New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		w, err := c.Whoami(context.Background())
		if err != nil || w.User != "alice" || w.Quota != 10 {
			t.Fatalf("whoami: %+v, %v", w, err)
		}
	}
	want := []string{"Bearer v1.tok", "Basic YWxpY2U6cHc="}
	if !slices.Equal(auths, want) {
		t.Errorf("Authorization headers %q, want %q", auths, want)
	}
	if _, err := New(Config{Servers: []string{srv.URL}, Token: "a b"}); !errors.Is(err, ErrInvalidConfig) {
		t.Errorf("a token with a space: %v", err)
	}
}

func TestLoginAndLogout(t *testing.T) {
	expires := time.Date(2026, 11, 26, 17, 46, 25, 0, time.UTC)
	var gotLogin map[string]string
	var loginAuth, logoutQuery, logoutKey string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.Method + " " + r.URL.Path {
		case "POST /v1/login":
			loginAuth = r.Header.Get("Authorization")
			json.NewDecoder(r.Body).Decode(&gotLogin)
			if gotLogin["password"] != "s3cret" {
				writeJSON(w, 401, wire.Error{Code: "unauthenticated", Message: "bad credentials"})
				return
			}
			writeJSON(w, 200, map[string]any{"token": "v1.abc", "expires": expires, "user": "alice", "admin": true})
		case "POST /v1/logout":
			logoutQuery, logoutKey = r.URL.RawQuery, r.Header.Get("Idempotency-Key")
			writeJSON(w, 200, map[string]bool{"ok": true})
		default:
			writeJSON(w, 404, wire.Error{Code: "not_found", Message: r.URL.Path})
		}
	}))
	defer srv.Close()
	c := newClient(t, srv.URL)
	s, err := c.Login(context.Background(), "alice", "s3cret")
	if err != nil {
		t.Fatal(err)
	}
	if want := (Session{Token: "v1.abc", Expires: expires, User: "alice", Admin: true}); *s != want {
		t.Errorf("session %+v, want %+v", *s, want)
	}
	if gotLogin["name"] != "alice" || loginAuth != "" {
		t.Errorf("login body %v, Authorization %q", gotLogin, loginAuth)
	}
	if _, err := c.Login(context.Background(), "alice", "nope"); !errors.Is(err, ErrUnauthenticated) {
		t.Errorf("wrong password: %v", err)
	}
	if err := c.Logout(context.Background(), true); err != nil {
		t.Fatal(err)
	}
	if logoutQuery != "all=1" || logoutKey == "" {
		t.Errorf("logout query %q, Idempotency-Key %q", logoutQuery, logoutKey)
	}
}

func TestErrorDetails(t *testing.T) {
	tests := []struct {
		status   int
		body     string
		sentinel error
		rev      uint64
	}{
		{409, `{"code":"conflict","message":"expected revision 1","current_rev":2,"op":0,"path":"/a"}`, ErrConflict, 2},
		{409, `{"code":"exists","message":"taken","current_rev":3}`, ErrExists, 3},
		{409, `{"code":"case_conflict","message":"taken"}`, ErrExists, 0},
		{401, `{"code":"token_expired","message":"log in again"}`, ErrSessionEnded, 0},
		{401, `{"code":"token_revoked","message":"ended"}`, ErrSessionEnded, 0},
		{400, `{"code":"hash_mismatch","message":"bad"}`, ErrHashMismatch, 0},
	}
	for _, tc := range tests {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(tc.status)
			io.WriteString(w, tc.body)
		}))
		_, err := newClient(t, srv.URL).Move(context.Background(), "/a", "/b", 1)
		srv.Close()
		if !errors.Is(err, tc.sentinel) {
			t.Errorf("%s: %v does not match %v", tc.body, err, tc.sentinel)
		}
		var e *Error
		if !errors.As(err, &e) || e.CurrentRev != tc.rev || e.Status != tc.status {
			t.Errorf("%s: %#v", tc.body, e)
		}
	}
	// The op index and path of a failed commit op.
	var e *Error
	err := answerError(409, []byte(`{"code":"conflict","message":"m","current_rev":7,"op":1,"path":"/x"}`))
	if !errors.As(err, &e) || e.Op == nil || *e.Op != 1 || e.Path != "/x" ||
		!strings.Contains(e.Error(), "current revision is 7") {
		t.Errorf("commit op error: %#v (%v)", e, e)
	}
}

func TestMetadataCalls(t *testing.T) {
	type call struct {
		method, path, query, ifMatch string
		key                          bool
		body                         string
	}
	var calls []call
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		calls = append(calls, call{r.Method, r.URL.EscapedPath(), r.URL.RawQuery, r.Header.Get("If-Match"),
			r.Header.Get("Idempotency-Key") != "", strings.TrimSpace(string(b))})
		switch {
		case strings.HasPrefix(r.URL.Path, "/v1/history/"):
			io.WriteString(w, `{"revisions":[{"rev":2,"op":"delete","time":5,"deleted":true,"parent":1,"name":"a b","size":0,"mtime":4,"mode":420,"hash":"00"},{"rev":1,"op":"put","time":3,"parent":1,"name":"a b","size":6,"mtime":4,"mode":420,"hash":"ab","blocks":[{"ref":"ab","size":6}]}]}`)
		case strings.HasPrefix(r.URL.Path, "/v1/stat/"):
			io.WriteString(w, `{"id":5,"ns":2,"parent":4,"name":"a b","size":6,"mtime":4,"mode":420,"hash":"ab","rev":2,"modified":9,"deleted":true,"path":"/d/a b"}`)
		default:
			io.WriteString(w, `{"path":"/d/a b","id":5,"rev":3,"seq":8}`)
		}
	}))
	defer srv.Close()
	c := newClient(t, srv.URL)
	ctx := context.Background()
	revs, err := c.History(ctx, "/d/a b", 10)
	if err != nil {
		t.Fatal(err)
	}
	wantRevs := []Revision{
		{Rev: 2, Op: "delete", Time: 5, Deleted: true, Parent: 1, Name: "a b", Mtime: 4, Mode: 420, Hash: "00"},
		{Rev: 1, Op: "put", Time: 3, Parent: 1, Name: "a b", Size: 6, Mtime: 4, Mode: 420, Hash: "ab", Blocks: []wire.Block{{Ref: "ab", Size: 6}}},
	}
	if !reflect.DeepEqual(revs, wantRevs) {
		t.Errorf("history %+v\nwant %+v", revs, wantRevs)
	}
	e, err := c.Stat(ctx, "/d/a b", true)
	if err != nil || e.ID != 5 || !e.Deleted || e.Path != "/d/a b" || e.Modified != 9 {
		t.Errorf("stat %+v, %v", e, err)
	}
	res, err := c.Delete(ctx, "/d/a b", 2)
	if err != nil || res.Rev != 3 || res.ID != 5 || res.Seq != 8 {
		t.Errorf("delete %+v, %v", res, err)
	}
	if _, err := c.Move(ctx, "/d/a b", "/e", 3); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Mkdir(ctx, "/new dir"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Restore(ctx, wire.RestoreRequest{Path: "/d/a b", Rev: 1}); err != nil {
		t.Fatal(err)
	}
	want := []call{
		{"GET", "/v1/history/d/a%20b", "limit=10", "", false, ""},
		{"GET", "/v1/stat/d/a%20b", "deleted=1", "", false, ""},
		{"DELETE", "/v1/files/d/a%20b", "", "2", true, ""},
		{"POST", "/v1/move", "", "", true, `{"from":"/d/a b","to":"/e","if_match":3}`},
		{"POST", "/v1/mkdir/new%20dir", "", "", true, ""},
		{"POST", "/v1/restore", "", "", true, `{"path":"/d/a b","rev":1}`},
	}
	if !reflect.DeepEqual(calls, want) {
		t.Errorf("calls\n%+v\nwant\n%+v", calls, want)
	}
}

func TestListAllFollowsPages(t *testing.T) {
	var tokens []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		tokens = append(tokens, q.Get("page_token"))
		if r.URL.Path != "/v1/list/" || q.Get("recursive") != "1" || q.Get("deleted") != "1" {
			writeJSON(w, 400, wire.Error{Code: "invalid_argument", Message: r.URL.String()})
			return
		}
		switch q.Get("page_token") {
		case "":
			writeJSON(w, 200, ListPage{Entries: []Entry{{ID: 1, Path: "/a"}, {ID: 2, Path: "/b"}}, NextPageToken: "t1"})
		case "t1":
			writeJSON(w, 200, ListPage{Entries: []Entry{{ID: 3, Path: "/c"}}})
		}
	}))
	defer srv.Close()
	got, err := newClient(t, srv.URL).ListAll(context.Background(), "/", ListOptions{Recursive: true, Deleted: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 || got[2].ID != 3 || !slices.Equal(tokens, []string{"", "t1"}) {
		t.Errorf("entries %+v, tokens %q", got, tokens)
	}
}

// blockServer fakes the block routes and commit for one user: present holds
// the refs its files reference already.
type blockServer struct {
	*httptest.Server
	mu       sync.Mutex
	present  map[string]bool
	stored   map[string][]byte
	asked    [][]string
	commits  []wire.CommitRequest
	keys     []string
	failures int // commits to answer 503 first
	rev      uint64
}

func newBlockServer(t *testing.T, present ...string) *blockServer {
	b := &blockServer{present: map[string]bool{}, stored: map[string][]byte{}}
	for _, p := range present {
		b.present[p] = true
	}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/blocks/missing", func(w http.ResponseWriter, r *http.Request) {
		var req wire.MissingRequest
		json.NewDecoder(r.Body).Decode(&req)
		b.mu.Lock()
		defer b.mu.Unlock()
		b.asked = append(b.asked, req.Refs)
		missing := []string{}
		for _, ref := range req.Refs {
			if !b.present[ref] {
				missing = append(missing, ref)
			}
		}
		writeJSON(w, 200, wire.MissingResponse{Missing: missing})
	})
	mux.HandleFunc("PUT /v1/blocks/{ref}", func(w http.ResponseWriter, r *http.Request) {
		data, _ := io.ReadAll(r.Body)
		sum := sha256.Sum256(data)
		ref := r.PathValue("ref")
		if hex.EncodeToString(sum[:]) != ref {
			writeJSON(w, 400, wire.Error{Code: "hash_mismatch", Message: "bad block"})
			return
		}
		b.mu.Lock()
		b.stored[ref] = data
		b.mu.Unlock()
		writeJSON(w, 200, wire.BlockReceipt{Ref: ref, Size: int64(len(data)), Receipt: "r." + ref})
	})
	mux.HandleFunc("POST /v1/commit", func(w http.ResponseWriter, r *http.Request) {
		var req wire.CommitRequest
		json.NewDecoder(r.Body).Decode(&req)
		b.mu.Lock()
		defer b.mu.Unlock()
		b.keys = append(b.keys, r.Header.Get("Idempotency-Key"))
		if b.failures > 0 {
			b.failures--
			writeJSON(w, 503, wire.Error{Code: "unavailable", Message: "no leader"})
			return
		}
		b.commits = append(b.commits, req)
		if op := req.Ops[0]; op.IfMatch != 0 && op.IfMatch != b.rev {
			writeJSON(w, 409, wire.Error{Code: "conflict", Message: "expected revision", CurrentRev: b.rev, Op: new(int), Path: op.Path})
			return
		}
		b.rev++
		writeJSON(w, 200, CommitResult{Seq: 10 + b.rev, Index: 99, Ops: []OpResult{{ID: 7, Rev: b.rev, Path: req.Ops[0].Path}}})
	})
	b.Server = httptest.NewServer(mux)
	t.Cleanup(b.Close)
	return b
}

// chunksOf cuts data as Upload does.
func chunksOf(t *testing.T, data []byte) []cdc.Chunk {
	var chunks []cdc.Chunk
	if err := cdc.Split(context.Background(), bytes.NewReader(data), cdc.Config{}, 0, func(c cdc.Chunk) error {
		chunks = append(chunks, c)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return chunks
}

func randomBytes(n int, seed uint64) []byte {
	rnd := rand.New(rand.NewPCG(seed, 1))
	b := make([]byte, n+8)
	for i := 0; i < n; i += 8 {
		binary.LittleEndian.PutUint64(b[i:], rnd.Uint64())
	}
	return b[:n]
}

func TestUploadSendsOnlyMissingBlocks(t *testing.T) {
	data := randomBytes(5<<20, 1)
	chunks := chunksOf(t, data)
	if len(chunks) < 3 {
		t.Fatalf("only %d chunks", len(chunks))
	}
	refs := make([]string, len(chunks))
	for i, c := range chunks {
		refs[i] = hex.EncodeToString(c.Sum[:])
	}
	srv := newBlockServer(t, refs[0], refs[2]) // the server has blocks 0 and 2
	c := newClient(t, srv.URL)
	mtime := time.Unix(1700000000, 5)
	res, err := c.Upload(context.Background(), bytes.NewReader(data), "/big.bin",
		UploadOptions{IfNoneMatch: true, Mtime: mtime, Mode: 0o755, Parallel: 2})
	if err != nil {
		t.Fatal(err)
	}
	whole := sha256.Sum256(data)
	if res.Rev != 1 || res.ID != 7 || res.Path != "/big.bin" || res.Size != int64(len(data)) ||
		res.Hash != hex.EncodeToString(whole[:]) || res.Blocks != len(chunks) || res.Sent != len(chunks)-2 {
		t.Errorf("result %+v", res)
	}
	var wantSent []string
	for i, ref := range refs {
		if i != 0 && i != 2 {
			wantSent = append(wantSent, ref)
		}
	}
	var gotSent []string
	for ref := range srv.stored {
		gotSent = append(gotSent, ref)
	}
	slices.Sort(gotSent)
	slices.Sort(wantSent)
	if !slices.Equal(gotSent, wantSent) {
		t.Errorf("sent blocks %v, want %v", gotSent, wantSent)
	}
	if len(srv.commits) != 1 {
		t.Fatalf("%d commits", len(srv.commits))
	}
	cr := srv.commits[0]
	op := cr.Ops[0]
	var opRefs []string
	for _, b := range op.Blocks {
		opRefs = append(opRefs, b.Ref)
	}
	if len(cr.Ops) != 1 || op.Kind != "put" || op.Path != "/big.bin" || !op.IfNoneMatch || op.IfMatch != 0 ||
		op.Size != int64(len(data)) || op.Mtime != mtime.UnixNano() || op.Mode != 0o755 || op.Hash != res.Hash ||
		!slices.Equal(opRefs, refs) {
		t.Errorf("commit op %+v", op)
	}
	var wantReceipts []string
	for _, ref := range wantSent {
		wantReceipts = append(wantReceipts, "r."+ref)
	}
	gotReceipts := slices.Clone(cr.Receipts)
	slices.Sort(gotReceipts)
	if !slices.Equal(gotReceipts, wantReceipts) {
		t.Errorf("receipts %v, want %v", gotReceipts, wantReceipts)
	}
	if srv.keys[0] == "" {
		t.Error("the commit has no Idempotency-Key")
	}
}

func TestUploadRepeatedAndEmpty(t *testing.T) {
	// Zeros cut into equal chunks: the block is asked for and sent once.
	data := make([]byte, 3*cdc.DefaultMax)
	srv := newBlockServer(t)
	c := newClient(t, srv.URL)
	res, err := c.Upload(context.Background(), bytes.NewReader(data), "/zeros", UploadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(srv.asked) != 1 || len(srv.asked[0]) != 1 {
		t.Errorf("asked for %v", srv.asked)
	}
	if res.Blocks < 3 || res.Sent != 1 || len(srv.stored) != 1 || len(srv.commits[0].Receipts) != 1 ||
		len(srv.commits[0].Ops[0].Blocks) != res.Blocks {
		t.Errorf("result %+v, stored %d, receipts %d", res, len(srv.stored), len(srv.commits[0].Receipts))
	}

	// An empty file: no blocks, the empty hash.
	res, err = c.Upload(context.Background(), strings.NewReader(""), "/empty", UploadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if res.Size != 0 || res.Blocks != 0 || res.Hash != "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855" {
		t.Errorf("empty upload %+v", res)
	}
	if op := srv.commits[1].Ops[0]; len(op.Blocks) != 0 || op.Mtime == 0 {
		t.Errorf("empty commit op %+v", op)
	}
}

func TestUploadConflictAndRetry(t *testing.T) {
	srv := newBlockServer(t)
	dead := newBlockServer(t)
	dead.failures = 1 // its commit answers 503: the retry goes to the next server with the same key
	c := newClient(t, dead.URL, srv.URL)
	if _, err := c.Upload(context.Background(), strings.NewReader("hello"), "/a", UploadOptions{}); err != nil {
		t.Fatal(err)
	}
	if len(dead.keys) != 1 || len(srv.keys) != 1 || dead.keys[0] != srv.keys[0] {
		t.Errorf("Idempotency-Keys: first server %q, second %q", dead.keys, srv.keys)
	}
	// A stale revision.
	_, err := c.Upload(context.Background(), strings.NewReader("again"), "/a", UploadOptions{IfMatch: 5})
	var e *Error
	if !errors.Is(err, ErrConflict) || !errors.As(err, &e) || e.CurrentRev != 1 {
		t.Errorf("stale upload: %v (%#v)", err, e)
	}
	// A caller's own key is the commit's.
	if _, err := c.Upload(context.Background(), strings.NewReader("mine"), "/b", UploadOptions{IdempotencyKey: "my-key-1"}); err != nil {
		t.Fatal(err)
	}
	if got := srv.keys[len(srv.keys)-1]; got != "my-key-1" {
		t.Errorf("commit sent Idempotency-Key %q, want the caller's my-key-1", got)
	}
}

func TestDownloadVerifies(t *testing.T) {
	content := []byte("hello, coffer")
	sum := sha256.Sum256(content)
	good := hex.EncodeToString(sum[:])
	var sendHash string
	var gotRev string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.EscapedPath() != "/v1/files/d/a%20b.txt" {
			writeJSON(w, 404, wire.Error{Code: "not_found", Message: r.URL.Path})
			return
		}
		gotRev = r.URL.Query().Get("rev")
		h := w.Header()
		h.Set("X-Coffer-Sha256", sendHash)
		h.Set("X-Coffer-Rev", "3")
		h.Set("X-Coffer-Id", "9")
		h.Set("X-Coffer-Mtime", "1700000000000000007")
		h.Set("X-Coffer-Mode", "755")
		w.Write(content)
	}))
	defer srv.Close()
	c := newClient(t, deadURL(t), srv.URL) // the first server is down: fail over

	sendHash = good
	var buf bytes.Buffer
	info, err := c.Download(context.Background(), "/d/a b.txt", 3, &buf)
	if err != nil {
		t.Fatal(err)
	}
	want := FileInfo{ID: 9, Rev: 3, Size: int64(len(content)), Mtime: time.Unix(0, 1700000000000000007), Mode: 0o755, Hash: good}
	if *info != want || !bytes.Equal(buf.Bytes(), content) || gotRev != "3" {
		t.Errorf("info %+v, want %+v; body %q; rev asked %q", *info, want, buf.Bytes(), gotRev)
	}

	other := sha256.Sum256([]byte("something else"))
	sendHash = hex.EncodeToString(other[:])
	if _, err := c.Download(context.Background(), "/d/a b.txt", 0, io.Discard); !errors.Is(err, ErrHashMismatch) {
		t.Errorf("a wrong hash: %v", err)
	}
	if gotRev != "" {
		t.Errorf("rev 0 asked for rev %q", gotRev)
	}
	if _, err := c.Download(context.Background(), "/missing", 0, io.Discard); !errors.Is(err, ErrNotFound) {
		t.Errorf("a missing file: %v", err)
	}
}

func TestUploadBatchesAndFailure(t *testing.T) {
	data := randomBytes(20<<20, 3) // more than one batch
	chunks := chunksOf(t, data)
	srv := newBlockServer(t)
	c := newClient(t, srv.URL)
	res, err := c.Upload(context.Background(), bytes.NewReader(data), "/b", UploadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(srv.asked) < 2 || res.Sent != len(chunks) || len(srv.stored) != len(chunks) {
		t.Errorf("asked %d times; sent %d of %d chunks, stored %d", len(srv.asked), res.Sent, len(chunks), len(srv.stored))
	}
	var got []byte
	for _, b := range srv.commits[0].Ops[0].Blocks {
		got = append(got, srv.stored[b.Ref]...)
	}
	if !bytes.Equal(got, data) {
		t.Error("the committed blocks do not make up the file")
	}

	// A block the server refuses: an error, and no commit.
	bad := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/v1/blocks/missing":
			srv.Config.Handler.ServeHTTP(w, r)
		case "/v1/commit":
			t.Error("committed after a failed block")
			writeJSON(w, 500, wire.Error{Code: "internal", Message: "no"})
		default:
			writeJSON(w, 507, wire.Error{Code: "quota_exceeded", Message: "over quota"})
		}
	}))
	defer bad.Close()
	_, err = newClient(t, bad.URL).Upload(context.Background(), bytes.NewReader(randomBytes(20<<20, 4)), "/c", UploadOptions{})
	var e *Error
	if !errors.As(err, &e) || e.Code != "quota_exceeded" {
		t.Errorf("upload with a refused block: %v", err)
	}
}

// A server that stops sending in the middle of a body is an error after
// Config.Timeout, not a hang.
func TestDownloadStallsOut(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "100")
		w.Header().Set("X-Coffer-Sha256", strings.Repeat("0", 64))
		w.Write([]byte("only the first bytes"))
		w.(http.Flusher).Flush()
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer srv.Close()
	defer close(release)
	c, err := New(Config{Servers: []string{srv.URL}, Timeout: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := c.Download(context.Background(), "/f", 0, io.Discard)
		done <- err
	}()
	select {
	case err := <-done:
		if !errors.Is(err, ErrUnavailable) {
			t.Fatalf("a stalled download: %v, want ErrUnavailable", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("a stalled download is still waiting after 30 s")
	}
}
