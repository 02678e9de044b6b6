package check

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/coffer-dev/coffer/jepsen/history"
)

// Builders for test histories; times are in milliseconds.

const ms = time.Millisecond

func mustJSON(v any) json.RawMessage {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}

func regOp(proc int, kind, key string, in *history.RegisterInput, call, ret int, status history.Status, out *history.RegisterOutput) history.Op {
	o := history.Op{Process: proc, Workload: "register", Kind: kind, Key: key, Call: time.Duration(call) * ms, Status: status}
	if in != nil {
		o.Input = mustJSON(in)
	}
	if out != nil {
		o.Output = mustJSON(out)
	}
	if status != history.StatusUnknown {
		o.Return = time.Duration(ret) * ms
	}
	return o
}

func write(p int, key, v string, call, ret int, rev uint64) history.Op {
	return regOp(p, history.KindWrite, key, &history.RegisterInput{Value: v}, call, ret, history.StatusOK, &history.RegisterOutput{Rev: rev})
}

func writeU(p int, key, v string, call int) history.Op {
	return regOp(p, history.KindWrite, key, &history.RegisterInput{Value: v}, call, 0, history.StatusUnknown, nil)
}

func writeF(p int, key, v string, call, ret int) history.Op {
	return regOp(p, history.KindWrite, key, &history.RegisterInput{Value: v}, call, ret, history.StatusFail, nil)
}

func cas(p int, key string, expect uint64, v string, call, ret int, rev uint64) history.Op {
	return regOp(p, history.KindCAS, key, &history.RegisterInput{Value: v, ExpectRev: expect}, call, ret, history.StatusOK, &history.RegisterOutput{Rev: rev})
}

func casF(p int, key string, expect uint64, v string, call, ret int) history.Op {
	return regOp(p, history.KindCAS, key, &history.RegisterInput{Value: v, ExpectRev: expect}, call, ret, history.StatusFail, nil)
}

func casU(p int, key string, expect uint64, v string, call int) history.Op {
	return regOp(p, history.KindCAS, key, &history.RegisterInput{Value: v, ExpectRev: expect}, call, 0, history.StatusUnknown, nil)
}

func read(p int, key string, call, ret int, rev uint64, v string) history.Op {
	return regOp(p, history.KindRead, key, nil, call, ret, history.StatusOK, &history.RegisterOutput{Rev: rev, Value: v})
}

func readU(p int, key string, call int) history.Op {
	return regOp(p, history.KindRead, key, nil, call, 0, history.StatusUnknown, nil)
}

// numbered gives ops their IDs in order.
func numbered(ops ...history.Op) []history.Op {
	for i := range ops {
		ops[i].ID = i
	}
	return ops
}

// expect checks a result's verdict and that its summary and details
// mention each of want.
func expect(t *testing.T, r Result, valid bool, want ...string) {
	t.Helper()
	if r.Valid != valid {
		t.Errorf("valid = %v, want %v\n%s\n  %s", r.Valid, valid, r, strings.Join(r.Details, "\n  "))
		return
	}
	if valid && len(r.Details) > 0 {
		t.Errorf("valid result with details: %v", r.Details)
	}
	all := r.Summary + "\n" + strings.Join(r.Details, "\n")
	for _, w := range want {
		if !strings.Contains(all, w) {
			t.Errorf("result does not mention %q:\n%s\n  %s", w, r, strings.Join(r.Details, "\n  "))
		}
	}
}
