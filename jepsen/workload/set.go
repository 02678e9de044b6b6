package workload

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/coffer-dev/coffer/client"
	"github.com/coffer-dev/coffer/jepsen/check"
	"github.com/coffer-dev/coffer/jepsen/history"
)

// setWorkload creates unique files in one folder.
type setWorkload struct {
	base
}

func (w *setWorkload) Run(ctx context.Context, env *Env) error {
	w.workers(func(proc int) {
		cl, node := env.Client(proc)
		rng := w.rng(env, proc)
		for n := 1; w.pause(ctx, rng); n++ {
			name := fmt.Sprintf("p%d-%d", proc, n)
			key := w.folder() + "/" + name
			rk := requestKey(w.name, proc, n)
			w.op(ctx, env, proc, node, history.KindCreate, key, CreateInput{RequestID: rk}, Write, w.cfg.OpTimeout,
				func(ctx context.Context) (any, error) {
					res, err := cl.Upload(ctx, strings.NewReader(name), key, client.UploadOptions{IfNoneMatch: true, IdempotencyKey: rk})
					if err != nil {
						return nil, err
					}
					return commitOutput(res), nil
				})
		}
	})
	return nil
}

// Check lists the folder and checks that every acknowledged create is
// there and nothing else is.
func (w *setWorkload) Check(ctx context.Context, env *Env, ops []history.Op) []check.Result {
	var creates []history.Op
	for _, o := range ops {
		if o.Workload == w.name && o.Kind == history.KindCreate {
			creates = append(creates, o)
		}
	}
	cctx, cancel := context.WithTimeout(ctx, w.cfg.CheckTimeout)
	defer cancel()
	var final []string
	err := settle(cctx, w.cfg.OpTimeout, func(ctx context.Context) error {
		final = nil
		entries, err := env.Final.ListAll(ctx, w.folder(), client.ListOptions{})
		if errors.Is(err, client.ErrNotFound) {
			return nil // no create ever took effect
		}
		if err != nil {
			return err
		}
		for _, e := range entries {
			if !e.Dir {
				final = append(final, w.folder()+"/"+e.Name)
			}
		}
		return nil
	})
	if err != nil {
		return []check.Result{invalid("set", "could not list "+w.folder()+" at the end", err.Error())}
	}
	return []check.Result{check.Set(creates, final)}
}
