package workload

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/coffer-dev/coffer/client"
	"github.com/coffer-dev/coffer/jepsen/check"
	"github.com/coffer-dev/coffer/jepsen/history"
)

func TestClassify(t *testing.T) {
	live := context.Background()
	ended, cancel := context.WithCancel(context.Background())
	cancel()
	answer := func(status int, code string) error {
		return fmt.Errorf("upload /j/x: %w", &client.Error{Status: status, Code: code, Message: "m"})
	}
	connErr := fmt.Errorf("%w: the outcome is unknown: %w", client.ErrUnavailable,
		&net.OpError{Op: "read", Net: "tcp", Err: syscall.ECONNRESET})
	caseConflict := answer(409, "case_conflict")
	tests := []struct {
		name   string
		run    context.Context
		effect Effect
		err    error
		want   history.Status
	}{
		{"mutation ok", live, Write, nil, history.StatusOK},
		{"read ok", live, Read, nil, history.StatusOK},
		{"conflict", live, Write, answer(409, "conflict"), history.StatusFail},
		{"precondition sentinel", live, Write, client.ErrConflict, history.StatusFail},
		{"exists", live, Write, answer(409, "exists"), history.StatusFail},
		{"case conflict", live, Write, caseConflict, history.StatusFail},
		{"invalid argument", live, Write, answer(400, "invalid_argument"), history.StatusFail},
		{"not found", live, Write, answer(404, "not_found"), history.StatusFail},
		{"forbidden", live, Write, answer(403, "forbidden"), history.StatusFail},
		{"unavailable answer", live, Write, answer(503, "unavailable"), history.StatusUnknown},
		{"no server answered", live, Write, fmt.Errorf("%w: no server answered", client.ErrUnavailable), history.StatusUnknown},
		{"connection reset", live, Write, connErr, history.StatusUnknown},
		{"op deadline", live, Write, fmt.Errorf("POST /v1/commit: %w", context.DeadlineExceeded), history.StatusUnknown},
		{"5xx", live, Write, answer(500, "internal"), history.StatusUnknown},
		{"hash mismatch", live, Write, client.ErrHashMismatch, history.StatusUnknown},
		{"session ended", live, Write, client.ErrSessionEnded, history.StatusUnknown},
		{"other error", live, Write, errors.New("boom"), history.StatusUnknown},
		{"run ended mid mutation", ended, Write, fmt.Errorf("x: %w", context.Canceled), history.StatusUnknown},
		{"run ended, refused anyway", ended, Write, answer(409, "conflict"), history.StatusFail},
		{"read unavailable", live, Read, answer(503, "unavailable"), history.StatusFail},
		{"read timeout", live, Read, context.DeadlineExceeded, history.StatusFail},
		{"read not found", live, Read, client.ErrNotFound, history.StatusFail},
		{"read when run ended", ended, Read, context.Canceled, history.StatusUnknown},

		// A CAS fails only when its precondition did not hold: the
		// register checker takes a failed CAS as proof of that.
		{"cas ok", live, CASIfMatch, nil, history.StatusOK},
		{"cas if-match conflict", live, CASIfMatch, answer(409, "conflict"), history.StatusFail},
		{"cas if-match conflict after the run", ended, CASIfMatch, client.ErrConflict, history.StatusFail},
		{"cas if-match exists", live, CASIfMatch, answer(409, "exists"), history.StatusUnknown},
		{"cas if-match invalid argument", live, CASIfMatch, answer(400, "invalid_argument"), history.StatusUnknown},
		{"cas if-match not found", live, CASIfMatch, answer(404, "not_found"), history.StatusUnknown},
		{"cas if-match forbidden", live, CASIfMatch, answer(403, "forbidden"), history.StatusUnknown},
		{"cas if-match unavailable", live, CASIfMatch, answer(503, "unavailable"), history.StatusUnknown},
		{"cas if-match not found after the run", ended, CASIfMatch, client.ErrNotFound, history.StatusUnknown},
		{"cas if-none-match conflict", live, CASIfNoneMatch, answer(409, "conflict"), history.StatusFail},
		{"cas if-none-match exists", live, CASIfNoneMatch, answer(409, "exists"), history.StatusFail},
		{"cas if-none-match exists sentinel", live, CASIfNoneMatch, client.ErrExists, history.StatusFail},
		{"cas if-none-match case conflict", live, CASIfNoneMatch, caseConflict, history.StatusUnknown},
		{"cas if-none-match invalid argument", live, CASIfNoneMatch, answer(400, "invalid_argument"), history.StatusUnknown},
		{"cas if-none-match not found", live, CASIfNoneMatch, client.ErrNotFound, history.StatusUnknown},
		{"cas if-none-match forbidden", live, CASIfNoneMatch, answer(403, "forbidden"), history.StatusUnknown},
		{"cas if-none-match timeout", live, CASIfNoneMatch, context.DeadlineExceeded, history.StatusUnknown},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := Classify(tc.run, tc.effect, tc.err); got != tc.want {
				t.Errorf("Classify(effect %d, %v) = %s, want %s", tc.effect, tc.err, got, tc.want)
			}
		})
	}
}

func TestKeyRotation(t *testing.T) {
	s := &keySlot{prefix: "/j/register/k0", max: 3}
	var got []string
	for range 7 {
		got = append(got, s.take())
	}
	want := "/j/register/k0-0 /j/register/k0-0 /j/register/k0-0 /j/register/k0-1 /j/register/k0-1 /j/register/k0-1 /j/register/k0-2"
	if strings.Join(got, " ") != want {
		t.Errorf("keys %v\nwant %s", got, want)
	}

	// Many processes on one slot: no key gets more than max ops, and
	// every key but the last is used up.
	s = &keySlot{prefix: "k", max: 150}
	var mu sync.Mutex
	count := map[string]int{}
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 500 {
				k := s.take()
				mu.Lock()
				count[k]++
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if len(count) != 27 { // 4000 ops / 150 = 26.7
		t.Errorf("%d keys for 4000 ops at 150 per key", len(count))
	}
	for k, n := range count {
		if n > 150 || (n < 150 && k != "k-26") {
			t.Errorf("key %s has %d ops", k, n)
		}
	}
}

func TestRegisterWorkloadSlots(t *testing.T) {
	w, err := New("register", Config{Root: "/r", Keys: 2, OpsPerKey: 10, Processes: 4})
	if err != nil {
		t.Fatal(err)
	}
	rw := w.(*registerWorkload)
	if len(rw.slots) != 2 || rw.slots[1].prefix != "/r/register/k1" || rw.slots[0].max != 10 {
		t.Errorf("slots %+v %+v", rw.slots[0], rw.slots[1])
	}
}

func TestConfig(t *testing.T) {
	if err := (Config{}).Validate(); err != nil {
		t.Errorf("zero config: %v", err)
	}
	bad := Config{Root: "j/", FirstProcess: -1, Processes: ProcessStride, Pace: -1, OpTimeout: -1, CheckTimeout: -1,
		Keys: -1, OpsPerKey: check.DefaultMaxOpsPerKey, MaxUploadSize: -1, FeedWait: -1, SyncFiles: -1, SyncTimeout: -1}
	err := bad.Validate()
	if !errors.Is(err, ErrInvalidConfig) {
		t.Fatalf("err %v", err)
	}
	for _, field := range []string{"Root", "FirstProcess", "Processes", "Pace", "OpTimeout", "CheckTimeout", "Keys", "OpsPerKey", "MaxUploadSize", "FeedWait", "SyncFiles", "SyncTimeout"} {
		if !strings.Contains(err.Error(), field+" ") {
			t.Errorf("%s not reported in %v", field, err)
		}
	}
	if _, err := New("bank", Config{}); !errors.Is(err, ErrUnknownWorkload) {
		t.Errorf("unknown workload: %v", err)
	}
	if _, err := New("register", Config{Processes: 2, Keys: 3}); !errors.Is(err, ErrInvalidConfig) {
		t.Errorf("fewer processes than keys: %v", err)
	}
	if _, err := New("set", Config{Root: "/"}); !errors.Is(err, ErrInvalidConfig) {
		t.Errorf("root /: %v", err)
	}
	for _, name := range Names {
		w, err := New(name, Config{FirstProcess: 200})
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if w.Name() != name {
			t.Errorf("name %q, want %q", w.Name(), name)
		}
	}
	c := Config{}.withDefaults("sync")
	if c.Processes != 2 || c.Pace != time.Second || c.Root != DefaultRoot || c.OpsPerKey != DefaultOpsPerKey {
		t.Errorf("sync defaults %+v", c)
	}
	if c := (Config{Processes: 5}).withDefaults("sync"); c.Processes != 2 {
		t.Errorf("sync runs %d devices", c.Processes)
	}
}

func TestFeedRequestKey(t *testing.T) {
	tests := map[string]string{
		"k1.a.j-set-3-4-ABC": "j-set-3-4-ABC",
		"k1.a.c-XYZ":         "c-XYZ",
		"k2.b.with.dots":     "with.dots",
		"g0123abcd":          "g0123abcd",
		"k1.onlyone":         "k1.onlyone",
		"":                   "",
	}
	for in, want := range tests {
		if got := feedRequestKey(in); got != want {
			t.Errorf("feedRequestKey(%q) = %q, want %q", in, got, want)
		}
	}
	if k := requestKey("set", 3, 4); strings.Contains(k, ".") || !strings.HasPrefix(k, "j-set-3-4-") || len(k) > 80 {
		t.Errorf("requestKey %q", k)
	}
}

func TestFeedCommits(t *testing.T) {
	r := history.NewRecorder(time.Time{})
	r.Invoke(1, "set", history.KindCreate, "/j/set/a", CreateInput{RequestID: "k-a"}).Ok(CommitOutput{Rev: 1, Seq: 5})
	r.Invoke(2, "register", history.KindCAS, "/j/register/k0-0", WriteInput{RegisterInput: history.RegisterInput{Value: "v", ExpectRev: 3}, RequestID: "k-b"}).Fail(client.ErrConflict)
	r.Invoke(3, "upload", history.KindUpload, "/j/upload/x", UploadInput{UploadInput: history.UploadInput{SHA256: "ab"}, RequestID: "k-c"}).Unknown(client.ErrUnavailable)
	r.Invoke(4, "register", history.KindRead, "/j/register/k0-0", nil).Ok(history.RegisterOutput{Rev: 2, Value: "v"})
	r.Invoke(5, "sync", KindEdit, "/j/sync/f00.txt", EditInput{}).Ok(nil)
	got := feedCommits(r.Ops())
	want := []check.FeedCommit{
		{Path: "/j/set/a", Rev: 1, Seq: 5, RequestID: "k-a", Status: history.StatusOK},
		{Path: "/j/register/k0-0", RequestID: "k-b", Status: history.StatusFail},
		{Path: "/j/upload/x", RequestID: "k-c", Status: history.StatusUnknown},
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("commits %+v\nwant %+v", got, want)
	}
	// The checkers read this package's payloads as their own types.
	ops := r.Ops()
	var ri history.RegisterInput
	if err := ops[1].DecodeInput(&ri); err != nil || ri.ExpectRev != 3 || ri.Value != "v" {
		t.Errorf("register input %+v %v", ri, err)
	}
	var ro history.RegisterOutput
	if err := ops[0].DecodeOutput(&ro); err != nil || ro.Rev != 1 {
		t.Errorf("commit output as register output %+v %v", ro, err)
	}
	var ui history.UploadInput
	if err := ops[2].DecodeInput(&ui); err != nil || ui.SHA256 != "ab" {
		t.Errorf("upload input %+v %v", ui, err)
	}
}
