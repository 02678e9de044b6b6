package client

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coffer-dev/coffer/internal/wire"
)

// changesJSON is a page as the gateway writes it (raftmeta.ChangesPage).
const changesJSON = `{
  "records": [
    {"seq": 17, "index": 33, "time": 1795628832588329600, "request_id": "gf47a025c8",
     "changes": [
       {"id": 12, "rev": 2, "op": "put", "parent": 3, "name": "notes.txt", "path": "/notes.txt", "size": 2,
        "hash": "fb04dcb6970e4c3d1873de51fd5a50d7bb46b3383113602665c350ec40b5f990"}
     ]},
    {"seq": 18, "index": 35, "time": 1795628832588329700, "request_id": "r2",
     "changes": [
       {"id": 4, "rev": 3, "op": "move", "parent": 1, "name": "b", "path": "/b", "old_path": "/a", "dir": true,
        "size": 0, "hash": "0000000000000000000000000000000000000000000000000000000000000000"},
       {"id": 12, "rev": 3, "op": "delete", "parent": 3, "name": "notes.txt", "path": "/notes.txt", "deleted": true,
        "size": 0, "hash": "0000000000000000000000000000000000000000000000000000000000000000"}
     ]}
  ],
  "cursor": 18,
  "head": 20,
  "more": true
}`

func TestChangesDecoding(t *testing.T) {
	var mu sync.Mutex
	var queries []url.Values
	srv := newCounter(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/v1/changes" || r.Method != http.MethodGet {
			writeJSON(w, 404, wire.Error{Code: "not_found", Message: r.URL.Path})
			return
		}
		mu.Lock()
		queries = append(queries, r.URL.Query())
		mu.Unlock()
		io.WriteString(w, changesJSON)
	})
	c := newClient(t, srv.URL)
	p, err := c.Changes(context.Background(), 16, 50, 0)
	if err != nil {
		t.Fatal(err)
	}
	zero := strings.Repeat("0", 64)
	want := &ChangePage{
		Records: []ChangeRecord{
			{Seq: 17, Index: 33, Time: 1795628832588329600, RequestID: "gf47a025c8", Changes: []Change{
				{ID: 12, Rev: 2, Op: "put", Parent: 3, Name: "notes.txt", Path: "/notes.txt", Size: 2,
					Hash: "fb04dcb6970e4c3d1873de51fd5a50d7bb46b3383113602665c350ec40b5f990"},
			}},
			{Seq: 18, Index: 35, Time: 1795628832588329700, RequestID: "r2", Changes: []Change{
				{ID: 4, Rev: 3, Op: "move", Parent: 1, Name: "b", Path: "/b", OldPath: "/a", Dir: true, Hash: zero},
				{ID: 12, Rev: 3, Op: "delete", Parent: 3, Name: "notes.txt", Path: "/notes.txt", Deleted: true, Hash: zero},
			}},
		},
		Cursor: 18, Head: 20, More: true,
	}
	if !reflect.DeepEqual(p, want) {
		t.Errorf("page\n%+v\nwant\n%+v", p, want)
	}
	// Every field the gateway sends has a home in the types.
	dec := json.NewDecoder(strings.NewReader(changesJSON))
	dec.DisallowUnknownFields()
	if err := dec.Decode(new(ChangePage)); err != nil {
		t.Errorf("a field of the answer is not decoded: %v", err)
	}
	// Encoding the page again gives the same JSON (tags match the wire).
	var a, b any
	enc, _ := json.Marshal(p)
	json.Unmarshal(enc, &a)
	json.Unmarshal([]byte(changesJSON), &b)
	if !reflect.DeepEqual(a, b) {
		t.Errorf("re-encoded page differs:\n%s", enc)
	}

	if _, err := c.Changes(context.Background(), 0, 0, 1500*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	if got := queries[0]; got.Get("cursor") != "16" || got.Get("limit") != "50" || got.Has("wait") {
		t.Errorf("first query %v, want cursor=16 limit=50 and no wait", got)
	}
	got := queries[1]
	d, err := time.ParseDuration(got.Get("wait"))
	if got.Get("cursor") != "0" || got.Has("limit") || err != nil || d != 1500*time.Millisecond {
		t.Errorf("second query %v, want cursor=0, no limit and wait=1.5s", got)
	}
}

func TestChangesCursorReset(t *testing.T) {
	reset := newCounter(t, func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, 410, wire.Error{Code: "cursor_reset", Message: "cursor 5 is before the journal's start: list afresh, then follow the feed from head", Head: 16})
	})
	other := newCounter(t, func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, changesJSON) })
	_, err := newClient(t, reset.URL, other.URL).Changes(context.Background(), 5, 0, 0)
	if !errors.Is(err, ErrCursorReset) {
		t.Fatalf("got %v, want ErrCursorReset", err)
	}
	var e *Error
	if !errors.As(err, &e) || e.Head != 16 || e.Status != 410 {
		t.Errorf("error %#v, want status 410 and head 16", e)
	}
	if !strings.Contains(err.Error(), "head 16") {
		t.Errorf("message %q does not name the head", err)
	}
	if errors.Is(err, ErrUnavailable) || errors.Is(err, ErrNotFound) {
		t.Errorf("%v matches another sentinel", err)
	}
	if other.n.Load() != 0 {
		t.Error("a cursor reset was asked again at another server")
	}
}

// A long-poll is bounded by Config.Timeout plus its wait, not by
// Config.Timeout alone.
func TestChangesLongPollBeyondTimeout(t *testing.T) {
	const timeout = 200 * time.Millisecond
	// The server answers when the poll's wait ends, as the gateway does.
	poll := newCounter(t, func(w http.ResponseWriter, r *http.Request) {
		d, err := time.ParseDuration(r.URL.Query().Get("wait"))
		if err != nil {
			writeJSON(w, 400, wire.Error{Code: "invalid_argument", Message: err.Error()})
			return
		}
		select {
		case <-time.After(d):
		case <-r.Context().Done():
			return
		}
		writeJSON(w, 200, ChangePage{Cursor: 7, Head: 7})
	})
	c, err := New(Config{Servers: []string{poll.URL}, Timeout: timeout})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	p, err := c.Changes(context.Background(), 7, 0, 3*timeout)
	if err != nil {
		t.Fatalf("a long-poll longer than Timeout: %v", err)
	}
	if p.Cursor != 7 || len(p.Records) != 0 {
		t.Errorf("page %+v", p)
	}
	if el := time.Since(start); el < 3*timeout {
		t.Errorf("answered after %v, before the wait ended", el)
	}

	// A server that holds the poll beyond Timeout + wait is given up on.
	hang := newCounter(t, func(w http.ResponseWriter, r *http.Request) { <-r.Context().Done() })
	c, err = New(Config{Servers: []string{hang.URL}, Timeout: timeout})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := c.Changes(context.Background(), 7, 0, timeout)
		done <- err
	}()
	select {
	case err := <-done:
		if !errors.Is(err, ErrUnavailable) {
			t.Errorf("a hung long-poll: %v, want ErrUnavailable", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("a hung long-poll is still waiting after 30 s")
	}
}

// An empty page (nothing after the cursor) decodes.
func TestChangesEmptyPage(t *testing.T) {
	srv := newCounter(t, func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, `{"records":[],"cursor":3,"head":3,"more":false}`)
	})
	p, err := newClient(t, srv.URL).Changes(context.Background(), 3, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Records) != 0 || p.Cursor != 3 || p.Head != 3 || p.More {
		t.Errorf("page %+v", p)
	}
}
