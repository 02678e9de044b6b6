package client

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coffer-dev/coffer/internal/wire"
)

// rangeServer serves content at /v1/files/f (revision 4 only) with
// http.ServeContent, as the gateway does, and records the last rev and
// Range asked.
func rangeServer(t *testing.T, content []byte, lastRev, lastRange *atomic.Value) *counter {
	return newCounter(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/v1/files/f" {
			writeJSON(w, 404, wire.Error{Code: "not_found", Message: r.URL.Path})
			return
		}
		lastRev.Store(r.URL.Query().Get("rev"))
		lastRange.Store(r.Header.Get("Range"))
		w.Header().Set("X-Coffer-Rev", "4")
		http.ServeContent(w, r, "", time.Unix(0, 0), bytes.NewReader(content))
	})
}

func TestReadRange(t *testing.T) {
	content := randomBytes(10000, 7)
	var rev, rng atomic.Value
	srv := rangeServer(t, content, &rev, &rng)
	ctx := context.Background()
	c := newClient(t, deadURL(t), srv.URL) // the first server is down: fail over

	for _, tc := range []struct{ off, n int64 }{{0, 1}, {100, 900}, {9999, 1}, {0, 10000}, {4096, 5904}} {
		var buf bytes.Buffer
		if err := c.ReadRange(ctx, "/f", 4, tc.off, tc.n, &buf); err != nil {
			t.Fatalf("[%d, +%d): %v", tc.off, tc.n, err)
		}
		if !bytes.Equal(buf.Bytes(), content[tc.off:tc.off+tc.n]) {
			t.Errorf("[%d, +%d): got %d bytes, not the range's", tc.off, tc.n, buf.Len())
		}
		if want := fmt.Sprintf("bytes=%d-%d", tc.off, tc.off+tc.n-1); rng.Load() != want || rev.Load() != "4" {
			t.Errorf("asked Range %q rev %q, want %q rev 4", rng.Load(), rev.Load(), want)
		}
	}
	if err := c.ReadRange(ctx, "/f", 0, 1, 2, io.Discard); err != nil || rev.Load() != "" {
		t.Errorf("rev 0: %v, asked rev %q", err, rev.Load())
	}

	// Outside the file: ErrInvalidArgument, nothing written.
	for _, tc := range []struct{ off, n int64 }{{9990, 11}, {10000, 1}, {20000, 5}, {-1, 5}, {0, -1}} {
		var buf bytes.Buffer
		err := c.ReadRange(ctx, "/f", 4, tc.off, tc.n, &buf)
		if !errors.Is(err, ErrInvalidArgument) || buf.Len() != 0 {
			t.Errorf("[%d, +%d): %v with %d bytes written, want ErrInvalidArgument and none", tc.off, tc.n, err, buf.Len())
		}
	}
	before := srv.n.Load()
	if err := c.ReadRange(ctx, "/f", 4, 5, 0, io.Discard); err != nil || srv.n.Load() != before {
		t.Errorf("an empty range: %v, %d requests", err, srv.n.Load()-before)
	}
	if err := c.ReadRange(ctx, "/missing", 4, 0, 5, io.Discard); !errors.Is(err, ErrNotFound) {
		t.Errorf("a missing file: %v", err)
	}
}

// A server that ignores Range answers 200 with the whole file: right when
// the whole file was asked for, an error otherwise.
func TestReadRangeWholeFileAnswer(t *testing.T) {
	content := []byte("0123456789")
	srv := newCounter(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", strconv.Itoa(len(content)))
		w.Write(content)
	})
	c := newClient(t, srv.URL)
	var buf bytes.Buffer
	if err := c.ReadRange(context.Background(), "/f", 1, 0, 10, &buf); err != nil || buf.String() != "0123456789" {
		t.Errorf("whole file: %q, %v", buf.String(), err)
	}
	for _, tc := range []struct{ off, n int64 }{{0, 5}, {2, 8}} {
		buf.Reset()
		if err := c.ReadRange(context.Background(), "/f", 1, tc.off, tc.n, &buf); err == nil || buf.Len() != 0 {
			t.Errorf("[%d, +%d) answered with the whole file: %v, %d bytes written", tc.off, tc.n, err, buf.Len())
		}
	}
}

func TestReadRangeBadAnswers(t *testing.T) {
	tests := []struct {
		name         string
		contentRange string
		length       string // Content-Length ("": chunked)
		body         string
		unavailable  bool // the error must match ErrUnavailable
	}{
		{"another range", "bytes 3-6/100", "4", "abcd", false},
		{"no Content-Range", "", "4", "abcd", false},
		{"bad Content-Range", "bytes 2-5/*", "4", "abcd", false},
		{"wrong length", "bytes 2-5/100", "3", "abc", false},
		{"short chunked body", "bytes 2-5/100", "", "ab", true},
		{"short body", "bytes 2-5/100", "4", "ab", true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv := newCounter(t, func(w http.ResponseWriter, r *http.Request) {
				if tc.contentRange != "" {
					w.Header().Set("Content-Range", tc.contentRange)
				}
				if tc.length != "" {
					w.Header().Set("Content-Length", tc.length)
				}
				w.WriteHeader(http.StatusPartialContent)
				if tc.length == "" {
					w.(http.Flusher).Flush() // no Content-Length: chunked
				}
				io.WriteString(w, tc.body)
			})
			var buf bytes.Buffer
			err := newClient(t, srv.URL).ReadRange(context.Background(), "/f", 1, 2, 4, &buf)
			if err == nil {
				t.Fatalf("no error; wrote %q", buf.String())
			}
			if errors.Is(err, ErrUnavailable) != tc.unavailable {
				t.Errorf("%v: matches ErrUnavailable: %v, want %v", err, !tc.unavailable, tc.unavailable)
			}
			if buf.Len() >= 4 {
				t.Errorf("wrote %q", buf.String())
			}
		})
	}
}

// ReadRange moves on from a server that answers 503 or does not answer in
// time, stays with the one that answered, and does not move on from an
// answer that started.
func TestReadRangeFailover(t *testing.T) {
	content := randomBytes(1000, 9)
	var rev, rng atomic.Value
	busy := newCounter(t, unavailable)
	slow := newCounter(t, func(w http.ResponseWriter, r *http.Request) { <-r.Context().Done() })
	good := rangeServer(t, content, &rev, &rng)
	c, err := New(Config{Servers: []string{busy.URL, slow.URL, good.URL}, Timeout: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	for range 2 {
		var buf bytes.Buffer
		if err := c.ReadRange(context.Background(), "/f", 4, 10, 20, &buf); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(buf.Bytes(), content[10:30]) {
			t.Errorf("got %x", buf.Bytes())
		}
	}
	if busy.n.Load() != 1 || slow.n.Load() != 1 || good.n.Load() != 2 {
		t.Errorf("requests: busy %d, slow %d, good %d; want 1, 1, 2", busy.n.Load(), slow.n.Load(), good.n.Load())
	}

	// All busy: the last answer.
	b2 := newCounter(t, unavailable)
	err = newClient(t, busy.URL, b2.URL).ReadRange(context.Background(), "/f", 4, 0, 5, io.Discard)
	var e *Error
	if !errors.As(err, &e) || e.Status != 503 {
		t.Errorf("all busy: %v", err)
	}
}

// A server that stops sending in the middle of a range is an error after
// Config.Timeout, not a hang, and is not asked again elsewhere.
func TestReadRangeStallsOut(t *testing.T) {
	release := make(chan struct{})
	stall := newCounter(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Range", "bytes 0-99/1000")
		w.Header().Set("Content-Length", "100")
		w.WriteHeader(http.StatusPartialContent)
		w.Write([]byte("only the first bytes"))
		w.(http.Flusher).Flush()
		select {
		case <-release:
		case <-r.Context().Done():
		}
	})
	defer close(release)
	other := newCounter(t, func(w http.ResponseWriter, r *http.Request) {
		http.ServeContent(w, r, "", time.Unix(0, 0), bytes.NewReader(make([]byte, 1000)))
	})
	c, err := New(Config{Servers: []string{stall.URL, other.URL}, Timeout: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- c.ReadRange(context.Background(), "/f", 1, 0, 100, io.Discard) }()
	select {
	case err := <-done:
		if !errors.Is(err, ErrUnavailable) {
			t.Fatalf("a stalled range: %v, want ErrUnavailable", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("a stalled range is still waiting after 30 s")
	}
	if other.n.Load() != 0 {
		t.Error("a range whose answer had started was asked again at another server")
	}
}
