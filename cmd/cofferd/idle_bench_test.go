package main

import (
	"context"
	"crypto/sha256"
	"log/slog"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/coffer-dev/coffer/cluster"
)

// cpuTime is the CPU time (user + system) this process has used.
func cpuTime(tb testing.TB) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		tb.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// cpuShare measures the CPU this process uses over window, as a share of
// one core.
func cpuShare(tb testing.TB, window time.Duration) float64 {
	c0, t0 := cpuTime(tb), time.Now()
	time.Sleep(window) // the measurement window itself
	return float64(cpuTime(tb)-c0) / float64(time.Since(t0))
}

// BenchmarkIdleDevCluster measures what the `cofferd dev` cluster (three
// nodes, the system group and 8 shard groups of 3 replicas, production
// Raft and gossip timings) costs at rest: the CPU share of one core the
// whole process uses over IDLE_WINDOW once the cluster has formed and its
// leaders are spread. References from the same run: the same process's
// CPU share over an equal window before the cluster starts, and SHA-256
// speed (machine speed).
//
//	go test -run '^$' -bench IdleDevCluster -benchtime 1x ./cmd/cofferd
func BenchmarkIdleDevCluster(b *testing.B) {
	const window = 20 * time.Second
	buf := make([]byte, 64<<20)
	t0 := time.Now()
	sum := sha256.Sum256(buf)
	_ = sum
	shaMBs := float64(len(buf)) / (1 << 20) / time.Since(t0).Seconds()
	baseline := cpuShare(b, 5*time.Second)

	dir := b.TempDir()
	addr, err := freeAddr()
	if err != nil {
		b.Fatal(err)
	}
	var idle float64
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	err = runDev(ctx, devConfig{Dir: filepath.Join(dir, "data"), HTTPAddr: addr, Exit: true,
		Log: slog.New(slog.DiscardHandler), Out: discard{},
		onReady: func(nodes []*cluster.Node, _ string) error {
			// Let the controller's last moves and the first repair pass
			// settle, then measure.
			time.Sleep(5 * time.Second) // settling time before the window
			b.ResetTimer()
			for range b.N {
				idle = cpuShare(b, window)
			}
			b.StopTimer()
			return nil
		}})
	if err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(idle*100, "idle-cpu-%-of-core")
	b.ReportMetric(baseline*100, "ref-baseline-cpu-%")
	b.ReportMetric(shaMBs, "ref-sha256-MB/s")
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }
