// Package client is the Go client of Coffer's HTTP API, used by the coffer
// CLI, the sync engine, tests and the fault harness.
package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/coffer-dev/coffer/internal/wire"
)

// DefaultTimeout bounds each attempt at one server.
const DefaultTimeout = 30 * time.Second

// maxAnswer caps the size of a JSON answer the client reads.
const maxAnswer = 16 << 20

// Config configures a Client.
type Config struct {
	// Servers are the base URLs of the cluster's HTTP API, e.g.
	// http://127.0.0.1:8080. A call starts with the server that answered
	// last (at first the first) and moves on in order when one cannot be
	// reached or answers 502, 503 or 504.
	Servers []string
	// User and Password are sent as HTTP Basic credentials (token auth
	// comes with the gateway). Empty User and Password send none.
	User, Password string
	// HTTPClient sends the requests (default: a new client with
	// http.DefaultTransport). Its own Timeout, if any, also applies.
	HTTPClient *http.Client
	// Timeout bounds each attempt at one server: connecting, the request
	// and reading the answer (default DefaultTimeout).
	Timeout time.Duration
}

// Validate reports every problem with the configuration at once; the error
// wraps ErrInvalidConfig.
func (c Config) Validate() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if len(c.Servers) == 0 {
		bad("no servers")
	}
	for _, s := range c.Servers {
		u, err := url.Parse(s)
		switch {
		case err != nil:
			bad("server %q: %v", s, err)
		case u.Scheme != "http" && u.Scheme != "https":
			bad("server %q: the URL must start with http:// or https://", s)
		case u.Host == "":
			bad("server %q: no host", s)
		case u.User != nil:
			bad("server %q: put credentials in User and Password, not the URL", s)
		case u.RawQuery != "" || u.Fragment != "":
			bad("server %q: a base URL has no query or fragment", s)
		}
	}
	if strings.Contains(c.User, ":") {
		bad("user %q: HTTP Basic user names cannot contain ':'", c.User)
	}
	if c.Timeout < 0 {
		bad("timeout %v: must not be negative", c.Timeout)
	}
	if len(errs) > 0 {
		return fmt.Errorf("%w: %w", ErrInvalidConfig, errors.Join(errs...))
	}
	return nil
}

// Client calls one Coffer cluster. It is safe for concurrent use.
type Client struct {
	servers   []string // without a trailing slash
	user      string
	password  string
	hc        *http.Client
	timeout   time.Duration
	preferred atomic.Int32 // index of the server that answered last
}

// New returns a client for cfg.
func New(cfg Config) (*Client, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	c := &Client{user: cfg.User, password: cfg.Password, hc: cfg.HTTPClient, timeout: cfg.Timeout}
	for _, s := range cfg.Servers {
		c.servers = append(c.servers, strings.TrimRight(s, "/"))
	}
	if c.hc == nil {
		c.hc = &http.Client{}
	}
	if c.timeout == 0 {
		c.timeout = DefaultTimeout
	}
	return c, nil
}

// ClusterStatus returns the cluster as the answering node sees it.
func (c *Client) ClusterStatus(ctx context.Context) (*wire.ClusterStatus, error) {
	var st wire.ClusterStatus
	if err := c.do(ctx, http.MethodGet, "/v1/admin/cluster", nil, &st); err != nil {
		return nil, err
	}
	return &st, nil
}

// RemoveNode starts removing the named node from the cluster: its replicas
// move to other nodes, then it leaves.
func (c *Client) RemoveNode(ctx context.Context, name string) (*wire.RemoveNodeResult, error) {
	var res wire.RemoveNodeResult
	if err := c.do(ctx, http.MethodPost, "/v1/admin/nodes/"+url.PathEscape(name)+"/remove", nil, &res); err != nil {
		return nil, err
	}
	return &res, nil
}

// do sends the request to the servers in turn, starting with the one that
// answered last, and decodes a JSON answer into out. It moves on to the
// next server when one cannot be reached or answers 502, 503 or 504, but
// a request that is not safe to repeat only when it certainly did not reach
// the server (the connection was never made).
func (c *Client) do(ctx context.Context, method, path string, in, out any) error {
	var body []byte
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return fmt.Errorf("encoding the request: %w", err)
		}
		body = b
	}
	idempotent := method == http.MethodGet || method == http.MethodHead
	n := len(c.servers)
	start := int(c.preferred.Load())
	var fails []error
	var lastAnswer *Error
	for i := range n {
		idx := (start + i) % n
		next, err := c.attempt(ctx, c.servers[idx], method, path, body, idempotent, out)
		if err == nil {
			c.preferred.Store(int32(idx))
			return nil
		}
		if ctx.Err() != nil {
			return fmt.Errorf("%s %s: %w", method, path, ctx.Err())
		}
		if !next {
			return err
		}
		if e := (*Error)(nil); errors.As(err, &e) {
			lastAnswer = e
		}
		fails = append(fails, err)
	}
	if lastAnswer != nil {
		return lastAnswer
	}
	return fmt.Errorf("%w: no server answered: %w", ErrUnavailable, errors.Join(fails...))
}

// attempt sends the request to one server. next says whether another
// server may be tried.
func (c *Client) attempt(ctx context.Context, server, method, path string, body []byte, idempotent bool, out any) (next bool, err error) {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, server+path, rd)
	if err != nil {
		return false, err
	}
	req.Header.Set("Accept", "application/json")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.user != "" || c.password != "" {
		req.SetBasicAuth(c.user, c.password)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		if idempotent || neverSent(err) {
			return true, err
		}
		return false, fmt.Errorf("%w: the outcome is unknown (the server may have acted on it): %w", ErrUnavailable, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswer+1))
	if err != nil {
		if idempotent {
			return true, fmt.Errorf("%s %s: reading the answer: %w", method, server+path, err)
		}
		return false, fmt.Errorf("%w: %s %s: reading the answer: %w", ErrUnavailable, method, server+path, err)
	}
	if len(data) > maxAnswer {
		return false, fmt.Errorf("%s %s: the answer is larger than %d bytes", method, server+path, maxAnswer)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		e := answerError(resp.StatusCode, data)
		retry := resp.StatusCode == http.StatusBadGateway || resp.StatusCode == http.StatusServiceUnavailable ||
			resp.StatusCode == http.StatusGatewayTimeout
		return retry && idempotent, e
	}
	if out == nil {
		return false, nil
	}
	if err := json.Unmarshal(data, out); err != nil {
		return false, fmt.Errorf("%s %s: bad answer: %w", method, server+path, err)
	}
	return false, nil
}

// answerError turns an error answer into an *Error, from its wire.Error
// body if it has one.
func answerError(status int, data []byte) *Error {
	var we wire.Error
	if json.Unmarshal(data, &we) == nil && we.Code != "" {
		return &Error{Status: status, Code: we.Code, Message: we.Message}
	}
	msg := strings.TrimSpace(string(data))
	if len(msg) > 200 {
		msg = msg[:200] + "..."
	}
	if msg == "" {
		msg = http.StatusText(status)
	}
	return &Error{Status: status, Code: statusCode(status), Message: msg}
}

// neverSent reports whether err shows that the request cannot have reached
// a server: the connection was refused or never made.
func neverSent(err error) bool {
	if errors.Is(err, syscall.ECONNREFUSED) {
		return true
	}
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial"
}
