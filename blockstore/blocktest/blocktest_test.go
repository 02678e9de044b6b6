package blocktest_test

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coffer-dev/coffer/blockstore"
	"github.com/coffer-dev/coffer/blockstore/blocktest"
	"github.com/coffer-dev/coffer/blockstore/memstore"
)

// TestDurableDouble runs the whole suite, the durability case included,
// against memstore made "durable" by a Reopen that copies its blocks.
func TestDurableDouble(t *testing.T) {
	blocktest.Run(t, func(t *testing.T, opts blocktest.Options) blocktest.Harness {
		return openDurable(t, opts, true)
	})
}

// openDurable opens a memstore whose Reopen closes it and copies its blocks
// into a fresh one. keepStoredAt false makes a broken double that restores
// every block with the current time as StoredAt.
func openDurable(t *testing.T, opts blocktest.Options, keepStoredAt bool) blocktest.Harness {
	var restoreAt atomic.Pointer[time.Time] // while copying: the StoredAt to give
	now := opts.Now
	cfg := memstore.Config{
		MaxBlockSize: opts.MaxBlockSize,
		OnCorrupt:    opts.OnCorrupt,
		Now: func() time.Time {
			if at := restoreAt.Load(); at != nil {
				return *at
			}
			return now()
		},
	}
	cur, err := memstore.New(cfg)
	if err != nil {
		t.Fatalf("memstore.New: %v", err)
	}
	return blocktest.Harness{
		Store: cur,
		Corrupt: func(t *testing.T, r blockstore.Ref) {
			if !cur.Corrupt(r) {
				t.Fatalf("Corrupt(%s): not stored", r.Short())
			}
		},
		Reopen: func(t *testing.T) blockstore.Store {
			ctx := context.Background()
			type saved struct {
				ref  blockstore.Ref
				data []byte
				at   time.Time
			}
			var blocks []saved
			err := cur.Enumerate(ctx, blockstore.Ref{}, func(bi blockstore.BlockInfo) error {
				data, err := cur.Get(ctx, bi.Ref)
				blocks = append(blocks, saved{bi.Ref, data, bi.StoredAt})
				return err
			})
			if err != nil {
				t.Fatalf("reopen: reading the old store: %v", err)
			}
			if err := cur.Close(); err != nil {
				t.Fatalf("reopen: Close: %v", err)
			}
			next, err := memstore.New(cfg)
			if err != nil {
				t.Fatalf("reopen: memstore.New: %v", err)
			}
			for _, b := range blocks {
				at := b.at
				if !keepStoredAt {
					at = now()
				}
				restoreAt.Store(&at)
				if err := next.Put(ctx, b.ref, b.data); err != nil {
					t.Fatalf("reopen: Put: %v", err)
				}
			}
			restoreAt.Store(nil)
			base, err := next.Stats(ctx)
			if err != nil {
				t.Fatalf("reopen: Stats: %v", err)
			}
			cur = next
			return &reopened{Store: next, base: base}
		},
	}
}

// reopened hides the Puts that copied the blocks from the counters.
type reopened struct {
	*memstore.Store
	base blockstore.Stats
}

func (r *reopened) Stats(ctx context.Context) (blockstore.Stats, error) {
	st, err := r.Store.Stats(ctx)
	if err != nil {
		return st, err
	}
	st.Puts -= r.base.Puts
	st.BytesPut -= r.base.BytesPut
	st.BytesWritten -= r.base.BytesWritten
	return st, nil
}

// mutantEnv names the mutant TestMutant runs the suite against.
const mutantEnv = "BLOCKTEST_MUTANT"

// mutants are broken stores, each with a case of the suite that must catch
// it.
var mutants = []struct {
	name     string
	wantFail string // the top-level case that must fail
}{
	{"get-aliases", "Ownership"},
	{"put-retains", "Ownership"},
	{"no-refresh", "Idempotent"},
	{"dedup-skips-verify", "HashMismatch"},
	{"storedat-ms", "RoundTrip"},
	{"has-dedups", "Has"},
	{"delete-inclusive", "Delete"},
	{"enumerate-ignores-from", "Enumerate"},
	{"enumerate-stop-leaks", "Enumerate"},
	{"enumerate-ignores-ctx", "Enumerate"},
	{"closed-wrong-error", "Closed"},
	{"put-ignores-ctx", "Context"},
	{"reopen-loses-storedat", "Durability"},
}

// TestMutants checks that the suite fails each broken store in the case
// meant to catch it. Each mutant runs in a child process (TestMutant), as
// a failing suite fails the test that runs it.
func TestMutants(t *testing.T) {
	for _, m := range mutants {
		t.Run(m.name, func(t *testing.T) {
			t.Parallel()
			cmd := exec.CommandContext(t.Context(), os.Args[0],
				"-test.run=^TestMutant$/^"+m.wantFail+"$", "-test.count=1", "-test.timeout=2m")
			cmd.Env = append(os.Environ(), mutantEnv+"="+m.name)
			out, err := cmd.CombinedOutput()
			var exit *exec.ExitError
			if !errors.As(err, &exit) {
				t.Fatalf("the suite passed (or did not run: %v) against mutant %s; output:\n%s", err, m.name, out)
			}
			if !strings.Contains(string(out), "--- FAIL: TestMutant/"+m.wantFail+" ") {
				t.Fatalf("mutant %s: case %s did not fail; output:\n%s", m.name, m.wantFail, out)
			}
			if strings.Contains(string(out), "panic:") {
				t.Fatalf("mutant %s: the suite panicked; output:\n%s", m.name, out)
			}
		})
	}
}

// TestMutant runs the suite against the mutant named by $BLOCKTEST_MUTANT;
// without it, it is skipped (TestMutants runs it).
func TestMutant(t *testing.T) {
	name := os.Getenv(mutantEnv)
	if name == "" {
		t.Skip("run by TestMutants")
	}
	if !slices.ContainsFunc(mutants, func(m struct{ name, wantFail string }) bool { return m.name == name }) {
		t.Fatalf("unknown mutant %q", name)
	}
	blocktest.Run(t, func(t *testing.T, opts blocktest.Options) blocktest.Harness {
		if name == "reopen-loses-storedat" {
			return openDurable(t, opts, false)
		}
		h := openDurable(t, opts, true)
		h.Store = &mutant{Store: h.Store, kind: name, retained: make(map[blockstore.Ref][]byte)}
		h.Reopen = nil
		return h
	})
}

// mutant is a store with one bug, chosen by kind.
type mutant struct {
	blockstore.Store
	kind string

	mu       sync.Mutex
	retained map[blockstore.Ref][]byte
	closed   atomic.Bool
}

func (m *mutant) Put(ctx context.Context, ref blockstore.Ref, data []byte) error {
	switch m.kind {
	case "no-refresh", "dedup-skips-verify":
		if has, err := m.Store.Has(ctx, []blockstore.Ref{ref}); err == nil && has[0] {
			if m.kind == "no-refresh" {
				if err := ref.Verify(data); err != nil {
					return err
				}
			}
			return nil
		}
	case "put-ignores-ctx":
		ctx = context.Background()
	}
	err := m.Store.Put(ctx, ref, data)
	if err == nil && m.kind == "put-retains" {
		m.mu.Lock()
		m.retained[ref] = data
		m.mu.Unlock()
	}
	return err
}

func (m *mutant) Get(ctx context.Context, ref blockstore.Ref) ([]byte, error) {
	if m.kind == "closed-wrong-error" && m.closed.Load() {
		return nil, blockstore.ErrNotFound
	}
	data, err := m.Store.Get(ctx, ref)
	if err != nil {
		return data, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	switch m.kind {
	case "get-aliases":
		if prev, ok := m.retained[ref]; ok {
			return prev, nil
		}
		m.retained[ref] = data
	case "put-retains":
		if kept, ok := m.retained[ref]; ok {
			return slices.Clone(kept), nil
		}
	}
	return data, nil
}

func (m *mutant) Has(ctx context.Context, refs []blockstore.Ref) ([]bool, error) {
	if m.kind == "has-dedups" {
		refs = slices.Compact(slices.Clone(refs))
	}
	return m.Store.Has(ctx, refs)
}

func (m *mutant) Delete(ctx context.Context, ref blockstore.Ref, storedBefore time.Time) (bool, error) {
	if m.kind == "delete-inclusive" {
		storedBefore = storedBefore.Add(time.Nanosecond)
	}
	return m.Store.Delete(ctx, ref, storedBefore)
}

func (m *mutant) Enumerate(ctx context.Context, from blockstore.Ref, fn func(blockstore.BlockInfo) error) error {
	if fn == nil {
		return m.Store.Enumerate(ctx, from, fn)
	}
	switch m.kind {
	case "enumerate-ignores-from":
		from = blockstore.Ref{}
	case "enumerate-ignores-ctx":
		ctx = context.Background()
	case "storedat-ms":
		inner := fn
		fn = func(bi blockstore.BlockInfo) error {
			bi.StoredAt = bi.StoredAt.Truncate(time.Millisecond)
			return inner(bi)
		}
	case "enumerate-stop-leaks":
		stopped := false
		err := m.Store.Enumerate(ctx, from, func(bi blockstore.BlockInfo) error {
			err := fn(bi)
			stopped = err == blockstore.ErrStop
			return err
		})
		if stopped {
			return blockstore.ErrStop
		}
		return err
	}
	return m.Store.Enumerate(ctx, from, fn)
}

func (m *mutant) Close() error {
	m.closed.Store(true)
	return m.Store.Close()
}
