package metarpc

import (
	"errors"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/coffer-dev/coffer/raftmeta"
)

func TestPool(t *testing.T) {
	f := &fakeShard{}
	ts := serve(t, listen(t), &fakeShards{shard: f})
	p, err := NewPool(ClientConfig{}, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	ctx := testContext(t)

	c1, err := p.Get(ts.addr)
	if err != nil {
		t.Fatal(err)
	}
	c2, err := p.Get(ts.addr)
	if err != nil {
		t.Fatal(err)
	}
	if c1 != c2 {
		t.Error("two Gets of one address gave two clients")
	}
	if e, err := c1.Stat(ctx, 1, 3, raftmeta.Target{Path: "/p"}, raftmeta.StatOptions{}); err != nil || e.Path != "/p" || e.Namespace != 3 {
		t.Errorf("Stat through the pool = %+v, %v", e, err)
	}

	p.Forget(ts.addr)
	if _, err := c1.Stat(ctx, 1, 3, raftmeta.Target{Path: "/p"}, raftmeta.StatOptions{}); !errors.Is(err, ErrUnavailable) {
		t.Errorf("Stat on a forgotten connection: %v, want ErrUnavailable", err)
	}
	c3, err := p.Get(ts.addr)
	if err != nil {
		t.Fatal(err)
	}
	if c3 == c1 {
		t.Error("Get after Forget gave the old client")
	}
	if _, err := c3.Stat(ctx, 1, 3, raftmeta.Target{Path: "/p"}, raftmeta.StatOptions{}); err != nil {
		t.Errorf("Stat on the new connection: %v", err)
	}

	if _, err := p.Get(""); !errors.Is(err, raftmeta.ErrInvalidArgument) {
		t.Errorf("Get(\"\"): %v, want ErrInvalidArgument", err)
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := c3.Stat(ctx, 1, 3, raftmeta.Target{Path: "/p"}, raftmeta.StatOptions{}); !errors.Is(err, ErrUnavailable) {
		t.Errorf("Stat after Close: %v, want ErrUnavailable", err)
	}
	if _, err := p.Get(ts.addr); !errors.Is(err, ErrClosed) {
		t.Errorf("Get after Close: %v, want ErrClosed", err)
	}
	if err := p.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

func TestPoolConfig(t *testing.T) {
	if _, err := NewPool(ClientConfig{CallTimeout: -1}); !errors.Is(err, ErrInvalidConfig) {
		t.Errorf("NewPool with a bad config: %v, want ErrInvalidConfig", err)
	}
	// Without transport credentials grpc refuses to connect.
	p, err := NewPool(ClientConfig{})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if _, err := p.Get("127.0.0.1:1"); !errors.Is(err, ErrInvalidConfig) {
		t.Errorf("Get without credentials: %v, want ErrInvalidConfig", err)
	}
}
