package blockstore

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

func TestParseRef(t *testing.T) {
	empty := Sum(nil) // e3b0c442...
	cases := []struct {
		name string
		in   string
		want Ref
		err  error
	}{
		{"lower hex", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855", empty, nil},
		{"upper hex", strings.ToUpper("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"), empty, nil},
		{"empty", "", Ref{}, ErrInvalidRef},
		{"short", "e3b0", Ref{}, ErrInvalidRef},
		{"long", strings.Repeat("0", 65), Ref{}, ErrInvalidRef},
		{"not hex", strings.Repeat("g", 64), Ref{}, ErrInvalidRef},
		{"spaces", " " + strings.Repeat("0", 63), Ref{}, ErrInvalidRef},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := ParseRef(c.in)
			if !errors.Is(err, c.err) || (c.err == nil && err != nil) {
				t.Fatalf("ParseRef(%q) error %v, want %v", c.in, err, c.err)
			}
			if got != c.want {
				t.Fatalf("ParseRef(%q) = %s, want %s", c.in, got, c.want)
			}
		})
	}
}

func TestRefForms(t *testing.T) {
	r := Sum([]byte("hello"))
	s := r.String()
	if len(s) != 64 || strings.ToLower(s) != s {
		t.Fatalf("String() = %q", s)
	}
	if back, err := ParseRef(s); err != nil || back != r {
		t.Fatalf("round trip: %v %v", back, err)
	}
	if r.Short() != s[:12] {
		t.Fatalf("Short() = %q", r.Short())
	}
	if r.IsZero() || !(Ref{}).IsZero() {
		t.Fatal("IsZero wrong")
	}
	m := map[Ref]int{r: 1} // comparable: a map key
	if m[Sum([]byte("hello"))] != 1 {
		t.Fatal("Ref not usable as a map key")
	}
	b, err := json.Marshal(map[string]Ref{"ref": r})
	if err != nil || string(b) != `{"ref":"`+s+`"}` {
		t.Fatalf("JSON %s %v", b, err)
	}
	var back struct{ Ref Ref }
	if err := json.Unmarshal([]byte(`{"Ref":"`+s+`"}`), &back); err != nil || back.Ref != r {
		t.Fatalf("JSON decode: %v", err)
	}
	if err := json.Unmarshal([]byte(`{"Ref":"nope"}`), &back); !errors.Is(err, ErrInvalidRef) {
		t.Fatalf("JSON decode of a bad ref: %v", err)
	}
	if err := r.Verify([]byte("hello")); err != nil {
		t.Fatal(err)
	}
	if err := r.Verify([]byte("hellO")); !errors.Is(err, ErrHashMismatch) {
		t.Fatalf("Verify wrong data: %v", err)
	}
	defer func() {
		if recover() == nil {
			t.Fatal("MustParseRef did not panic")
		}
	}()
	MustParseRef("zz")
}

func TestCodes(t *testing.T) {
	seen := map[Code]bool{}
	for _, cs := range codeSentinels {
		if seen[cs.Code] {
			t.Fatalf("code %q used twice", cs.Code)
		}
		seen[cs.Code] = true
		wrapped := errors.Join(errors.New("context"), cs.Err)
		if got := CodeOf(wrapped); got != cs.Code {
			t.Fatalf("CodeOf(%v) = %q, want %q", cs.Err, got, cs.Code)
		}
		if SentinelOf(cs.Code) != cs.Err {
			t.Fatalf("SentinelOf(%q) wrong", cs.Code)
		}
	}
	if CodeOf(nil) != CodeOK || CodeOf(errors.New("x")) != CodeInternal {
		t.Fatal("CodeOf(nil) or of a plain error wrong")
	}
	if SentinelOf(CodeInternal) != nil || SentinelOf("bogus") != nil || SentinelOf(CodeOK) != nil {
		t.Fatal("SentinelOf of a non-sentinel code must be nil")
	}
}
