package cluster

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/coffer-dev/coffer/cluster/members"
)

func TestConfigValidate(t *testing.T) {
	good := Config{Name: "n1", Dir: "/tmp/x", RaftAddr: "127.0.0.1:7100", GRPCAddr: "127.0.0.1:7200",
		GossipAddr: "127.0.0.1:7300", HTTPAddr: "127.0.0.1:8080"}
	if err := good.Validate(); err != nil {
		t.Fatalf("good config: %v", err)
	}
	for _, tc := range []struct {
		name string
		edit func(*Config)
		want []string
	}{
		{"everything wrong at once", func(c *Config) {
			c.Name, c.Dir, c.Roles = "bad name", "", []string{"chef"}
			c.RaftAddr, c.GRPCAddr = "localhost:7100", "127.0.0.1:99999"
			c.GossipKey = []byte("short")
		}, []string{`name "bad name"`, "dir is required", `role "chef"`, "must be an IP", "bad port", "gossip key: 5 bytes"}},
		{"ports clash", func(c *Config) { c.GRPCAddr = "127.0.0.1:7100" }, []string{"raft-addr and grpc-addr both use port 7100"}},
		{"unspecified address", func(c *Config) { c.RaftAddr = "0.0.0.0:7100" }, []string{`raft-addr "0.0.0.0:7100": the node advertises`}},
		{"R above the node count", func(c *Config) { c.BootstrapExpect = 2 }, []string{"R=3 is larger than bootstrap-expect 2"}},
		{"W above R", func(c *Config) { c.BlockR, c.BlockW = 2, 3 }, []string{"need 1 <= W <= R"}},
		{"shards", func(c *Config) { c.Shards = MaxShards + 1 }, []string{"shards 1025"}},
		{"half a TLS setup", func(c *Config) { c.TLS = &TLSFiles{CAFile: "ca.pem"} }, []string{"tls: the CA, certificate and key files are all required"}},
		{"missing addresses", func(c *Config) { c.HTTPAddr, c.GossipAddr = "", "" }, []string{"http-addr is required", "gossip-addr is required"}},
		{"bad join", func(c *Config) { c.Join = []string{"nohost"} }, []string{`join "nohost"`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := good
			tc.edit(&c)
			err := c.Validate()
			if !errors.Is(err, ErrInvalidConfig) {
				t.Fatalf("Validate() = %v, want ErrInvalidConfig", err)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
}

func TestStartRefusesUnusableDataDir(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "d")
	a := startTestNode(t, testNodeOpts{name: "a", dir: dir})
	// The directory is locked while a runs.
	_, err := Start(context.Background(), testConfig(t, testNodeOpts{name: "a", dir: dir}))
	if !errors.Is(err, ErrDataDir) || !strings.Contains(err.Error(), "in use") {
		t.Fatalf("second node on a's directory: %v, want ErrDataDir (in use)", err)
	}
	a.Close()
	// Another node's directory is refused, naming the owner.
	_, err = Start(context.Background(), testConfig(t, testNodeOpts{name: "b", dir: dir}))
	if !errors.Is(err, ErrDataDir) || !strings.Contains(err.Error(), `belongs to node "a"`) {
		t.Fatalf("node b on a's directory: %v, want ErrDataDir naming a", err)
	}
	// A directory that cannot be written is refused at start.
	if os.Geteuid() != 0 { // root writes anywhere
		ro := filepath.Join(t.TempDir(), "ro")
		os.Mkdir(ro, 0o500)
		_, err = Start(context.Background(), testConfig(t, testNodeOpts{name: "c", dir: ro}))
		if !errors.Is(err, ErrDataDir) {
			t.Fatalf("read-only directory: %v, want ErrDataDir", err)
		}
	}
}

func TestStartRefusesBusyPort(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	cfg := testConfig(t, testNodeOpts{name: "p"})
	cfg.GRPCAddr = ln.Addr().String()
	_, err = Start(context.Background(), cfg)
	if !errors.Is(err, ErrInvalidConfig) || !strings.Contains(err.Error(), "grpc-addr "+ln.Addr().String()) {
		t.Fatalf("busy gRPC port: %v, want ErrInvalidConfig naming grpc-addr", err)
	}
	// Nothing was left behind: the directory can be used again at once.
	cfg.GRPCAddr = "127.0.0.1:0"
	n, err := Start(context.Background(), cfg)
	if err != nil {
		t.Fatalf("start after the failed start: %v", err)
	}
	n.Close()
}

// A node whose data directory belongs to cluster A, started with --join
// pointing at cluster B, is refused.
func TestJoiningAnotherClusterRefused(t *testing.T) {
	single := func(name string) (*Node, string) {
		t.Helper()
		cfg := testConfig(t, testNodeOpts{name: name, expect: 1, shards: 1})
		cfg.BlockR, cfg.BlockW, cfg.GroupReplicas = 1, 1, 1
		n, err := Start(context.Background(), cfg)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { n.Close() })
		waitFor(t, 30*time.Second, name+" forms a one-node cluster", n.Ready)
		return n, cfg.Dir
	}
	a, aDir := single("a")
	b, _ := single("b")
	if a.ClusterID() == b.ClusterID() {
		t.Fatal("two bootstraps made one cluster ID")
	}
	a.Close()
	_, _, bGossip, _ := b.Addrs()
	cfg := testConfig(t, testNodeOpts{name: "a", dir: aDir, join: []string{bGossip}})
	cfg.BlockR, cfg.BlockW = 1, 1
	_, err := Start(context.Background(), cfg)
	if !errors.Is(err, ErrWrongCluster) || !strings.Contains(err.Error(), b.ClusterID()) {
		t.Fatalf("a (cluster %s) joining b (cluster %s): %v, want ErrWrongCluster", a.ClusterID(), b.ClusterID(), err)
	}
}

func TestShouldBootstrap(t *testing.T) {
	meta := func(name string, expect int, cluster string, roles ...string) members.Member {
		if roles == nil {
			roles = []string{RoleMeta}
		}
		return members.Member{Name: name, Meta: members.Meta{Roles: roles, BootstrapExpect: expect, ClusterID: cluster}}
	}
	for _, tc := range []struct {
		name  string
		self  string
		nodes []members.Member
		want  bool
		why   string
	}{
		{"three met, smallest acts", "a", []members.Member{meta("a", 3, ""), meta("b", 3, ""), meta("c", 3, "")}, true, ""},
		{"three met, others wait", "b", []members.Member{meta("a", 3, ""), meta("b", 3, ""), meta("c", 3, "")}, false, ""},
		{"two of three", "a", []members.Member{meta("a", 3, ""), meta("b", 3, "")}, false, ""},
		{"four new nodes for three", "a", []members.Member{meta("a", 3, ""), meta("b", 3, ""), meta("c", 3, ""), meta("d", 3, "")}, false, "more than --bootstrap-expect 3"},
		{"a join-only new node does not count", "a", []members.Member{meta("a", 3, ""), meta("b", 3, ""), meta("c", 3, ""), meta("d", 0, "")}, true, ""},
		{"disagreeing expect", "a", []members.Member{meta("a", 3, ""), meta("b", 5, ""), meta("c", 3, "")}, false, "has --bootstrap-expect 5"},
		{"formed and non-meta nodes do not count", "a", []members.Member{meta("a", 3, ""), meta("b", 3, ""), meta("c", 3, ""),
			meta("0", 0, "c1"), meta("blk", 0, "", RoleBlock)}, true, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, why := shouldBootstrap(tc.self, 3, tc.nodes)
			if got != tc.want || (tc.why == "") != (why == "") || !strings.Contains(why, tc.why) {
				t.Errorf("shouldBootstrap = %v %q, want %v %q", got, why, tc.want, tc.why)
			}
		})
	}
}
