package workload

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/coffer-dev/coffer/client"
	"github.com/coffer-dev/coffer/jepsen/history"
)

// fakeServer serves h and returns a client of it.
func fakeServer(t *testing.T, h http.HandlerFunc) *client.Client {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	cl, err := client.New(client.Config{Servers: []string{srv.URL}, Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	return cl
}

// TestRegisterUnreadKeyIsInvalid: a key whose final read never succeeds
// may hide a lost acknowledged write, so the register result is invalid
// and names the key (the history alone is linearizable).
func TestRegisterUnreadKeyIsInvalid(t *testing.T) {
	down := fakeServer(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusServiceUnavailable)
		fmt.Fprint(w, `{"code":"unavailable","message":"no leader"}`)
	})
	w, err := New("register", Config{Processes: 3, CheckTimeout: 300 * time.Millisecond, OpTimeout: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	rec := history.NewRecorder(time.Time{})
	const key = "/j/register/k0-0"
	rec.Invoke(0, "register", history.KindWrite, key, WriteInput{RegisterInput: history.RegisterInput{Value: "p0-1"}, RequestID: "k"}).Ok(CommitOutput{Rev: 1, Seq: 1})
	env := &Env{Rec: rec, Final: down}
	res := w.Check(context.Background(), env, rec.Ops())
	if len(res) != 1 {
		t.Fatalf("results %v", res)
	}
	r := res[0]
	if r.Valid {
		t.Fatalf("valid although no final read succeeded: %s %q", r, r.Details)
	}
	if len(r.Details) == 0 || !strings.Contains(r.Details[0], "no final read of 1 keys succeeded") || !strings.Contains(r.Details[0], key) {
		t.Errorf("details %q do not name the unread key %s", r.Details, key)
	}
	if !strings.Contains(r.Summary, "end state is unchecked") {
		t.Errorf("summary %q", r.Summary)
	}
}

// TestFeedMissingTail: a feed whose last, empty page moves the cursor to
// the head without the records before it hides a missing tail; the log
// read to the end records the head and the check finds the gap.
func TestFeedMissingTail(t *testing.T) {
	const head = 5
	cl := fakeServer(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		if r.URL.Path != "/v1/changes" {
			http.NotFound(w, r)
			return
		}
		switch c := r.URL.Query().Get("cursor"); c {
		case "0":
			fmt.Fprintf(w, `{"records":[%s,%s,%s],"cursor":3,"head":%d,"more":true}`, feedRec(1), feedRec(2), feedRec(3), head)
		default: // the bug: records 4 and 5 are skipped
			fmt.Fprintf(w, `{"records":[],"cursor":%d,"head":%d}`, head, head)
		}
	})
	w, err := New("feed", Config{CheckTimeout: 5 * time.Second, OpTimeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	res := w.Check(context.Background(), &Env{Rec: history.NewRecorder(time.Time{}), Final: cl}, nil)
	if len(res) != 2 || res[0].Name != "feed" {
		t.Fatalf("results %v", res)
	}
	if feed := res[0]; feed.Valid || !strings.Contains(strings.Join(feed.Details, "\n"), "reader final: missing tail: read to the end up to seq 3, but the feed's head was 5") {
		t.Errorf("the missing tail went unnoticed: %s %q", feed, feed.Details)
	}
}

func feedRec(seq int) string {
	return fmt.Sprintf(`{"seq":%d,"request_id":"k1.a.r%d","changes":[{"path":"/f%d","rev":1,"id":%d}]}`, seq, seq, seq, seq)
}

// TestEditRecordsPrev: each edit records what the file held before it
// (nothing, for a new file), and its content is new.
func TestEditRecordsPrev(t *testing.T) {
	w, err := New("sync", Config{})
	if err != nil {
		t.Fatal(err)
	}
	sw := w.(*syncWorkload)
	env := &Env{Rec: history.NewRecorder(time.Time{}), Seed: 1}
	dir := t.TempDir()
	rng := sw.rng(env, 0)
	first := sw.edit(env, 0, "n1", dir, 0, 1, "f00.txt", rng)
	second := sw.edit(env, 0, "n1", dir, 0, 2, "f00.txt", rng)
	if first == nil || second == nil {
		t.Fatal("an edit failed")
	}
	if first.edit.Prev != "" {
		t.Errorf("the edit of a new file is based on %q", first.edit.Prev)
	}
	if second.edit.Prev != first.edit.SHA256 || second.edit.SHA256 == first.edit.SHA256 {
		t.Errorf("second edit %+v after %+v", second.edit, first.edit)
	}
	data, err := os.ReadFile(filepath.Join(dir, "f00.txt"))
	if err != nil {
		t.Fatal(err)
	}
	if sum := sha256.Sum256(data); hex.EncodeToString(sum[:]) != second.edit.SHA256 {
		t.Errorf("the file does not hold the second edit")
	}
	first.op.Ok(nil)
	second.op.Ok(nil)
	var in EditInput
	if err := env.Rec.Ops()[1].DecodeInput(&in); err != nil || in.Prev != first.edit.SHA256 {
		t.Errorf("recorded input %+v %v", in, err)
	}
}
