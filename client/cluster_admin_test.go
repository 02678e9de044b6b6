package client

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coffer-dev/coffer/internal/wire"
)

func TestGroupHashes(t *testing.T) {
	want := wire.GroupHashes{Group: 3, Leader: "n1", Replicas: []wire.ReplicaHash{
		{Node: "n1", Suffrage: "voter", Applied: 9, StateHash: "ab"},
		{Node: "n2", Suffrage: "nonvoter", Error: "unreachable"},
	}}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/admin/groups/{id}/hashes", func(w http.ResponseWriter, r *http.Request) {
		if r.PathValue("id") != "3" {
			writeJSON(w, 404, wire.Error{Code: "not_found", Message: "no group " + r.PathValue("id")})
			return
		}
		writeJSON(w, 200, want)
	})
	srv := httptest.NewServer(mux)
	defer srv.Close()
	c := newClient(t, srv.URL)
	got, err := c.GroupHashes(context.Background(), 3)
	if err != nil || !reflect.DeepEqual(*got, want) {
		t.Fatalf("GroupHashes = %+v, %v; want %+v", got, err, want)
	}
	if _, err := c.GroupHashes(context.Background(), 9); !errors.Is(err, ErrNotFound) {
		t.Errorf("GroupHashes of an unknown group: %v, want ErrNotFound", err)
	}
}

// TestTransferLeader checks the body sent, and that a transfer naming its
// target moves on to the next server after a 503 while one without does
// not (a resend would move the leadership again).
func TestTransferLeader(t *testing.T) {
	var bodies []string
	var calls atomic.Int32
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/admin/groups/{id}/transfer", func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		b, _ := io.ReadAll(r.Body)
		bodies = append(bodies, string(b))
		writeJSON(w, 200, wire.TransferResult{Group: 2, Leader: "n3", Term: 7, Previous: "n1"})
	})
	good := httptest.NewServer(mux)
	defer good.Close()
	busy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, 503, wire.Error{Code: "unavailable", Message: "no leader"})
	}))
	defer busy.Close()

	c := newClient(t, good.URL)
	res, err := c.TransferLeader(context.Background(), 2, "n3")
	if err != nil || *res != (wire.TransferResult{Group: 2, Leader: "n3", Term: 7, Previous: "n1"}) {
		t.Fatalf("TransferLeader = %+v, %v", res, err)
	}
	if _, err := c.TransferLeader(context.Background(), 2, ""); err != nil {
		t.Fatal(err)
	}
	if want := []string{`{"to":"n3"}`, `{}`}; !reflect.DeepEqual(bodies, want) {
		t.Errorf("bodies %q, want %q", bodies, want)
	}

	c = newClient(t, busy.URL, good.URL)
	if _, err := c.TransferLeader(context.Background(), 2, ""); !errors.Is(err, ErrUnavailable) {
		t.Errorf("a transfer without a target after a 503: %v, want ErrUnavailable", err)
	}
	before := calls.Load()
	c = newClient(t, busy.URL, good.URL)
	if _, err := c.TransferLeader(context.Background(), 2, "n3"); err != nil {
		t.Errorf("a transfer with a target after a 503: %v, want the next server's answer", err)
	}
	if calls.Load() != before+1 {
		t.Errorf("the good server got %d calls, want 1", calls.Load()-before)
	}
}

// TestAuditBlocks checks that the ctx's deadline is sent as the server's
// timeout, and none without one.
func TestAuditBlocks(t *testing.T) {
	want := wire.BlockAudit{Blocks: 5, R: 3, UnderReplicatedTotal: 1,
		UnderReplicated: []wire.UnderReplicated{{Ref: "ab", Copies: 2}},
		Nodes:           []wire.BlockAuditNode{{Node: "n1", Scanned: 5, Corrupt: 1, Repaired: 1, Blocks: 5}}}
	timeouts := make(chan string, 2)
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/admin/blocks/audit", func(w http.ResponseWriter, r *http.Request) {
		timeouts <- r.URL.Query().Get("timeout")
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(want)
	})
	srv := httptest.NewServer(mux)
	defer srv.Close()
	c := newClient(t, srv.URL)
	got, err := c.AuditBlocks(context.Background())
	if err != nil || !reflect.DeepEqual(*got, want) {
		t.Fatalf("AuditBlocks = %+v, %v; want %+v", got, err, want)
	}
	if v := <-timeouts; v != "" {
		t.Errorf("timeout %q sent without a ctx deadline", v)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := c.AuditBlocks(ctx); err != nil {
		t.Fatal(err)
	}
	d, err := time.ParseDuration(<-timeouts)
	if err != nil || d <= 50*time.Second || d > time.Minute {
		t.Errorf("timeout sent %v (%v), want just under 1m", d, err)
	}
}
