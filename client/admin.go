package client

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strconv"

	"github.com/coffer-dev/coffer/internal/wire"
)

// The admin API's user calls (an admin user's credentials are needed, else
// ErrForbidden). Every write carries a fresh Idempotency-Key, so it may be
// sent again to another server after a lost answer.

// UserInfo is a user as the admin API shows it.
type UserInfo struct {
	Name  string `json:"name"`
	ID    uint64 `json:"id"`    // unique within its shard, not across the cluster
	Shard uint64 `json:"shard"` // the shard holding the user
	Admin bool   `json:"admin,omitempty"`
	Quota int64  `json:"quota"` // bytes; 0: unlimited
	// Used and Files are the bytes and count of live files (from a
	// possibly stale replica).
	Used      int64  `json:"used"`
	Files     int64  `json:"files"`
	Namespace uint64 `json:"namespace"`
	Created   string `json:"created"` // RFC 3339
}

// UserPage is one page of the user listing; NextPageToken is empty on the
// last.
type UserPage struct {
	Users         []UserInfo `json:"users"`
	NextPageToken string     `json:"next_page_token,omitempty"`
}

// CreateUserRequest describes a new user.
type CreateUserRequest struct {
	Name     string
	Password string
	Admin    bool
	Quota    int64 // bytes; 0: unlimited
}

// userPath is the admin route of the named user followed by suffix. A
// name that cannot be a path segment ("", "." or "..") is
// ErrInvalidArgument: the server would clean the path to another route.
func userPath(name, suffix string) (string, error) {
	if name == "" || name == "." || name == ".." {
		return "", fmt.Errorf("%w: bad user name %q", ErrInvalidArgument, name)
	}
	return "/v1/admin/users/" + url.PathEscape(name) + suffix, nil
}

// Users returns one page of the users, shard by shard, each in case-folded
// name order (limit 0: the server's default, 1000; at most 1000).
func (c *Client) Users(ctx context.Context, limit int, pageToken string) (*UserPage, error) {
	q := url.Values{}
	if limit > 0 {
		q.Set("limit", strconv.Itoa(limit))
	}
	if pageToken != "" {
		q.Set("page_token", pageToken)
	}
	var page UserPage
	if err := c.send(ctx, &request{method: http.MethodGet, path: "/v1/admin/users", query: q, out: &page}); err != nil {
		return nil, err
	}
	return &page, nil
}

// AllUsers returns every user, following the pages.
func (c *Client) AllUsers(ctx context.Context) ([]UserInfo, error) {
	all := []UserInfo{}
	token := ""
	for {
		page, err := c.Users(ctx, 0, token)
		if err != nil {
			return nil, err
		}
		all = append(all, page.Users...)
		if page.NextPageToken == "" {
			return all, nil
		}
		if page.NextPageToken == token {
			return nil, fmt.Errorf("list users: the server repeated page token %q", token)
		}
		token = page.NextPageToken
	}
}

// CreateUser creates a user. A name taken (ignoring case) is ErrExists; a
// bad name is an *Error with code "invalid_name".
func (c *Client) CreateUser(ctx context.Context, req CreateUserRequest) (*UserInfo, error) {
	var u UserInfo
	err := c.send(ctx, &request{method: http.MethodPost, path: "/v1/admin/users", header: mutating(),
		in: wire.UserRequest{Name: req.Name, Password: req.Password, Admin: req.Admin, Quota: req.Quota}, out: &u})
	if err != nil {
		return nil, err
	}
	return &u, nil
}

// User returns the named user (ErrNotFound if there is none).
func (c *Client) User(ctx context.Context, name string) (*UserInfo, error) {
	p, err := userPath(name, "")
	if err != nil {
		return nil, err
	}
	var u UserInfo
	if err := c.do(ctx, http.MethodGet, p, nil, &u); err != nil {
		return nil, err
	}
	return &u, nil
}

// userWrite sends a write about the named user; the answer is {"ok": true}.
func (c *Client) userWrite(ctx context.Context, method, name, suffix string, in any) error {
	p, err := userPath(name, suffix)
	if err != nil {
		return err
	}
	return c.send(ctx, &request{method: method, path: p, header: mutating(), in: in})
}

// SetUserPassword sets the named user's password; their sessions end.
func (c *Client) SetUserPassword(ctx context.Context, name, password string) error {
	return c.userWrite(ctx, http.MethodPut, name, "/password", wire.PasswordRequest{New: password})
}

// SetUserQuota sets the named user's quota in bytes (0: unlimited). Usage
// already above a lowered quota stays; writes that add bytes are refused.
// A negative quota is ErrInvalidArgument.
func (c *Client) SetUserQuota(ctx context.Context, name string, quota int64) error {
	return c.userWrite(ctx, http.MethodPut, name, "/quota", wire.QuotaRequest{Quota: quota})
}

// LogoutUser ends every session of the named user.
func (c *Client) LogoutUser(ctx context.Context, name string) error {
	return c.userWrite(ctx, http.MethodPost, name, "/logout", nil)
}

// DeleteUser deletes the named user: the name is free at once and their
// sessions end. An admin cannot delete their own account
// (ErrInvalidArgument).
func (c *Client) DeleteUser(ctx context.Context, name string) error {
	return c.userWrite(ctx, http.MethodDelete, name, "", nil)
}
