package workload

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"

	"github.com/coffer-dev/coffer/client"
)

// trimmedFeed serves a change feed whose journal holds seqs start..head:
// a cursor before start-1 or after head is refused (410 cursor_reset).
func trimmedFeed(t *testing.T, start, head uint64) *client.Client {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		switch r.URL.Path {
		case "/v1/whoami":
			fmt.Fprintf(w, `{"user":"u","cursor":%d}`, head)
		case "/v1/changes":
			c, _ := strconv.ParseUint(r.URL.Query().Get("cursor"), 10, 64)
			if c+1 < start || c > head {
				w.WriteHeader(http.StatusGone)
				fmt.Fprintf(w, `{"code":"cursor_reset","message":"gone","head":%d}`, head)
				return
			}
			fmt.Fprintf(w, `{"records":[],"cursor":%d,"head":%d}`, c, head)
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(srv.Close)
	cl, err := client.New(client.Config{Servers: []string{srv.URL}})
	if err != nil {
		t.Fatal(err)
	}
	return cl
}

func TestExplainReset(t *testing.T) {
	cl := trimmedFeed(t, 10, 20)
	w := &feedWorkload{base: base{name: "feed", cfg: Config{}.withDefaults("feed")}}
	tests := []struct {
		name    string
		reset   feedReset
		finding bool
		says    string
	}{
		{"trimmed", feedReset{cursor: 3, head: 20}, false, "before the oldest record kept (seq 10)"},
		{"just before the start", feedReset{cursor: 8, head: 20}, false, "(seq 10)"},
		{"held by the journal", feedReset{cursor: 9, head: 20}, true, "spurious"},
		{"well inside", feedReset{cursor: 15, head: 20}, true, "spurious"},
		{"ahead of the head", feedReset{cursor: 25, head: 20}, true, "ahead of the head"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			says, finding := w.explainReset(context.Background(), cl, tc.reset)
			if finding != tc.finding || !strings.Contains(says, tc.says) {
				t.Errorf("explainReset(%+v) = %q, %v; want finding=%v and %q", tc.reset, says, finding, tc.finding, tc.says)
			}
		})
	}
	res := w.checkResets(context.Background(), cl, []feedReset{{reader: "p1", cursor: 3, head: 20}, {reader: "p2", cursor: 15, head: 20, inCheck: true}})
	if res.Valid || len(res.Details) != 2 || !strings.HasPrefix(res.Details[1], "FINDING: reader p2: cursor 15 reset after healing") {
		t.Errorf("checkResets: %s %q", res, res.Details)
	}
	if res := w.checkResets(context.Background(), cl, []feedReset{{reader: "p1", cursor: 3, head: 20}}); !res.Valid {
		t.Errorf("a trimmed journal's reset is a finding: %s %q", res, res.Details)
	}
}

// TestReaderResetStartsNewLog: after a reset the reader follows the feed
// from the head in a new log, so the checker sees no gap.
func TestReaderResetStartsNewLog(t *testing.T) {
	cl := trimmedFeed(t, 10, 20)
	r := newFeedReader("p1", 1)
	_, err := cl.Changes(context.Background(), 0, 0, 0)
	if err == nil {
		t.Fatal("cursor 0 of a trimmed journal was not refused")
	}
	r.reset(context.Background(), cl, err, false)
	if r.cursor != 20 || len(r.logs) != 2 || r.logs[1].From != 20 || r.logs[1].Reader != "p1.2" || len(r.resets) != 1 {
		t.Errorf("after reset: cursor %d logs %+v resets %+v", r.cursor, r.logs, r.resets)
	}
}
