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
	mrand "math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"strconv"
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
	// Token is a session token (from Login), sent as
	// "Authorization: Bearer". When set, User and Password are not sent.
	Token string
	// User and Password are sent as HTTP Basic credentials when there is no
	// Token. Empty User and Password send none.
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
			bad("server %q: %v", redactRaw(s), redactErr(err))
		case u.Scheme != "http" && u.Scheme != "https":
			bad("server %q: the URL must start with http:// or https://", s)
		case u.Host == "":
			bad("server %q: no host", s)
		case u.User != nil:
			bad("server %q: put credentials in User and Password, not the URL", u.Redacted())
		case u.RawQuery != "" || u.Fragment != "":
			bad("server %q: a base URL has no query or fragment", s)
		}
	}
	if strings.Contains(c.User, ":") {
		bad("user %q: HTTP Basic user names cannot contain ':'", c.User)
	}
	if strings.ContainsAny(c.Token, " \t\r\n") {
		bad("token: must not contain white space")
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
	token     string
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
	c := &Client{token: cfg.Token, user: cfg.User, password: cfg.Password, hc: cfg.HTTPClient, timeout: cfg.Timeout}
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

// request is one API call.
type request struct {
	method, path string
	query        url.Values
	header       http.Header
	body         []byte // sent as is (with in == nil)
	in, out      any    // JSON request and answer bodies (nil: none)
	// safe says the request may be sent again after it may have reached a
	// server: it reads, or it carries an Idempotency-Key, or repeating it
	// is harmless.
	safe bool
	// noAuth sends no credentials (login).
	noAuth bool
	// answer, if set, receives the successful answer's headers.
	answer *http.Header
	// timeout, if set, bounds each attempt instead of Config.Timeout (a
	// long-poll waits longer).
	timeout time.Duration
}

// do sends a JSON request without extra headers: see send.
func (c *Client) do(ctx context.Context, method, path string, in, out any) error {
	return c.send(ctx, &request{method: method, path: path, in: in, out: out})
}

// send sends the request to the servers in turn, starting with the one that
// answered last, and decodes a JSON answer into r.out. It moves on to the
// next server when one cannot be reached or answers 502, 503 or 504, but
// a request that is not safe to repeat (a write without an
// Idempotency-Key) only when it certainly did not reach the server (the
// connection was never made).
func (c *Client) send(ctx context.Context, r *request) error {
	if r.in != nil {
		b, err := json.Marshal(r.in)
		if err != nil {
			return fmt.Errorf("encoding the request: %w", err)
		}
		r.body = b
	}
	safe := r.safe || r.method == http.MethodGet || r.method == http.MethodHead ||
		r.header.Get("Idempotency-Key") != ""
	n := len(c.servers)
	start := int(c.preferred.Load())
	var fails []error
	var lastAnswer *Error
	waits := 0
	for i := 0; i < n; i++ {
		idx := (start + i) % n
		next, err := c.attempt(ctx, c.servers[idx], r, safe)
		if err == nil {
			c.preferred.Store(int32(idx))
			return nil
		}
		if ctx.Err() != nil {
			return fmt.Errorf("%s %s: %w", r.method, r.path, ctx.Err())
		}
		if c.waitRate(ctx, err, &waits) {
			i-- // the same server again
			continue
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

// newRequest builds the HTTP request of r for one server, with credentials.
func (c *Client) newRequest(ctx context.Context, server string, r *request) (*http.Request, error) {
	var rd io.Reader
	if r.body != nil {
		rd = bytes.NewReader(r.body)
	}
	u := server + r.path
	if len(r.query) > 0 {
		u += "?" + r.query.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, r.method, u, rd)
	if err != nil {
		return nil, err
	}
	for k, v := range r.header {
		req.Header[k] = v
	}
	if req.Header.Get("Accept") == "" {
		req.Header.Set("Accept", "application/json")
	}
	if r.in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	switch {
	case r.noAuth:
	case c.token != "":
		req.Header.Set("Authorization", "Bearer "+c.token)
	case c.user != "" || c.password != "":
		req.SetBasicAuth(c.user, c.password)
	}
	return req, nil
}

// attempt sends the request to one server. next says whether another
// server may be tried.
func (c *Client) attempt(ctx context.Context, server string, r *request, safe bool) (next bool, err error) {
	timeout := c.timeout
	if r.timeout > 0 {
		timeout = r.timeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := c.newRequest(ctx, server, r)
	if err != nil {
		return false, err
	}
	method, path := r.method, r.path
	resp, err := c.hc.Do(req)
	if err != nil {
		if safe || neverSent(err) {
			return true, err
		}
		return false, fmt.Errorf("%w: the outcome is unknown (the server may have acted on it): %w", ErrUnavailable, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswer+1))
	if err != nil {
		if safe {
			return true, fmt.Errorf("%s %s: reading the answer: %w", method, server+path, err)
		}
		return false, fmt.Errorf("%w: %s %s: reading the answer: %w", ErrUnavailable, method, server+path, err)
	}
	if len(data) > maxAnswer {
		return false, fmt.Errorf("%s %s: the answer is larger than %d bytes", method, server+path, maxAnswer)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		e := answerError(resp.StatusCode, data)
		e.RetryAfter = retryAfter(resp.Header)
		return retryStatus(resp.StatusCode) && safe, e
	}
	if r.answer != nil {
		*r.answer = resp.Header
	}
	if r.out == nil {
		return false, nil
	}
	if err := json.Unmarshal(data, r.out); err != nil {
		return false, fmt.Errorf("%s %s: bad answer: %w", method, server+path, err)
	}
	return false, nil
}

// Rate limits: a 429 answer is waited out (its Retry-After, at most
// maxRateWait each time) and the request sent again to the same server,
// up to maxRateWaits times per call.
const (
	maxRateWaits = 8
	maxRateWait  = 10 * time.Second
)

// retryAfter reads a Retry-After header in seconds (0: none).
func retryAfter(h http.Header) time.Duration {
	secs, err := strconv.Atoi(strings.TrimSpace(h.Get("Retry-After")))
	if err != nil || secs < 0 {
		return 0
	}
	return time.Duration(secs) * time.Second
}

// waitRate waits out a 429 answer (the request was not acted on) and
// reports whether to send the request again.
func (c *Client) waitRate(ctx context.Context, err error, waits *int) bool {
	e := (*Error)(nil)
	if !errors.As(err, &e) || e.Status != http.StatusTooManyRequests || *waits >= maxRateWaits {
		return false
	}
	*waits++
	d := min(max(e.RetryAfter, 100*time.Millisecond), maxRateWait)
	// Spread the clients that were turned away together.
	d += time.Duration(mrand.Int64N(int64(d)/2 + 1))
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// retryStatus reports whether an answer with this status lets a safe
// request move on to another server.
func retryStatus(status int) bool {
	return status == http.StatusBadGateway || status == http.StatusServiceUnavailable ||
		status == http.StatusGatewayTimeout
}

// answerError turns an error answer into an *Error, from its wire.Error
// body if it has one.
func answerError(status int, data []byte) *Error {
	var we wire.Error
	if json.Unmarshal(data, &we) == nil && we.Code != "" {
		return &Error{Status: status, Code: we.Code, Message: we.Message, CurrentRev: we.CurrentRev,
			Op: we.Op, Path: we.Path, Head: we.Head}
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

// redactRaw hides what may be credentials in a server string that does
// not parse: everything between "://" and an "@".
func redactRaw(s string) string {
	scheme, rest, ok := strings.Cut(s, "://")
	if !ok {
		return s
	}
	if _, host, ok := strings.Cut(rest, "@"); ok {
		return scheme + "://xxxxx@" + host
	}
	return s
}

// redactErr drops the URL (which may hold a password) from a URL parse
// error.
func redactErr(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}
