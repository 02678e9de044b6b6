package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/coffer-dev/coffer/client"
	"github.com/coffer-dev/coffer/internal/wire"
)

var canned = wire.ClusterStatus{
	ClusterID: "c-7f3a", Node: "n1", Shards: 2,
	Nodes: []wire.NodeStatus{
		{Name: "n1", State: "alive", Roles: []string{"meta", "block", "gateway"},
			Gossip: "10.0.0.1:7300", GRPC: "10.0.0.1:7200", Raft: "10.0.0.1:7100", HTTP: "10.0.0.1:8080",
			Leads: []uint64{0, 2}, Block: &wire.BlockUsage{Blocks: 1234, LiveBytes: 1 << 20, DiskBytes: 3 << 29, FreeBytes: 5 << 40}},
		{Name: "n2", State: "alive", Roles: []string{"meta"}, Gossip: "10.0.0.2:7300", Leads: []uint64{1}},
		{Name: "n3", State: "dead", Removing: true},
	},
	Groups: []wire.GroupStatus{
		{ID: 0, Kind: "system", Leader: "n1", Term: 7, Commit: 4021, Applied: 4020, Replicas: []wire.ReplicaStatus{
			{Node: "n1", Suffrage: "voter", Applied: 4020}, {Node: "n2", Suffrage: "voter", Applied: 4019},
			{Node: "n3", Suffrage: "nonvoter", Applied: 0}}},
		{ID: 1, Kind: "shard", Leader: "n2", Term: 3, Commit: 99, Applied: 98},
	},
	Problems: []string{"group 2: leader n3 did not answer"},
}

// fakeServer serves the admin API for user admin, password secret.
type fakeServer struct {
	*httptest.Server
	requests atomic.Int32
	removed  atomic.Value // the last name asked to be removed
}

func newFakeServer(t *testing.T) *fakeServer {
	f := &fakeServer{}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/admin/cluster", func(w http.ResponseWriter, r *http.Request) {
		answer(w, 200, canned)
	})
	mux.HandleFunc("POST /v1/admin/nodes/{name}/remove", func(w http.ResponseWriter, r *http.Request) {
		name := r.PathValue("name")
		f.removed.Store(name)
		switch name {
		case "n1":
			answer(w, 409, wire.Error{Code: "conflict", Message: "n1 is the last meta node"})
		case "ghost":
			answer(w, 404, wire.Error{Code: "not_found", Message: `no node "ghost"`})
		default:
			answer(w, 200, wire.RemoveNodeResult{Node: name, State: "removing"})
		}
	})
	f.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.requests.Add(1)
		if u, p, ok := r.BasicAuth(); !ok || u != "admin" || p != "secret" {
			answer(w, 401, wire.Error{Code: "unauthenticated", Message: "wrong user name or password"})
			return
		}
		mux.ServeHTTP(w, r)
	}))
	t.Cleanup(f.Close)
	return f
}

func answer(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(v)
}

type result struct {
	code           int
	stdout, stderr string
}

func runCoffer(t *testing.T, env map[string]string, stdin string, args ...string) result {
	t.Helper()
	var out, errOut bytes.Buffer
	code := run(context.Background(), args, strings.NewReader(stdin), &out, &errOut, func(k string) string { return env[k] })
	return result{code, out.String(), errOut.String()}
}

func deadServer(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return "http://" + l.Addr().String()
}

func TestClusterStatusHuman(t *testing.T) {
	srv := newFakeServer(t)
	r := runCoffer(t, map[string]string{"COFFER_SERVER": srv.URL, "COFFER_PASSWORD": "secret"}, "", "admin", "cluster", "status")
	if r.code != 0 {
		t.Fatalf("exit %d; stderr %s", r.code, r.stderr)
	}
	lines := strings.Split(r.stdout, "\n")
	// hasRow reports whether a line holds all the fields, in order.
	hasRow := func(fields ...string) bool {
		for _, l := range lines {
			if reflect.DeepEqual(strings.Fields(l), fields) {
				return true
			}
		}
		return false
	}
	rows := [][]string{
		{"cluster", "c-7f3a", "answered", "by", "n1", "shards", "2"},
		{"n1", "alive", "meta,block,gateway", "0,2", "1234", "1.0", "MiB", "1.5", "GiB", "5.0", "TiB"},
		{"n2", "alive", "meta", "1", "-", "-", "-", "-"},
		{"n3", "dead", "(removing)", "-", "-", "-", "-", "-", "-"},
		{"n1", "10.0.0.1:8080", "10.0.0.1:7300", "10.0.0.1:7100", "10.0.0.1:7200"},
		{"n2", "-", "10.0.0.2:7300", "-", "-"},
		{"0", "system", "n1", "7", "4021", "4020", "n1=4020", "n2=4019", "n3(nonvoter)=0"},
		{"1", "shard", "n2", "3", "99", "98", "-"},
		{"group", "2:", "leader", "n3", "did", "not", "answer"},
	}
	for _, row := range rows {
		if !hasRow(row...) {
			t.Errorf("output lacks row %q:\n%s", row, r.stdout)
		}
	}
	if r.stderr != "" {
		t.Errorf("stderr: %s", r.stderr)
	}
}

func TestClusterStatusJSON(t *testing.T) {
	srv := newFakeServer(t)
	r := runCoffer(t, map[string]string{"COFFER_PASSWORD": "secret"}, "", "--server", srv.URL, "admin", "cluster", "status", "--json")
	if r.code != 0 {
		t.Fatalf("exit %d; stderr %s", r.code, r.stderr)
	}
	var got wire.ClusterStatus
	if err := json.Unmarshal([]byte(r.stdout), &got); err != nil {
		t.Fatalf("stdout is not JSON: %v\n%s", err, r.stdout)
	}
	if !reflect.DeepEqual(got, canned) {
		t.Errorf("got %+v\nwant %+v", got, canned)
	}
}

func TestCredentialsAndServers(t *testing.T) {
	srv := newFakeServer(t)
	dead := deadServer(t)
	status := []string{"admin", "cluster", "status", "--json"}
	tests := []struct {
		name     string
		env      map[string]string
		stdin    string
		args     []string
		code     int
		stderr   string
		contacts bool // whether the server must have been asked
	}{
		{"password from env", map[string]string{"COFFER_SERVER": srv.URL, "COFFER_PASSWORD": "secret"}, "", nil, 0, "", true},
		{"password from stdin", map[string]string{"COFFER_SERVER": srv.URL, "COFFER_PASSWORD": "wrong"}, "secret\r\nmore\n", []string{"--password-stdin"}, 0, "", true},
		{"password from stdin without newline", map[string]string{"COFFER_SERVER": srv.URL}, "secret", []string{"--password-stdin"}, 0, "", true},
		{"wrong password", map[string]string{"COFFER_SERVER": srv.URL, "COFFER_PASSWORD": "nope"}, "", nil, 1, "coffer: wrong user name or password (unauthenticated)\n", true},
		{"user from env", map[string]string{"COFFER_SERVER": srv.URL, "COFFER_PASSWORD": "secret", "COFFER_USER": "bob"}, "", nil, 1, "unauthenticated", true},
		{"--user beats env", map[string]string{"COFFER_SERVER": srv.URL, "COFFER_PASSWORD": "secret", "COFFER_USER": "bob"}, "", []string{"--user", "admin"}, 0, "", true},
		{"no password", map[string]string{"COFFER_SERVER": srv.URL}, "", nil, 2, "coffer: a password is needed: set COFFER_PASSWORD or pass it on stdin with --password-stdin\n", false},
		{"empty stdin", map[string]string{"COFFER_SERVER": srv.URL}, "", []string{"--password-stdin"}, 2, "no password on stdin", false},
		{"--server beats env", map[string]string{"COFFER_SERVER": dead, "COFFER_PASSWORD": "secret"}, "", []string{"--server", srv.URL}, 0, "", true},
		{"failover to the second server", map[string]string{"COFFER_PASSWORD": "secret"}, "", []string{"--server", dead + ", " + srv.URL}, 0, "", true},
		{"COFFER_SERVER list", map[string]string{"COFFER_SERVER": dead + "," + srv.URL, "COFFER_PASSWORD": "secret"}, "", nil, 0, "", true},
		{"COFFER_SERVER list without schemes", map[string]string{"COFFER_SERVER": strings.TrimPrefix(dead, "http://") + " , " + strings.TrimPrefix(srv.URL, "http://") + ",", "COFFER_PASSWORD": "secret"}, "", nil, 0, "", true},
		{"server without scheme", map[string]string{"COFFER_PASSWORD": "secret"}, "", []string{"--server", strings.TrimPrefix(srv.URL, "http://")}, 0, "", true},
		{"no server up", map[string]string{"COFFER_SERVER": dead, "COFFER_PASSWORD": "secret"}, "", nil, 1, "coffer: unavailable: no server answered", false},
		{"bad server URL", map[string]string{"COFFER_PASSWORD": "secret"}, "", []string{"--server", "ftp://x"}, 2, "coffer: invalid client config", false},
		{"default server", map[string]string{"COFFER_PASSWORD": "secret"}, "", []string{"--server", ""}, 2, "--server: no server given", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := srv.requests.Load()
			r := runCoffer(t, tc.env, tc.stdin, append(append([]string(nil), tc.args...), status...)...)
			if r.code != tc.code {
				t.Errorf("exit %d, want %d; stderr %s", r.code, tc.code, r.stderr)
			}
			if tc.stderr == "" && r.stderr != "" || !strings.Contains(r.stderr, tc.stderr) {
				t.Errorf("stderr %q, want %q", r.stderr, tc.stderr)
			}
			if tc.code == 0 && !strings.Contains(r.stdout, `"cluster_id": "c-7f3a"`) {
				t.Errorf("stdout lacks the status: %s", r.stdout)
			}
			if asked := srv.requests.Load() > before; asked != tc.contacts {
				t.Errorf("server asked: %v, want %v", asked, tc.contacts)
			}
		})
	}
}

func TestNodeRemove(t *testing.T) {
	srv := newFakeServer(t)
	env := map[string]string{"COFFER_SERVER": srv.URL, "COFFER_PASSWORD": "secret"}
	tests := []struct {
		args   []string
		code   int
		stdout string
		stderr string
	}{
		{[]string{"admin", "node", "remove", "n3"}, 0, "node n3: removing\n", ""},
		{[]string{"admin", "node", "remove", "a b/c"}, 0, "node a b/c: removing\n", ""},
		{[]string{"--json", "admin", "node", "remove", "n2"}, 0, "{\n  \"node\": \"n2\",\n  \"state\": \"removing\"\n}\n", ""},
		{[]string{"admin", "node", "remove", "n1"}, 3, "", "coffer: n1 is the last meta node (conflict)\n"},
		{[]string{"admin", "node", "remove", "ghost"}, 1, "", "coffer: no node \"ghost\" (not_found)\n"},
	}
	for _, tc := range tests {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			r := runCoffer(t, env, "", tc.args...)
			if r.code != tc.code || r.stdout != tc.stdout || r.stderr != tc.stderr {
				t.Errorf("got exit %d, stdout %q, stderr %q\nwant exit %d, stdout %q, stderr %q",
					r.code, r.stdout, r.stderr, tc.code, tc.stdout, tc.stderr)
			}
			if name := tc.args[len(tc.args)-1]; srv.removed.Load() != name {
				t.Errorf("server was asked to remove %v, want %q", srv.removed.Load(), name)
			}
		})
	}
}

func TestUsageErrors(t *testing.T) {
	srv := newFakeServer(t)
	env := map[string]string{"COFFER_SERVER": srv.URL, "COFFER_PASSWORD": "secret"}
	for _, args := range [][]string{
		{},
		{"bogus"},
		{"admin"},
		{"admin", "bogus"},
		{"admin", "node"},
		{"admin", "node", "remove"},
		{"admin", "node", "remove", "a", "b"},
		{"admin", "cluster", "status", "extra"},
		{"--bogus", "admin", "cluster", "status"},
		{"admin", "cluster", "status", "--json=maybe"},
	} {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			r := runCoffer(t, env, "", args...)
			if r.code != 2 {
				t.Errorf("exit %d, want 2", r.code)
			}
			if !strings.HasPrefix(r.stderr, "coffer: ") || !strings.Contains(r.stderr, "--help' for usage") {
				t.Errorf("stderr %q", r.stderr)
			}
			if r.stdout != "" {
				t.Errorf("stdout %q", r.stdout)
			}
		})
	}
	if n := srv.requests.Load(); n != 0 {
		t.Errorf("usage errors sent %d requests", n)
	}
	// Help is not an error.
	if r := runCoffer(t, env, "", "admin", "--help"); r.code != 0 || !strings.Contains(r.stdout, "cluster") {
		t.Errorf("help: exit %d, stdout %q", r.code, r.stdout)
	}
}

func TestExitCode(t *testing.T) {
	tests := []struct {
		err  error
		want int
	}{
		{nil, exitOK},
		{errors.New("boom"), exitError},
		{usageErrorf("bad"), exitUsage},
		{fmt.Errorf("x: %w", client.ErrInvalidConfig), exitUsage},
		{&client.Error{Status: 409, Code: "conflict"}, exitConflict},
		{fmt.Errorf("wrapped: %w", &client.Error{Status: 409, Code: "conflict"}), exitConflict},
		{&client.Error{Status: 404, Code: "not_found"}, exitError},
		{&client.Error{Status: 401, Code: "unauthenticated"}, exitError},
		{client.ErrUnavailable, exitError},
	}
	for _, tc := range tests {
		if got := exitCode(tc.err); got != tc.want {
			t.Errorf("exitCode(%v) = %d, want %d", tc.err, got, tc.want)
		}
	}
}

func TestHumanBytes(t *testing.T) {
	tests := []struct {
		n    int64
		want string
	}{
		{0, "0 B"},
		{1023, "1023 B"},
		{1024, "1.0 KiB"},
		{1536, "1.5 KiB"},
		{1<<20 - 1, "1.0 MiB"},
		{3 << 29, "1.5 GiB"},
		{5 << 40, "5.0 TiB"},
		{1 << 62, "4.0 EiB"},
	}
	for _, tc := range tests {
		if got := humanBytes(tc.n); got != tc.want {
			t.Errorf("humanBytes(%d) = %q, want %q", tc.n, got, tc.want)
		}
	}
}

// cobra's completion command prints the scripts; a missing or unknown
// shell is a usage error like any unknown command.
func TestCompletion(t *testing.T) {
	env := map[string]string{}
	for shell, want := range map[string]string{
		"bash":       "complete -o default -F __start_coffer coffer",
		"zsh":        "#compdef coffer",
		"fish":       "complete -c coffer",
		"powershell": "Register-ArgumentCompleter",
	} {
		r := runCoffer(t, env, "", "completion", shell)
		if r.code != 0 || !strings.Contains(r.stdout, want) || r.stderr != "" {
			t.Errorf("completion %s: exit %d, stderr %q, stdout lacks %q", shell, r.code, r.stderr, want)
		}
	}
	for _, args := range [][]string{{"completion"}, {"completion", "tcsh"}} {
		if r := runCoffer(t, env, "", args...); r.code != 2 || r.stdout != "" {
			t.Errorf("%q: exit %d, stdout %q", args, r.code, r.stdout)
		}
	}
	// The script's callback: the commands, and the shells after completion.
	r := runCoffer(t, env, "", "__complete", "")
	for _, name := range []string{"put", "get", "history", "completion"} {
		if !strings.Contains(r.stdout, "\n"+name+"\t") {
			t.Errorf("__complete lacks %s:\n%s", name, r.stdout)
		}
	}
	if r := runCoffer(t, env, "", "__complete", "completion", ""); !strings.Contains(r.stdout, "bash\t") {
		t.Errorf("__complete completion:\n%s", r.stdout)
	}
	// bash parses the script.
	bash, err := exec.LookPath("bash")
	if err != nil {
		t.Skip("no bash")
	}
	script := filepath.Join(t.TempDir(), "coffer.bash")
	os.WriteFile(script, []byte(runCoffer(t, env, "", "completion", "bash").stdout), 0o600)
	if out, err := exec.Command(bash, "-n", script).CombinedOutput(); err != nil {
		t.Errorf("bash -n: %v\n%s", err, out)
	}
}
