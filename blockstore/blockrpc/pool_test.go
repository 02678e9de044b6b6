package blockrpc

import (
	"errors"
	"testing"

	"github.com/coffer-dev/coffer/blockstore"
	"github.com/coffer-dev/coffer/blockstore/memstore"
)

func TestPool(t *testing.T) {
	ctx := testContext(t)
	_, ts1 := startMem(t, memstore.Config{}, ServerConfig{})
	_, ts2 := startMem(t, memstore.Config{}, ServerConfig{})
	p, err := NewPool(ClientConfig{})
	if err != nil {
		t.Fatal(err)
	}
	a, err := p.Client(ctx, ts1.addr)
	if err != nil {
		t.Fatal(err)
	}
	if again, _ := p.Client(ctx, ts1.addr); again != a {
		t.Fatal("a second lookup dialled again")
	}
	b, err := p.Client(ctx, ts2.addr)
	if err != nil || b == a {
		t.Fatalf("second address: %v (same client: %v)", err, b == a)
	}
	ref, data := randomBlock(t, 1000)
	if err := a.Put(ctx, ref, data); err != nil {
		t.Fatal(err)
	}
	if has, err := b.Has(ctx, []blockstore.Ref{ref}); err != nil || has[0] {
		t.Fatalf("the block went to the wrong node: %v %v", has, err)
	}
	p.Forget(ts1.addr)
	if _, err := a.Get(ctx, ref); !errors.Is(err, blockstore.ErrClosed) {
		t.Fatalf("forgotten client: %v, want ErrClosed", err)
	}
	if c, _ := p.Client(ctx, ts1.addr); c == a {
		t.Fatal("Forget kept the client")
	}
	p.Close()
	if _, err := b.Get(ctx, ref); !errors.Is(err, blockstore.ErrClosed) {
		t.Fatalf("client after pool Close: %v, want ErrClosed", err)
	}
	if _, err := p.Client(ctx, ts2.addr); !errors.Is(err, blockstore.ErrClosed) {
		t.Fatalf("Client after Close: %v", err)
	}
	if _, err := NewPool(ClientConfig{ChunkSize: -1}); !errors.Is(err, blockstore.ErrInvalidConfig) {
		t.Fatalf("bad config: %v", err)
	}
}
