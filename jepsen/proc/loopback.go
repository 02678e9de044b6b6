//go:build unix

package proc

import (
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"path/filepath"
	"strconv"
	"syscall"
)

// The ports LoopbackSpec tries first: cofferd's defaults, so that in a
// log the port says the listener and the address says the node.
const (
	RaftPort   = 7100
	GRPCPort   = 7200
	GossipPort = 7300
	HTTPPort   = 8080
)

// LoopbackSpecs returns specs for n nodes named n1..nN for a run without
// network namespaces (no root needed): see LoopbackSpec. dir, if not
// empty, holds the nodes' data directories (each spec's Dir is
// dir/<name>; Config.Dir/nodes is the Cluster's default); if empty, the
// Cluster picks them.
func LoopbackSpecs(n int, dir string) ([]NodeSpec, error) {
	var out []NodeSpec
	ips := map[string]bool{}
	for len(out) < n {
		s, err := LoopbackSpec("n"+strconv.Itoa(len(out)+1), dir)
		if err != nil {
			return nil, err
		}
		host, _, _ := net.SplitHostPort(s.HTTPAddr)
		if host != "127.0.0.1" && ips[host] {
			continue // the same random address twice: draw again
		}
		ips[host] = true
		out = append(out, s)
	}
	return out, nil
}

// LoopbackSpec returns a spec for one node whose four listeners are on a
// loopback address of its own, a random 127.A.B.C (Linux routes all of
// 127.0.0.0/8 to the loopback device), at the default ports RaftPort,
// GRPCPort, GossipPort (TCP and UDP) and HTTPPort. Each port was free a
// moment ago; one that is taken (say by a wildcard listener) is replaced
// by a free one. Where only 127.0.0.1 can be bound, every listener gets a
// free port there instead, with a small race against other programs
// taking it before the node starts. dir is as for LoopbackSpecs.
func LoopbackSpec(name, dir string) (NodeSpec, error) {
	s := NodeSpec{Name: name}
	if dir != "" {
		s.Dir = filepath.Join(dir, name)
	}
	var last error
	for range 20 {
		ip := fmt.Sprintf("127.%d.%d.%d", 1+rand.IntN(254), rand.IntN(256), 1+rand.IntN(254))
		addrs, err := bindFour(ip, true)
		if errors.Is(err, syscall.EADDRNOTAVAIL) {
			addrs, err = bindFour("127.0.0.1", false)
		}
		if err == nil {
			s.RaftAddr, s.GRPCAddr, s.GossipAddr, s.HTTPAddr = addrs[0], addrs[1], addrs[2], addrs[3]
			return s, nil
		}
		last = err
	}
	return s, fmt.Errorf("no free loopback ports for node %s: %w", name, last)
}

// bindFour binds the four listeners of a node on ip (the gossip one on
// TCP and UDP), at the default ports if fixed and they are free, and
// returns their addresses once all are chosen and released.
func bindFour(ip string, fixed bool) ([]string, error) {
	var open []io.Closer
	defer func() {
		for _, c := range open {
			c.Close()
		}
	}()
	var out []string
	for _, port := range []int{RaftPort, GRPCPort, GossipPort, HTTPPort} {
		udp := port == GossipPort
		var addr string
		var err error
		if fixed {
			addr, err = bindPort(ip, port, udp, &open)
		}
		if !fixed || errors.Is(err, syscall.EADDRINUSE) {
			for range 20 { // port 0: the kernel picks; its UDP twin may be taken
				if addr, err = bindPort(ip, 0, udp, &open); !errors.Is(err, syscall.EADDRINUSE) {
					break
				}
			}
		}
		if err != nil {
			return nil, err
		}
		out = append(out, addr)
	}
	return out, nil
}

// bindPort listens on ip:port over TCP (and over UDP at the same port if
// udp), adds the listeners to open, and returns the address.
func bindPort(ip string, port int, udp bool, open *[]io.Closer) (string, error) {
	l, err := net.Listen("tcp", net.JoinHostPort(ip, strconv.Itoa(port)))
	if err != nil {
		return "", err
	}
	*open = append(*open, l)
	addr := l.Addr().String()
	if udp {
		u, err := net.ListenPacket("udp", addr)
		if err != nil {
			return "", err
		}
		*open = append(*open, u)
	}
	return addr, nil
}
