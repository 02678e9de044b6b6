package gateway

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"testing"

	"github.com/coffer-dev/coffer/blockstore"
	"github.com/coffer-dev/coffer/raftmeta"
)

// The HTTP answer of each kind of failure a handler meets.
func TestWriteMetaError(t *testing.T) {
	s, err := New(Config{Meta: &fakeMeta{}, Blocks: &memBlocks{}, Cluster: fakeCluster{}})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name       string
		err        error
		status     int
		code       string
		retryAfter bool
	}{
		{"a write timed out after it was sent: retry with the same key", fmt.Errorf("commit: %w: %w", raftmeta.ErrUnknownOutcome, context.DeadlineExceeded), 503, "unknown_outcome", true},
		{"a read timed out", fmt.Errorf("stat: %w", context.DeadlineExceeded), 503, "unavailable", true},
		{"a conflict", &raftmeta.OpError{Code: raftmeta.CodeConflict, Op: 0, Current: 4}, 409, "conflict", false},
		{"no leader after the retries", fmt.Errorf("route: %w", raftmeta.ErrNotLeader), 503, "unavailable", true},
		{"quota", &raftmeta.OpError{Code: raftmeta.CodeQuota, Op: 0}, 507, "quota_exceeded", false},
		{"a block lost everywhere", fmt.Errorf("get: %w", blockstore.ErrNotFound), 500, "block_missing", false},
		{"block nodes unreachable", fmt.Errorf("put: %w", blockstore.ErrUnavailable), 503, "unavailable", true},
		{"bad block bytes", fmt.Errorf("put: %w", blockstore.ErrHashMismatch), 400, "hash_mismatch", false},
		{"too many uploads open", &raftmeta.OpError{Code: raftmeta.CodeTooMany, Op: -1}, 429, "too_many", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := httptest.NewRecorder()
			s.writeMetaError(w, httptest.NewRequest("GET", "/", nil), tc.err)
			var out struct {
				Code       string `json:"code"`
				CurrentRev uint64 `json:"current_rev"`
			}
			if err := json.Unmarshal(w.Body.Bytes(), &out); err != nil {
				t.Fatalf("body %q: %v", w.Body, err)
			}
			if w.Code != tc.status || out.Code != tc.code || (w.Header().Get("Retry-After") != "") != tc.retryAfter {
				t.Fatalf("HTTP %d %q (Retry-After %q), want %d %q (Retry-After %v)", w.Code, out.Code, w.Header().Get("Retry-After"), tc.status, tc.code, tc.retryAfter)
			}
			if tc.code == "conflict" && out.CurrentRev != 4 {
				t.Fatalf("current_rev %d, want 4", out.CurrentRev)
			}
		})
	}
}
