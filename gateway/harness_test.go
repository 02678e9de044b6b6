package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
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
// with an admin "root" (password "rootpw").
type env struct {
	t      *testing.T
	ts     *httptest.Server
	gw     *Server
	shard  *raftmeta.Shard
	blocks *memBlocks
	clk    *clock
}

type envOpts struct {
	configure func(*Config)
}

func newEnv(t *testing.T, o envOpts) *env {
	t.Helper()
	mc := metatest.New(t, metatest.Options{Replicas: 1})
	sh, err := mc.LeaderShard(10 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	st, err := memstore.New(memstore.Config{})
	if err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, shard: sh, blocks: &memBlocks{st: st}, clk: &clock{t: time.Now()}}
	cfg := Config{Meta: shardMeta{sh}, Blocks: e.blocks, Cluster: fakeCluster{key: bytes.Repeat([]byte{7}, 32)},
		TokenTTL: time.Hour, UserRate: -1}
	if o.configure != nil {
		o.configure(&cfg)
	}
	e.gw, err = New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	e.gw.Register(mux)
	e.ts = httptest.NewServer(mux)
	t.Cleanup(e.ts.Close)
	if _, err := sh.CreateUser(context.Background(), raftmeta.CreateUserRequest{RequestID: "root", Name: "root", Password: "rootpw", Admin: true}); err != nil {
		t.Fatal(err)
	}
	return e
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

// do sends a request with the session's token.
func (s *sess) do(method, path string, body io.Reader, hdr map[string]string) answer {
	s.e.t.Helper()
	req, err := http.NewRequest(method, s.e.ts.URL+path, body)
	if err != nil {
		s.e.t.Fatal(err)
	}
	if s.token != "" {
		req.Header.Set("Authorization", "Bearer "+s.token)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := s.e.ts.Client().Do(req)
	if err != nil {
		s.e.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		s.e.t.Fatal(err)
	}
	return answer{status: resp.StatusCode, hdr: resp.Header, body: b}
}
