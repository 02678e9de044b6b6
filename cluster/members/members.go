// Package members is the cluster's membership: nodes join over memberlist
// gossip and publish their roles and service addresses; it tells the rest
// of the node which peers are alive.
package members

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/hashicorp/memberlist"

	"github.com/coffer-dev/coffer/blockstore/replica"
)

// Sentinel errors (test with errors.Is).
var (
	// ErrInvalidConfig: a Config failed validation.
	ErrInvalidConfig = errors.New("invalid members config")
	// ErrJoin: none of the given members could be reached.
	ErrJoin = errors.New("could not join the cluster")
	// ErrClosed: the membership is closed.
	ErrClosed = errors.New("members closed")
)

// closeLeaveTimeout bounds how long Close waits for its leave message to
// go out.
const closeLeaveTimeout = time.Second

// State is a member's state as memberlist last reported it.
type State int

// The states of a member. Memberlist raises no event when it suspects a
// node, so a suspected member stays StateAlive (and listed) until it is
// declared dead.
const (
	StateAlive State = iota
	StateDead
	StateLeft
	// StateSuspect: memberlist suspects the node (reported by All only).
	StateSuspect
)

// String returns "alive", "dead" or "left".
func (s State) String() string {
	switch s {
	case StateAlive:
		return "alive"
	case StateDead:
		return "dead"
	case StateLeft:
		return "left"
	case StateSuspect:
		return "suspect"
	}
	return "State(" + strconv.Itoa(int(s)) + ")"
}

// Member is one node of the cluster.
type Member struct {
	// Name is the node's Config.Name.
	Name string
	// Addr is the node's gossip address (HOST:PORT).
	Addr string
	// Meta is what the node publishes.
	Meta Meta
	// State is the node's state.
	State State
	// Since is when this node last saw the member join, die or leave.
	Since time.Time
}

// Members is a running membership: the local node gossiping with its
// peers. Its methods are safe for concurrent use.
type Members struct {
	log  *slog.Logger
	ml   *memberlist.Memberlist
	d    *delegate
	addr string

	lifeMu sync.Mutex // serialises Leave, Close and kill (memberlist panics on Leave after Shutdown)
	metaMu sync.Mutex // serialises SetMeta (memberlist's UpdateNode is not safe to call concurrently)
	closed bool
}

var _ replica.Membership = (*Members)(nil)

// Start validates cfg, starts gossiping on cfg.BindAddr and joins
// cfg.Join. If cfg.Join is not empty and none of it can be reached, Start
// shuts the node down and returns an error wrapping ErrJoin.
func Start(ctx context.Context, cfg Config) (*Members, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	log = log.With("component", "members", "node", cfg.Name)
	meta, err := encodeMeta(cfg.Meta)
	if err != nil {
		return nil, fmt.Errorf("members: %w: %w", ErrInvalidConfig, err)
	}
	d := &delegate{
		log:       log,
		self:      cfg.Name,
		clusterID: cfg.Meta.ClusterID,
		meta:      meta,
		gone:      make(map[string]Member),
		now:       time.Now,
		nodes:     make(map[string]Member),
		ignored:   make(map[string]string),
		ignoredAt: make(map[string]Ignored),
	}
	ml, err := memberlist.Create(cfg.memberlistConfig(log, d))
	if err != nil {
		return nil, fmt.Errorf("members: start memberlist on %s: %w", cfg.BindAddr, err)
	}
	local := ml.LocalNode()
	m := &Members{
		log:  log,
		ml:   ml,
		d:    d,
		addr: net.JoinHostPort(local.Addr.String(), strconv.Itoa(int(local.Port))),
	}
	if len(cfg.Join) > 0 {
		if _, err := m.Join(ctx, cfg.Join...); err != nil {
			m.kill()
			return nil, err
		}
	}
	log.Info("membership started", "addr", m.addr)
	return m, nil
}

// Addr returns the node's gossip address (HOST:PORT), with the port
// actually bound when Config.BindAddr asked for port 0.
func (m *Members) Addr() string { return m.addr }

// Join contacts the members at addrs and merges state with them. It
// returns how many it reached; if none, the error wraps ErrJoin. If ctx
// ends first Join returns ctx's error, and the attempt finishes in the
// background (memberlist's joins are bounded by its TCP timeout).
func (m *Members) Join(ctx context.Context, addrs ...string) (int, error) {
	if m.isClosed() {
		return 0, ErrClosed
	}
	if len(addrs) == 0 {
		return 0, fmt.Errorf("members: %w: no addresses given", ErrJoin)
	}
	type result struct {
		n   int
		err error
	}
	done := make(chan result, 1)
	go func() {
		n, err := m.ml.Join(addrs)
		done <- result{n, err}
	}()
	select {
	case r := <-done:
		if r.n == 0 {
			return 0, fmt.Errorf("members: %w %v: %v", ErrJoin, addrs, r.err)
		}
		return r.n, nil
	case <-ctx.Done():
		return 0, fmt.Errorf("members: join %v: %w", addrs, ctx.Err())
	}
}

// Leave tells the cluster the node is leaving and waits up to timeout
// (0: no limit) for the message to go out. The node keeps gossiping until
// Close; the others drop it from their lists.
func (m *Members) Leave(timeout time.Duration) error {
	m.lifeMu.Lock()
	defer m.lifeMu.Unlock()
	if m.closed {
		return ErrClosed
	}
	if err := m.ml.Leave(timeout); err != nil {
		return fmt.Errorf("members: leave: %w", err)
	}
	return nil
}

// Close leaves the cluster (waiting a short time for the leave message to
// go out) and stops gossiping. It is idempotent.
func (m *Members) Close() error {
	m.lifeMu.Lock()
	defer m.lifeMu.Unlock()
	if m.closed {
		return nil
	}
	m.closed = true
	if err := m.ml.Leave(closeLeaveTimeout); err != nil {
		// The node is going away anyway: the others will notice by probing.
		m.log.Warn("leave before shutdown incomplete", "err", err)
	}
	err := m.ml.Shutdown()
	m.d.stop()
	if err != nil {
		return fmt.Errorf("members: shutdown: %w", err)
	}
	m.log.Info("membership closed")
	return nil
}

// kill stops gossiping without leaving, as a crash would (tests).
// Kill stops gossiping at once without telling the cluster, as a crash
// would: the others declare the node dead after their failure detection.
// For fault tests; Close is the normal way out.
func (m *Members) Kill() { m.kill() }

func (m *Members) kill() {
	m.lifeMu.Lock()
	defer m.lifeMu.Unlock()
	if m.closed {
		return
	}
	m.closed = true
	_ = m.ml.Shutdown()
	m.d.stop()
}

func (m *Members) isClosed() bool {
	m.lifeMu.Lock()
	defer m.lifeMu.Unlock()
	return m.closed
}

// Nodes returns the live members of this cluster, the local node
// included, sorted by name. Members whose ClusterID differs from ours (both
// non-empty) and members whose metadata cannot be read are left out.
func (m *Members) Nodes() []Member {
	return m.d.list()
}

// BlockNodes implements replica.Membership: the live members with the
// "block" role, addressed by their Meta.GRPCAddr.
// All returns every member this node knows of in this cluster, sorted by
// name: the live ones (StateSuspect while memberlist suspects them) and the
// dead or left ones it has seen, each with the time of its last change.
func (m *Members) All() []Member {
	suspect := map[string]bool{}
	if !m.isClosed() {
		for _, n := range m.ml.Members() {
			if n.State == memberlist.StateSuspect {
				suspect[n.Name] = true
			}
		}
	}
	out := m.d.list()
	for i := range out {
		if suspect[out[i].Name] {
			out[i].State = StateSuspect
		}
	}
	m.d.mu.Lock()
	for _, mb := range m.d.gone {
		mb.Meta.Roles = slices.Clone(mb.Meta.Roles)
		out = append(out, mb)
	}
	m.d.mu.Unlock()
	slices.SortFunc(out, func(a, b Member) int { return cmp.Compare(a.Name, b.Name) })
	return out
}

// Ignored is a node that gossips but is not listed: it belongs to another
// cluster, or its metadata cannot be read.
type Ignored struct {
	Name, Addr string
	// ClusterID is the other cluster's ID ("" if the meta was unreadable).
	ClusterID string
	Reason    string
}

// Ignored returns the nodes seen over gossip but left out of Nodes, sorted
// by name.
func (m *Members) Ignored() []Ignored {
	m.d.mu.Lock()
	out := make([]Ignored, 0, len(m.d.ignoredAt))
	for _, ig := range m.d.ignoredAt {
		out = append(out, ig)
	}
	m.d.mu.Unlock()
	slices.SortFunc(out, func(a, b Ignored) int { return cmp.Compare(a.Name, b.Name) })
	return out
}

// Forget drops a dead or left member from All (after it was removed from
// the cluster for good).
func (m *Members) Forget(name string) {
	m.d.mu.Lock()
	delete(m.d.gone, name)
	m.d.mu.Unlock()
}

// Local returns the local node's current Meta.
func (m *Members) Local() Meta {
	m.d.mu.Lock()
	defer m.d.mu.Unlock()
	meta, _ := decodeMeta(m.d.meta)
	return meta
}

// SetMeta replaces what the node publishes and gossips it, waiting up to
// timeout for the update to go out. Setting a ClusterID (when it was empty)
// also hides members of other clusters from then on.
func (m *Members) SetMeta(meta Meta, timeout time.Duration) error {
	enc, err := encodeMeta(meta)
	if err != nil {
		return err
	}
	m.metaMu.Lock()
	defer m.metaMu.Unlock()
	if m.isClosed() {
		return ErrClosed
	}
	m.d.mu.Lock()
	m.d.meta = enc
	if m.d.clusterID != meta.ClusterID {
		m.d.clusterID = meta.ClusterID
		for name, mb := range m.d.nodes {
			if name != m.d.self && !sameCluster(meta.ClusterID, mb.Meta.ClusterID) {
				delete(m.d.nodes, name)
				m.d.ignored[name] = "cluster " + mb.Meta.ClusterID
				m.d.ignoredAt[name] = Ignored{Name: name, Addr: mb.Addr, ClusterID: mb.Meta.ClusterID, Reason: "cluster " + mb.Meta.ClusterID}
			}
		}
		m.d.notifyLocked()
	}
	m.d.mu.Unlock()
	if err := m.ml.UpdateNode(timeout); err != nil {
		return fmt.Errorf("members: gossip meta: %w", err)
	}
	return nil
}

func (m *Members) BlockNodes() []replica.Node {
	var out []replica.Node
	for _, mb := range m.d.list() {
		if mb.Meta.HasRole(RoleBlock) {
			out = append(out, replica.Node{ID: replica.NodeID(mb.Name), Addr: mb.Meta.GRPCAddr})
		}
	}
	return out
}

// Changes implements replica.Membership: it returns a new channel that
// receives (coalesced, never blocking; buffer 1) after every join, leave
// or metadata update memberlist reports. A receiver re-reads Nodes or
// BlockNodes. Channels are never closed or released.
func (m *Members) Changes() <-chan struct{} {
	ch := make(chan struct{}, 1)
	m.d.mu.Lock()
	m.d.listeners = append(m.d.listeners, ch)
	m.d.mu.Unlock()
	return ch
}

// delegate is memberlist's Delegate and EventDelegate. It keeps its own
// copy of the members, taken in the event callbacks (which memberlist calls
// under its node lock), because the *memberlist.Node values memberlist
// hands out are mutated later without a lock the caller can take.
type delegate struct {
	log       *slog.Logger
	self      string
	clusterID string

	mu        sync.Mutex
	meta      []byte            // encoded local Meta
	gone      map[string]Member // dead or left members, with Since
	now       func() time.Time
	stopped   bool              // closed: later events (memberlist's timers still fire) are dropped
	nodes     map[string]Member // live, listable members by name
	ignored   map[string]string // name -> why it was last logged as ignored
	ignoredAt map[string]Ignored
	listeners []chan struct{}
}

var (
	_ memberlist.Delegate      = (*delegate)(nil)
	_ memberlist.EventDelegate = (*delegate)(nil)
)

// NodeMeta implements memberlist.Delegate.
func (d *delegate) NodeMeta(limit int) []byte {
	d.mu.Lock()
	defer d.mu.Unlock()
	if len(d.meta) > limit { // refused by encodeMeta; never happens
		return nil
	}
	return slices.Clone(d.meta)
}

// NotifyMsg implements memberlist.Delegate (no user messages).
func (d *delegate) NotifyMsg([]byte) {}

// GetBroadcasts implements memberlist.Delegate (no user broadcasts).
func (d *delegate) GetBroadcasts(overhead, limit int) [][]byte { return nil }

// LocalState implements memberlist.Delegate (no user state).
func (d *delegate) LocalState(join bool) []byte { return nil }

// MergeRemoteState implements memberlist.Delegate (no user state).
func (d *delegate) MergeRemoteState(buf []byte, join bool) {}

// NotifyJoin implements memberlist.EventDelegate.
func (d *delegate) NotifyJoin(n *memberlist.Node) { d.upsert(n) }

// NotifyUpdate implements memberlist.EventDelegate.
func (d *delegate) NotifyUpdate(n *memberlist.Node) { d.upsert(n) }

// NotifyLeave implements memberlist.EventDelegate.
func (d *delegate) NotifyLeave(n *memberlist.Node) {
	state := StateDead
	if n.State == memberlist.StateLeft {
		state = StateLeft
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if _, ok := d.nodes[n.Name]; !ok || d.stopped {
		return // an ignored member (the set did not change), or closed
	}
	mb := d.nodes[n.Name]
	delete(d.nodes, n.Name)
	mb.State, mb.Since = state, d.now()
	d.gone[n.Name] = mb
	d.log.Info("member gone", "member", n.Name, "state", state.String())
	d.notifyLocked()
}

func (d *delegate) upsert(n *memberlist.Node) {
	meta, err := decodeMeta(n.Meta)
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.stopped {
		return
	}
	why := ""
	switch {
	case err != nil:
		why = err.Error()
	case !sameCluster(d.clusterID, meta.ClusterID):
		why = "cluster " + meta.ClusterID
	}
	if why != "" {
		delete(d.nodes, n.Name)
		d.ignoredAt[n.Name] = Ignored{Name: n.Name, Addr: n.Address(), ClusterID: meta.ClusterID, Reason: why}
		if d.ignored[n.Name] != why {
			d.ignored[n.Name] = why
			d.log.Warn("ignoring member of another cluster or with unreadable meta",
				"member", n.Name, "addr", n.Address(), "reason", why, "cluster", d.clusterID)
		}
	} else {
		delete(d.ignored, n.Name)
		delete(d.ignoredAt, n.Name)
		delete(d.gone, n.Name)
		since := d.now()
		if old, ok := d.nodes[n.Name]; !ok {
			d.log.Info("member joined", "member", n.Name, "addr", n.Address(), "roles", meta.Roles)
		} else {
			since = old.Since
		}
		d.nodes[n.Name] = Member{Name: n.Name, Addr: n.Address(), Meta: meta, State: StateAlive, Since: since}
	}
	d.notifyLocked()
}

// stop drops every later event: after Shutdown, memberlist's suspicion
// timers may still declare members dead.
func (d *delegate) stop() {
	d.mu.Lock()
	d.stopped = true
	d.mu.Unlock()
}

func (d *delegate) notifyLocked() {
	for _, ch := range d.listeners {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
}

func (d *delegate) list() []Member {
	d.mu.Lock()
	out := make([]Member, 0, len(d.nodes))
	for _, mb := range d.nodes {
		mb.Meta.Roles = slices.Clone(mb.Meta.Roles)
		out = append(out, mb)
	}
	d.mu.Unlock()
	slices.SortFunc(out, func(a, b Member) int { return cmp.Compare(a.Name, b.Name) })
	return out
}
