package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
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

// httpHandler serves the node's HTTP port: health, metrics and the admin
// API. (The user-facing gateway API joins it with the gateway issue.)
func (n *Node) httpHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		if n.closing.Load() {
			writeError(w, http.StatusServiceUnavailable, "unavailable", "shutting down")
			return
		}
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok", "node": n.cfg.Name})
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		if err := n.Ready(); err != nil {
			writeError(w, http.StatusServiceUnavailable, "unavailable", err.Error())
			return
		}
		writeJSON(w, http.StatusOK, map[string]string{"status": "ready", "node": n.cfg.Name, "cluster_id": n.clusterID()})
	})
	mux.Handle("GET /metrics", promhttp.HandlerFor(n.metrics.reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /v1/admin/cluster", n.requireAdmin(func(w http.ResponseWriter, r *http.Request) {
		st, err := n.Status(r.Context())
		if err != nil {
			writeErr(w, err)
			return
		}
		writeJSON(w, http.StatusOK, st)
	}))
	if n.cfg.HasRole(RoleGateway) {
		gw, err := gateway.New(gateway.Config{Meta: n.router, Cluster: gatewayCluster{n}, Logger: n.log, Login: n.cfg.Login})
		if err != nil { // cannot happen: the config is the package's defaults
			n.log.Error("gateway disabled", "err", err)
		} else {
			gw.Register(mux)
		}
	}
	mux.HandleFunc("POST /v1/admin/nodes/{name}/remove", n.requireAdmin(func(w http.ResponseWriter, r *http.Request) {
		name := r.PathValue("name")
		if err := n.RemoveNode(r.Context(), name); err != nil {
			writeErr(w, err)
			return
		}
		writeJSON(w, http.StatusAccepted, wire.RemoveNodeResult{Node: name, State: "removing"})
	}))
	return mux
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

// requireAdmin checks HTTP Basic credentials of an admin user against the
// user's shard. (Session tokens come with the gateway.)
func (n *Node) requireAdmin(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		name, password, ok := r.BasicAuth()
		if !ok {
			w.Header().Set("WWW-Authenticate", `Basic realm="coffer"`)
			writeError(w, http.StatusUnauthorized, "unauthenticated", "admin credentials required (HTTP Basic)")
			return
		}
		shards := n.Shards()
		if shards == 0 {
			writeError(w, http.StatusServiceUnavailable, "unavailable", "the cluster is not formed yet")
			return
		}
		shard, err := raftmeta.ShardOf(name, shards)
		if err != nil {
			writeError(w, http.StatusUnauthorized, "unauthenticated", "bad credentials")
			return
		}
		ctx, cancel := context.WithTimeout(r.Context(), 15*time.Second)
		defer cancel()
		user, err := n.router.Authenticate(ctx, shard, name, password)
		switch {
		case errors.Is(err, raftmeta.ErrBadCredentials):
			writeError(w, http.StatusUnauthorized, "unauthenticated", "bad credentials")
			return
		case err != nil:
			writeError(w, http.StatusServiceUnavailable, "unavailable", "cannot check credentials: "+err.Error())
			return
		case !user.Admin:
			writeError(w, http.StatusForbidden, "forbidden", "admin role required")
			return
		}
		h(w, r)
	}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

func writeError(w http.ResponseWriter, status int, code, msg string) {
	writeJSON(w, status, wire.Error{Code: code, Message: msg})
}

// writeErr maps an admin error to the HTTP error shape.
func writeErr(w http.ResponseWriter, err error) {
	switch {
	case errors.Is(err, adminrpc.ErrNotFound), errors.Is(err, raftmeta.ErrNotFound):
		writeError(w, http.StatusNotFound, "not_found", err.Error())
	case errors.Is(err, adminrpc.ErrInvalidArgument), errors.Is(err, raftmeta.ErrInvalidArgument):
		writeError(w, http.StatusBadRequest, "invalid_argument", err.Error())
	default:
		writeError(w, http.StatusServiceUnavailable, "unavailable", err.Error())
	}
}
