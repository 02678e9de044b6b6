package main

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/coffer-dev/coffer/blockstore"
	"github.com/coffer-dev/coffer/raftmeta"
	"github.com/coffer-dev/coffer/raftmeta/hclogslog"
	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
)

type devConfig struct {
	Dir           string
	AdminPassword string
	Exit          bool
	Log           *slog.Logger
}

// devReplica is one replica of the dev group: its own stores and a real
// TCP Raft transport on 127.0.0.1.
type devReplica struct {
	id     raft.ServerID
	addr   string
	stores *raftmeta.RaftStores
	db     *pebble.DB
	trans  *raft.NetworkTransport
	shard  *raftmeta.Shard
}

// devLayout is persisted in the data directory so a restart reuses the
// replicas' addresses (they are part of the Raft configuration).
type devLayout struct {
	Addrs      []string `json:"raft_addrs"`
	BlockAddrs []string `json:"block_addrs"`
}

// freeAddrs returns n loopback addresses with ports free right now.
func freeAddrs(n int) ([]string, error) {
	var addrs []string
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		addrs = append(addrs, ln.Addr().String())
		ln.Close()
	}
	return addrs, nil
}

func loadLayout(dir string) (*devLayout, bool, error) {
	path := filepath.Join(dir, "dev-layout.json")
	b, err := os.ReadFile(path)
	save := func(l *devLayout) error {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return err
		}
		b, _ := json.MarshalIndent(l, "", "  ")
		return os.WriteFile(path, b, 0o600)
	}
	if errors.Is(err, os.ErrNotExist) {
		l := &devLayout{}
		if l.Addrs, err = freeAddrs(3); err != nil {
			return nil, false, err
		}
		if l.BlockAddrs, err = freeAddrs(3); err != nil {
			return nil, false, err
		}
		return l, true, save(l)
	}
	if err != nil {
		return nil, false, err
	}
	l := &devLayout{}
	if err := json.Unmarshal(b, l); err != nil || len(l.Addrs) != 3 || (len(l.BlockAddrs) != 0 && len(l.BlockAddrs) != 3) {
		return nil, false, fmt.Errorf("%s is damaged: remove the data directory to start afresh", path)
	}
	if len(l.BlockAddrs) == 0 { // a data directory from before the block nodes
		if l.BlockAddrs, err = freeAddrs(3); err != nil {
			return nil, false, err
		}
		if err := save(l); err != nil {
			return nil, false, err
		}
	}
	return l, false, nil
}

func runDev(ctx context.Context, c devConfig) error {
	layout, fresh, err := loadLayout(c.Dir)
	if err != nil {
		return err
	}
	var reps []*devReplica
	defer func() {
		for _, r := range reps {
			if r.shard != nil {
				r.shard.Close()
			}
			if r.trans != nil {
				r.trans.Close()
			}
			if r.db != nil {
				r.db.Close()
			}
			if r.stores != nil {
				r.stores.Close()
			}
		}
	}()
	var servers []raft.Server
	for i, addr := range layout.Addrs {
		r := &devReplica{id: raft.ServerID(fmt.Sprintf("dev%d", i)), addr: addr}
		reps = append(reps, r)
		rdir := filepath.Join(c.Dir, string(r.id))
		log := c.Log.With("replica", string(r.id))
		if r.stores, err = raftmeta.OpenRaftStores(filepath.Join(rdir, "raft"), log); err != nil {
			return err
		}
		if r.db, err = raftmeta.OpenPebble(filepath.Join(rdir, "state"), log); err != nil {
			return err
		}
		tl := hclogslog.New(log.With("component", "raft-transport"), hclog.Warn)
		if r.trans, err = raft.NewTCPTransportWithLogger(addr, nil, 3, 5*time.Second, tl); err != nil {
			return fmt.Errorf("raft transport on %s: %w", addr, err)
		}
		r.shard, err = raftmeta.Open(raftmeta.Config{
			GroupID: 1, LocalID: r.id, DB: r.db, Transport: r.trans,
			LogStore: r.stores.Bolt, StableStore: r.stores.Bolt, SnapshotStore: r.stores.Snapshots,
			Logger: log,
		})
		if err != nil {
			return err
		}
		servers = append(servers, raft.Server{ID: r.id, Address: raft.ServerAddress(addr), Suffrage: raft.Voter})
	}
	if fresh {
		if err := reps[0].shard.Bootstrap(servers); err != nil {
			return err
		}
	}
	blocks, err := startBlocks(ctx, c.Dir, layout.BlockAddrs, c.Log)
	if err != nil {
		return err
	}
	defer blocks.Close()
	leader, err := waitLeader(ctx, reps)
	if err != nil {
		return err
	}
	fmt.Printf("coffer dev: metadata group 1 with 3 replicas on %v; leader %s\n", layout.Addrs, leader.id)
	fmt.Printf("coffer dev: 3 block nodes (gRPC) on %v; blocks written to W=2 of R=3\n", layout.BlockAddrs)
	if err := demo(ctx, c, leader.shard, blocks); err != nil {
		return err
	}
	if c.Exit {
		return nil
	}
	fmt.Println("coffer dev: running; Ctrl-C to stop (data kept in", c.Dir+")")
	<-ctx.Done()
	return nil
}

func waitLeader(ctx context.Context, reps []*devReplica) (*devReplica, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	for {
		for _, r := range reps {
			if r.shard.IsLeader() {
				if _, err := r.shard.User(ctx, "nobody", raftmeta.ReadOptions{}); err == nil || errors.Is(err, raftmeta.ErrNotFound) {
					return r, nil
				}
			}
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("no leader elected: %w", ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// demo creates the admin user on first start, writes a revision of a file
// and shows its history and the namespace's journal.
func demo(ctx context.Context, c devConfig, s *raftmeta.Shard, blocks *devBlocks) error {
	u, err := s.User(ctx, "admin", raftmeta.ReadOptions{})
	if errors.Is(err, raftmeta.ErrNotFound) {
		u, err = s.CreateUser(ctx, raftmeta.CreateUserRequest{RequestID: "dev-create-admin", Name: "admin", Password: c.AdminPassword, Admin: true})
		if err == nil {
			fmt.Printf("coffer dev: created user admin with password %s\n", c.AdminPassword)
			os.WriteFile(filepath.Join(c.Dir, "admin-password"), []byte(c.AdminPassword+"\n"), 0o600)
		}
	}
	if err != nil {
		return err
	}
	body := []byte(fmt.Sprintf("Welcome to Coffer. Written at %s.\n", time.Now().Format(time.RFC3339)))
	sum := sha256.Sum256(body)
	// Upload order: the content block first (durable on W nodes), then the
	// metadata commit that names it.
	ref := blockstore.Ref(sum)
	if err := blocks.gw.Put(ctx, ref, body); err != nil {
		return fmt.Errorf("store block: %w", err)
	}
	res, err := s.Commit(ctx, raftmeta.CommitRequest{
		RequestID: fmt.Sprintf("dev-demo-%d", time.Now().UnixNano()),
		Namespace: u.Namespace,
		Ops: []raftmeta.Op{{Kind: raftmeta.OpPut, Path: "/Welcome.txt", Size: int64(len(body)), Mtime: time.Now().UnixNano(),
			Hash: sum, Blocks: []raftmeta.Block{{Ref: sum, Size: int64(len(body))}}}},
	})
	if err != nil {
		return err
	}
	fmt.Printf("coffer dev: committed %s revision %d (journal seq %d, raft index %d)\n", res.Ops[0].Path, res.Ops[0].Rev, res.Seq, res.Index)
	revs, err := s.History(ctx, u.Namespace, raftmeta.Target{Path: "/Welcome.txt"}, raftmeta.HistoryOptions{Limit: 5})
	if err != nil {
		return err
	}
	for _, r := range revs {
		fmt.Printf("  rev %-3d %-7s %4d bytes  sha256 %s  %s\n", r.Rev, r.Op, r.Size, r.Hash.String()[:16], time.Unix(0, r.Time).Format(time.RFC3339))
	}
	got, err := blocks.gw.Get(ctx, ref)
	if err != nil {
		return fmt.Errorf("read block back: %w", err)
	}
	if sha256.Sum256(got) != sum {
		return fmt.Errorf("block %s read back with the wrong hash", ref.Short())
	}
	fmt.Printf("coffer dev: content block %s read back and verified; held by %s\n", ref.Short(), blocks.holders(ctx, ref))
	page, err := s.Changes(ctx, u.Namespace, 0, 1000, raftmeta.ReadOptions{})
	if err != nil {
		return err
	}
	fmt.Printf("coffer dev: journal head %d, %d records held\n", page.Head, len(page.Records))
	return nil
}
