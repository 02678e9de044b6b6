package check

import (
	"fmt"
	"strings"
	"time"

	"github.com/coffer-dev/coffer/jepsen/history"
)

// Window is a span of a run on the history's time axis, e.g. before the
// first fault or after the last heal.
type Window struct {
	Name  string        `json:"name"`
	Start time.Duration `json:"start"`
	End   time.Duration `json:"end"`
}

// Throughput checks that the run did real work: in each window, the ok ops
// that returned within [Start, End] number at least minOpsPerSec per
// second of the window. No windows, an empty or inverted window, or a
// negative minimum is invalid.
func Throughput(ops []history.Op, windows []Window, minOpsPerSec float64) Result {
	const name = "throughput"
	var p problems
	if len(windows) == 0 {
		p.add("no windows given")
	}
	if minOpsPerSec < 0 {
		p.add("%v: the minimum rate %g is negative", ErrInvalidOptions, minOpsPerSec)
	}
	if p.n > 0 {
		return p.result(name, "not checked")
	}
	var rates []string
	for _, w := range windows {
		if w.End <= w.Start {
			p.add("window %s: ends (%v) before it starts (%v)", w.Name, w.End, w.Start)
			continue
		}
		n := 0
		for _, o := range ops {
			if o.Status == history.StatusOK && o.Return >= w.Start && o.Return <= w.End {
				n++
			}
		}
		rate := float64(n) / (w.End - w.Start).Seconds()
		rates = append(rates, fmt.Sprintf("%s %.1f/s", w.Name, rate))
		if rate < minOpsPerSec {
			p.add("window %s [%v, %v]: %.1f ok ops/s (%d ops), want at least %g", w.Name, w.Start, w.End, rate, n, minOpsPerSec)
		}
	}
	return p.result(name, fmt.Sprintf("ok ops per second (min %g): %s", minOpsPerSec, strings.Join(rates, ", ")))
}
