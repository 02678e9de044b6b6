// Package raftmux carries the Raft traffic of many groups over one TCP
// listener: each connection starts with a header naming its group.
package raftmux

import (
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"
)

// Sentinel errors (test with errors.Is).
var (
	// ErrInvalidConfig: a Config failed validation.
	ErrInvalidConfig = errors.New("invalid raftmux config")
	// ErrGroupTaken: a group ID is already registered on this mux.
	ErrGroupTaken = errors.New("raft group already registered")
	// ErrClosed: the mux or the group's stream layer is closed.
	ErrClosed = errors.New("raftmux closed")
)

// Header layout: Magic, one version byte, the group ID as 8 big-endian bytes.
const (
	// Magic opens every multiplexed connection.
	Magic = "CRMX"
	// Version is the header version this package writes and accepts.
	Version byte = 1
	// HeaderLen is the length of a connection header in bytes.
	HeaderLen = len(Magic) + 1 + 8
)

// Defaults for Config.
const (
	DefaultHeaderTimeout = 5 * time.Second
	DefaultBacklog       = 16
)

// Config configures a Mux.
type Config struct {
	// Logger receives the mux's logs (nil: discard).
	Logger *slog.Logger
	// HeaderTimeout bounds how long an inbound connection may take to send
	// its header (default 5s).
	HeaderTimeout time.Duration
	// Backlog is how many connections may wait for one group's Accept
	// (default 16); beyond it, new connections for the group are closed.
	Backlog int
	// OnUnknownGroup, if set, is called (from the connection's own
	// goroutine, with no mux lock held) when a connection names a group that
	// is not registered. It may register the group (open the local replica)
	// and return true: the connection is then queued on it. Otherwise the
	// connection is refused and counted. This is how a node creates the
	// replica of a group a leader has just added it to.
	OnUnknownGroup func(id uint64) bool
	// ServerTLS, if set, makes the listener speak TLS (with
	// ClientAuth set, mutual TLS); ClientTLS is what Dial uses. The
	// handshake happens within the header timeouts.
	ServerTLS *tls.Config
	ClientTLS *tls.Config
}

// Validate reports every problem with the configuration at once. Zero
// values are valid: they mean the defaults.
func (c Config) Validate() error {
	var errs []error
	if c.HeaderTimeout < 0 {
		errs = append(errs, fmt.Errorf("HeaderTimeout %v: must not be negative", c.HeaderTimeout))
	}
	if c.Backlog < 0 {
		errs = append(errs, fmt.Errorf("Backlog %d: must not be negative", c.Backlog))
	}
	if len(errs) > 0 {
		return fmt.Errorf("raftmux: %w: %w", ErrInvalidConfig, errors.Join(errs...))
	}
	return nil
}

func (c *Config) setDefaults() {
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.HeaderTimeout == 0 {
		c.HeaderTimeout = DefaultHeaderTimeout
	}
	if c.Backlog == 0 {
		c.Backlog = DefaultBacklog
	}
}

// appendHeader appends the header naming group to b.
func appendHeader(b []byte, group uint64) []byte {
	b = append(b, Magic...)
	b = append(b, Version)
	return binary.BigEndian.AppendUint64(b, group)
}

// Header problems found by parseHeader.
var (
	errBadMagic   = errors.New("bad magic")
	errBadVersion = errors.New("unsupported version")
	errShort      = errors.New("short header")
)

// parseHeader returns the group a header names.
func parseHeader(h []byte) (uint64, error) {
	if len(h) < HeaderLen {
		return 0, errShort
	}
	if string(h[:len(Magic)]) != Magic {
		return 0, errBadMagic
	}
	if v := h[len(Magic)]; v != Version {
		return 0, fmt.Errorf("%w %d", errBadVersion, v)
	}
	return binary.BigEndian.Uint64(h[len(Magic)+1:]), nil
}

// Stats are the mux's counters since Listen.
type Stats struct {
	// Accepted connections handed to a group's Accept queue.
	Accepted uint64
	// RefusedBadHeader: bad magic or version, a short header, no header
	// within HeaderTimeout, or (with ServerTLS) a failed TLS handshake.
	RefusedBadHeader uint64
	// RefusedUnknownGroup: the header named a group not registered here.
	RefusedUnknownGroup uint64
	// RefusedBacklogFull: the group's Accept queue was full.
	RefusedBacklogFull uint64
}

// Mux accepts connections on one listener and hands each to the group its
// header names. It is safe for concurrent use.
type Mux struct {
	ln  net.Listener
	cfg Config
	log *slog.Logger

	mu     sync.Mutex
	closed bool
	groups map[uint64]*StreamLayer
	conns  map[*conn]struct{} // every open conn the mux accepted or dialed

	wg sync.WaitGroup // accept loop and header readers

	accepted, badHeader, unknownGroup, backlogFull atomic.Uint64
}

// Listen listens on the TCP address addr and starts accepting.
func Listen(addr string, cfg Config) (*Mux, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg.setDefaults()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("raftmux: listen: %w", err)
	}
	if cfg.ServerTLS != nil {
		ln = tls.NewListener(ln, cfg.ServerTLS)
	}
	m := &Mux{
		ln:     ln,
		cfg:    cfg,
		log:    cfg.Logger.With("component", "raftmux", "addr", ln.Addr().String()),
		groups: make(map[uint64]*StreamLayer),
		conns:  make(map[*conn]struct{}),
	}
	m.wg.Add(1)
	go m.acceptLoop()
	return m, nil
}

// Addr is the address the mux listens on.
func (m *Mux) Addr() net.Addr { return m.ln.Addr() }

// Stats returns the mux's counters.
func (m *Mux) Stats() Stats {
	return Stats{
		Accepted:            m.accepted.Load(),
		RefusedBadHeader:    m.badHeader.Load(),
		RefusedUnknownGroup: m.unknownGroup.Load(),
		RefusedBacklogFull:  m.backlogFull.Load(),
	}
}

// Close stops the listener, closes every group's StreamLayer and every
// connection the mux accepted or dialed, and waits for its goroutines.
// It is idempotent.
func (m *Mux) Close() error {
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return nil
	}
	m.closed = true
	groups := make([]*StreamLayer, 0, len(m.groups))
	for _, g := range m.groups {
		groups = append(groups, g)
	}
	conns := make([]*conn, 0, len(m.conns))
	for c := range m.conns {
		conns = append(conns, c)
	}
	m.mu.Unlock()

	err := m.ln.Close()
	for _, g := range groups {
		g.Close()
	}
	for _, c := range conns {
		c.Close()
	}
	m.wg.Wait()
	if err != nil && !errors.Is(err, net.ErrClosed) {
		return fmt.Errorf("raftmux: close: %w", err)
	}
	return nil
}

// Group registers group id and returns its StreamLayer, for
// raft.NewNetworkTransportWithConfig. Closing the StreamLayer unregisters
// the group. Registering an id that is registered is an error wrapping
// ErrGroupTaken; on a closed mux, ErrClosed.
func (m *Mux) Group(id uint64) (*StreamLayer, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return nil, fmt.Errorf("raftmux: group %d: %w", id, ErrClosed)
	}
	if _, ok := m.groups[id]; ok {
		return nil, fmt.Errorf("raftmux: group %d already registered: %w", id, ErrGroupTaken)
	}
	g := &StreamLayer{
		mux:     m,
		id:      id,
		backlog: make(chan net.Conn, m.cfg.Backlog),
		done:    make(chan struct{}),
	}
	m.groups[id] = g
	return g, nil
}

func (m *Mux) acceptLoop() {
	defer m.wg.Done()
	var delay time.Duration
	for {
		nc, err := m.ln.Accept()
		if err != nil {
			if m.isClosed() || errors.Is(err, net.ErrClosed) {
				return
			}
			// Temporary trouble (out of file descriptors, ...): back off.
			if delay == 0 {
				delay = 5 * time.Millisecond
			} else if delay *= 2; delay > time.Second {
				delay = time.Second
			}
			m.log.Warn("accept failed", "error", err, "retry_in", delay)
			time.Sleep(delay)
			continue
		}
		delay = 0
		c := m.track(nc)
		if c == nil {
			return // closed meanwhile; track closed nc
		}
		m.wg.Add(1)
		go m.route(c)
	}
}

func (m *Mux) isClosed() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.closed
}

// track wraps nc so the mux can close it on Close; it returns nil (and
// closes nc) if the mux is closed.
func (m *Mux) track(nc net.Conn) *conn {
	c := &conn{Conn: nc, mux: m}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		nc.Close()
		return nil
	}
	m.conns[c] = struct{}{}
	return c
}

func (m *Mux) untrack(c *conn) {
	m.mu.Lock()
	delete(m.conns, c)
	m.mu.Unlock()
}

// route reads c's header and queues c on its group, or closes it.
func (m *Mux) route(c *conn) {
	defer m.wg.Done()
	remote := c.RemoteAddr().String()
	var h [HeaderLen]byte
	_ = c.SetReadDeadline(time.Now().Add(m.cfg.HeaderTimeout))
	_, err := io.ReadFull(c, h[:])
	if err != nil {
		c.Close()
		m.badHeader.Add(1)
		var ne net.Error
		switch {
		case errors.As(err, &ne) && ne.Timeout():
			m.log.Debug("refused connection: no header in time", "remote", remote, "timeout", m.cfg.HeaderTimeout)
		default:
			m.log.Debug("refused connection: header not read", "remote", remote, "error", err)
		}
		return
	}
	id, err := parseHeader(h[:])
	if err != nil {
		c.Close()
		m.badHeader.Add(1)
		m.log.Warn("refused connection: bad header", "remote", remote, "error", err)
		return
	}
	if err := c.SetReadDeadline(time.Time{}); err != nil {
		c.Close()
		m.badHeader.Add(1)
		return
	}

	m.mu.Lock()
	g, ok := m.groups[id]
	m.mu.Unlock()
	if !ok && m.cfg.OnUnknownGroup != nil && m.cfg.OnUnknownGroup(id) {
		m.mu.Lock()
		g, ok = m.groups[id]
		m.mu.Unlock()
	}
	m.mu.Lock()
	if ok && m.groups[id] != g {
		g, ok = m.groups[id]
	}
	queued := false
	if ok {
		select {
		case g.backlog <- c:
			queued = true
			m.accepted.Add(1) // before Accept can see c
		default:
		}
	}
	m.mu.Unlock()
	switch {
	case !ok:
		c.Close()
		m.unknownGroup.Add(1)
		m.log.Debug("refused connection: unknown group", "remote", remote, "group", id)
	case !queued:
		c.Close()
		m.backlogFull.Add(1)
		m.log.Warn("refused connection: group backlog full", "remote", remote, "group", id, "backlog", m.cfg.Backlog)
	}
}

// unregister removes g and closes the connections still queued on it.
func (m *Mux) unregister(g *StreamLayer) {
	m.mu.Lock()
	if m.groups[g.id] == g {
		delete(m.groups, g.id)
	}
	m.mu.Unlock()
	// No route sends to g.backlog any more: it sends under m.mu only while
	// g is registered.
	for {
		select {
		case c := <-g.backlog:
			c.Close()
		default:
			return
		}
	}
}

// conn is a connection the mux tracks until it is closed.
type conn struct {
	net.Conn
	mux  *Mux
	once sync.Once
}

// Close closes the connection and stops tracking it.
func (c *conn) Close() error {
	var err error
	c.once.Do(func() {
		err = c.Conn.Close()
		c.mux.untrack(c)
	})
	return err
}

// StreamLayer is one group's view of the mux: a raft.StreamLayer whose
// Accept yields the inbound connections that named the group and whose
// Dial opens connections that name it.
type StreamLayer struct {
	mux     *Mux
	id      uint64
	backlog chan net.Conn
	done    chan struct{}
	once    sync.Once
}

var _ raft.StreamLayer = (*StreamLayer)(nil)

// ID is the group's ID.
func (s *StreamLayer) ID() uint64 { return s.id }

// Accept waits for the next inbound connection for the group. After Close
// it returns an error wrapping ErrClosed.
func (s *StreamLayer) Accept() (net.Conn, error) {
	select {
	case <-s.done:
		return nil, s.closedErr()
	default:
	}
	select {
	case c := <-s.backlog:
		return c, nil
	case <-s.done:
		return nil, s.closedErr()
	}
}

func (s *StreamLayer) closedErr() error {
	return fmt.Errorf("raftmux: group %d: %w", s.id, ErrClosed)
}

// Close unregisters the group: later connections for it are refused, and
// the ones queued for Accept are closed. Connections already returned by
// Accept or Dial are the caller's to close. The mux stays open. Close is
// idempotent.
func (s *StreamLayer) Close() error {
	s.once.Do(func() {
		close(s.done)
		s.mux.unregister(s)
	})
	return nil
}

// Addr is the mux's listen address (the one peers dial).
func (s *StreamLayer) Addr() net.Addr { return s.mux.Addr() }

// Dial connects to the mux at address and sends the header naming the
// group; timeout bounds both.
func (s *StreamLayer) Dial(address raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	select {
	case <-s.done:
		return nil, s.closedErr()
	default:
	}
	nc, err := net.DialTimeout("tcp", string(address), timeout)
	if err != nil {
		return nil, fmt.Errorf("raftmux: group %d: dial %s: %w", s.id, address, err)
	}
	if s.mux.cfg.ClientTLS != nil {
		nc = tls.Client(nc, s.mux.cfg.ClientTLS)
	}
	c := s.mux.track(nc)
	if c == nil {
		return nil, fmt.Errorf("raftmux: group %d: %w", s.id, ErrClosed)
	}
	if timeout > 0 {
		_ = c.SetWriteDeadline(time.Now().Add(timeout))
	}
	if _, err := c.Write(appendHeader(make([]byte, 0, HeaderLen), s.id)); err != nil {
		c.Close()
		return nil, fmt.Errorf("raftmux: group %d: send header to %s: %w", s.id, address, err)
	}
	if err := c.SetWriteDeadline(time.Time{}); err != nil {
		c.Close()
		return nil, fmt.Errorf("raftmux: group %d: %w", s.id, err)
	}
	return c, nil
}
