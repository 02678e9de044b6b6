package jepsen

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

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
