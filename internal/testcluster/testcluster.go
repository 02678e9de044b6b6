// Package testcluster starts in-process Coffer clusters for the tests of
// the client side (the sync engine and the coffer CLI); only tests import
// it, so the client binary links none of the server.
package testcluster

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"path/filepath"
	"testing"
	"time"

	"github.com/coffer-dev/coffer/client"
	"github.com/coffer-dev/coffer/cluster"
	"github.com/coffer-dev/coffer/raftmeta"
)

// AdminPassword is the first admin's password in every test cluster.
const AdminPassword = "correct horse battery"

// Cluster is a running in-process cluster.
type Cluster struct {
	Nodes []*cluster.Node
	// Addrs are the gateways' base URLs (http://127.0.0.1:port).
	Addrs []string
}

// Start starts n nodes (1 or 3) with Fast timings on loopback, waits until
// every node is ready and the admin can log in, and closes them at the
// end of the test. With one node, blocks have one replica.
func Start(t testing.TB, n int) *Cluster {
	t.Helper()
	if n != 1 && n != 3 {
		t.Fatalf("testcluster: %d nodes; 1 or 3", n)
	}
	base := t.TempDir()
	start := func(name string, join []string) *cluster.Node {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		cfg := cluster.Config{
			Name: name, Dir: filepath.Join(base, name),
			RaftAddr: "127.0.0.1:0", GRPCAddr: "127.0.0.1:0", GossipAddr: "127.0.0.1:0", HTTPAddr: "127.0.0.1:0",
			Join: join, BootstrapExpect: n, Shards: 2,
			AdminPassword: AdminPassword,
			Password:      raftmeta.PasswordParams{Time: 1, MemoryKiB: 1024, Threads: 1},
			Fast:          true, BlockMinFreeBytes: -1,
			Logger: slog.New(slog.DiscardHandler),
		}
		if n == 1 {
			cfg.BlockR, cfg.BlockW, cfg.GroupReplicas = 1, 1, 1
		}
		node, err := cluster.Start(ctx, cfg)
		if err != nil {
			t.Fatalf("testcluster: start %s: %v", name, err)
		}
		t.Cleanup(func() { node.Close() })
		return node
	}
	c := &Cluster{}
	n1 := start("n1", nil)
	c.Nodes = append(c.Nodes, n1)
	_, _, seed, _ := n1.Addrs()
	for i := 2; i <= n; i++ {
		c.Nodes = append(c.Nodes, start(fmt.Sprintf("n%d", i), []string{seed}))
	}
	for _, node := range c.Nodes {
		waitFor(t, 90*time.Second, node.Name()+" ready", node.Ready)
		_, _, _, h := node.Addrs()
		c.Addrs = append(c.Addrs, "http://"+h)
	}
	admin := c.clientFor(t, client.Config{})
	// The first admin is created just after the cluster forms.
	waitFor(t, 60*time.Second, "admin login", func() error {
		_, err := admin.Login(context.Background(), "admin", AdminPassword)
		return err
	})
	return c
}

func (c *Cluster) clientFor(t testing.TB, cfg client.Config) *client.Client {
	t.Helper()
	cfg.Servers = c.Addrs
	cl, err := client.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return cl
}

// Admin returns a client with the admin's Basic credentials.
func (c *Cluster) Admin(t testing.TB) *client.Client {
	return c.clientFor(t, client.Config{User: "admin", Password: AdminPassword})
}

// User returns a client with name's Basic credentials.
func (c *Cluster) User(t testing.TB, name, password string) *client.Client {
	return c.clientFor(t, client.Config{User: name, Password: password})
}

// AddUser creates a user (not an admin, no quota) and returns a client
// with its Basic credentials.
func (c *Cluster) AddUser(t testing.TB, name, password string) *client.Client {
	t.Helper()
	body, _ := json.Marshal(map[string]any{"name": name, "password": password})
	req, err := http.NewRequest(http.MethodPost, c.Addrs[0]+"/v1/admin/users", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.SetBasicAuth("admin", AdminPassword)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("testcluster: create user %s: %v", name, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		msg, _ := io.ReadAll(resp.Body)
		t.Fatalf("testcluster: create user %s: %s %s", name, resp.Status, msg)
	}
	return c.User(t, name, password)
}

// waitFor polls cond until it returns nil or the timeout passes.
func waitFor(t testing.TB, timeout time.Duration, what string, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("testcluster: %s: not done after %v: %v", what, timeout, err)
		}
		time.Sleep(50 * time.Millisecond) // poll interval
	}
}
