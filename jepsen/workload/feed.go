package workload

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/coffer-dev/coffer/client"
	"github.com/coffer-dev/coffer/jepsen/check"
	"github.com/coffer-dev/coffer/jepsen/history"
)

// feedWorkload follows the user's change feed with one or more readers.
type feedWorkload struct {
	base
	mu      sync.Mutex
	readers []*feedReader
}

// feedReader is one reader's logs: a new log begins after each cursor
// reset, from the head the server named.
type feedReader struct {
	name   string
	proc   int
	cursor uint64
	logs   []check.FeedLog
	resets []feedReset
}

// feedReset is a cursor reset a reader met.
type feedReset struct {
	reader       string
	cursor, head uint64 // the cursor refused, the head the server named (0: none)
	inCheck      bool   // met while reading to the end after healing
}

func newFeedReader(name string, proc int) *feedReader {
	return &feedReader{name: name, proc: proc, logs: []check.FeedLog{{Reader: name}}}
}

// add appends a page's records to the current log and moves the cursor.
func (r *feedReader) add(out FeedOutput) {
	l := &r.logs[len(r.logs)-1]
	l.Records = append(l.Records, out.Records...)
	r.cursor = out.Cursor
}

// reset records a cursor reset (err) and starts a new log from the head
// it names (or the head whoami reports).
func (r *feedReader) reset(ctx context.Context, cl *client.Client, err error, inCheck bool) {
	var head uint64
	if e := (*client.Error)(nil); errors.As(err, &e) {
		head = e.Head
	}
	r.resets = append(r.resets, feedReset{reader: r.name, cursor: r.cursor, head: head, inCheck: inCheck})
	if head == 0 {
		if wh, err := cl.Whoami(ctx); err == nil {
			head = wh.Cursor
		}
	}
	r.cursor = head
	r.logs = append(r.logs, check.FeedLog{Reader: fmt.Sprintf("%s.%d", r.name, len(r.logs)+1), From: head})
}

func feedOutput(p *client.ChangePage) FeedOutput {
	out := FeedOutput{Records: make([]check.FeedRecord, 0, len(p.Records)), Cursor: p.Cursor, Head: p.Head}
	for _, rec := range p.Records {
		fr := check.FeedRecord{Seq: rec.Seq, RequestID: feedRequestKey(rec.RequestID)}
		for _, c := range rec.Changes {
			fr.Changes = append(fr.Changes, check.FeedChange{Path: c.Path, Rev: c.Rev, NodeID: c.ID})
		}
		out.Records = append(out.Records, fr)
	}
	return out
}

func (w *feedWorkload) Run(ctx context.Context, env *Env) error {
	w.workers(func(proc int) {
		cl, node := env.Client(proc)
		r := newFeedReader(fmt.Sprintf("p%d", proc), proc)
		w.mu.Lock()
		w.readers = append(w.readers, r)
		w.mu.Unlock()
		backoff := 100 * time.Millisecond
		for ctx.Err() == nil {
			cursor := r.cursor
			st, out, err := w.op(ctx, env, proc, node, history.KindFeed, "changes", FeedInput{Cursor: cursor}, Read,
				w.cfg.OpTimeout+w.cfg.FeedWait, func(ctx context.Context) (any, error) {
					p, err := cl.Changes(ctx, cursor, 0, w.cfg.FeedWait)
					if err != nil {
						return nil, err
					}
					return feedOutput(p), nil
				})
			switch {
			case st == history.StatusOK:
				r.add(out.(FeedOutput))
				backoff = 100 * time.Millisecond
				continue
			case errors.Is(err, client.ErrCursorReset) && ctx.Err() == nil:
				rctx, cancel := context.WithTimeout(ctx, w.cfg.OpTimeout)
				r.reset(rctx, cl, err, false)
				cancel()
			}
			sleep(ctx, backoff)
			backoff = min(2*backoff, 2*time.Second)
		}
	})
	return nil
}

// toEnd reads r's feed from its cursor to the head, retrying while the
// cluster settles, and marks its last log ToEnd with the head the last
// page named (the checker requires the log to end there).
func (w *feedWorkload) toEnd(ctx context.Context, cl *client.Client, r *feedReader) error {
	for {
		var page *client.ChangePage
		err := settle(ctx, w.cfg.OpTimeout, func(actx context.Context) error {
			var err error
			page, err = cl.Changes(actx, r.cursor, 0, 0)
			if errors.Is(err, client.ErrCursorReset) {
				r.reset(actx, cl, err, true)
				return err // and read again from the new cursor
			}
			return err
		})
		if err != nil {
			return err
		}
		r.add(feedOutput(page))
		if !page.More && page.Cursor >= page.Head {
			l := &r.logs[len(r.logs)-1]
			l.ToEnd, l.Head = true, page.Head
			return nil
		}
	}
}

// Check reads every reader's feed to its head, and a fresh reader the
// whole feed from the start, then checks the logs against the commits of
// every workload in ops, and that no cursor reset is unexplained.
func (w *feedWorkload) Check(ctx context.Context, env *Env, ops []history.Op) []check.Result {
	cctx, cancel := context.WithTimeout(ctx, w.cfg.CheckTimeout)
	defer cancel()
	w.mu.Lock()
	readers := append([]*feedReader(nil), w.readers...)
	w.mu.Unlock()
	readers = append(readers, newFeedReader("final", w.checkProcess()))
	var logs []check.FeedLog
	var resets []feedReset
	var unread []string
	for _, r := range readers {
		if err := w.toEnd(cctx, env.Final, r); err != nil {
			unread = append(unread, fmt.Sprintf("reader %s: could not read to the head: %v", r.name, err))
		}
		logs = append(logs, r.logs...)
		resets = append(resets, r.resets...)
	}
	feed := check.Feed(logs, feedCommits(ops))
	if len(unread) > 0 {
		feed.Valid = false
		feed.Summary += fmt.Sprintf("; %d readers could not read to the head", len(unread))
		feed.Details = append(feed.Details, unread...)
	}
	return []check.Result{feed, w.checkResets(cctx, env.Final, resets)}
}

// checkResets explains each cursor reset: a cursor ahead of the head the
// server named, or one the journal still holds, is a finding; a cursor
// before the oldest record kept is what a trimmed journal answers.
func (w *feedWorkload) checkResets(ctx context.Context, cl *client.Client, resets []feedReset) check.Result {
	res := check.Result{Name: "feed-cursor", Valid: true}
	trimmed := 0
	for _, rs := range resets {
		when := "during the run"
		if rs.inCheck {
			when = "after healing"
		}
		what, finding := w.explainReset(ctx, cl, rs)
		if finding {
			res.Valid = false
		} else {
			trimmed++
		}
		verdict := "expected"
		if finding {
			verdict = "FINDING"
		}
		res.Details = append(res.Details, fmt.Sprintf("%s: reader %s: cursor %d reset %s (head %d): %s", verdict, rs.reader, rs.cursor, when, rs.head, what))
	}
	res.Summary = fmt.Sprintf("%d cursor resets: %d because the journal no longer held the cursor, %d findings", len(resets), trimmed, len(resets)-trimmed)
	if len(res.Details) > check.MaxDetails {
		n := len(res.Details) - check.MaxDetails
		res.Details = append(res.Details[:check.MaxDetails], fmt.Sprintf("… and %d more", n))
	}
	return res
}

// explainReset probes the feed after healing. The journal's start only
// moves forward, so a cursor it holds now it held at the reset.
func (w *feedWorkload) explainReset(ctx context.Context, cl *client.Client, rs feedReset) (string, bool) {
	if rs.head != 0 && rs.cursor > rs.head {
		return "the cursor is ahead of the head the server named: the feed went back", true
	}
	// refused reports whether the feed refuses cursor c now.
	refused := func(c uint64) (bool, error) {
		var ok bool
		err := settle(ctx, w.cfg.OpTimeout, func(actx context.Context) error {
			_, err := cl.Changes(actx, c, 1, 0)
			if errors.Is(err, client.ErrCursorReset) {
				ok = true
				return nil
			}
			ok = false
			return err
		})
		return ok, err
	}
	gone, err := refused(rs.cursor)
	switch {
	case err != nil:
		return fmt.Sprintf("unexplained (probing the feed failed: %v)", err), true
	case !gone:
		return "the journal holds this cursor (it reads fine after healing): a spurious reset", true
	}
	var head uint64
	if err := settle(ctx, w.cfg.OpTimeout, func(actx context.Context) error {
		wh, err := cl.Whoami(actx)
		if err == nil {
			head = wh.Cursor
		}
		return err
	}); err != nil {
		return fmt.Sprintf("unexplained (reading the head failed: %v)", err), true
	}
	// The smallest cursor the feed takes: the oldest record kept is the
	// one after it. refused(lo) holds; refused(hi) does not.
	lo, hi := rs.cursor, head
	if g, err := refused(hi); err != nil || g {
		return fmt.Sprintf("unexplained (the head %d is refused too: %v)", head, err), true
	}
	for hi-lo > 1 {
		mid := lo + (hi-lo)/2
		g, err := refused(mid)
		if err != nil {
			return fmt.Sprintf("unexplained (probing the feed failed: %v)", err), true
		}
		if g {
			lo = mid
		} else {
			hi = mid
		}
	}
	return fmt.Sprintf("the cursor is before the oldest record kept (seq %d): the journal was trimmed", hi+1), false
}

// feedCommits are the commits of every workload in ops (write, cas,
// create, upload): the path, the revision and journal seq of an ok one
// (from its CommitOutput), the request ID.
func feedCommits(ops []history.Op) []check.FeedCommit {
	var out []check.FeedCommit
	for _, o := range ops {
		switch o.Kind {
		case history.KindWrite, history.KindCAS, history.KindCreate, history.KindUpload:
		default:
			continue
		}
		c := check.FeedCommit{Path: o.Key, RequestID: decodeRequestID(o), Status: o.Status}
		if o.Status == history.StatusOK {
			var out CommitOutput
			if err := o.DecodeOutput(&out); err == nil {
				c.Rev, c.Seq = out.Rev, out.Seq
			}
		}
		out = append(out, c)
	}
	return out
}
