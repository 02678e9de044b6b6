package gateway

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/coffer-dev/coffer/client"
	"github.com/coffer-dev/coffer/internal/wire"
)

// framed is a batch body holding the blocks as frames.
func framed(blocks ...[]byte) []byte {
	var b bytes.Buffer
	for _, d := range blocks {
		fmt.Fprintf(&b, "%s %d\n", sha(d), len(d))
		b.Write(d)
	}
	return b.Bytes()
}

// putBatch uploads a batch body and checks the answer's receipts against
// blocks.
func (s *sess) putBatch(blocks ...[]byte) []string {
	s.e.t.Helper()
	a := s.do("POST", "/v1/blocks/batch", bytes.NewReader(framed(blocks...)), map[string]string{"Content-Type": "application/octet-stream"})
	if a.status != 200 {
		s.e.t.Fatalf("batch: HTTP %d %.300s", a.status, a.body)
	}
	got := decodeAs[blockBatch](s.e.t, a).Receipts
	if len(got) != len(blocks) {
		s.e.t.Fatalf("batch of %d blocks answered %d receipts", len(blocks), len(got))
	}
	var out []string
	for i, rc := range got {
		if rc.Ref != sha(blocks[i]) || rc.Size != int64(len(blocks[i])) || !strings.HasPrefix(rc.Receipt, "r1.") {
			s.e.t.Fatalf("receipt %d: %+v", i, rc)
		}
		out = append(out, rc.Receipt)
	}
	return out
}

type frame struct {
	ref  string
	data []byte
}

// readBatch POSTs /v1/blocks/read and parses a 200 answer: its frames and
// the count of its end line.
func (s *sess) readBatch(refs ...string) (answer, []frame, int) {
	s.e.t.Helper()
	a := s.postJSON("/v1/blocks/read", readRequest{Refs: refs}, nil)
	if a.status != 200 {
		return a, nil, -1
	}
	if ct := a.hdr.Get("Content-Type"); ct != "application/octet-stream" {
		s.e.t.Errorf("Content-Type %q", ct)
	}
	br := bufio.NewReader(bytes.NewReader(a.body))
	var frames []frame
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			s.e.t.Fatalf("read answer after %d frames: no end line: %v", len(frames), err)
		}
		h, sz, _ := strings.Cut(strings.TrimSuffix(line, "\n"), " ")
		n, err := strconv.Atoi(sz)
		if err != nil {
			s.e.t.Fatalf("bad line %q", line)
		}
		if h == "end" {
			if rest, _ := io.ReadAll(br); len(rest) != 0 {
				s.e.t.Errorf("%d bytes after the end line", len(rest))
			}
			if n != len(frames) {
				s.e.t.Errorf("end %d after %d frames", n, len(frames))
			}
			return a, frames, n
		}
		data := make([]byte, n)
		if _, err := io.ReadFull(br, data); err != nil {
			s.e.t.Fatalf("frame %d: %v", len(frames), err)
		}
		frames = append(frames, frame{h, data})
	}
}

// commitBlocks commits each block as a file /f<i> with the receipts.
func (s *sess) commitBlocks(receipts []string, blocks ...[]byte) {
	s.e.t.Helper()
	var ops []wire.Op
	for i, d := range blocks {
		ops = append(ops, putOp(fmt.Sprintf("/f%d", i), d))
	}
	want(s.e.t, "commit", s.postJSON("/v1/commit", wire.CommitRequest{Ops: ops, Receipts: receipts}, nil), 200, "")
}

func refsOf(blocks ...[]byte) []string {
	var out []string
	for _, d := range blocks {
		out = append(out, sha(d))
	}
	return out
}

func checkFrames(t *testing.T, what string, got []frame, blocks ...[]byte) {
	t.Helper()
	if len(got) != len(blocks) {
		t.Fatalf("%s: %d frames, want %d", what, len(got), len(blocks))
	}
	for i, f := range got {
		if f.ref != sha(blocks[i]) || !bytes.Equal(f.data, blocks[i]) {
			t.Errorf("%s: frame %d is %s (%d bytes), want %s (%d bytes)", what, i, f.ref, len(f.data), sha(blocks[i]), len(blocks[i]))
		}
	}
}

// TestBlockBatchRoundTrip: a batch stores every block as PUT /v1/blocks
// does, answers their receipts in order, and the blocks read back in the
// order asked once a commit references them.
func TestBlockBatchRoundTrip(t *testing.T) {
	e := newEnv(t, envOpts{})
	alice := e.user("alice")
	var blocks [][]byte
	for i := range 40 {
		blocks = append(blocks, randBytes(1+i*97))
	}
	blocks = append(blocks, blocks[3]) // a block twice is stored twice, harmlessly
	puts := e.blocks.putCount()
	receipts := alice.putBatch(blocks...)
	if got := e.blocks.putCount() - puts; got != len(blocks) {
		t.Errorf("%d puts for %d blocks", got, len(blocks))
	}
	for i, d := range blocks {
		if got, err := e.blocks.Get(t.Context(), mustRef(t, sha(d))); err != nil || !bytes.Equal(got, d) {
			t.Fatalf("block %d not stored: %v", i, err)
		}
	}
	// Uploaded is not referenced: the blocks cannot be read yet.
	a, _, _ := alice.readBatch(sha(blocks[0]))
	want(t, "read before the commit", a, 404, "not_found")

	alice.commitBlocks(receipts, blocks[:40]...)
	a, frames, n := alice.readBatch(refsOf(blocks...)...)
	if want(t, "read", a, 200, "") && n == len(blocks) {
		checkFrames(t, "read", frames, blocks...)
	}
	// Any order, repeats included.
	order := [][]byte{blocks[7], blocks[0], blocks[7], blocks[39]}
	_, frames, _ = alice.readBatch(refsOf(order...)...)
	checkFrames(t, "read in another order", frames, order...)
	// Upper-case refs are refs too; the frames name them in lower case.
	_, frames, _ = alice.readBatch(strings.ToUpper(sha(blocks[1])))
	checkFrames(t, "an upper-case ref", frames, blocks[1])

	// A gateway without the blocks in its cache fetches them once from
	// the block nodes, then serves them from its cache.
	other := alice.via(e.secondGateway())
	gets := e.blocks.getCount()
	_, frames, _ = other.readBatch(refsOf(blocks[:10]...)...)
	checkFrames(t, "read through another gateway", frames, blocks[:10]...)
	if got := e.blocks.getCount() - gets; got != 10 {
		t.Errorf("a cold gateway made %d block gets for 10 blocks", got)
	}
	_, frames, _ = other.readBatch(refsOf(blocks[:10]...)...)
	checkFrames(t, "read again", frames, blocks[:10]...)
	if got := e.blocks.getCount() - gets; got != 10 {
		t.Errorf("a second read made %d more block gets, want 0 (the cache)", got-10)
	}
	waitFor(t, 10*time.Second, "the upload budget to be given back", func() bool { return e.uploadsUsed() == 0 })

	for _, tc := range []struct {
		name, body string
		status     int
		code       string
	}{
		{"no refs", `{"refs":[]}`, 400, "invalid_argument"},
		{"a bad ref", `{"refs":["xyz"]}`, 400, "invalid_ref"},
		{"not json", `refs`, 400, "invalid_argument"},
		{"unknown field", `{"refs":["` + sha(blocks[0]) + `"],"all":true}`, 400, "invalid_argument"},
	} {
		want(t, tc.name, alice.do("POST", "/v1/blocks/read", strings.NewReader(tc.body), nil), tc.status, tc.code)
	}
	many := make([]string, MaxBatchBlocks+1)
	for i := range many {
		many[i] = sha(blocks[0])
	}
	a, _, _ = alice.readBatch(many...)
	want(t, "too many refs", a, 400, "invalid_argument")
	_, frames, _ = alice.readBatch(many[1:]...)
	if len(frames) != MaxBatchBlocks {
		t.Errorf("%d refs: %d frames", MaxBatchBlocks, len(frames))
	}
}

// TestBlockBatchRefused: a malformed, oversized or wrong batch is refused
// with the error of its first bad frame; blocks stored before it stay.
func TestBlockBatchRefused(t *testing.T) {
	const limit = 64 << 10
	e := newEnv(t, envOpts{configure: func(c *Config) { c.MaxBatchBytes = limit }})
	alice := e.user("alice")
	good, other := randBytes(100), randBytes(200)
	ref := sha(good)
	wrong := append(framed(good), fmt.Sprintf("%s %d\n", sha(other), len(good))...)
	wrong = append(wrong, good...)
	tiny := make([][]byte, MaxBatchBlocks+1)
	for i := range tiny {
		tiny[i] = []byte{byte(i), byte(i >> 8)}
	}
	for _, tc := range []struct {
		name   string
		body   []byte
		status int
		code   string
		in     string // in the message
	}{
		{"the wrong bytes", wrong, 400, "hash_mismatch", sha(other)},
		{"an empty body", nil, 400, "invalid_argument", "no blocks"},
		{"no size", []byte(ref + "\n"), 400, "invalid_argument", "frame 0"},
		{"not a ref", []byte("xyz 3\nabc"), 400, "invalid_argument", "frame 0"},
		{"a negative size", []byte(ref + " -1\n"), 400, "invalid_argument", "frame 0"},
		{"a signed size", []byte(ref + " +100\n" + string(good)), 400, "invalid_argument", "frame 0"},
		{"two spaces", []byte(ref + "  100\n" + string(good)), 400, "invalid_argument", "frame 0"},
		{"the body ends within a block", append(framed(good), framed(other)[:100]...), 400, "invalid_argument", "frame 1"},
		{"the body ends within a header", append(framed(good), ref[:10]...), 400, "invalid_argument", "frame 1"},
		{"a size beyond the bytes", []byte(ref + " 101\n" + string(good)), 400, "invalid_argument", "frame 0"},
		{"a header too long", []byte(ref + " " + strings.Repeat("0", 100) + "100\n" + string(good)), 400, "invalid_argument", "frame 0"},
		{"a block over 4 MiB", []byte(ref + " 4194305\n"), 413, "too_large", "frame 0"},
		{"the batch over MaxBatchBytes", framed(randBytes(limit/2), randBytes(limit/2), good), 413, "too_large", "frame 2"},
		{"too many blocks", framed(tiny...), 413, "too_large", "1024"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := alice.do("POST", "/v1/blocks/batch", onlyReader{bytes.NewReader(tc.body)}, nil)
			if want(t, "batch", a, tc.status, tc.code) && !strings.Contains(a.json()["message"].(string), tc.in) {
				t.Errorf("message %s does not name %q", a.body, tc.in)
			}
		})
	}
	// The good block before the wrong one was stored: harmless garbage.
	if _, err := e.blocks.Get(t.Context(), mustRef(t, ref)); err != nil {
		t.Errorf("the block before the bad frame: %v", err)
	}
	// A declared length beyond the limit is refused before any block is
	// stored.
	puts := e.blocks.putCount()
	big := framed(randBytes(limit), randBytes(limit), randBytes(limit)) // beyond the limit and 1024 frame headers
	a := alice.do("POST", "/v1/blocks/batch", bytes.NewReader(big), nil)
	want(t, "Content-Length over the limit", a, 413, "too_large")
	if e.blocks.putCount() != puts {
		t.Errorf("a batch refused by its length stored %d blocks", e.blocks.putCount()-puts)
	}
	// Exactly the limit is fine.
	alice.putBatch(randBytes(limit/2), randBytes(limit/2))
	// A failing block store fails the batch.
	e.blocks.mu.Lock()
	e.blocks.failPuts = true
	e.blocks.mu.Unlock()
	a = alice.do("POST", "/v1/blocks/batch", bytes.NewReader(framed(good, other)), nil)
	if want(t, "block nodes down", a, 503, "unavailable") && a.hdr.Get("Retry-After") == "" {
		t.Errorf("503 without Retry-After")
	}
	waitFor(t, 10*time.Second, "the upload budget to be given back", func() bool { return e.uploadsUsed() == 0 })
}

// TestBlockReadStopsAndContinues: an answer stops after the block that
// takes it to MaxBatchBytes, or before a block that cannot be fetched; the
// client asks again for the rest.
func TestBlockReadStopsAndContinues(t *testing.T) {
	const limit = 10 << 10
	e := newEnv(t, envOpts{configure: func(c *Config) { c.MaxBatchBytes, c.BlockCache = limit, -1 }})
	alice := e.user("alice")
	var blocks [][]byte
	for range 5 {
		blocks = append(blocks, randBytes(4<<10))
	}
	huge := randBytes(3 * limit)
	blocks = append(blocks, huge)
	// Uploads of more than MaxBatchBytes go in several batches.
	receipts := alice.putBatch(blocks[0], blocks[1])
	receipts = append(receipts, alice.putBatch(blocks[2], blocks[3])...)
	receipts = append(receipts, alice.putBatch(blocks[4])...)
	receipts = append(receipts, alice.putBlock(huge))
	alice.commitBlocks(receipts, blocks...)

	refs := refsOf(blocks...)
	_, frames, n := alice.readBatch(refs...)
	if n != 3 {
		t.Fatalf("the first answer has %d frames, want 3 (4, 8, then 12 KiB >= 10 KiB)", n)
	}
	checkFrames(t, "first answer", frames, blocks[:3]...)
	_, frames, _ = alice.readBatch(refs[3:]...)
	checkFrames(t, "second answer", frames, blocks[3:]...) // 4, 8 (< 10) then 38 KiB
	_, frames, _ = alice.readBatch(refs[5], refs[0])
	checkFrames(t, "a block over the limit first", frames, huge)

	// A block lost from the block nodes: the answer stops before it; asked
	// again, it comes first and its error is answered.
	if ok, err := e.blocks.st.Delete(t.Context(), mustRef(t, refs[1]), time.Now().Add(time.Hour)); !ok || err != nil {
		t.Fatalf("delete: %v %v", ok, err)
	}
	_, frames, n = alice.readBatch(refs[0], refs[1], refs[2])
	if n != 1 {
		t.Fatalf("with block 1 lost: %d frames, want 1", n)
	}
	checkFrames(t, "before the lost block", frames, blocks[0])
	a, _, _ := alice.readBatch(refs[1], refs[2])
	want(t, "the lost block first", a, 500, "block_missing")
}

// TestBlockBatchIsOneRequest: a batch is one request for the per-user
// rate, and is charged against the upload memory while its body streams.
func TestBlockBatchIsOneRequest(t *testing.T) {
	e := newEnv(t, envOpts{configure: func(c *Config) { c.UserRate, c.UserBurst, c.UploadMemory = 1, 3, 1 }})
	alice := e.user("alice")
	var blocks [][]byte
	for range 100 {
		blocks = append(blocks, randBytes(50))
	}
	receipts := alice.putBatch(blocks...)
	alice.commitBlocks(receipts, blocks...)
	_, frames, _ := alice.readBatch(refsOf(blocks...)...)
	checkFrames(t, "read", frames, blocks...)
	want(t, "the fourth request", alice.do("GET", "/v1/whoami", nil, nil), 429, "rate_limited")
	e.clk.add(time.Second)

	// A batch whose body is held open holds the upload memory (a body of
	// unknown length is charged the most); another is refused meanwhile.
	pr, pw := io.Pipe()
	t.Cleanup(func() { pw.CloseWithError(io.ErrUnexpectedEOF) })
	done := make(chan answer, 1)
	go func() {
		a, err := alice.tryDo("POST", "/v1/blocks/batch", pr, nil)
		if err != nil {
			a = answer{status: -1, body: []byte(err.Error())}
		}
		done <- a
	}()
	if _, err := pw.Write(framed(blocks[0])); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "the batch to be charged", func() bool { return e.uploadsUsed() == uploadCharge })
	e.clk.add(time.Second)
	a := alice.do("POST", "/v1/blocks/batch", bytes.NewReader(framed(blocks[1])), nil)
	if want(t, "a second batch", a, 429, "overloaded") && a.hdr.Get("Retry-After") == "" {
		t.Errorf("429 without Retry-After")
	}
	if _, err := pw.Write(framed(blocks[2])); err != nil {
		t.Fatal(err)
	}
	pw.Close()
	a = <-done
	if want(t, "the held batch", a, 200, "") {
		if rc := decodeAs[blockBatch](t, a).Receipts; len(rc) != 2 || rc[1].Ref != sha(blocks[2]) {
			t.Errorf("receipts %+v", rc)
		}
	}
	waitFor(t, 10*time.Second, "the upload budget to be given back", func() bool { return e.uploadsUsed() == 0 })
}

// TestBlockBatchClient: the client's PutBlocks and ReadBlocks against the
// gateway, across several answers.
func TestBlockBatchClient(t *testing.T) {
	e := newEnv(t, envOpts{configure: func(c *Config) { c.MaxBatchBytes = 16 << 10 }})
	alice := e.user("alice")
	c, err := client.New(client.Config{Servers: []string{e.ts.URL}, Token: alice.token, Timeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	var blocks []client.BlockData
	var ops []wire.Op
	for i := range 30 {
		d := randBytes(1 << 10)
		blocks = append(blocks, client.BlockData{Ref: sha(d), Data: d})
		ops = append(ops, putOp(fmt.Sprintf("/c%d", i), d))
	}
	// 30 KiB in one batch is over this gateway's 16 KiB.
	_, err = c.PutBlocks(t.Context(), blocks)
	if !strings.Contains(fmt.Sprint(err), "too_large") {
		t.Fatalf("PutBlocks over the gateway's limit: %v", err)
	}
	var receipts []string
	for _, part := range [][]client.BlockData{blocks[:15], blocks[15:]} {
		rcs, err := c.PutBlocks(t.Context(), part)
		if err != nil {
			t.Fatal(err)
		}
		for _, rc := range rcs {
			receipts = append(receipts, rc.Receipt)
		}
	}
	if _, err := c.Commit(t.Context(), "", ops, receipts); err != nil {
		t.Fatal(err)
	}
	var refs []string
	for _, b := range blocks {
		refs = append(refs, b.Ref)
	}
	i := 0
	err = c.ReadBlocks(t.Context(), refs, func(ref string, data []byte) error {
		if ref != blocks[i].Ref || !bytes.Equal(data, blocks[i].Data) {
			t.Errorf("block %d: %s", i, ref)
		}
		i++
		return nil
	})
	if err != nil || i != len(blocks) {
		t.Fatalf("ReadBlocks: %v after %d blocks", err, i)
	}
	// bob reads none of it.
	bob := e.user("bob")
	cb, err := client.New(client.Config{Servers: []string{e.ts.URL}, Token: bob.token})
	if err != nil {
		t.Fatal(err)
	}
	err = cb.ReadBlocks(t.Context(), refs[:1], func(string, []byte) error {
		t.Error("bob got a block")
		return nil
	})
	if !strings.Contains(fmt.Sprint(err), "not_found") {
		t.Errorf("bob's ReadBlocks: %v", err)
	}
}
