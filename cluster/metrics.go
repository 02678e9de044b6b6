package cluster

import (
	"context"
	"strconv"
	"sync"
	"time"

	"github.com/hashicorp/raft"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"google.golang.org/grpc"
	"google.golang.org/grpc/status"

	"github.com/coffer-dev/coffer/blockstore"
	"github.com/coffer-dev/coffer/raftmeta"
)

// metrics is the node's Prometheus registry (one per node, so several
// nodes in one process — cofferd dev, tests — do not collide).
type metrics struct {
	n   *Node
	reg *prometheus.Registry

	grpcCalls    *prometheus.CounterVec
	grpcSeconds  *prometheus.HistogramVec
	leaderChange *prometheus.CounterVec
	commit       *prometheus.HistogramVec
	blockOp      *prometheus.HistogramVec

	mu        sync.Mutex
	observers map[uint64]observed
}

type observed struct {
	r   *raft.Raft
	obs *raft.Observer
	ch  chan raft.Observation
}

const raftLeader = raft.Leader

func newMetrics(n *Node) *metrics {
	m := &metrics{n: n, reg: prometheus.NewRegistry(), observers: map[uint64]observed{}}
	m.grpcCalls = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "coffer_grpc_requests_total", Help: "gRPC calls served, by method and status code.",
	}, []string{"method", "code"})
	m.grpcSeconds = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "coffer_grpc_request_seconds", Help: "Time to serve a gRPC call, by method.",
		Buckets: prometheus.ExponentialBuckets(0.0005, 4, 9),
	}, []string{"method"})
	m.leaderChange = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "coffer_raft_leader_changes_total", Help: "Leader changes this node's replica observed, by group.",
	}, []string{"group"})
	m.commit = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "coffer_raft_commit_seconds",
		Help:    "Time from proposing a metadata commit on the leader to its being applied there (Raft replication, fsync and apply), by group.",
		Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14),
	}, []string{"group"})
	m.blockOp = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "coffer_block_op_seconds", Help: "Time of the local block store's operations, by op.",
		Buckets: prometheus.ExponentialBuckets(0.0005, 4, 9),
	}, []string{"op"})
	m.reg.MustRegister(m.grpcCalls, m.grpcSeconds, m.leaderChange, m.commit, m.blockOp,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		stateCollector{n})
	return m
}

// watchGroup counts a group's leader changes.
func (m *metrics) watchGroup(g *group) {
	ch := make(chan raft.Observation, 16)
	obs := raft.NewObserver(ch, false, func(o *raft.Observation) bool {
		_, ok := o.Data.(raft.LeaderObservation)
		return ok
	})
	g.raft().RegisterObserver(obs)
	m.mu.Lock()
	m.observers[g.id] = observed{g.raft(), obs, ch}
	m.mu.Unlock()
	c := m.leaderChange.WithLabelValues(strconv.FormatUint(g.id, 10))
	go func() {
		for range ch {
			c.Inc()
		}
	}()
}

// unwatchGroup stops counting a group's leader changes (before it closes).
func (m *metrics) unwatchGroup(id uint64) {
	m.mu.Lock()
	o, ok := m.observers[id]
	delete(m.observers, id)
	m.mu.Unlock()
	if ok {
		// After DeregisterObserver returns Raft sends no more: close is safe.
		o.r.DeregisterObserver(o.obs)
		close(o.ch)
	}
}

func (m *metrics) unaryInterceptor(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
	start := time.Now()
	resp, err := h(ctx, req)
	m.grpcSeconds.WithLabelValues(info.FullMethod).Observe(time.Since(start).Seconds())
	m.grpcCalls.WithLabelValues(info.FullMethod, status.Code(err).String()).Inc()
	return resp, err
}

func (m *metrics) streamInterceptor(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, h grpc.StreamHandler) error {
	start := time.Now()
	err := h(srv, ss)
	m.grpcSeconds.WithLabelValues(info.FullMethod).Observe(time.Since(start).Seconds())
	m.grpcCalls.WithLabelValues(info.FullMethod, status.Code(err).String()).Inc()
	return err
}

// timedStore times the local store's Put and Get.
func (m *metrics) timedStore(s blockstore.Store) blockstore.Store {
	return timedStore{Store: s, put: m.blockOp.WithLabelValues("put"), get: m.blockOp.WithLabelValues("get")}
}

type timedStore struct {
	blockstore.Store
	put, get prometheus.Observer
}

func (t timedStore) Put(ctx context.Context, ref blockstore.Ref, data []byte) error {
	start := time.Now()
	err := t.Store.Put(ctx, ref, data)
	t.put.Observe(time.Since(start).Seconds())
	return err
}

func (t timedStore) Get(ctx context.Context, ref blockstore.Ref) ([]byte, error) {
	start := time.Now()
	b, err := t.Store.Get(ctx, ref)
	t.get.Observe(time.Since(start).Seconds())
	return b, err
}

// timedShard times a shard's commits.
type timedShard struct {
	*raftmeta.Shard
	commit prometheus.Observer
}

func (t timedShard) Commit(ctx context.Context, r raftmeta.CommitRequest) (*raftmeta.CommitResult, error) {
	start := time.Now()
	res, err := t.Shard.Commit(ctx, r)
	if err == nil {
		t.commit.Observe(time.Since(start).Seconds())
	}
	return res, err
}

// stateCollector reports gauges read at scrape time: each hosted group's
// Raft indexes and role, gossip members by state, block store usage.
type stateCollector struct{ n *Node }

var (
	descCommit  = prometheus.NewDesc("coffer_raft_commit_index", "The replica's Raft commit index.", []string{"group"}, nil)
	descApplied = prometheus.NewDesc("coffer_raft_applied_index", "The replica's applied index.", []string{"group"}, nil)
	descLag     = prometheus.NewDesc("coffer_raft_apply_lag_entries", "Entries committed but not yet applied on this replica.", []string{"group"}, nil)
	descLeader  = prometheus.NewDesc("coffer_raft_is_leader", "1 if this replica leads its group.", []string{"group"}, nil)
	descTerm    = prometheus.NewDesc("coffer_raft_term", "The replica's current term.", []string{"group"}, nil)
	descMembers = prometheus.NewDesc("coffer_gossip_members", "Cluster members this node knows, by gossip state.", []string{"state"}, nil)
	descBlocks  = prometheus.NewDesc("coffer_block_blocks", "Blocks in the local store.", nil, nil)
	descBBytes  = prometheus.NewDesc("coffer_block_bytes", "Bytes of the local block store, by kind (live: block bytes; disk: space used).", []string{"kind"}, nil)
	descBCorr   = prometheus.NewDesc("coffer_block_corrupt_total", "Block copies that failed verification on read.", nil, nil)
)

func (c stateCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descCommit, descApplied, descLag, descLeader, descTerm, descMembers, descBlocks, descBBytes, descBCorr} {
		ch <- d
	}
}

func (c stateCollector) Collect(ch chan<- prometheus.Metric) {
	n := c.n
	for id, g := range n.hosted() {
		label := strconv.FormatUint(id, 10)
		st := g.raft().Stats()
		commit, applied := statUint(st, "commit_index"), g.applied()
		ch <- prometheus.MustNewConstMetric(descCommit, prometheus.GaugeValue, float64(commit), label)
		ch <- prometheus.MustNewConstMetric(descApplied, prometheus.GaugeValue, float64(applied), label)
		lag := 0.0
		if commit > applied {
			lag = float64(commit - applied)
		}
		ch <- prometheus.MustNewConstMetric(descLag, prometheus.GaugeValue, lag, label)
		lead := 0.0
		if g.raft().State() == raft.Leader {
			lead = 1
		}
		ch <- prometheus.MustNewConstMetric(descLeader, prometheus.GaugeValue, lead, label)
		ch <- prometheus.MustNewConstMetric(descTerm, prometheus.GaugeValue, float64(statUint(st, "term")), label)
	}
	if n.members != nil {
		counts := map[string]int{}
		for _, m := range n.members.All() {
			counts[m.State.String()]++
		}
		for _, s := range []string{"alive", "suspect", "dead", "left"} {
			ch <- prometheus.MustNewConstMetric(descMembers, prometheus.GaugeValue, float64(counts[s]), s)
		}
	}
	if n.blocks != nil {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		st, err := n.blocks.Stats(ctx)
		cancel()
		if err == nil {
			ch <- prometheus.MustNewConstMetric(descBlocks, prometheus.GaugeValue, float64(st.Blocks))
			ch <- prometheus.MustNewConstMetric(descBBytes, prometheus.GaugeValue, float64(st.Bytes), "live")
			ch <- prometheus.MustNewConstMetric(descBBytes, prometheus.GaugeValue, float64(st.DiskBytes), "disk")
			ch <- prometheus.MustNewConstMetric(descBCorr, prometheus.CounterValue, float64(st.Corrupt))
		}
	}
}
