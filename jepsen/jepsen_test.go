package jepsen

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/coffer-dev/coffer/jepsen/history"
	"github.com/coffer-dev/coffer/jepsen/workload"
)

func TestConfigValidate(t *testing.T) {
	good := Config{Out: "x", Scenario: Suites["ci"][0]}
	if err := good.Validate(); err != nil {
		t.Fatalf("good config: %v", err)
	}
	bad := []Config{
		{Scenario: good.Scenario},
		{Out: "x", Nodes: 4, Scenario: good.Scenario},
		{Out: "x", Net: "wifi", Scenario: good.Scenario},
		{Out: "x", Scenario: Scenario{Name: "s", Faults: []string{"meteor"}, Workloads: []string{"set"}, Warmup: time.Second, Recovery: time.Second}},
		{Out: "x", Scenario: Scenario{Name: "s", Warmup: time.Second, Recovery: time.Second}},
		{Out: "x", Scenario: Scenario{Name: "s", Workloads: []string{"set"}}},
	}
	for i, c := range bad {
		if err := c.Validate(); !errors.Is(err, ErrInvalidConfig) {
			t.Errorf("bad config %d: %v, want ErrInvalidConfig", i, err)
		}
	}
}

// TestSuites: the ci suite covers every fault kind and every workload,
// and every scenario is valid.
func TestSuites(t *testing.T) {
	for name, suite := range Suites {
		for _, s := range suite {
			if err := (Config{Out: "x", Scenario: s}).Validate(); err != nil {
				t.Errorf("suite %s scenario %s: %v", name, s.Name, err)
			}
			for _, w := range s.Workloads {
				if _, err := workload.New(w, workload.Config{}); err != nil {
					t.Errorf("suite %s scenario %s: workload %s: %v", name, s.Name, w, err)
				}
			}
		}
	}
	var faults, wls []string
	for _, s := range Suites["ci"] {
		faults = append(faults, s.Faults...)
		wls = append(wls, s.Workloads...)
	}
	for _, k := range FaultKinds {
		if !slices.Contains(faults, k) {
			t.Errorf("the ci suite never injects %s", k)
		}
	}
	for _, w := range workload.Names {
		if !slices.Contains(wls, w) {
			t.Errorf("the ci suite never runs workload %s", w)
		}
	}
}

// TestGrudges: partitions over the live nodes' hosts cut exactly the
// pairs across the sides, symmetrically.
func TestGrudges(t *testing.T) {
	for _, n := range []int{3, 5} {
		host := map[int]int{}
		var live []int
		for i := range n {
			live = append(live, i+1) // node indices need not be host indices
			host[i+1] = i
		}
		rng := rand.New(rand.NewPCG(1, uint64(n)))
		name := func(i int) string { return fmt.Sprint("n", i) }
		for _, kind := range []string{FaultIsolate, FaultMajority, FaultBridge} {
			for range 20 {
				g, _, _ := partition(kind, live, host, name, rng)
				cut := 0
				for a, bs := range g {
					for _, b := range bs {
						if a == b || !slices.Contains(g[b], a) {
							t.Fatalf("%s n=%d: grudge %v is not symmetric", kind, n, g)
						}
						cut++
					}
				}
				cut /= 2
				var want int
				switch kind {
				case FaultIsolate:
					want = n - 1
				case FaultMajority:
					k := n/2 + 1
					want = k * (n - k)
				case FaultBridge:
					h := (n - 1) / 2
					want = h * (n - 1 - h)
					bridged := 0
					for i := range n {
						if len(g[i]) == 0 {
							bridged++
						}
					}
					if bridged != 1 {
						t.Fatalf("bridge n=%d: %d hosts see everyone, want 1: %v", n, bridged, g)
					}
				}
				if cut != want {
					t.Fatalf("%s n=%d: %d pairs cut, want %d: %v", kind, n, cut, want, g)
				}
			}
		}
	}
}

func TestCrashLines(t *testing.T) {
	log := `=== proc: n1 start 1 at 02:00:00: ["cofferd"]
time=2026-11-26T02:00:01Z level=INFO msg="panic: not really" component=x
=== proc: n1 pid 10 exited at 02:00:05: signal: killed (killed by the harness)
=== proc: n1 start 2 at 02:00:06: ["cofferd"]
panic: runtime error: index out of range
goroutine 1 [running]:
=== proc: n1 pid 11 exited at 02:00:07: exit status 2 (unexpectedly)
fatal error: concurrent map writes
`
	got, err := crashLines(strings.NewReader(log))
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"panic: runtime error: index out of range", "=== proc: n1 pid 11 exited at 02:00:07: exit status 2 (unexpectedly)", "fatal error: concurrent map writes"}
	if !slices.Equal(got, want) {
		t.Errorf("crash lines %q, want %q", got, want)
	}
}

func TestNemesisResult(t *testing.T) {
	s := time.Second
	kill := history.Fault{ID: 0, Kind: FaultKill, Start: 10 * s, End: 15 * s}
	pause := history.Fault{ID: 1, Kind: FaultPause, Start: 20 * s, End: 25 * s}
	open := history.Fault{ID: 2, Kind: FaultPause, Start: 30 * s}
	for _, c := range []struct {
		name     string
		kinds    []string
		faults   []history.Fault
		failures []string
		valid    bool
	}{
		{"every kind once", []string{FaultKill, FaultPause}, []history.Fault{kill, pause}, nil, true},
		{"a kind never injected", []string{FaultKill, FaultPause, FaultIsolate}, []history.Fault{kill, pause}, nil, false},
		{"nothing injected", []string{FaultKill}, nil, nil, false},
		{"a fault never ended", []string{FaultKill, FaultPause}, []history.Fault{kill, pause, open}, nil, false},
		{"a heal failed", []string{FaultKill, FaultPause}, []history.Fault{kill, pause}, []string{"kill: restart: no"}, false},
		{"no kinds (loopback partition scenario)", nil, nil, nil, true},
	} {
		n := &nemesis{skipped: map[string]int{}, failures: c.failures}
		r := nemesisResult(n, c.kinds, c.faults, 40*s)
		if r.Valid != c.valid {
			t.Errorf("%s: valid %v, want %v: %s %v", c.name, r.Valid, c.valid, r.Summary, r.Details)
		}
	}
}

func TestMutations(t *testing.T) {
	ops := []history.Op{{Kind: history.KindRead}, {Kind: history.KindWrite}, {Kind: history.KindFeed}, {Kind: history.KindCAS},
		{Kind: history.KindCreate}, {Kind: history.KindUpload}, {Kind: "edit"}, {Kind: history.KindDownload}}
	if got := len(mutations(ops)); got != 5 {
		t.Errorf("%d mutations, want 5", got)
	}
}
