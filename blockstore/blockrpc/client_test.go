package blockrpc

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/coffer-dev/coffer/blockstore"
	"github.com/coffer-dev/coffer/blockstore/memstore"
)

func TestRoundTrip4MiB(t *testing.T) {
	ms, ts := startMem(t, memstore.Config{}, ServerConfig{})
	c := dial(t, ts.addr, ClientConfig{})
	ctx := testContext(t)
	ref, data := randomBlock(t, 4<<20)

	if err := c.Put(ctx, ref, data); err != nil {
		t.Fatal(err)
	}
	// A header and 16 chunks of 256 KiB each way.
	if n := ts.rec.count(ts.rec.recvd, methodPut); n != 17 {
		t.Errorf("the server received %d Put messages, want 17", n)
	}
	got, err := c.Get(ctx, ref)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, data) {
		t.Fatal("Get returned other bytes")
	}
	if n := ts.rec.count(ts.rec.sent, methodGet); n != 17 {
		t.Errorf("the server sent %d Get messages, want 17", n)
	}
	if has, err := c.Has(ctx, []blockstore.Ref{ref, {1}}); err != nil || !slices.Equal(has, []bool{true, false}) {
		t.Errorf("Has = %v, %v", has, err)
	}
	want, err := ms.Stats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st, err := c.Stats(ctx); err != nil || st != want {
		t.Errorf("Stats = %+v, %v; the store has %+v", st, err, want)
	}
	if want.Puts != 1 || want.BytesPut != 4<<20 || want.Gets != 1 {
		t.Errorf("the store counted %+v", want)
	}
	if ok, err := c.Delete(ctx, ref, time.Now().Add(-time.Hour)); err != nil || ok {
		t.Errorf("Delete before it was stored = %v, %v", ok, err)
	}
	if ok, err := c.Delete(ctx, ref, time.Now().Add(time.Hour)); err != nil || !ok {
		t.Errorf("Delete = %v, %v", ok, err)
	}
	if _, err := c.Get(ctx, ref); !errors.Is(err, blockstore.ErrNotFound) {
		t.Errorf("Get after Delete = %v", err)
	}
}

func TestRoundTripSizes(t *testing.T) {
	_, ts := startMem(t, memstore.Config{}, ServerConfig{ChunkSize: 1000})
	c := dial(t, ts.addr, ClientConfig{ChunkSize: 999})
	ctx := testContext(t)
	for _, n := range []int{0, 1, 998, 999, 1000, 1001, 3000, 100_003} {
		ref, data := randomBlock(t, n)
		if err := c.Put(ctx, ref, data); err != nil {
			t.Fatalf("%d bytes: %v", n, err)
		}
		got, err := c.Get(ctx, ref)
		if err != nil {
			t.Fatalf("%d bytes: %v", n, err)
		}
		if !bytes.Equal(got, data) || got == nil {
			t.Fatalf("%d bytes: Get returned %d other bytes (nil: %v)", n, len(got), got == nil)
		}
	}
}

// TestErrorsMapBack: each error a store returns reaches the client as the
// same sentinel, from every method, with the server's message.
func TestErrorsMapBack(t *testing.T) {
	type row struct {
		name string
		err  error
		want error
	}
	rows := []row{{"internal", errors.New("fake internal failure"), nil}}
	for _, s := range sentinels {
		rows = append(rows, row{string(s.code), fmt.Errorf("%w: fake detail of %s", s.err, s.code), s.err})
	}
	ref, data := randomBlock(t, 100)
	for _, r := range rows {
		t.Run(r.name, func(t *testing.T) {
			ts := startServer(t, &fakeStore{err: r.err}, ServerConfig{})
			c := dial(t, ts.addr, ClientConfig{})
			ctx := testContext(t)
			calls := map[string]error{
				"put": c.Put(ctx, ref, data),
				"enumerate": c.Enumerate(ctx, blockstore.Ref{}, func(blockstore.BlockInfo) error {
					return errors.New("no block expected")
				}),
			}
			_, calls["get"] = c.Get(ctx, ref)
			_, calls["has"] = c.Has(ctx, []blockstore.Ref{ref})
			_, calls["delete"] = c.Delete(ctx, ref, time.Now())
			_, calls["stats"] = c.Stats(ctx)
			for op, err := range calls {
				if err == nil {
					t.Errorf("%s: no error", op)
					continue
				}
				wrapsOnly(t, err, r.want)
				if !strings.Contains(err.Error(), r.err.Error()) {
					t.Errorf("%s: %q lost the server's message %q", op, err, r.err)
				}
			}
		})
	}
}

func TestGetRefusesAWrongAnswer(t *testing.T) {
	right, wrong := []byte("the block asked for"), []byte("another block")
	ts := startServer(t, &fakeStore{data: wrong}, ServerConfig{})
	c := dial(t, ts.addr, ClientConfig{})
	got, err := c.Get(testContext(t), blockstore.Sum(right))
	if !errors.Is(err, blockstore.ErrCorrupt) || got != nil {
		t.Errorf("Get = %q, %v; want ErrCorrupt and no data", got, err)
	}
	wrapsOnly(t, err, blockstore.ErrCorrupt)

	// A block larger than the client's maximum is not read at all.
	_, big := randomBlock(t, 2000)
	ts = startServer(t, &fakeStore{data: big}, ServerConfig{})
	c = dial(t, ts.addr, ClientConfig{MaxBlockSize: 1000})
	if _, err := c.Get(testContext(t), blockstore.Sum(big)); !errors.Is(err, blockstore.ErrTooLarge) {
		t.Errorf("Get of a block over the client's maximum = %v", err)
	}
}

func TestPutChecksLocally(t *testing.T) {
	ms, ts := startMem(t, memstore.Config{}, ServerConfig{})
	c := dial(t, ts.addr, ClientConfig{MaxBlockSize: 1000})
	ctx := testContext(t)
	ref, data := randomBlock(t, 1001)
	if err := c.Put(ctx, ref, data); !errors.Is(err, blockstore.ErrTooLarge) {
		t.Errorf("Put over the client's maximum = %v", err)
	}
	if n := ts.rec.count(ts.rec.calls, methodPut); n != 0 {
		t.Errorf("%d Put RPCs, want none", n)
	}
	// A wrong hash is the server's store's to refuse.
	if err := c.Put(ctx, blockstore.Sum([]byte("other")), data[:10]); !errors.Is(err, blockstore.ErrHashMismatch) {
		t.Errorf("Put with a wrong ref = %v", err)
	}
	if st, _ := ms.Stats(ctx); st.Blocks != 0 {
		t.Errorf("stored %d blocks", st.Blocks)
	}
}

func TestPutTooLargeForTheServer(t *testing.T) {
	// The store would take the block: the server's own limit refuses it.
	ms, ts := startMem(t, memstore.Config{}, ServerConfig{MaxBlockSize: 1 << 20})
	c := dial(t, ts.addr, ClientConfig{})
	ctx := testContext(t)
	ref, data := randomBlock(t, 2<<20)
	err := c.Put(ctx, ref, data)
	if !errors.Is(err, blockstore.ErrTooLarge) {
		t.Fatalf("Put = %v, want ErrTooLarge", err)
	}
	wrapsOnly(t, err, blockstore.ErrTooLarge)
	if n := ts.rec.count(ts.rec.recvd, methodPut); n != 1 {
		t.Errorf("the server read %d messages, want the header only", n)
	}
	if has, _ := ms.Has(ctx, []blockstore.Ref{ref}); has[0] {
		t.Error("the block was stored")
	}
}

func TestUnavailable(t *testing.T) {
	t.Run("nothing listening", func(t *testing.T) {
		lis, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := lis.Addr().String()
		lis.Close()
		c := dial(t, addr, ClientConfig{})
		ctx := testContext(t)
		_, err = c.Get(ctx, blockstore.Ref{1})
		checkUnavailable(t, ctx, err)
		ref, data := randomBlock(t, 10)
		checkUnavailable(t, ctx, c.Put(ctx, ref, data))
	})
	t.Run("server stopped", func(t *testing.T) {
		_, ts := startMem(t, memstore.Config{}, ServerConfig{})
		c := dial(t, ts.addr, ClientConfig{})
		ctx := testContext(t)
		ref, data := randomBlock(t, 10)
		if err := c.Put(ctx, ref, data); err != nil {
			t.Fatal(err)
		}
		ts.stop()
		_, err := c.Get(ctx, ref)
		checkUnavailable(t, ctx, err)
		_, err = c.Stats(ctx)
		checkUnavailable(t, ctx, err)
	})
	t.Run("call timeout", func(t *testing.T) {
		ts := startServer(t, &fakeStore{block: true}, ServerConfig{})
		c := dial(t, ts.addr, ClientConfig{CallTimeout: 50 * time.Millisecond})
		ctx := testContext(t)
		_, err := c.Get(ctx, blockstore.Ref{1})
		checkUnavailable(t, ctx, err)
		_, err = c.Has(ctx, []blockstore.Ref{{1}})
		checkUnavailable(t, ctx, err)
		// For Enumerate the timeout bounds the wait for each batch.
		err = c.Enumerate(ctx, blockstore.Ref{}, func(blockstore.BlockInfo) error { return nil })
		checkUnavailable(t, ctx, err)
	})
}

func checkUnavailable(t *testing.T, ctx context.Context, err error) {
	t.Helper()
	if ctx.Err() != nil {
		t.Fatalf("the test's ctx ran out: %v", err)
	}
	wrapsOnly(t, err, blockstore.ErrUnavailable)
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("%v wraps a context error", err)
	}
}

func TestHasSplitsLargeBatches(t *testing.T) {
	ms, ts := startMem(t, memstore.Config{}, ServerConfig{})
	c := dial(t, ts.addr, ClientConfig{})
	ctx := testContext(t)
	refs := make([]blockstore.Ref, 2*MaxHasBatch+5)
	want := make([]bool, len(refs))
	for i := range refs {
		refs[i] = blockstore.Sum(fmt.Appendf(nil, "block %d", i))
		if i%7 == 0 || i == MaxHasBatch || i == len(refs)-1 {
			if err := ms.Put(ctx, refs[i], fmt.Appendf(nil, "block %d", i)); err != nil {
				t.Fatal(err)
			}
			want[i] = true
		}
	}
	got, err := c.Has(ctx, refs)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got, want) {
		t.Error("Has answered wrongly")
	}
	if n := ts.rec.count(ts.rec.calls, methodHas); n != 3 {
		t.Errorf("%d Has RPCs, want 3", n)
	}
	got, err = c.Has(ctx, nil)
	if err != nil || got == nil || len(got) != 0 {
		t.Errorf("Has(nil) = %#v, %v", got, err)
	}
}

func TestEnumerateBatches(t *testing.T) {
	storedAt := time.Date(2026, 5, 4, 3, 2, 1, 987654321, time.UTC)
	ms, ts := startMem(t, memstore.Config{Now: func() time.Time { return storedAt }}, ServerConfig{})
	c := dial(t, ts.addr, ClientConfig{})
	ctx := testContext(t)
	const n = 2*enumerateBatch + 500
	var want []blockstore.BlockInfo
	for i := range n {
		data := fmt.Appendf(nil, "block number %d", i)
		ref := blockstore.Sum(data)
		if err := ms.Put(ctx, ref, data); err != nil {
			t.Fatal(err)
		}
		want = append(want, blockstore.BlockInfo{Ref: ref, Size: int64(len(data)), StoredAt: storedAt})
	}
	slices.SortFunc(want, func(a, b blockstore.BlockInfo) int { return bytes.Compare(a.Ref[:], b.Ref[:]) })

	walk := func(from blockstore.Ref, stopAfter int) ([]blockstore.BlockInfo, error) {
		var got []blockstore.BlockInfo
		err := c.Enumerate(ctx, from, func(info blockstore.BlockInfo) error {
			got = append(got, info)
			if len(got) == stopAfter {
				return blockstore.ErrStop
			}
			return nil
		})
		return got, err
	}
	same := func(got, want []blockstore.BlockInfo) bool {
		return slices.EqualFunc(got, want, func(a, b blockstore.BlockInfo) bool {
			return a.Ref == b.Ref && a.Size == b.Size && a.StoredAt.Equal(b.StoredAt)
		})
	}

	got, err := walk(blockstore.Ref{}, -1)
	if err != nil || !same(got, want) {
		t.Fatalf("full walk: %d blocks, %v", len(got), err)
	}
	if m := ts.rec.count(ts.rec.sent, methodEnumerate); m != 3 {
		t.Errorf("the walk took %d messages, want 3", m)
	}
	got, err = walk(want[1234].Ref, -1)
	if err != nil || !same(got, want[1234:]) {
		t.Errorf("walk from the middle: %d blocks, %v", len(got), err)
	}
	got, err = walk(blockstore.Ref{}, 1500)
	if err != nil || !same(got, want[:1500]) {
		t.Errorf("walk stopped at 1500: %d blocks, %v", len(got), err)
	}
	errMine := errors.New("mine")
	err = c.Enumerate(ctx, blockstore.Ref{}, func(blockstore.BlockInfo) error { return errMine })
	if !errors.Is(err, errMine) {
		t.Errorf("a callback's error came back as %v", err)
	}
	if err := c.Enumerate(ctx, blockstore.Ref{}, nil); !errors.Is(err, blockstore.ErrInvalidArgument) {
		t.Errorf("nil callback: %v", err)
	}
}

func TestGetCancelledMidStream(t *testing.T) {
	ms, ts := startMem(t, memstore.Config{}, ServerConfig{})
	c := dial(t, ts.addr, ClientConfig{})
	ref, data := randomBlock(t, 4<<20)
	if err := ms.Put(testContext(t), ref, data); err != nil {
		t.Fatal(err)
	}
	// The server sends the header and one chunk, then stalls until the
	// call is cancelled.
	started := make(chan struct{})
	ts.rec.setOnSend(func(ctx context.Context, method string, n int) {
		if method == methodGet && n == 2 {
			close(started)
			<-ctx.Done()
		}
	})
	ctx, cancel := context.WithCancel(testContext(t))
	type result struct {
		data []byte
		err  error
	}
	done := make(chan result, 1)
	go func() {
		data, err := c.Get(ctx, ref)
		done <- result{data, err}
	}()
	select {
	case <-started:
	case <-time.After(testTimeout):
		t.Fatal("the Get did not start")
	}
	cancel()
	var r result
	select {
	case r = <-done:
	case <-time.After(testTimeout):
		t.Fatal("Get did not return after cancel")
	}
	if !errors.Is(r.err, context.Canceled) || r.data != nil {
		t.Errorf("Get = %d bytes, %v; want context.Canceled", len(r.data), r.err)
	}
	wrapsOnly(t, r.err, nil)
	ts.rec.waitEnd(t, methodGet) // the server's handler is gone too
}

func TestClose(t *testing.T) {
	_, ts := startMem(t, memstore.Config{}, ServerConfig{})
	c := dial(t, ts.addr, ClientConfig{})
	ctx := testContext(t)
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	ref, data := randomBlock(t, 10)
	errs := map[string]error{
		"put":       c.Put(ctx, ref, data),
		"enumerate": c.Enumerate(ctx, blockstore.Ref{}, func(blockstore.BlockInfo) error { return nil }),
	}
	_, errs["get"] = c.Get(ctx, ref)
	_, errs["has"] = c.Has(ctx, []blockstore.Ref{ref})
	_, errs["has none"] = c.Has(ctx, nil)
	_, errs["delete"] = c.Delete(ctx, ref, time.Now())
	_, errs["stats"] = c.Stats(ctx)
	for op, err := range errs {
		if !errors.Is(err, blockstore.ErrClosed) {
			t.Errorf("%s after Close: %v", op, err)
		}
	}
	if err := c.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

func TestCloseLeavesACallersConnection(t *testing.T) {
	_, ts := startMem(t, memstore.Config{}, ServerConfig{})
	conn, err := grpc.NewClient(ts.addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	c1, err := NewClient(conn, ClientConfig{})
	if err != nil {
		t.Fatal(err)
	}
	c2, err := NewClient(conn, ClientConfig{})
	if err != nil {
		t.Fatal(err)
	}
	ctx := testContext(t)
	ref, data := randomBlock(t, 10)
	if err := c1.Put(ctx, ref, data); err != nil {
		t.Fatal(err)
	}
	if err := c1.Close(); err != nil {
		t.Fatal(err)
	}
	if got, err := c2.Get(ctx, ref); err != nil || !bytes.Equal(got, data) {
		t.Errorf("the other client on the connection: %v", err)
	}
}

// TestCloseWaitsForCalls: Close returns only once the calls in flight are
// done, and refuses new calls meanwhile.
func TestCloseWaitsForCalls(t *testing.T) {
	ts := startServer(t, &fakeStore{block: true}, ServerConfig{})
	c := dial(t, ts.addr, ClientConfig{})
	ctx, cancel := context.WithCancel(testContext(t))
	defer cancel()
	getDone := make(chan error, 1)
	go func() {
		_, err := c.Get(ctx, blockstore.Ref{1})
		getDone <- err
	}()
	waitFor(t, func() bool { return ts.rec.count(ts.rec.calls, methodGet) == 1 })
	var closeErr error
	closed := make(chan struct{})
	go func() {
		closeErr = c.Close()
		close(closed)
	}()
	waitFor(t, func() bool {
		_, err := c.Has(ctx, nil) // no RPC: the fake store would block
		return errors.Is(err, blockstore.ErrClosed)
	})
	select {
	case <-closed:
		t.Fatal("Close returned while a Get was in flight")
	default:
	}
	cancel()
	if err := <-getDone; !errors.Is(err, context.Canceled) {
		t.Errorf("the Get in flight: %v", err)
	}
	select {
	case <-closed:
	case <-time.After(testTimeout):
		t.Fatal("Close did not return")
	}
	if closeErr != nil {
		t.Errorf("Close: %v", closeErr)
	}
}
