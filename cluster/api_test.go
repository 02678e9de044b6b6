package cluster

// End-to-end tests of the gateway's HTTP API against in-process 3-node
// clusters, over plain net/http: round trips of every size class, a cut-off
// upload, concurrent commits, a shard leader crash under a stream of
// uploads, the change feed's long-poll and history, restore and isolation.

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptrace"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coffer-dev/coffer/raftmeta"
)

// apiShards is the shard count of the API test clusters: few groups form
// fast, and 3 groups over 3 nodes give every node one leadership.
const apiShards = 2

// apiCluster is a formed 3-node in-process cluster and an HTTP client.
type apiCluster struct {
	nodes []*Node
	hc    *http.Client
}

// startAPICluster starts three nodes and waits until every group has three
// voters and the leaders are spread (one per node), so the tests do not
// race the placement controller's leadership moves.
func startAPICluster(t *testing.T) *apiCluster {
	t.Helper()
	ctx := context.Background()
	n1 := startTestNode(t, testNodeOpts{name: "n1", expect: 3, shards: apiShards})
	_, _, seed, _ := n1.Addrs()
	n2 := startTestNode(t, testNodeOpts{name: "n2", expect: 3, shards: apiShards, join: []string{seed}})
	n3 := startTestNode(t, testNodeOpts{name: "n3", expect: 3, shards: apiShards, join: []string{seed}})
	waitFor(t, 90*time.Second, "three nodes form the cluster, leaders spread", func() error {
		st, err := formed(ctx, n1, []string{"n1", "n2", "n3"})
		if err != nil {
			return err
		}
		if l := leadersPerNode(st); len(l) != 3 || spread(l) > 1 {
			return fmt.Errorf("leaders per node %v", l)
		}
		return nil
	})
	c := &apiCluster{nodes: []*Node{n1, n2, n3}}
	for _, n := range c.nodes {
		waitFor(t, 30*time.Second, n.Name()+" ready", n.Ready)
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	c.hc = &http.Client{Transport: tr}
	t.Cleanup(tr.CloseIdleConnections)
	return c
}

// addr is node i's HTTP address.
func (c *apiCluster) addr(i int) string {
	_, _, _, h := c.nodes[i].Addrs()
	return h
}

// fileResult is the answer to a file PUT, a delete or a restore, as the
// API documents it (decoded here as a client would, into its own type).
type fileResult struct {
	Path string `json:"path"`
	ID   uint64 `json:"id"`
	Rev  uint64 `json:"rev"`
	Size int64  `json:"size"`
	Hash string `json:"hash"`
	Seq  uint64 `json:"seq"`
}

// apiError is the API's error shape (the fields these tests read).
type apiError struct {
	Code       string `json:"code"`
	Message    string `json:"message"`
	CurrentRev uint64 `json:"current_rev"`
}

// apiResp is one answer, its body read in full.
type apiResp struct {
	status int
	header http.Header
	body   []byte
}

func (r *apiResp) String() string {
	b := r.body
	if len(b) > 300 {
		b = b[:300]
	}
	return fmt.Sprintf("HTTP %d %s", r.status, bytes.TrimSpace(b))
}

// detail decodes the error shape.
func (r *apiResp) detail() apiError {
	var d apiError
	_ = json.Unmarshal(r.body, &d)
	return d
}

// decode decodes a JSON answer with the wanted status.
func (r *apiResp) decode(t testing.TB, want int, v any) {
	t.Helper()
	if r.status != want {
		t.Fatalf("want HTTP %d, got %s", want, r)
	}
	if err := json.Unmarshal(r.body, v); err != nil {
		t.Fatalf("decode %s: %v", r, err)
	}
}

// send makes one request to node i. body (with its Content-Length size)
// may be nil.
func (c *apiCluster) send(ctx context.Context, i int, method, path, token string, body io.Reader, size int64, hdr http.Header) (*apiResp, error) {
	if body == nil {
		body, size = http.NoBody, 0
	}
	req, err := http.NewRequestWithContext(ctx, method, "http://"+c.addr(i)+path, body)
	if err != nil {
		return nil, err
	}
	req.ContentLength = size
	for k, v := range hdr {
		req.Header[k] = v
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	return &apiResp{status: resp.StatusCode, header: resp.Header, body: b}, nil
}

// retryable reports whether an answer asks to be retried: the cluster is
// busy or between leaders, or the outcome is unknown (safe to retry with
// the same Idempotency-Key).
func retryable(status int) bool {
	return status == http.StatusServiceUnavailable || status == http.StatusTooManyRequests
}

// callE sends a request with a replayable body to node i, retrying 503,
// 429 and network errors for up to 30 s. A mutating request without an
// Idempotency-Key gets one, the same on every attempt, so a retry after an
// unknown outcome is applied at most once.
func (c *apiCluster) callE(ctx context.Context, i int, method, path, token string, body []byte, hdr http.Header) (*apiResp, error) {
	hdr = hdr.Clone()
	if hdr == nil {
		hdr = http.Header{}
	}
	if method != "GET" && method != "HEAD" && hdr.Get("Idempotency-Key") == "" {
		hdr.Set("Idempotency-Key", fmt.Sprintf("t%016x", rand.Uint64()))
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		actx, cancel := context.WithTimeout(ctx, 30*time.Second)
		r, err := c.send(actx, i, method, path, token, bytes.NewReader(body), int64(len(body)), hdr)
		cancel()
		if err == nil && !retryable(r.status) {
			return r, nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			if err != nil {
				return nil, fmt.Errorf("%s %s: %w", method, path, err)
			}
			return r, nil
		}
		time.Sleep(100 * time.Millisecond) // back off before the retry
	}
}

// call is callE that fails the test on a network error or a 503 or 429
// that lasts.
func (c *apiCluster) call(t testing.TB, i int, method, path, token string, body []byte, hdr http.Header) *apiResp {
	t.Helper()
	r, err := c.callE(context.Background(), i, method, path, token, body, hdr)
	if err != nil {
		t.Fatal(err)
	}
	if retryable(r.status) {
		t.Fatalf("%s %s through n%d: still %s after 30 s of retries", method, path, i+1, r)
	}
	return r
}

// login logs name in through node i and returns the session token.
func (c *apiCluster) login(t testing.TB, i int, name, password string) string {
	t.Helper()
	body, _ := json.Marshal(map[string]string{"name": name, "password": password})
	var out struct{ Token string }
	c.call(t, i, "POST", "/v1/login", "", body, nil).decode(t, http.StatusOK, &out)
	if out.Token == "" {
		t.Fatalf("login %s: no token", name)
	}
	return out.Token
}

// newUser creates a user with the admin's token and logs it in through
// node i.
func (c *apiCluster) newUser(t testing.TB, i int, admin, name string) string {
	t.Helper()
	password := "pw of " + name
	body, _ := json.Marshal(map[string]string{"name": name, "password": password})
	var u struct {
		Name      string
		Namespace uint64
	}
	c.call(t, i, "POST", "/v1/admin/users", admin, body, nil).decode(t, http.StatusCreated, &u)
	if u.Name != name || u.Namespace == 0 {
		t.Fatalf("created user %+v", u)
	}
	return c.login(t, i, name, password)
}

// userToken starts with the admin's login and creates one user.
func (c *apiCluster) userToken(t testing.TB, name string) string {
	t.Helper()
	admin := c.login(t, 0, "admin", testAdminPassword)
	return c.newUser(t, 1, admin, name)
}

// put PUTs data at path through node i and wants want (200 or 201).
func (c *apiCluster) put(t testing.TB, i int, token, path string, data []byte, hdr http.Header, want int) fileResult {
	t.Helper()
	var res fileResult
	c.call(t, i, "PUT", "/v1/files"+path, token, data, hdr).decode(t, want, &res)
	return res
}

// history answers a file's revisions through node i, newest first.
func (c *apiCluster) history(t testing.TB, i int, token, target string) []raftmeta.Revision {
	t.Helper()
	var out struct{ Revisions []raftmeta.Revision }
	c.call(t, i, "GET", "/v1/history"+target, token, nil, nil).decode(t, http.StatusOK, &out)
	return out.Revisions
}

// changes answers the change feed after cursor through node i (wait:
// the ?wait= value, "" for none).
func (c *apiCluster) changes(t testing.TB, i int, token string, cursor uint64, wait string) raftmeta.ChangesPage {
	t.Helper()
	q := "/v1/changes?cursor=" + strconv.FormatUint(cursor, 10)
	if wait != "" {
		q += "&wait=" + wait
	}
	var p raftmeta.ChangesPage
	c.call(t, i, "GET", q, token, nil, nil).decode(t, http.StatusOK, &p)
	return p
}

// randBytes returns n bytes of a seeded ChaCha8 stream.
func randBytes(seed uint64, n int) []byte {
	b := make([]byte, n)
	chacha(seed).Read(b)
	return b
}

func chacha(seed uint64) *rand.ChaCha8 {
	var s [32]byte
	copy(s[:], strconv.FormatUint(seed, 16))
	return rand.NewChaCha8(s)
}

func hexSum(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// putStream PUTs size bytes of the ChaCha8 stream of seed at path through
// node i, never holding the body: the stream is made afresh for each
// attempt (503s are retried with the same Idempotency-Key). It returns the
// answer and the stream's SHA-256.
func (c *apiCluster) putStream(t testing.TB, i int, token, path string, seed uint64, size int64) (fileResult, string) {
	t.Helper()
	hdr := http.Header{"Idempotency-Key": {"stream-" + path}}
	deadline := time.Now().Add(5 * time.Minute)
	for {
		h := sha256.New()
		body := io.TeeReader(io.LimitReader(chacha(seed), size), h)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		r, err := c.send(ctx, i, "PUT", "/v1/files"+path, token, body, size, hdr)
		cancel()
		if (err != nil || retryable(r.status)) && time.Now().Before(deadline) {
			// A 503 (block nodes briefly unavailable under load) may also
			// reach the client as a broken pipe while it still sends.
			what := fmt.Sprint(err)
			if err == nil {
				what = r.String()
			}
			t.Logf("PUT %s: %s; retrying", path, what)
			time.Sleep(time.Second) // the answer's Retry-After
			continue
		}
		if err != nil {
			t.Fatalf("PUT %s: %v", path, err)
		}
		var res fileResult
		r.decode(t, http.StatusCreated, &res)
		return res, hex.EncodeToString(h.Sum(nil))
	}
}

// getStream GETs path through node i into a SHA-256, never holding the
// body, and returns the answer's status and headers, the byte count and
// the hash.
func (c *apiCluster) getStream(t testing.TB, i int, token, path string) (*apiResp, int64, string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Minute)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		req, _ := http.NewRequestWithContext(ctx, "GET", "http://"+c.addr(i)+"/v1/files"+path, nil)
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := c.hc.Do(req)
		if err != nil {
			cancel()
			t.Fatalf("GET %s: %v", path, err)
		}
		h := sha256.New()
		n, err := io.Copy(h, resp.Body)
		resp.Body.Close()
		cancel()
		r := &apiResp{status: resp.StatusCode, header: resp.Header}
		if retryable(r.status) && time.Now().Before(deadline) {
			t.Logf("GET %s: HTTP %d; retrying", path, r.status)
			time.Sleep(time.Second) // the answer's Retry-After
			continue
		}
		if err != nil {
			t.Fatalf("GET %s: %s after %d bytes: %v", path, r, n, err)
		}
		return r, n, hex.EncodeToString(h.Sum(nil))
	}
}

// Files of each size class go up through one node and come back
// byte-equal through another: the gateways are stateless.
func TestAPIRoundTrips(t *testing.T) {
	c := startAPICluster(t)
	tok := c.userToken(t, "alice")
	for i, tc := range []struct {
		name string
		size int64
	}{
		{"empty", 0},
		{"one byte", 1},
		{"4 MiB", 4 << 20}, // exactly one largest block
		{"300 MiB", 300 << 20},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := fmt.Sprintf("/round/%d.bin", tc.size)
			putNode, getNode := i%3, (i+1)%3
			if tc.size <= 4<<20 {
				data := randBytes(uint64(i), int(tc.size))
				res := c.put(t, putNode, tok, path, data, nil, http.StatusCreated)
				if res.Rev != 1 || res.Size != tc.size || res.Hash != hexSum(data) {
					t.Fatalf("put answered %+v; want rev 1, %d bytes, hash %s", res, tc.size, hexSum(data))
				}
				g := c.call(t, getNode, "GET", "/v1/files"+path, tok, nil, nil)
				if g.status != http.StatusOK || !bytes.Equal(g.body, data) {
					t.Fatalf("get through n%d: %s, %d bytes; want %d bytes", getNode+1, g, len(g.body), len(data))
				}
				if g.header.Get("X-Coffer-Sha256") != hexSum(data) || g.header.Get("ETag") != `"1"` {
					t.Fatalf("get headers %v", g.header)
				}
				return
			}
			if testing.Short() {
				t.Skip("300 MiB upload")
			}
			start := time.Now()
			res, sum := c.putStream(t, putNode, tok, path, uint64(i), tc.size)
			up := time.Since(start)
			if res.Rev != 1 || res.Size != tc.size || res.Hash != sum {
				t.Fatalf("put answered %+v; want rev 1, %d bytes, hash %s", res, tc.size, sum)
			}
			start = time.Now()
			g, n, got := c.getStream(t, getNode, tok, path)
			if g.status != http.StatusOK || n != tc.size || got != sum {
				t.Fatalf("get through n%d: HTTP %d, %d bytes, sha256 %s; want %d bytes, %s", getNode+1, g.status, n, got, tc.size, sum)
			}
			if g.header.Get("X-Coffer-Sha256") != sum {
				t.Fatalf("get header sha256 %q, want %s", g.header.Get("X-Coffer-Sha256"), sum)
			}
			t.Logf("%d MiB: PUT through n%d %v, GET through n%d %v", tc.size>>20, putNode+1, up.Round(time.Millisecond), getNode+1, time.Since(start).Round(time.Millisecond))
		})
	}
}

// blockPuts sums the local block stores' puts over the live nodes, as
// their /metrics report them.
func (c *apiCluster) blockPuts(t testing.TB) int64 {
	t.Helper()
	const series = `coffer_block_op_seconds_count{op="put"} `
	var sum int64
	for i, n := range c.nodes {
		if n.closing.Load() {
			continue
		}
		r := c.call(t, i, "GET", "/metrics", "", nil, nil)
		if r.status != http.StatusOK {
			t.Fatalf("n%d /metrics: %s", i+1, r)
		}
		sc := bufio.NewScanner(bytes.NewReader(r.body))
		for sc.Scan() {
			if v, ok := strings.CutPrefix(sc.Text(), series); ok {
				f, err := strconv.ParseFloat(v, 64)
				if err != nil {
					t.Fatalf("n%d: %q: %v", i+1, sc.Text(), err)
				}
				sum += int64(f)
			}
		}
	}
	return sum
}

// cutUpload PUTs path over a raw connection to addr, declaring total
// bytes, and closes the connection after cut of them. If the body cannot
// be written that far, it returns the error and what the server answered.
func cutUpload(addr, path, token string, total, cut int64) (string, error) {
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		return "", err
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(3 * time.Minute))
	fmt.Fprintf(conn, "PUT /v1/files%s HTTP/1.1\r\nHost: %s\r\nAuthorization: Bearer %s\r\nContent-Type: application/octet-stream\r\nContent-Length: %d\r\n\r\n",
		path, addr, token, total)
	if _, err := io.Copy(conn, io.LimitReader(chacha(2), cut)); err != nil {
		// The server stopped reading: show why.
		b, _ := io.ReadAll(io.LimitReader(conn, 1000))
		return string(b), err
	}
	return "", nil
}

// An upload whose connection is cut midway leaves nothing visible: the
// file keeps its old revision and bytes, its history one revision, the
// change feed no record.
func TestAPICutOffUpload(t *testing.T) {
	c := startAPICluster(t)
	tok := c.userToken(t, "alice")
	const path = "/docs/big.bin"
	old := randBytes(1, 64<<10)
	first := c.put(t, 0, tok, path, old, nil, http.StatusCreated)
	total, cutAt := int64(300<<20), int64(100<<20)
	if testing.Short() {
		total, cutAt = 30<<20, 10<<20
	}
	before := c.blockPuts(t)

	// The new body goes out over a raw connection with its full
	// Content-Length; the connection is closed a third of the way in. A
	// server that gives up on the body first (a 503 while block nodes are
	// briefly unavailable under load) is tried again: that attempt, too,
	// must leave nothing behind.
	for attempt := 1; ; attempt++ {
		start := time.Now()
		answer, err := cutUpload(c.addr(1), path, tok, total, cutAt)
		if err == nil {
			t.Logf("cut the connection after %d of %d MiB (%v)", cutAt>>20, total>>20, time.Since(start).Round(time.Millisecond))
			break
		}
		if !strings.HasPrefix(answer, "HTTP/1.1 503 ") || attempt == 5 {
			t.Fatalf("attempt %d: writing the body: %v; the server said %q", attempt, err, answer)
		}
		t.Logf("attempt %d: the server gave up on the body first: %q", attempt, answer)
		time.Sleep(time.Second) // the answer's Retry-After
	}

	// Wait until the gateway has stopped storing the cut body's blocks
	// (no block store put for a second), so what follows sees the end
	// state.
	last, since := int64(-1), time.Now()
	waitFor(t, 60*time.Second, "block writes settle after the cut", func() error {
		cur := c.blockPuts(t)
		if cur != last {
			last, since = cur, time.Now()
		}
		if d := time.Since(since); d < time.Second {
			return fmt.Errorf("%d block puts, the last change %v ago", cur, d.Round(time.Millisecond))
		}
		return nil
	})
	// The gateway did stream the body: it stored blocks before the cut.
	if last <= before {
		t.Fatalf("block puts went from %d to %d: the cut body never reached the block stores", before, last)
	}
	t.Logf("the cut upload stored %d block replicas, all garbage now", last-before)

	// Nothing of the cut upload is visible, through every node.
	for round := range 3 {
		for i := range c.nodes {
			g := c.call(t, i, "GET", "/v1/files"+path, tok, nil, nil)
			if g.status != http.StatusOK || g.header.Get("X-Coffer-Rev") != "1" || !bytes.Equal(g.body, old) {
				t.Fatalf("round %d, GET through n%d: %s rev %q, %d bytes; want rev 1 with the old %d bytes",
					round, i+1, g, g.header.Get("X-Coffer-Rev"), len(g.body), len(old))
			}
			if revs := c.history(t, i, tok, path); len(revs) != 1 || revs[0].Rev != 1 {
				t.Fatalf("round %d, history through n%d: %+v; want revision 1 only", round, i+1, revs)
			}
			if p := c.changes(t, i, tok, first.Seq, ""); len(p.Records) != 0 || p.Head != first.Seq {
				t.Fatalf("round %d, change feed through n%d after seq %d: %+v; want nothing", round, i+1, first.Seq, p)
			}
		}
	}
	// The old revision was the current one all along.
	if res := c.put(t, 2, tok, path, []byte("next"), http.Header{"If-Match": {"1"}}, http.StatusOK); res.Rev != 2 {
		t.Fatalf("put If-Match 1 after the cut: %+v", res)
	}
}

// Eight writers PUT the same file with If-Match 1 at once, through all
// three nodes: exactly one wins, the others get a conflict naming
// revision 2.
func TestAPIConcurrentCommits(t *testing.T) {
	c := startAPICluster(t)
	tok := c.userToken(t, "alice")
	const path = "/shared/doc.txt"
	c.put(t, 0, tok, path, []byte("rev 1"), nil, http.StatusCreated)

	const writers = 8
	bodies := make([][]byte, writers)
	resps := make([]*apiResp, writers)
	errs := make([]error, writers)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for w := range writers {
		bodies[w] = append([]byte(fmt.Sprintf("writer %d\n", w)), randBytes(uint64(100+w), 200<<10)...)
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			resps[w], errs[w] = c.callE(context.Background(), w%3, "PUT", "/v1/files"+path, tok, bodies[w], http.Header{"If-Match": {"1"}})
		}()
	}
	close(start)
	wg.Wait()
	winner := -1
	for w, r := range resps {
		if errs[w] != nil {
			t.Fatalf("writer %d: %v", w, errs[w])
		}
		switch r.status {
		case http.StatusOK:
			if winner >= 0 {
				t.Fatalf("writers %d and %d both won", winner, w)
			}
			winner = w
			var res fileResult
			r.decode(t, http.StatusOK, &res)
			if res.Rev != 2 {
				t.Fatalf("winner %d: %+v, want rev 2", w, res)
			}
		case http.StatusConflict:
			if d := r.detail(); d.Code != "conflict" || d.CurrentRev != 2 {
				t.Fatalf("writer %d: %s; want code conflict with current_rev 2", w, r)
			}
		default:
			t.Fatalf("writer %d: %s; want 200 or 409", w, r)
		}
	}
	if winner < 0 {
		t.Fatal("no writer won")
	}
	for i := range c.nodes {
		g := c.call(t, i, "GET", "/v1/files"+path, tok, nil, nil)
		if g.status != http.StatusOK || g.header.Get("X-Coffer-Rev") != "2" || !bytes.Equal(g.body, bodies[winner]) {
			t.Fatalf("GET through n%d: %s rev %q; want rev 2 with writer %d's bytes", i+1, g, g.header.Get("X-Coffer-Rev"), winner)
		}
	}
	if revs := c.history(t, 0, tok, path); len(revs) != 2 {
		t.Fatalf("history: %d revisions, want 2", len(revs))
	}
}

// failoverAck is one acknowledged upload of the failover stream.
type failoverAck struct {
	path, key  string
	data       []byte
	afterCrash bool // the upload was first tried after the crash
}

// Two writers stream small uploads, each with its own Idempotency-Key,
// retried with the same key on 503s and network errors, over the live
// nodes in turn; the leader of the user's shard crashes midway. Every
// acknowledged upload is there afterwards with its exact bytes, and the
// stream went on after the crash.
func TestAPIFailover(t *testing.T) {
	if testing.Short() {
		t.Skip("crashes a shard leader under a stream of uploads")
	}
	c := startAPICluster(t)
	const user = "carol"
	tok := c.userToken(t, user)
	shard, err := raftmeta.ShardOf(user, apiShards)
	if err != nil {
		t.Fatal(err)
	}

	const (
		writers   = 2
		perWriter = 100
		size      = 64 << 10
	)
	var (
		dead     [3]atomic.Bool
		crashed  atomic.Bool
		mu       sync.Mutex
		acks     []failoverAck
		failures []string
		retries  atomic.Int64
		wg       sync.WaitGroup
	)
	ackCount := func() int {
		mu.Lock()
		defer mu.Unlock()
		return len(acks)
	}
	upload := func(w, i int) {
		path := fmt.Sprintf("/stream/w%d/f%03d.bin", w, i)
		data := randBytes(uint64(1000*w+i), size)
		afterCrash := crashed.Load()
		key := fmt.Sprintf("failover-%d-%d", w, i)
		hdr := http.Header{"Idempotency-Key": {key}}
		deadline := time.Now().Add(60 * time.Second)
		for attempt := 0; ; attempt++ {
			node := (w + i + attempt) % 3
			for dead[node].Load() {
				node = (node + 1) % 3
			}
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			r, err := c.send(ctx, node, "PUT", "/v1/files"+path, tok, bytes.NewReader(data), size, hdr)
			cancel()
			switch {
			case err == nil && (r.status == http.StatusOK || r.status == http.StatusCreated):
				mu.Lock()
				acks = append(acks, failoverAck{path: path, key: key, data: data, afterCrash: afterCrash})
				mu.Unlock()
				return
			case err == nil && !retryable(r.status):
				mu.Lock()
				failures = append(failures, fmt.Sprintf("%s through n%d: %s", path, node+1, r))
				mu.Unlock()
				return
			case time.Now().After(deadline):
				what := fmt.Sprint(err)
				if err == nil {
					what = r.String()
				}
				mu.Lock()
				failures = append(failures, fmt.Sprintf("%s: still failing after %d attempts: %s", path, attempt+1, what))
				mu.Unlock()
				return
			}
			retries.Add(1)
			time.Sleep(100 * time.Millisecond) // back off before the retry
		}
	}
	start := time.Now()
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range perWriter {
				upload(w, i)
			}
		}()
	}

	// Once the stream flows, crash the leader of the user's shard.
	waitFor(t, 120*time.Second, "40 uploads acknowledged", func() error {
		if n := ackCount(); n < 40 {
			return fmt.Errorf("%d acknowledged", n)
		}
		return nil
	})
	var victim int
	waitFor(t, 30*time.Second, "the shard leader is known", func() error {
		st, err := c.nodes[0].Status(context.Background())
		if err != nil {
			return err
		}
		for _, g := range st.Groups {
			if g.ID != shard {
				continue
			}
			for i, n := range c.nodes {
				if n.Name() == g.Leader {
					victim = i
					return nil
				}
			}
			return fmt.Errorf("shard %d leader %q", shard, g.Leader)
		}
		return fmt.Errorf("no shard %d in the status", shard)
	})
	ackedBefore := ackCount()
	dead[victim].Store(true)
	crashed.Store(true)
	crashedAt := time.Now()
	c.nodes[victim].crash()
	t.Logf("crashed n%d, leader of shard %d, after %d acknowledged uploads (%v into the stream)",
		victim+1, shard, ackedBefore, crashedAt.Sub(start).Round(time.Millisecond))
	wg.Wait()
	t.Logf("stream done in %v: %d acknowledged, %d retried attempts, %d failed", time.Since(start).Round(time.Millisecond), len(acks), retries.Load(), len(failures))
	for _, f := range failures {
		t.Errorf("upload failed: %s", f)
	}

	// The stream went on through the failover.
	after := 0
	for _, a := range acks {
		if a.afterCrash {
			after++
		}
	}
	if after == 0 {
		t.Fatalf("no upload begun after the crash was acknowledged")
	}
	// Every acknowledged upload is there, byte for byte.
	for k, a := range acks {
		i := k % 3
		if i == victim {
			i = (i + 1) % 3
		}
		g := c.call(t, i, "GET", "/v1/files"+a.path, tok, nil, nil)
		if g.status != http.StatusOK || !bytes.Equal(g.body, a.data) {
			t.Fatalf("acknowledged %s through n%d: %s, %d bytes; want its %d bytes", a.path, i+1, g, len(g.body), len(a.data))
		}
		// Retries with the same key applied once: one revision.
		if rev := g.header.Get("X-Coffer-Rev"); rev != "1" {
			t.Fatalf("acknowledged %s is at revision %s, want 1", a.path, rev)
		}
	}
	// A replay of an acknowledged upload with its key, through another
	// node, answers as the first attempt did and changes nothing.
	a := acks[0]
	replay := c.put(t, (victim+1)%3, tok, a.path, a.data, http.Header{"Idempotency-Key": {a.key}}, http.StatusCreated)
	if replay.Rev != 1 {
		t.Fatalf("replay of %s answered %+v, want rev 1", a.path, replay)
	}
	if revs := c.history(t, (victim+2)%3, tok, a.path); len(revs) != 1 {
		t.Fatalf("after the replay %s has %d revisions, want 1", a.path, len(revs))
	}
	// The shard has a new leader.
	st, err := c.nodes[(victim+1)%3].Status(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, g := range st.Groups {
		if g.ID == shard && (g.Leader == "" || g.Leader == c.nodes[victim].Name()) {
			t.Fatalf("shard %d leader after the crash: %q", shard, g.Leader)
		}
	}
	t.Logf("%d acknowledged uploads (%d begun after the crash) all read back", len(acks), after)
}

// A long-poll of the change feed waiting on one node wakes with the
// record of a commit made through another.
func TestAPILongPollWake(t *testing.T) {
	c := startAPICluster(t)
	tok := c.userToken(t, "alice")
	c.put(t, 0, tok, "/before.txt", []byte("before"), nil, http.StatusCreated)
	head := c.changes(t, 0, tok, 0, "100ms").Head
	if head == 0 {
		t.Fatal("the feed's head is 0 after a commit")
	}

	type polled struct {
		r   *apiResp
		err error
		at  time.Time
	}
	done := make(chan polled, 1)
	wrote := make(chan struct{})
	var wroteOnce sync.Once
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	go func() {
		tctx := httptrace.WithClientTrace(ctx, &httptrace.ClientTrace{
			WroteRequest: func(httptrace.WroteRequestInfo) { wroteOnce.Do(func() { close(wrote) }) },
		})
		r, err := c.send(tctx, 0, "GET", fmt.Sprintf("/v1/changes?cursor=%d&wait=30s", head), tok, nil, 0, nil)
		done <- polled{r, err, time.Now()}
	}()
	select {
	case <-wrote:
	case p := <-done:
		t.Fatalf("the long-poll ended before it was sent: %v %v", p.r, p.err)
	}
	// Sent and not answered: with nothing after the cursor it must wait.
	select {
	case p := <-done:
		t.Fatalf("the long-poll answered before any commit: %v %v", p.r, p.err)
	case <-time.After(500 * time.Millisecond): // give the request time to reach the shard
	}

	res := c.put(t, 2, tok, "/wake.txt", []byte("wake up"), nil, http.StatusCreated)
	putAt := time.Now()
	var p polled
	select {
	case p = <-done:
	case <-time.After(45 * time.Second):
		t.Fatal("the long-poll did not answer within 45 s")
	}
	if p.err != nil {
		t.Fatal(p.err)
	}
	var page raftmeta.ChangesPage
	p.r.decode(t, http.StatusOK, &page)
	if len(page.Records) == 0 {
		t.Fatalf("the long-poll answered with no records: %s", p.r)
	}
	rec := page.Records[0]
	if rec.Seq != res.Seq || rec.Seq != head+1 || len(rec.Changes) != 1 || rec.Changes[0].Path != "/wake.txt" || page.Cursor != res.Seq {
		t.Fatalf("the long-poll answered %+v; want the record of seq %d for /wake.txt", page, res.Seq)
	}
	wake := p.at.Sub(putAt)
	// Negative: the poll's answer came in before the PUT's.
	t.Logf("wake latency from the PUT's answer to the poll's: %v", wake.Round(time.Microsecond))
	if wake > 5*time.Second {
		t.Fatalf("the long-poll answered %v after the commit: it did not wake on the commit", wake)
	}
}

// History and restore of a deleted file across nodes; another user sees
// nothing of it, by path or by ID.
func TestAPIHistoryRestoreIsolation(t *testing.T) {
	c := startAPICluster(t)
	admin := c.login(t, 0, "admin", testAdminPassword)
	alice := c.newUser(t, 0, admin, "alice")
	// bob shares alice's shard, where node IDs are unique: an ID of
	// alice's can only be hers.
	aliceShard, _ := raftmeta.ShardOf("alice", apiShards)
	bobName := ""
	for k := 0; bobName == ""; k++ {
		name := "bob" + strconv.Itoa(k)
		if s, _ := raftmeta.ShardOf(name, apiShards); s == aliceShard {
			bobName = name
		}
	}
	bob := c.newUser(t, 1, admin, bobName)

	const path = "/docs/plan.txt"
	v1, v2 := []byte("plan, first draft"), []byte("plan, second draft")
	r1 := c.put(t, 0, alice, path, v1, nil, http.StatusCreated)
	r2 := c.put(t, 1, alice, path, v2, http.Header{"If-Match": {"1"}}, http.StatusOK)
	var del fileResult
	c.call(t, 2, "DELETE", "/v1/files"+path, alice, nil, http.Header{"If-Match": {"2"}}).decode(t, http.StatusOK, &del)
	if r1.Rev != 1 || r2.Rev != 2 || del.Rev != 3 || r1.ID != del.ID {
		t.Fatalf("revisions %+v, %+v, %+v", r1, r2, del)
	}
	if g := c.call(t, 0, "GET", "/v1/files"+path, alice, nil, nil); g.status != http.StatusNotFound {
		t.Fatalf("GET of the deleted file: %s", g)
	}
	revs := c.history(t, 1, alice, path)
	if len(revs) != 3 || revs[0].Rev != 3 || !revs[0].Deleted || revs[1].Hash.String() != hexSum(v2) || revs[2].Hash.String() != hexSum(v1) {
		t.Fatalf("history of the deleted file: %+v", revs)
	}
	// An old revision stays readable.
	if g := c.call(t, 2, "GET", "/v1/files"+path+"?rev=1", alice, nil, nil); g.status != http.StatusOK || !bytes.Equal(g.body, v1) {
		t.Fatalf("GET ?rev=1: %s", g)
	}
	// Restore revision 1: a new revision 4 with its bytes.
	body, _ := json.Marshal(map[string]any{"path": path, "rev": 1})
	var res fileResult
	c.call(t, 2, "POST", "/v1/restore", alice, body, nil).decode(t, http.StatusOK, &res)
	if res.Rev != 4 || res.ID != r1.ID {
		t.Fatalf("restore answered %+v; want rev 4 of node %d", res, r1.ID)
	}
	g := c.call(t, 0, "GET", "/v1/files"+path, alice, nil, nil)
	if g.status != http.StatusOK || !bytes.Equal(g.body, v1) || g.header.Get("X-Coffer-Rev") != "4" {
		t.Fatalf("GET after the restore: %s rev %q", g, g.header.Get("X-Coffer-Rev"))
	}
	if revs := c.history(t, 1, alice, "/?id="+strconv.FormatUint(r1.ID, 10)); len(revs) != 4 || revs[0].Rev != 4 || revs[0].From != 1 {
		t.Fatalf("history by ID after the restore: %+v", revs)
	}

	// bob sees none of it, through any node: by path, by revision, by ID.
	id := strconv.FormatUint(r1.ID, 10)
	for i := range c.nodes {
		for _, q := range []string{
			"/v1/files" + path,
			"/v1/files" + path + "?rev=1",
			"/v1/stat" + path,
			"/v1/stat/?id=" + id,
			"/v1/stat/?deleted=1&id=" + id,
			"/v1/history" + path,
			"/v1/history/?id=" + id,
			"/v1/list/docs",
		} {
			if r := c.call(t, i, "GET", q, bob, nil, nil); r.status != http.StatusNotFound {
				t.Errorf("bob GET %s through n%d: %s; want 404", q, i+1, r)
			}
		}
	}
	// bob cannot restore it into his namespace either.
	body, _ = json.Marshal(map[string]any{"id": r1.ID, "rev": 1, "to": "/stolen.txt"})
	if r := c.call(t, 0, "POST", "/v1/restore", bob, body, nil); r.status != http.StatusNotFound {
		t.Errorf("bob restoring alice's node: %s; want 404", r)
	}
	if r := c.call(t, 0, "GET", "/v1/files/stolen.txt", bob, nil, nil); r.status != http.StatusNotFound {
		t.Errorf("bob GET /stolen.txt: %s; want 404", r)
	}
}
