package raftmeta_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coffer-dev/coffer/raftmeta"
	"github.com/hashicorp/raft"
)

// benchGroup is a 3-replica group with real disk stores and Raft over TCP
// on loopback: the shape of a production group, on one machine.
type benchGroup struct {
	logs   []*countingLogStore
	shards []*raftmeta.Shard
	closer []func()
	dir    string
}

func newBenchGroup(b *testing.B) *benchGroup {
	b.Helper()
	g := &benchGroup{dir: b.TempDir()}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	var servers []raft.Server
	for i := 0; i < 3; i++ {
		dir := filepath.Join(g.dir, fmt.Sprint(i))
		st, err := raftmeta.OpenRaftStores(filepath.Join(dir, "raft"), log)
		if err != nil {
			b.Fatal(err)
		}
		db, err := raftmeta.OpenPebble(filepath.Join(dir, "state"), log)
		if err != nil {
			b.Fatal(err)
		}
		trans, err := raft.NewTCPTransport("127.0.0.1:0", nil, 8, 10*time.Second, io.Discard)
		if err != nil {
			b.Fatal(err)
		}
		id := raft.ServerID(fmt.Sprint("b", i))
		logs := &countingLogStore{LogStore: st.Bolt}
		g.logs = append(g.logs, logs)
		s, err := raftmeta.Open(raftmeta.Config{
			GroupID: 1, LocalID: id, DB: db, Transport: trans,
			LogStore: logs, StableStore: st.Bolt, SnapshotStore: st.Snapshots, Logger: log,
			Password: raftmeta.PasswordParams{Time: 1, MemoryKiB: 64, Threads: 1}, PruneInterval: -1,
		})
		if err != nil {
			b.Fatal(err)
		}
		g.shards = append(g.shards, s)
		g.closer = append(g.closer, func() { s.Close(); trans.Close(); db.Close(); st.Close() })
		servers = append(servers, raft.Server{ID: id, Address: trans.LocalAddr(), Suffrage: raft.Voter})
	}
	b.Cleanup(func() {
		for _, c := range g.closer {
			c()
		}
	})
	if err := g.shards[0].Bootstrap(servers); err != nil {
		b.Fatal(err)
	}
	return g
}

func (g *benchGroup) leader(b *testing.B) *raftmeta.Shard {
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		for _, s := range g.shards {
			if s.IsLeader() {
				if _, err := s.User(context.Background(), "nobody", raftmeta.ReadOptions{}); err == nil || raftmeta.CodeOf(err) == raftmeta.CodeNotFound {
					return s
				}
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	b.Fatal("no leader")
	return nil
}

// countingLogStore counts the Raft log's writes: raft-boltdb fsyncs once
// per StoreLogs call, so entries per call is entries per fsync.
type countingLogStore struct {
	raft.LogStore
	writes, entries atomic.Int64
}

func (c *countingLogStore) StoreLog(l *raft.Log) error { return c.StoreLogs([]*raft.Log{l}) }

func (c *countingLogStore) StoreLogs(logs []*raft.Log) error {
	c.writes.Add(1)
	c.entries.Add(int64(len(logs)))
	return c.LogStore.StoreLogs(logs)
}

// fsyncLatency measures this disk's fsync latency (4 KiB write + fsync) in
// dir: the reference the commit figures are read against.
func fsyncLatency(b *testing.B, dir string) (p50 time.Duration) {
	f, err := os.Create(filepath.Join(dir, "fsync-probe"))
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, 4096)
	lat := make([]time.Duration, 200)
	for i := range lat {
		start := time.Now()
		if _, err := f.WriteAt(buf, int64(i%16)*4096); err != nil {
			b.Fatal(err)
		}
		if err := f.Sync(); err != nil {
			b.Fatal(err)
		}
		lat[i] = time.Since(start)
	}
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	return lat[len(lat)/2]
}

// BenchmarkCommit measures one-op commits on a 3-replica group with real
// disk stores, with 1, 16 and 64 concurrent callers. Each sub-benchmark
// reports commits/s, p50 and p99 latency, the disk's fsync p50 measured
// just before it, and commits per fsync-time (commits/s × fsync p50): at 1
// caller a commit costs more than one fsync, so that ratio is below 1; with
// many callers Raft batches entries into shared fsyncs and it rises. It
// also reports the leader's Raft log entries per fsync directly.
func BenchmarkCommit(b *testing.B) {
	g := newBenchGroup(b)
	s := g.leader(b)
	ctx := context.Background()
	var users []*raftmeta.User
	for i := 0; i < 8; i++ {
		u, err := s.CreateUser(ctx, raftmeta.CreateUserRequest{RequestID: fmt.Sprint("u", i), Name: fmt.Sprint("user", i), Password: "pw"})
		if err != nil {
			b.Fatal(err)
		}
		users = append(users, u)
	}
	var seq atomic.Int64
	for _, callers := range []int{1, 16, 64} {
		b.Run(fmt.Sprintf("callers=%d", callers), func(b *testing.B) {
			fsync := fsyncLatency(b, g.dir)
			var leaderLog *countingLogStore
			for i, sh := range g.shards {
				if sh == s {
					leaderLog = g.logs[i]
				}
			}
			w0, e0 := leaderLog.writes.Load(), leaderLog.entries.Load()
			lat := make([]time.Duration, b.N)
			var next atomic.Int64
			var wg sync.WaitGroup
			var failed atomic.Value
			b.ResetTimer()
			start := time.Now()
			for c := 0; c < callers; c++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for {
						i := next.Add(1) - 1
						if i >= int64(b.N) {
							return
						}
						n := seq.Add(1)
						u := users[n%int64(len(users))]
						op := putOp(fmt.Sprintf("/bench/%d", n), "x")
						t0 := time.Now()
						_, err := s.Commit(ctx, raftmeta.CommitRequest{RequestID: fmt.Sprint("c", n), Namespace: u.Namespace, Ops: []raftmeta.Op{op}})
						lat[i] = time.Since(t0)
						if err != nil {
							failed.Store(err)
							return
						}
					}
				}()
			}
			wg.Wait()
			elapsed := time.Since(start)
			b.StopTimer()
			writes, entries := leaderLog.writes.Load()-w0, leaderLog.entries.Load()-e0
			if err, _ := failed.Load().(error); err != nil {
				b.Fatal(err)
			}
			sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
			tput := float64(b.N) / elapsed.Seconds()
			b.ReportMetric(tput, "commits/s")
			b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
			b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
			b.ReportMetric(float64(fsync.Microseconds())/1000, "fsync-p50-ms")
			b.ReportMetric(tput*fsync.Seconds(), "commits-per-fsync-time")
			if writes > 0 {
				b.ReportMetric(float64(entries)/float64(writes), "entries/log-fsync")
			}
		})
	}
}
