package gateway

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coffer-dev/coffer/blockstore"
	"github.com/coffer-dev/coffer/blockstore/memstore"
	"github.com/coffer-dev/coffer/raftmeta"
	"github.com/coffer-dev/coffer/raftmeta/metatest"
)

// shardMeta is Meta over one real raftmeta shard (a one-replica group on
// disk): every group maps to it. Routing is cluster/route's job and is
// tested there and in the cluster's end-to-end tests.
type shardMeta struct{ sh *raftmeta.Shard }

func (m shardMeta) Authenticate(ctx context.Context, _ uint64, name, password string) (*raftmeta.User, error) {
	return m.sh.Authenticate(ctx, name, password)
}
func (m shardMeta) User(ctx context.Context, _ uint64, name string, o raftmeta.ReadOptions) (*raftmeta.User, error) {
	return m.sh.User(ctx, name, o)
}
func (m shardMeta) Users(ctx context.Context, _ uint64, o raftmeta.UsersOptions) (*raftmeta.UserPage, error) {
	return m.sh.Users(ctx, o)
}
func (m shardMeta) CreateUser(ctx context.Context, _ uint64, req raftmeta.CreateUserRequest) (*raftmeta.User, error) {
	return m.sh.CreateUser(ctx, req)
}
func (m shardMeta) DeleteUser(ctx context.Context, _ uint64, rid, name string) error {
	return m.sh.DeleteUser(ctx, rid, name)
}
func (m shardMeta) SetPassword(ctx context.Context, _ uint64, rid, name, password string) error {
	return m.sh.SetPassword(ctx, rid, name, password)
}
func (m shardMeta) SetQuota(ctx context.Context, _ uint64, rid, name string, quota int64) error {
	return m.sh.SetQuota(ctx, rid, name, quota)
}
func (m shardMeta) RevokeToken(ctx context.Context, _ uint64, rid, tokenID string, expires time.Time) error {
	return m.sh.RevokeToken(ctx, rid, tokenID, expires)
}
func (m shardMeta) RevokeSessions(ctx context.Context, _ uint64, rid, name string) (*raftmeta.User, error) {
	return m.sh.RevokeSessions(ctx, rid, name)
}
func (m shardMeta) TokenRevoked(ctx context.Context, _ uint64, tokenID string, o raftmeta.ReadOptions) (bool, error) {
	return m.sh.TokenRevoked(ctx, tokenID, o)
}
func (m shardMeta) Commit(ctx context.Context, _ uint64, req raftmeta.CommitRequest) (*raftmeta.CommitResult, error) {
	return m.sh.Commit(ctx, req)
}
func (m shardMeta) Stat(ctx context.Context, _, ns uint64, t raftmeta.Target, o raftmeta.StatOptions) (*raftmeta.Entry, error) {
	return m.sh.Stat(ctx, ns, t, o)
}
func (m shardMeta) List(ctx context.Context, _, ns uint64, t raftmeta.Target, o raftmeta.ListOptions) (*raftmeta.ListPage, error) {
	return m.sh.List(ctx, ns, t, o)
}
func (m shardMeta) History(ctx context.Context, _, ns uint64, t raftmeta.Target, o raftmeta.HistoryOptions) ([]raftmeta.Revision, error) {
	return m.sh.History(ctx, ns, t, o)
}
func (m shardMeta) Namespace(ctx context.Context, _, ns uint64, o raftmeta.ReadOptions) (*raftmeta.Namespace, error) {
	return m.sh.Namespace(ctx, ns, o)
}
func (m shardMeta) Referenced(ctx context.Context, _, ns uint64, refs []raftmeta.Sum, o raftmeta.ReadOptions) ([]bool, error) {
	return m.sh.Referenced(ctx, ns, refs, o)
}
func (m shardMeta) Changes(ctx context.Context, _, ns, cursor uint64, limit int, o raftmeta.ReadOptions) (*raftmeta.ChangesPage, error) {
	return m.sh.Changes(ctx, ns, cursor, limit, o)
}
func (m shardMeta) WaitChanges(ctx context.Context, _, ns, cursor uint64, limit int, timeout time.Duration, o raftmeta.ReadOptions) (*raftmeta.ChangesPage, error) {
	return m.sh.WaitChanges(ctx, ns, cursor, limit, timeout, o)
}
func (m shardMeta) CreateUpload(ctx context.Context, _ uint64, rid string, ns uint64, id, path string, state, meta []byte) (*raftmeta.Upload, error) {
	return m.sh.CreateUpload(ctx, rid, ns, id, path, state, meta)
}
func (m shardMeta) AppendUpload(ctx context.Context, _ uint64, rid string, ns uint64, id string, offset int64, blocks []raftmeta.Block, state []byte) (*raftmeta.Upload, error) {
	return m.sh.AppendUpload(ctx, rid, ns, id, offset, blocks, state)
}
func (m shardMeta) GetUpload(ctx context.Context, _, ns uint64, id string, o raftmeta.ReadOptions) (*raftmeta.Upload, error) {
	return m.sh.GetUpload(ctx, ns, id, o)
}
func (m shardMeta) DeleteUpload(ctx context.Context, _ uint64, rid string, ns uint64, id string) error {
	return m.sh.DeleteUpload(ctx, rid, ns, id)
}

// memBlocks is Blocks over an in-memory store, counting puts and gets.
type memBlocks struct {
	st *memstore.Store

	mu         sync.Mutex
	puts, gets int
	failPuts   bool
}

func (b *memBlocks) Put(ctx context.Context, ref blockstore.Ref, data []byte) error {
	b.mu.Lock()
	b.puts++
	fail := b.failPuts
	b.mu.Unlock()
	if fail {
		return blockstore.ErrUnavailable
	}
	return b.st.Put(ctx, ref, data)
}

func (b *memBlocks) Get(ctx context.Context, ref blockstore.Ref) ([]byte, error) {
	b.mu.Lock()
	b.gets++
	b.mu.Unlock()
	return b.st.Get(ctx, ref)
}

// env is a gateway over a real one-replica shard and in-memory blocks,
// with an admin "root" (password "rootpw"). The gateway and the shard share
// clk, a clock that stands still until a test moves it: token issue times,
// receipt and token expiry, the revocation cache and the shard's time
// stamps all follow it.
type env struct {
	t      *testing.T
	ts     *httptest.Server
	gw     *Server
	cfg    Config // the gateway's config, to start more gateways over the same shard and blocks
	shard  *raftmeta.Shard
	blocks *memBlocks
	clk    *clock

	connMu sync.Mutex
	closed map[string]bool // client addresses whose server-side connection closed
}

type envOpts struct {
	configure func(*Config)
}

func newEnv(t *testing.T, o envOpts) *env {
	t.Helper()
	clk := &clock{t: time.Now()}
	mc := metatest.New(t, metatest.Options{Replicas: 1, Configure: func(c *raftmeta.Config) { c.Now = clk.now }})
	sh, err := mc.LeaderShard(10 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	st, err := memstore.New(memstore.Config{})
	if err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, shard: sh, blocks: &memBlocks{st: st}, clk: clk, closed: map[string]bool{}}
	cfg := Config{Meta: shardMeta{sh}, Blocks: e.blocks, Cluster: fakeCluster{key: bytes.Repeat([]byte{7}, 32)},
		TokenTTL: time.Hour, UserRate: -1, Now: clk.now}
	if o.configure != nil {
		o.configure(&cfg)
	}
	e.cfg = cfg
	e.gw, err = New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	e.gw.Register(mux)
	e.ts = httptest.NewUnstartedServer(mux)
	e.ts.Config.ConnState = func(c net.Conn, st http.ConnState) {
		if st == http.StateClosed || st == http.StateHijacked {
			e.connMu.Lock()
			e.closed[c.RemoteAddr().String()] = true
			e.connMu.Unlock()
		}
	}
	e.ts.Start()
	t.Cleanup(e.ts.Close)
	if _, err := sh.CreateUser(context.Background(), raftmeta.CreateUserRequest{RequestID: "root", Name: "root", Password: "rootpw", Admin: true}); err != nil {
		t.Fatal(err)
	}
	return e
}

// secondGateway starts another gateway (a new Server, as after a restart)
// over the env's shard and blocks, with the same config.
func (e *env) secondGateway() *httptest.Server {
	e.t.Helper()
	gw, err := New(e.cfg)
	if err != nil {
		e.t.Fatal(err)
	}
	mux := http.NewServeMux()
	gw.Register(mux)
	ts := httptest.NewServer(mux)
	e.t.Cleanup(ts.Close)
	return ts
}

// waitConnClosed waits until the server has closed its side of the
// connection from the client address addr: the handler of its last
// request has returned.
func (e *env) waitConnClosed(addr string) {
	e.t.Helper()
	waitFor(e.t, 10*time.Second, "the server to close the connection from "+addr, func() bool {
		e.connMu.Lock()
		defer e.connMu.Unlock()
		return e.closed[addr]
	})
}

// waitFor polls cond until it holds, failing the test after limit.
func waitFor(t testing.TB, limit time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// user creates a user and returns a logged-in session.
func (e *env) user(name string) *sess {
	e.t.Helper()
	if _, err := e.shard.CreateUser(context.Background(), raftmeta.CreateUserRequest{RequestID: "mk-" + name, Name: name, Password: name + "-pw"}); err != nil {
		e.t.Fatal(err)
	}
	return e.login(name, name+"-pw")
}

func (e *env) login(name, password string) *sess {
	e.t.Helper()
	s := &sess{e: e}
	resp := s.do("POST", "/v1/login", strings.NewReader(`{"name":`+jsonString(name)+`,"password":`+jsonString(password)+`}`), nil)
	if resp.status != 200 {
		e.t.Fatalf("login %s: %d %s", name, resp.status, resp.body)
	}
	s.token = resp.json()["token"].(string)
	return s
}

func jsonString(s string) string { b, _ := json.Marshal(s); return string(b) }

// sess is a logged-in user.
type sess struct {
	e     *env
	token string
	ts    *httptest.Server // nil: the env's gateway
}

type answer struct {
	status int
	hdr    http.Header
	body   []byte
}

func (a answer) json() map[string]any {
	var m map[string]any
	_ = json.Unmarshal(a.body, &m)
	return m
}

// do sends a request with the session's token. A transport error is
// reported (without stopping the test) as status -1 with the error as body.
func (s *sess) do(method, path string, body io.Reader, hdr map[string]string) answer {
	s.e.t.Helper()
	a, err := s.tryDo(method, path, body, hdr)
	if err != nil {
		s.e.t.Errorf("%s %s: %v", method, path, err)
		return answer{status: -1, hdr: http.Header{}, body: []byte(err.Error())}
	}
	return a
}

// tryDo is do for goroutines other than the test's: it only returns the
// error.
func (s *sess) tryDo(method, path string, body io.Reader, hdr map[string]string) (answer, error) {
	base := s.e.ts.URL
	if s.ts != nil {
		base = s.ts.URL
	}
	req, err := http.NewRequest(method, base+path, body)
	if err != nil {
		return answer{}, err
	}
	if s.token != "" {
		req.Header.Set("Authorization", "Bearer "+s.token)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := s.e.ts.Client().Do(req)
	if err != nil {
		return answer{}, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return answer{}, err
	}
	return answer{status: resp.StatusCode, hdr: resp.Header, body: b}, nil
}

// via returns the session talking to another gateway.
func (s *sess) via(ts *httptest.Server) *sess {
	c := *s
	c.ts = ts
	return &c
}

// code is an error answer's code ("" if none).
func (a answer) code() string {
	c, _ := a.json()["code"].(string)
	return c
}

// want checks an answer's status and, if code is set, its error code.
func want(t testing.TB, what string, a answer, status int, code string) bool {
	t.Helper()
	if a.status != status || (code != "" && a.code() != code) {
		t.Errorf("%s: HTTP %d %.300s, want %d %s", what, a.status, a.body, status, code)
		return false
	}
	return true
}

// decodeAs decodes an answer's JSON body.
func decodeAs[T any](t testing.TB, a answer) T {
	t.Helper()
	var v T
	if err := json.Unmarshal(a.body, &v); err != nil {
		t.Fatalf("HTTP %d body %.300q: %v", a.status, a.body, err)
	}
	return v
}

func randBytes(n int) []byte {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return b
}

func sha(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// put PUTs a file; hdr may be nil.
func (s *sess) put(path string, data []byte, hdr map[string]string) answer {
	s.e.t.Helper()
	return s.do("PUT", "/v1/files/"+strings.TrimPrefix(path, "/"), bytes.NewReader(data), hdr)
}

// postJSON POSTs v as JSON; hdr may be nil.
func (s *sess) postJSON(path string, v any, hdr map[string]string) answer {
	s.e.t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		s.e.t.Fatal(err)
	}
	return s.do("POST", path, bytes.NewReader(b), hdr)
}

// history returns a file's revisions, newest first.
func (s *sess) history(path string) []raftmeta.Revision {
	s.e.t.Helper()
	a := s.do("GET", "/v1/history/"+strings.TrimPrefix(path, "/"), nil, nil)
	if a.status != 200 {
		s.e.t.Fatalf("history %s: HTTP %d %s", path, a.status, a.body)
	}
	return decodeAs[struct {
		Revisions []raftmeta.Revision `json:"revisions"`
	}](s.e.t, a).Revisions
}

// head returns the change feed's head of the session's namespace.
func (s *sess) head() uint64 {
	s.e.t.Helper()
	a := s.do("GET", "/v1/whoami", nil, nil)
	if a.status != 200 {
		s.e.t.Fatalf("whoami: HTTP %d %s", a.status, a.body)
	}
	return decodeAs[Whoami](s.e.t, a).Cursor
}

// userID returns a user's ID, read from the shard.
func (e *env) userID(name string) uint64 {
	e.t.Helper()
	u, err := e.shard.User(context.Background(), name, raftmeta.ReadOptions{})
	if err != nil {
		e.t.Fatal(err)
	}
	return u.ID
}

// getCount is the number of Get calls so far.
func (b *memBlocks) getCount() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.gets
}

// uploadsUsed is what the upload memory budget holds now.
func (e *env) uploadsUsed() int64 {
	e.gw.uploads.mu.Lock()
	defer e.gw.uploads.mu.Unlock()
	return e.gw.uploads.used
}

// putCount is the number of Put calls so far.
func (b *memBlocks) putCount() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.puts
}

// cutOff sends a request that declares a Content-Length of declared bytes
// over a raw connection, writes only body, then shuts down the sending
// side (the server reads the body's early end), reads the answer and waits
// until the server has closed the connection.
func (s *sess) cutOff(method, path string, hdr map[string]string, declared int, body []byte) answer {
	e := s.e
	e.t.Helper()
	conn, err := net.Dial("tcp", e.ts.Listener.Addr().String())
	if err != nil {
		e.t.Fatal(err)
	}
	defer conn.Close()
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s HTTP/1.1\r\nHost: coffer\r\nAuthorization: Bearer %s\r\nContent-Length: %d\r\n", method, path, s.token, declared)
	for k, v := range hdr {
		fmt.Fprintf(&b, "%s: %s\r\n", k, v)
	}
	b.WriteString("\r\n")
	if _, err := io.WriteString(conn, b.String()); err != nil {
		e.t.Fatal(err)
	}
	if _, err := conn.Write(body); err != nil {
		e.t.Fatal(err)
	}
	if err := conn.(*net.TCPConn).CloseWrite(); err != nil {
		e.t.Fatal(err)
	}
	_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		e.t.Fatalf("%s %s cut off: reading the answer: %v", method, path, err)
	}
	defer resp.Body.Close()
	rb, _ := io.ReadAll(resp.Body)
	addr := conn.LocalAddr().String()
	conn.Close()
	e.waitConnClosed(addr)
	return answer{status: resp.StatusCode, hdr: resp.Header, body: rb}
}

func itoa(n uint64) string { return strconv.FormatUint(n, 10) }

func mustRef(t testing.TB, h string) blockstore.Ref {
	t.Helper()
	r, err := blockstore.ParseRef(h)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func jsonBody(s string) io.Reader { return strings.NewReader(s) }

func jsonMarshal(v any) (string, error) {
	b, err := json.Marshal(v)
	return string(b), err
}
