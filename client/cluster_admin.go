package client

import (
	"context"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/coffer-dev/coffer/internal/wire"
)

// The admin API's cluster calls that check and exercise the cluster (the
// fault harness's end-state checks and leadership nemesis). They need an
// admin user's credentials, else ErrForbidden.

// auditDefault is the server's bound on an audit when the caller's ctx
// sets none, auditMax the longest it accepts; auditSlack is how much
// longer the client waits for the answer.
const (
	auditDefault = 10 * time.Minute
	auditMax     = 2 * time.Hour
	auditSlack   = 30 * time.Second
)

func groupPath(id uint64, suffix string) string {
	return "/v1/admin/groups/" + strconv.FormatUint(id, 10) + suffix
}

// GroupHashes returns the state hash and applied index of every replica in
// Raft group id's configuration (0 is the system group, 1 to S the
// shards). Replicas at the same applied index must have the same hash; a
// replica that did not answer has its ReplicaHash.Error set. An unknown
// group is ErrNotFound.
func (c *Client) GroupHashes(ctx context.Context, id uint64) (*wire.GroupHashes, error) {
	var out wire.GroupHashes
	if err := c.do(ctx, http.MethodGet, groupPath(id, "/hashes"), nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// TransferLeader moves the leadership of Raft group id to the voter to
// ("": the voter that leads the fewest groups) and returns once the new
// leader is known. Naming the current leader changes nothing. A node that
// is not a voter of the group is ErrInvalidArgument; ErrUnavailable means
// the group had no leader, the transfer failed or no new leader was
// known in time (with to empty, the leadership may have moved anyway).
func (c *Client) TransferLeader(ctx context.Context, id uint64, to string) (*wire.TransferResult, error) {
	var out wire.TransferResult
	// Sending it again is harmless when it names its target (the second
	// one finds it leading); without, a resend would move it once more.
	err := c.send(ctx, &request{method: http.MethodPost, path: groupPath(id, "/transfer"),
		in: wire.TransferRequest{To: to}, out: &out, safe: to != ""})
	if err != nil {
		return nil, err
	}
	return &out, nil
}

// AuditBlocks has every block node scrub its store (verifying every copy;
// a corrupt one is dropped and restored) and then run a repair pass, and
// returns how many verified copies every block has. It can take long: the
// server stops at ctx's deadline (sent along), or after 10 minutes when
// ctx has none. Sending it again is harmless.
func (c *Client) AuditBlocks(ctx context.Context) (*wire.BlockAudit, error) {
	bound := auditDefault
	q := url.Values{}
	if dl, ok := ctx.Deadline(); ok {
		bound = min(max(time.Until(dl), time.Second), auditMax)
		q.Set("timeout", bound.Round(time.Millisecond).String())
	}
	var out wire.BlockAudit
	err := c.send(ctx, &request{method: http.MethodPost, path: "/v1/admin/blocks/audit", query: q, out: &out,
		safe: true, timeout: bound + auditSlack})
	if err != nil {
		return nil, err
	}
	return &out, nil
}
