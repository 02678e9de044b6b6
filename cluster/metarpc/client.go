package metarpc

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"
	"unicode/utf8"

	"google.golang.org/grpc"
	"google.golang.org/grpc/peer"

	"github.com/coffer-dev/coffer/cluster/clusterpb"
	"github.com/coffer-dev/coffer/raftmeta"
)

// ClientConfig configures a Client. The zero value is usable.
type ClientConfig struct {
	// CallTimeout, if positive, bounds each call; a WaitChanges call gets
	// its own timeout on top. A call that runs out of it while the
	// caller's ctx is still live fails with ErrUnavailable (and, if it
	// was mutating, raftmeta.ErrUnknownOutcome). 0 means no timeout beyond
	// the caller's ctx.
	CallTimeout time.Duration
}

// Validate reports every problem with c at once, wrapping
// ErrInvalidConfig.
func (c ClientConfig) Validate() error {
	var errs []error
	if c.CallTimeout < 0 {
		errs = append(errs, fmt.Errorf("CallTimeout %v: must not be negative", c.CallTimeout))
	}
	if len(errs) == 0 {
		return nil
	}
	return fmt.Errorf("%w: ClientConfig: %w", ErrInvalidConfig, errors.Join(errs...))
}

// Client calls one node's MetaService. Its methods mirror *raftmeta.Shard's
// with the Raft group added after ctx; see the package doc for the errors.
// It is safe for concurrent use.
type Client struct {
	rpc clusterpb.MetaServiceClient
	cfg ClientConfig
}

// NewClient returns a client that calls the MetaService over conn, which
// stays the caller's. cfg should have passed Validate; a negative
// CallTimeout counts as none.
func NewClient(conn grpc.ClientConnInterface, cfg ClientConfig) *Client {
	cfg.CallTimeout = max(cfg.CallTimeout, 0)
	return &Client{rpc: clusterpb.NewMetaServiceClient(conn), cfg: cfg}
}

// call is one RPC: method on group with req as its body, decoding the
// answer into resp (nil: none expected). A mutating call carries
// requestID; wait extends the call's timeout (WaitChanges).
func (c *Client) call(ctx context.Context, group uint64, method, requestID string, mutating bool, wait time.Duration, req, resp any) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("metarpc: %s: %w", method, err)
	}
	if !utf8.ValidString(requestID) {
		return fmt.Errorf("%w: metarpc: %s: request ID is not valid UTF-8", raftmeta.ErrInvalidArgument, method)
	}
	body, err := json.Marshal(req)
	if err != nil {
		return fmt.Errorf("%w: metarpc: %s: encode the request: %v", raftmeta.ErrInvalidArgument, method, err)
	}
	callCtx := ctx
	if c.cfg.CallTimeout > 0 {
		var cancel context.CancelFunc
		callCtx, cancel = context.WithTimeout(ctx, c.cfg.CallTimeout+wait)
		defer cancel()
	}
	// The peer is set once the call has a stream on a connection: from
	// then on the request may have reached the server.
	var p peer.Peer
	out, err := c.rpc.Call(callCtx, &clusterpb.CallRequest{Group: group, Method: method, Body: body, RequestId: requestID}, grpc.Peer(&p))
	if err != nil {
		return fromRPC(ctx, method, err, mutating, p.Addr != nil)
	}
	if resp == nil || len(out.GetBody()) == 0 {
		return nil
	}
	if err := json.Unmarshal(out.GetBody(), resp); err != nil {
		return fmt.Errorf("metarpc: %s: the server's answer does not decode: %v", method, err)
	}
	return nil
}

// checkUTF8 refuses strings that are not valid UTF-8 before they are
// encoded: JSON would replace the bad bytes with U+FFFD, and the server
// would see a different, valid string (another path, another password).
func checkUTF8(method string, sentinel error, fields map[string]string) error {
	for name, v := range fields {
		if !utf8.ValidString(v) {
			return fmt.Errorf("%w: metarpc: %s: %s is not valid UTF-8", sentinel, method, name)
		}
	}
	return nil
}

// Commit is raftmeta.Shard.Commit on group. A transport failure after the
// request was sent wraps raftmeta.ErrUnknownOutcome: retry with the same
// RequestID.
func (c *Client) Commit(ctx context.Context, group uint64, r raftmeta.CommitRequest) (*raftmeta.CommitResult, error) {
	// As raftmeta does, before the paths are encoded.
	for i, op := range r.Ops {
		for _, p := range []string{op.Path, op.To} {
			if !utf8.ValidString(p) {
				return nil, &raftmeta.OpError{Code: raftmeta.CodeInvalidPath, Op: i, Kind: op.Kind, Path: p, Message: "not valid UTF-8"}
			}
		}
	}
	var res *raftmeta.CommitResult
	if err := c.call(ctx, group, methodCommit, r.RequestID, true, 0, r, &res); err != nil {
		return nil, err
	}
	return res, nil
}

// CreateUser is raftmeta.Shard.CreateUser on group.
func (c *Client) CreateUser(ctx context.Context, group uint64, r raftmeta.CreateUserRequest) (*raftmeta.User, error) {
	if err := checkUTF8(methodCreateUser, raftmeta.ErrInvalidArgument, map[string]string{"name": r.Name, "password": r.Password}); err != nil {
		return nil, err
	}
	var u *raftmeta.User
	if err := c.call(ctx, group, methodCreateUser, r.RequestID, true, 0, r, &u); err != nil {
		return nil, err
	}
	return u, nil
}

// DeleteUser is raftmeta.Shard.DeleteUser on group.
func (c *Client) DeleteUser(ctx context.Context, group uint64, requestID, name string) error {
	if err := checkUTF8(methodDeleteUser, raftmeta.ErrInvalidArgument, map[string]string{"name": name}); err != nil {
		return err
	}
	return c.call(ctx, group, methodDeleteUser, requestID, true, 0, nameBody{Name: name}, nil)
}

// SetPassword is raftmeta.Shard.SetPassword on group.
func (c *Client) SetPassword(ctx context.Context, group uint64, requestID, name, password string) error {
	if err := checkUTF8(methodSetPassword, raftmeta.ErrInvalidArgument, map[string]string{"name": name, "password": password}); err != nil {
		return err
	}
	return c.call(ctx, group, methodSetPassword, requestID, true, 0, credentialsBody{Name: name, Password: password}, nil)
}

// SetQuota is raftmeta.Shard.SetQuota on group.
func (c *Client) SetQuota(ctx context.Context, group uint64, requestID, name string, quota int64) error {
	if err := checkUTF8(methodSetQuota, raftmeta.ErrInvalidArgument, map[string]string{"name": name}); err != nil {
		return err
	}
	return c.call(ctx, group, methodSetQuota, requestID, true, 0, quotaBody{Name: name, Quota: quota}, nil)
}

// Authenticate is raftmeta.Shard.Authenticate on group. A password that
// is not valid UTF-8 is ErrBadCredentials, as no stored password can
// match it.
func (c *Client) Authenticate(ctx context.Context, group uint64, name, password string) (*raftmeta.User, error) {
	if err := checkUTF8(methodAuthenticate, raftmeta.ErrBadCredentials, map[string]string{"name": name, "password": password}); err != nil {
		return nil, err
	}
	var u *raftmeta.User
	if err := c.call(ctx, group, methodAuthenticate, "", false, 0, credentialsBody{Name: name, Password: password}, &u); err != nil {
		return nil, err
	}
	return u, nil
}

// User is raftmeta.Shard.User on group.
func (c *Client) User(ctx context.Context, group uint64, name string, o raftmeta.ReadOptions) (*raftmeta.User, error) {
	if err := checkUTF8(methodUser, raftmeta.ErrInvalidName, map[string]string{"name": name}); err != nil {
		return nil, err
	}
	var u *raftmeta.User
	if err := c.call(ctx, group, methodUser, "", false, 0, userBody{Name: name, Options: o}, &u); err != nil {
		return nil, err
	}
	return u, nil
}

// Stat is raftmeta.Shard.Stat on group.
func (c *Client) Stat(ctx context.Context, group, ns uint64, t raftmeta.Target, o raftmeta.StatOptions) (*raftmeta.Entry, error) {
	if err := checkUTF8(methodStat, raftmeta.ErrInvalidPath, map[string]string{"path": t.Path}); err != nil {
		return nil, err
	}
	var e *raftmeta.Entry
	if err := c.call(ctx, group, methodStat, "", false, 0, statBody{Namespace: ns, Target: t, Options: o}, &e); err != nil {
		return nil, err
	}
	return e, nil
}

// List is raftmeta.Shard.List on group.
func (c *Client) List(ctx context.Context, group, ns uint64, t raftmeta.Target, o raftmeta.ListOptions) (*raftmeta.ListPage, error) {
	if err := checkUTF8(methodList, raftmeta.ErrInvalidPath, map[string]string{"path": t.Path}); err != nil {
		return nil, err
	}
	if err := checkUTF8(methodList, raftmeta.ErrInvalidArgument, map[string]string{"page token": o.PageToken}); err != nil {
		return nil, err
	}
	var p *raftmeta.ListPage
	if err := c.call(ctx, group, methodList, "", false, 0, listBody{Namespace: ns, Target: t, Options: o}, &p); err != nil {
		return nil, err
	}
	return p, nil
}

// History is raftmeta.Shard.History on group.
func (c *Client) History(ctx context.Context, group, ns uint64, t raftmeta.Target, o raftmeta.HistoryOptions) ([]raftmeta.Revision, error) {
	if err := checkUTF8(methodHistory, raftmeta.ErrInvalidPath, map[string]string{"path": t.Path}); err != nil {
		return nil, err
	}
	var revs []raftmeta.Revision
	if err := c.call(ctx, group, methodHistory, "", false, 0, historyBody{Namespace: ns, Target: t, Options: o}, &revs); err != nil {
		return nil, err
	}
	return revs, nil
}

// Changes is raftmeta.Shard.Changes on group.
func (c *Client) Changes(ctx context.Context, group, ns, cursor uint64, limit int, o raftmeta.ReadOptions) (*raftmeta.ChangesPage, error) {
	var p *raftmeta.ChangesPage
	if err := c.call(ctx, group, methodChanges, "", false, 0, changesBody{Namespace: ns, Cursor: cursor, Limit: limit, Options: o}, &p); err != nil {
		return nil, err
	}
	return p, nil
}

// WaitChanges is raftmeta.Shard.WaitChanges on group. The timeout is
// capped at MaxWaitTimeout (the server would cap it too); a timeout that
// passes gives an empty page, not an error.
func (c *Client) WaitChanges(ctx context.Context, group, ns, cursor uint64, limit int, timeout time.Duration, o raftmeta.ReadOptions) (*raftmeta.ChangesPage, error) {
	timeout = waitTimeout(timeout)
	var p *raftmeta.ChangesPage
	if err := c.call(ctx, group, methodWaitChanges, "", false, timeout, changesBody{Namespace: ns, Cursor: cursor, Limit: limit, Timeout: timeout, Options: o}, &p); err != nil {
		return nil, err
	}
	return p, nil
}

// Prune is raftmeta.Shard.Prune on group (one prune step). It is mutating:
// a transport failure after it was sent wraps raftmeta.ErrUnknownOutcome
// (pruning again is harmless).
func (c *Client) Prune(ctx context.Context, group uint64) (*raftmeta.PruneResult, error) {
	var res *raftmeta.PruneResult
	if err := c.call(ctx, group, methodPrune, "", true, 0, emptyBody{}, &res); err != nil {
		return nil, err
	}
	return res, nil
}

// Referenced is raftmeta.Shard.Referenced on group.
func (c *Client) Referenced(ctx context.Context, group, ns uint64, refs []raftmeta.Sum, o raftmeta.ReadOptions) ([]bool, error) {
	var out []bool
	if err := c.call(ctx, group, methodReferenced, "", false, 0, referencedBody{Namespace: ns, Refs: refs, Options: o}, &out); err != nil {
		return nil, err
	}
	return out, nil
}

// Namespace is raftmeta.Shard.Namespace on group.
func (c *Client) Namespace(ctx context.Context, group, ns uint64, o raftmeta.ReadOptions) (*raftmeta.Namespace, error) {
	var n *raftmeta.Namespace
	if err := c.call(ctx, group, methodNamespace, "", false, 0, namespaceBody{Namespace: ns, Options: o}, &n); err != nil {
		return nil, err
	}
	return n, nil
}

// Users is raftmeta.Shard.Users on group.
func (c *Client) Users(ctx context.Context, group uint64, o raftmeta.UsersOptions) (*raftmeta.UserPage, error) {
	if err := checkUTF8(methodUsers, raftmeta.ErrInvalidArgument, map[string]string{"page token": o.PageToken}); err != nil {
		return nil, err
	}
	var p *raftmeta.UserPage
	if err := c.call(ctx, group, methodUsers, "", false, 0, usersBody{Options: o}, &p); err != nil {
		return nil, err
	}
	return p, nil
}

// CreateUpload is raftmeta.Shard.CreateUpload on group. It is mutating: a
// transport failure after it was sent wraps raftmeta.ErrUnknownOutcome.
func (c *Client) CreateUpload(ctx context.Context, group uint64, requestID string, ns uint64, id, path string, state, meta []byte) (*raftmeta.Upload, error) {
	if err := checkUTF8(methodCreateUpload, raftmeta.ErrInvalidPath, map[string]string{"path": path}); err != nil {
		return nil, err
	}
	if err := checkUTF8(methodCreateUpload, raftmeta.ErrInvalidArgument, map[string]string{"upload ID": id}); err != nil {
		return nil, err
	}
	var u *raftmeta.Upload
	body := createUploadBody{Namespace: ns, ID: id, Path: path, State: state, Meta: meta}
	if err := c.call(ctx, group, methodCreateUpload, requestID, true, 0, body, &u); err != nil {
		return nil, err
	}
	return u, nil
}

// AppendUpload is raftmeta.Shard.AppendUpload on group. It is mutating: a
// transport failure after it was sent wraps raftmeta.ErrUnknownOutcome
// (retry with the same request ID: a retry returns the first result, not
// an offset mismatch).
func (c *Client) AppendUpload(ctx context.Context, group uint64, requestID string, ns uint64, id string, offset int64, blocks []raftmeta.Block, state []byte) (*raftmeta.Upload, error) {
	if err := checkUTF8(methodAppendUpload, raftmeta.ErrInvalidArgument, map[string]string{"upload ID": id}); err != nil {
		return nil, err
	}
	var u *raftmeta.Upload
	body := appendUploadBody{Namespace: ns, ID: id, Offset: offset, Blocks: blocks, State: state}
	if err := c.call(ctx, group, methodAppendUpload, requestID, true, 0, body, &u); err != nil {
		return nil, err
	}
	return u, nil
}

// GetUpload is raftmeta.Shard.GetUpload on group.
func (c *Client) GetUpload(ctx context.Context, group, ns uint64, id string, o raftmeta.ReadOptions) (*raftmeta.Upload, error) {
	if err := checkUTF8(methodGetUpload, raftmeta.ErrInvalidArgument, map[string]string{"upload ID": id}); err != nil {
		return nil, err
	}
	var u *raftmeta.Upload
	if err := c.call(ctx, group, methodGetUpload, "", false, 0, getUploadBody{Namespace: ns, ID: id, Options: o}, &u); err != nil {
		return nil, err
	}
	return u, nil
}

// DeleteUpload is raftmeta.Shard.DeleteUpload on group (mutating).
func (c *Client) DeleteUpload(ctx context.Context, group uint64, requestID string, ns uint64, id string) error {
	if err := checkUTF8(methodDeleteUpload, raftmeta.ErrInvalidArgument, map[string]string{"upload ID": id}); err != nil {
		return err
	}
	return c.call(ctx, group, methodDeleteUpload, requestID, true, 0, uploadBody{Namespace: ns, ID: id}, nil)
}

// RevokeToken is raftmeta.Shard.RevokeToken on group (mutating).
func (c *Client) RevokeToken(ctx context.Context, group uint64, requestID, tokenID string, expires time.Time) error {
	if err := checkUTF8(methodRevokeToken, raftmeta.ErrInvalidArgument, map[string]string{"token ID": tokenID}); err != nil {
		return err
	}
	return c.call(ctx, group, methodRevokeToken, requestID, true, 0, revokeTokenBody{TokenID: tokenID, Expires: expires}, nil)
}

// RevokeSessions is raftmeta.Shard.RevokeSessions on group (mutating).
func (c *Client) RevokeSessions(ctx context.Context, group uint64, requestID, name string) (*raftmeta.User, error) {
	if err := checkUTF8(methodRevokeSessions, raftmeta.ErrInvalidArgument, map[string]string{"name": name}); err != nil {
		return nil, err
	}
	var u *raftmeta.User
	if err := c.call(ctx, group, methodRevokeSessions, requestID, true, 0, nameBody{Name: name}, &u); err != nil {
		return nil, err
	}
	return u, nil
}

// SessionsValidAfter is raftmeta.Shard.SessionsValidAfter on group.
func (c *Client) SessionsValidAfter(ctx context.Context, group uint64, name string, o raftmeta.ReadOptions) (time.Time, error) {
	if err := checkUTF8(methodSessionsValidAfter, raftmeta.ErrInvalidName, map[string]string{"name": name}); err != nil {
		return time.Time{}, err
	}
	var at time.Time
	if err := c.call(ctx, group, methodSessionsValidAfter, "", false, 0, userBody{Name: name, Options: o}, &at); err != nil {
		return time.Time{}, err
	}
	return at, nil
}

// TokenRevoked is raftmeta.Shard.TokenRevoked on group.
func (c *Client) TokenRevoked(ctx context.Context, group uint64, tokenID string, o raftmeta.ReadOptions) (bool, error) {
	if err := checkUTF8(methodTokenRevoked, raftmeta.ErrInvalidArgument, map[string]string{"token ID": tokenID}); err != nil {
		return false, err
	}
	var revoked bool
	if err := c.call(ctx, group, methodTokenRevoked, "", false, 0, tokenBody{TokenID: tokenID, Options: o}, &revoked); err != nil {
		return false, err
	}
	return revoked, nil
}
