package blockrpc

import (
	"io"
	"net"
	"testing"
	"time"

	"github.com/coffer-dev/coffer/blockstore"
	"github.com/coffer-dev/coffer/blockstore/memstore"
)

// BenchmarkPutGet4MiB puts, gets and deletes one 4 MiB block per iteration
// through a Client and a Server over a memstore, on real TCP over
// loopback. MB/s counts both directions (8 MiB per iteration), like the
// reference BenchmarkLoopbackTCP, so the two figures compare directly.
// Each iteration hashes the block four times (client and store, on Put and
// on Get) and copies it several times (marshalling, the server's buffer,
// the store's copy).
func BenchmarkPutGet4MiB(b *testing.B) {
	_, ts := startMem(b, memstore.Config{}, ServerConfig{})
	c := dial(b, ts.addr, ClientConfig{})
	ctx := testContext(b)
	// A few different blocks, hashed before the clock runs, so that every
	// Put stores a new block.
	type block struct {
		ref  blockstore.Ref
		data []byte
	}
	blocks := make([]block, 4)
	for i := range blocks {
		blocks[i].ref, blocks[i].data = randomBlock(b, 4<<20)
	}
	b.SetBytes(2 * 4 << 20)
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		blk := blocks[i%len(blocks)]
		if err := c.Put(ctx, blk.ref, blk.data); err != nil {
			b.Fatal(err)
		}
		got, err := c.Get(ctx, blk.ref)
		if err != nil {
			b.Fatal(err)
		}
		if len(got) != len(blk.data) {
			b.Fatalf("got %d bytes", len(got))
		}
		if ok, err := c.Delete(ctx, blk.ref, time.Now().Add(time.Hour)); err != nil || !ok {
			b.Fatalf("Delete = %v, %v", ok, err)
		}
	}
}

// BenchmarkLoopbackTCP is the reference for BenchmarkPutGet4MiB: plain TCP
// over 127.0.0.1 carries a 4 MiB buffer to an echo server and back per
// iteration (8 MiB), with no framing, hashing or copying into a store.
func BenchmarkLoopbackTCP(b *testing.B) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer lis.Close()
	served := make(chan error, 1)
	go func() {
		conn, err := lis.Accept()
		if err != nil {
			served <- err
			return
		}
		defer conn.Close()
		buf := make([]byte, 4<<20)
		for {
			if _, err := io.ReadFull(conn, buf); err != nil {
				if err == io.EOF {
					err = nil
				}
				served <- err
				return
			}
			if _, err := conn.Write(buf); err != nil {
				served <- err
				return
			}
		}
	}()
	conn, err := net.Dial("tcp", lis.Addr().String())
	if err != nil {
		b.Fatal(err)
	}
	_, out := randomBlock(b, 4<<20)
	in := make([]byte, len(out))
	b.SetBytes(2 * int64(len(out)))
	for b.Loop() {
		// Like a Put then a Get: the echo reads the whole buffer before
		// it writes it back.
		if _, err := conn.Write(out); err != nil {
			b.Fatal(err)
		}
		if _, err := io.ReadFull(conn, in); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	conn.Close()
	if err := <-served; err != nil {
		b.Fatal(err)
	}
}
