package check

import (
	"fmt"

	"github.com/coffer-dev/coffer/jepsen/history"
)

// Set checks a set of unique creates against the set's final listing. Each
// op in creates is an attempt to create the element named by its Key; final
// is what a listing at the end showed. Every element with an ok create must
// be present (else it is lost); an element may be present only if some
// create of it is ok or unknown (else it is unexpected, or a failed create
// that took effect); final must not list an element twice.
func Set(creates []history.Op, final []string) Result {
	const name = "set"
	var p problems
	type attempts struct{ ok, fail, unknown int }
	byElem := map[string]*attempts{}
	for _, o := range creates {
		a := byElem[o.Key]
		if a == nil {
			a = &attempts{}
			byElem[o.Key] = a
		}
		switch o.Status {
		case history.StatusOK:
			a.ok++
		case history.StatusFail:
			a.fail++
		case history.StatusUnknown:
			a.unknown++
		default:
			p.add("malformed: %s: status %q (counted as unknown)", o, o.Status)
			a.unknown++
		}
	}
	present := map[string]int{}
	for _, e := range final {
		present[e]++
	}
	var lost, unexpected, failedPresent, dups int
	for _, e := range sortedKeys(present) {
		if n := present[e]; n > 1 {
			dups++
			p.add("duplicate: %q is listed %d times", e, n)
		}
		a := byElem[e]
		switch {
		case a == nil:
			unexpected++
			p.add("unexpected: %q is present but was never created", e)
		case a.ok == 0 && a.unknown == 0:
			failedPresent++
			p.add("unexpected: %q is present but every create of it failed (%d)", e, a.fail)
		}
	}
	var okN, unknownPresent, unknownAbsent int
	for _, e := range sortedKeys(byElem) {
		a := byElem[e]
		_, in := present[e]
		switch {
		case a.ok > 0:
			okN++
			if !in {
				lost++
				p.add("lost: %q was created (ok) but is absent at the end", e)
			}
		case a.unknown > 0 && in:
			unknownPresent++
		case a.unknown > 0:
			unknownAbsent++
		}
	}
	summary := fmt.Sprintf("%d elements attempted (%d acknowledged), %d present at the end: %d lost, %d unexpected, %d failed creates present, %d listed twice; unknown creates: %d present, %d absent",
		len(byElem), okN, len(present), lost, unexpected, failedPresent, dups, unknownPresent, unknownAbsent)
	return p.result(name, summary)
}
