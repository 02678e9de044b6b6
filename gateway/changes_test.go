package gateway

import (
	"strconv"
	"testing"
	"time"

	"github.com/coffer-dev/coffer/raftmeta"
)

func (s *sess) changes(query string) raftmeta.ChangesPage {
	s.e.t.Helper()
	a := s.do("GET", "/v1/changes"+query, nil, nil)
	if a.status != 200 {
		s.e.t.Fatalf("changes%s: HTTP %d %s", query, a.status, a.body)
	}
	return decodeAs[raftmeta.ChangesPage](s.e.t, a)
}

func TestChangeFeed(t *testing.T) {
	e := newEnv(t, envOpts{})
	alice := e.user("alice")
	if p := alice.changes(""); len(p.Records) != 0 || p.Head != 0 || p.Cursor != 0 || p.More {
		t.Errorf("empty feed: %+v", p)
	}
	want(t, "put", alice.put("/a.txt", []byte("a"), nil), 201, "")
	want(t, "mkdir", alice.do("POST", "/v1/mkdir/d", nil, nil), 201, "")
	want(t, "move", alice.do("POST", "/v1/move", jsonBody(`{"from":"/a.txt","to":"/d/a.txt"}`), nil), 200, "")
	want(t, "delete", alice.do("DELETE", "/v1/files/d/a.txt", nil, nil), 200, "")

	type change struct {
		op            raftmeta.OpKind
		path, oldPath string
		deleted, dir  bool
	}
	wantChanges := []change{
		{raftmeta.OpPut, "/a.txt", "", false, false},
		{raftmeta.OpMkdir, "/d", "", false, true},
		{raftmeta.OpMove, "/d/a.txt", "/a.txt", false, false},
		{raftmeta.OpDelete, "/d/a.txt", "", true, false},
	}
	p := alice.changes("")
	if len(p.Records) != len(wantChanges) || p.Cursor != 4 || p.Head != 4 || p.More {
		t.Fatalf("feed from 0: %+v", p)
	}
	for i, r := range p.Records {
		w := wantChanges[i]
		if r.Seq != uint64(i+1) || len(r.Changes) != 1 {
			t.Errorf("record %d: %+v", i, r)
			continue
		}
		c := r.Changes[0]
		if c.Op != w.op || c.Path != w.path || c.OldPath != w.oldPath || c.Deleted != w.deleted || c.Dir != w.dir {
			t.Errorf("record %d: change %+v, want %+v", i, c, w)
		}
	}
	// Paging: gap-free, in order, across pages.
	var seqs []uint64
	for cursor := uint64(0); ; {
		p := alice.changes("?limit=3&cursor=" + strconv.FormatUint(cursor, 10))
		for _, r := range p.Records {
			seqs = append(seqs, r.Seq)
		}
		if len(p.Records) > 3 || (p.More != (p.Cursor < 4)) {
			t.Fatalf("page after %d: %+v", cursor, p)
		}
		cursor = p.Cursor
		if !p.More {
			break
		}
	}
	for i, s := range seqs {
		if s != uint64(i+1) {
			t.Fatalf("paged sequence %v is not 1..4", seqs)
		}
	}
	if len(seqs) != 4 {
		t.Fatalf("paged sequence %v", seqs)
	}
	if p := alice.changes("?cursor=4"); len(p.Records) != 0 || p.Cursor != 4 || p.More {
		t.Errorf("at the head: %+v", p)
	}

	for _, tc := range []struct {
		name, query string
		status      int
		code        string
	}{
		{"cursor ahead of the head", "?cursor=99", 410, "cursor_reset"},
		{"cursor ahead, long-poll", "?cursor=5&wait=1s", 410, "cursor_reset"},
		{"bad cursor", "?cursor=x", 400, "invalid_argument"},
		{"negative limit", "?limit=-1", 400, "invalid_argument"},
		{"bad wait", "?wait=soon", 400, "invalid_argument"},
		{"negative wait", "?wait=-3", 400, "invalid_argument"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := alice.do("GET", "/v1/changes"+tc.query, nil, nil)
			if want(t, tc.query, a, tc.status, tc.code) && tc.status == 410 && a.json()["head"] != float64(4) {
				t.Errorf("cursor_reset without head 4: %s", a.body)
			}
		})
	}
}

// TestChangeFeedLongPoll: a long-poll at the head returns the next commit
// as soon as it is applied; one with nothing to wait for ends empty after
// its wait.
func TestChangeFeedLongPoll(t *testing.T) {
	e := newEnv(t, envOpts{})
	alice := e.user("alice")
	want(t, "put", alice.put("/a.txt", []byte("a"), nil), 201, "")

	type result struct {
		a       answer
		err     error
		elapsed time.Duration
	}
	done := make(chan result, 1)
	go func() {
		start := time.Now()
		a, err := alice.tryDo("GET", "/v1/changes?cursor=1&wait=10s", nil, nil)
		done <- result{a, err, time.Since(start)}
	}()
	// Wait until the long-poll holds its slot, then commit.
	waitFor(t, 10*time.Second, "the long-poll to start", func() bool { return len(e.gw.polls) == 1 })
	want(t, "put b", alice.put("/b.txt", []byte("b"), nil), 201, "")
	r := <-done
	if r.err != nil {
		t.Fatal(r.err)
	}
	if !want(t, "long-poll", r.a, 200, "") {
		return
	}
	p := decodeAs[raftmeta.ChangesPage](t, r.a)
	if len(p.Records) != 1 || p.Records[0].Seq != 2 || p.Cursor != 2 || len(p.Records[0].Changes) != 1 || p.Records[0].Changes[0].Path != "/b.txt" {
		t.Fatalf("long-poll returned %+v", p)
	}
	if r.elapsed >= 10*time.Second {
		t.Errorf("the long-poll took %v: it did not end with the commit", r.elapsed)
	}
	waitFor(t, 10*time.Second, "the long-poll to give back its slot", func() bool { return len(e.gw.polls) == 0 })

	// Nothing to wait for: an empty page once the wait passes.
	p = alice.changes("?cursor=2&wait=200ms")
	if len(p.Records) != 0 || p.Cursor != 2 || p.Head != 2 || p.More {
		t.Errorf("an idle long-poll returned %+v", p)
	}
	// Records already there are answered at once, wait or not.
	p = alice.changes("?cursor=0&wait=10s")
	if len(p.Records) != 2 {
		t.Errorf("long-poll behind the head returned %+v", p)
	}
}

// TestChangeFeedTrimmedCursor: a cursor older than the journal's retained
// start (trimmed by the shard's retention) is 410 cursor_reset with the
// head; the first cursor still held works.
func TestChangeFeedTrimmedCursor(t *testing.T) {
	e := newEnv(t, envOpts{})
	alice := e.user("alice")
	want(t, "put 1", alice.put("/a", []byte("1"), nil), 201, "")
	want(t, "put 2", alice.put("/a", []byte("2"), nil), 200, "")
	e.clk.add(31 * 24 * time.Hour) // past the shard's default KeepFor (30 days)
	alice = e.login("alice", "alice-pw")
	want(t, "put 3", alice.put("/a", []byte("3"), nil), 200, "")
	res, err := e.shard.Prune(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if res.Records != 2 {
		t.Fatalf("prune trimmed %d journal records, want 2", res.Records)
	}
	for _, cursor := range []string{"0", "1"} {
		for _, wait := range []string{"", "&wait=1s"} {
			a := alice.do("GET", "/v1/changes?cursor="+cursor+wait, nil, nil)
			if want(t, "cursor "+cursor+wait, a, 410, "cursor_reset") && a.json()["head"] != float64(3) {
				t.Errorf("cursor_reset without head 3: %s", a.body)
			}
		}
	}
	if p := alice.changes("?cursor=2"); len(p.Records) != 1 || p.Records[0].Seq != 3 {
		t.Errorf("from the retained start: %+v", p)
	}
}
