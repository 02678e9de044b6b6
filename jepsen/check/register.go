package check

import (
	"errors"
	"fmt"
	"hash/fnv"
	"math"
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/anishathalye/porcupine"

	"github.com/coffer-dev/coffer/jepsen/history"
)

// ErrInvalidOptions: a checker's options failed Validate. The checker then
// returns an invalid Result whose Details hold the error.
var ErrInvalidOptions = errors.New("invalid checker options")

// Defaults for RegisterOptions.
const (
	DefaultRegisterTimeout = 30 * time.Second
	DefaultMaxOpsPerKey    = 200
)

// RegisterOptions configure Register. The zero value is the default.
type RegisterOptions struct {
	// Workload, if set, limits the check to ops of that workload.
	Workload string
	// Timeout bounds the linearizability search of one key (default 30 s).
	// A key whose search times out makes the result invalid.
	Timeout time.Duration
	// MaxOpsPerKey is the most register ops (of any status) a key may have
	// (default 200); a key with more is not checked and makes the result
	// invalid: the search is exponential, so keep keys small.
	MaxOpsPerKey int
	// Parallel is how many keys are checked at once (default GOMAXPROCS).
	Parallel int
	// VisualizePath, if set, is where porcupine's HTML visualisation of
	// every key checked is written.
	VisualizePath string
	// Faults are drawn on the visualisation's time axis.
	Faults []history.Fault
}

// Validate reports every problem with o at once, wrapping ErrInvalidOptions.
func (o RegisterOptions) Validate() error {
	var bad []string
	if o.Timeout < 0 {
		bad = append(bad, fmt.Sprintf("Timeout %v is negative", o.Timeout))
	}
	if o.MaxOpsPerKey < 0 {
		bad = append(bad, fmt.Sprintf("MaxOpsPerKey %d is negative", o.MaxOpsPerKey))
	}
	if o.Parallel < 0 {
		bad = append(bad, fmt.Sprintf("Parallel %d is negative", o.Parallel))
	}
	if len(bad) > 0 {
		return fmt.Errorf("%w: %s", ErrInvalidOptions, strings.Join(bad, "; "))
	}
	return nil
}

func (o RegisterOptions) withDefaults() RegisterOptions {
	if o.Timeout == 0 {
		o.Timeout = DefaultRegisterTimeout
	}
	if o.MaxOpsPerKey == 0 {
		o.MaxOpsPerKey = DefaultMaxOpsPerKey
	}
	if o.Parallel == 0 {
		o.Parallel = runtime.GOMAXPROCS(0)
	}
	return o
}

// The register model: per key, a file's state is its revision and value;
// revision 0 is "no file".
type regState struct {
	rev   uint64
	value string
}

type regIn struct {
	kind   string // history.KindWrite, KindCAS or KindRead
	value  string
	expect uint64
}

type regOut struct {
	status history.Status // ok, fail (CAS only) or unknown (any output)
	rev    uint64
	value  string
}

// regMeta ties a porcupine operation to its history op.
type regMeta struct {
	key string
	op  history.Op
}

// regStep is the sequential specification of a per-file compare-and-set
// register (see DESIGN.md).
func regStep(s regState, in regIn, out regOut) (bool, regState) {
	switch in.kind {
	case history.KindRead:
		return out.status == history.StatusUnknown || (out.rev == s.rev && out.value == s.value), s
	case history.KindWrite:
		next := regState{s.rev + 1, in.value}
		return out.status == history.StatusUnknown || out.rev == next.rev, next
	case history.KindCAS:
		match := s.rev == in.expect
		next := regState{in.expect + 1, in.value}
		switch out.status {
		case history.StatusUnknown:
			if match {
				return true, next
			}
			return true, s
		case history.StatusFail:
			return !match, s
		default:
			return match && out.rev == next.rev, next
		}
	}
	return false, s
}

func registerModel() porcupine.Model {
	return porcupine.Model{
		Partition: func(h []porcupine.Operation) [][]porcupine.Operation {
			byKey := map[string][]porcupine.Operation{}
			for _, o := range h {
				k := o.Metadata.(regMeta).key
				byKey[k] = append(byKey[k], o)
			}
			out := make([][]porcupine.Operation, 0, len(byKey))
			for _, k := range sortedKeys(byKey) {
				out = append(out, byKey[k])
			}
			return out
		},
		Init: func() any { return regState{} },
		Step: func(state, input, output any) (bool, any) {
			s, ok1 := state.(regState)
			in, ok2 := input.(regIn)
			out, ok3 := output.(regOut)
			if !ok1 || !ok2 || !ok3 {
				return false, state
			}
			return regStep(s, in, out)
		},
		Hash: func(state any) uint64 {
			s, _ := state.(regState)
			h := fnv.New64a()
			fmt.Fprintf(h, "%d\x00%s", s.rev, s.value)
			return h.Sum64()
		},
		DescribeOperation: func(input, output any) string {
			in, _ := input.(regIn)
			out, _ := output.(regOut)
			return describeRegOp(in, out)
		},
		DescribeState: func(state any) string {
			s, _ := state.(regState)
			if s.rev == 0 {
				return "no file"
			}
			return fmt.Sprintf("rev %d %q", s.rev, short(s.value))
		},
		DescribeOperationMetadata: func(m any) string {
			meta, ok := m.(regMeta)
			if !ok {
				return ""
			}
			return meta.op.String()
		},
	}
}

func describeRegOp(in regIn, out regOut) string {
	var call string
	switch in.kind {
	case history.KindRead:
		call = "read()"
	case history.KindWrite:
		call = fmt.Sprintf("write(%q)", short(in.value))
	default:
		call = fmt.Sprintf("cas(%d, %q)", in.expect, short(in.value))
	}
	switch {
	case out.status == history.StatusUnknown:
		return call + " → ?"
	case out.status == history.StatusFail:
		return call + " → conflict"
	case in.kind == history.KindRead && out.rev == 0:
		return call + " → not found"
	case in.kind == history.KindRead:
		return fmt.Sprintf("%s → rev %d %q", call, out.rev, short(out.value))
	}
	return fmt.Sprintf("%s → rev %d", call, out.rev)
}

// short abbreviates long values (content hashes) for the visualisation.
func short(s string) string {
	if len(s) > 16 {
		return s[:12] + "…"
	}
	return s
}

// regKey is one key's ops as porcupine sees them.
type regKey struct {
	key     string
	total   int // register ops of the key, of any status
	ops     []porcupine.Operation
	result  porcupine.CheckResult
	info    porcupine.LinearizationInfo
	elapsed time.Duration
	panic   string
}

// Register checks that, per key, the write, cas and read ops are
// linearizable against a compare-and-set register whose state is a file's
// {revision, value}; see DESIGN.md for the exact rules. A key whose search
// times out, or that has more than MaxOpsPerKey ops, makes the result
// invalid.
func Register(ops []history.Op, opts RegisterOptions) Result {
	const name = "register"
	var p problems
	if err := opts.Validate(); err != nil {
		p.add("%v", err)
		return p.result(name, "not checked")
	}
	opts = opts.withDefaults()

	keys, counts := regOperations(ops, opts.Workload, &p)
	var run []*regKey
	rejected := 0
	for _, k := range keys {
		if k.total > opts.MaxOpsPerKey {
			rejected++
			p.add("key %q: %d register ops, more than the limit of %d: not checked (spread the workload over more keys)", k.key, k.total, opts.MaxOpsPerKey)
			continue
		}
		run = append(run, k)
	}
	checkKeys(run, opts)

	var good, bad, timedOut int
	for _, k := range run {
		switch {
		case k.panic != "":
			bad++
			p.add("key %q: the checker failed: %s", k.key, k.panic)
		case k.result == porcupine.Ok:
			good++
		case k.result == porcupine.Illegal:
			bad++
			p.add("key %q: not linearizable%s", k.key, illegalHint(k))
		default:
			timedOut++
			p.add("key %q: the linearizability check timed out after %v on %d ops (unknown counts as failure: shrink the history)", k.key, opts.Timeout, len(k.ops))
		}
	}
	summary := fmt.Sprintf("%d keys, %d register ops (%d ok, %d fail, %d unknown): %d linearizable, %d not, %d timed out, %d over the op limit",
		len(keys), counts.Total(), counts.OK, counts.Fail, counts.Unknown, good, bad, timedOut, rejected)
	if opts.VisualizePath != "" {
		if err := visualizeRegister(run, keys, opts); err != nil {
			summary += fmt.Sprintf("; visualisation not written: %v", err)
		} else {
			summary += "; visualisation: " + opts.VisualizePath
		}
	}
	return p.result(name, summary)
}

// regOperations turns the register ops into porcupine operations per key
// (in key order), reporting malformed ops.
func regOperations(ops []history.Op, workload string, p *problems) ([]*regKey, history.Counts) {
	byKey := map[string]*regKey{}
	var all []history.Op
	for _, o := range ops {
		if o.Kind != history.KindWrite && o.Kind != history.KindCAS && o.Kind != history.KindRead {
			continue
		}
		if workload != "" && o.Workload != workload {
			continue
		}
		all = append(all, o)
		k := byKey[o.Key]
		if k == nil {
			k = &regKey{key: o.Key}
			byKey[o.Key] = k
		}
		k.total++
	}
	counts := history.Count(all)
	// A process whose op is unknown may be stuck in it: its later ops go
	// on a fresh row of the visualisation (porcupine's ClientId).
	rows := map[string]map[[2]int]int{} // key → (process, generation) → row
	gen := map[int]int{}
	for _, o := range all {
		op, ok := regOperation(o, p)
		if !ok {
			continue
		}
		r := rows[o.Key]
		if r == nil {
			r = map[[2]int]int{}
			rows[o.Key] = r
		}
		pg := [2]int{o.Process, gen[o.Process]}
		if _, seen := r[pg]; !seen {
			r[pg] = len(r)
		}
		op.ClientId = r[pg]
		if o.Status == history.StatusUnknown {
			gen[o.Process]++
		}
		k := byKey[o.Key]
		k.ops = append(k.ops, op)
	}
	keys := make([]*regKey, 0, len(byKey))
	for _, name := range sortedKeys(byKey) {
		keys = append(keys, byKey[name])
	}
	return keys, counts
}

// regOperation converts one op; false means it carries no information for
// the model (a failed or unknown read, a failed write) or is malformed
// (reported).
func regOperation(o history.Op, p *problems) (porcupine.Operation, bool) {
	if !o.Status.Valid() {
		p.add("malformed: %s: status %q", o, o.Status)
		return porcupine.Operation{}, false
	}
	in := regIn{kind: o.Kind}
	if o.Kind != history.KindRead {
		var ri history.RegisterInput
		if err := o.DecodeInput(&ri); err != nil {
			p.add("malformed: %s: %v", o, err)
			return porcupine.Operation{}, false
		}
		in.value, in.expect = ri.Value, ri.ExpectRev
	}
	out := regOut{status: o.Status}
	if o.Status == history.StatusFail && o.Kind != history.KindCAS {
		return porcupine.Operation{}, false // definitely no effect, nothing observed
	}
	if o.Status == history.StatusOK {
		var ro history.RegisterOutput
		if err := o.DecodeOutput(&ro); err != nil {
			p.add("malformed: %s: %v", o, err)
			out.status = history.StatusUnknown // it took effect, with an unknown result
		} else {
			out.rev, out.value = ro.Rev, ro.Value
		}
	}
	if o.Kind == history.KindRead && out.status == history.StatusUnknown {
		return porcupine.Operation{}, false
	}
	call, ret := int64(o.Call), int64(o.Return)
	if out.status == history.StatusUnknown {
		ret = math.MaxInt64 // may take effect at any time after its call, or never
	} else if ret < call {
		p.add("malformed: %s: returns before its call", o)
		ret = call
	}
	return porcupine.Operation{Input: in, Call: call, Output: out, Return: ret, Metadata: regMeta{key: o.Key, op: o}}, true
}

// checkKeys runs porcupine on each key, opts.Parallel keys at a time, each
// with its own timeout.
func checkKeys(keys []*regKey, opts RegisterOptions) {
	model := registerModel()
	model.Partition = nil // one key at a time
	work := make(chan *regKey)
	var wg sync.WaitGroup
	for range min(opts.Parallel, len(keys)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := range work {
				checkKey(model, k, opts.Timeout)
			}
		}()
	}
	for _, k := range keys {
		work <- k
	}
	close(work)
	wg.Wait()
}

func checkKey(model porcupine.Model, k *regKey, timeout time.Duration) {
	defer func() {
		if r := recover(); r != nil {
			k.panic = fmt.Sprint(r)
		}
	}()
	start := time.Now()
	k.result, k.info = porcupine.CheckOperationsVerbose(model, k.ops, timeout)
	k.elapsed = time.Since(start)
}

// illegalHint names the earliest-called op outside the longest linearizable
// prefix porcupine found: where to start reading the history.
func illegalHint(k *regKey) string {
	partials := k.info.PartialLinearizations()
	if len(partials) != 1 {
		return ""
	}
	longest := []int(nil)
	for _, l := range partials[0] {
		if len(l) > len(longest) {
			longest = l
		}
	}
	in := map[int]bool{}
	for _, id := range longest {
		in[id] = true
	}
	first := -1
	for id, op := range k.ops { // porcupine numbers ops by their index
		if !in[id] && (first < 0 || op.Call < k.ops[first].Call) {
			first = id
		}
	}
	hint := fmt.Sprintf(": at most %d of %d ops linearize", len(longest), len(k.ops))
	if first >= 0 {
		hint += "; the earliest op outside that prefix is " + k.ops[first].Metadata.(regMeta).op.String()
	}
	return hint
}

// visualizeRegister writes porcupine's visualisation of the keys whose
// check ended (re-checking them together, partitioned by key); keys that
// timed out or were not checked are listed as annotations instead.
func visualizeRegister(run, keys []*regKey, opts RegisterOptions) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("porcupine: %v", r)
		}
	}()
	var ops []porcupine.Operation
	var budget time.Duration
	var notes []porcupine.Annotation
	shown := map[string]bool{}
	var end int64
	for _, k := range run {
		if k.panic == "" && (k.result == porcupine.Ok || k.result == porcupine.Illegal) {
			ops = append(ops, k.ops...)
			budget += k.elapsed
			shown[k.key] = true
		}
		for _, o := range k.ops {
			if o.Return != math.MaxInt64 {
				end = max(end, o.Return)
			}
		}
	}
	for _, k := range keys {
		if !shown[k.key] {
			notes = append(notes, porcupine.Annotation{Tag: "checker", Start: 0, Description: fmt.Sprintf("key %q not shown", k.key),
				Details: "its check timed out, failed or was not run (see the checker's report)"})
		}
	}
	for _, f := range opts.Faults {
		e := int64(f.End)
		if !f.Healed() {
			e = max(end, int64(f.Start))
		}
		notes = append(notes, porcupine.Annotation{Tag: "faults", Start: int64(f.Start), End: e,
			Description: f.Kind, Details: strings.TrimSpace(f.Description + " " + strings.Join(f.Targets, ", ")), BackgroundColor: "#f3c7c7"})
	}
	model := registerModel()
	_, info := porcupine.CheckOperationsVerbose(model, ops, 2*budget+time.Second)
	info.AddAnnotations(notes)
	return porcupine.VisualizePath(model, info, opts.VisualizePath)
}
