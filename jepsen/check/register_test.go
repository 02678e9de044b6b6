package check

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/coffer-dev/coffer/jepsen/history"
)

func TestRegister(t *testing.T) {
	tests := []struct {
		name  string
		ops   []history.Op
		valid bool
		want  []string
	}{
		// Histories that must be found invalid.
		{"stale read", numbered(
			write(0, "/r", "a", 0, 1, 1),
			write(0, "/r", "b", 2, 3, 2),
			read(1, "/r", 4, 5, 1, "a"),
		), false, []string{`key "/r": not linearizable`, "op 2"}},
		{"lost write: read finds no file", numbered(
			write(0, "/r", "a", 0, 1, 1),
			read(1, "/r", 2, 3, 0, ""),
		), false, []string{`key "/r"`}},
		{"lost write: later revision overwrites it invisibly", numbered(
			write(0, "/r", "a", 0, 1, 1),
			write(1, "/r", "b", 2, 3, 2),
			read(2, "/r", 4, 5, 1, "b"),
		), false, nil},
		{"CAS succeeded twice from one revision", numbered(
			write(0, "/r", "a", 0, 1, 1),
			cas(1, "/r", 1, "b", 2, 5, 2),
			cas(2, "/r", 1, "c", 2, 5, 2),
		), false, []string{"not linearizable"}},
		{"two creates of one path both succeed", numbered(
			cas(0, "/r", 0, "a", 0, 5, 1),
			cas(1, "/r", 0, "b", 0, 5, 1),
		), false, nil},
		{"CAS fails although its precondition held", numbered(
			write(0, "/r", "a", 0, 1, 1),
			casF(1, "/r", 1, "b", 2, 3),
		), false, nil},
		{"write skips a revision", numbered(
			write(0, "/r", "a", 0, 1, 1),
			write(0, "/r", "b", 2, 3, 3),
		), false, nil},
		{"read of the right revision with other bytes", numbered(
			write(0, "/r", "a", 0, 1, 1),
			read(1, "/r", 2, 3, 1, "torn"),
		), false, nil},
		{"read sees an unknown write before it was called", numbered(
			read(1, "/r", 0, 1, 1, "a"),
			writeU(0, "/r", "a", 5),
		), false, nil},
		{"read goes back in time", numbered(
			write(0, "/r", "a", 0, 10, 1),
			read(1, "/r", 1, 2, 1, "a"),
			read(2, "/r", 3, 4, 0, ""),
		), false, nil},
		{"one bad key among good ones", numbered(
			write(0, "/good", "a", 0, 1, 1),
			read(0, "/good", 2, 3, 1, "a"),
			write(1, "/bad", "a", 0, 1, 1),
			read(1, "/bad", 2, 3, 0, ""),
		), false, []string{`key "/bad"`, "1 linearizable, 1 not"}},

		// Valid histories.
		{"empty", nil, true, []string{"0 keys"}},
		{"sequential writes and reads", numbered(
			read(0, "/r", 0, 1, 0, ""),
			write(0, "/r", "a", 2, 3, 1),
			read(0, "/r", 4, 5, 1, "a"),
			cas(0, "/r", 1, "b", 6, 7, 2),
			read(0, "/r", 8, 9, 2, "b"),
		), true, []string{"1 keys, 5 register ops (5 ok, 0 fail, 0 unknown): 1 linearizable"}},
		{"concurrent writes in either order", numbered(
			write(0, "/r", "a", 0, 10, 2),
			write(1, "/r", "b", 0, 10, 1),
			read(2, "/r", 11, 12, 2, "a"),
		), true, nil},
		{"create with IfNoneMatch", numbered(
			cas(0, "/r", 0, "a", 0, 1, 1),
			casF(1, "/r", 0, "b", 2, 3),
		), true, nil},
		{"concurrent CAS: one wins, one conflicts", numbered(
			write(0, "/r", "a", 0, 1, 1),
			cas(1, "/r", 1, "b", 2, 5, 2),
			casF(2, "/r", 1, "c", 2, 5),
			read(3, "/r", 6, 7, 2, "b"),
		), true, nil},
		{"unknown write that took effect", numbered(
			writeU(0, "/r", "a", 0),
			read(1, "/r", 5, 6, 1, "a"),
		), true, []string{"1 unknown"}},
		{"unknown write that never took effect", numbered(
			writeU(0, "/r", "a", 0),
			read(1, "/r", 5, 6, 0, ""),
			read(1, "/r", 7, 8, 0, ""),
		), true, nil},
		{"unknown write that took effect late", numbered(
			writeU(0, "/r", "a", 0),
			read(1, "/r", 5, 6, 0, ""),
			read(1, "/r", 10, 11, 1, "a"),
		), true, nil},
		{"unknown CAS that took effect, and one that could not", numbered(
			write(0, "/r", "a", 0, 1, 1),
			casU(1, "/r", 1, "b", 2),
			casU(2, "/r", 7, "x", 2),
			read(3, "/r", 5, 6, 2, "b"),
			cas(3, "/r", 2, "c", 7, 8, 3),
		), true, nil},
		{"failed writes and unknown or failed reads carry no information", numbered(
			writeF(0, "/r", "zzz", 0, 1),
			readU(1, "/r", 0),
			regOp(2, history.KindRead, "/r", nil, 0, 1, history.StatusFail, nil),
			read(3, "/r", 2, 3, 0, ""),
		), true, nil},
		{"keys are independent", numbered(
			write(0, "/a", "x", 0, 1, 1),
			write(0, "/b", "y", 2, 3, 1),
			read(1, "/a", 4, 5, 1, "x"),
			read(1, "/b", 4, 5, 1, "y"),
		), true, []string{"2 keys"}},
		{"other kinds are ignored", numbered(
			history.Op{Kind: history.KindUpload, Key: "/r", Status: history.StatusOK},
			write(0, "/r", "a", 0, 1, 1),
		), true, []string{"1 register ops"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			expect(t, Register(tc.ops, RegisterOptions{}), tc.valid, tc.want...)
		})
	}
}

func TestRegisterMalformed(t *testing.T) {
	badInput := write(0, "/r", "a", 0, 1, 1)
	badInput.Input = []byte(`{"value":`)
	noOutput := write(1, "/r", "b", 2, 3, 2)
	noOutput.Output = nil
	backwards := read(2, "/r", 9, 4, 0, "")
	tests := []struct {
		name string
		op   history.Op
		want string
	}{
		{"bad input", badInput, "malformed: op 0"},
		{"ok without output", noOutput, "no output"},
		{"bad status", history.Op{Kind: history.KindWrite, Key: "/r", Status: "maybe"}, `status "maybe"`},
		{"returns before its call", backwards, "returns before its call"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			expect(t, Register([]history.Op{tc.op}, RegisterOptions{}), false, tc.want)
		})
	}
}

func TestRegisterOptions(t *testing.T) {
	err := RegisterOptions{Timeout: -1, MaxOpsPerKey: -2, Parallel: -3}.Validate()
	if !errors.Is(err, ErrInvalidOptions) {
		t.Fatalf("Validate: %v", err)
	}
	for _, w := range []string{"Timeout", "MaxOpsPerKey", "Parallel"} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("Validate does not report %s: %v", w, err)
		}
	}
	if err := (RegisterOptions{}).Validate(); err != nil {
		t.Errorf("zero options: %v", err)
	}
	expect(t, Register(nil, RegisterOptions{Parallel: -1}), false, "invalid checker options")
}

func TestRegisterWorkloadFilter(t *testing.T) {
	bad := read(1, "/r", 2, 3, 7, "x")
	bad.Workload = "other"
	ops := numbered(write(0, "/r", "a", 0, 1, 1), bad)
	expect(t, Register(ops, RegisterOptions{Workload: "register"}), true, "1 register ops")
	expect(t, Register(ops, RegisterOptions{}), false)
}

func TestRegisterRejectsBigKeys(t *testing.T) {
	var ops []history.Op
	for i := range 12 {
		ops = append(ops, write(0, "/big", fmt.Sprint(i), 2*i, 2*i+1, uint64(i+1)))
	}
	ops = append(ops, write(0, "/small", "a", 0, 1, 1), read(1, "/small", 2, 3, 0, ""))
	r := Register(numbered(ops...), RegisterOptions{MaxOpsPerKey: 10})
	expect(t, r, false, `key "/big": 12 register ops, more than the limit of 10`, `key "/small": not linearizable`, "1 over the op limit")
}

// bigAmbiguous is a history porcupine cannot decide quickly: many
// concurrent unknown writes, then a read that no subset of them explains,
// so the search must try every subset.
func bigAmbiguous(key string, n int) []history.Op {
	var ops []history.Op
	for i := range n {
		ops = append(ops, writeU(i, key, fmt.Sprint(i), 0))
	}
	return append(ops, read(n, key, 10, 11, uint64(n+5), "never"))
}

func TestRegisterTimeoutIsInvalid(t *testing.T) {
	dir := t.TempDir()
	viz := filepath.Join(dir, "register.html")
	ops := numbered(append(bigAmbiguous("/slow", 60),
		write(0, "/fast", "a", 0, 1, 1), read(1, "/fast", 2, 3, 1, "a"))...)
	start := time.Now()
	r := Register(ops, RegisterOptions{Timeout: 300 * time.Millisecond, VisualizePath: viz})
	expect(t, r, false, `key "/slow": the linearizability check timed out after 300ms on 61 ops`, "unknown counts as failure", "1 linearizable, 0 not, 1 timed out")
	if d := time.Since(start); d > 20*time.Second {
		t.Errorf("took %v", d)
	}
	b, err := os.ReadFile(viz)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), `not shown`) || !strings.Contains(string(b), `write(`) {
		t.Errorf("visualisation lacks the timed-out key's note or the fast key's ops")
	}
}

func TestRegisterVisualization(t *testing.T) {
	dir := t.TempDir()
	viz := filepath.Join(dir, "register.html")
	ops := numbered(
		write(0, "/a", "x", 0, 1, 1), read(1, "/a", 2, 3, 0, ""), // illegal
		writeU(0, "/b", "y", 0), cas(1, "/b", 1, "z", 5, 6, 2),
	)
	faults := []history.Fault{{Kind: "kill", Targets: []string{"n1"}, Start: ms, End: 2 * ms}, {Kind: "partition", Start: 3 * ms}}
	r := Register(ops, RegisterOptions{VisualizePath: viz, Faults: faults})
	expect(t, r, false, "visualisation: "+viz)
	b, err := os.ReadFile(viz)
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range []string{"<html", "cas(1", "partition", "kill", "rev 1"} {
		if !strings.Contains(string(b), w) {
			t.Errorf("visualisation lacks %q", w)
		}
	}
	r = Register(ops, RegisterOptions{VisualizePath: filepath.Join(dir, "missing", "x.html")})
	expect(t, r, false, "visualisation not written")
}

// TestRegisterAgainstBruteForce compares Register with a brute-force search
// over every order of small random histories, generated from real
// executions and sometimes corrupted.
func TestRegisterAgainstBruteForce(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 11))
	counts := map[bool]int{}
	for trial := range 400 {
		ops := randomRegisterHistory(rng, 2+rng.IntN(5))
		want := bruteLinearizable(ops)
		counts[want]++
		r := Register(ops, RegisterOptions{})
		if r.Valid != want {
			var b strings.Builder
			for _, o := range ops {
				fmt.Fprintf(&b, "  %s\n", o)
			}
			t.Fatalf("trial %d: Register says %v, brute force %v\n%s%s", trial, r.Valid, want, b.String(), strings.Join(r.Details, "\n"))
		}
	}
	if counts[true] < 50 || counts[false] < 50 {
		t.Errorf("unbalanced trials: %v", counts)
	}
}

// randomRegisterHistory runs n random ops against a real register with
// random overlaps (each op takes effect at a random point of its
// interval), then sometimes corrupts one output.
func randomRegisterHistory(rng *rand.Rand, n int) []history.Op {
	type ev struct {
		op    history.Op
		point int
		lost  bool // never reached the server: no effect, recorded unknown
	}
	evs := make([]ev, n)
	for i := range evs {
		call := rng.IntN(20)
		ret := call + 1 + rng.IntN(10)
		evs[i] = ev{point: call + rng.IntN(ret-call+1)}
		in := history.RegisterInput{Value: string(rune('a' + rng.IntN(3))), ExpectRev: uint64(rng.IntN(3))}
		kind := []string{history.KindWrite, history.KindCAS, history.KindRead}[rng.IntN(3)]
		evs[i].op = regOp(i, kind, "/r", &in, call, ret, history.StatusOK, nil)
		if kind == history.KindRead {
			evs[i].op.Input = nil
		} else {
			evs[i].lost = rng.IntN(8) == 0
		}
	}
	order := make([]int, n)
	for i := range order {
		order[i] = i
	}
	// Apply in order of the effect points (ties: by index).
	for i := range order {
		for j := i + 1; j < n; j++ {
			if evs[order[j]].point < evs[order[i]].point {
				order[i], order[j] = order[j], order[i]
			}
		}
	}
	var rev uint64
	val := ""
	for _, i := range order {
		o := &evs[i].op
		if evs[i].lost {
			continue
		}
		var in history.RegisterInput
		_ = o.DecodeInput(&in)
		switch o.Kind {
		case history.KindRead:
			o.Output = mustJSON(history.RegisterOutput{Rev: rev, Value: val})
		case history.KindWrite:
			rev, val = rev+1, in.Value
			o.Output = mustJSON(history.RegisterOutput{Rev: rev})
		case history.KindCAS:
			if rev != in.ExpectRev {
				o.Status = history.StatusFail
				continue
			}
			rev, val = rev+1, in.Value
			o.Output = mustJSON(history.RegisterOutput{Rev: rev})
		}
	}
	ops := make([]history.Op, n)
	for i := range evs {
		ops[i] = evs[i].op
		if rng.IntN(5) == 0 && ops[i].Status == history.StatusOK && ops[i].Kind != history.KindRead {
			ops[i].Status, ops[i].Output, ops[i].Return = history.StatusUnknown, nil, 0 // the reply was lost
		}
		if evs[i].lost {
			ops[i].Status, ops[i].Output, ops[i].Return = history.StatusUnknown, nil, 0
		}
	}
	if rng.IntN(2) == 0 { // corrupt one ok output
		i := rng.IntN(n)
		switch {
		case ops[i].Status == history.StatusOK && ops[i].Kind == history.KindCAS && rng.IntN(3) == 0:
			ops[i].Status, ops[i].Output = history.StatusFail, nil
		case ops[i].Status == history.StatusOK:
			var out history.RegisterOutput
			_ = ops[i].DecodeOutput(&out)
			out.Rev = uint64(rng.IntN(4))
			if rng.IntN(2) == 0 {
				out.Value = string(rune('a' + rng.IntN(3)))
			}
			ops[i].Output = mustJSON(out)
		case ops[i].Status == history.StatusFail:
			ops[i].Status, ops[i].Output = history.StatusOK, mustJSON(history.RegisterOutput{Rev: uint64(rng.IntN(4))})
		}
	}
	return numbered(ops...)
}

// bruteLinearizable decides linearizability by trying every order of the
// ops that respects real time, the rules written out independently of
// regStep: unknown ops may also be left out (they never took effect).
func bruteLinearizable(ops []history.Op) bool {
	type bop struct {
		kind      string
		status    history.Status
		in        history.RegisterInput
		out       history.RegisterOutput
		call, ret int64
	}
	var bs []bop
	for _, o := range ops {
		b := bop{kind: o.Kind, status: o.Status, call: int64(o.Call), ret: int64(o.Return)}
		_ = o.DecodeInput(&b.in)
		_ = o.DecodeOutput(&b.out)
		if o.Status == history.StatusUnknown {
			if o.Kind == history.KindRead {
				continue
			}
			b.ret = 1 << 62
		}
		if o.Status == history.StatusFail && o.Kind != history.KindCAS {
			continue
		}
		bs = append(bs, b)
	}
	used := make([]bool, len(bs))
	var try func(rev uint64, val string, done int) bool
	try = func(rev uint64, val string, done int) bool {
		pendingKnown := false
		for i := range bs {
			if !used[i] && bs[i].status != history.StatusUnknown {
				pendingKnown = true
			}
		}
		if !pendingKnown {
			return true // the rest are unknown: they never took effect
		}
		for i, b := range bs {
			if used[i] {
				continue
			}
			// b can go next only if no other pending op returned before b was called.
			ok := true
			for j, c := range bs {
				if !used[j] && j != i && c.ret < b.call {
					ok = false
				}
			}
			if !ok {
				continue
			}
			nrev, nval, legal := rev, val, false
			switch {
			case b.kind == history.KindRead:
				legal = b.out.Rev == rev && b.out.Value == val
			case b.kind == history.KindWrite:
				nrev, nval = rev+1, b.in.Value
				legal = b.status == history.StatusUnknown || b.out.Rev == rev+1
			case b.status == history.StatusFail:
				legal = rev != b.in.ExpectRev
			case b.status == history.StatusUnknown:
				legal = true
				if rev == b.in.ExpectRev {
					nrev, nval = rev+1, b.in.Value
				}
			default:
				legal = rev == b.in.ExpectRev && b.out.Rev == rev+1
				nrev, nval = rev+1, b.in.Value
			}
			if !legal {
				continue
			}
			used[i] = true
			if try(nrev, nval, done+1) {
				used[i] = false
				return true
			}
			used[i] = false
		}
		return false
	}
	return try(0, "", 0)
}
