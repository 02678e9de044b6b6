package blockrpc

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strings"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/coffer-dev/coffer/blockstore"
)

// sentinels lists every blockstore sentinel with its wire code and the gRPC
// code the server uses for it.
var sentinels = []struct {
	err  error
	code blockstore.Code
	grpc codes.Code
}{
	{blockstore.ErrNotFound, blockstore.CodeNotFound, codes.NotFound},
	{blockstore.ErrHashMismatch, blockstore.CodeHashMismatch, codes.InvalidArgument},
	{blockstore.ErrTooLarge, blockstore.CodeTooLarge, codes.InvalidArgument},
	{blockstore.ErrCorrupt, blockstore.CodeCorrupt, codes.DataLoss},
	{blockstore.ErrDiskFull, blockstore.CodeDiskFull, codes.ResourceExhausted},
	{blockstore.ErrInvalidRef, blockstore.CodeInvalidRef, codes.InvalidArgument},
	{blockstore.ErrInvalidArgument, blockstore.CodeInvalidArgument, codes.InvalidArgument},
	{blockstore.ErrUnavailable, blockstore.CodeUnavailable, codes.Unavailable},
	{blockstore.ErrClosed, blockstore.CodeClosed, codes.Unavailable},
	{blockstore.ErrInvalidConfig, blockstore.CodeInvalidConfig, codes.InvalidArgument},
}

var allSentinels = func() []error {
	var out []error
	for _, s := range sentinels {
		out = append(out, s.err)
	}
	return out
}()

// wrapsOnly checks that err wraps want (nil: none) and no other sentinel.
func wrapsOnly(t *testing.T, err, want error) {
	t.Helper()
	for _, s := range allSentinels {
		if got := errors.Is(err, s); got != (s == want) {
			t.Errorf("errors.Is(%v, %v) = %v", err, s, got)
		}
	}
}

func errorInfo(t *testing.T, err error) *errdetails.ErrorInfo {
	t.Helper()
	st, ok := status.FromError(err)
	if !ok {
		t.Fatalf("%v is not a status", err)
	}
	for _, d := range st.Details() {
		if info, ok := d.(*errdetails.ErrorInfo); ok {
			return info
		}
	}
	t.Fatalf("status %v has no ErrorInfo", st)
	return nil
}

func TestSentinelTableIsComplete(t *testing.T) {
	// Every code blockstore knows has a row above, so the round-trip tests
	// cover them all.
	for _, s := range sentinels {
		if blockstore.SentinelOf(s.code) != s.err {
			t.Errorf("SentinelOf(%q) is not %v", s.code, s.err)
		}
		if _, ok := grpcCodes[s.code]; !ok {
			t.Errorf("code %q has no gRPC code", s.code)
		}
	}
	if len(grpcCodes) != len(sentinels)+1 { // +1: CodeInternal
		t.Errorf("grpcCodes has %d codes, the table %d sentinels: a code was added", len(grpcCodes), len(sentinels))
	}
}

func TestToStatus(t *testing.T) {
	type row struct {
		name   string
		err    error
		code   codes.Code
		reason blockstore.Code
	}
	rows := []row{
		{"internal", errors.New("boom"), codes.Internal, blockstore.CodeInternal},
		{"canceled", fmt.Errorf("put: %w", context.Canceled), codes.Canceled, blockstore.CodeInternal},
		{"deadline", fmt.Errorf("put: %w", context.DeadlineExceeded), codes.DeadlineExceeded, blockstore.CodeInternal},
		{"grpc's own", status.Error(codes.ResourceExhausted, "message too large"), codes.ResourceExhausted, blockstore.CodeInternal},
	}
	for _, s := range sentinels {
		rows = append(rows, row{string(s.code), fmt.Errorf("%w: detail", s.err), s.grpc, s.code})
	}
	for _, r := range rows {
		t.Run(r.name, func(t *testing.T) {
			err := toStatus(r.err)
			if got := status.Code(err); got != r.code {
				t.Errorf("code %v, want %v", got, r.code)
			}
			if msg := status.Convert(err).Message(); msg != r.err.Error() {
				t.Errorf("message %q, want %q", msg, r.err.Error())
			}
			info := errorInfo(t, err)
			if info.GetDomain() != ErrorDomain || info.GetReason() != string(r.reason) {
				t.Errorf("ErrorInfo %v, want domain %q reason %q", info, ErrorDomain, r.reason)
			}
		})
	}
}

func TestFromRPC(t *testing.T) {
	live := context.Background()
	canceled, cancel := context.WithCancel(context.Background())
	cancel()
	withInfo := func(c codes.Code, reason string) error {
		st, err := status.New(c, "server says").WithDetails(&errdetails.ErrorInfo{Reason: reason, Domain: ErrorDomain})
		if err != nil {
			t.Fatal(err)
		}
		return st.Err()
	}
	otherDomain := func() error {
		st, err := status.New(codes.NotFound, "server says").WithDetails(&errdetails.ErrorInfo{Reason: "not_found", Domain: "elsewhere"})
		if err != nil {
			t.Fatal(err)
		}
		return st.Err()
	}()
	type row struct {
		name string
		ctx  context.Context
		err  error
		want error // sentinel or context error; nil: none
	}
	rows := []row{
		{"nil", live, nil, nil},
		{"unavailable without info", live, status.Error(codes.Unavailable, "connection refused"), blockstore.ErrUnavailable},
		{"deadline without info", live, status.Error(codes.DeadlineExceeded, "deadline"), blockstore.ErrUnavailable},
		{"canceled without info", live, status.Error(codes.Canceled, "conn closing"), blockstore.ErrUnavailable},
		{"internal without info", live, status.Error(codes.Internal, "proxy broke"), nil},
		{"resource exhausted without info", live, status.Error(codes.ResourceExhausted, "message too large"), nil},
		{"other domain", live, otherDomain, nil},
		{"internal reason", live, withInfo(codes.Internal, "internal"), nil},
		{"unknown reason", live, withInfo(codes.FailedPrecondition, "a_code_from_the_future"), nil},
		{"server deadline", live, withInfo(codes.DeadlineExceeded, "internal"), blockstore.ErrUnavailable},
		{"server canceled", live, withInfo(codes.Canceled, "internal"), blockstore.ErrUnavailable},
		{"caller canceled", canceled, status.Error(codes.Canceled, "context canceled"), context.Canceled},
		{"caller canceled wins", canceled, withInfo(codes.NotFound, "not_found"), context.Canceled},
		{"not a status", live, errors.New("plain"), nil},
	}
	for _, s := range sentinels {
		rows = append(rows, row{string(s.code), live, withInfo(s.grpc, string(s.code)), s.err})
		// The reason decides, not the gRPC code.
		rows = append(rows, row{string(s.code) + " odd code", live, withInfo(codes.Unknown, string(s.code)), s.err})
	}
	for _, r := range rows {
		t.Run(r.name, func(t *testing.T) {
			err := fromRPC(r.ctx, "op", r.err)
			if r.err == nil {
				if err != nil {
					t.Fatalf("fromRPC(nil) = %v", err)
				}
				return
			}
			if err == nil {
				t.Fatal("fromRPC returned nil")
			}
			if r.want == context.Canceled {
				if !errors.Is(err, context.Canceled) {
					t.Errorf("%v is not context.Canceled", err)
				}
				wrapsOnly(t, err, nil)
				return
			}
			wrapsOnly(t, err, r.want)
			if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
				t.Errorf("%v wraps a context error although the caller's ctx is live", err)
			}
			if st, ok := status.FromError(r.err); ok && !strings.Contains(err.Error(), st.Message()) {
				t.Errorf("%q lost the server's message %q", err, st.Message())
			}
		})
	}
}

func TestTimeNanos(t *testing.T) {
	base := time.Date(2026, 3, 1, 12, 0, 0, 123456789, time.UTC)
	rows := []struct {
		name string
		in   time.Time
		want int64
		back time.Time // what comes back out
	}{
		{"zero", time.Time{}, math.MinInt64, time.Time{}},
		{"epoch", time.Unix(0, 0), 0, time.Unix(0, 0)},
		{"now-ish", base, base.UnixNano(), base},
		{"before 1678 is clamped but not zero", time.Date(1600, 1, 1, 0, 0, 0, 0, time.UTC), math.MinInt64 + 1, time.Unix(0, math.MinInt64+1)},
		{"after 2262 is clamped", time.Date(3000, 1, 1, 0, 0, 0, 0, time.UTC), math.MaxInt64, time.Unix(0, math.MaxInt64)},
	}
	for _, r := range rows {
		t.Run(r.name, func(t *testing.T) {
			n := timeToNanos(r.in)
			if n != r.want {
				t.Errorf("timeToNanos = %d, want %d", n, r.want)
			}
			if back := nanosToTime(n); !back.Equal(r.back) || back.IsZero() != r.back.IsZero() {
				t.Errorf("nanosToTime = %v, want %v", back, r.back)
			}
		})
	}
	// Order is kept, so Delete's "stored before" means the same on both
	// sides.
	times := []time.Time{{}, time.Date(1500, 1, 1, 0, 0, 0, 0, time.UTC), time.Unix(0, 0), base, base.Add(1), time.Date(2500, 1, 1, 0, 0, 0, 0, time.UTC)}
	for i := 1; i < len(times); i++ {
		if a, b := timeToNanos(times[i-1]), timeToNanos(times[i]); a >= b {
			t.Errorf("timeToNanos(%v) = %d >= timeToNanos(%v) = %d", times[i-1], a, times[i], b)
		}
	}
}

func TestConfigValidate(t *testing.T) {
	rows := []struct {
		name string
		err  error
	}{
		{"server zero", ServerConfig{}.Validate()},
		{"client zero", ClientConfig{}.Validate()},
		{"server full", ServerConfig{MaxBlockSize: 8 << 20, ChunkSize: MaxChunkSize}.Validate()},
		{"client full", ClientConfig{MaxBlockSize: 1, ChunkSize: 1, CallTimeout: time.Second}.Validate()},
	}
	for _, r := range rows {
		if r.err != nil {
			t.Errorf("%s: %v", r.name, r.err)
		}
	}
	bad := []struct {
		name     string
		err      error
		problems []string
	}{
		{"server negative max", ServerConfig{MaxBlockSize: -1}.Validate(), []string{"MaxBlockSize"}},
		{"server chunk too big", ServerConfig{ChunkSize: MaxChunkSize + 1}.Validate(), []string{"ChunkSize"}},
		{"server both", ServerConfig{MaxBlockSize: -1, ChunkSize: -1}.Validate(), []string{"MaxBlockSize", "ChunkSize"}},
		{"client all", ClientConfig{MaxBlockSize: -1, ChunkSize: -1, CallTimeout: -time.Second}.Validate(), []string{"MaxBlockSize", "ChunkSize", "CallTimeout"}},
	}
	for _, r := range bad {
		if !errors.Is(r.err, blockstore.ErrInvalidConfig) {
			t.Errorf("%s: %v does not wrap ErrInvalidConfig", r.name, r.err)
			continue
		}
		for _, p := range r.problems {
			if !strings.Contains(r.err.Error(), p) {
				t.Errorf("%s: %v does not report %s", r.name, r.err, p)
			}
		}
	}
	if _, err := NewServer(nil, ServerConfig{}); !errors.Is(err, blockstore.ErrInvalidConfig) {
		t.Errorf("NewServer(nil) = %v", err)
	}
	if _, err := NewClient(nil, ClientConfig{}); !errors.Is(err, blockstore.ErrInvalidConfig) {
		t.Errorf("NewClient(nil) = %v", err)
	}
	if _, err := Dial(context.Background(), "127.0.0.1:1", ClientConfig{ChunkSize: -1}); !errors.Is(err, blockstore.ErrInvalidConfig) {
		t.Errorf("Dial with a bad config = %v", err)
	}
}
