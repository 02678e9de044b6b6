package cluster

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/coffer-dev/coffer/cluster/adminrpc"
	"github.com/coffer-dev/coffer/gateway"
	"github.com/coffer-dev/coffer/internal/wire"
	"github.com/coffer-dev/coffer/raftmeta"
)

// Ready reports whether the node can serve: the cluster is formed, this
// node knows it, and every group has a leader. The error says what is
// missing.
func (n *Node) Ready() error {
	if n.closing.Load() {
		return ErrClosed
	}
	if err := n.fatal.Load(); err != nil {
		return *err
	}
	if n.clusterID() == "" || n.Shards() == 0 {
		return fmt.Errorf("%w: the cluster is not formed yet", ErrNotReady)
	}
	for id := uint64(0); id <= uint64(n.Shards()); id++ {
		if n.leaderName(id) == "" {
			return fmt.Errorf("%w: group %d has no leader", ErrNotReady, id)
		}
	}
	return nil
}

// httpHandler serves the node's HTTP port: health, metrics, the admin API
// and, with the gateway role, the user-facing API.
func (n *Node) httpHandler() (http.Handler, error) {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		if n.closing.Load() {
			wire.WriteError(w, http.StatusServiceUnavailable, "unavailable", "shutting down")
			return
		}
		wire.WriteJSON(w, http.StatusOK, map[string]string{"status": "ok", "node": n.cfg.Name})
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		if err := n.Ready(); err != nil {
			wire.WriteError(w, http.StatusServiceUnavailable, "unavailable", err.Error())
			return
		}
		wire.WriteJSON(w, http.StatusOK, map[string]string{"status": "ready", "node": n.cfg.Name, "cluster_id": n.clusterID()})
	})
	mux.Handle("GET /metrics", promhttp.HandlerFor(n.metrics.reg, promhttp.HandlerOpts{}))
	// The gateway's authentication also guards the admin API, so it is
	// made on every node; its user routes only with the gateway role.
	gcfg := n.cfg.Gateway
	gcfg.Meta, gcfg.Blocks, gcfg.Cluster, gcfg.Logger = n.router, n.repl, gatewayCluster{n}, n.log
	gw, err := gateway.New(gcfg)
	if err != nil {
		return nil, err
	}
	if n.cfg.HasRole(RoleGateway) {
		gw.Register(mux)
	}
	mux.HandleFunc("GET /v1/admin/cluster", gw.Admin(func(w http.ResponseWriter, r *http.Request) {
		st, err := n.Status(r.Context())
		if err != nil {
			writeErr(w, err)
			return
		}
		wire.WriteJSON(w, http.StatusOK, st)
	}))
	mux.HandleFunc("POST /v1/admin/nodes/{name}/remove", gw.Admin(func(w http.ResponseWriter, r *http.Request) {
		name := r.PathValue("name")
		if err := n.RemoveNode(r.Context(), name); err != nil {
			writeErr(w, err)
			return
		}
		wire.WriteJSON(w, http.StatusAccepted, wire.RemoveNodeResult{Node: name, State: "removing"})
	}))
	mux.HandleFunc("GET /v1/admin/groups/{id}/hashes", gw.Admin(func(w http.ResponseWriter, r *http.Request) {
		id, ok := groupParam(w, r)
		if !ok {
			return
		}
		h, err := n.GroupHashes(r.Context(), id)
		if err != nil {
			writeErr(w, err)
			return
		}
		wire.WriteJSON(w, http.StatusOK, h)
	}))
	mux.HandleFunc("POST /v1/admin/groups/{id}/transfer", gw.Admin(func(w http.ResponseWriter, r *http.Request) {
		id, ok := groupParam(w, r)
		if !ok {
			return
		}
		var req wire.TransferRequest
		if !wire.ReadJSON(w, r, 4<<10, &req, true) {
			return
		}
		res, err := n.TransferLeader(r.Context(), id, req.To)
		if err != nil {
			writeErr(w, err)
			return
		}
		wire.WriteJSON(w, http.StatusOK, res)
	}))
	mux.HandleFunc("POST /v1/admin/blocks/audit", gw.Admin(func(w http.ResponseWriter, r *http.Request) {
		timeout := DefaultAuditTimeout
		if v := r.URL.Query().Get("timeout"); v != "" {
			d, err := time.ParseDuration(v)
			if err != nil || d <= 0 || d > MaxAuditTimeout {
				wire.WriteError(w, http.StatusBadRequest, "invalid_argument",
					fmt.Sprintf("timeout %q: a duration such as 90s, at most %v", v, MaxAuditTimeout))
				return
			}
			timeout = d
		}
		ctx, cancel := context.WithTimeout(r.Context(), timeout)
		defer cancel()
		res, err := n.AuditBlocks(ctx)
		if err != nil {
			writeErr(w, err)
			return
		}
		wire.WriteJSON(w, http.StatusOK, res)
	}))
	return mux, nil
}

// groupParam parses the {id} of a group route; on failure it has answered
// 400.
func groupParam(w http.ResponseWriter, r *http.Request) (uint64, bool) {
	v := r.PathValue("id")
	id, err := strconv.ParseUint(v, 10, 64)
	if err != nil {
		wire.WriteError(w, http.StatusBadRequest, "invalid_argument", fmt.Sprintf("group %q: not a group ID (0 is the system group, 1 to S the shards)", v))
		return 0, false
	}
	return id, true
}

// gatewayCluster is what the gateway needs of the node.
type gatewayCluster struct{ n *Node }

func (g gatewayCluster) Shards() int { return g.n.Shards() }

func (g gatewayCluster) SigningKey(ctx context.Context) ([]byte, error) {
	k, err := g.n.ClusterKeys(ctx)
	if err != nil {
		return nil, err
	}
	return k.SigningKey, nil
}

// writeErr maps an admin error to the HTTP error shape.
func writeErr(w http.ResponseWriter, err error) {
	switch {
	case errors.Is(err, adminrpc.ErrNotFound), errors.Is(err, raftmeta.ErrNotFound):
		wire.WriteError(w, http.StatusNotFound, "not_found", err.Error())
	case errors.Is(err, adminrpc.ErrInvalidArgument), errors.Is(err, raftmeta.ErrInvalidArgument):
		wire.WriteError(w, http.StatusBadRequest, "invalid_argument", err.Error())
	default:
		wire.WriteError(w, http.StatusServiceUnavailable, "unavailable", err.Error())
	}
}
