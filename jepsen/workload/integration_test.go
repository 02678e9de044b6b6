package workload

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coffer-dev/coffer/client"
	"github.com/coffer-dev/coffer/internal/testcluster"
	"github.com/coffer-dev/coffer/jepsen/check"
	"github.com/coffer-dev/coffer/jepsen/history"
)

// runFor is how long each integration test runs its workloads.
const runFor = 3 * time.Second

// testEnv is an Env for one fresh user of c, whose process p's primary
// gateway is node p mod N, as the runner builds it.
func testEnv(t *testing.T, c *testcluster.Cluster, user string) *Env {
	t.Helper()
	const password = "workload test password"
	final := c.AddUser(t, user, password)
	var mu sync.Mutex
	clients := map[int]*client.Client{}
	return &Env{
		Rec: history.NewRecorder(time.Time{}),
		Client: func(p int) (*client.Client, string) {
			mu.Lock()
			defer mu.Unlock()
			i := p % len(c.Addrs)
			if clients[p] == nil {
				servers := append(append([]string(nil), c.Addrs[i:]...), c.Addrs[:i]...)
				cl, err := client.New(client.Config{Servers: servers, User: user, Password: password, Timeout: 5 * time.Second})
				if err != nil {
					t.Error(err)
				}
				clients[p] = cl
			}
			return clients[p], fmt.Sprintf("n%d", i+1)
		},
		Final:  final,
		Seed:   42,
		Dir:    t.TempDir(),
		Logger: slog.New(slog.DiscardHandler),
	}
}

// runWorkloads runs the named workloads together for d, each with cfg and
// its own processes, and returns them and the history.
func runWorkloads(t *testing.T, env *Env, d time.Duration, cfg Config, names ...string) ([]Workload, []history.Op) {
	t.Helper()
	var ws []Workload
	cfg.CheckTimeout = 30 * time.Second
	for i, name := range names {
		cfg.FirstProcess = i * ProcessStride
		w, err := New(name, cfg)
		if err != nil {
			t.Fatal(err)
		}
		ws = append(ws, w)
	}
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	errs := make([]error, len(ws))
	var wg sync.WaitGroup
	for i, w := range ws {
		wg.Go(func() { errs[i] = w.Run(ctx, env) })
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("%s: Run: %v", names[i], err)
		}
	}
	return ws, env.Rec.Ops()
}

// checkAll runs w's Check and requires every result valid.
func checkAll(t *testing.T, env *Env, w Workload, ops []history.Op) []check.Result {
	t.Helper()
	res := w.Check(context.Background(), env, ops)
	if len(res) == 0 {
		t.Errorf("%s: no results", w.Name())
	}
	for _, r := range res {
		t.Logf("%s: %s", w.Name(), r)
		if !r.Valid {
			t.Errorf("%s: %s\n%s", w.Name(), r, strings.Join(r.Details, "\n"))
		}
	}
	return res
}

// requireOK requires some ok ops of the given kind by workload name.
func requireOK(t *testing.T, ops []history.Op, name, kind string, min int) {
	t.Helper()
	c := history.Count(filter(ops, func(o history.Op) bool { return o.Workload == name && o.Kind == kind }))
	t.Logf("%s %s: %+v", name, kind, c)
	if c.OK < min {
		t.Errorf("%s: %d ok %s ops, want at least %d (%+v)", name, c.OK, kind, min, c)
	}
}

func filter(ops []history.Op, keep func(history.Op) bool) []history.Op {
	var out []history.Op
	for _, o := range ops {
		if keep(o) {
			out = append(out, o)
		}
	}
	return out
}

// TestWorkloads runs each workload on a 3-node in-process cluster without
// faults: every check must pass and every workload must do real work.
func TestWorkloads(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a cluster")
	}
	c := testcluster.Start(t, 3)

	t.Run("register", func(t *testing.T) {
		env := testEnv(t, c, "reg")
		// Small keys: several are retired and replaced during the run.
		ws, ops := runWorkloads(t, env, runFor, Config{OpsPerKey: 12}, "register")
		keys := map[string]bool{}
		for _, o := range ops {
			keys[o.Key] = true
		}
		if len(keys) <= DefaultKeys {
			t.Errorf("only %d keys: none was retired", len(keys))
		}
		requireOK(t, ops, "register", history.KindRead, 5)
		requireOK(t, ops, "register", history.KindWrite, 2)
		requireOK(t, ops, "register", history.KindCAS, 2)
		checkAll(t, env, ws[0], ops)
	})
	t.Run("set", func(t *testing.T) {
		env := testEnv(t, c, "set")
		ws, ops := runWorkloads(t, env, runFor, Config{}, "set")
		requireOK(t, ops, "set", history.KindCreate, 5)
		checkAll(t, env, ws[0], ops)
	})
	t.Run("upload", func(t *testing.T) {
		env := testEnv(t, c, "upload")
		ws, ops := runWorkloads(t, env, runFor, Config{Pace: 300 * time.Millisecond}, "upload")
		requireOK(t, ops, "upload", history.KindUpload, 4)
		var big int64
		for _, o := range filter(ops, func(o history.Op) bool { return o.Status == history.StatusOK }) {
			var in history.UploadInput
			if err := o.DecodeInput(&in); err != nil {
				t.Fatal(err)
			}
			big = max(big, in.Size)
		}
		if big < 1<<20 {
			t.Errorf("the largest acknowledged upload has %d bytes: no upload of several blocks", big)
		}
		checkAll(t, env, ws[0], ops)
	})
	t.Run("feed", func(t *testing.T) {
		// The feed needs commits: the set and register workloads make
		// them in the same namespace.
		env := testEnv(t, c, "feed")
		ws, ops := runWorkloads(t, env, runFor, Config{}, "feed", "set", "register")
		requireOK(t, ops, "feed", history.KindFeed, 2)
		records := 0
		for _, o := range filter(ops, func(o history.Op) bool { return o.Workload == "feed" && o.Status == history.StatusOK }) {
			var out FeedOutput
			if err := o.DecodeOutput(&out); err != nil {
				t.Fatal(err)
			}
			records += len(out.Records)
		}
		if records == 0 {
			t.Error("the feed readers read no records during the run")
		}
		for _, w := range ws {
			checkAll(t, env, w, ops)
		}
	})
	t.Run("sync", func(t *testing.T) {
		env := testEnv(t, c, "sync")
		ws, ops := runWorkloads(t, env, runFor, Config{Pace: 200 * time.Millisecond}, "sync")
		requireOK(t, ops, "sync", KindEdit, 4)
		checkAll(t, env, ws[0], ops)
	})
	t.Run("sync edit silently overwritten", func(t *testing.T) {
		// Plant a silent overwrite on the server: another writer puts X
		// over an acknowledged edit's revision, and then the edit's
		// content is written again over X without seeing it. Every edit is
		// still somewhere, so only the order rule can see it.
		env := testEnv(t, c, "overwrite")
		ws, ops := runWorkloads(t, env, 2*time.Second, Config{Pace: 200 * time.Millisecond}, "sync")
		sw := ws[0].(*syncWorkload)
		requireOK(t, ops, "sync", KindEdit, 1)
		var victim string
		var content []byte
		for _, e := range sw.acked {
			data, err := os.ReadFile(filepath.Join(deviceDir(env, 0), filepath.FromSlash(e.Path)))
			if sum := sha256.Sum256(data); err == nil && hex.EncodeToString(sum[:]) == e.SHA256 {
				victim, content = e.Path, data
				break
			}
		}
		if victim == "" {
			t.Fatal("no acknowledged edit is on device A as it was written")
		}
		ctx := context.Background()
		remote := sw.folder() + "/" + victim
		for _, data := range [][]byte{[]byte("X: written by someone else"), content} {
			if _, err := env.Final.Upload(ctx, bytes.NewReader(data), remote, client.UploadOptions{}); err != nil {
				t.Fatal(err)
			}
		}
		res := ws[0].Check(ctx, env, ops)
		var edits *check.Result
		for i := range res {
			if res[i].Name == "edits" {
				edits = &res[i]
			}
		}
		if edits == nil || edits.Valid {
			t.Fatalf("the edits check missed a silent overwrite: %v", res)
		}
		t.Logf("%s\n%s", edits, strings.Join(edits.Details, "\n"))
		if all := strings.Join(edits.Details, "\n"); !strings.Contains(all, "silent overwrite") || !strings.Contains(all, fmt.Sprintf("of %q", victim)) {
			t.Errorf("details %q, want a silent overwrite of %s", edits.Details, victim)
		}
	})
	t.Run("set loses a file", func(t *testing.T) {
		env := testEnv(t, c, "lossy")
		ws, ops := runWorkloads(t, env, time.Second, Config{}, "set")
		acked := filter(ops, func(o history.Op) bool { return o.Kind == history.KindCreate && o.Status == history.StatusOK })
		if len(acked) == 0 {
			t.Fatal("no acknowledged create")
		}
		victim := acked[len(acked)/2].Key
		if _, err := env.Final.Delete(context.Background(), victim, 0); err != nil {
			t.Fatal(err)
		}
		res := ws[0].Check(context.Background(), env, ops)
		if len(res) != 1 || res[0].Valid {
			t.Fatalf("the set check missed a deleted acknowledged file: %v", res)
		}
		if want := fmt.Sprintf("lost: %q", victim); len(res[0].Details) == 0 || !strings.HasPrefix(res[0].Details[0], want) {
			t.Errorf("details %q, want one starting %s", res[0].Details, want)
		}
	})
}
