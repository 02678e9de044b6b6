package gc

import (
	"context"
	"math/rand/v2"
	"testing"
)

func BenchmarkBloomContains(b *testing.B) {
	rng := rand.New(rand.NewPCG(9, 10))
	f := newFilter(b, 1_000_000, 0.01)
	for _, r := range randomRefs(rng, 1_000_000) {
		f.Add(r)
	}
	queries := randomRefs(rng, 1<<16)
	b.ResetTimer()
	hits := 0
	for i := 0; b.Loop(); i++ {
		if f.Contains(queries[i&(len(queries)-1)]) {
			hits++
		}
	}
	_ = hits
}

// BenchmarkRunMemstore sweeps a memstore of 100 000 blocks, a third live,
// about 60% garbage: "dry" walks and classifies them (every iteration does
// the same work), "delete" also deletes the garbage (the store is rebuilt,
// untimed, before each iteration).
func BenchmarkRunMemstore(b *testing.B) {
	const n = 100_000
	b.Run("dry", func(b *testing.B) {
		clk := newClock()
		s := newStore(b, clk)
		live, garbage, _ := populate(b, s, clk, n, 11)
		cfg := Config{Now: clk.Now, DryRun: true}
		b.ResetTimer()
		for range b.N {
			rep, err := Run(context.Background(), s, live, cfg)
			if err != nil || rep.WouldDelete != int64(len(garbage)) {
				b.Fatalf("Run = %+v, %v; want %d would-delete", rep, err, len(garbage))
			}
		}
	})
	b.Run("delete", func(b *testing.B) {
		for range b.N {
			b.StopTimer()
			clk := newClock()
			s := newStore(b, clk)
			live, garbage, _ := populate(b, s, clk, n, 11)
			cfg := Config{Now: clk.Now}
			b.StartTimer()
			rep, err := Run(context.Background(), s, live, cfg)
			if err != nil || rep.Deleted != int64(len(garbage)) {
				b.Fatalf("Run = %+v, %v; want %d deleted", rep, err, len(garbage))
			}
			b.StopTimer()
			s.Close()
			b.StartTimer()
		}
	})
}
