package main

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"path/filepath"
	"strings"
	"sync/atomic"

	"google.golang.org/grpc"

	"github.com/coffer-dev/coffer/blockstore"
	"github.com/coffer-dev/coffer/blockstore/blockrpc"
	"github.com/coffer-dev/coffer/blockstore/localstore"
	"github.com/coffer-dev/coffer/blockstore/replica"
)

// devBlockNode is one block node of the dev cluster: a localstore under
// the data directory, served by a gRPC BlockService on 127.0.0.1, and its
// replicator (repair, scrub, repair of corrupt copies).
type devBlockNode struct {
	id    replica.NodeID
	addr  string
	store *localstore.Store
	srv   *grpc.Server
	repl  *replica.Replicator
	live  atomic.Pointer[replica.Replicator]
}

// devBlocks is the dev cluster's block layer: three block nodes and a
// gateway-side replicator (no local store) that writes each block to W=2
// of R=3 nodes.
type devBlocks struct {
	nodes   []*devBlockNode
	pool    *blockrpc.Pool
	members *replica.Static
	gw      *replica.Replicator
}

func startBlocks(ctx context.Context, dir string, addrs []string, log *slog.Logger) (b *devBlocks, err error) {
	b = &devBlocks{members: replica.NewStatic()}
	defer func() {
		if err != nil {
			b.Close()
		}
	}()
	if b.pool, err = blockrpc.NewPool(blockrpc.ClientConfig{Logger: log}); err != nil {
		return nil, err
	}
	dial := replica.DialerFunc(func(ctx context.Context, n replica.Node) (replica.Peer, error) {
		return b.pool.Client(ctx, n.Addr)
	})
	var members []replica.Node
	for i, addr := range addrs {
		n := &devBlockNode{id: replica.NodeID(fmt.Sprintf("block%d", i)), addr: addr}
		b.nodes = append(b.nodes, n)
		nlog := log.With("block_node", string(n.id))
		n.store, err = localstore.Open(localstore.Config{
			Dir:    filepath.Join(dir, fmt.Sprintf("dev%d", i), "blocks"),
			Logger: nlog,
			OnCorrupt: func(ref blockstore.Ref) {
				if r := n.live.Load(); r != nil {
					r.OnCorrupt(ref)
				}
			},
		})
		if err != nil {
			return nil, err
		}
		lis, err := net.Listen("tcp", addr)
		if err != nil {
			return nil, fmt.Errorf("block node %s on %s: %w", n.id, addr, err)
		}
		n.srv = grpc.NewServer(blockrpc.ServerOptions()...)
		svc, err := blockrpc.NewServer(n.store, blockrpc.ServerConfig{Logger: nlog})
		if err != nil {
			lis.Close()
			return nil, err
		}
		svc.Register(n.srv)
		go func() { _ = n.srv.Serve(lis) }()
		members = append(members, replica.Node{ID: n.id, Addr: addr})
	}
	b.members.Set(members...)
	for _, n := range b.nodes {
		if n.repl, err = replica.New(replica.Config{Self: n.id, Local: n.store, Membership: b.members, Dialer: dial, Logger: log.With("block_node", string(n.id))}); err != nil {
			return nil, err
		}
		n.repl.Start(ctx)
		n.live.Store(n.repl)
	}
	if b.gw, err = replica.New(replica.Config{Membership: b.members, Dialer: dial, Logger: log.With("component", "gateway-blocks")}); err != nil {
		return nil, err
	}
	b.gw.Start(ctx)
	return b, nil
}

// holders names the block nodes that hold ref.
func (b *devBlocks) holders(ctx context.Context, ref blockstore.Ref) string {
	var ids []string
	for _, n := range b.nodes {
		if has, err := n.store.Has(ctx, []blockstore.Ref{ref}); err == nil && has[0] {
			ids = append(ids, string(n.id))
		}
	}
	return strings.Join(ids, ", ")
}

func (b *devBlocks) Close() {
	if b.gw != nil {
		_ = b.gw.Close()
	}
	for _, n := range b.nodes {
		n.live.Store(nil)
		if n.repl != nil {
			_ = n.repl.Close()
		}
		if n.srv != nil {
			n.srv.Stop()
		}
		if n.store != nil {
			_ = n.store.Close()
		}
	}
	if b.pool != nil {
		_ = b.pool.Close()
	}
}
