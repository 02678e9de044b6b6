package wirecode

import (
	"errors"
	"fmt"
	"testing"
)

type code string

var (
	errA = errors.New("a")
	errB = errors.New("b")
	tbl  = Table[code]{{"a", errA}, {"b", errB}}
)

func TestTable(t *testing.T) {
	cases := []struct {
		err  error
		want code
	}{
		{nil, ""},
		{errA, "a"},
		{fmt.Errorf("wrapped: %w", errB), "b"},
		{errors.New("other"), "internal"},
	}
	for _, c := range cases {
		if got := tbl.CodeOf(c.err, "internal"); got != c.want {
			t.Errorf("CodeOf(%v) = %q, want %q", c.err, got, c.want)
		}
	}
	if tbl.Sentinel("b") != errB || tbl.Sentinel("nope") != nil || tbl.Sentinel("") != nil {
		t.Error("Sentinel wrong")
	}
}
