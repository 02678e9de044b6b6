package gateway

import (
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/coffer-dev/coffer/gateway/auth"
)

// An Idempotency-Key is scoped to the user: the same key of two users
// never gives the same request ID, also when their IDs are equal on
// different shards (user IDs repeat across shards).
func TestRequestIDScope(t *testing.T) {
	id := func(cl auth.Claims, key string) string {
		t.Helper()
		r := httptest.NewRequest("POST", "/v1/commit", nil)
		if key != "" {
			r.Header.Set(IdempotencyHeader, key)
		}
		w := httptest.NewRecorder()
		rid, ok := requestID(w, r, cl)
		if !ok {
			t.Fatalf("key %q refused: %d %s", key, w.Code, w.Body)
		}
		return rid
	}
	a := auth.Claims{Shard: 1, UserID: 7}
	for _, tc := range []struct {
		name string
		b    auth.Claims
	}{
		{"same ID on another shard", auth.Claims{Shard: 2, UserID: 7}},
		{"another user on the same shard", auth.Claims{Shard: 1, UserID: 8}},
		{"shard and ID digits that would run together", auth.Claims{Shard: 17, UserID: 1}},
	} {
		if x, y := id(a, "k1"), id(tc.b, "k1"); x == y {
			t.Errorf("%s: both %q", tc.name, x)
		}
	}
	if x, y := id(a, "k1"), id(a, "k1"); x != y {
		t.Errorf("the same user's key gives %q and %q", x, y)
	}
	if x, y := id(a, ""), id(a, ""); x == y || !strings.HasPrefix(x, "g") {
		t.Errorf("requests without a key got %q and %q", x, y)
	}
	w := httptest.NewRecorder()
	r := httptest.NewRequest("POST", "/v1/commit", nil)
	r.Header.Set(IdempotencyHeader, strings.Repeat("x", 81))
	if _, ok := requestID(w, r, a); ok || w.Code != 400 {
		t.Errorf("an 81-character key: ok=%v HTTP %d", ok, w.Code)
	}
}
