package sysgroup

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"

	"github.com/coffer-dev/coffer/internal/raftgroup"
	"github.com/coffer-dev/coffer/raftmeta"
	"github.com/hashicorp/raft"
)

// Group is the system group's replica on this node: the Raft instance and
// its state machine. Commands go through the leader; reads serve this
// replica's applied state.
type Group struct {
	cfg  Config
	log  *slog.Logger
	fsm  *fsm
	raft *raft.Raft

	closed atomic.Bool
	stop   chan struct{}
	// inflight is held (shared) by reads while they use the DB, so Close
	// returns only when none is left: the caller may close the DB then.
	inflight sync.RWMutex
	once     sync.Once
	closeErr error
}

// Open starts the group's replica. It checks the Raft stores against the
// state first: a missing or mismatched store is ErrCorruptStore, never a
// silent reset. A new group must then be bootstrapped once, on one replica,
// with Bootstrap.
func Open(cfg Config) (*Group, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg.setDefaults()
	log := cfg.Logger.With("component", "sysgroup", "group", cfg.GroupID)
	f, err := newFSM(cfg.DB, cfg.GroupID, cfg.dedupLimit, log)
	if err != nil {
		return nil, fmt.Errorf("open system group %d state: %w", cfg.GroupID, asCorrupt(err))
	}
	restore, err := raftgroup.CheckStores(cfg.LogStore, cfg.StableStore, cfg.SnapshotStore, f.p.Applied(), snapshotIndex)
	if err != nil {
		return nil, fmt.Errorf("open system group %d: %w: %v", cfg.GroupID, ErrCorruptStore, err)
	}
	rc, err := raftgroup.RaftConfig(cfg.LocalID, cfg.GroupID, cfg.timing(), restore, cfg.Logger)
	if err != nil {
		return nil, fmt.Errorf("%w: raft config: %v", ErrInvalidArgument, err)
	}
	g := &Group{cfg: cfg, log: log, fsm: f, stop: make(chan struct{})}
	f.p.OnFail = func(error) { g.Close() }
	r, err := raft.NewRaft(rc, f, cfg.LogStore, cfg.StableStore, cfg.SnapshotStore, cfg.Transport)
	if err != nil {
		return nil, fmt.Errorf("open system group %d: %w: start raft: %v", cfg.GroupID, ErrCorruptStore, err)
	}
	g.raft = r
	return g, nil
}

// asCorrupt maps a storage failure while opening to ErrCorruptStore.
func asCorrupt(err error) error {
	if errors.Is(err, ErrCorruptStore) {
		return err
	}
	return fmt.Errorf("%w: %v", ErrCorruptStore, err)
}

// Bootstrap creates the group with the given voters. Call it once, on one
// replica of a new group; on a group that already has state it returns
// ErrExists.
func (g *Group) Bootstrap(servers []raft.Server) error {
	if g.closed.Load() {
		return ErrClosed
	}
	err := g.raft.BootstrapCluster(raft.Configuration{Servers: servers}).Error()
	if errors.Is(err, raft.ErrCantBootstrap) {
		return fmt.Errorf("%w: system group %d is already bootstrapped", ErrExists, g.cfg.GroupID)
	}
	if errors.Is(err, raft.ErrRaftShutdown) {
		return ErrClosed
	}
	if err != nil {
		return fmt.Errorf("%w: bootstrap: %v", ErrInvalidArgument, err)
	}
	return nil
}

// Close stops the replica; it does not close the DB, the transport or the
// stores, which the caller owns. It is safe to call more than once.
func (g *Group) Close() error {
	g.once.Do(func() {
		g.closed.Store(true)
		close(g.stop)
		g.closeErr = g.raft.Shutdown().Error()
		g.inflight.Lock() // wait for reads in flight
		g.inflight.Unlock()
	})
	return g.closeErr
}

// Raft exposes the Raft instance for membership changes and status.
func (g *Group) Raft() *raft.Raft { return g.raft }

// IsLeader reports whether this replica is the group's leader now.
func (g *Group) IsLeader() bool { return g.raft.State() == raft.Leader }

// Leader returns the leader's Raft address and server ID, empty if none is
// known.
func (g *Group) Leader() (addr, id string) {
	a, i := g.raft.LeaderWithID()
	return string(a), string(i)
}

func (g *Group) notLeader() error {
	a, i := g.Leader()
	return &raftmeta.NotLeaderError{Leader: a, LeaderID: i}
}

// AppliedIndex is the Raft index of the last entry applied to the state.
func (g *Group) AppliedIndex() uint64 { return g.fsm.p.Applied() }

// WaitApplied blocks until the state has applied index (of a command or
// configuration entry), ctx ends or the group closes.
func (g *Group) WaitApplied(ctx context.Context, index uint64) error {
	return g.fsm.p.WaitApplied(ctx, index, g.stop, ErrClosed)
}

// StateHash returns a SHA-256 over every key and value of the group's state
// and the applied index it was taken at: replicas at the same index agree.
func (g *Group) StateHash() (sum [32]byte, applied uint64, err error) {
	err = g.withDB(func() error {
		snap := g.cfg.DB.NewSnapshot()
		defer snap.Close()
		sum, applied, err = stateHash(snap, g.fsm.k)
		return err
	})
	return sum, applied, err
}

// Barrier waits, on the leader, until every entry committed before it is
// applied to this replica's state, so reads after it are linearizable (as
// long as this replica stays leader). On another replica it returns a
// *raftmeta.NotLeaderError.
func (g *Group) Barrier(ctx context.Context) error {
	if g.closed.Load() {
		return ErrClosed
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if !g.IsLeader() {
		return g.notLeader()
	}
	f := g.raft.Barrier(g.cfg.ApplyTimeout)
	done, err := raftgroup.Await(ctx, f)
	if !done {
		return err
	}
	switch {
	case err == nil:
		return nil
	case errors.Is(err, raft.ErrRaftShutdown):
		return ErrClosed
	case errors.Is(err, raft.ErrNotLeader), errors.Is(err, raft.ErrLeadershipLost),
		errors.Is(err, raft.ErrLeadershipTransferInProgress):
		return g.notLeader()
	}
	return fmt.Errorf("%w: barrier: %v", raftmeta.ErrNotLeader, err)
}

// propose replicates cmd through Raft and returns its result. Errors:
// *raftmeta.NotLeaderError when this replica cannot propose (nothing was
// appended; retry at the leader); raftmeta.ErrUnknownOutcome when Raft
// failed after the command may have been appended (retry with the same
// request ID); the command's own refusal otherwise.
func (g *Group) propose(ctx context.Context, cmd *command) (*result, error) {
	if g.closed.Load() {
		return nil, ErrClosed
	}
	if err := checkRequestID(cmd.RequestID); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if !g.IsLeader() {
		return nil, g.notLeader()
	}
	cmd.Time = g.cfg.Now().UnixNano()
	data, err := encodeCommand(cmd)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalidArgument, err)
	}
	resp, err := raftgroup.Apply(ctx, g.raft, data, g.cfg.ApplyTimeout)
	if errors.Is(err, raftgroup.ErrRefused) {
		return nil, g.notLeader() // refused before it was appended
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %w", raftmeta.ErrUnknownOutcome, err)
	}
	res, ok := resp.(*result)
	if !ok || res == nil {
		return nil, fmt.Errorf("%w: no result from the state machine", raftmeta.ErrUnknownOutcome)
	}
	if err := res.err(); err != nil {
		return nil, err
	}
	if res.Cmd != cmd.Type {
		return nil, fmt.Errorf("%w: result of command type %d for a command of type %d", raftmeta.ErrUnknownOutcome, res.Cmd, cmd.Type)
	}
	return res, nil
}

// Init sets the cluster's identity, once. If the cluster is already
// initialised with the same ClusterID it returns the stored Info (so a
// retried or repeated Init is harmless); with another ClusterID it fails
// with ErrExists. A zero CreatedAt means the proposer's clock. Leader only.
func (g *Group) Init(ctx context.Context, requestID string, info Info) (*Info, error) {
	if err := checkInfo(&info); err != nil {
		return nil, err
	}
	res, err := g.propose(ctx, &command{Type: cmdInit, RequestID: requestID, Init: &info})
	if err != nil {
		return nil, err
	}
	if res.Info == nil {
		return nil, fmt.Errorf("%w: init returned no identity", ErrCorruptStore)
	}
	return res.Info, nil
}

// SetNodeState moves node name to state st and returns its record. A node
// goes only forward: unknown → active → removing → removed (final); any
// other change is ErrInvalidArgument. Setting the current state again
// succeeds and changes nothing (Since keeps its value). Leader only.
func (g *Group) SetNodeState(ctx context.Context, requestID, name string, st NodeState) (*NodeRecord, error) {
	if err := checkName(name); err != nil {
		return nil, err
	}
	switch st {
	case NodeActive, NodeRemoving, NodeRemoved:
	default:
		return nil, fmt.Errorf("%w: unknown node state %q", ErrInvalidArgument, st)
	}
	res, err := g.propose(ctx, &command{Type: cmdSetNodeState, RequestID: requestID, Node: &setNodeCmd{Name: name, State: st}})
	if err != nil {
		return nil, err
	}
	if res.Node == nil {
		return nil, fmt.Errorf("%w: node state change returned no record", ErrCorruptStore)
	}
	return res.Node, nil
}

// SetSetting sets a cluster setting; an empty value deletes it. Keys are 1
// to MaxSettingKeyLen printable ASCII characters, values at most
// MaxSettingValueLen bytes of UTF-8; at most MaxSettings exist. Leader only.
func (g *Group) SetSetting(ctx context.Context, requestID, key, value string) error {
	if err := checkSetting(key, value); err != nil {
		return err
	}
	_, err := g.propose(ctx, &command{Type: cmdSetSetting, RequestID: requestID, Setting: &setSettingCmd{Key: key, Value: value}})
	return err
}

// MarkAdminCreated records that the first admin user exists
// (Info.AdminCreated). ErrNotInitialised before Init. Leader only.
func (g *Group) MarkAdminCreated(ctx context.Context, requestID string) error {
	_, err := g.propose(ctx, &command{Type: cmdMarkAdminCreated, RequestID: requestID})
	return err
}

// withDB runs fn, which reads the DB, unless the group is closed; Close
// waits for it, so the caller may close the DB once Close returns.
func (g *Group) withDB(fn func() error) error {
	g.inflight.RLock()
	defer g.inflight.RUnlock()
	if g.closed.Load() {
		return ErrClosed
	}
	if err := g.fsm.p.Err(); err != nil {
		return fmt.Errorf("%w: state machine stopped: %v", ErrCorruptStore, err)
	}
	return asRead(fn())
}

// asRead maps a storage failure during a read to ErrCorruptStore.
func asRead(err error) error {
	if err != nil && errors.Is(err, errStore) {
		return fmt.Errorf("%w: %v", ErrCorruptStore, err)
	}
	return err
}

// Info returns the cluster's identity as this replica has applied it, or
// ErrNotInitialised before Init.
func (g *Group) Info() (*Info, error) {
	in := new(Info)
	err := g.withDB(func() error {
		ok, err := getJSON(g.cfg.DB, g.fsm.k.info(), in)
		if err == nil && !ok {
			err = ErrNotInitialised
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	return in, nil
}

// Nodes returns every node record this replica has applied (removed nodes
// included), sorted by name (byte order).
func (g *Group) Nodes() ([]NodeRecord, error) {
	var out []NodeRecord
	err := g.withDB(func() error {
		lo, hi := g.fsm.k.TagBounds(tagNode)
		return scan(g.cfg.DB, lo, hi, func(k, v []byte) (bool, error) {
			var rec NodeRecord
			if err := jsonUnmarshal(k, v, &rec); err != nil {
				return false, err
			}
			out = append(out, rec)
			return true, nil
		})
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// Node returns node name's record, or ErrNotFound.
func (g *Group) Node(name string) (*NodeRecord, error) {
	if err := checkName(name); err != nil {
		return nil, err
	}
	rec := new(NodeRecord)
	err := g.withDB(func() error {
		ok, err := getJSON(g.cfg.DB, g.fsm.k.node(name), rec)
		if err == nil && !ok {
			err = fmt.Errorf("%w: node %q", ErrNotFound, name)
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	return rec, nil
}

// Settings returns every cluster setting this replica has applied.
func (g *Group) Settings() (map[string]string, error) {
	out := make(map[string]string)
	err := g.withDB(func() error {
		lo, hi := g.fsm.k.TagBounds(tagSetting)
		return scan(g.cfg.DB, lo, hi, func(k, v []byte) (bool, error) {
			out[string(k[len(lo):])] = string(v)
			return true, nil
		})
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}
