package client

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coffer-dev/coffer/internal/wire"
)

func refOf(data []byte) string {
	s := sha256.Sum256(data)
	return hex.EncodeToString(s[:])
}

// batchServer is a fake gateway of the two batch routes.
type batchServer struct {
	*counter
	t *testing.T

	mu     sync.Mutex
	stored map[string][]byte
	puts   [][]string // the refs of each batch upload, in order
	reads  [][]string // the refs of each batch read
	// perAnswer bounds the frames of a read answer (0: all).
	perAnswer int
	// cut makes the next read answers break off after this many frames.
	cut []int
	// corrupt flips a byte of this block in read answers.
	corrupt string
	// swap answers the first two blocks of a read the wrong way round.
	swap bool
}

func newBatchServer(t *testing.T) *batchServer {
	b := &batchServer{t: t, stored: map[string][]byte{}}
	b.counter = newCounter(t, b.serve)
	return b
}

func (b *batchServer) serve(w http.ResponseWriter, r *http.Request) {
	switch r.Method + " " + r.URL.Path {
	case "POST /v1/blocks/batch":
		b.putBatch(w, r)
	case "POST /v1/blocks/read":
		b.read(w, r)
	default:
		writeJSON(w, 404, wire.Error{Code: "not_found", Message: r.URL.Path})
	}
}

func (b *batchServer) putBatch(w http.ResponseWriter, r *http.Request) {
	if ct := r.Header.Get("Content-Type"); ct != "application/octet-stream" {
		writeJSON(w, 400, wire.Error{Code: "invalid_argument", Message: "Content-Type " + ct})
		return
	}
	br := bufio.NewReader(r.Body)
	var refs []string
	var out []wire.BlockReceipt
	for {
		line, err := br.ReadString('\n')
		if err == io.EOF && line == "" {
			break
		}
		ref, sz, _ := strings.Cut(strings.TrimSuffix(line, "\n"), " ")
		n, err := strconv.Atoi(sz)
		if err != nil {
			writeJSON(w, 400, wire.Error{Code: "invalid_argument", Message: "bad frame " + line})
			return
		}
		data := make([]byte, n)
		if _, err := io.ReadFull(br, data); err != nil {
			writeJSON(w, 400, wire.Error{Code: "invalid_argument", Message: err.Error()})
			return
		}
		if refOf(data) != ref {
			writeJSON(w, 400, wire.Error{Code: "hash_mismatch", Message: "block " + ref})
			return
		}
		refs = append(refs, ref)
		out = append(out, wire.BlockReceipt{Ref: ref, Size: int64(n), Receipt: "r." + ref})
		b.mu.Lock()
		b.stored[ref] = data
		b.mu.Unlock()
	}
	b.mu.Lock()
	b.puts = append(b.puts, refs)
	b.mu.Unlock()
	writeJSON(w, 200, map[string]any{"receipts": out})
}

func (b *batchServer) read(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Refs []string `json:"refs"`
	}
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil || r.Header.Get("Content-Type") != "application/json" {
		writeJSON(w, 400, wire.Error{Code: "invalid_argument", Message: fmt.Sprint(err)})
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.reads = append(b.reads, req.Refs)
	if len(req.Refs) == 0 || len(req.Refs) > maxBatchBlocks {
		writeJSON(w, 400, wire.Error{Code: "invalid_argument", Message: "refs"})
		return
	}
	for _, ref := range req.Refs {
		if b.stored[ref] == nil {
			writeJSON(w, 404, wire.Error{Code: "not_found", Message: "block " + ref})
			return
		}
	}
	refs := req.Refs
	if b.swap && len(refs) > 1 {
		refs = append([]string{refs[1], refs[0]}, refs[2:]...)
	}
	cut := -1
	if len(b.cut) > 0 {
		cut, b.cut = b.cut[0], b.cut[1:]
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	n := 0
	for _, ref := range refs {
		if n == cut {
			// Break off mid-frame: the connection is closed.
			fmt.Fprintf(w, "%s %d\nabc", ref, len(b.stored[ref]))
			w.(http.Flusher).Flush()
			panic(http.ErrAbortHandler)
		}
		data := b.stored[ref]
		if ref == b.corrupt {
			data = append([]byte{data[0] ^ 1}, data[1:]...)
		}
		fmt.Fprintf(w, "%s %d\n", ref, len(data))
		w.Write(data)
		n++
		if n == b.perAnswer {
			break
		}
	}
	fmt.Fprintf(w, "end %d\n", n)
}

// seen returns the refs of the uploads and reads so far.
func (b *batchServer) seen() (puts, reads [][]string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.puts, b.reads
}

// with runs f with the server's lock held (the handlers run on other
// goroutines).
func (b *batchServer) with(f func()) {
	b.mu.Lock()
	defer b.mu.Unlock()
	f()
}

func blocksOf(n, size int, seed uint64) []BlockData {
	var out []BlockData
	for i := range n {
		d := randomBytes(size, seed+uint64(i))
		out = append(out, BlockData{Ref: refOf(d), Data: d})
	}
	return out
}

func TestPutBlocks(t *testing.T) {
	srv := newBatchServer(t)
	c := newClient(t, srv.URL)
	ctx := context.Background()
	blocks := blocksOf(2500, 100, 1)
	rcs, err := c.PutBlocks(ctx, blocks)
	if err != nil {
		t.Fatal(err)
	}
	if len(rcs) != len(blocks) {
		t.Fatalf("%d receipts for %d blocks", len(rcs), len(blocks))
	}
	for i, rc := range rcs {
		if rc.Ref != blocks[i].Ref || rc.Size != 100 || rc.Receipt != "r."+blocks[i].Ref {
			t.Fatalf("receipt %d: %+v", i, rc)
		}
	}
	// 1024 blocks per request, in order.
	puts, _ := srv.seen()
	if got := len(puts); got != 3 || len(puts[0]) != 1024 || len(puts[1]) != 1024 || len(puts[2]) != 452 {
		t.Errorf("%d requests", got)
	}
	if puts[2][451] != blocks[2499].Ref {
		t.Errorf("the last request ends with %s", puts[2][451])
	}
	// 16 MiB per request: 5 blocks of 4 MiB go as 4 + 1.
	srv.with(func() { srv.puts = nil })
	if _, err := c.PutBlocks(ctx, blocksOf(5, 4<<20, 10)); err != nil {
		t.Fatal(err)
	}
	if puts, _ := srv.seen(); len(puts) != 2 || len(puts[0]) != 4 || len(puts[1]) != 1 {
		t.Errorf("5 blocks of 4 MiB went in %d requests", len(puts))
	}
	// Nothing to send: no request.
	n := srv.n.Load()
	if rcs, err := c.PutBlocks(ctx, nil); err != nil || len(rcs) != 0 || srv.n.Load() != n {
		t.Errorf("no blocks: %v %v, %d requests", rcs, err, srv.n.Load()-n)
	}
	// A bad ref is refused before any request; wrong bytes by the server.
	bad := blocksOf(1, 10, 20)
	bad[0].Ref = "xyz"
	if _, err := c.PutBlocks(ctx, bad); !errors.Is(err, ErrInvalidArgument) || srv.n.Load() != n {
		t.Errorf("bad ref: %v", err)
	}
	wrong := blocksOf(2, 10, 30)
	wrong[1].Data = []byte("other bytes")
	if _, err := c.PutBlocks(ctx, wrong); !errors.Is(err, ErrHashMismatch) {
		t.Errorf("wrong bytes: %v", err)
	}
}

// TestPutBlocksFailsOver: a batch upload is safe to send again, even to
// another server after the first may have acted on it.
func TestPutBlocksFailsOver(t *testing.T) {
	srv := newBatchServer(t)
	down := newCounter(t, unavailable)
	hung := newCounter(t, hangUp)
	c := newClient(t, hung.URL, down.URL, srv.URL)
	blocks := blocksOf(3, 1000, 40)
	rcs, err := c.PutBlocks(context.Background(), blocks)
	if err != nil || len(rcs) != 3 {
		t.Fatalf("%v %v", rcs, err)
	}
	if puts, _ := srv.seen(); hung.n.Load() != 1 || down.n.Load() != 1 || len(puts) != 1 {
		t.Errorf("requests: hung %d, down %d, good %d", hung.n.Load(), down.n.Load(), len(puts))
	}
}

// TestPutBlocksBadAnswer: receipts that do not fit the blocks are an error.
func TestPutBlocksBadAnswer(t *testing.T) {
	blocks := blocksOf(2, 10, 50)
	for name, answer := range map[string][]wire.BlockReceipt{
		"one receipt short": {{Ref: blocks[0].Ref, Size: 10, Receipt: "r"}},
		"the wrong order":   {{Ref: blocks[1].Ref, Size: 10, Receipt: "r"}, {Ref: blocks[0].Ref, Size: 10, Receipt: "r"}},
		"no receipt":        {{Ref: blocks[0].Ref, Size: 10, Receipt: "r"}, {Ref: blocks[1].Ref, Size: 10}},
	} {
		t.Run(name, func(t *testing.T) {
			srv := newCounter(t, func(w http.ResponseWriter, r *http.Request) {
				io.Copy(io.Discard, r.Body)
				writeJSON(w, 200, map[string]any{"receipts": answer})
			})
			if _, err := newClient(t, srv.URL).PutBlocks(context.Background(), blocks); err == nil {
				t.Error("no error")
			}
		})
	}
}

// store puts blocks straight into the fake server.
func (b *batchServer) store(blocks []BlockData) []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	var refs []string
	for _, bd := range blocks {
		b.stored[bd.Ref] = bd.Data
		refs = append(refs, bd.Ref)
	}
	return refs
}

type delivered struct {
	refs []string
	data [][]byte
}

func (d *delivered) fn(ref string, data []byte) error {
	d.refs = append(d.refs, ref)
	d.data = append(d.data, data)
	return nil
}

func (d *delivered) check(t *testing.T, blocks []BlockData) {
	t.Helper()
	if len(d.refs) != len(blocks) {
		t.Fatalf("%d blocks delivered, want %d", len(d.refs), len(blocks))
	}
	for i, b := range blocks {
		if d.refs[i] != b.Ref || string(d.data[i]) != string(b.Data) {
			t.Fatalf("block %d: %s", i, d.refs[i])
		}
	}
}

func TestReadBlocks(t *testing.T) {
	srv := newBatchServer(t)
	c := newClient(t, srv.URL)
	ctx := context.Background()
	blocks := blocksOf(2100, 64, 100)
	refs := srv.store(blocks)
	blocks = append(blocks, blocks[5]) // asked twice, delivered twice
	refs = append(refs, refs[5])
	var d delivered
	if err := c.ReadBlocks(ctx, refs, d.fn); err != nil {
		t.Fatal(err)
	}
	d.check(t, blocks)
	if _, reads := srv.seen(); len(reads) != 3 || len(reads[0]) != 1024 || len(reads[2]) != 2101-2048 {
		t.Errorf("%d requests", len(reads))
	}

	// An answer that stops early: the client asks again for the rest.
	srv.with(func() { srv.reads, srv.perAnswer = nil, 7 })
	d = delivered{}
	if err := c.ReadBlocks(ctx, refs[:20], d.fn); err != nil {
		t.Fatal(err)
	}
	d.check(t, blocks[:20])
	if _, reads := srv.seen(); len(reads) != 3 || reads[1][0] != refs[7] || reads[2][0] != refs[14] || len(reads[2]) != 6 {
		t.Errorf("requests %d", len(reads))
	}

	// An answer that breaks off after some blocks: asked again from the
	// first block not delivered.
	srv.with(func() { srv.reads, srv.perAnswer, srv.cut = nil, 0, []int{3} })
	d = delivered{}
	if err := c.ReadBlocks(ctx, refs[:10], d.fn); err != nil {
		t.Fatal(err)
	}
	d.check(t, blocks[:10])
	if _, reads := srv.seen(); len(reads) != 2 || reads[1][0] != refs[3] {
		t.Errorf("after a break: %d requests", len(reads))
	}
	// One that breaks off before any block is an error.
	srv.with(func() { srv.cut = []int{0} })
	d = delivered{}
	if err := c.ReadBlocks(ctx, refs[:10], d.fn); !errors.Is(err, ErrUnavailable) || len(d.refs) != 0 {
		t.Errorf("a break before any block: %v, %d delivered", err, len(d.refs))
	}

	// Nothing to read: no request.
	n := srv.n.Load()
	if err := c.ReadBlocks(ctx, nil, d.fn); err != nil || srv.n.Load() != n {
		t.Errorf("no refs: %v", err)
	}
}

func TestReadBlocksErrors(t *testing.T) {
	srv := newBatchServer(t)
	c := newClient(t, srv.URL)
	ctx := context.Background()
	blocks := blocksOf(5, 64, 200)
	refs := srv.store(blocks)
	var d delivered

	if err := c.ReadBlocks(ctx, []string{refs[0], "nope"}, d.fn); !errors.Is(err, ErrInvalidArgument) || srv.n.Load() != 0 {
		t.Errorf("a bad ref: %v", err)
	}
	unknown := refOf([]byte("not stored"))
	if err := c.ReadBlocks(ctx, []string{refs[0], unknown}, d.fn); !errors.Is(err, ErrNotFound) || len(d.refs) != 0 {
		t.Errorf("an unknown block: %v", err)
	}

	// Bytes that do not hash to the ref.
	srv.with(func() { srv.corrupt = refs[2] })
	d = delivered{}
	if err := c.ReadBlocks(ctx, refs, d.fn); !errors.Is(err, ErrHashMismatch) || len(d.refs) != 2 {
		t.Errorf("a corrupt block: %v, %d delivered", err, len(d.refs))
	}
	srv.with(func() { srv.corrupt = "" })

	// Blocks out of order.
	srv.with(func() { srv.swap = true })
	d = delivered{}
	if err := c.ReadBlocks(ctx, refs, d.fn); err == nil || len(d.refs) != 0 {
		t.Errorf("blocks out of order: %v, %d delivered", err, len(d.refs))
	}
	srv.with(func() { srv.swap = false })

	// fn's error ends the read, as is.
	stop := errors.New("stop")
	calls := 0
	before := srv.n.Load()
	err := c.ReadBlocks(ctx, refs, func(string, []byte) error {
		if calls++; calls == 2 {
			return stop
		}
		return nil
	})
	if err != stop || calls != 2 || srv.n.Load() != before+1 {
		t.Errorf("fn's error: %v after %d calls", err, calls)
	}
}

// TestReadBlocksBadAnswers: answers that break the framing are errors, not
// hangs or loops.
func TestReadBlocksBadAnswers(t *testing.T) {
	data := []byte("block bytes")
	ref := refOf(data)
	for name, body := range map[string]string{
		"an empty answer":         "",
		"an end line of 0":        "end 0\n",
		"an end line miscounting": ref + " 11\n" + string(data) + "end 2\n",
		"a bad size":              ref + " x\n",
		"a negative size":         ref + " -1\n",
		"a huge size":             ref + " 99999999999\n",
		"a block not asked for":   refOf([]byte("x")) + " 1\nx" + "end 1\n",
		"a line too long":         strings.Repeat("a", 200) + "\n",
		"more blocks than asked":  ref + " 11\n" + string(data) + ref + " 11\n" + string(data) + "end 2\n",
	} {
		t.Run(name, func(t *testing.T) {
			srv := newCounter(t, func(w http.ResponseWriter, r *http.Request) {
				io.Copy(io.Discard, r.Body)
				w.Header().Set("Content-Type", "application/octet-stream")
				io.WriteString(w, body)
			})
			c := newClient(t, srv.URL)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			var d delivered
			err := c.ReadBlocks(ctx, []string{ref}, d.fn)
			if err == nil || ctx.Err() != nil {
				t.Errorf("%v (%d delivered, %d requests)", err, len(d.refs), srv.n.Load())
			}
		})
	}
}

// TestReadBlocksFailsOver: a read goes to another server while one cannot
// answer.
func TestReadBlocksFailsOver(t *testing.T) {
	srv := newBatchServer(t)
	down := newCounter(t, unavailable)
	c := newClient(t, down.URL, srv.URL)
	blocks := blocksOf(3, 64, 300)
	var d delivered
	if err := c.ReadBlocks(context.Background(), srv.store(blocks), d.fn); err != nil {
		t.Fatal(err)
	}
	d.check(t, blocks)
	if down.n.Load() != 1 {
		t.Errorf("the down server got %d requests", down.n.Load())
	}
}
