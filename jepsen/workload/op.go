package workload

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	mrand "math/rand/v2"
	"strings"
	"sync"
	"time"

	"github.com/coffer-dev/coffer/client"
	"github.com/coffer-dev/coffer/jepsen/check"
	"github.com/coffer-dev/coffer/jepsen/history"
)

// Payloads this package records beside the checkers' own: the checkers
// decode the embedded history types and ignore the extra fields.
type (
	// WriteInput is the input of a write or cas: the register's input and
	// the Idempotency-Key the commit was sent with.
	WriteInput struct {
		history.RegisterInput
		RequestID string `json:"request_id,omitempty"`
	}
	// CreateInput is the input of a create of the set workload.
	CreateInput struct {
		RequestID string `json:"request_id,omitempty"`
	}
	// UploadInput is the input of an upload: the checker's input and the
	// Idempotency-Key.
	UploadInput struct {
		history.UploadInput
		RequestID string `json:"request_id,omitempty"`
	}
	// CommitOutput is the output of an ok write, cas, create or upload:
	// the revision the commit made (also a history.RegisterOutput), the
	// feed position of the commit and the file's stable ID.
	CommitOutput struct {
		Rev    uint64 `json:"rev"`
		Seq    uint64 `json:"seq,omitempty"`
		NodeID uint64 `json:"node_id,omitempty"`
	}
	// EditInput is the input of a sync device's edit (kind "edit"): the
	// device, the path in the synced folder, the content written, and the
	// content the file held on the device just before (Prev; "" if there
	// was no file).
	EditInput struct {
		Device string `json:"device"`
		Path   string `json:"path"`
		SHA256 string `json:"sha256"`
		Prev   string `json:"prev,omitempty"`
		Size   int    `json:"size"`
	}
	// FeedInput is the input of a change-feed read (KindFeed).
	FeedInput struct {
		Cursor uint64 `json:"cursor"`
	}
	// FeedOutput is the output of an ok change-feed read: the records as
	// the feed checker sees them, the next cursor and the head.
	FeedOutput struct {
		Records []check.FeedRecord `json:"records"`
		Cursor  uint64             `json:"cursor"`
		Head    uint64             `json:"head"`
	}
)

// KindEdit is the kind of a sync device's edit: an ok edit was
// acknowledged (a Sync that started after it finished with nothing left
// to do), an unknown one was not acknowledged before the run ended.
const KindEdit = "edit"

// commitOutput is the CommitOutput of an upload.
func commitOutput(r *client.UploadResult) CommitOutput {
	return CommitOutput{Rev: r.Rev, Seq: r.Seq, NodeID: r.ID}
}

// base is what every workload shares: its name and configuration.
type base struct {
	name string
	cfg  Config
}

func (b *base) Name() string { return b.name }

// folder is the workload's remote folder, Root/<name>.
func (b *base) folder() string { return b.cfg.Root + "/" + b.name }

// logger is env's logger (or a discarding one) for this workload.
func (b *base) logger(env *Env) *slog.Logger {
	l := env.Logger
	if l == nil {
		l = slog.New(slog.DiscardHandler)
	}
	return l.With("component", "workload", "workload", b.name)
}

// rng is process proc's random source: the same seed and process give the
// same choices.
func (b *base) rng(env *Env, proc int) *mrand.Rand {
	return mrand.New(mrand.NewPCG(uint64(env.Seed), uint64(proc)))
}

// op runs one operation of process proc with effect e and records it in
// env.Rec: fn gets a context bounded by timeout and returns the op's
// output. The outcome is recorded as Classify says and returned with fn's
// error.
func (b *base) op(ctx context.Context, env *Env, proc int, node, kind, key string, input any, e Effect,
	timeout time.Duration, fn func(ctx context.Context) (any, error)) (history.Status, any, error) {
	p := env.Rec.Invoke(proc, b.name, kind, key, input)
	if node != "" {
		p.SetNode(node)
	}
	octx, cancel := context.WithTimeout(ctx, timeout)
	out, err := fn(octx)
	cancel()
	st := Classify(ctx, e, err)
	complete(p, st, out, err)
	if errors.Is(err, client.ErrHashMismatch) {
		// A failed read to the checkers, but corrupt bytes are news.
		b.logger(env).Warn("the server sent bytes that do not match their hash", "process", proc, "kind", kind, "key", key, "op", p.ID(), "err", err)
	}
	return st, out, err
}

// pause waits a random time around the configured pace; false when ctx
// ended first.
func (b *base) pause(ctx context.Context, rng *mrand.Rand) bool {
	if b.cfg.Pace <= 0 {
		return ctx.Err() == nil
	}
	return sleep(ctx, b.cfg.Pace/2+time.Duration(rng.Int64N(int64(b.cfg.Pace))))
}

// sleep waits d; false when ctx ended first.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// workers runs fn for each of the workload's processes and waits for them.
func (b *base) workers(fn func(proc int)) {
	var wg sync.WaitGroup
	for i := range b.cfg.Processes {
		wg.Go(func() { fn(b.cfg.FirstProcess + i) })
	}
	wg.Wait()
}

// checkProcess is the process number of Check's own recorded reads.
func (b *base) checkProcess() int { return b.cfg.FirstProcess + b.cfg.Processes }

// requestKey returns a fresh Idempotency-Key naming the workload, process
// and op; random, so that no two runs against one cluster share one. It
// has no '.', so that feedRequestKey can take it back out of the server's
// request ID.
func requestKey(workload string, proc, n int) string {
	return fmt.Sprintf("j-%s-%d-%d-%s", workload, proc, n, rand.Text()[:12])
}

// feedRequestKey turns a change-feed record's request ID into the
// Idempotency-Key the client sent: the gateway prefixes the key with
// "k<shard>.<user>." (base 36). An ID of another form (a commit sent
// without a key) is returned as it is.
func feedRequestKey(rid string) string {
	if !strings.HasPrefix(rid, "k") {
		return rid
	}
	_, rest, ok := strings.Cut(rid, ".")
	if !ok {
		return rid
	}
	_, key, ok := strings.Cut(rest, ".")
	if !ok {
		return rid
	}
	return key
}

// settle calls fn until it returns nil or ctx ends, each attempt bounded
// by attempt, backing off from 100 ms to 2 s between attempts. It returns
// the last error. Use it for the end-state reads of Check, whose ctx
// bounds the whole check.
func settle(ctx context.Context, attempt time.Duration, fn func(ctx context.Context) error) error {
	wait := 100 * time.Millisecond
	for {
		actx, cancel := context.WithTimeout(ctx, attempt)
		err := fn(actx)
		cancel()
		if err == nil {
			return nil
		}
		if !sleep(ctx, wait) {
			return fmt.Errorf("still failing when the check's time ran out: %w", err)
		}
		wait = min(2*wait, 2*time.Second)
	}
}

// decodeRequestID reads the request_id of an op's input ("" if none).
func decodeRequestID(o history.Op) string {
	var in struct {
		RequestID string `json:"request_id"`
	}
	if len(o.Input) == 0 || json.Unmarshal(o.Input, &in) != nil {
		return ""
	}
	return in.RequestID
}

// invalid is a failed result of a check that could not run.
func invalid(name, summary string, details ...string) check.Result {
	return check.Result{Name: name, Valid: false, Summary: summary, Details: details}
}
