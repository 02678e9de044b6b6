package adminrpc

import (
	"context"
	"encoding/json"
	"fmt"
	"unicode/utf8"

	"google.golang.org/grpc"

	"github.com/coffer-dev/coffer/cluster/clusterpb"
	"github.com/coffer-dev/coffer/internal/wire"
)

// Client calls one node's AdminService; it is a Service, so the remote
// node can stand in for a local one. It is safe for concurrent use.
type Client struct {
	rpc clusterpb.AdminServiceClient
}

var _ Service = (*Client)(nil)

// NewClient returns a client that calls the AdminService over conn, which
// stays the caller's.
func NewClient(conn grpc.ClientConnInterface) *Client {
	return &Client{rpc: clusterpb.NewAdminServiceClient(conn)}
}

// call is one RPC: method on group with req as its body, decoding the
// answer into resp (nil: none expected).
func (c *Client) call(ctx context.Context, method string, group uint64, req, resp any) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("adminrpc: %s: %w", method, err)
	}
	body, err := json.Marshal(req)
	if err != nil {
		return fmt.Errorf("%w: adminrpc: %s: encode the request: %v", ErrInvalidArgument, method, err)
	}
	out, err := c.rpc.Call(ctx, &clusterpb.CallRequest{Group: group, Method: method, Body: body})
	if err != nil {
		return fromRPC(ctx, method, err)
	}
	if resp == nil || len(out.GetBody()) == 0 {
		return nil
	}
	if err := json.Unmarshal(out.GetBody(), resp); err != nil {
		return fmt.Errorf("adminrpc: %s: the server's answer does not decode: %v", method, err)
	}
	return nil
}

// checkUTF8 refuses a string JSON would alter (it replaces invalid UTF-8
// with U+FFFD, which would name another node).
func checkUTF8(method, field, v string) error {
	if !utf8.ValidString(v) {
		return fmt.Errorf("%w: adminrpc: %s: %s is not valid UTF-8", ErrInvalidArgument, method, field)
	}
	return nil
}

// Status implements Service.
func (c *Client) Status(ctx context.Context) (*wire.ClusterStatus, error) {
	var st *wire.ClusterStatus
	if err := c.call(ctx, methodStatus, 0, emptyBody{}, &st); err != nil {
		return nil, err
	}
	return st, nil
}

// RemoveNode implements Service.
func (c *Client) RemoveNode(ctx context.Context, id string) error {
	if err := checkUTF8(methodRemoveNode, "node", id); err != nil {
		return err
	}
	return c.call(ctx, methodRemoveNode, 0, removeNodeBody{ID: id}, nil)
}

// GroupInfo implements Service.
func (c *Client) GroupInfo(ctx context.Context, group uint64) (*GroupReplica, error) {
	var r *GroupReplica
	if err := c.call(ctx, methodGroupInfo, group, emptyBody{}, &r); err != nil {
		return nil, err
	}
	return r, nil
}

// ChangeGroup implements Service. A change that failed in transport may
// have been applied; retrying it with the same PrevIndex is safe.
func (c *Client) ChangeGroup(ctx context.Context, ch GroupChange) error {
	for field, v := range map[string]string{"node": ch.Node, "addr": ch.Addr, "kind": string(ch.Kind)} {
		if err := checkUTF8(methodChangeGroup, field, v); err != nil {
			return err
		}
	}
	return c.call(ctx, methodChangeGroup, ch.Group, ch, nil)
}

// ClusterKeys implements Service.
func (c *Client) ClusterKeys(ctx context.Context) (*ClusterKeys, error) {
	var k *ClusterKeys
	if err := c.call(ctx, methodClusterKeys, 0, emptyBody{}, &k); err != nil {
		return nil, err
	}
	return k, nil
}

// StateHash implements Service.
func (c *Client) StateHash(ctx context.Context, group uint64) (*StateHash, error) {
	var h *StateHash
	if err := c.call(ctx, methodStateHash, group, emptyBody{}, &h); err != nil {
		return nil, err
	}
	return h, nil
}

// ScrubBlocks implements Service. It may run long: bound it with ctx.
func (c *Client) ScrubBlocks(ctx context.Context) (*ScrubResult, error) {
	var r *ScrubResult
	if err := c.call(ctx, methodScrub, 0, emptyBody{}, &r); err != nil {
		return nil, err
	}
	return r, nil
}

// RepairBlocks implements Service. It may run long: bound it with ctx.
func (c *Client) RepairBlocks(ctx context.Context) (*RepairResult, error) {
	var r *RepairResult
	if err := c.call(ctx, methodRepair, 0, emptyBody{}, &r); err != nil {
		return nil, err
	}
	return r, nil
}
