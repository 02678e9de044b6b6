package check

import (
	"fmt"
	"sort"
	"strings"

	"github.com/coffer-dev/coffer/jepsen/history"
)

// MaxDetails bounds Result.Details: the first problems are kept and a last
// line says how many more there were.
const MaxDetails = 20

// Result is the verdict of one checker.
type Result struct {
	Name    string   `json:"name"`
	Valid   bool     `json:"valid"`
	Summary string   `json:"summary"`
	Details []string `json:"details,omitempty"` // the first problems found
}

// String is "name: VALID|INVALID: summary".
func (r Result) String() string {
	v := "INVALID"
	if r.Valid {
		v = "VALID"
	}
	return fmt.Sprintf("%s: %s: %s", r.Name, v, r.Summary)
}

// problems collects what a checker finds wrong, keeping the first
// MaxDetails and counting the rest.
type problems struct {
	n       int
	details []string
}

func (p *problems) add(format string, args ...any) {
	p.n++
	if len(p.details) < MaxDetails {
		p.details = append(p.details, fmt.Sprintf(format, args...))
	}
}

// result is a Result that is valid when nothing was found wrong, with
// summary (which should say what was checked) and the problem count.
func (p *problems) result(name, summary string) Result {
	r := Result{Name: name, Valid: p.n == 0, Summary: summary, Details: p.details}
	if p.n > 0 {
		r.Summary = fmt.Sprintf("%s; %d %s", summary, p.n, plural(p.n, "problem", "problems"))
	}
	if p.n > len(p.details) {
		r.Details = append(r.Details, fmt.Sprintf("… and %d more", p.n-len(p.details)))
	}
	return r
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

// Summary is the harness's one-line verdict for a run: the operations by
// status, the faults by kind, and the checks passed and failed. ok is true
// only when at least one check ran and every check is valid.
func Summary(ops []history.Op, faults []history.Fault, results []Result) (line string, ok bool) {
	c := history.Count(ops)
	var failed []string
	for _, r := range results {
		if !r.Valid {
			failed = append(failed, r.Name)
		}
	}
	ok = len(results) > 0 && len(failed) == 0
	var b strings.Builder
	if ok {
		b.WriteString("PASS: ")
	} else {
		b.WriteString("FAIL: ")
	}
	fmt.Fprintf(&b, "%d ops (%d ok, %d fail, %d unknown", c.Total(), c.OK, c.Fail, c.Unknown)
	if c.Other > 0 {
		fmt.Fprintf(&b, ", %d with a bad status", c.Other)
	}
	b.WriteString("); faults: ")
	byKind := map[string]int{}
	for _, f := range faults {
		byKind[f.Kind]++
	}
	kinds := make([]string, 0, len(byKind))
	for k := range byKind {
		kinds = append(kinds, k)
	}
	sort.Strings(kinds)
	if len(kinds) == 0 {
		b.WriteString("none")
	}
	for i, k := range kinds {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "%s %d", k, byKind[k])
	}
	fmt.Fprintf(&b, "; checks: %d/%d passed", len(results)-len(failed), len(results))
	if len(failed) > 0 {
		fmt.Fprintf(&b, " (failed: %s)", strings.Join(failed, ", "))
	}
	if len(results) == 0 {
		b.WriteString(" (no checks ran)")
	}
	return b.String(), ok
}

// sortedKeys returns m's keys in order.
func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
