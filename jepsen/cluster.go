package jepsen

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/http"
	"net/netip"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/coffer-dev/coffer/client"
	"github.com/coffer-dev/coffer/cluster"
	"github.com/coffer-dev/coffer/jepsen/netns"
	"github.com/coffer-dev/coffer/jepsen/proc"
)

// testbed is a running cluster: its processes, its network (nil on
// loopback), the spare node a member change adds, and an admin client.
type testbed struct {
	log       *slog.Logger
	net       *netns.Net
	pc        *proc.Cluster
	spare     proc.NodeSpec
	spareHost int // the spare's network host
	adminPw   string
	admin     *client.Client
	shards    int

	mu   sync.Mutex
	live []int       // indices in pc of the nodes in the cluster
	host map[int]int // node index → network host
}

// liveNodes returns the indices of the nodes in the cluster now.
func (tb *testbed) liveNodes() []int {
	tb.mu.Lock()
	defer tb.mu.Unlock()
	return slices.Clone(tb.live)
}

// hostOf returns node i's network host.
func (tb *testbed) hostOf(i int) int {
	tb.mu.Lock()
	defer tb.mu.Unlock()
	return tb.host[i]
}

// hostMap returns a copy of the node → host map.
func (tb *testbed) hostMap() map[int]int {
	tb.mu.Lock()
	defer tb.mu.Unlock()
	return maps.Clone(tb.host)
}

func (tb *testbed) addLive(i, host int) {
	tb.mu.Lock()
	defer tb.mu.Unlock()
	tb.live = append(tb.live, i)
	tb.host[i] = host
}

func (tb *testbed) removeLive(i int) {
	tb.mu.Lock()
	defer tb.mu.Unlock()
	tb.live = slices.DeleteFunc(tb.live, func(x int) bool { return x == i })
}

// removedNames are the names of the nodes a member change removed.
func (tb *testbed) removedNames() map[string]bool {
	out := map[string]bool{}
	for i := range tb.pc.Len() {
		if tb.pc.Removed(i) {
			out[tb.pc.Spec(i).Name] = true
		}
	}
	return out
}

// Ports every node uses inside its own namespace.
const (
	raftPort   = 7100
	grpcPort   = 7200
	gossipPort = 7300
	httpPort   = 8080
)

// startTestbed builds the network (if namespaced) and starts the nodes,
// then waits until the cluster is formed and returns an admin client.
func startTestbed(ctx context.Context, cfg Config, dir string, namespaced bool) (tb *testbed, err error) {
	tb = &testbed{log: cfg.Logger, host: map[int]int{}, shards: cfg.Shards}
	defer func() {
		if err != nil {
			tb.close()
			tb = nil
		}
	}()
	pw := make([]byte, 12)
	rand.Read(pw)
	tb.adminPw = hex.EncodeToString(pw)
	var specs []proc.NodeSpec
	if namespaced {
		// Leftovers of runs whose harness died (never a live run's).
		if err := netns.Sweep(ctx, netns.DefaultPrefix, cfg.Logger); err != nil {
			cfg.Logger.Warn("sweeping old test networks", "err", err)
		}
		tb.net, err = netns.Create(ctx, netns.Config{Hosts: cfg.Nodes + 1, Logger: cfg.Logger})
		if err != nil {
			return tb, fmt.Errorf("network: %w", err)
		}
		for _, h := range tb.net.Hosts() {
			addr := func(port int) string { return netip.AddrPortFrom(h.Addr, uint16(port)).String() }
			specs = append(specs, proc.NodeSpec{Name: h.Name,
				RaftAddr: addr(raftPort), GRPCAddr: addr(grpcPort), GossipAddr: addr(gossipPort), HTTPAddr: addr(httpPort),
				Wrap: []string{"ip", "netns", "exec", h.NS}})
		}
	} else {
		specs, err = proc.LoopbackSpecs(cfg.Nodes+1, filepath.Join(dir, "nodes"))
		if err != nil {
			return tb, err
		}
	}
	for i := range specs {
		specs[i].AdminPassword = tb.adminPw
		specs[i].Shards = cfg.Shards
	}
	tb.spare, tb.spareHost = specs[cfg.Nodes], cfg.Nodes
	tb.pc, err = proc.New(proc.Config{Binary: cfg.Binary, Dir: dir, Nodes: specs[:cfg.Nodes], Logger: cfg.Logger,
		ReadyTimeout: 90 * time.Second})
	if err != nil {
		return tb, err
	}
	for i := range cfg.Nodes {
		tb.live = append(tb.live, i)
		tb.host[i] = i
	}
	if err := tb.pc.Start(ctx); err != nil {
		return tb, fmt.Errorf("starting the nodes: %w", err)
	}
	tb.admin, _, err = tb.login(ctx, "admin", tb.adminPw, tb.urls(), 10*time.Second)
	if err != nil {
		return tb, fmt.Errorf("admin login: %w", err)
	}
	if err := tb.waitFormed(ctx, cfg.Nodes, 90*time.Second); err != nil {
		return tb, err
	}
	return tb, nil
}

// urls are the gateways of the live nodes.
func (tb *testbed) urls() []string {
	var u []string
	for _, i := range tb.liveNodes() {
		u = append(u, tb.pc.HTTPURL(i))
	}
	return u
}

// login returns a client with a session of name, retrying while the
// cluster settles.
func (tb *testbed) login(ctx context.Context, name, pw string, servers []string, timeout time.Duration) (*client.Client, string, error) {
	c, err := client.New(client.Config{Servers: servers, Timeout: timeout})
	if err != nil {
		return nil, "", err
	}
	var s *client.Session
	err = retry(ctx, 60*time.Second, func() error {
		var err error
		s, err = c.Login(ctx, name, pw)
		return err
	})
	if err != nil {
		return nil, "", err
	}
	c, err = client.New(client.Config{Servers: servers, Token: s.Token, Timeout: timeout})
	return c, s.Token, err
}

// waitFormed waits until every group has a leader and voters voters.
func (tb *testbed) waitFormed(ctx context.Context, voters int, limit time.Duration) error {
	return retry(ctx, limit, func() error {
		st, err := tb.admin.ClusterStatus(ctx)
		if err != nil {
			return err
		}
		return cluster.CheckFormed(st, min(voters, 3))
	})
}

// waitHealthy waits until every live node answers /readyz with 200.
func (tb *testbed) waitHealthy(ctx context.Context, limit time.Duration) error {
	hc := &http.Client{Timeout: 3 * time.Second}
	for _, i := range tb.liveNodes() {
		url := tb.pc.HTTPURL(i) + "/readyz"
		err := retry(ctx, limit, func() error {
			resp, err := hc.Get(url)
			if err != nil {
				return err
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				return fmt.Errorf("%s: %s", url, resp.Status)
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("node %s is not healthy: %w", tb.pc.Spec(i).Name, err)
		}
	}
	return nil
}

func (tb *testbed) close() {
	if tb.pc != nil {
		if err := tb.pc.Close(); err != nil {
			tb.log.Warn("closing the nodes", "err", err)
		}
	}
	if tb.net != nil {
		if err := tb.net.Close(context.Background()); err != nil {
			tb.log.Warn("removing the network", "err", err)
		}
	}
}

// retry calls f until it returns nil, ctx ends or limit passes, pausing
// 100 ms → 2 s between tries; it returns f's last error.
func retry(ctx context.Context, limit time.Duration, f func() error) error {
	deadline := time.Now().Add(limit)
	pause := 100 * time.Millisecond
	for {
		err := f()
		if err == nil {
			return nil
		}
		if time.Now().Add(pause).After(deadline) {
			return fmt.Errorf("after %v: %w", limit, err)
		}
		select {
		case <-ctx.Done():
			return errors.Join(ctx.Err(), err)
		case <-time.After(pause):
		}
		pause = min(2*pause, 2*time.Second)
	}
}
