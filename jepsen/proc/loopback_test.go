//go:build linux

package proc

import (
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"path/filepath"
	"testing"
)

// LoopbackSpecs gives each node an address of its own at the default
// ports, all valid and bindable (TCP, and UDP for gossip) once returned.
func TestLoopbackSpecs(t *testing.T) {
	dir := t.TempDir()
	specs, err := LoopbackSpecs(5, dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(specs) != 5 {
		t.Fatalf("%d specs", len(specs))
	}
	if errs := checkSpecs(specs, nil); len(errs) > 0 {
		t.Fatal(errs)
	}
	hosts := map[string]bool{}
	for i, s := range specs {
		if want := "n" + string(rune('1'+i)); s.Name != want {
			t.Errorf("spec %d named %q, want %q", i, s.Name, want)
		}
		if want := filepath.Join(dir, s.Name); s.Dir != want {
			t.Errorf("%s: dir %q, want %q", s.Name, s.Dir, want)
		}
		host, port, _ := net.SplitHostPort(s.RaftAddr)
		if host == "127.0.0.1" || hosts[host] {
			t.Errorf("%s: host %s is not one of its own", s.Name, host)
		}
		hosts[host] = true
		if port != "7100" {
			t.Logf("%s: raft port %s (7100 was taken)", s.Name, port)
		}
		var open []io.Closer
		for _, a := range []string{s.RaftAddr, s.GRPCAddr, s.GossipAddr, s.HTTPAddr} {
			h, _, _ := net.SplitHostPort(a)
			if h != host {
				t.Errorf("%s: listener %s not on %s", s.Name, a, host)
			}
			l, err := net.Listen("tcp", a)
			if err != nil {
				t.Errorf("%s: %v", s.Name, err)
				continue
			}
			open = append(open, l)
		}
		u, err := net.ListenPacket("udp", s.GossipAddr)
		if err != nil {
			t.Errorf("%s: gossip UDP: %v", s.Name, err)
		} else {
			open = append(open, u)
		}
		for _, c := range open {
			c.Close()
		}
	}
	if s, err := LoopbackSpec("x", ""); err != nil || s.Dir != "" {
		t.Errorf("LoopbackSpec without dir: %+v, %v", s, err)
	}
}

// A fixed port that is taken on the chosen address is replaced by a free
// one.
func TestBindFourTakenPort(t *testing.T) {
	ip := fmt.Sprintf("127.%d.%d.%d", 1+rand.IntN(254), rand.IntN(256), 1+rand.IntN(254))
	l, err := net.Listen("tcp", ip+":7200")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	addrs, err := bindFour(ip, true)
	if err != nil {
		t.Fatal(err)
	}
	if addrs[0] != ip+":7100" || addrs[1] == ip+":7200" || addrs[2] != ip+":7300" || addrs[3] != ip+":8080" {
		t.Errorf("addrs %q", addrs)
	}
	if h, _, _ := net.SplitHostPort(addrs[1]); h != ip {
		t.Errorf("grpc addr %s not on %s", addrs[1], ip)
	}
}
