package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/coffer-dev/coffer/cluster"
	"github.com/coffer-dev/coffer/internal/wire"
)

// devConfig is `cofferd dev`'s configuration.
type devConfig struct {
	Dir           string
	HTTPAddr      string // the first node's HTTP address (the gateway)
	AdminPassword string
	Exit          bool // stop once the cluster is ready (tests, smoke checks)
	Log           *slog.Logger
	Out           io.Writer
	// onReady, if set, is called once the cluster is ready (tests).
	onReady func(nodes []*cluster.Node, password string) error
}

// devNodes is the number of nodes of the dev cluster.
const devNodes = 3

// devLayout is kept in the data directory so a restart reuses the nodes'
// addresses (they are part of the Raft configurations).
type devLayout struct {
	Version int           `json:"version"`
	Nodes   []devNodeAddr `json:"nodes"`
}

type devNodeAddr struct {
	Name   string `json:"name"`
	Raft   string `json:"raft"`
	GRPC   string `json:"grpc"`
	Gossip string `json:"gossip"`
	HTTP   string `json:"http"`
}

// freeAddrs returns n distinct loopback addresses whose ports are free
// right now. The listeners stay open until all n are chosen, so the kernel
// cannot hand out one port twice.
func freeAddrs(n int) ([]string, error) {
	var out []string
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		defer ln.Close()
		out = append(out, ln.Addr().String())
	}
	return out, nil
}

func loadLayout(dir, httpAddr string) (*devLayout, error) {
	path := filepath.Join(dir, "dev-layout.json")
	b, err := os.ReadFile(path)
	if err == nil {
		var l devLayout
		if err := json.Unmarshal(b, &l); err != nil || l.Version != 2 || len(l.Nodes) != devNodes {
			return nil, fmt.Errorf("%s is not a layout this cofferd dev understands: remove the data directory (%s) to start afresh", path, dir)
		}
		l.Nodes[0].HTTP = httpAddr
		return &l, nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	l := &devLayout{Version: 2}
	addrs, err := freeAddrs(4 * devNodes)
	if err != nil {
		return nil, err
	}
	for i := range devNodes {
		n := devNodeAddr{Name: fmt.Sprintf("node%d", i+1)}
		for j, a := range []*string{&n.Raft, &n.GRPC, &n.Gossip, &n.HTTP} {
			*a = addrs[4*i+j]
		}
		l.Nodes = append(l.Nodes, n)
	}
	l.Nodes[0].HTTP = httpAddr
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	js, _ := json.MarshalIndent(l, "", "  ")
	return l, os.WriteFile(path, js, 0o600)
}

// adminPassword returns the password to give the first admin: the one
// asked for, else the one a previous run generated, else a new one.
func adminPassword(dir, asked string) (password string, generated bool, err error) {
	if asked != "" {
		return asked, false, nil
	}
	path := filepath.Join(dir, "dev-admin-password")
	if b, err := os.ReadFile(path); err == nil {
		return strings.TrimSpace(string(b)), false, nil
	}
	b := make([]byte, 12)
	rand.Read(b)
	password = hex.EncodeToString(b)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", false, err
	}
	return password, true, os.WriteFile(path, []byte(password+"\n"), 0o600)
}

// runDev runs a complete 3-node cluster in this process on 127.0.0.1 until
// ctx ends (or, with Exit, until it is ready).
func runDev(ctx context.Context, c devConfig) (err error) {
	layout, err := loadLayout(c.Dir, c.HTTPAddr)
	if err != nil {
		return err
	}
	password, generated, err := adminPassword(c.Dir, c.AdminPassword)
	if err != nil {
		return err
	}
	var nodes []*cluster.Node
	defer func() {
		for _, n := range nodes {
			err = errors.Join(err, n.Close())
		}
	}()
	start := time.Now()
	for i, a := range layout.Nodes {
		var join []string
		for j, b := range layout.Nodes {
			if j != i {
				join = append(join, b.Gossip)
			}
		}
		n, err := cluster.Start(ctx, cluster.Config{
			Name: a.Name, Dir: filepath.Join(c.Dir, a.Name),
			RaftAddr: a.Raft, GRPCAddr: a.GRPC, GossipAddr: a.Gossip, HTTPAddr: a.HTTP,
			Join: join, BootstrapExpect: devNodes, AdminPassword: password,
			DeadAfter: 10 * time.Second,
			Logger:    c.Log.With("dev_node", a.Name),
		})
		if err != nil {
			return fmt.Errorf("start %s: %w", a.Name, err)
		}
		nodes = append(nodes, n)
	}
	wctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	st, err := waitFormed(wctx, nodes[0], devNodes)
	if err != nil {
		return err
	}
	out := c.Out
	if out == nil {
		out = os.Stdout
	}
	printDev(out, st, layout, time.Since(start))
	fmt.Fprintf(out, "coffer dev: first admin user %q", cluster.AdminUser)
	switch {
	case generated:
		fmt.Fprintf(out, ", generated password %s (saved in %s)\n", password, filepath.Join(c.Dir, "dev-admin-password"))
	case c.AdminPassword == "":
		fmt.Fprintf(out, ", password in %s\n", filepath.Join(c.Dir, "dev-admin-password"))
	default:
		fmt.Fprintln(out, ", password as given")
	}
	if c.onReady != nil {
		if err := c.onReady(nodes, password); err != nil {
			return err
		}
	}
	if c.Exit {
		return nil
	}
	fmt.Fprintf(out, "coffer dev: running; try  COFFER_PASSWORD=… coffer --server http://%s admin cluster status ; Ctrl-C stops it (data kept in %s)\n", c.HTTPAddr, c.Dir)
	<-ctx.Done()
	return nil
}

// waitFormed waits until every group has a leader and min(3, nodes)
// voters, as n sees it.
func waitFormed(ctx context.Context, n *cluster.Node, nodes int) (*wire.ClusterStatus, error) {
	var last string
	for {
		st, err := n.Status(ctx)
		if err == nil {
			err = n.Ready()
		}
		if err == nil {
			err = cluster.CheckFormed(st, min(3, nodes))
		}
		if err == nil && !leadersSpread(st) {
			err = errors.New("leaders not spread yet")
		}
		if err == nil {
			return st, nil
		}
		last = err.Error()
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("cluster not formed (%s): %w", last, ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// leadersSpread reports whether every node leads within one group of the
// others.
func leadersSpread(st *wire.ClusterStatus) bool {
	leads := map[string]int{}
	for _, n := range st.Nodes {
		leads[n.Name] = 0
	}
	for _, g := range st.Groups {
		leads[g.Leader]++
	}
	lo, hi := 1<<30, 0
	for _, v := range leads {
		lo, hi = min(lo, v), max(hi, v)
	}
	return hi-lo <= 1
}

func printDev(w io.Writer, st *wire.ClusterStatus, l *devLayout, took time.Duration) {
	fmt.Fprintf(w, "coffer dev: cluster %s ready in %.1fs: %d nodes, system group + %d shard groups, 3 replicas each\n",
		st.ClusterID, took.Seconds(), len(st.Nodes), st.Shards)
	for _, a := range l.Nodes {
		fmt.Fprintf(w, "  %s  raft %s  grpc %s  gossip %s  http %s\n", a.Name, a.Raft, a.GRPC, a.Gossip, a.HTTP)
	}
	leads := map[string]int{}
	for _, g := range st.Groups {
		leads[g.Leader]++
	}
	fmt.Fprintf(w, "coffer dev: group leaders per node: %v\n", leads)
	fmt.Fprintf(w, "coffer dev: HTTP on http://%s (the user API /v1/... as in docs/API.md; /healthz, /readyz, /metrics, /v1/admin/...)\n", l.Nodes[0].HTTP)
}
