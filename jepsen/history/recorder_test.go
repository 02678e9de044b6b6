package history

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestCompletion(t *testing.T) {
	boom := errors.New("boom")
	tests := []struct {
		name     string
		complete func(*Pending)
		status   Status
		output   string
		err      string
		returned bool
	}{
		{"ok", func(p *Pending) { p.Ok(RegisterOutput{Rev: 3, Value: "x"}) }, StatusOK, `{"rev":3,"value":"x"}`, "", true},
		{"ok without output", func(p *Pending) { p.Ok(nil) }, StatusOK, "", "", true},
		{"fail", func(p *Pending) { p.Fail(boom) }, StatusFail, "", "boom", true},
		{"fail nil error", func(p *Pending) { p.Fail(nil) }, StatusFail, "", "", true},
		{"unknown keeps no return", func(p *Pending) { p.Unknown(boom) }, StatusUnknown, "", "boom", false},
		{"first completion wins", func(p *Pending) { p.Fail(boom); p.Ok(RegisterOutput{Rev: 1}); p.Unknown(boom) }, StatusFail, "", "boom", true},
		{"unknown then ok stays unknown", func(p *Pending) { p.Unknown(boom); p.Ok(RegisterOutput{Rev: 1}) }, StatusUnknown, "", "boom", false},
		{"unmarshallable output", func(p *Pending) { p.Ok(make(chan int)) }, StatusOK, "", "recording output: json: unsupported type: chan int", true},
		{"never completed", func(*Pending) {}, StatusUnknown, "", NotCompleted, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := NewRecorder(time.Time{})
			p := r.Invoke(7, "register", KindWrite, "/r/1", RegisterInput{Value: "x"})
			p.SetNode("n2")
			tc.complete(p)
			ops := r.Ops()
			if len(ops) != 1 {
				t.Fatalf("got %d ops", len(ops))
			}
			o := ops[0]
			if o.ID != 0 || o.Process != 7 || o.Workload != "register" || o.Kind != KindWrite || o.Key != "/r/1" || o.Node != "n2" {
				t.Errorf("op fields: %+v", o)
			}
			if string(o.Input) != `{"value":"x"}` {
				t.Errorf("input %s", o.Input)
			}
			if o.Status != tc.status || string(o.Output) != tc.output || o.Err != tc.err {
				t.Errorf("got status %q output %s err %q, want %q %s %q", o.Status, o.Output, o.Err, tc.status, tc.output, tc.err)
			}
			if tc.returned != (o.Return != 0) || (tc.returned && o.Return < o.Call) {
				t.Errorf("call %v return %v, want returned=%v", o.Call, o.Return, tc.returned)
			}
		})
	}
}

func TestInvokeBadInputAndNilPending(t *testing.T) {
	r := NewRecorder(time.Time{})
	p := r.Invoke(1, "w", KindRead, "k", func() {})
	p.Ok(RegisterOutput{})
	o := r.Ops()[0]
	if o.Input != nil || !strings.HasPrefix(o.Err, "recording input: ") || o.Status != StatusOK {
		t.Errorf("bad input not reported: %+v", o)
	}
	var nilP *Pending
	nilP.Ok(1)
	nilP.Fail(nil)
	nilP.Unknown(nil)
	nilP.SetNode("x")
	if nilP.ID() != -1 {
		t.Errorf("nil ID %d", nilP.ID())
	}
}

func TestDecode(t *testing.T) {
	tests := []struct {
		name string
		raw  string
		ok   bool
	}{
		{"good", `{"rev":2,"value":"v"}`, true},
		{"empty", ``, false},
		{"not json", `{rev`, false},
		{"wrong type", `{"rev":"two"}`, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var out RegisterOutput
			err := Op{Output: []byte(tc.raw)}.DecodeOutput(&out)
			if tc.ok != (err == nil) {
				t.Fatalf("err %v", err)
			}
			if err != nil && !errors.Is(err, ErrPayload) {
				t.Errorf("err %v does not wrap ErrPayload", err)
			}
			if tc.ok && (out.Rev != 2 || out.Value != "v") {
				t.Errorf("decoded %+v", out)
			}
		})
	}
}

func TestSnapshotIsACopy(t *testing.T) {
	r := NewRecorder(time.Time{})
	p := r.Invoke(1, "w", KindRead, "k", nil)
	before := r.Ops()
	p.Ok(RegisterOutput{Rev: 1})
	if before[0].Status != StatusUnknown || before[0].Err != NotCompleted {
		t.Errorf("snapshot changed or pending not unknown: %+v", before[0])
	}
	if got := r.Ops()[0]; got.Status != StatusOK || got.Err != "" {
		t.Errorf("after completion %+v", got)
	}
}

func TestCount(t *testing.T) {
	ops := []Op{{Status: StatusOK}, {Status: StatusOK}, {Status: StatusFail}, {Status: StatusUnknown}, {Status: "weird"}}
	if c := Count(ops); c != (Counts{OK: 2, Fail: 1, Unknown: 1, Other: 1}) || c.Total() != 5 {
		t.Errorf("Count %+v", c)
	}
}

// TestConcurrent records from many goroutines at once (run with -race):
// every op is there once, with a unique ID equal to its index, and times
// that make sense.
func TestConcurrent(t *testing.T) {
	const workers, each = 32, 200
	r := NewRecorder(time.Time{})
	tl := NewTimeline(r.Start())
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				p := r.Invoke(w, "register", KindWrite, fmt.Sprintf("k%d", i%5), RegisterInput{Value: fmt.Sprint(w, i)})
				switch i % 3 {
				case 0:
					p.Ok(RegisterOutput{Rev: uint64(i)})
				case 1:
					p.Fail(errors.New("conflict"))
				case 2:
					p.Unknown(errors.New("timeout"))
				}
				if i%50 == 0 {
					tl.Begin("pause", "", fmt.Sprint(w)).End()
				}
				if i%40 == 0 {
					_ = r.Ops() // snapshots race with writers
				}
			}
		}()
	}
	wg.Wait()
	ops := r.Ops()
	if len(ops) != workers*each {
		t.Fatalf("got %d ops, want %d", len(ops), workers*each)
	}
	perProcess := map[int]int{}
	for i, o := range ops {
		if o.ID != i {
			t.Fatalf("op %d has ID %d", i, o.ID)
		}
		if i > 0 && o.Call < ops[i-1].Call {
			t.Fatalf("op %d called at %v before op %d at %v", i, o.Call, i-1, ops[i-1].Call)
		}
		if o.Status != StatusUnknown && o.Return < o.Call {
			t.Fatalf("op %d returns before its call: %+v", i, o)
		}
		perProcess[o.Process]++
	}
	for w := range workers {
		if perProcess[w] != each {
			t.Errorf("process %d has %d ops", w, perProcess[w])
		}
	}
	c := Count(ops)
	if c.OK == 0 || c.Fail == 0 || c.Unknown == 0 || c.Total() != len(ops) {
		t.Errorf("counts %+v", c)
	}
	faults := tl.Faults()
	if len(faults) != workers*4 {
		t.Errorf("got %d faults", len(faults))
	}
	for _, f := range faults {
		if !f.Healed() || f.End <= f.Start {
			t.Errorf("fault %+v", f)
		}
	}
}

func TestTimeline(t *testing.T) {
	tl := NewTimeline(time.Time{})
	a := tl.Begin("partition", "majority/minority", "n1", "n2")
	b := tl.Begin("kill", "SIGKILL", "n3")
	b.End()
	f := tl.Faults()
	if len(f) != 2 || f[0].Healed() || !f[1].Healed() {
		t.Fatalf("faults %+v", f)
	}
	f[0].Targets[0] = "changed"
	a.End()
	end := tl.Faults()[0].End
	a.End() // a second End is ignored
	var nilA *ActiveFault
	nilA.End()
	got := tl.Faults()[0]
	if !reflect.DeepEqual(got.Targets, []string{"n1", "n2"}) || got.End != end || got.End <= got.Start {
		t.Errorf("fault %+v (first end %v)", got, end)
	}
}

func TestJSONRoundTrip(t *testing.T) {
	dir := t.TempDir()
	start := time.Date(2030, 1, 2, 3, 4, 5, 6, time.UTC)
	r := NewRecorder(start)
	r.Invoke(0, "register", KindCAS, "/a", RegisterInput{Value: "v", ExpectRev: 2}).Ok(RegisterOutput{Rev: 3})
	r.Invoke(1, "register", KindRead, "/a", nil).Unknown(errors.New("timeout"))
	r.Invoke(2, "set", KindCreate, "/s/1", nil).Fail(errors.New("exists"))
	r.Invoke(3, "upload", KindUpload, "/u/1", UploadInput{SHA256: "ab", Size: 2}) // pending
	tl := NewTimeline(start)
	tl.Begin("kill", "SIGKILL n1", "n1").End()
	tl.Begin("partition", "isolate n2", "n2")

	hp, tp := filepath.Join(dir, "history.json"), filepath.Join(dir, "timeline.json")
	if err := r.WriteJSON(hp); err != nil {
		t.Fatal(err)
	}
	if err := tl.WriteJSON(tp); err != nil {
		t.Fatal(err)
	}
	ops, err := ReadJSON(hp)
	if err != nil {
		t.Fatal(err)
	}
	if want := r.Ops(); !reflect.DeepEqual(ops, want) {
		t.Errorf("ops round trip:\n got %+v\nwant %+v", ops, want)
	}
	faults, err := ReadTimelineJSON(tp)
	if err != nil {
		t.Fatal(err)
	}
	if want := tl.Faults(); !reflect.DeepEqual(faults, want) {
		t.Errorf("faults round trip:\n got %+v\nwant %+v", faults, want)
	}
	b, _ := os.ReadFile(hp)
	if n := strings.Count(string(b), "\n"); n != len(ops)+2 {
		t.Errorf("want one op per line, got %d lines:\n%s", n, b)
	}
	if _, err := ReadJSON(tp); !errors.Is(err, ErrFormat) {
		t.Errorf("a timeline read as a history: %v", err)
	}
	empty := filepath.Join(dir, "empty.json")
	if err := WriteJSON(empty, start, nil); err != nil {
		t.Fatal(err)
	}
	if ops, err := ReadJSON(empty); err != nil || len(ops) != 0 {
		t.Errorf("empty history: %v %v", ops, err)
	}
}

func TestReadJSONRejects(t *testing.T) {
	tests := []struct{ name, body string }{
		{"not json", `{"format":`},
		{"wrong format", `{"format":"other","version":1,"ops":[]}`},
		{"wrong version", `{"format":"coffer-jepsen-history","version":2,"ops":[]}`},
		{"bad status", `{"format":"coffer-jepsen-history","version":1,"ops":[{"id":0,"kind":"read","status":"maybe"}]}`},
		{"missing status", `{"format":"coffer-jepsen-history","version":1,"ops":[{"id":0,"kind":"read"}]}`},
	}
	dir := t.TempDir()
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := filepath.Join(dir, "h.json")
			if err := os.WriteFile(p, []byte(tc.body), 0o644); err != nil {
				t.Fatal(err)
			}
			if _, err := ReadJSON(p); !errors.Is(err, ErrFormat) {
				t.Errorf("err %v, want ErrFormat", err)
			}
		})
	}
	if _, err := ReadJSON(filepath.Join(dir, "absent.json")); err == nil || errors.Is(err, ErrFormat) {
		t.Errorf("absent file: %v", err)
	}
}

func TestWriteJSONLeavesNoTempOnError(t *testing.T) {
	dir := t.TempDir()
	if err := WriteJSON(filepath.Join(dir, "missing", "h.json"), time.Now(), nil); err == nil {
		t.Error("writing into a missing folder succeeded")
	}
	bad := []Op{{Kind: "x", Input: []byte("{not json")}}
	if err := WriteJSON(filepath.Join(dir, "h.json"), time.Now(), bad); err == nil {
		t.Error("writing an op with invalid raw JSON succeeded")
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Errorf("left behind: %v", ents)
	}
}

func TestOpString(t *testing.T) {
	o := Op{ID: 3, Process: 1, Kind: KindCAS, Key: "/a", Input: []byte(`{"value":"v","expect_rev":1}`),
		Call: time.Millisecond, Return: 2 * time.Millisecond, Status: StatusOK, Output: []byte(`{"rev":2}`)}
	want := `op 3 (process 1) cas "/a" {"value":"v","expect_rev":1} [1ms, 2ms] ok {"rev":2}`
	if got := o.String(); got != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
	u := Op{ID: 4, Kind: KindRead, Key: "/a", Call: time.Second, Status: StatusUnknown, Err: "timeout"}
	if got, want := u.String(), `op 4 (process 0) read "/a" [1s] unknown: timeout`; got != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
}
