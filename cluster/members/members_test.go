package members

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coffer-dev/coffer/blockstore/replica"
)

const waitLimit = 15 * time.Second

// syncBuffer is a bytes.Buffer safe for concurrent use.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func testLogger(w *syncBuffer) *slog.Logger {
	if w != nil {
		return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelInfo}))
	}
	if testing.Verbose() {
		// Not t.Log: memberlist's goroutines may still log just after Close.
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	}
	return nil
}

// start starts a Fast node on a free loopback port, closed at the end of the test.
func start(t *testing.T, name string, meta Meta, log *syncBuffer, join ...string) *Members {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	m, err := Start(ctx, Config{Name: name, BindAddr: "127.0.0.1:0", Meta: meta, Join: join,
		Logger: testLogger(log), Fast: true})
	if err != nil {
		t.Fatalf("Start(%s): %v", name, err)
	}
	t.Cleanup(func() {
		if err := m.Close(); err != nil {
			t.Errorf("Close(%s): %v", name, err)
		}
	})
	return m
}

func names(m *Members) []string {
	var out []string
	for _, mb := range m.Nodes() {
		out = append(out, mb.Name)
	}
	return out
}

// waitNames waits until every node in ms lists exactly want.
func waitNames(t *testing.T, want []string, ms ...*Members) {
	t.Helper()
	deadline := time.Now().Add(waitLimit)
	for {
		bad := -1
		for i, m := range ms {
			if !slices.Equal(names(m), want) {
				bad = i
				break
			}
		}
		if bad < 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("node %d lists %v, want %v", bad, names(ms[bad]), want)
		}
		time.Sleep(10 * time.Millisecond) // poll interval, not a wait for an outcome
	}
}

func waitChange(t *testing.T, ch <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(waitLimit):
		t.Fatalf("no Changes signal after %s", what)
	}
}

func drain(ch <-chan struct{}) {
	select {
	case <-ch:
	default:
	}
}

func TestJoinBlockNodesAndLeave(t *testing.T) {
	n1 := start(t, "n1", Meta{Roles: []string{"block"}, GRPCAddr: "10.0.0.1:7000"}, nil)
	if !strings.HasPrefix(n1.Addr(), "127.0.0.1:") || strings.HasSuffix(n1.Addr(), ":0") {
		t.Fatalf("Addr() = %q, want the bound loopback port", n1.Addr())
	}
	waitNames(t, []string{"n1"}, n1)
	ch := n1.Changes()

	n2 := start(t, "n2", Meta{Roles: []string{"meta", "block"}, GRPCAddr: "10.0.0.2:7000"}, nil, n1.Addr())
	waitChange(t, ch, "n2 joined")
	n3 := start(t, "n3", Meta{Roles: []string{"gateway"}, HTTPAddr: "10.0.0.3:80"}, nil, n1.Addr())
	waitNames(t, []string{"n1", "n2", "n3"}, n1, n2, n3)

	for _, m := range []*Members{n1, n2, n3} {
		got := m.BlockNodes()
		slices.SortFunc(got, func(a, b replica.Node) int { return strings.Compare(string(a.ID), string(b.ID)) })
		want := []replica.Node{{ID: "n1", Addr: "10.0.0.1:7000"}, {ID: "n2", Addr: "10.0.0.2:7000"}}
		if !slices.Equal(got, want) {
			t.Errorf("BlockNodes() = %v, want %v", got, want)
		}
	}
	for _, mb := range n1.Nodes() {
		if mb.State != StateAlive || mb.Addr == "" {
			t.Errorf("member %+v: want alive with an address", mb)
		}
		if mb.Name == "n3" && (mb.Meta.HTTPAddr != "10.0.0.3:80" || !mb.Meta.HasRole("gateway")) {
			t.Errorf("n3 meta = %+v", mb.Meta)
		}
	}

	drain(ch)
	if err := n3.Close(); err != nil {
		t.Fatal(err)
	}
	if err := n3.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	waitChange(t, ch, "n3 left")
	waitNames(t, []string{"n1", "n2"}, n1, n2)

	if err := n3.Leave(time.Second); !errors.Is(err, ErrClosed) {
		t.Errorf("Leave after Close = %v, want ErrClosed", err)
	}
	if _, err := n3.Join(context.Background(), n1.Addr()); !errors.Is(err, ErrClosed) {
		t.Errorf("Join after Close = %v, want ErrClosed", err)
	}
}

func TestKilledNodeDetected(t *testing.T) {
	n1 := start(t, "n1", Meta{Roles: []string{"block"}}, nil)
	n2 := start(t, "n2", Meta{Roles: []string{"block"}}, nil, n1.Addr())
	n3 := start(t, "n3", Meta{Roles: []string{"block"}}, nil, n1.Addr())
	waitNames(t, []string{"n1", "n2", "n3"}, n1, n2, n3)
	ch := n2.Changes()

	n3.kill() // shut down without leaving, like a crash
	waitChange(t, ch, "n3 died")
	waitNames(t, []string{"n1", "n2"}, n1, n2)
	for _, n := range n1.BlockNodes() {
		if n.ID == "n3" {
			t.Fatalf("dead n3 still in BlockNodes: %v", n1.BlockNodes())
		}
	}
}

func TestOtherClusterIgnored(t *testing.T) {
	var alog syncBuffer
	a := start(t, "a", Meta{ClusterID: "c1", Roles: []string{"block"}}, &alog)
	b := start(t, "b", Meta{ClusterID: "c1"}, nil, a.Addr())
	f := start(t, "f", Meta{ClusterID: "c2", Roles: []string{"block"}}, nil, a.Addr())
	fresh := start(t, "fresh", Meta{}, nil, a.Addr()) // not bootstrapped: matches any cluster

	// Wait until gossip has told a and f of all four nodes, then check the lists.
	deadline := time.Now().Add(waitLimit)
	for a.ml.NumMembers() != 4 || f.ml.NumMembers() != 4 {
		if time.Now().After(deadline) {
			t.Fatalf("gossip incomplete: a knows %d, f knows %d", a.ml.NumMembers(), f.ml.NumMembers())
		}
		time.Sleep(10 * time.Millisecond) // poll interval
	}
	if got := names(a); slices.Contains(got, "f") {
		t.Fatalf("a lists %v, including f of another cluster", got)
	}
	waitNames(t, []string{"a", "b", "fresh"}, a, b)
	waitNames(t, []string{"f", "fresh"}, f)
	waitNames(t, []string{"a", "b", "f", "fresh"}, fresh)
	for _, n := range b.BlockNodes() {
		if n.ID == "f" {
			t.Fatalf("b's BlockNodes include f of another cluster")
		}
	}
	if ig := a.Ignored(); len(ig) != 1 || ig[0].Name != "f" || ig[0].ClusterID != "c2" || ig[0].Addr != f.Addr() {
		t.Errorf("a.Ignored() = %+v, want f of c2 at %s", ig, f.Addr())
	}
	if n := strings.Count(alog.String(), "member=f "); n != 1 {
		t.Errorf("a logged about f %d times, want once:\n%s", n, alog.String())
	}
}

func TestStartErrors(t *testing.T) {
	ctx := context.Background()
	_, err := Start(ctx, Config{Name: "x", BindAddr: "127.0.0.1:0", Fast: true,
		Meta: Meta{Roles: []string{strings.Repeat("r", 600)}}})
	if !errors.Is(err, ErrInvalidConfig) {
		t.Errorf("Start with a too large Meta = %v, want ErrInvalidConfig", err)
	}
	if _, err := Start(ctx, Config{}); !errors.Is(err, ErrInvalidConfig) {
		t.Errorf("Start(Config{}) = %v, want ErrInvalidConfig", err)
	}

	// Find a free port, then close it so nothing listens there.
	probe := start(t, "probe", Meta{}, nil)
	dead := probe.Addr()
	if err := probe.Close(); err != nil {
		t.Fatal(err)
	}
	_, err = Start(ctx, Config{Name: "y", BindAddr: "127.0.0.1:0", Join: []string{dead}, Fast: true})
	if !errors.Is(err, ErrJoin) {
		t.Errorf("Start joining nobody = %v, want ErrJoin", err)
	}

	m := start(t, "z", Meta{}, nil)
	if _, err := m.Join(ctx); !errors.Is(err, ErrJoin) {
		t.Errorf("Join() with no addresses = %v, want ErrJoin", err)
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := Start(cctx, Config{Name: "c", BindAddr: "127.0.0.1:0", Fast: true}); !errors.Is(err, context.Canceled) {
		t.Errorf("Start with a cancelled ctx = %v, want context.Canceled", err)
	}
}

func TestSetMetaAndAll(t *testing.T) {
	n1 := start(t, "n1", Meta{Roles: []string{"meta"}}, nil)
	n2 := start(t, "n2", Meta{Roles: []string{"meta"}}, nil, n1.Addr())
	start(t, "n3", Meta{ClusterID: "other"}, nil, n1.Addr())
	waitNames(t, []string{"n1", "n2", "n3"}, n1, n2) // nobody has an ID yet on n1/n2

	// n1 takes cluster "c1" and leads groups 0 and 3: n2 sees it, and n1
	// hides n3 (of "other") from then on.
	if err := n1.SetMeta(Meta{Roles: []string{"meta"}, ClusterID: "c1", Leads: []uint64{0, 3}}, time.Second); err != nil {
		t.Fatal(err)
	}
	if got := n1.Local(); got.ClusterID != "c1" || !slices.Equal(got.Leads, []uint64{0, 3}) {
		t.Fatalf("Local() = %+v", got)
	}
	waitNames(t, []string{"n1", "n2"}, n1)
	deadline := time.Now().Add(waitLimit)
	for {
		var leads []uint64
		for _, mb := range n2.Nodes() {
			if mb.Name == "n1" {
				leads = mb.Meta.Leads
			}
		}
		if slices.Equal(leads, []uint64{0, 3}) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("n2 never saw n1's leads; has %v", leads)
		}
		time.Sleep(10 * time.Millisecond) // poll interval
	}
	if err := n1.SetMeta(Meta{Roles: make([]string, 200)}, time.Second); err == nil {
		t.Fatal("SetMeta accepted a meta larger than memberlist allows")
	}

	// A killed member stays in All as dead, with the time it was seen to go.
	before := time.Now()
	n2.kill()
	deadline = time.Now().Add(waitLimit)
	for {
		var st *Member
		for _, mb := range n1.All() {
			if mb.Name == "n2" {
				st = &mb
			}
		}
		if st != nil && st.State == StateDead {
			if st.Since.Before(before) {
				t.Fatalf("dead since %v, before the kill at %v", st.Since, before)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("n2 not reported dead by All: %+v", n1.All())
		}
		time.Sleep(10 * time.Millisecond) // poll interval
	}
	n1.Forget("n2")
	for _, mb := range n1.All() {
		if mb.Name == "n2" {
			t.Fatalf("Forget left n2 in All")
		}
	}
}

// SetMeta may be called from several goroutines at once.
func TestSetMetaConcurrent(t *testing.T) {
	n1 := start(t, "n1", Meta{Roles: []string{"meta"}}, nil)
	start(t, "n2", Meta{Roles: []string{"meta"}}, nil, n1.Addr())
	var wg sync.WaitGroup
	for i := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range 10 {
				if err := n1.SetMeta(Meta{Roles: []string{"meta"}, Leads: []uint64{uint64(i), uint64(j)}}, time.Second); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
}
