package gateway

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/coffer-dev/coffer/gateway/auth"
	"github.com/coffer-dev/coffer/internal/wire"
	"github.com/coffer-dev/coffer/raftmeta"
)

// The admin API manages users. Users are sharded by name, so each call
// goes to the shard of the name it is about; the listing walks the shards
// in order.

func (s *Server) userInfo(ctx context.Context, shard uint64, u *raftmeta.User) wire.UserInfo {
	out := wire.UserInfo{Name: u.Name, ID: u.ID, Shard: shard, Admin: u.Admin, Quota: u.Quota,
		Namespace: u.Namespace, Created: u.Created.UTC().Format(time.RFC3339)}
	if ns, err := s.cfg.Meta.Namespace(ctx, shard, u.Namespace, raftmeta.ReadOptions{Stale: true}); err == nil {
		out.Used, out.Files = ns.Used, ns.Files
	}
	return out
}

// listUsers answers a page of users (?limit=N, default 1000, and
// ?page_token=…), shard by shard.
func (s *Server) listUsers(w http.ResponseWriter, r *http.Request, _ auth.Claims) {
	limit, ok := queryInt(w, r, "limit")
	if !ok {
		return
	}
	if limit == 0 || limit > 1000 {
		limit = 1000
	}
	shards := uint64(s.cfg.Cluster.Shards())
	if shards == 0 {
		wire.WriteError(w, http.StatusServiceUnavailable, "unavailable", "the cluster is not formed yet")
		return
	}
	shard, token := uint64(1), ""
	if pt := r.URL.Query().Get("page_token"); pt != "" {
		a, b, _ := strings.Cut(pt, ".")
		n, err := strconv.ParseUint(a, 10, 64)
		if err != nil || n == 0 || n > shards {
			wire.WriteError(w, http.StatusBadRequest, "invalid_argument", "bad page_token")
			return
		}
		shard, token = n, b
	}
	ctx, cancel := s.callCtx(r)
	defer cancel()
	out := wire.UserList{Users: []wire.UserInfo{}}
	for ; shard <= shards && len(out.Users) < limit; shard, token = shard+1, "" {
		for {
			p, err := s.cfg.Meta.Users(ctx, shard, raftmeta.UsersOptions{Limit: limit - len(out.Users), PageToken: token})
			if err != nil {
				s.writeMetaError(w, r, err)
				return
			}
			for i := range p.Users {
				out.Users = append(out.Users, s.userInfo(ctx, shard, &p.Users[i]))
			}
			token = p.NextPageToken
			if token == "" || len(out.Users) >= limit {
				break
			}
		}
		if token != "" {
			out.NextPageToken = fmt.Sprintf("%d.%s", shard, token)
			break
		}
	}
	if out.NextPageToken == "" && shard <= shards && len(out.Users) >= limit {
		out.NextPageToken = fmt.Sprintf("%d.", shard)
	}
	wire.WriteJSON(w, http.StatusOK, out)
}

func (s *Server) createUser(w http.ResponseWriter, r *http.Request, cl auth.Claims) {
	var req wire.UserRequest
	if !decodeJSON(w, r, maxLoginBody, &req) {
		return
	}
	if req.Quota < 0 {
		wire.WriteError(w, http.StatusBadRequest, "invalid_argument", "quota must not be negative")
		return
	}
	shard, ok := s.shardOf(w, req.Name)
	if !ok {
		return
	}
	rid, ok := requestID(w, r, cl)
	if !ok {
		return
	}
	ctx, cancel := s.callCtx(r)
	defer cancel()
	u, err := s.cfg.Meta.CreateUser(ctx, shard, raftmeta.CreateUserRequest{RequestID: rid, Name: req.Name,
		Password: req.Password, Quota: req.Quota, Admin: req.Admin})
	if err != nil {
		s.writeMetaError(w, r, err)
		return
	}
	// A deleted user of the same name may have cached answers here.
	s.checker.Forget(shard, u.Name)
	s.basic.forget(u.Name)
	wire.WriteJSON(w, http.StatusCreated, s.userInfo(ctx, shard, u))
}

func (s *Server) getUser(w http.ResponseWriter, r *http.Request, _ auth.Claims) {
	name := r.PathValue("name")
	shard, ok := s.shardOf(w, name)
	if !ok {
		return
	}
	ctx, cancel := s.callCtx(r)
	defer cancel()
	u, err := s.cfg.Meta.User(ctx, shard, name, raftmeta.ReadOptions{})
	if err != nil {
		s.writeMetaError(w, r, err)
		return
	}
	wire.WriteJSON(w, http.StatusOK, s.userInfo(ctx, shard, u))
}

// userCall runs a mutating admin call on the shard of the route's {name}.
func (s *Server) userCall(w http.ResponseWriter, r *http.Request, cl auth.Claims, call func(ctx context.Context, shard uint64, rid, name string) error) {
	name := r.PathValue("name")
	shard, ok := s.shardOf(w, name)
	if !ok {
		return
	}
	rid, ok := requestID(w, r, cl)
	if !ok {
		return
	}
	ctx, cancel := s.callCtx(r)
	defer cancel()
	if err := call(ctx, shard, rid, name); err != nil {
		s.writeMetaError(w, r, err)
		return
	}
	s.checker.Forget(shard, name)
	s.basic.forget(name)
	wire.WriteJSON(w, http.StatusOK, map[string]bool{"ok": true})
}

// resetPassword sets a user's password; their sessions end.
func (s *Server) resetPassword(w http.ResponseWriter, r *http.Request, cl auth.Claims) {
	var req wire.PasswordRequest
	if !decodeJSON(w, r, maxLoginBody, &req) {
		return
	}
	s.userCall(w, r, cl, func(ctx context.Context, shard uint64, rid, name string) error {
		return s.cfg.Meta.SetPassword(ctx, shard, rid, name, req.New)
	})
}

func (s *Server) setQuota(w http.ResponseWriter, r *http.Request, cl auth.Claims) {
	var req wire.QuotaRequest
	if !decodeJSON(w, r, maxLoginBody, &req) {
		return
	}
	if req.Quota < 0 {
		wire.WriteError(w, http.StatusBadRequest, "invalid_argument", "quota must not be negative")
		return
	}
	s.userCall(w, r, cl, func(ctx context.Context, shard uint64, rid, name string) error {
		return s.cfg.Meta.SetQuota(ctx, shard, rid, name, req.Quota)
	})
}

// logoutUser ends every session of a user.
func (s *Server) logoutUser(w http.ResponseWriter, r *http.Request, cl auth.Claims) {
	s.userCall(w, r, cl, func(ctx context.Context, shard uint64, rid, name string) error {
		_, err := s.cfg.Meta.RevokeSessions(ctx, shard, rid, name)
		return err
	})
}

// deleteUser deletes a user; their sessions end at once.
func (s *Server) deleteUser(w http.ResponseWriter, r *http.Request, cl auth.Claims) {
	if strings.EqualFold(r.PathValue("name"), cl.User) {
		wire.WriteError(w, http.StatusBadRequest, "invalid_argument", "an admin cannot delete their own account")
		return
	}
	s.userCall(w, r, cl, func(ctx context.Context, shard uint64, rid, name string) error {
		return s.cfg.Meta.DeleteUser(ctx, shard, rid, name)
	})
}
