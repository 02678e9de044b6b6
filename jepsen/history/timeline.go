package history

import (
	"sync"
	"time"
)

// Fault is one injected fault: what, on which targets, from when until it
// was healed.
type Fault struct {
	ID          int    `json:"id"`
	Kind        string `json:"kind"` // e.g. "kill", "pause", "partition"
	Description string `json:"description,omitempty"`
	// Targets are the nodes (or links) the fault hit.
	Targets []string      `json:"targets,omitempty"`
	Start   time.Duration `json:"start"`
	// End is when it was healed; 0 while it is not (a fault that was never
	// healed keeps 0).
	End time.Duration `json:"end,omitempty"`
}

// Healed reports whether the fault has ended.
func (f Fault) Healed() bool { return f.End != 0 }

// Timeline records the faults of a run. It is safe for concurrent use.
type Timeline struct {
	clock
	mu     sync.Mutex
	faults []Fault
}

// NewTimeline returns an empty timeline whose times count from start (the
// zero time: now); give it the Recorder's Start to share its time axis.
func NewTimeline(start time.Time) *Timeline {
	return &Timeline{clock: newClock(start)}
}

// ActiveFault is a fault begun and not yet healed.
type ActiveFault struct {
	t  *Timeline
	id int
}

// Begin records that a fault starts now.
func (t *Timeline) Begin(kind, description string, targets ...string) *ActiveFault {
	t.mu.Lock()
	defer t.mu.Unlock()
	id := len(t.faults)
	t.faults = append(t.faults, Fault{
		ID: id, Kind: kind, Description: description,
		Targets: append([]string(nil), targets...), Start: t.since(),
	})
	return &ActiveFault{t: t, id: id}
}

// End records that the fault is healed now. Only the first call counts; a
// nil *ActiveFault ignores it.
func (a *ActiveFault) End() {
	if a == nil {
		return
	}
	a.t.mu.Lock()
	defer a.t.mu.Unlock()
	f := &a.t.faults[a.id]
	if f.End == 0 {
		f.End = max(a.t.since(), f.Start+1) // never 0, never before Start
	}
}

// Faults returns a snapshot of the timeline in the order faults began.
func (t *Timeline) Faults() []Fault {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make([]Fault, len(t.faults))
	for i, f := range t.faults {
		f.Targets = append([]string(nil), f.Targets...)
		out[i] = f
	}
	return out
}
