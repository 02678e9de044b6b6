package client

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
)

func TestRateLimitedRequestsWaitAndRetry(t *testing.T) {
	var calls atomic.Int32
	busyFor := int32(2)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if calls.Add(1) <= busyFor {
			w.Header().Set("Retry-After", "0")
			writeJSON(w, http.StatusTooManyRequests, map[string]string{"code": "rate_limited", "message": "slow down"})
			return
		}
		writeJSON(w, http.StatusOK, map[string]any{"user": "alice"})
	}))
	defer srv.Close()
	c := newClient(t, srv.URL)
	who, err := c.Whoami(context.Background())
	if err != nil || who.User != "alice" {
		t.Fatalf("whoami after two 429s: %+v, %v", who, err)
	}
	if got := calls.Load(); got != 3 {
		t.Fatalf("%d calls, want 3", got)
	}

	// A server that stays busy: the 429 comes back after maxRateWaits waits.
	calls.Store(0)
	busyFor = 1 << 30
	_, err = c.Whoami(context.Background())
	var e *Error
	if !errors.As(err, &e) || e.Status != http.StatusTooManyRequests {
		t.Fatalf("want the 429 answer, got %v", err)
	}
	if got := calls.Load(); got != maxRateWaits+1 {
		t.Fatalf("%d calls, want %d", got, maxRateWaits+1)
	}
}
