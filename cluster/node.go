package cluster

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"google.golang.org/grpc"

	"github.com/coffer-dev/coffer/blockstore"
	"github.com/coffer-dev/coffer/blockstore/blockrpc"
	"github.com/coffer-dev/coffer/blockstore/localstore"
	"github.com/coffer-dev/coffer/blockstore/replica"
	"github.com/coffer-dev/coffer/cluster/adminrpc"
	"github.com/coffer-dev/coffer/cluster/members"
	"github.com/coffer-dev/coffer/cluster/metarpc"
	"github.com/coffer-dev/coffer/cluster/raftmux"
	"github.com/coffer-dev/coffer/cluster/route"
	"github.com/coffer-dev/coffer/raftmeta"
)

// Node is one running cofferd node. Start it with Start; Close stops it.
type Node struct {
	cfg Config
	log *slog.Logger
	dir *dataDir

	idMu sync.Mutex
	id   identity

	db       *pebble.DB
	mux      *raftmux.Mux
	members  *members.Members
	grpcLis  net.Listener
	grpc     *grpc.Server
	httpLis  net.Listener
	http     *http.Server
	conns    *connPool
	metrics  *metrics
	metaPool *metarpc.Pool
	router   *route.Router
	keys     atomic.Pointer[adminrpc.ClusterKeys]

	// Block role.
	blocks    *localstore.Store
	blockPool *blockrpc.Pool
	repl      *replica.Replicator
	liveRepl  atomic.Pointer[replica.Replicator]

	groupsMu sync.Mutex
	groups   map[uint64]*group

	// shards is the cluster's shard count once known (0 before).
	shards   atomic.Int64
	draining atomic.Bool
	closing  atomic.Bool
	started  atomic.Bool  // the stores are open: replicas may be created
	crashed  atomic.Bool  // tests: Close as a crash would (no hand-off)
	warned   sync.Map     // warnOnce keys
	dropped  atomic.Int64 // replicas dropped by the orphan sweep
	// fatal is a problem that keeps the node from serving (readyz says it).
	fatal atomic.Pointer[error]

	ctx    context.Context
	cancel context.CancelFunc
	loops  sync.WaitGroup
	once   sync.Once
	err    error
}

// Start starts a node: it takes the data directory, opens its listeners,
// stores and the replicas it hosts, joins the cluster and starts its
// background work (bootstrap, placement, repair). It returns once the node
// is serving; use Ready or WaitReady to know when the cluster is formed.
func Start(ctx context.Context, cfg Config) (n *Node, err error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg.setDefaults()
	n = &Node{cfg: cfg, groups: map[uint64]*group{}}
	n.log = cfg.Logger.With("node", cfg.Name)
	n.ctx, n.cancel = context.WithCancel(context.Background())
	node := n // the named result is nil on error returns
	defer func() {
		if err != nil {
			node.Close()
		}
	}()
	if n.dir, n.id, err = openDataDir(cfg.Dir, cfg.Name); err != nil {
		return nil, err
	}
	n.metrics = newMetrics(n)
	creds, err := cfg.transportCredentials()
	if err != nil {
		return nil, err
	}
	n.conns = newConnPool(creds)
	// Bind every port first, so a clash is reported before anything else.
	if n.mux, err = raftmux.Listen(cfg.RaftAddr, raftmux.Config{
		Logger: n.log.With("component", "raftmux"), OnUnknownGroup: n.onUnknownGroup,
		ServerTLS: creds.server, ClientTLS: creds.client,
	}); err != nil {
		return nil, fmt.Errorf("%w: raft-addr %s: %w", ErrInvalidConfig, cfg.RaftAddr, err)
	}
	n.cfg.RaftAddr = n.mux.Addr().String()
	if n.grpcLis, err = net.Listen("tcp", cfg.GRPCAddr); err != nil {
		return nil, fmt.Errorf("%w: grpc-addr %s: %w", ErrInvalidConfig, cfg.GRPCAddr, err)
	}
	n.cfg.GRPCAddr = n.grpcLis.Addr().String()
	if n.httpLis, err = net.Listen("tcp", cfg.HTTPAddr); err != nil {
		return nil, fmt.Errorf("%w: http-addr %s: %w", ErrInvalidConfig, cfg.HTTPAddr, err)
	}
	n.cfg.HTTPAddr = n.httpLis.Addr().String()

	if n.db, err = raftmeta.OpenPebble(n.dir.statePath(), n.log); err != nil {
		return nil, fmt.Errorf("%w: state store: %w", ErrDataDir, err)
	}
	// The metadata service shares the server: its messages (a commit or
	// a stat of a file with many blocks) may be larger than a block chunk.
	srvOpts := append(blockrpc.ServerOptions(), grpc.MaxRecvMsgSize(metarpc.MaxMsgSize))
	n.grpc = grpc.NewServer(append(srvOpts, creds.serverOptions(n.metrics)...)...)
	if cfg.HasRole(RoleBlock) {
		if err := n.startBlockStore(); err != nil {
			return nil, err
		}
	}
	metarpc.NewServer(n, n.log).Register(n.grpc)
	adminrpc.NewServer(n, n.log).Register(n.grpc)

	// Reopen the replicas this node hosted before a restart.
	have, err := n.dir.groups()
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrDataDir, err)
	}
	n.groupsMu.Lock()
	for _, id := range have {
		if _, err = n.openGroupLocked(id); err != nil {
			break
		}
	}
	n.groupsMu.Unlock()
	if err != nil {
		return nil, err
	}

	meta := members.Meta{
		Roles: cfg.Roles, GRPCAddr: n.cfg.GRPCAddr, RaftAddr: n.cfg.RaftAddr, HTTPAddr: n.cfg.HTTPAddr,
		ClusterID: n.id.ClusterID, BootstrapExpect: cfg.BootstrapExpect,
	}
	if n.members, err = members.Start(ctx, members.Config{
		Name: cfg.Name, BindAddr: cfg.GossipAddr, Meta: meta, Logger: n.log,
		Fast: cfg.Fast, SecretKey: cfg.GossipKey,
	}); err != nil {
		if errors.Is(err, members.ErrInvalidConfig) || !errors.Is(err, members.ErrJoin) {
			return nil, fmt.Errorf("%w: gossip-addr %s: %w", ErrInvalidConfig, cfg.GossipAddr, err)
		}
		return nil, fmt.Errorf("gossip-addr %s: %w", cfg.GossipAddr, err)
	}
	n.cfg.GossipAddr = n.members.Addr()
	// n.cfg is final now: replicas may be created (the mux refused them
	// until here; a leader retries).
	n.started.Store(true)
	metaOpts := append(creds.dialOptions(), grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(metarpc.MaxMsgSize), grpc.MaxCallSendMsgSize(metarpc.MaxMsgSize)))
	if n.metaPool, err = metarpc.NewPool(metarpc.ClientConfig{CallTimeout: 10 * time.Second}, metaOpts...); err != nil {
		return nil, err
	}
	if n.router, err = route.New(route.Config{Leaders: routeLeaders{n}, Pool: n.metaPool, Logger: n.log.With("component", "route")}); err != nil {
		return nil, err
	}
	// Serve gRPC only now: its handlers use the membership (a not-leader
	// answer names the leader's gRPC address). Callers that came early
	// were queued by the listener's backlog or retry.
	// (The goroutine takes the server and listener as arguments: n is the
	// named result, which an error return below sets to nil.)
	go func(s *grpc.Server, l net.Listener) { _ = s.Serve(l) }(n.grpc, n.grpcLis)
	if len(cfg.Join) > 0 {
		if err := n.join(ctx); err != nil {
			return nil, err
		}
	}
	if err := n.startReplicator(); err != nil {
		return nil, err
	}
	handler, err := n.httpHandler()
	if err != nil {
		return nil, err
	}
	n.http = &http.Server{Handler: handler, ReadHeaderTimeout: 10 * time.Second}
	go func(s *http.Server, l net.Listener) { _ = s.Serve(l) }(n.http, n.httpLis)

	n.goLoop(n.identityLoop)
	n.goLoop(n.leadsLoop)
	n.goLoop(n.controlLoop)
	n.goLoop(n.orphanLoop)
	if len(cfg.Join) > 0 {
		n.goLoop(n.rejoinLoop)
	}
	n.log.Info("node started", "raft", n.cfg.RaftAddr, "grpc", n.cfg.GRPCAddr,
		"gossip", n.cfg.GossipAddr, "http", n.cfg.HTTPAddr, "roles", cfg.Roles, "cluster", n.clusterID())
	return n, nil
}

func (n *Node) goLoop(f func(ctx context.Context)) {
	n.loops.Add(1)
	go func() {
		defer n.loops.Done()
		f(n.ctx)
	}()
}

// join contacts the --join addresses. Unreachable peers are retried in the
// background (they may not be up yet); peers that all belong to another
// cluster are a fatal ErrWrongCluster.
func (n *Node) join(ctx context.Context) error {
	jctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if _, err := n.members.Join(jctx, n.cfg.Join...); err != nil {
		n.log.Warn("join: no peer reachable yet, retrying in the background", "join", n.cfg.Join, "err", err)
		return nil
	}
	return n.checkJoinedCluster(ctx)
}

// checkJoinedCluster refuses a node whose join peers all belong to another
// cluster than the one its data directory names.
func (n *Node) checkJoinedCluster(ctx context.Context) error {
	join := joinAddrs(n.cfg.Join) // resolved once, not on every poll
	deadline := time.Now().Add(2 * time.Second)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		ign := n.members.Ignored()
		others := 0
		for _, ig := range ign {
			if slices.Contains(join, ig.Addr) && ig.ClusterID != "" {
				others++
				if others == len(n.cfg.Join) {
					return fmt.Errorf("%w: this node's data directory belongs to cluster %s, but %s belongs to cluster %s",
						ErrWrongCluster, n.clusterID(), ig.Addr, ig.ClusterID)
				}
			}
		}
		if len(n.members.Nodes()) > 1 {
			return nil
		}
		time.Sleep(50 * time.Millisecond) // poll interval while gossip merges
	}
	return nil
}

// joinAddrs resolves --join addresses to IP:port, as gossip reports them.
func joinAddrs(join []string) []string {
	var out []string
	for _, j := range join {
		out = append(out, j)
		if a, err := net.ResolveTCPAddr("tcp", j); err == nil {
			out = append(out, a.String())
		}
	}
	return out
}

// rejoinLoop keeps trying the --join addresses while the node sees no
// peer (they were down at start, or the node was partitioned away).
func (n *Node) rejoinLoop(ctx context.Context) {
	t := time.NewTicker(pick(n.cfg.Fast, 500*time.Millisecond, 5*time.Second))
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if len(n.members.Nodes()) > 1 {
			continue
		}
		jctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		if _, err := n.members.Join(jctx, n.cfg.Join...); err == nil {
			if err := n.checkJoinedCluster(ctx); errors.Is(err, ErrWrongCluster) {
				n.log.Error("refusing to join", "err", err)
				n.fatal.Store(&err)
			}
		}
		cancel()
	}
}

func (n *Node) startBlockStore() (err error) {
	n.blocks, err = localstore.Open(localstore.Config{
		Dir:          n.dir.blocksPath(),
		MinFreeBytes: n.cfg.BlockMinFreeBytes,
		Logger:       n.log.With("component", "localstore"),
		OnCorrupt: func(ref blockstore.Ref) {
			if r := n.liveRepl.Load(); r != nil {
				r.OnCorrupt(ref)
			}
		},
	})
	if err != nil {
		return fmt.Errorf("%w: block store: %w", ErrDataDir, err)
	}
	svc, err := blockrpc.NewServer(n.metrics.timedStore(n.blocks), blockrpc.ServerConfig{Logger: n.log.With("component", "blockrpc")})
	if err != nil {
		return err
	}
	svc.Register(n.grpc)
	return nil
}

func (n *Node) startReplicator() (err error) {
	if n.blockPool, err = blockrpc.NewPool(blockrpc.ClientConfig{Logger: n.log, DialOptions: n.conns.creds.dialOptions()}); err != nil {
		return err
	}
	dial := replica.DialerFunc(func(ctx context.Context, nd replica.Node) (replica.Peer, error) {
		return n.blockPool.Client(ctx, nd.Addr)
	})
	rc := replica.Config{R: n.cfg.BlockR, W: n.cfg.BlockW, Membership: newBlockMembership(n), Dialer: dial, Logger: n.log}
	if n.blocks != nil {
		// A block node's replicator also keeps its local blocks at R
		// copies (repair, scrub); elsewhere it only reads and writes.
		rc.Self, rc.Local = replica.NodeID(n.cfg.Name), n.blocks
	}
	n.repl, err = replica.New(rc)
	if err != nil {
		return err
	}
	n.repl.Start(n.ctx)
	n.liveRepl.Store(n.repl)
	return nil
}

// blockMembership is the block nodes placement uses: live members with the
// block role that are not being drained. Its Changes fire only when that
// set changes (not on every gossip update, such as a node's leaderships),
// so the repairer does not walk the store for nothing.
type blockMembership struct {
	n       *Node
	changes chan struct{}
}

func newBlockMembership(n *Node) *blockMembership {
	b := &blockMembership{n: n, changes: make(chan struct{}, 1)}
	src := n.members.Changes()
	last := fmt.Sprint(b.BlockNodes())
	n.goLoop(func(ctx context.Context) {
		for {
			select {
			case <-ctx.Done():
				return
			case <-src:
			}
			if now := fmt.Sprint(b.BlockNodes()); now != last {
				last = now
				select {
				case b.changes <- struct{}{}:
				default:
				}
			}
		}
	})
	return b
}

func (b *blockMembership) BlockNodes() []replica.Node {
	var out []replica.Node
	for _, m := range b.n.members.Nodes() {
		if m.Meta.HasRole(RoleBlock) && !m.Meta.Draining {
			out = append(out, replica.Node{ID: replica.NodeID(m.Name), Addr: m.Meta.GRPCAddr})
		}
	}
	return out
}

// Changes returns the one change channel; the replicator is its only
// reader.
func (b *blockMembership) Changes() <-chan struct{} { return b.changes }

// Blocks returns the node's replicator: the block layer as the gateway
// uses it (writes to W of R block nodes, verified reads with fallback).
func (n *Node) Blocks() *replica.Replicator { return n.repl }

// Name returns the node's name.
func (n *Node) Name() string { return n.cfg.Name }

// Addrs returns the node's bound addresses (useful with port 0).
func (n *Node) Addrs() (raftAddr, grpcAddr, gossipAddr, httpAddr string) {
	return n.cfg.RaftAddr, n.cfg.GRPCAddr, n.cfg.GossipAddr, n.cfg.HTTPAddr
}

func (n *Node) clusterID() string {
	n.idMu.Lock()
	defer n.idMu.Unlock()
	return n.id.ClusterID
}

// ClusterID returns the cluster's ID, "" until the cluster is formed.
func (n *Node) ClusterID() string { return n.clusterID() }

// Shards returns the cluster's number of shard groups, 0 until known.
func (n *Node) Shards() int { return int(n.shards.Load()) }

// Close drains and stops the node: it hands leadership of the groups it
// leads to other replicas, leaves the gossip, stops serving and closes its
// stores. It is idempotent.
func (n *Node) Close() error {
	n.once.Do(func() {
		n.closing.Store(true)
		// Stop the background loops first (this node's controller must not
		// move leaders back here), tell the others this node is stopping
		// (their controllers then move no leader here), then hand off.
		n.cancel()
		n.loops.Wait()
		if n.members != nil && !n.crashed.Load() {
			n.publish(nil)
			n.handOffLeadership(5 * time.Second)
		}
		if n.http != nil {
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
			_ = n.http.Shutdown(ctx)
			cancel()
		} else if n.httpLis != nil {
			n.httpLis.Close()
		}
		var errs []error
		if n.members != nil {
			errs = append(errs, n.members.Close())
		}
		if n.grpc != nil {
			stopGRPC(n.grpc, 3*time.Second)
		} else if n.grpcLis != nil {
			n.grpcLis.Close()
		}
		n.liveRepl.Store(nil)
		if n.repl != nil {
			errs = append(errs, n.repl.Close())
		}
		if n.blockPool != nil {
			errs = append(errs, n.blockPool.Close())
		}
		if n.metaPool != nil {
			errs = append(errs, n.metaPool.Close())
		}
		n.groupsMu.Lock()
		for id, g := range n.groups {
			n.metrics.unwatchGroup(id)
			errs = append(errs, g.close())
			delete(n.groups, id)
		}
		n.groupsMu.Unlock()
		if n.mux != nil {
			errs = append(errs, n.mux.Close())
		}
		if n.blocks != nil {
			errs = append(errs, n.blocks.Close())
		}
		if n.db != nil {
			errs = append(errs, n.db.Close())
		}
		if n.conns != nil {
			n.conns.close()
		}
		if n.dir != nil {
			n.dir.close()
		}
		n.err = errors.Join(errs...)
		n.log.Info("node stopped", "err", n.err)
	})
	return n.err
}

// stopGRPC stops s gracefully, or at once after timeout (long polls).
func stopGRPC(s *grpc.Server, timeout time.Duration) {
	done := make(chan struct{})
	go func() {
		s.GracefulStop()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(timeout):
		s.Stop()
		<-done
	}
}

// handOffLeadership transfers the leadership of every group this node
// leads to another voter, so a planned stop costs no election timeout.
func (n *Node) handOffLeadership(timeout time.Duration) {
	var wg sync.WaitGroup
	for _, g := range n.hosted() {
		r := g.raft()
		if r.State() != raftLeader {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			f := r.LeadershipTransfer()
			done := make(chan error, 1)
			go func() { done <- f.Error() }()
			select {
			case err := <-done:
				if err != nil {
					n.log.Debug("leadership hand-off failed", "group", g.id, "err", err)
				}
			case <-time.After(timeout):
			}
		}()
	}
	wg.Wait()
}
