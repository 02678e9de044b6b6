package raftmeta

// Test fixtures for the state-machine tests in fsm_test.go. Every name here
// starts with "fx" so it cannot collide with helpers of other test files in
// the package.

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/coffer-dev/coffer/raftmeta/metapath"
	"github.com/hashicorp/raft"
)

var fxLogger = slog.New(slog.DiscardHandler)

// fxEpoch is the proposal time of the first command of a harness.
var fxEpoch = time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano()

// fxDB owns one Pebble instance in a temporary directory.
type fxDB struct {
	dir    string
	db     *pebble.DB
	closed bool
}

func fxOpenDB(t testing.TB) *fxDB {
	t.Helper()
	d := &fxDB{dir: t.TempDir()}
	d.open(t)
	t.Cleanup(func() {
		if !d.closed {
			d.db.Close()
		}
	})
	return d
}

func (d *fxDB) open(t testing.TB) {
	t.Helper()
	db, err := OpenPebble(d.dir, fxLogger)
	if err != nil {
		t.Fatalf("OpenPebble: %v", err)
	}
	d.db, d.closed = db, false
}

// reopen closes and reopens the Pebble instance (a process restart).
func (d *fxDB) reopen(t testing.TB) {
	t.Helper()
	if err := d.db.Close(); err != nil {
		t.Fatalf("close pebble: %v", err)
	}
	d.closed = true
	d.open(t)
}

// fxHarness drives one group's FSM directly, one Raft entry per command.
type fxHarness struct {
	t      testing.TB
	d      *fxDB
	group  uint64
	window uint64
	f      *FSM
	index  uint64 // Raft index of the last entry applied
	now    int64  // proposal time of the next command
	step   int64  // how far now advances after each command
	logs   []*raft.Log
}

func fxNew(t testing.TB) *fxHarness { return fxNewWith(t, fxOpenDB(t), 1, 100000) }

func fxNewWith(t testing.TB, d *fxDB, group, window uint64) *fxHarness {
	t.Helper()
	h := &fxHarness{t: t, d: d, group: group, window: window, now: fxEpoch, step: int64(time.Second)}
	h.f = h.openFSM()
	h.index = h.f.AppliedIndex()
	return h
}

// use points the harness's failures at a subtest; defer the result.
func (h *fxHarness) use(t testing.TB) func() {
	old := h.t
	h.t = t
	return func() { h.t = old }
}

func (h *fxHarness) openFSM() *FSM {
	h.t.Helper()
	f, err := newFSM(h.d.db, h.group, h.window, fxLogger)
	if err != nil {
		h.t.Fatalf("newFSM: %v", err)
	}
	return f
}

// applyLogs hands entries to the FSM in one ApplyBatch call.
func (h *fxHarness) applyLogs(logs ...*raft.Log) []interface{} {
	h.t.Helper()
	out := h.f.ApplyBatch(logs)
	if err := h.f.Err(); err != nil {
		h.t.Fatalf("FSM stopped: %v", err)
	}
	if len(out) != len(logs) {
		h.t.Fatalf("ApplyBatch returned %d responses for %d entries", len(out), len(logs))
	}
	return out
}

// entry encodes c as the next Raft entry, stamping the harness clock unless
// c.Time is set, and advances the clock.
func (h *fxHarness) entry(c *command) *raft.Log {
	h.t.Helper()
	if c.Time == 0 {
		c.Time = h.now
	}
	h.now += h.step
	data, err := encodeCommand(c)
	if err != nil {
		h.t.Fatalf("encodeCommand: %v", err)
	}
	h.index++
	l := &raft.Log{Index: h.index, Term: 1, Type: raft.LogCommand, Data: data}
	h.logs = append(h.logs, l)
	return l
}

// apply applies one command and returns its result.
func (h *fxHarness) apply(c *command) *result {
	h.t.Helper()
	out := h.applyLogs(h.entry(c))
	res, ok := out[0].(*result)
	if !ok || res == nil {
		h.t.Fatalf("apply returned %T %v, want *result", out[0], out[0])
	}
	if h.f.AppliedIndex() != h.index {
		h.t.Fatalf("applied index %d after applying entry %d", h.f.AppliedIndex(), h.index)
	}
	return res
}

func (h *fxHarness) createUser(name string, quota int64) *User {
	h.t.Helper()
	res := h.apply(&command{Type: cmdCreateUser, CreateUser: &createUserCmd{Name: name, PasswordHash: "hash-" + name, Quota: quota}})
	if res.Err != nil {
		h.t.Fatalf("create user %q: %v", name, res.Err)
	}
	return res.User
}

func (h *fxHarness) commitRID(ns uint64, rid string, ops ...Op) (*CommitResult, *OpError) {
	h.t.Helper()
	res := h.apply(&command{Type: cmdCommit, RequestID: rid, Commit: &commitCmd{Namespace: ns, Ops: ops}})
	if (res.Err == nil) == (res.Commit == nil) {
		h.t.Fatalf("commit result has Err %v and Commit %v", res.Err, res.Commit)
	}
	return res.Commit, res.Err
}

func (h *fxHarness) commit(ns uint64, ops ...Op) (*CommitResult, *OpError) {
	h.t.Helper()
	return h.commitRID(ns, "", ops...)
}

// must applies a commit that has to succeed.
func (h *fxHarness) must(ns uint64, ops ...Op) *CommitResult {
	h.t.Helper()
	res, oe := h.commit(ns, ops...)
	if oe != nil {
		h.t.Fatalf("commit %+v: %v", ops, oe)
	}
	return res
}

// refused applies a commit that has to fail and returns its error.
func (h *fxHarness) refused(ns uint64, ops ...Op) *OpError {
	h.t.Helper()
	res, oe := h.commit(ns, ops...)
	if oe == nil {
		h.t.Fatalf("commit %+v succeeded (%+v), want an error", ops, res)
	}
	return oe
}

func (h *fxHarness) prune(c pruneCmd) *PruneResult {
	h.t.Helper()
	res := h.apply(&command{Type: cmdPrune, Prune: &c})
	if res.Err != nil {
		h.t.Fatalf("prune %+v: %v", c, res.Err)
	}
	return res.Prune
}

// pruneAll runs prune steps until Done and returns the summed counts and
// the number of steps.
func (h *fxHarness) pruneAll(keepFor time.Duration, keepLast, max int) (PruneResult, int) {
	h.t.Helper()
	var total PruneResult
	var cursor []byte
	// Every step runs at the same time, as one prune pass would.
	step := h.step
	h.step = 0
	defer func() { h.step = step }()
	for steps := 1; ; steps++ {
		if steps > 10000 {
			h.t.Fatal("prune does not finish")
		}
		r := h.prune(pruneCmd{KeepFor: int64(keepFor), KeepLast: keepLast, Cursor: cursor, Max: max})
		total.Revisions += r.Revisions
		total.Records += r.Records
		total.Tokens += r.Tokens
		total.Uploads += r.Uploads
		if r.Done {
			if r.Next != nil {
				h.t.Fatalf("prune step done with Next %q", r.Next)
			}
			total.Done = true
			return total, steps
		}
		if len(r.Next) == 0 {
			h.t.Fatal("prune step not done but has no Next")
		}
		cursor = r.Next
	}
}

// v reads the DB directly, as the Shard's queries do through a snapshot.
func (h *fxHarness) v() *view { return &view{r: pebbleReader{h.d.db}, k: h.f.k} }

func (h *fxHarness) stat(ns uint64, path string) (*Entry, error) {
	return h.v().stat(ns, Target{Path: path}, StatOptions{})
}

func (h *fxHarness) statAny(ns uint64, path string) (*Entry, error) {
	return h.v().stat(ns, Target{Path: path}, StatOptions{IncludeDeleted: true})
}

func (h *fxHarness) statID(ns, id uint64) (*Entry, error) {
	return h.v().stat(ns, Target{ID: id}, StatOptions{IncludeDeleted: true})
}

// mustStat stats a live path that has to exist.
func (h *fxHarness) mustStat(ns uint64, path string) *Entry {
	h.t.Helper()
	e, err := h.stat(ns, path)
	if err != nil {
		h.t.Fatalf("stat %q: %v", path, err)
	}
	return e
}

// mustStatAny stats a path that has to exist, tombstone or not.
func (h *fxHarness) mustStatAny(ns uint64, path string) *Entry {
	h.t.Helper()
	e, err := h.statAny(ns, path)
	if err != nil {
		h.t.Fatalf("stat (include deleted) %q: %v", path, err)
	}
	return e
}

// gone checks that path does not resolve to a live node.
func (h *fxHarness) gone(ns uint64, path string) {
	h.t.Helper()
	if e, err := h.stat(ns, path); CodeOf(err) != CodeNotFound {
		h.t.Fatalf("stat %q = %+v, %v; want not_found", path, e, err)
	}
}

func (h *fxHarness) nsRec(id uint64) *Namespace {
	h.t.Helper()
	n, err := h.v().namespace(id)
	if err != nil || n == nil {
		h.t.Fatalf("namespace %d: %v, %v", id, n, err)
	}
	return n
}

func (h *fxHarness) counters() counters {
	h.t.Helper()
	c := counters{NextID: 1}
	if _, err := h.v().getJSON(h.f.k.counters(), &c); err != nil {
		h.t.Fatalf("counters: %v", err)
	}
	return c
}

func (h *fxHarness) history(ns uint64, path string) []Revision {
	h.t.Helper()
	revs, err := h.v().history(ns, Target{Path: path}, HistoryOptions{Limit: maxPageLimit})
	if err != nil {
		h.t.Fatalf("history %q: %v", path, err)
	}
	return revs
}

func (h *fxHarness) historyID(ns, id uint64) []Revision {
	h.t.Helper()
	revs, err := h.v().history(ns, Target{ID: id}, HistoryOptions{Limit: maxPageLimit})
	if err != nil {
		h.t.Fatalf("history of node %d: %v", id, err)
	}
	return revs
}

// listAll pages through a listing with the given page size and returns the
// concatenated entries.
func (h *fxHarness) listAll(ns uint64, path string, o ListOptions) []Entry {
	h.t.Helper()
	var all []Entry
	for pages := 0; ; pages++ {
		if pages > 100000 {
			h.t.Fatal("listing does not end")
		}
		p, err := h.v().list(ns, Target{Path: path}, o)
		if err != nil {
			h.t.Fatalf("list %q %+v: %v", path, o, err)
		}
		all = append(all, p.Entries...)
		if p.NextPageToken == "" {
			return all
		}
		if len(p.Entries) == 0 {
			h.t.Fatalf("list %q: empty page with a next page token", path)
		}
		if p.NextPageToken == o.PageToken {
			h.t.Fatalf("list %q: the page token does not advance", path)
		}
		o.PageToken = p.NextPageToken
	}
}

// journal returns every retained journal record of a namespace.
func (h *fxHarness) journal(ns uint64) []JournalRecord {
	h.t.Helper()
	n := h.nsRec(ns)
	cursor := uint64(0)
	if n.Start > 0 {
		cursor = n.Start - 1
	}
	var recs []JournalRecord
	for {
		p, err := h.v().changes(ns, cursor, 0)
		if err != nil {
			h.t.Fatalf("changes after %d: %v", cursor, err)
		}
		recs = append(recs, p.Records...)
		cursor = p.Cursor
		if !p.More {
			return recs
		}
	}
}

// lastRecord returns the namespace's newest journal record.
func (h *fxHarness) lastRecord(ns uint64) JournalRecord {
	h.t.Helper()
	n := h.nsRec(ns)
	p, err := h.v().changes(ns, n.Head-1, 1)
	if err != nil || len(p.Records) != 1 {
		h.t.Fatalf("changes after %d: %+v, %v", n.Head-1, p, err)
	}
	return p.Records[0]
}

func (h *fxHarness) stateHash() (Sum, uint64) {
	h.t.Helper()
	s, idx, err := stateHash(pebbleReader{h.d.db}, h.f.k)
	if err != nil {
		h.t.Fatalf("stateHash: %v", err)
	}
	return s, idx
}

// contentHash hashes the group's keys but the applied index: two FSMs
// that applied different numbers of no-op entries (dedup hits, extra prune
// steps) compare equal on it when their data is the same.
func (h *fxHarness) contentHash() Sum {
	h.t.Helper()
	hs := sha256.New()
	lo, hi := h.f.k.Bounds()
	skip := h.f.k.applied()
	err := h.v().scan(lo, hi, false, func(k, v []byte) (bool, error) {
		if bytes.Equal(k, skip) {
			return true, nil
		}
		fmt.Fprintf(hs, "%d:%x=%d:%x;", len(k), k, len(v), v)
		return true, nil
	})
	if err != nil {
		h.t.Fatalf("contentHash: %v", err)
	}
	var s Sum
	copy(s[:], hs.Sum(nil))
	return s
}

// groupKeys counts the keys of a group in a DB.
func fxGroupKeys(t testing.TB, db *pebble.DB, group uint64) int {
	t.Helper()
	k := newKeys(group)
	lo, hi := k.Bounds()
	n := 0
	v := &view{r: pebbleReader{db}, k: k}
	if err := v.scan(lo, hi, false, func(_, _ []byte) (bool, error) { n++; return true, nil }); err != nil {
		t.Fatal(err)
	}
	return n
}

// rawNode returns a node's stored bytes.
func (h *fxHarness) rawNode(ns, id uint64) []byte {
	h.t.Helper()
	b, c, err := h.d.db.Get(h.f.k.node(ns, id))
	if err != nil {
		h.t.Fatalf("get node %d: %v", id, err)
	}
	defer c.Close()
	return append([]byte(nil), b...)
}

// fxSum is the content hash of data.
func fxSum(data string) Sum { return sha256.Sum256([]byte(data)) }

// fxPut is a put of data at path, split into blocks of at most 4 bytes.
func fxPut(path, data string) Op {
	op := Op{Kind: OpPut, Path: path, Size: int64(len(data)), Hash: fxSum(data), Mtime: 1000, Mode: 0o644}
	for i := 0; i < len(data); i += 4 {
		chunk := data[i:min(i+4, len(data))]
		op.Blocks = append(op.Blocks, Block{Ref: fxSum(chunk), Size: int64(len(chunk))})
	}
	return op
}

func fxPutIf(path, data string, ifMatch uint64) Op {
	op := fxPut(path, data)
	op.IfMatch = ifMatch
	return op
}

func fxMkdir(path string) Op    { return Op{Kind: OpMkdir, Path: path} }
func fxDel(path string) Op      { return Op{Kind: OpDelete, Path: path} }
func fxMove(from, to string) Op { return Op{Kind: OpMove, Path: from, To: to} }
func fxRestore(path string, rev uint64) Op {
	return Op{Kind: OpRestore, Path: path, Rev: rev}
}

// fxWantCode checks err's wire code and that it wraps the code's sentinel.
func fxWantCode(t testing.TB, err error, want Code) {
	t.Helper()
	if got := CodeOf(err); got != want {
		t.Fatalf("error %v has code %q, want %q", err, got, want)
	}
	if want == CodeOK {
		return
	}
	if s := SentinelOf(want); s == nil || !errors.Is(err, s) {
		t.Fatalf("error %v does not wrap the sentinel of %q", err, want)
	}
}

// fxWantOpErr checks a commit's refusal.
func fxWantOpErr(t testing.TB, oe *OpError, code Code, op int, kind OpKind, current uint64) {
	t.Helper()
	if oe == nil {
		t.Fatalf("no error, want %s", code)
	}
	fxWantCode(t, oe, code)
	if oe.Op != op || oe.Kind != kind || oe.Current != current {
		t.Fatalf("error %v: op %d kind %q current %d, want op %d kind %q current %d",
			oe, oe.Op, oe.Kind, oe.Current, op, kind, current)
	}
}

// fxPaths returns the paths of entries.
func fxPaths(es []Entry) []string {
	out := make([]string, len(es))
	for i, e := range es {
		out[i] = e.Path
	}
	return out
}

// fxListOrder reports whether path a comes before path b in a recursive
// listing: component-wise by folded name, a folder before its contents.
func fxListOrder(a, b string) bool {
	as, bs := metapath.Split(a), metapath.Split(b)
	for i := 0; i < len(as) && i < len(bs); i++ {
		fa, fb := metapath.Fold(as[i]), metapath.Fold(bs[i])
		if fa != fb {
			return fa < fb
		}
	}
	return len(as) < len(bs)
}

// fxSorted returns paths in listing order.
func fxSorted(paths []string) []string {
	out := append([]string(nil), paths...)
	sort.SliceStable(out, func(i, j int) bool { return fxListOrder(out[i], out[j]) })
	return out
}

func fxJoin(ss []string) string { return strings.Join(ss, " ") }

// fxNoResult reports whether an ApplyBatch response carries nothing (an
// entry skipped on replay, or one that is not a command).
func fxNoResult(o interface{}) bool {
	r, ok := o.(*result)
	return o == nil || (ok && r == nil)
}

// checkLinks checks the tree's internal invariants in a namespace: every
// tree entry names an existing node whose parent and folded name match the
// entry; every live node but the root is linked at its place under a live
// folder; every node's current revision is stored and is its newest.
func (h *fxHarness) checkLinks(ns uint64) error {
	v := h.v()
	n, err := v.namespace(ns)
	if err != nil || n == nil {
		return fmt.Errorf("namespace %d: %v, %v", ns, n, err)
	}
	lo := h.f.k.Key(tagTree, u64(ns))
	var bad error
	err = v.scan(lo, prefixEnd(lo), false, func(k, val []byte) (bool, error) {
		parent := beU64(k[len(lo):])
		fold := string(k[len(lo)+8:])
		id := beU64(val)
		node, err := v.node(ns, id)
		if err != nil || node == nil {
			bad = fmt.Errorf("tree entry (%d, %q) names node %d: %v, %v", parent, fold, id, node, err)
			return false, nil
		}
		if node.ParentID != parent || metapath.Fold(node.Name) != fold {
			bad = fmt.Errorf("tree entry (%d, %q) names node %+v", parent, fold, node)
			return false, nil
		}
		return true, nil
	})
	if err != nil || bad != nil {
		return errors.Join(err, bad)
	}
	lo = h.f.k.Key(tagNode, u64(ns))
	err = v.scan(lo, prefixEnd(lo), false, func(_, val []byte) (bool, error) {
		var node Node
		if err := json.Unmarshal(val, &node); err != nil {
			return false, err
		}
		revs, err := v.history(ns, Target{ID: node.ID}, HistoryOptions{Limit: 1})
		if err != nil || len(revs) != 1 || revs[0].Rev != node.Rev || revs[0].Deleted != node.Deleted {
			bad = fmt.Errorf("node %+v has newest revision %+v, %v", node, revs, err)
			return false, nil
		}
		if node.Deleted || node.ID == n.Root {
			return true, nil
		}
		id, ok, err := v.getU64(h.f.k.child(ns, node.ParentID, metapath.Fold(node.Name)))
		if err != nil || !ok || id != node.ID {
			bad = fmt.Errorf("live node %+v is not linked at its place (%d, %v, %v)", node, id, ok, err)
			return false, nil
		}
		parent, err := v.node(ns, node.ParentID)
		if err != nil || parent == nil || !parent.Dir || parent.Deleted {
			bad = fmt.Errorf("live node %+v has parent %+v, %v", node, parent, err)
			return false, nil
		}
		return true, nil
	})
	return errors.Join(err, bad)
}
