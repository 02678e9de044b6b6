package syncer

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coffer-dev/coffer/client"
	"github.com/coffer-dev/coffer/internal/testcluster"
	"github.com/coffer-dev/coffer/internal/wire"
)

// recorder is the API with a record of every content hash a commit put
// on the server (the server keeps every revision, so these are all
// restorable).
type recorder struct {
	*client.Client
	mu        sync.Mutex
	committed map[string]bool
}

func (r *recorder) Commit(ctx context.Context, key string, ops []wire.Op, receipts []string) (*client.CommitResult, error) {
	res, err := r.Client.Commit(ctx, key, ops, receipts)
	if err == nil {
		r.mu.Lock()
		for _, op := range ops {
			if op.Kind == "put" {
				r.committed[op.Hash] = true
			}
		}
		r.mu.Unlock()
	}
	return res, err
}

// propDevice is one simulated PC: an in-memory folder, its state
// database on disk, and its engine (replaced after a crash).
type propDevice struct {
	id    int
	fs    *memFS
	state string
	api   *recorder
	root  string
	e     *Engine
	log   *slog.Logger
}

func (d *propDevice) open(t *testing.T) {
	t.Helper()
	no := false
	e, err := Open(Config{FS: d.fs, StateDir: d.state, API: d.api, Remote: d.root, Host: "pc" + strconv.Itoa(d.id),
		CaseInsensitive: &no, Logger: d.log, Parallel: 2,
		Now: func() time.Time { return time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC) }})
	if err != nil {
		t.Fatal(err)
	}
	d.e = e
}

var (
	fileNames = []string{"a.txt", "b.txt", "c.md", "d", "a.TXT"}
	dirNames  = []string{"x", "y", "z"}
)

// seeds returns the seeds to run: COFFER_SYNC_SEED=N runs one; otherwise
// COFFER_SYNC_SEEDS (default 6) seeds from the clock, each logged.
func seeds(t *testing.T) []uint64 {
	if s := os.Getenv("COFFER_SYNC_SEED"); s != "" {
		v, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("COFFER_SYNC_SEED: %v", err)
		}
		return []uint64{v}
	}
	n := 6
	if s := os.Getenv("COFFER_SYNC_SEEDS"); s != "" {
		n, _ = strconv.Atoi(s)
	}
	base := uint64(time.Now().UnixNano())
	out := make([]uint64, n)
	for i := range out {
		out[i] = base + uint64(i)*7919
	}
	return out
}

// TestPlannerProperty: devices (two or three) make random changes
// (create, edit, rename, move, delete, chmod, folder creates, renames and
// deletes), sync at random moments and crash at random steps; at the end
// every device and the server hold the same tree, and every content the
// engines removed or replaced locally is in the server's history.
func TestPlannerProperty(t *testing.T) {
	cl := testcluster.Start(t, 1)
	user := cl.AddUser(t, "prop", "prop password")
	for i, seed := range seeds(t) {
		t.Run(fmt.Sprintf("seed=%d", seed), func(t *testing.T) {
			t.Logf("seed %d (rerun: COFFER_SYNC_SEED=%d go test -run 'TestPlannerProperty' ./client/syncer)", seed, seed)
			api := &recorder{Client: user, committed: map[string]bool{}}
			// Each seed syncs its own remote folder of the same account.
			runProperty(t, seed, api, fmt.Sprintf("/seed%d", i))
		})
	}
}

func runProperty(t *testing.T, seed uint64, api *recorder, root string) {
	rng := rand.New(rand.NewPCG(seed, seed>>7|1))
	ndev := 2 + rng.IntN(2)
	level := slog.LevelWarn
	if os.Getenv("COFFER_SYNC_DEBUG") != "" {
		level = slog.LevelDebug
	}
	logger := slog.New(slog.NewTextHandler(testLog{t}, &slog.HandlerOptions{Level: level}))
	devs := make([]*propDevice, ndev)
	for i := range devs {
		devs[i] = &propDevice{id: i, fs: newMemFS(), state: t.TempDir(), api: api, root: root, log: logger.With("dev", i)}
		devs[i].open(t)
	}
	defer func() {
		for _, d := range devs {
			d.e.Close()
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	crashes, syncs := 0, 0
	sync := func(d *propDevice, crashAt int) {
		var steps atomic.Int64
		if crashAt > 0 {
			SetHook(d.e, func(string) error {
				if steps.Add(1) == int64(crashAt) {
					return ErrCrash
				}
				return nil
			})
		}
		_, err := d.e.Sync(ctx)
		syncs++
		switch {
		case errors.Is(err, ErrCrash):
			crashes++
			d.e.Close() // the process died: a new one opens the state again
			d.open(t)
		case err != nil:
			t.Fatalf("seed %d: device %d: sync: %v", seed, d.id, err)
		}
		SetHook(d.e, nil)
	}
	ops := 40 + rng.IntN(40)
	for n := range ops {
		d := devs[rng.IntN(ndev)]
		if rng.IntN(100) < 18 {
			crashAt := 0
			if rng.IntN(100) < 25 {
				crashAt = 1 + rng.IntN(12)
			}
			d.log.Debug("sync", "crash_at", crashAt)
			sync(d, crashAt)
			continue
		}
		randomChange(rng, d.fs, fmt.Sprintf("seed %d dev %d op %d", seed, d.id, n))
		d.log.Debug("user", "op", n, "tree", d.fs.snapshot())
	}
	// Settle: sync every device in turn until a whole pass changes nothing.
	settled := false
	for pass := 0; pass < 8 && !settled; pass++ {
		settled = true
		for _, d := range devs {
			s, err := d.e.Sync(ctx)
			if err != nil {
				t.Fatalf("seed %d: device %d: settling sync: %v", seed, d.id, err)
			}
			if s.Changed() || s.Pending > 0 {
				settled = false
			}
		}
	}
	if !settled {
		t.Logf("server: %v", remoteSnapshot(t, ctx, api.Client, root))
		for _, d := range devs {
			m, _ := d.e.loadIgnore()
			rt := map[string]string{}
			for p, r := range d.e.remoteTree(m) {
				rt[p] = fmt.Sprintf("id%d rev%d", r.ID, r.Rev)
			}
			t.Logf("device %d cursor %d remote tree %v", d.id, d.e.cursor, rt)
		}
		for _, d := range devs {
			plan, err := d.e.Pending(ctx)
			t.Logf("device %d pending (%v):", d.id, err)
			for _, a := range plan {
				t.Logf("  %s %s %s", a.Kind, a.Path, a.To)
			}
		}
		t.Fatalf("seed %d: the devices did not settle in 8 passes", seed)
	}
	want := devs[0].fs.snapshot()
	for _, d := range devs[1:] {
		if diff := diffTrees(want, d.fs.snapshot()); diff != "" {
			for _, d := range devs {
				m, _ := d.e.loadIgnore()
				rt := map[string]string{}
				for p, r := range d.e.remoteTree(m) {
					rt[p] = fmt.Sprintf("id%d rev%d", r.ID, r.Rev)
				}
				t.Logf("device %d cursor %d remote tree %v", d.id, d.e.cursor, rt)
			}
			t.Fatalf("seed %d: device 0 and device %d differ:\n%s", seed, d.id, diff)
		}
	}
	if diff := diffTrees(want, remoteSnapshot(t, ctx, api.Client, root)); diff != "" {
		t.Fatalf("seed %d: device 0 and the server differ:\n%s", seed, diff)
	}
	for _, d := range devs {
		for _, h := range d.fs.destroyed {
			if h != hashOf(nil) && !api.committed[h] {
				t.Fatalf("seed %d: device %d: the engine removed or replaced content %s that never reached the server", seed, d.id, h[:12])
			}
		}
	}
	t.Logf("seed %d: %d devices, %d ops, %d syncs, %d crashes, %d paths in the end", seed, ndev, ops, syncs, crashes, len(want))
}

// randomChange makes one random change to a device's folder, as a user
// would.
func randomChange(rng *rand.Rand, m *memFS, tag string) {
	files, dirs := m.paths(false), append([]string{""}, m.paths(true)...)
	pick := func(s []string) string { return s[rng.IntN(len(s))] }
	join := func(dir, name string) string {
		if dir == "" {
			return name
		}
		return dir + "/" + name
	}
	content := func() []byte {
		b := []byte(tag + " " + strconv.FormatUint(rng.Uint64(), 36) + "\n")
		if rng.IntN(12) == 0 { // sometimes several blocks
			big := make([]byte, 300<<10+rng.IntN(700<<10))
			for i := range big {
				big[i] = byte(rng.Uint32())
			}
			b = append(b, big...)
		}
		return b
	}
	free := func(p string) bool {
		_, err := m.Lstat(p)
		return err != nil
	}
	switch r := rng.IntN(100); {
	case r < 30: // create or overwrite
		p := join(pick(dirs), pick(fileNames))
		if fi, err := m.Lstat(p); err == nil && fi.Dir {
			return
		}
		m.userWrite(p, content())
	case r < 45 && len(files) > 0: // edit
		m.userWrite(pick(files), content())
	case r < 57 && len(files) > 0: // rename or move a file
		to := join(pick(dirs), pick(fileNames))
		if free(to) {
			m.userRename(pick(files), to)
		}
	case r < 65 && len(files) > 0: // delete a file
		m.userRemoveAll(pick(files))
	case r < 75: // make a folder
		p := join(pick(dirs), pick(dirNames))
		if free(p) && strings.Count(p, "/") < 3 {
			m.userMkdir(p)
		}
	case r < 83 && len(dirs) > 1: // rename or move a folder
		from := pick(dirs[1:])
		to := join(pick(dirs), pick(dirNames))
		if free(to) && !under(to, from) && strings.Count(to, "/") < 3 {
			m.userRename(from, to)
		}
	case r < 88 && len(dirs) > 1: // delete a folder and all in it
		m.userRemoveAll(pick(dirs[1:]))
	case r < 94 && len(files) > 0: // toggle the executable bit
		p := pick(files)
		fi, _ := m.Lstat(p)
		m.userChmod(p, !fi.Exec)
	}
}

// remoteSnapshot is the server's tree in memFS.snapshot's form.
func remoteSnapshot(t *testing.T, ctx context.Context, c *client.Client, root string) map[string]string {
	t.Helper()
	ents, err := c.ListAll(ctx, root, client.ListOptions{Recursive: true})
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, e := range ents {
		p := strings.TrimPrefix(strings.TrimPrefix(e.Path, root), "/")
		if p == "" || e.Deleted {
			continue
		}
		switch {
		case e.Dir:
			out[p] = "/"
		case e.Mode&0o100 != 0:
			out[p] = e.Hash[:12] + "+x"
		default:
			out[p] = e.Hash[:12]
		}
	}
	return out
}

func diffTrees(a, b map[string]string) string {
	var d []string
	for p, v := range a {
		if b[p] != v {
			d = append(d, fmt.Sprintf("%s: %q vs %q", p, v, b[p]))
		}
	}
	for p, v := range b {
		if _, ok := a[p]; !ok {
			d = append(d, fmt.Sprintf("%s: missing vs %q", p, v))
		}
	}
	sort.Strings(d)
	return strings.Join(d, "\n")
}

type testLog struct{ t *testing.T }

func (w testLog) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}
