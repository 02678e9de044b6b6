package workload

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"

	"github.com/coffer-dev/coffer/client"
	"github.com/coffer-dev/coffer/jepsen/check"
	"github.com/coffer-dev/coffer/jepsen/history"
)

// keySlot is one of the register keys that live at once. Each op takes a
// turn on the slot's current key; after max turns the key is retired and
// the next op gets a fresh one (prefix-<gen>), so no key ever has more
// than max ops.
type keySlot struct {
	prefix string
	max    int

	mu   sync.Mutex
	gen  int
	used int
}

// take reserves one op on the slot's current key and returns the key.
func (s *keySlot) take() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.used >= s.max {
		s.gen++
		s.used = 0
	}
	s.used++
	return fmt.Sprintf("%s-%d", s.prefix, s.gen)
}

// registerWorkload drives per-file compare-and-set registers.
type registerWorkload struct {
	base
	slots []*keySlot
}

func newRegister(b base) *registerWorkload {
	w := &registerWorkload{base: b}
	for i := range b.cfg.Keys {
		w.slots = append(w.slots, &keySlot{prefix: fmt.Sprintf("%s/k%d", w.folder(), i), max: b.cfg.OpsPerKey})
	}
	return w
}

func (w *registerWorkload) Run(ctx context.Context, env *Env) error {
	w.workers(func(proc int) { w.worker(ctx, env, proc) })
	return nil
}

// regProc is what one process knows of its key.
type regProc struct {
	key   string
	rev   uint64 // the revision it last read or wrote
	known bool   // rev is worth a cas
}

func (w *registerWorkload) worker(ctx context.Context, env *Env, proc int) {
	cl, node := env.Client(proc)
	rng := w.rng(env, proc)
	slot := w.slots[(proc-w.cfg.FirstProcess)%len(w.slots)]
	var st regProc
	for n := 1; w.pause(ctx, rng); n++ {
		if k := slot.take(); k != st.key {
			st = regProc{key: k}
		}
		value := fmt.Sprintf("p%d-%d", proc, n)
		switch r := rng.IntN(10); {
		case !st.known || r < 4:
			w.read(ctx, env, cl, node, proc, &st)
		case r < 6:
			w.write(ctx, env, cl, node, proc, n, value, false, &st)
		default:
			w.write(ctx, env, cl, node, proc, n, value, true, &st)
		}
	}
}

// read downloads the key's current revision; not found reads as rev 0.
func (w *registerWorkload) read(ctx context.Context, env *Env, cl *client.Client, node string, proc int, st *regProc) {
	s, out, _ := w.op(ctx, env, proc, node, history.KindRead, st.key, nil, Read, w.cfg.OpTimeout,
		func(ctx context.Context) (any, error) { return readRegister(ctx, cl, st.key) })
	if s == history.StatusOK {
		st.rev, st.known = out.(history.RegisterOutput).Rev, true
	}
}

func readRegister(ctx context.Context, cl *client.Client, key string) (history.RegisterOutput, error) {
	var buf bytes.Buffer
	info, err := cl.Download(ctx, key, 0, &buf)
	if errors.Is(err, client.ErrNotFound) {
		return history.RegisterOutput{}, nil
	}
	if err != nil {
		return history.RegisterOutput{}, err
	}
	return history.RegisterOutput{Rev: info.Rev, Value: buf.String()}, nil
}

// write uploads value unconditionally, or (cas) on the condition that the
// key is still at the revision the process knows: IfMatch, or IfNoneMatch
// when it read nothing there.
func (w *registerWorkload) write(ctx context.Context, env *Env, cl *client.Client, node string, proc, n int, value string, cas bool, st *regProc) {
	rk := requestKey(w.name, proc, n)
	opts := client.UploadOptions{IdempotencyKey: rk}
	in := WriteInput{RegisterInput: history.RegisterInput{Value: value}, RequestID: rk}
	kind, effect := history.KindWrite, Write
	if cas {
		kind, effect = history.KindCAS, CASIfMatch
		in.ExpectRev = st.rev
		if st.rev == 0 {
			opts.IfNoneMatch, effect = true, CASIfNoneMatch
		} else {
			opts.IfMatch = st.rev
		}
	}
	s, out, _ := w.op(ctx, env, proc, node, kind, st.key, in, effect, w.cfg.OpTimeout, func(ctx context.Context) (any, error) {
		res, err := cl.Upload(ctx, strings.NewReader(value), st.key, opts)
		if err != nil {
			return nil, err
		}
		return commitOutput(res), nil
	})
	if s == history.StatusOK {
		st.rev, st.known = out.(CommitOutput).Rev, true
	} else {
		st.known = false // read before the next cas
	}
}

// Check reads every key once more after healing (recorded, so a lost
// write shows) and checks each key's history for linearizability.
func (w *registerWorkload) Check(ctx context.Context, env *Env, ops []history.Op) []check.Result {
	keys := map[string]bool{}
	var order []string
	for _, o := range ops {
		if o.Workload == w.name && !keys[o.Key] {
			keys[o.Key] = true
			order = append(order, o.Key)
		}
	}
	mark := len(env.Rec.Ops())
	cctx, cancel := context.WithTimeout(ctx, w.cfg.CheckTimeout)
	defer cancel()
	proc := w.checkProcess()
	var unread []string
	for _, key := range order {
		attempts := 0
		err := settle(cctx, w.cfg.OpTimeout, func(actx context.Context) error {
			attempts++
			if attempts > finalReadRoom {
				return nil // give up on this key: the checker's op limit
			}
			_, _, err := w.op(actx, env, proc, "", history.KindRead, key, nil, Read, w.cfg.OpTimeout,
				func(ctx context.Context) (any, error) { return readRegister(ctx, env.Final, key) })
			return err
		})
		if err != nil || attempts > finalReadRoom {
			unread = append(unread, key)
		}
	}
	all := append([]history.Op(nil), ops...)
	for _, o := range env.Rec.Ops()[mark:] {
		if o.Workload == w.name && o.Process == proc {
			all = append(all, o)
		}
	}
	opts := check.RegisterOptions{Workload: w.name}
	if env.Dir != "" {
		opts.VisualizePath = filepath.Join(env.Dir, "register.html")
	}
	if env.Faults != nil {
		opts.Faults = env.Faults()
	}
	return []check.Result{withUnread(check.Register(all, opts), unread)}
}

// withUnread makes res invalid if some keys could not be read at the end:
// a key without a successful final read may hide a lost acknowledged write
// (the history is linearizable without the read that would have shown it).
func withUnread(res check.Result, unread []string) check.Result {
	if len(unread) == 0 {
		return res
	}
	res.Valid = false
	res.Summary += fmt.Sprintf("; no final read of %d keys succeeded: their end state is unchecked", len(unread))
	res.Details = append([]string{fmt.Sprintf("no final read of %d keys succeeded (a lost acknowledged write there would not show): %s",
		len(unread), strings.Join(unread, ", "))}, res.Details...)
	return res
}
