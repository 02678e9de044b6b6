package raftmux

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

// waitFor polls cond until it holds or timeout passes.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func newMux(t *testing.T, cfg Config) *Mux {
	t.Helper()
	m, err := Listen("127.0.0.1:0", cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

func newGroup(t *testing.T, m *Mux, id uint64) *StreamLayer {
	t.Helper()
	g, err := m.Group(id)
	if err != nil {
		t.Fatal(err)
	}
	return g
}

// acceptWithin runs Accept and fails the test if it does not return a conn
// within timeout.
func acceptWithin(t *testing.T, g *StreamLayer, timeout time.Duration) net.Conn {
	t.Helper()
	type res struct {
		c   net.Conn
		err error
	}
	ch := make(chan res, 1)
	go func() {
		c, err := g.Accept()
		ch <- res{c, err}
	}()
	select {
	case r := <-ch:
		if r.err != nil {
			t.Fatalf("accept: %v", r.err)
		}
		t.Cleanup(func() { r.c.Close() })
		return r.c
	case <-time.After(timeout):
		g.Close() // unblocks the goroutine
		t.Fatalf("no connection accepted within %v", timeout)
		return nil
	}
}

// waitServerClose waits until the server side closes c (a read returns an
// error that is not a timeout).
func waitServerClose(t *testing.T, c net.Conn, timeout time.Duration) {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(timeout))
	var b [1]byte
	n, err := c.Read(b[:])
	var ne net.Error
	if n > 0 || err == nil || (errors.As(err, &ne) && ne.Timeout()) {
		t.Fatalf("server did not close the connection within %v: n=%d err=%v", timeout, n, err)
	}
}

func TestHeaderRoundTrip(t *testing.T) {
	for _, id := range []uint64{0, 1, 42, 1 << 40, math.MaxUint64} {
		h := appendHeader(nil, id)
		if len(h) != HeaderLen || HeaderLen != 13 {
			t.Fatalf("header length %d, HeaderLen %d; want 13", len(h), HeaderLen)
		}
		got, err := parseHeader(h)
		if err != nil || got != id {
			t.Errorf("parseHeader(appendHeader(%d)) = %d, %v", id, got, err)
		}
	}
	// The byte layout is the wire format: pin it.
	want := []byte{'C', 'R', 'M', 'X', 1, 0, 0, 0, 0, 0, 0, 0x01, 0x02}
	if h := appendHeader(nil, 0x0102); !bytes.Equal(h, want) {
		t.Errorf("appendHeader(0x0102) = %x, want %x", h, want)
	}
}

func TestParseHeaderErrors(t *testing.T) {
	good := appendHeader(nil, 7)
	badMagic := append([]byte("CRMY"), good[4:]...)
	badVersion := append([]byte(nil), good...)
	badVersion[4] = 2
	for _, tc := range []struct {
		name string
		h    []byte
		want error
	}{
		{"empty", nil, errShort},
		{"short", good[:12], errShort},
		{"bad magic", badMagic, errBadMagic},
		{"bad version", badVersion, errBadVersion},
		{"version zero", append(append([]byte("CRMX"), 0), good[5:]...), errBadVersion},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := parseHeader(tc.h); !errors.Is(err, tc.want) {
				t.Errorf("parseHeader(%x) = %v, want %v", tc.h, err, tc.want)
			}
		})
	}
}

func TestConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  Config
		ok   bool
	}{
		{"zero is defaults", Config{}, true},
		{"explicit", Config{HeaderTimeout: time.Second, Backlog: 1}, true},
		{"negative timeout", Config{HeaderTimeout: -1}, false},
		{"negative backlog", Config{Backlog: -1}, false},
		{"both", Config{HeaderTimeout: -1, Backlog: -1}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.cfg.Validate()
			if tc.ok != (err == nil) {
				t.Fatalf("Validate() = %v, want ok=%v", err, tc.ok)
			}
			if err != nil && !errors.Is(err, ErrInvalidConfig) {
				t.Errorf("error %v does not wrap ErrInvalidConfig", err)
			}
			if _, lerr := Listen("127.0.0.1:0", tc.cfg); !tc.ok && !errors.Is(lerr, ErrInvalidConfig) {
				t.Errorf("Listen accepted an invalid config: %v", lerr)
			}
		})
	}
	if err := (Config{HeaderTimeout: -1, Backlog: -1}).Validate(); err == nil ||
		!bytes.Contains([]byte(err.Error()), []byte("HeaderTimeout")) || !bytes.Contains([]byte(err.Error()), []byte("Backlog")) {
		t.Errorf("Validate does not report every problem: %v", err)
	}
}

func TestRefusals(t *testing.T) {
	m := newMux(t, Config{HeaderTimeout: 10 * time.Second})
	newGroup(t, m, 1)
	header := func(magic string, version byte, id uint64) []byte {
		h := append([]byte(magic), version)
		return append(h, appendHeader(nil, id)[5:]...)
	}
	for _, tc := range []struct {
		name    string
		send    []byte
		counter func(Stats) uint64
	}{
		{"bad magic", header("XRMX", Version, 1), func(s Stats) uint64 { return s.RefusedBadHeader }},
		{"bad version", header(Magic, Version+1, 1), func(s Stats) uint64 { return s.RefusedBadHeader }},
		{"unknown group", appendHeader(nil, 99), func(s Stats) uint64 { return s.RefusedUnknownGroup }},
		{"short header then close", []byte("CRMX\x01\x00"), func(s Stats) uint64 { return s.RefusedBadHeader }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := m.Stats()
			c, err := net.Dial("tcp", m.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			if _, err := c.Write(tc.send); err != nil {
				t.Fatal(err)
			}
			if len(tc.send) < HeaderLen {
				if err := c.(*net.TCPConn).CloseWrite(); err != nil {
					t.Fatal(err)
				}
			}
			waitServerClose(t, c, 5*time.Second)
			waitFor(t, 5*time.Second, "refusal counted", func() bool { return tc.counter(m.Stats()) == tc.counter(before)+1 })
			if got := m.Stats().Accepted; got != before.Accepted {
				t.Errorf("Accepted went from %d to %d", before.Accepted, got)
			}
		})
	}
}

func TestSilentClientDoesNotBlockOthers(t *testing.T) {
	const timeout = 2 * time.Second
	m := newMux(t, Config{HeaderTimeout: timeout})
	g := newGroup(t, m, 1)
	start := time.Now()
	silent, err := net.Dial("tcp", m.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	// A partial header must not hold the accept loop either.
	if _, err := silent.Write([]byte("CR")); err != nil {
		t.Fatal(err)
	}

	c, err := g.Dial(raft.ServerAddress(m.Addr().String()), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	acceptWithin(t, g, timeout/2)
	if elapsed := time.Since(start); elapsed >= timeout {
		t.Fatalf("valid connection accepted only after %v, the header timeout", elapsed)
	}

	waitServerClose(t, silent, 5*timeout)
	if elapsed := time.Since(start); elapsed < timeout {
		t.Errorf("silent client closed after %v, before the header timeout %v", elapsed, timeout)
	}
	waitFor(t, 5*time.Second, "timeout counted", func() bool { return m.Stats().RefusedBadHeader == 1 })
	if s := m.Stats(); s.Accepted != 1 {
		t.Errorf("stats %+v, want 1 accepted", s)
	}
}

func TestBacklogFull(t *testing.T) {
	m := newMux(t, Config{Backlog: 1})
	g := newGroup(t, m, 1)
	addr := raft.ServerAddress(m.Addr().String())
	c1, err := g.Dial(addr, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c1.Close()
	waitFor(t, 5*time.Second, "first queued", func() bool { return m.Stats().Accepted == 1 })
	c2, err := g.Dial(addr, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	waitServerClose(t, c2, 5*time.Second)
	waitFor(t, 5*time.Second, "overflow counted", func() bool { return m.Stats().RefusedBacklogFull == 1 })
	// The queued one is still delivered, and the queue has room again.
	s1 := acceptWithin(t, g, 5*time.Second)
	if _, err := c1.Write([]byte("x")); err != nil {
		t.Fatal(err)
	}
	var b [1]byte
	if _, err := io.ReadFull(s1, b[:]); err != nil || b[0] != 'x' {
		t.Fatalf("read %q, %v", b[:], err)
	}
	c3, err := g.Dial(addr, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c3.Close()
	acceptWithin(t, g, 5*time.Second)
}

func TestGroupRegistration(t *testing.T) {
	m := newMux(t, Config{})
	g := newGroup(t, m, 5)
	if g.ID() != 5 || g.Addr().String() != m.Addr().String() {
		t.Errorf("ID %d Addr %v, want 5 and %v", g.ID(), g.Addr(), m.Addr())
	}
	if _, err := m.Group(5); !errors.Is(err, ErrGroupTaken) {
		t.Fatalf("second Group(5) = %v, want ErrInvalidArgument", err)
	}

	// A connection queued but never accepted is closed with the group.
	addr := raft.ServerAddress(m.Addr().String())
	queued, err := g.Dial(addr, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer queued.Close()
	waitFor(t, 5*time.Second, "queued", func() bool { return m.Stats().Accepted == 1 })
	if err := g.Close(); err != nil {
		t.Fatal(err)
	}
	g.Close() // idempotent
	waitServerClose(t, queued, 5*time.Second)
	if _, err := g.Accept(); !errors.Is(err, ErrClosed) {
		t.Errorf("Accept after Close = %v, want ErrClosed", err)
	}
	if _, err := g.Dial(addr, time.Second); !errors.Is(err, ErrClosed) {
		t.Errorf("Dial after Close = %v, want ErrClosed", err)
	}

	// Later connections for the group are refused; the mux still serves.
	other := newGroup(t, m, 6)
	late, err := other.Dial(addr, time.Second) // dials as group 6...
	if err != nil {
		t.Fatal(err)
	}
	late.Close()
	raw, err := net.Dial("tcp", string(addr)) // ...and this one as group 5
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	if _, err := raw.Write(appendHeader(nil, 5)); err != nil {
		t.Fatal(err)
	}
	waitServerClose(t, raw, 5*time.Second)
	waitFor(t, 5*time.Second, "unknown group counted", func() bool { return m.Stats().RefusedUnknownGroup == 1 })

	// The id can be registered again.
	g2 := newGroup(t, m, 5)
	c, err := g2.Dial(addr, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	acceptWithin(t, g2, 5*time.Second)
}

func TestMuxClose(t *testing.T) {
	m, err := Listen("127.0.0.1:0", Config{})
	if err != nil {
		t.Fatal(err)
	}
	g := newGroup(t, m, 1)
	addr := raft.ServerAddress(m.Addr().String())
	dialed, err := g.Dial(addr, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	accepted := acceptWithin(t, g, 5*time.Second)
	silent, err := net.Dial("tcp", string(addr))
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()

	acceptErr := make(chan error, 1)
	go func() {
		_, err := g.Accept()
		acceptErr <- err
	}()
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	if err := m.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	select {
	case err := <-acceptErr:
		if !errors.Is(err, ErrClosed) {
			t.Errorf("Accept = %v, want ErrClosed", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Accept still blocked after mux Close")
	}
	// Every connection the mux handed out, and the one awaiting a header,
	// is closed.
	for name, c := range map[string]net.Conn{"dialed": dialed, "accepted": accepted} {
		if _, err := c.Write([]byte("x")); !errors.Is(err, net.ErrClosed) {
			t.Errorf("%s conn: write after mux Close = %v, want net.ErrClosed", name, err)
		}
	}
	waitServerClose(t, silent, 5*time.Second)
	if _, err := m.Group(2); !errors.Is(err, ErrClosed) {
		t.Errorf("Group after Close = %v, want ErrClosed", err)
	}
	if _, err := g.Dial(addr, time.Second); err == nil {
		t.Error("Dial to a closed mux succeeded")
	}
}

func TestDialAcceptTwoMuxesTwoGroups(t *testing.T) {
	a, b := newMux(t, Config{}), newMux(t, Config{})
	groups := []uint64{1, 2}
	ga := map[uint64]*StreamLayer{}
	gb := map[uint64]*StreamLayer{}
	for _, id := range groups {
		ga[id], gb[id] = newGroup(t, a, id), newGroup(t, b, id)
	}
	exchange := func(from, to *StreamLayer, toMux *Mux, id uint64) {
		t.Helper()
		c, err := from.Dial(raft.ServerAddress(toMux.Addr().String()), time.Second)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		s := acceptWithin(t, to, 5*time.Second)
		ping := []byte(fmt.Sprintf("ping group %d", id))
		pong := []byte(fmt.Sprintf("pong group %d", id))
		if _, err := c.Write(ping); err != nil {
			t.Fatal(err)
		}
		got := make([]byte, len(ping))
		if _, err := io.ReadFull(s, got); err != nil || !bytes.Equal(got, ping) {
			t.Fatalf("group %d: server read %q, %v", id, got, err)
		}
		if _, err := s.Write(pong); err != nil {
			t.Fatal(err)
		}
		got = make([]byte, len(pong))
		if _, err := io.ReadFull(c, got); err != nil || !bytes.Equal(got, pong) {
			t.Fatalf("group %d: client read %q, %v", id, got, err)
		}
	}
	for _, id := range groups {
		exchange(ga[id], gb[id], b, id)
		exchange(gb[id], ga[id], a, id)
	}
	for _, m := range []*Mux{a, b} {
		if s := m.Stats(); s != (Stats{Accepted: 2}) {
			t.Errorf("mux %v stats %+v, want 2 accepted and nothing refused", m.Addr(), s)
		}
	}
}

func TestOnUnknownGroupOpensTheGroup(t *testing.T) {
	var server *Mux
	var opened atomic.Uint64
	var sl atomic.Pointer[StreamLayer]
	srv, err := Listen("127.0.0.1:0", Config{OnUnknownGroup: func(id uint64) bool {
		if id != 7 {
			return false
		}
		l, err := server.Group(id)
		if err != nil {
			return false
		}
		sl.Store(l)
		opened.Add(1)
		return true
	}})
	if err != nil {
		t.Fatal(err)
	}
	server = srv
	defer srv.Close()
	cli, err := Listen("127.0.0.1:0", Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	g7, err := cli.Group(7)
	if err != nil {
		t.Fatal(err)
	}
	c, err := g7.Dial(raft.ServerAddress(srv.Addr().String()), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Write([]byte("hi")); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for sl.Load() == nil && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if sl.Load() == nil {
		t.Fatal("group 7 was not opened")
	}
	in, err := sl.Load().Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	buf := make([]byte, 2)
	if _, err := io.ReadFull(in, buf); err != nil || string(buf) != "hi" {
		t.Fatalf("read %q, %v", buf, err)
	}
	// A group the hook declines is refused.
	g8, _ := cli.Group(8)
	c8, err := g8.Dial(raft.ServerAddress(srv.Addr().String()), time.Second)
	if err == nil {
		defer c8.Close()
		for srv.Stats().RefusedUnknownGroup == 0 && time.Now().Before(deadline) {
			time.Sleep(5 * time.Millisecond)
		}
	}
	if srv.Stats().RefusedUnknownGroup != 1 || opened.Load() != 1 {
		t.Fatalf("refused %d, opened %d", srv.Stats().RefusedUnknownGroup, opened.Load())
	}
}
