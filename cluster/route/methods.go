package route

import (
	"context"
	"time"

	"github.com/coffer-dev/coffer/cluster/metarpc"
	"github.com/coffer-dev/coffer/raftmeta"
)

// Commit is metarpc.Client.Commit on group's leader. Every attempt sends
// req unchanged (req.RequestID included).
func (r *Router) Commit(ctx context.Context, group uint64, req raftmeta.CommitRequest) (*raftmeta.CommitResult, error) {
	var res *raftmeta.CommitResult
	err := r.do(ctx, group, "Commit", true, 0, func(ctx context.Context, c *metarpc.Client) (err error) {
		res, err = c.Commit(ctx, group, req)
		return err
	})
	return res, err
}

// CreateUser is metarpc.Client.CreateUser on group's leader.
func (r *Router) CreateUser(ctx context.Context, group uint64, req raftmeta.CreateUserRequest) (*raftmeta.User, error) {
	var u *raftmeta.User
	err := r.do(ctx, group, "CreateUser", true, 0, func(ctx context.Context, c *metarpc.Client) (err error) {
		u, err = c.CreateUser(ctx, group, req)
		return err
	})
	return u, err
}

// DeleteUser is metarpc.Client.DeleteUser on group's leader.
func (r *Router) DeleteUser(ctx context.Context, group uint64, requestID, name string) error {
	return r.do(ctx, group, "DeleteUser", true, 0, func(ctx context.Context, c *metarpc.Client) error {
		return c.DeleteUser(ctx, group, requestID, name)
	})
}

// SetPassword is metarpc.Client.SetPassword on group's leader.
func (r *Router) SetPassword(ctx context.Context, group uint64, requestID, name, password string) error {
	return r.do(ctx, group, "SetPassword", true, 0, func(ctx context.Context, c *metarpc.Client) error {
		return c.SetPassword(ctx, group, requestID, name, password)
	})
}

// SetQuota is metarpc.Client.SetQuota on group's leader.
func (r *Router) SetQuota(ctx context.Context, group uint64, requestID, name string, quota int64) error {
	return r.do(ctx, group, "SetQuota", true, 0, func(ctx context.Context, c *metarpc.Client) error {
		return c.SetQuota(ctx, group, requestID, name, quota)
	})
}

// Authenticate is metarpc.Client.Authenticate on group's leader.
func (r *Router) Authenticate(ctx context.Context, group uint64, name, password string) (*raftmeta.User, error) {
	var u *raftmeta.User
	err := r.do(ctx, group, "Authenticate", false, 0, func(ctx context.Context, c *metarpc.Client) (err error) {
		u, err = c.Authenticate(ctx, group, name, password)
		return err
	})
	return u, err
}

// User is metarpc.Client.User on group's leader (a stale read, too, goes
// to the leader).
func (r *Router) User(ctx context.Context, group uint64, name string, o raftmeta.ReadOptions) (*raftmeta.User, error) {
	var u *raftmeta.User
	err := r.do(ctx, group, "User", false, 0, func(ctx context.Context, c *metarpc.Client) (err error) {
		u, err = c.User(ctx, group, name, o)
		return err
	})
	return u, err
}

// Stat is metarpc.Client.Stat on group's leader.
func (r *Router) Stat(ctx context.Context, group, ns uint64, t raftmeta.Target, o raftmeta.StatOptions) (*raftmeta.Entry, error) {
	var e *raftmeta.Entry
	err := r.do(ctx, group, "Stat", false, 0, func(ctx context.Context, c *metarpc.Client) (err error) {
		e, err = c.Stat(ctx, group, ns, t, o)
		return err
	})
	return e, err
}

// List is metarpc.Client.List on group's leader.
func (r *Router) List(ctx context.Context, group, ns uint64, t raftmeta.Target, o raftmeta.ListOptions) (*raftmeta.ListPage, error) {
	var p *raftmeta.ListPage
	err := r.do(ctx, group, "List", false, 0, func(ctx context.Context, c *metarpc.Client) (err error) {
		p, err = c.List(ctx, group, ns, t, o)
		return err
	})
	return p, err
}

// History is metarpc.Client.History on group's leader.
func (r *Router) History(ctx context.Context, group, ns uint64, t raftmeta.Target, o raftmeta.HistoryOptions) ([]raftmeta.Revision, error) {
	var revs []raftmeta.Revision
	err := r.do(ctx, group, "History", false, 0, func(ctx context.Context, c *metarpc.Client) (err error) {
		revs, err = c.History(ctx, group, ns, t, o)
		return err
	})
	return revs, err
}

// Changes is metarpc.Client.Changes on group's leader.
func (r *Router) Changes(ctx context.Context, group, ns, cursor uint64, limit int, o raftmeta.ReadOptions) (*raftmeta.ChangesPage, error) {
	var p *raftmeta.ChangesPage
	err := r.do(ctx, group, "Changes", false, 0, func(ctx context.Context, c *metarpc.Client) (err error) {
		p, err = c.Changes(ctx, group, ns, cursor, limit, o)
		return err
	})
	return p, err
}

// WaitChanges is metarpc.Client.WaitChanges on group's leader. The wait
// (timeout, capped at metarpc.MaxWaitTimeout) is the long-poll: it does not
// count against MaxWait, which bounds only the retries around it; a retry
// after a failover waits the full timeout again.
func (r *Router) WaitChanges(ctx context.Context, group, ns, cursor uint64, limit int, timeout time.Duration, o raftmeta.ReadOptions) (*raftmeta.ChangesPage, error) {
	wait := min(max(timeout, 0), metarpc.MaxWaitTimeout)
	var p *raftmeta.ChangesPage
	err := r.do(ctx, group, "WaitChanges", false, wait, func(ctx context.Context, c *metarpc.Client) (err error) {
		p, err = c.WaitChanges(ctx, group, ns, cursor, limit, timeout, o)
		return err
	})
	return p, err
}

// Prune is metarpc.Client.Prune on group's leader (one prune step). It is
// mutating: giving up after an unknown outcome wraps
// raftmeta.ErrUnknownOutcome (pruning again is harmless).
func (r *Router) Prune(ctx context.Context, group uint64) (*raftmeta.PruneResult, error) {
	var res *raftmeta.PruneResult
	err := r.do(ctx, group, "Prune", true, 0, func(ctx context.Context, c *metarpc.Client) (err error) {
		res, err = c.Prune(ctx, group)
		return err
	})
	return res, err
}

// Referenced is metarpc.Client.Referenced on group's leader.
func (r *Router) Referenced(ctx context.Context, group, ns uint64, refs []raftmeta.Sum, o raftmeta.ReadOptions) ([]bool, error) {
	var out []bool
	err := r.do(ctx, group, "Referenced", false, 0, func(ctx context.Context, c *metarpc.Client) (err error) {
		out, err = c.Referenced(ctx, group, ns, refs, o)
		return err
	})
	return out, err
}

// Namespace is metarpc.Client.Namespace on group's leader.
func (r *Router) Namespace(ctx context.Context, group, ns uint64, o raftmeta.ReadOptions) (*raftmeta.Namespace, error) {
	var n *raftmeta.Namespace
	err := r.do(ctx, group, "Namespace", false, 0, func(ctx context.Context, c *metarpc.Client) (err error) {
		n, err = c.Namespace(ctx, group, ns, o)
		return err
	})
	return n, err
}

// Users is metarpc.Client.Users on group's leader.
func (r *Router) Users(ctx context.Context, group uint64, o raftmeta.UsersOptions) (*raftmeta.UserPage, error) {
	var p *raftmeta.UserPage
	err := r.do(ctx, group, "Users", false, 0, func(ctx context.Context, c *metarpc.Client) (err error) {
		p, err = c.Users(ctx, group, o)
		return err
	})
	return p, err
}

// CreateUpload is metarpc.Client.CreateUpload on group's leader
// (mutating: every attempt sends the same request ID).
func (r *Router) CreateUpload(ctx context.Context, group uint64, requestID string, ns uint64, id, path string, state, meta []byte) (*raftmeta.Upload, error) {
	var u *raftmeta.Upload
	err := r.do(ctx, group, "CreateUpload", true, 0, func(ctx context.Context, c *metarpc.Client) (err error) {
		u, err = c.CreateUpload(ctx, group, requestID, ns, id, path, state, meta)
		return err
	})
	return u, err
}

// AppendUpload is metarpc.Client.AppendUpload on group's leader
// (mutating: every attempt sends the same request ID, so a retry after an
// unknown outcome returns the first result, not an offset mismatch).
func (r *Router) AppendUpload(ctx context.Context, group uint64, requestID string, ns uint64, id string, offset int64, blocks []raftmeta.Block, state []byte) (*raftmeta.Upload, error) {
	var u *raftmeta.Upload
	err := r.do(ctx, group, "AppendUpload", true, 0, func(ctx context.Context, c *metarpc.Client) (err error) {
		u, err = c.AppendUpload(ctx, group, requestID, ns, id, offset, blocks, state)
		return err
	})
	return u, err
}

// GetUpload is metarpc.Client.GetUpload on group's leader.
func (r *Router) GetUpload(ctx context.Context, group, ns uint64, id string, o raftmeta.ReadOptions) (*raftmeta.Upload, error) {
	var u *raftmeta.Upload
	err := r.do(ctx, group, "GetUpload", false, 0, func(ctx context.Context, c *metarpc.Client) (err error) {
		u, err = c.GetUpload(ctx, group, ns, id, o)
		return err
	})
	return u, err
}

// DeleteUpload is metarpc.Client.DeleteUpload on group's leader
// (mutating).
func (r *Router) DeleteUpload(ctx context.Context, group uint64, requestID string, ns uint64, id string) error {
	return r.do(ctx, group, "DeleteUpload", true, 0, func(ctx context.Context, c *metarpc.Client) error {
		return c.DeleteUpload(ctx, group, requestID, ns, id)
	})
}

// RevokeToken is metarpc.Client.RevokeToken on group's leader (mutating).
func (r *Router) RevokeToken(ctx context.Context, group uint64, requestID, tokenID string, expires time.Time) error {
	return r.do(ctx, group, "RevokeToken", true, 0, func(ctx context.Context, c *metarpc.Client) error {
		return c.RevokeToken(ctx, group, requestID, tokenID, expires)
	})
}

// RevokeSessions is metarpc.Client.RevokeSessions on group's leader
// (mutating).
func (r *Router) RevokeSessions(ctx context.Context, group uint64, requestID, name string) (*raftmeta.User, error) {
	var u *raftmeta.User
	err := r.do(ctx, group, "RevokeSessions", true, 0, func(ctx context.Context, c *metarpc.Client) (err error) {
		u, err = c.RevokeSessions(ctx, group, requestID, name)
		return err
	})
	return u, err
}

// SessionsValidAfter is metarpc.Client.SessionsValidAfter on group's
// leader.
func (r *Router) SessionsValidAfter(ctx context.Context, group uint64, name string, o raftmeta.ReadOptions) (time.Time, error) {
	var at time.Time
	err := r.do(ctx, group, "SessionsValidAfter", false, 0, func(ctx context.Context, c *metarpc.Client) (err error) {
		at, err = c.SessionsValidAfter(ctx, group, name, o)
		return err
	})
	return at, err
}

// TokenRevoked is metarpc.Client.TokenRevoked on group's leader.
func (r *Router) TokenRevoked(ctx context.Context, group uint64, tokenID string, o raftmeta.ReadOptions) (bool, error) {
	var revoked bool
	err := r.do(ctx, group, "TokenRevoked", false, 0, func(ctx context.Context, c *metarpc.Client) (err error) {
		revoked, err = c.TokenRevoked(ctx, group, tokenID, o)
		return err
	})
	return revoked, err
}
