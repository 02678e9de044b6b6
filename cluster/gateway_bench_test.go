package cluster

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// The gateway benchmarks run a real 3-node cluster in this process (R=3,
// W=2 blocks, 3 voters per group, each node with its own data directory
// on the same disk) and drive it over HTTP on 127.0.0.1. Each reports its
// figures next to references measured in the same run: raw sequential
// disk write bandwidth (fdatasync every 64 MiB) divided by R, loopback TCP
// bandwidth, and fdatasync latency.
//
//	go test -run '^$' -bench 'Gateway' -benchtime 1x ./cluster

// benchAPI is a formed 3-node cluster with a logged-in user.
type benchAPI struct {
	nodes []*Node
	urls  []string
	token string
}

func startBenchAPI(b *testing.B) *benchAPI {
	b.Helper()
	ctx := context.Background()
	n1 := startTestNode(b, testNodeOpts{name: "n1", expect: 3, shards: 4})
	_, _, seed, _ := n1.Addrs()
	n2 := startTestNode(b, testNodeOpts{name: "n2", expect: 3, shards: 4, join: []string{seed}})
	n3 := startTestNode(b, testNodeOpts{name: "n3", expect: 3, shards: 4, join: []string{seed}})
	api := &benchAPI{nodes: []*Node{n1, n2, n3}}
	waitFor(b, 60*time.Second, "formed", func() error { _, err := formed(ctx, n1, []string{"n1", "n2", "n3"}); return err })
	for _, n := range api.nodes {
		waitFor(b, 30*time.Second, "ready", n.Ready)
		_, _, _, h := n.Addrs()
		api.urls = append(api.urls, "http://"+h)
	}
	var admin string
	waitFor(b, 30*time.Second, "admin login", func() (err error) {
		admin, err = benchLogin(api.urls[0], "admin", testAdminPassword)
		return err
	})
	body := `{"name":"bench","password":"bench-password"}`
	if code, out := benchDo("POST", api.urls[0]+"/v1/admin/users", admin, bytes.NewReader([]byte(body)), nil); code != 201 {
		b.Fatalf("create user: %d %s", code, out)
	}
	var err error
	if api.token, err = benchLogin(api.urls[0], "bench", "bench-password"); err != nil {
		b.Fatal(err)
	}
	return api
}

func benchLogin(url, name, password string) (string, error) {
	body, _ := json.Marshal(map[string]string{"name": name, "password": password})
	code, out := benchDo("POST", url+"/v1/login", "", bytes.NewReader(body), nil)
	if code != 200 {
		return "", fmt.Errorf("login: %d %s", code, out)
	}
	var r struct{ Token string }
	err := json.Unmarshal(out, &r)
	return r.Token, err
}

var benchClient = &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 128, DisableCompression: true}}

// benchDo sends a request and reads the answer (up to 1 MiB of it).
func benchDo(method, url, token string, body io.Reader, hdr map[string]string) (int, []byte) {
	req, err := http.NewRequest(method, url, body)
	if err != nil {
		return 0, []byte(err.Error())
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := benchClient.Do(req)
	if err != nil {
		return 0, []byte(err.Error())
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return resp.StatusCode, out
}

// randomStream is n reproducible pseudo-random bytes.
func randomStream(seed uint64, n int64) io.Reader {
	var s [32]byte
	s[0] = byte(seed)
	return io.LimitReader(rand.NewChaCha8(s), n)
}

// diskWriteMBps measures raw sequential write bandwidth in dir: 256 MiB in
// 1 MiB writes, fdatasync every 64 MiB and at the end.
func diskWriteMBps(b *testing.B, dir string) float64 {
	f, err := os.Create(filepath.Join(dir, "disk-ref"))
	if err != nil {
		b.Fatal(err)
	}
	defer os.Remove(f.Name())
	defer f.Close()
	buf := make([]byte, 1<<20)
	for i := range buf {
		buf[i] = byte(i * 7)
	}
	const total = 256
	start := time.Now()
	for i := range total {
		if _, err := f.Write(buf); err != nil {
			b.Fatal(err)
		}
		if i%64 == 63 {
			if err := unix.Fdatasync(int(f.Fd())); err != nil {
				b.Fatal(err)
			}
		}
	}
	return total / time.Since(start).Seconds() * (1 << 20) / 1e6
}

// fsyncLatency is the median latency of a 4 KiB write + fdatasync in dir.
func fsyncLatency(b *testing.B, dir string) time.Duration {
	f, err := os.Create(filepath.Join(dir, "fsync-ref"))
	if err != nil {
		b.Fatal(err)
	}
	defer os.Remove(f.Name())
	defer f.Close()
	buf := make([]byte, 4096)
	var lat []time.Duration
	for i := range 200 {
		start := time.Now()
		if _, err := f.WriteAt(buf, int64(i)*4096); err != nil {
			b.Fatal(err)
		}
		if err := unix.Fdatasync(int(f.Fd())); err != nil {
			b.Fatal(err)
		}
		lat = append(lat, time.Since(start))
	}
	slices.Sort(lat)
	return lat[len(lat)/2]
}

// loopbackMBps measures one TCP stream of 1 GiB over 127.0.0.1.
func loopbackMBps(b *testing.B) float64 {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	done := make(chan int64, 1)
	go func() {
		c, err := l.Accept()
		if err != nil {
			done <- -1
			return
		}
		n, _ := io.Copy(io.Discard, c)
		c.Close()
		done <- n
	}()
	c, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		b.Fatal(err)
	}
	const total = 1 << 30
	buf := make([]byte, 256<<10)
	start := time.Now()
	for sent := 0; sent < total; sent += len(buf) {
		if _, err := c.Write(buf); err != nil {
			b.Fatal(err)
		}
	}
	c.Close()
	if n := <-done; n != total {
		b.Fatalf("loopback received %d bytes", n)
	}
	return total / time.Since(start).Seconds() / 1e6
}

// BenchmarkGatewayTransfer uploads one 1 GiB file through a gateway and
// downloads it through another, each iteration measuring its references
// right before.
func BenchmarkGatewayTransfer(b *testing.B) {
	api := startBenchAPI(b)
	const size = 1 << 30
	var upRatio, downRatio, up, down, disk, loop float64
	for i := 0; b.Loop(); i++ {
		disk = diskWriteMBps(b, api.nodes[0].cfg.Dir)
		loop = loopbackMBps(b)

		want := sha256.New()
		path := fmt.Sprintf("/v1/files/big-%d.bin", i)
		start := time.Now()
		code, out := benchDo("PUT", api.urls[0]+path, api.token, io.TeeReader(randomStream(uint64(i), size), want), nil)
		upSecs := time.Since(start).Seconds()
		if code != 201 {
			b.Fatalf("PUT: %d %s", code, out)
		}
		start = time.Now()
		req, _ := http.NewRequest("GET", api.urls[1]+path, nil)
		req.Header.Set("Authorization", "Bearer "+api.token)
		resp, err := benchClient.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		got := sha256.New()
		n, err := io.Copy(got, resp.Body)
		resp.Body.Close()
		downSecs := time.Since(start).Seconds()
		if err != nil || n != size || !bytes.Equal(got.Sum(nil), want.Sum(nil)) {
			b.Fatalf("GET: %d bytes, %v, hash equal %v", n, err, bytes.Equal(got.Sum(nil), want.Sum(nil)))
		}
		up, down = size/upSecs/1e6, size/downSecs/1e6
		upRatio, downRatio = up/(disk/3), down/loop
	}
	b.ReportMetric(up, "upload-MB/s")
	b.ReportMetric(down, "download-MB/s")
	b.ReportMetric(disk, "ref-disk-write-MB/s")
	b.ReportMetric(loop, "ref-loopback-MB/s")
	b.ReportMetric(upRatio, "upload/(disk/R)")
	b.ReportMetric(downRatio, "download/loopback")
}

// BenchmarkGatewaySmallCommits: 64 clients each PUT small files (1 KiB,
// each a new path: one block, one commit) as fast as they can for a fixed
// count; it reports commits per second and the p50/p99 latency of a PUT,
// next to the median fdatasync latency of the same disk.
func BenchmarkGatewaySmallCommits(b *testing.B) {
	api := startBenchAPI(b)
	const clients, perClient = 64, 40
	var rate, p50, p99, fsync float64
	for i := 0; b.Loop(); i++ {
		fsync = float64(fsyncLatency(b, api.nodes[0].cfg.Dir).Microseconds()) / 1000
		var (
			mu   sync.Mutex
			lat  []time.Duration
			fail error
			wg   sync.WaitGroup
		)
		start := time.Now()
		for c := range clients {
			wg.Add(1)
			go func() {
				defer wg.Done()
				body := make([]byte, 1024)
				for k := range perClient {
					body[0], body[1], body[2] = byte(c), byte(k), byte(i)
					url := fmt.Sprintf("%s/v1/files/small/%d-%d-%d", api.urls[(c+k)%3], i, c, k)
					t0 := time.Now()
					code, out := benchDo("PUT", url, api.token, bytes.NewReader(body), nil)
					d := time.Since(t0)
					mu.Lock()
					if code != 201 && fail == nil {
						fail = fmt.Errorf("PUT %s: %d %s", url, code, out)
					}
					lat = append(lat, d)
					mu.Unlock()
				}
			}()
		}
		wg.Wait()
		if fail != nil {
			b.Fatal(fail)
		}
		secs := time.Since(start).Seconds()
		slices.Sort(lat)
		rate = float64(len(lat)) / secs
		p50 = float64(lat[len(lat)/2].Microseconds()) / 1000
		p99 = float64(lat[len(lat)*99/100].Microseconds()) / 1000
	}
	b.ReportMetric(rate, "commits/s")
	b.ReportMetric(p50, "p50-ms")
	b.ReportMetric(p99, "p99-ms")
	b.ReportMetric(fsync, "ref-fsync-ms")
	b.ReportMetric(p50/fsync, "p50/fsync")
}

// BenchmarkGatewayLongPollWake measures how soon a change-feed long-poll
// through one node answers after a commit through another node is
// acknowledged (the goal is 100 ms), over 50 commits per iteration; the
// reference is the median fdatasync latency of the same disk.
func BenchmarkGatewayLongPollWake(b *testing.B) {
	api := startBenchAPI(b)
	const rounds = 50
	var p50, p99, fsync float64
	for i := 0; b.Loop(); i++ {
		fsync = float64(fsyncLatency(b, api.nodes[0].cfg.Dir).Microseconds()) / 1000
		var cursor struct {
			Cursor uint64 `json:"cursor"`
		}
		code, out := benchDo("GET", api.urls[1]+"/v1/whoami", api.token, nil, nil)
		if code != 200 || json.Unmarshal(out, &cursor) != nil {
			b.Fatalf("whoami: %d %s", code, out)
		}
		var lat []time.Duration
		for k := range rounds {
			type answer struct {
				at   time.Time
				code int
				body []byte
			}
			got := make(chan answer, 1)
			go func() {
				code, out := benchDo("GET", fmt.Sprintf("%s/v1/changes?cursor=%d&wait=30s", api.urls[1], cursor.Cursor), api.token, nil, nil)
				got <- answer{time.Now(), code, out}
			}()
			// Let the poll reach the shard and wait there: a commit that
			// lands before it arrives is answered at once, which would
			// flatter the figure.
			time.Sleep(20 * time.Millisecond) // benchmark pacing, not a correctness wait
			code, out := benchDo("PUT", fmt.Sprintf("%s/v1/files/wake/%d-%d", api.urls[0], i, k), api.token, bytes.NewReader([]byte("x")), nil)
			acked := time.Now()
			if code != 201 {
				b.Fatalf("PUT: %d %s", code, out)
			}
			a := <-got
			var page struct {
				Records []json.RawMessage `json:"records"`
				Cursor  uint64            `json:"cursor"`
			}
			if a.code != 200 || json.Unmarshal(a.body, &page) != nil || len(page.Records) == 0 {
				b.Fatalf("poll: %d %s", a.code, a.body)
			}
			cursor.Cursor = page.Cursor
			lat = append(lat, max(0, a.at.Sub(acked)))
		}
		slices.Sort(lat)
		p50 = float64(lat[len(lat)/2].Microseconds()) / 1000
		p99 = float64(lat[len(lat)*99/100].Microseconds()) / 1000
	}
	b.ReportMetric(p50, "wake-p50-ms")
	b.ReportMetric(p99, "wake-p99-ms")
	b.ReportMetric(fsync, "ref-fsync-ms")
}
