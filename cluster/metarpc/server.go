package metarpc

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"time"

	"google.golang.org/grpc"

	"github.com/coffer-dev/coffer/cluster/clusterpb"
	"github.com/coffer-dev/coffer/raftmeta"
)

// Server serves a node's metadata replicas as the gRPC MetaService. Use
// NewServer and Register.
type Server struct {
	clusterpb.UnimplementedMetaServiceServer
	shards Shards
	log    *slog.Logger
}

// NewServer returns a server of shards. log receives a line per failed
// call (nil: discarded).
func NewServer(shards Shards, log *slog.Logger) *Server {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Server{shards: shards, log: log.With("component", "metarpc.server")}
}

// Register registers the MetaService on r (a *grpc.Server).
func (s *Server) Register(r grpc.ServiceRegistrar) {
	clusterpb.RegisterMetaServiceServer(r, s)
}

// Call implements clusterpb.MetaServiceServer: it decodes the body, calls
// the method on the group's replica and encodes the result.
func (s *Server) Call(ctx context.Context, req *clusterpb.CallRequest) (*clusterpb.CallResponse, error) {
	method := req.GetMethod()
	h, ok := handlers[method]
	if !ok {
		return nil, s.fail(ctx, req, fmt.Errorf("%w: %q", ErrUnknownMethod, method))
	}
	sh, err := s.shards.Shard(req.GetGroup())
	if err == nil && sh == nil {
		err = ErrNoReplica
	}
	if err != nil {
		return nil, s.fail(ctx, req, fmt.Errorf("group %d: %w", req.GetGroup(), err))
	}
	out, err := h(ctx, sh, req.GetRequestId(), req.GetBody())
	if err != nil {
		return nil, s.fail(ctx, req, err)
	}
	if out == nil {
		return &clusterpb.CallResponse{}, nil
	}
	body, err := json.Marshal(out)
	if err != nil {
		return nil, s.fail(ctx, req, fmt.Errorf("encode the result: %w", err))
	}
	return &clusterpb.CallResponse{Body: body}, nil
}

// fail logs a failed call and returns it as a status error. Errors that
// should not happen (internal, corrupt store) are logged at Warn, the rest
// at Debug: they are the caller's to handle.
func (s *Server) fail(ctx context.Context, req *clusterpb.CallRequest, err error) error {
	code := CodeOf(err)
	level := slog.LevelDebug
	if (code == raftmeta.CodeInternal && ctx.Err() == nil) || code == raftmeta.CodeCorruptStore {
		level = slog.LevelWarn
	}
	s.log.Log(ctx, level, "call failed", "method", req.GetMethod(), "group", req.GetGroup(),
		"request_id", req.GetRequestId(), "code", string(code), "err", err)
	return toStatus(err, s.shards.GRPCAddr)
}

// handler runs one method on a replica: requestID is the call's
// request_id, body its JSON arguments. A nil result means no body.
type handler func(ctx context.Context, sh Shard, requestID string, body []byte) (any, error)

// handle decodes the body into a Req and calls fn with it.
func handle[Req any](fn func(ctx context.Context, sh Shard, requestID string, req *Req) (any, error)) handler {
	return func(ctx context.Context, sh Shard, requestID string, body []byte) (any, error) {
		req := new(Req)
		if err := decodeBody(body, req); err != nil {
			return nil, err
		}
		return fn(ctx, sh, requestID, req)
	}
}

// decodeBody decodes a request body strictly: an unknown field is an
// error, so that no argument a newer client sends is silently ignored. An
// empty body is the zero request.
func decodeBody(body []byte, v any) error {
	if len(body) == 0 {
		return nil
	}
	d := json.NewDecoder(bytes.NewReader(body))
	d.DisallowUnknownFields()
	if err := d.Decode(v); err != nil {
		return fmt.Errorf("%w: request body: %v", raftmeta.ErrInvalidArgument, err)
	}
	if d.More() {
		return fmt.Errorf("%w: request body: data after the JSON value", raftmeta.ErrInvalidArgument)
	}
	return nil
}

// requestID merges the call's request_id with one a request type carries:
// either may be empty, but if both are set they must agree.
func requestID(call, body string) (string, error) {
	switch {
	case body == "":
		return call, nil
	case call == "" || call == body:
		return body, nil
	}
	return "", fmt.Errorf("%w: request_id %q differs from the body's %q", raftmeta.ErrInvalidArgument, call, body)
}

// waitTimeout clamps a WaitChanges timeout to [0, MaxWaitTimeout].
func waitTimeout(d time.Duration) time.Duration {
	return max(0, min(d, MaxWaitTimeout))
}

// handlers maps each method name to its handler.
var handlers = map[string]handler{
	methodCommit: handle(func(ctx context.Context, sh Shard, rid string, r *raftmeta.CommitRequest) (any, error) {
		var err error
		if r.RequestID, err = requestID(rid, r.RequestID); err != nil {
			return nil, err
		}
		return nilIfErr(sh.Commit(ctx, *r))
	}),
	methodCreateUser: handle(func(ctx context.Context, sh Shard, rid string, r *raftmeta.CreateUserRequest) (any, error) {
		var err error
		if r.RequestID, err = requestID(rid, r.RequestID); err != nil {
			return nil, err
		}
		return nilIfErr(sh.CreateUser(ctx, *r))
	}),
	methodDeleteUser: handle(func(ctx context.Context, sh Shard, rid string, r *nameBody) (any, error) {
		return nil, sh.DeleteUser(ctx, rid, r.Name)
	}),
	methodSetPassword: handle(func(ctx context.Context, sh Shard, rid string, r *credentialsBody) (any, error) {
		return nil, sh.SetPassword(ctx, rid, r.Name, r.Password)
	}),
	methodSetQuota: handle(func(ctx context.Context, sh Shard, rid string, r *quotaBody) (any, error) {
		return nil, sh.SetQuota(ctx, rid, r.Name, r.Quota)
	}),
	methodAuthenticate: handle(func(ctx context.Context, sh Shard, _ string, r *credentialsBody) (any, error) {
		return nilIfErr(sh.Authenticate(ctx, r.Name, r.Password))
	}),
	methodUser: handle(func(ctx context.Context, sh Shard, _ string, r *userBody) (any, error) {
		return nilIfErr(sh.User(ctx, r.Name, r.Options))
	}),
	methodStat: handle(func(ctx context.Context, sh Shard, _ string, r *statBody) (any, error) {
		return nilIfErr(sh.Stat(ctx, r.Namespace, r.Target, r.Options))
	}),
	methodList: handle(func(ctx context.Context, sh Shard, _ string, r *listBody) (any, error) {
		return nilIfErr(sh.List(ctx, r.Namespace, r.Target, r.Options))
	}),
	methodHistory: handle(func(ctx context.Context, sh Shard, _ string, r *historyBody) (any, error) {
		return nilIfErr(sh.History(ctx, r.Namespace, r.Target, r.Options))
	}),
	methodChanges: handle(func(ctx context.Context, sh Shard, _ string, r *changesBody) (any, error) {
		if r.Timeout != 0 {
			return nil, fmt.Errorf("%w: Changes takes no timeout", raftmeta.ErrInvalidArgument)
		}
		return nilIfErr(sh.Changes(ctx, r.Namespace, r.Cursor, r.Limit, r.Options))
	}),
	methodWaitChanges: handle(func(ctx context.Context, sh Shard, _ string, r *changesBody) (any, error) {
		return nilIfErr(sh.WaitChanges(ctx, r.Namespace, r.Cursor, r.Limit, waitTimeout(r.Timeout), r.Options))
	}),
	methodPrune: handle(func(ctx context.Context, sh Shard, _ string, _ *emptyBody) (any, error) {
		return nilIfErr(sh.Prune(ctx))
	}),
	methodReferenced: handle(func(ctx context.Context, sh Shard, _ string, r *referencedBody) (any, error) {
		return nilIfErr(sh.Referenced(ctx, r.Namespace, r.Refs, r.Options))
	}),
	methodNamespace: handle(func(ctx context.Context, sh Shard, _ string, r *namespaceBody) (any, error) {
		return nilIfErr(sh.Namespace(ctx, r.Namespace, r.Options))
	}),
	methodUsers: handle(func(ctx context.Context, sh Shard, _ string, r *usersBody) (any, error) {
		return nilIfErr(sh.Users(ctx, r.Options))
	}),
	methodCreateUpload: handle(func(ctx context.Context, sh Shard, rid string, r *createUploadBody) (any, error) {
		return nilIfErr(sh.CreateUpload(ctx, rid, r.Namespace, r.ID, r.Path, r.State, r.Meta))
	}),
	methodAppendUpload: handle(func(ctx context.Context, sh Shard, rid string, r *appendUploadBody) (any, error) {
		return nilIfErr(sh.AppendUpload(ctx, rid, r.Namespace, r.ID, r.Offset, r.Blocks, r.State))
	}),
	methodGetUpload: handle(func(ctx context.Context, sh Shard, _ string, r *getUploadBody) (any, error) {
		return nilIfErr(sh.GetUpload(ctx, r.Namespace, r.ID, r.Options))
	}),
	methodDeleteUpload: handle(func(ctx context.Context, sh Shard, rid string, r *uploadBody) (any, error) {
		return nil, sh.DeleteUpload(ctx, rid, r.Namespace, r.ID)
	}),
	methodRevokeToken: handle(func(ctx context.Context, sh Shard, rid string, r *revokeTokenBody) (any, error) {
		return nil, sh.RevokeToken(ctx, rid, r.TokenID, r.Expires)
	}),
	methodRevokeSessions: handle(func(ctx context.Context, sh Shard, rid string, r *nameBody) (any, error) {
		return nilIfErr(sh.RevokeSessions(ctx, rid, r.Name))
	}),
	methodSessionsValidAfter: handle(func(ctx context.Context, sh Shard, _ string, r *userBody) (any, error) {
		return nilIfErr(sh.SessionsValidAfter(ctx, r.Name, r.Options))
	}),
	methodTokenRevoked: handle(func(ctx context.Context, sh Shard, _ string, r *tokenBody) (any, error) {
		return nilIfErr(sh.TokenRevoked(ctx, r.TokenID, r.Options))
	}),
}

// nilIfErr returns (nil, err) when err is set, so that a failed call's
// partial result is never encoded, and v (as any) otherwise.
func nilIfErr[T any](v T, err error) (any, error) {
	if err != nil {
		return nil, err
	}
	return v, nil
}
