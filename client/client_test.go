package client

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coffer-dev/coffer/internal/wire"
)

var status = wire.ClusterStatus{
	ClusterID: "c-1234", Node: "n1", Shards: 2,
	Nodes: []wire.NodeStatus{
		{Name: "n1", State: "alive", Roles: []string{"meta", "block"}, Gossip: "10.0.0.1:7300", GRPC: "10.0.0.1:7200",
			Raft: "10.0.0.1:7100", HTTP: "10.0.0.1:8080", Leads: []uint64{0, 2},
			Block: &wire.BlockUsage{Blocks: 10, LiveBytes: 1 << 20, DiskBytes: 2 << 20, FreeBytes: 1 << 30}},
		{Name: "n2", State: "dead", Removing: true},
	},
	Groups: []wire.GroupStatus{{ID: 0, Kind: "system", Leader: "n1", Term: 3, Commit: 40, Applied: 39,
		Replicas: []wire.ReplicaStatus{{Node: "n1", Suffrage: "voter", Applied: 39}}}},
	Problems: []string{"group 1: leader n2 did not answer"},
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(v)
}

// deadURL is a URL on which nothing listens.
func deadURL(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return "http://" + addr
}

func newClient(t *testing.T, servers ...string) *Client {
	t.Helper()
	c, err := New(Config{Servers: servers, User: "admin", Password: "pw:with colon", Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestClusterStatus(t *testing.T) {
	var auth atomic.Bool
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u, p, ok := r.BasicAuth()
		auth.Store(ok && u == "admin" && p == "pw:with colon")
		if r.Method != http.MethodGet || r.URL.Path != "/v1/admin/cluster" {
			writeJSON(w, 404, wire.Error{Code: "not_found", Message: r.Method + " " + r.URL.Path})
			return
		}
		writeJSON(w, 200, status)
	}))
	defer srv.Close()
	c := newClient(t, srv.URL+"/") // a trailing slash is fine
	got, err := c.ClusterStatus(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(*got, status) {
		t.Errorf("got %+v\nwant %+v", *got, status)
	}
	if !auth.Load() {
		t.Error("Basic auth header missing or wrong")
	}
}

func TestRemoveNodeEscapesName(t *testing.T) {
	mux := http.NewServeMux()
	var escaped atomic.Value
	mux.HandleFunc("POST /v1/admin/nodes/{name}/remove", func(w http.ResponseWriter, r *http.Request) {
		escaped.Store(r.URL.EscapedPath())
		writeJSON(w, 200, wire.RemoveNodeResult{Node: r.PathValue("name"), State: "removing"})
	})
	srv := httptest.NewServer(mux)
	defer srv.Close()
	res, err := newClient(t, srv.URL).RemoveNode(context.Background(), "n 1/x")
	if err != nil {
		t.Fatal(err)
	}
	if *res != (wire.RemoveNodeResult{Node: "n 1/x", State: "removing"}) {
		t.Errorf("got %+v", *res)
	}
	if got, want := escaped.Load(), "/v1/admin/nodes/n%201%2Fx/remove"; got != want {
		t.Errorf("path %v, want %s", got, want)
	}
}

func TestErrorCodes(t *testing.T) {
	tests := []struct {
		status   int
		body     string
		sentinel error // nil: none matches
		code     string
		message  string
	}{
		{401, `{"code":"unauthenticated","message":"bad password"}`, ErrUnauthenticated, "unauthenticated", "bad password"},
		{403, `{"code":"forbidden","message":"admins only"}`, ErrForbidden, "forbidden", "admins only"},
		{404, `{"code":"not_found","message":"no node n9"}`, ErrNotFound, "not_found", "no node n9"},
		{400, `{"code":"invalid_argument","message":"bad name"}`, ErrInvalidArgument, "invalid_argument", "bad name"},
		{503, `{"code":"unavailable","message":"no leader"}`, ErrUnavailable, "unavailable", "no leader"},
		{409, `{"code":"conflict","message":"last meta node"}`, ErrConflict, "conflict", "last meta node"},
		{500, `{"code":"internal","message":"oops"}`, nil, "internal", "oops"},
		{418, `{"code":"some_new_code","message":"later"}`, nil, "some_new_code", "later"},
		// No wire.Error body (a proxy, say): the code follows the status.
		{502, "<html>bad gateway</html>", ErrUnavailable, "unavailable", "<html>bad gateway</html>"},
		{409, "", ErrConflict, "conflict", "Conflict"},
		{401, "not json", ErrUnauthenticated, "unauthenticated", "not json"},
	}
	sentinels := []error{ErrUnauthenticated, ErrForbidden, ErrNotFound, ErrInvalidArgument, ErrUnavailable, ErrConflict}
	for _, tc := range tests {
		t.Run(tc.code, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.WriteHeader(tc.status)
				w.Write([]byte(tc.body))
			}))
			defer srv.Close()
			c := newClient(t, srv.URL)
			for _, call := range []func() error{
				func() error { _, err := c.ClusterStatus(context.Background()); return err },
				func() error { _, err := c.RemoveNode(context.Background(), "n1"); return err },
			} {
				err := call()
				var e *Error
				if !errors.As(err, &e) {
					t.Fatalf("error %v (%T) is not an *Error", err, err)
				}
				if *e != (Error{Status: tc.status, Code: tc.code, Message: tc.message}) {
					t.Errorf("got %+v", *e)
				}
				for _, s := range sentinels {
					if got, want := errors.Is(err, s), s == tc.sentinel; got != want {
						t.Errorf("errors.Is(err, %v) = %v", s, got)
					}
				}
				if !strings.Contains(err.Error(), tc.message) {
					t.Errorf("message %q lacks %q", err.Error(), tc.message)
				}
			}
		})
	}
}

// counter is a test server that counts its requests and answers with h.
type counter struct {
	*httptest.Server
	n atomic.Int32
}

func newCounter(t *testing.T, h http.HandlerFunc) *counter {
	c := &counter{}
	c.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c.n.Add(1)
		h(w, r)
	}))
	t.Cleanup(c.Close)
	return c
}

func ok(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodPost {
		writeJSON(w, 200, wire.RemoveNodeResult{Node: "n1", State: "removing"})
		return
	}
	writeJSON(w, 200, status)
}

func unavailable(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, 503, wire.Error{Code: "unavailable", Message: "not ready"})
}

// hangUp reads the request and closes the connection without answering.
func hangUp(w http.ResponseWriter, r *http.Request) {
	conn, _, err := http.NewResponseController(w).Hijack()
	if err == nil {
		conn.Close()
	}
}

func TestFailover(t *testing.T) {
	ctx := context.Background()
	getStatus := func(c *Client) error { _, err := c.ClusterStatus(ctx); return err }
	remove := func(c *Client) error { _, err := c.RemoveNode(ctx, "n1"); return err }

	t.Run("dead then live, GET and POST", func(t *testing.T) {
		live := newCounter(t, ok)
		for _, call := range []func(*Client) error{getStatus, remove} {
			if err := call(newClient(t, deadURL(t), live.URL)); err != nil {
				t.Fatal(err)
			}
		}
		if live.n.Load() != 2 {
			t.Errorf("live server got %d requests, want 2", live.n.Load())
		}
	})
	t.Run("GET moves on after 503 and stays with the server that answered", func(t *testing.T) {
		a, b := newCounter(t, unavailable), newCounter(t, ok)
		c := newClient(t, a.URL, b.URL)
		for range 3 {
			if err := getStatus(c); err != nil {
				t.Fatal(err)
			}
		}
		if a.n.Load() != 1 || b.n.Load() != 3 {
			t.Errorf("requests: a %d, b %d; want 1, 3", a.n.Load(), b.n.Load())
		}
	})
	t.Run("POST is not repeated after 503", func(t *testing.T) {
		a, b := newCounter(t, unavailable), newCounter(t, ok)
		err := remove(newClient(t, a.URL, b.URL))
		if !errors.Is(err, ErrUnavailable) {
			t.Errorf("got %v, want ErrUnavailable", err)
		}
		if b.n.Load() != 0 {
			t.Error("POST was repeated at the second server")
		}
	})
	t.Run("lost answer: GET moves on, POST does not", func(t *testing.T) {
		a, b := newCounter(t, hangUp), newCounter(t, ok)
		if err := getStatus(newClient(t, a.URL, b.URL)); err != nil {
			t.Errorf("GET: %v", err)
		}
		before := b.n.Load()
		err := remove(newClient(t, a.URL, b.URL))
		if !errors.Is(err, ErrUnavailable) || !strings.Contains(err.Error(), "outcome is unknown") {
			t.Errorf("POST: got %v, want ErrUnavailable with an unknown outcome", err)
		}
		if b.n.Load() != before {
			t.Error("POST was repeated at the second server")
		}
	})
	t.Run("slow server times out, next answers", func(t *testing.T) {
		slow := newCounter(t, func(w http.ResponseWriter, r *http.Request) { <-r.Context().Done() })
		b := newCounter(t, ok)
		c, err := New(Config{Servers: []string{slow.URL, b.URL}, Timeout: 300 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		if err := getStatus(c); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("all dead", func(t *testing.T) {
		d1, d2 := deadURL(t), deadURL(t)
		for _, call := range []func(*Client) error{getStatus, remove} {
			err := call(newClient(t, d1, d2))
			if !errors.Is(err, ErrUnavailable) {
				t.Errorf("got %v, want ErrUnavailable", err)
			}
			if err == nil || !strings.Contains(err.Error(), d1[len("http://"):]) || !strings.Contains(err.Error(), d2[len("http://"):]) {
				t.Errorf("error does not name both servers: %v", err)
			}
		}
	})
	t.Run("all 503: the last answer", func(t *testing.T) {
		a, b := newCounter(t, unavailable), newCounter(t, unavailable)
		err := getStatus(newClient(t, a.URL, b.URL))
		var e *Error
		if !errors.As(err, &e) || e.Status != 503 || !errors.Is(err, ErrUnavailable) {
			t.Errorf("got %v", err)
		}
		if a.n.Load() != 1 || b.n.Load() != 1 {
			t.Errorf("requests: a %d, b %d; want 1, 1", a.n.Load(), b.n.Load())
		}
	})
	t.Run("canceled context", func(t *testing.T) {
		b := newCounter(t, ok)
		ctx, cancel := context.WithCancel(ctx)
		cancel()
		_, err := newClient(t, b.URL).ClusterStatus(ctx)
		if !errors.Is(err, context.Canceled) {
			t.Errorf("got %v, want context.Canceled", err)
		}
	})
}

func TestNoCredentials(t *testing.T) {
	var sent atomic.Bool
	srv := newCounter(t, func(w http.ResponseWriter, r *http.Request) {
		_, _, ok := r.BasicAuth()
		sent.Store(ok)
		writeJSON(w, 200, status)
	})
	c, err := New(Config{Servers: []string{srv.URL}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.ClusterStatus(context.Background()); err != nil {
		t.Fatal(err)
	}
	if sent.Load() {
		t.Error("Basic auth sent without credentials")
	}
}

func TestBadAnswer(t *testing.T) {
	srv := newCounter(t, func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("{not json")) })
	_, err := newClient(t, srv.URL).ClusterStatus(context.Background())
	if err == nil || !strings.Contains(err.Error(), "bad answer") {
		t.Errorf("got %v, want a bad answer error", err)
	}
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		want []string // each in the error; nil means valid
	}{
		{"one server", Config{Servers: []string{"http://127.0.0.1:8080"}}, nil},
		{"https with a path prefix", Config{Servers: []string{"https://coffer.example/api/", "http://[::1]:8080"}, User: "u", Timeout: time.Second}, nil},
		{"no servers", Config{}, []string{"no servers"}},
		{"every problem at once", Config{
			Servers: []string{"127.0.0.1:8080", "ftp://x", "http://", "http://u:p@h", "http://h/?q=1", "http://h:99999999999/%zz"},
			User:    "a:b", Timeout: -time.Second,
		}, []string{
			`"127.0.0.1:8080"`, `"ftp://x": the URL must start with http://`, `"http://": no host`,
			`"http://u:xxxxx@h": put credentials`, `"http://h/?q=1": a base URL has no query`, `"http://h:99999999999/%zz"`,
			`user "a:b"`, "timeout -1s",
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.cfg.Validate()
			_, newErr := New(tc.cfg)
			if tc.want == nil {
				if err != nil || newErr != nil {
					t.Fatalf("Validate: %v; New: %v", err, newErr)
				}
				return
			}
			if !errors.Is(err, ErrInvalidConfig) || !errors.Is(newErr, ErrInvalidConfig) {
				t.Fatalf("Validate: %v; New: %v; want ErrInvalidConfig", err, newErr)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error lacks %q:\n%v", w, err)
				}
			}
			if strings.Contains(err.Error(), "u:p@") {
				t.Errorf("the error shows a password from a server URL:\n%v", err)
			}
		})
	}
}
