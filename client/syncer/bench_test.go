package syncer_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/pprof"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/coffer-dev/coffer/client"
	"github.com/coffer-dev/coffer/client/syncer"
	"github.com/coffer-dev/coffer/cluster"
	"github.com/coffer-dev/coffer/gateway"
	"github.com/coffer-dev/coffer/internal/testcluster"
	"github.com/coffer-dev/coffer/raftmeta"
)

// The sync benchmarks (make bench-sync; figures in BENCHMARKS.md). Each
// reports its figures next to a reference measured in the same run:
//
//   - BenchmarkSyncIngest: Ingest of a 256 MiB file (page cache warm, and
//     dropped) next to plain SHA-256 of the same file on one core;
//   - BenchmarkSyncFirst{SmallFiles,SmallFilesNoRateLimit,BigFile}: the
//     first Sync of a folder (upload from device A, download into an empty
//     folder on device B) against a 3-node in-process cluster, next to
//     `cp -r` of the same folder followed by `sync` of every copied file
//     and folder (fsync each); requests and 429 answers are counted;
//   - BenchmarkSyncWatchLatency: edit-to-visible time between two Watch
//     engines, next to the p50 of a Whoami round trip.
//
//	go test -run '^$' -bench Sync -benchtime 1x -count 3 ./client/syncer

const benchPassword = "bench password"

// countingRT counts the requests a client sends and the 429 answers.
type countingRT struct {
	base     http.RoundTripper
	requests atomic.Int64
	limited  atomic.Int64
}

func (c *countingRT) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := c.base.RoundTrip(r)
	c.requests.Add(1)
	if err == nil && resp.StatusCode == http.StatusTooManyRequests {
		c.limited.Add(1)
	}
	return resp, err
}

func (c *countingRT) reset() {
	c.requests.Store(0)
	c.limited.Store(0)
}

// startUnlimited starts a 3-node cluster like testcluster.Start(b, 3)
// but with the gateways' per-user rate limit off (gateway.Config.UserRate
// < 0), which testcluster has no knob for.
func startUnlimited(b *testing.B) *testcluster.Cluster {
	b.Helper()
	base := b.TempDir()
	c := &testcluster.Cluster{}
	var join []string
	for i := 1; i <= 3; i++ {
		name := fmt.Sprintf("n%d", i)
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		node, err := cluster.Start(ctx, cluster.Config{
			Name: name, Dir: filepath.Join(base, name),
			RaftAddr: "127.0.0.1:0", GRPCAddr: "127.0.0.1:0", GossipAddr: "127.0.0.1:0", HTTPAddr: "127.0.0.1:0",
			Join: join, BootstrapExpect: 3, Shards: 2,
			AdminPassword: testcluster.AdminPassword,
			Password:      raftmeta.PasswordParams{Time: 1, MemoryKiB: 1024, Threads: 1},
			Fast:          true, BlockMinFreeBytes: -1,
			Gateway: gateway.Config{UserRate: -1},
			Logger:  slog.New(slog.DiscardHandler),
		})
		cancel()
		if err != nil {
			b.Fatalf("start %s: %v", name, err)
		}
		b.Cleanup(func() { node.Close() })
		if i == 1 {
			_, _, seed, _ := node.Addrs()
			join = []string{seed}
		}
		c.Nodes = append(c.Nodes, node)
	}
	for _, node := range c.Nodes {
		benchWait(b, node.Name()+" ready", node.Ready)
		_, _, _, h := node.Addrs()
		c.Addrs = append(c.Addrs, "http://"+h)
	}
	admin, err := client.New(client.Config{Servers: c.Addrs})
	if err != nil {
		b.Fatal(err)
	}
	benchWait(b, "admin login", func() error {
		_, err := admin.Login(context.Background(), "admin", testcluster.AdminPassword)
		return err
	})
	return c
}

// benchWait polls cond until it returns nil, for at most 90 s.
func benchWait(b *testing.B, what string, cond func() error) {
	b.Helper()
	deadline := time.Now().Add(90 * time.Second)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			b.Fatalf("%s: not done after 90 s: %v", what, err)
		}
		time.Sleep(50 * time.Millisecond) // poll interval
	}
}

// cpuTime is the CPU time (user + system) the process has used.
func cpuTime(b *testing.B) time.Duration {
	var ru unix.Rusage
	if err := unix.Getrusage(unix.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// login returns a session-token client for name, as `coffer login`
// leaves one (default transport), and its request counter.
func login(b *testing.B, cl *testcluster.Cluster, name string) (*client.Client, *countingRT) {
	b.Helper()
	rt := &countingRT{base: http.DefaultTransport}
	hc := &http.Client{Transport: rt}
	anon, err := client.New(client.Config{Servers: cl.Addrs, HTTPClient: hc})
	if err != nil {
		b.Fatal(err)
	}
	s, err := anon.Login(context.Background(), name, benchPassword)
	if err != nil {
		b.Fatal(err)
	}
	c, err := client.New(client.Config{Servers: cl.Addrs, Token: s.Token, HTTPClient: hc})
	if err != nil {
		b.Fatal(err)
	}
	return c, rt
}

// syncTimer is OSFS with the time spent in fsyncs (download temp files
// and folders) added up, over all goroutines.
type syncTimer struct {
	syncer.FS
	ns *atomic.Int64
}

type timedTemp struct {
	syncer.TempFile
	ns *atomic.Int64
}

func (t syncTimer) CreateTemp(dir, prefix string) (syncer.TempFile, error) {
	f, err := t.FS.CreateTemp(dir, prefix)
	if err != nil {
		return nil, err
	}
	return timedTemp{f, t.ns}, nil
}

func (t syncTimer) SyncDir(name string) error {
	start := time.Now()
	err := t.FS.SyncDir(name)
	t.ns.Add(int64(time.Since(start)))
	return err
}

func (t timedTemp) Sync() error {
	start := time.Now()
	err := t.TempFile.Sync()
	t.ns.Add(int64(time.Since(start)))
	return err
}

// openEngine opens an engine on dir; with fsyncs, over OSFS wrapped to
// time its fsyncs (Watch needs the plain OSFS).
func openEngine(b *testing.B, dir string, c *client.Client, host string, fsyncs *atomic.Int64) *syncer.Engine {
	b.Helper()
	cfg := syncer.Config{Dir: dir, API: c, Host: host}
	if fsyncs != nil {
		cfg.FS, cfg.StateDir = syncTimer{syncer.OSFS(dir), fsyncs}, filepath.Join(dir, syncer.StateDirName)
	}
	e, err := syncer.Open(cfg)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { e.Close() })
	return e
}

// runSync runs one Sync and checks it finished.
// It returns the wall time and the cores the process kept busy meanwhile
// (the cluster runs in the same process). The engine's goroutines carry
// the pprof label sync=phase (the cluster's do not), for
// `go tool pprof -tagfocus sync=up`.
func runSync(b *testing.B, e *syncer.Engine, phase string) (syncer.Summary, time.Duration, float64) {
	b.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	start, cpu0 := time.Now(), cpuTime(b)
	var s syncer.Summary
	var err error
	pprof.Do(ctx, pprof.Labels("sync", phase), func(ctx context.Context) { s, err = e.Sync(ctx) })
	d := time.Since(start)
	cores := (cpuTime(b) - cpu0).Seconds() / d.Seconds()
	if err != nil {
		b.Fatalf("sync: %v (%+v)", err, s)
	}
	if s.Pending != 0 {
		b.Fatalf("sync left %d steps: %+v", s.Pending, s)
	}
	return s, d, cores
}

// run execs a command and fails the benchmark if it fails.
func run(b *testing.B, name string, args ...string) {
	b.Helper()
	if out, err := exec.Command(name, args...).CombinedOutput(); err != nil {
		b.Fatalf("%s %v: %v\n%s", name, args, err, out)
	}
}

// cpReference copies src to a new folder with the real cp and makes the
// copy durable with the real sync given every copied file and folder
// (coreutils fsyncs each in turn: the engine fsyncs every file it writes
// and its folder, and a syncfs would also wait for other processes' dirty
// pages on this shared machine). The dirty pages of earlier writes are
// flushed first, untimed.
func cpReference(b *testing.B, src string) time.Duration {
	b.Helper()
	run(b, "sync")
	dst := filepath.Join(b.TempDir(), "copy")
	start := time.Now()
	run(b, "cp", "-r", src, dst)
	args := []string{"--"}
	err := filepath.WalkDir(dst, func(p string, _ fs.DirEntry, err error) error {
		rel, _ := filepath.Rel(dst, p)
		args = append(args, rel)
		return err
	})
	if err != nil {
		b.Fatal(err)
	}
	cmd := exec.Command("sync", args...)
	cmd.Dir = dst
	if out, err := cmd.CombinedOutput(); err != nil {
		b.Fatalf("sync: %v\n%s", err, out)
	}
	d := time.Since(start)
	if err := os.RemoveAll(dst); err != nil {
		b.Fatal(err)
	}
	return d
}

// writeRandom writes n reproducible random bytes to p.
func writeRandom(b *testing.B, p string, n int64, seed uint64) {
	b.Helper()
	f, err := os.Create(p)
	if err != nil {
		b.Fatal(err)
	}
	var s [32]byte
	s[0], s[1] = byte(seed), byte(seed>>8)
	if _, err := io.Copy(f, io.LimitReader(rand.NewChaCha8(s), n)); err != nil {
		b.Fatal(err)
	}
	if err := f.Close(); err != nil {
		b.Fatal(err)
	}
}

// digest maps every file below dir (the state folder aside) to its
// SHA-256, and every folder to "/".
func digest(b *testing.B, dir string) map[string]string {
	b.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, de fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		switch {
		case rel == ".":
			return nil
		case rel == syncer.StateDirName:
			return filepath.SkipDir
		case de.IsDir():
			out[rel] = "/"
			return nil
		}
		f, err := os.Open(p)
		if err != nil {
			return err
		}
		defer f.Close()
		h := sha256.New()
		if _, err := io.Copy(h, f); err != nil {
			return err
		}
		out[rel] = hex.EncodeToString(h.Sum(nil))
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
	return out
}

func mbps(n int64, d time.Duration) float64 { return float64(n) / d.Seconds() / 1e6 }

// BenchmarkSyncIngest: Ingest (read + FastCDC + block hashes + whole-file
// hash) of a 256 MiB file of random bytes, with the page cache warm and
// after dropping the file's pages (posix_fadvise DONTNEED), next to plain
// SHA-256 of the same file (read in 1 MiB pieces and hashed on one
// goroutine, as sha256sum does; page cache warm), measured before and
// after the warm ingest: the reference is their mean.
func BenchmarkSyncIngest(b *testing.B) {
	const size = 256 << 20
	p := filepath.Join(b.TempDir(), "ingest.bin")
	writeRandom(b, p, size, 1)
	run(b, "sync")
	open := func(cold bool) *os.File {
		f, err := os.Open(p)
		if err != nil {
			b.Fatal(err)
		}
		if cold {
			if err := unix.Fadvise(int(f.Fd()), 0, 0, unix.FADV_DONTNEED); err != nil {
				b.Fatal(err)
			}
		}
		return f
	}
	ingest := func(cold bool) time.Duration {
		f := open(cold)
		defer f.Close()
		start := time.Now()
		m, err := syncer.Ingest(context.Background(), f)
		d := time.Since(start)
		if err != nil || m.Size != size || len(m.Blocks) == 0 {
			b.Fatalf("ingest: %v (size %d, %d blocks)", err, m.Size, len(m.Blocks))
		}
		return d
	}
	buf := make([]byte, 1<<20)
	hashRef := func() time.Duration {
		f := open(false)
		defer f.Close()
		start := time.Now()
		h := sha256.New()
		n, err := io.CopyBuffer(h, struct{ io.Reader }{f}, buf)
		d := time.Since(start)
		if err != nil || n != size {
			b.Fatalf("read: %d bytes, %v", n, err)
		}
		return d
	}
	hashRef() // warms the page cache
	var warm, cold, ref float64
	for b.Loop() {
		r1 := hashRef()
		w := ingest(false)
		r2 := hashRef()
		c := ingest(true)
		warm, cold, ref = mbps(size, w), mbps(size, c), (mbps(size, r1)+mbps(size, r2))/2
	}
	b.ReportMetric(warm, "ingest-warm-MB/s")
	b.ReportMetric(cold, "ingest-cold-MB/s")
	b.ReportMetric(ref, "ref-sha256-MB/s")
	b.ReportMetric(warm/ref, "warm/sha256")
	b.ReportMetric(cold/ref, "cold/sha256")
}

// firstSync fills device A's folder with fill, measures the cp reference
// on it, then the first Sync of A (upload) and of an empty device B
// (download), checks B holds what A holds, and reports the figures.
func firstSync(b *testing.B, cl *testcluster.Cluster, files int, fill func(dir string) int64) {
	var cpT, upT, downT time.Duration
	var upCores, downCores float64
	var downFsync time.Duration
	var bytesTotal int64
	var upReq, upLimited, downReq, downLimited int64
	for i := 0; b.Loop(); i++ {
		user := fmt.Sprintf("bench%d", i)
		cl.AddUser(b, user, benchPassword)
		ca, rta := login(b, cl, user)
		cb, rtb := login(b, cl, user)
		dirA, dirB := b.TempDir(), b.TempDir()
		bytesTotal = fill(dirA)
		cpT = cpReference(b, dirA)

		ea := openEngine(b, dirA, ca, "pc-a", nil)
		rta.reset()
		sa, d, cores := runSync(b, ea, "up")
		upT, upCores = d, cores
		upReq, upLimited = rta.requests.Load(), rta.limited.Load()
		if sa.Uploaded != files {
			b.Fatalf("A uploaded %d files, want %d: %+v", sa.Uploaded, files, sa)
		}

		var fsyncs atomic.Int64
		eb := openEngine(b, dirB, cb, "pc-b", &fsyncs)
		rtb.reset()
		sb, d, cores := runSync(b, eb, "down")
		downT, downCores, downFsync = d, cores, time.Duration(fsyncs.Load())
		downReq, downLimited = rtb.requests.Load(), rtb.limited.Load()
		if sb.Downloaded != files {
			b.Fatalf("B downloaded %d files, want %d: %+v", sb.Downloaded, files, sb)
		}
		da, db := digest(b, dirA), digest(b, dirB)
		if len(da) != len(db) {
			b.Fatalf("A has %d entries, B %d", len(da), len(db))
		}
		for p, h := range da {
			if db[p] != h {
				b.Fatalf("%s: A %s, B %s", p, h, db[p])
			}
		}
	}
	b.ReportMetric(upT.Seconds(), "up-s")
	b.ReportMetric(downT.Seconds(), "down-s")
	b.ReportMetric(cpT.Seconds(), "ref-cp-s")
	b.ReportMetric(upT.Seconds()/cpT.Seconds(), "up/cp")
	b.ReportMetric(downT.Seconds()/cpT.Seconds(), "down/cp")
	b.ReportMetric(float64(files)/upT.Seconds(), "up-files/s")
	b.ReportMetric(float64(files)/downT.Seconds(), "down-files/s")
	b.ReportMetric(mbps(bytesTotal, upT), "up-MB/s")
	b.ReportMetric(mbps(bytesTotal, downT), "down-MB/s")
	b.ReportMetric(float64(files)/cpT.Seconds(), "ref-cp-files/s")
	b.ReportMetric(mbps(bytesTotal, cpT), "ref-cp-MB/s")
	b.ReportMetric(upCores, "up-cores")
	b.ReportMetric(downCores, "down-cores")
	b.ReportMetric(downFsync.Seconds(), "down-fsync-s")
	b.ReportMetric(float64(upReq), "up-requests")
	b.ReportMetric(float64(upLimited), "up-429s")
	b.ReportMetric(float64(downReq), "down-requests")
	b.ReportMetric(float64(downLimited), "down-429s")
}

// BenchmarkSyncFirstSmallFiles: 10,000 files of 1–8 KiB of random bytes
// in 100 folders of 100, with the gateways' default per-user rate limit.
func BenchmarkSyncFirstSmallFiles(b *testing.B) {
	firstSync(b, testcluster.Start(b, 3), smallFiles, fillSmall(b))
}

// BenchmarkSyncFirstSmallFilesNoRateLimit: the same with the gateways'
// per-user rate limit off.
func BenchmarkSyncFirstSmallFilesNoRateLimit(b *testing.B) {
	firstSync(b, startUnlimited(b), smallFiles, fillSmall(b))
}

const smallFiles = 100 * 100

func fillSmall(b *testing.B) func(dir string) int64 {
	return func(dir string) int64 {
		r := rand.New(rand.NewPCG(7, 7))
		var total int64
		buf := make([]byte, 8<<10)
		for d := range 100 {
			sub := filepath.Join(dir, fmt.Sprintf("d%03d", d))
			if err := os.Mkdir(sub, 0o755); err != nil {
				b.Fatal(err)
			}
			for f := range smallFiles / 100 {
				n := 1<<10 + r.IntN(7<<10+1)
				for k := range n {
					buf[k] = byte(r.Uint32())
				}
				if err := os.WriteFile(filepath.Join(sub, fmt.Sprintf("f%03d.bin", f)), buf[:n], 0o644); err != nil {
					b.Fatal(err)
				}
				total += int64(n)
			}
		}
		return total
	}
}

// BenchmarkSyncFirstBigFile: one 1 GiB file of random bytes.
func BenchmarkSyncFirstBigFile(b *testing.B) {
	const size = 1 << 30
	firstSync(b, testcluster.Start(b, 3), 1, func(dir string) int64 {
		writeRandom(b, filepath.Join(dir, "big.bin"), size, 2)
		return size
	})
}

// BenchmarkSyncWatchLatency: two engines Watch two folders of one user;
// device A replaces a small file 50 times (write a temp file, rename it
// over, as editors save), each time waiting until device B's folder has
// the new content (polled every 5 ms). The reference is the p50 of 50
// Whoami round trips through the same client. a-p50 is the time from the
// edit until A's Watch reported the upload.
func BenchmarkSyncWatchLatency(b *testing.B) {
	cl := testcluster.Start(b, 3)
	const edits = 50
	var p50, p90, p99, aP50, ref float64
	for i := 0; b.Loop(); i++ {
		user := fmt.Sprintf("watch%d", i)
		cl.AddUser(b, user, benchPassword)
		ca, _ := login(b, cl, user)
		cb, _ := login(b, cl, user)
		dirA, dirB := b.TempDir(), b.TempDir()
		ea, eb := openEngine(b, dirA, ca, "pc-a", nil), openEngine(b, dirB, cb, "pc-b", nil)

		var mu sync.Mutex
		var lastUp time.Time // when A's Watch last reported an upload
		ctx, cancel := context.WithCancel(context.Background())
		var wg sync.WaitGroup
		errs := make(chan error, 2)
		wg.Add(2)
		go func() {
			defer wg.Done()
			errs <- ea.Watch(ctx, func(s syncer.Summary, err error) {
				if err == nil && s.Uploaded > 0 {
					mu.Lock()
					lastUp = time.Now()
					mu.Unlock()
				}
			})
		}()
		go func() { defer wg.Done(); errs <- eb.Watch(ctx, nil) }()
		var once sync.Once
		stop := func() {
			once.Do(func() {
				cancel()
				wg.Wait()
				close(errs)
				for err := range errs {
					if err != nil {
						b.Errorf("watch: %v", err)
					}
				}
			})
		}
		b.Cleanup(stop) // before the engines close

		target, tmp, seen := filepath.Join(dirA, "notes.txt"), filepath.Join(dirA, "notes.txt.tmp"), filepath.Join(dirB, "notes.txt")
		edit := func(k int) (total, aSide time.Duration) {
			want := fmt.Appendf(nil, "edit %d of round %d\n%s", k, i, bytes.Repeat([]byte("x"), 1000+k))
			start := time.Now()
			if err := os.WriteFile(tmp, want, 0o644); err != nil {
				b.Fatal(err)
			}
			if err := os.Rename(tmp, target); err != nil {
				b.Fatal(err)
			}
			deadline := start.Add(60 * time.Second)
			for {
				if got, err := os.ReadFile(seen); err == nil && bytes.Equal(got, want) {
					total = time.Since(start)
					break
				}
				if time.Now().After(deadline) {
					b.Fatalf("edit %d not on B after 60 s", k)
				}
				time.Sleep(5 * time.Millisecond) // the poll interval being measured
			}
			mu.Lock()
			if lastUp.After(start) {
				aSide = lastUp.Sub(start)
			}
			mu.Unlock()
			return total, aSide
		}
		edit(-1) // the first sync of both; not counted
		var lat, aLat []time.Duration
		for k := range edits {
			t, a := edit(k)
			lat = append(lat, t)
			if a > 0 {
				aLat = append(aLat, a)
			}
		}
		var who []time.Duration
		for range 50 {
			start := time.Now()
			if _, err := ca.Whoami(context.Background()); err != nil {
				b.Fatal(err)
			}
			who = append(who, time.Since(start))
		}
		stop()
		slices.Sort(lat)
		slices.Sort(aLat)
		slices.Sort(who)
		ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
		p50, p90, p99 = ms(lat[len(lat)/2]), ms(lat[len(lat)*90/100]), ms(lat[len(lat)*99/100])
		if len(aLat) > 0 {
			aP50 = ms(aLat[len(aLat)/2])
		}
		ref = ms(who[len(who)/2])
	}
	b.ReportMetric(p50, "p50-ms")
	b.ReportMetric(p90, "p90-ms")
	b.ReportMetric(p99, "p99-ms")
	b.ReportMetric(aP50, "a-side-p50-ms")
	b.ReportMetric(ref, "ref-whoami-p50-ms")
	b.ReportMetric(p50/ref, "p50/whoami")
}
