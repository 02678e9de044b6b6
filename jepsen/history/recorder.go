package history

import (
	"encoding/json"
	"sync"
	"time"
)

// clock measures durations since a start on the monotonic clock.
type clock struct{ start time.Time }

func newClock(start time.Time) clock {
	if start.IsZero() {
		start = time.Now()
	}
	return clock{start}
}

func (c clock) since() time.Duration { return time.Since(c.start) }

// Recorder records the operations of a run. It is safe for concurrent use.
type Recorder struct {
	clock
	mu  sync.Mutex
	ops []Op // Status "" while pending
}

// NewRecorder returns an empty recorder whose times count from start (the
// zero time: now). Give a Timeline the same start to share the time axis.
func NewRecorder(start time.Time) *Recorder {
	return &Recorder{clock: newClock(start)}
}

// Start is the instant the recorder's times count from.
func (r *Recorder) Start() time.Time { return r.start }

// Elapsed is the time since Start, on the recorder's time axis.
func (r *Recorder) Elapsed() time.Duration { return r.since() }

// Pending is an invoked operation awaiting its completion. Only the first
// of Ok, Fail and Unknown counts; later calls are ignored. A nil *Pending
// ignores every call.
type Pending struct {
	r  *Recorder
	id int
}

// Invoke records the invocation of an operation now and returns the handle
// to complete it with. input is stored as JSON (nil: none); if it cannot be
// marshalled, the op records no input and says why in Err.
func (r *Recorder) Invoke(process int, workload, kind, key string, input any) *Pending {
	raw, err := marshal(input)
	r.mu.Lock()
	defer r.mu.Unlock()
	id := len(r.ops)
	op := Op{ID: id, Process: process, Workload: workload, Kind: kind, Key: key, Input: raw, Call: r.since()}
	if err != nil {
		op.Err = "recording input: " + err.Error()
	}
	r.ops = append(r.ops, op)
	return &Pending{r: r, id: id}
}

// ID is the operation's ID in the history.
func (p *Pending) ID() int {
	if p == nil {
		return -1
	}
	return p.id
}

// SetNode records which gateway the operation was sent to.
func (p *Pending) SetNode(node string) {
	if p == nil {
		return
	}
	p.r.mu.Lock()
	defer p.r.mu.Unlock()
	p.r.ops[p.id].Node = node
}

// Ok records that the operation took effect and returned output (stored as
// JSON; nil: none).
func (p *Pending) Ok(output any) {
	if p == nil {
		return
	}
	raw, err := marshal(output)
	msg := ""
	if err != nil {
		msg = "recording output: " + err.Error()
	}
	p.complete(StatusOK, raw, msg, true)
}

// Fail records that the operation definitely did not take effect. Use
// Unknown, not Fail, whenever the request may have been applied.
func (p *Pending) Fail(err error) {
	if p == nil {
		return
	}
	p.complete(StatusFail, nil, errString(err), true)
}

// Unknown records that the operation's outcome cannot be known: it may or
// may not have taken effect. The op keeps no return time.
func (p *Pending) Unknown(err error) {
	if p == nil {
		return
	}
	p.complete(StatusUnknown, nil, errString(err), false)
}

func (p *Pending) complete(s Status, out json.RawMessage, msg string, returned bool) {
	p.r.mu.Lock()
	defer p.r.mu.Unlock()
	op := &p.r.ops[p.id]
	if op.Status != "" {
		return
	}
	op.Status = s
	op.Output = out
	if returned {
		op.Return = p.r.since()
	}
	if msg != "" {
		if op.Err != "" {
			msg = op.Err + "; " + msg
		}
		op.Err = msg
	}
}

// NotCompleted is the Err of an op that was invoked but never completed;
// Ops reports such an op as StatusUnknown.
const NotCompleted = "no completion recorded"

// Ops returns a snapshot of the history in invocation order. Operations
// still pending are reported as StatusUnknown with Err NotCompleted.
func (r *Recorder) Ops() []Op {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]Op, len(r.ops))
	copy(out, r.ops)
	for i := range out {
		if out[i].Status == "" {
			out[i].Status = StatusUnknown
			if out[i].Err == "" {
				out[i].Err = NotCompleted
			} else {
				out[i].Err += "; " + NotCompleted
			}
		}
	}
	return out
}

func marshal(v any) (json.RawMessage, error) {
	if v == nil {
		return nil, nil
	}
	b, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	if string(b) == "null" {
		return nil, nil
	}
	return b, nil
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// Counts is how many ops ended with each status.
type Counts struct{ OK, Fail, Unknown, Other int }

// Total is the number of ops counted.
func (c Counts) Total() int { return c.OK + c.Fail + c.Unknown + c.Other }

// Count counts ops by status (Other: a status that is none of the three).
func Count(ops []Op) Counts {
	var c Counts
	for _, o := range ops {
		switch o.Status {
		case StatusOK:
			c.OK++
		case StatusFail:
			c.Fail++
		case StatusUnknown:
			c.Unknown++
		default:
			c.Other++
		}
	}
	return c
}
