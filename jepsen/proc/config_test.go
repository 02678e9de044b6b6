//go:build linux

package proc

import (
	"errors"
	"slices"
	"strings"
	"testing"
)

func goodSpec(name, ip string) NodeSpec {
	return NodeSpec{Name: name, RaftAddr: ip + ":7100", GRPCAddr: ip + ":7200", GossipAddr: ip + ":7300", HTTPAddr: ip + ":8080"}
}

func TestConfigValidate(t *testing.T) {
	good := Config{Binary: "/bin/cofferd", Dir: "/tmp/run", Nodes: []NodeSpec{goodSpec("n1", "127.0.0.2"), goodSpec("n2", "127.0.0.3")}}
	if err := good.Validate(); err != nil {
		t.Fatalf("good config: %v", err)
	}
	bad := Config{ReadyTimeout: -1, Nodes: []NodeSpec{
		goodSpec("n/1", "127.0.0.2"),
		{Name: "n2", RaftAddr: "0.0.0.0:7100", GRPCAddr: "127.0.0.3", GossipAddr: "localhost:7300", HTTPAddr: "127.0.0.3:70000",
			Join: []string{"nope"}, BootstrapExpect: -1, Shards: -2, Wrap: []string{"ip", ""}},
		goodSpec("n2", "127.0.0.2"),
		{Name: "n4", Dir: "/d", RaftAddr: "127.0.0.4:1", GRPCAddr: "127.0.0.4:1", GossipAddr: "127.0.0.4:3", HTTPAddr: "127.0.0.4:4"},
		{Name: "n5", Dir: "/d/", RaftAddr: "127.0.0.5:1", GRPCAddr: "127.0.0.5:2", GossipAddr: "127.0.0.5:3", HTTPAddr: "127.0.0.5:4"},
	}}
	err := bad.Validate()
	if !errors.Is(err, ErrInvalidConfig) {
		t.Fatalf("bad config: %v, want ErrInvalidConfig", err)
	}
	for _, want := range []string{
		"binary: not set", "dir: not set", "ready timeout -1ns",
		`node "n/1": name must be`,
		`node "n2": raft addr "0.0.0.0:7100": other nodes cannot dial`,
		`grpc addr "127.0.0.3": address 127.0.0.3: missing port`,
		`gossip addr "localhost:7300": not an IP address`,
		`http addr "127.0.0.3:70000": port must be`,
		`join "nope"`, "bootstrap expect -1", "shards -2", "wrap[1]: empty",
		`node "n2": name used twice`,
		`node "n2": address 127.0.0.2:7100 is also node "n/1"'s`,
		`node "n4": address 127.0.0.4:1 used twice`,
		`node "n5": data dir /d/ is also node "n4"'s`,
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
	if err := (Config{Binary: "b", Dir: "d"}).Validate(); err == nil || !strings.Contains(err.Error(), "nodes: none") {
		t.Errorf("no nodes: %v", err)
	}
	if err := goodSpec("", "127.0.0.2").Validate(); !errors.Is(err, ErrInvalidConfig) {
		t.Errorf("spec without a name: %v", err)
	}
}

func TestArgs(t *testing.T) {
	s := goodSpec("n1", "127.0.0.2")
	s.Dir, s.Shards, s.ExtraArgs = "/data/n1", 2, []string{"--log-level", "debug"}
	got := s.args(3, []string{"127.0.0.3:7300", "127.0.0.4:7300"})
	want := []string{"--name", "n1", "--dir", "/data/n1", "--raft-addr", "127.0.0.2:7100", "--grpc-addr", "127.0.0.2:7200",
		"--gossip-addr", "127.0.0.2:7300", "--http-addr", "127.0.0.2:8080", "--join", "127.0.0.3:7300", "--join", "127.0.0.4:7300",
		"--bootstrap-expect", "3", "--shards", "2", "--log-level", "debug"}
	if !slices.Equal(got, want) {
		t.Errorf("args:\n got %q\nwant %q", got, want)
	}
	s.Shards, s.ExtraArgs = 0, nil
	if got := s.args(0, nil); slices.Contains(got, "--bootstrap-expect") || slices.Contains(got, "--shards") || slices.Contains(got, "--join") {
		t.Errorf("restart args: %q", got)
	}
}

func TestNodeEnv(t *testing.T) {
	got := nodeEnv([]string{"PATH=/bin", "COFFER_DIR=/elsewhere", "COFFER_ADMIN_PASSWORD=old", "HOME=/root"}, "secret")
	want := []string{"PATH=/bin", "HOME=/root", "COFFER_ADMIN_PASSWORD=secret"}
	if !slices.Equal(got, want) {
		t.Errorf("env %q, want %q", got, want)
	}
	if got := nodeEnv([]string{"COFFER_X=1"}, ""); len(got) != 0 {
		t.Errorf("env %q, want none", got)
	}
}

func TestJoinFor(t *testing.T) {
	c, err := New(Config{Binary: "b", Dir: t.TempDir(), Nodes: []NodeSpec{goodSpec("n1", "127.0.0.2"), goodSpec("n2", "127.0.0.3"), goodSpec("n3", "127.0.0.4")}})
	if err != nil {
		t.Fatal(err)
	}
	c.nodes[2].removed = true
	if got := c.joinFor(c.nodes[0]); !slices.Equal(got, []string{"127.0.0.3:7300"}) {
		t.Errorf("join of n1: %q", got)
	}
	c.nodes[1].spec.Join = []string{"10.0.0.1:7300"}
	if got := c.joinFor(c.nodes[1]); !slices.Equal(got, []string{"10.0.0.1:7300"}) {
		t.Errorf("join of n2 (given): %q", got)
	}
	if got := c.Spec(0).Dir; !strings.HasSuffix(got, "/nodes/n1") || !strings.HasPrefix(got, "/") {
		t.Errorf("default dir %q", got)
	}
	if err := c.Restart(t.Context(), 0); !errors.Is(err, ErrNotStarted) {
		t.Errorf("Restart before Start: %v", err)
	}
	if err := c.Kill(0); !errors.Is(err, ErrNotRunning) {
		t.Errorf("Kill before Start: %v", err)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if err := c.Start(t.Context()); !errors.Is(err, ErrClosed) {
		t.Errorf("Start after Close: %v", err)
	}
}
