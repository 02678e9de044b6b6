package netns

import (
	"math/rand/v2"
	"reflect"
	"slices"
	"testing"
)

// blocks reports whether a and b cannot talk under g (either side's grudge
// cuts both directions).
func blocks(g Grudge, a, b int) bool {
	return slices.Contains(g[a], b) || slices.Contains(g[b], a)
}

// checkSides checks that g cuts exactly the pairs across sides, and that a
// host in no side (a bridge) is cut from nobody.
func checkSides(t *testing.T, n int, g Grudge, sides ...[]int) {
	t.Helper()
	side := map[int]int{}
	for s, hosts := range sides {
		for _, h := range hosts {
			side[h] = s + 1
		}
	}
	for a := range n {
		for b := range n {
			if a == b {
				if slices.Contains(g[a], a) {
					t.Errorf("host %d holds a grudge against itself", a)
				}
				continue
			}
			want := side[a] != 0 && side[b] != 0 && side[a] != side[b]
			if got := blocks(g, a, b); got != want {
				t.Errorf("%v: %d↔%d blocked=%v, want %v", g, a, b, got, want)
			}
			// Both ends drop: symmetric grudges.
			if slices.Contains(g[a], b) != slices.Contains(g[b], a) {
				t.Errorf("%v is not symmetric for %d,%d", g, a, b)
			}
		}
	}
}

func TestIsolateOne(t *testing.T) {
	g, desc := IsolateOne(5, 2)
	checkSides(t, 5, g, []int{2}, []int{0, 1, 3, 4})
	if desc != "isolate n3 | n1 n2 n4 n5" {
		t.Errorf("description %q", desc)
	}
	if g, _ := IsolateOne(1, 0); len(g) != 0 {
		t.Errorf("one host: %v", g)
	}
}

func TestSplitMajority(t *testing.T) {
	for n := 1; n <= 7; n++ {
		for seed := range uint64(20) {
			g, desc := SplitMajority(n, rand.New(rand.NewPCG(seed, 1)))
			var maj, mino []int
			for h := range n {
				// A host on the majority side is blocked from fewer hosts.
				if len(g[h]) < n/2+1 {
					maj = append(maj, h)
				} else {
					mino = append(mino, h)
				}
			}
			if len(maj) != n/2+1 || len(mino) != n-len(maj) {
				t.Fatalf("n=%d seed=%d %s: sides %v | %v", n, seed, desc, maj, mino)
			}
			checkSides(t, n, g, maj, mino)
		}
	}
	a, da := SplitMajority(5, rand.New(rand.NewPCG(7, 7)))
	b, db := SplitMajority(5, rand.New(rand.NewPCG(7, 7)))
	if !reflect.DeepEqual(a, b) || da != db {
		t.Errorf("same seed, different splits: %s vs %s", da, db)
	}
	seen := map[string]bool{}
	for seed := range uint64(50) {
		_, d := SplitMajority(5, rand.New(rand.NewPCG(seed, 0)))
		seen[d] = true
	}
	if len(seen) < 5 {
		t.Errorf("50 seeds gave only %d different splits", len(seen))
	}
}

func TestBridge(t *testing.T) {
	for n := 3; n <= 7; n++ {
		for seed := range uint64(20) {
			g, desc := Bridge(n, rand.New(rand.NewPCG(seed, 2)))
			var bridges []int
			for h := range n {
				if len(g[h]) == 0 {
					bridges = append(bridges, h)
				}
			}
			if len(bridges) != 1 {
				t.Fatalf("n=%d %s: bridges %v in %v", n, desc, bridges, g)
			}
			// Two halves: each non-bridge host is cut from the other half.
			var a, b []int
			first := -1
			for h := range n {
				if h == bridges[0] {
					continue
				}
				if first < 0 {
					first = h
				}
				if h == first || !blocks(g, first, h) {
					a = append(a, h)
				} else {
					b = append(b, h)
				}
			}
			if d := len(a) - len(b); d < -1 || d > 1 {
				t.Errorf("n=%d %s: halves %v | %v", n, desc, a, b)
			}
			checkSides(t, n, g, a, b)
			if n == 5 && (len(a)+1 != 3 || len(b)+1 != 3) {
				t.Errorf("5 hosts: each half plus the bridge should be a majority: %s", desc)
			}
		}
	}
	for n := range 3 {
		if g, _ := Bridge(n, rand.New(rand.NewPCG(1, 1))); len(g) != 0 {
			t.Errorf("Bridge(%d) = %v", n, g)
		}
	}
}
