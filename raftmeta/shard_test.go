package raftmeta_test

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coffer-dev/coffer/raftmeta"
	"github.com/coffer-dev/coffer/raftmeta/metatest"
)

// putOp is a one-block file put with content derived from body.
func putOp(path, body string) raftmeta.Op {
	sum := raftmeta.Sum(sha256.Sum256([]byte(body)))
	op := raftmeta.Op{Kind: raftmeta.OpPut, Path: path, Size: int64(len(body)), Hash: sum}
	if len(body) > 0 {
		op.Blocks = []raftmeta.Block{{Ref: sum, Size: int64(len(body))}}
	}
	return op
}

// retryable reports whether an error leaves the outcome open or the request
// unserved, so the caller should retry with the same request ID.
func retryable(err error) bool {
	return errors.Is(err, raftmeta.ErrNotLeader) || errors.Is(err, raftmeta.ErrUnknownOutcome) ||
		errors.Is(err, raftmeta.ErrClosed) || errors.Is(err, context.DeadlineExceeded)
}

// commitRetry commits through whichever replica leads, retrying with the
// same request ID until the outcome is known. It returns the result and how
// many attempts ended with an unknown outcome.
func commitRetry(t *testing.T, c *metatest.Cluster, req raftmeta.CommitRequest) (*raftmeta.CommitResult, int, error) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	unknown := 0
	for time.Now().Before(deadline) {
		s, err := c.LeaderShard(30 * time.Second)
		if err != nil {
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		res, err := s.Commit(ctx, req)
		cancel()
		if err == nil || !retryable(err) {
			return res, unknown, err
		}
		if errors.Is(err, raftmeta.ErrUnknownOutcome) {
			unknown++
		}
	}
	return nil, unknown, fmt.Errorf("commit %s: no outcome within a minute", req.RequestID)
}

func createUser(t *testing.T, c *metatest.Cluster, name string) *raftmeta.User {
	t.Helper()
	for i := 0; i < 100; i++ {
		s, err := c.LeaderShard(30 * time.Second)
		if err != nil {
			t.Fatal(err)
		}
		u, err := s.CreateUser(context.Background(), raftmeta.CreateUserRequest{RequestID: "create-" + name, Name: name, Password: "secret"})
		if err == nil {
			return u
		}
		if !retryable(err) {
			t.Fatalf("create user %s: %v", name, err)
		}
	}
	t.Fatalf("create user %s: no outcome", name)
	return nil
}

// mustLeader waits for the group's leader and returns its shard.
func mustLeader(t *testing.T, c *metatest.Cluster) *raftmeta.Shard {
	t.Helper()
	s, err := c.LeaderShard(10 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func converge(t *testing.T, c *metatest.Cluster) raftmeta.Sum {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	h, err := c.WaitConverged(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// TestShardLeaderKilledMidStream kills the leader while four writers
// commit, restarts it, and checks that every acknowledged commit is there,
// exactly once, on every replica.
func TestShardLeaderKilledMidStream(t *testing.T) {
	c := metatest.New(t, metatest.Options{})
	u := createUser(t, c, "alice")

	const writers, total = 4, 120
	type ack struct {
		path string
		res  *raftmeta.CommitResult
	}
	var (
		mu      sync.Mutex
		acked   []ack
		unknown atomic.Int64
		count   atomic.Int64
		killed  = make(chan struct{})
	)
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for k := 0; count.Load() < total; k++ {
				path := fmt.Sprintf("/w%d/f%03d", w, k)
				op := putOp(path, path)
				op.IfNoneMatch = true
				res, unk, err := commitRetry(t, c, raftmeta.CommitRequest{RequestID: fmt.Sprintf("w%d-%d", w, k), Namespace: u.Namespace, Ops: []raftmeta.Op{op}})
				unknown.Add(int64(unk))
				if err != nil {
					errs <- fmt.Errorf("writer %d commit %d: %w", w, k, err)
					return
				}
				mu.Lock()
				acked = append(acked, ack{path, res})
				mu.Unlock()
				if count.Add(1) == total/4 {
					close(killed)
				}
			}
		}(w)
	}
	<-killed
	victim := c.Leader()
	if victim < 0 {
		t.Fatal("no leader to kill")
	}
	c.Stop(victim)
	t.Logf("stopped leader r%d after %d acknowledged commits", victim, count.Load())
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if err := c.Start(victim); err != nil {
		t.Fatalf("restart r%d: %v", victim, err)
	}
	converge(t, c)

	s, err := c.LeaderShard(30 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for _, a := range acked {
		e, err := s.Stat(ctx, u.Namespace, raftmeta.Target{Path: a.path}, raftmeta.StatOptions{})
		if err != nil {
			t.Fatalf("acknowledged %s lost: %v", a.path, err)
		}
		if e.ID != a.res.Ops[0].NodeID || e.Rev != 1 {
			t.Fatalf("%s: node %d rev %d, acknowledged node %d rev 1", a.path, e.ID, e.Rev, a.res.Ops[0].NodeID)
		}
	}
	// Every commit was retried until acknowledged and applied at most once:
	// the journal holds exactly one record per acknowledged commit.
	page, err := s.Changes(ctx, u.Namespace, 0, 10000, raftmeta.ReadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if int(page.Head) != len(acked) || len(page.Records) != len(acked) {
		t.Fatalf("journal head %d with %d records, %d commits acknowledged", page.Head, len(page.Records), len(acked))
	}
	seen := map[uint64]bool{}
	for _, a := range acked {
		if seen[a.res.Seq] {
			t.Fatalf("two acknowledged commits share journal seq %d", a.res.Seq)
		}
		seen[a.res.Seq] = true
	}
	t.Logf("%d commits acknowledged, %d attempts had an unknown outcome and were resolved by retrying", len(acked), unknown.Load())
}

// TestShardUnknownOutcomeResolvedByRetry proposes on a leader that has just
// been cut off: the outcome is unknown. Retrying with the same request ID at
// the new leader applies the commit exactly once.
func TestShardUnknownOutcomeResolvedByRetry(t *testing.T) {
	c := metatest.New(t, metatest.Options{})
	u := createUser(t, c, "bob")
	old := c.Leader()
	c.Isolate(old)
	req := raftmeta.CommitRequest{RequestID: "cut-off", Namespace: u.Namespace, Ops: []raftmeta.Op{putOp("/x", "x")}}
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	_, err := c.Replica(old).Shard.Commit(ctx, req)
	cancel()
	if !errors.Is(err, raftmeta.ErrUnknownOutcome) && !errors.Is(err, raftmeta.ErrNotLeader) {
		t.Fatalf("commit on a cut-off leader: %v, want unknown outcome or not leader", err)
	}
	t.Logf("cut-off leader answered: %v", err)
	c.Heal()
	for i := 0; i < 2; i++ { // the second retry must be answered from the dedup window
		res, _, err := commitRetry(t, c, req)
		if err != nil {
			t.Fatal(err)
		}
		if res.Seq != 1 || res.Ops[0].Rev != 1 {
			t.Fatalf("retry %d: seq %d rev %d, want the one and only application (seq 1, rev 1)", i, res.Seq, res.Ops[0].Rev)
		}
	}
	converge(t, c)
}

// TestShardNotLeader checks that a follower refuses commands and
// linearizable reads with the leader's address, and serves stale reads.
func TestShardNotLeader(t *testing.T) {
	c := metatest.New(t, metatest.Options{})
	u := createUser(t, c, "carol")
	l := c.Leader()
	f := (l + 1) % c.Len()
	fs := c.Replica(f).Shard
	ctx := context.Background()
	_, err := fs.Commit(ctx, raftmeta.CommitRequest{RequestID: "r1", Namespace: u.Namespace, Ops: []raftmeta.Op{putOp("/a", "a")}})
	var nl *raftmeta.NotLeaderError
	if !errors.As(err, &nl) || nl.Leader != string(c.Replica(l).Addr) {
		t.Fatalf("commit on follower: %v, want NotLeaderError naming %s", err, c.Replica(l).Addr)
	}
	if _, err := fs.User(ctx, "carol", raftmeta.ReadOptions{}); !errors.Is(err, raftmeta.ErrNotLeader) {
		t.Fatalf("linearizable read on follower: %v, want ErrNotLeader", err)
	}
	if err := fs.WaitApplied(ctx, c.Replica(l).Shard.FSM().AppliedIndex()); err != nil {
		t.Fatal(err)
	}
	if got, err := fs.User(ctx, "CAROL", raftmeta.ReadOptions{Stale: true}); err != nil || got.ID != u.ID {
		t.Fatalf("stale read on follower: %v, %v", got, err)
	}
	if _, err := c.Replica(l).Shard.Commit(ctx, raftmeta.CommitRequest{Namespace: u.Namespace, Ops: []raftmeta.Op{putOp("/a", "a")}}); !errors.Is(err, raftmeta.ErrInvalidArgument) {
		t.Fatalf("commit without request ID: %v, want ErrInvalidArgument", err)
	}
}

// TestShardFollowerRestartReplaysIdempotently restarts a follower: it comes
// back at its persisted applied index, skips the entries Raft hands it again,
// and catches up with what it missed.
func TestShardFollowerRestartReplaysIdempotently(t *testing.T) {
	c := metatest.New(t, metatest.Options{})
	u := createUser(t, c, "dave")
	for i := 0; i < 20; i++ {
		if _, _, err := commitRetry(t, c, raftmeta.CommitRequest{RequestID: fmt.Sprintf("a%d", i), Namespace: u.Namespace, Ops: []raftmeta.Op{putOp("/f", fmt.Sprint(i))}}); err != nil {
			t.Fatal(err)
		}
	}
	before := converge(t, c)
	f := (c.Leader() + 1) % c.Len()
	applied := c.Replica(f).Shard.FSM().AppliedIndex()
	c.Stop(f)
	if err := c.Start(f); err != nil {
		t.Fatal(err)
	}
	if got := c.Replica(f).Shard.FSM().AppliedIndex(); got != applied {
		t.Fatalf("restarted follower at applied index %d, was %d", got, applied)
	}
	if after := converge(t, c); after != before {
		t.Fatalf("state changed across a restart with no new commits")
	}
	// Raft re-delivers the log from its start (there is no snapshot); the
	// state machine must skip what it had applied.
	deadline := time.Now().Add(20 * time.Second)
	for c.Replica(f).Shard.FSM().Skipped() == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("restarted follower skipped no already-applied entries: replay was not exercised")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if after := converge(t, c); after != before {
		t.Fatalf("state changed by replaying already-applied entries")
	}
	// Miss some commits while down, then catch up from the log.
	c.Stop(f)
	for i := 0; i < 20; i++ {
		if _, _, err := commitRetry(t, c, raftmeta.CommitRequest{RequestID: fmt.Sprintf("b%d", i), Namespace: u.Namespace, Ops: []raftmeta.Op{putOp("/g", fmt.Sprint(i))}}); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.Start(f); err != nil {
		t.Fatal(err)
	}
	converge(t, c)
	e, err := c.Replica(f).Shard.Stat(context.Background(), u.Namespace, raftmeta.Target{Path: "/g"}, raftmeta.StatOptions{ReadOptions: raftmeta.ReadOptions{Stale: true}})
	if err != nil || e.Rev != 20 {
		t.Fatalf("follower after catch-up: %+v, %v; want /g at rev 20", e, err)
	}
}

// TestShardSnapshotInstall partitions a follower until the leader has
// compacted its log past it, so it can only catch up by snapshot install.
func TestShardSnapshotInstall(t *testing.T) {
	c := metatest.New(t, metatest.Options{Configure: func(cfg *raftmeta.Config) {
		cfg.TrailingLogs = 8
		cfg.SnapshotThreshold = 1 << 20 // snapshots only when asked
	}})
	u := createUser(t, c, "erin")
	f := (c.Leader() + 1) % c.Len()
	c.Isolate(f)
	followerLast, err := c.Replica(f).Stores().Bolt.LastIndex()
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 60; i++ {
		op := putOp(fmt.Sprintf("/d%d/f%d", i%5, i), fmt.Sprint(i))
		if _, _, err := commitRetry(t, c, raftmeta.CommitRequest{RequestID: fmt.Sprintf("s%d", i), Namespace: u.Namespace, Ops: []raftmeta.Op{op}}); err != nil {
			t.Fatal(err)
		}
	}
	l := c.Leader()
	if err := c.Replica(l).Shard.Snapshot(); err != nil {
		t.Fatalf("leader snapshot: %v", err)
	}
	first, err := c.Replica(l).Stores().Bolt.FirstIndex()
	if err != nil {
		t.Fatal(err)
	}
	if first <= followerLast+1 {
		t.Fatalf("leader log starts at %d, follower has up to %d: no snapshot needed", first, followerLast)
	}
	c.Heal()
	converge(t, c)
	snaps, err := c.Replica(f).Stores().Snapshots.List()
	if err != nil || len(snaps) == 0 {
		t.Fatalf("follower has no installed snapshot: %v %v", snaps, err)
	}
	e, err := c.Replica(f).Shard.Stat(context.Background(), u.Namespace, raftmeta.Target{Path: "/d4/f59"}, raftmeta.StatOptions{ReadOptions: raftmeta.ReadOptions{Stale: true}})
	if err != nil || e.Rev != 1 {
		t.Fatalf("follower after snapshot install: %+v, %v", e, err)
	}
	// And the installed state survives the follower's restart.
	c.Stop(f)
	if err := c.Start(f); err != nil {
		t.Fatal(err)
	}
	converge(t, c)
}

// TestShardLinearizableReadAfterFailover cuts the leader off: the new
// leader's reads see every acknowledged commit, and the old leader refuses
// linearizable reads instead of serving stale state.
func TestShardLinearizableReadAfterFailover(t *testing.T) {
	c := metatest.New(t, metatest.Options{})
	u := createUser(t, c, "frank")
	if _, _, err := commitRetry(t, c, raftmeta.CommitRequest{RequestID: "a", Namespace: u.Namespace, Ops: []raftmeta.Op{putOp("/a", "a")}}); err != nil {
		t.Fatal(err)
	}
	old := c.Leader()
	c.Isolate(old)
	res, _, err := commitRetry(t, c, raftmeta.CommitRequest{RequestID: "b", Namespace: u.Namespace, Ops: []raftmeta.Op{putOp("/b", "b")}})
	if err != nil {
		t.Fatal(err)
	}
	nl := c.Leader()
	if nl == old {
		t.Fatalf("the cut-off replica still leads")
	}
	ctx := context.Background()
	for _, p := range []string{"/a", "/b"} {
		if _, err := c.Replica(nl).Shard.Stat(ctx, u.Namespace, raftmeta.Target{Path: p}, raftmeta.StatOptions{}); err != nil {
			t.Fatalf("new leader misses acknowledged %s: %v", p, err)
		}
	}
	rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	_, err = c.Replica(old).Shard.Stat(rctx, u.Namespace, raftmeta.Target{Path: "/b"}, raftmeta.StatOptions{})
	cancel()
	if !errors.Is(err, raftmeta.ErrNotLeader) {
		t.Fatalf("linearizable read on the cut-off old leader: %v, want ErrNotLeader", err)
	}
	c.Heal()
	converge(t, c)
	e, err := c.Replica(old).Shard.Stat(ctx, u.Namespace, raftmeta.Target{Path: "/b"}, raftmeta.StatOptions{ReadOptions: raftmeta.ReadOptions{Stale: true}})
	if err != nil || e.ID != res.Ops[0].NodeID {
		t.Fatalf("old leader after healing: %+v, %v", e, err)
	}
}

// TestShardWaitChanges checks that a waiting change feed wakes on a commit
// and times out with an empty page.
func TestShardWaitChanges(t *testing.T) {
	c := metatest.New(t, metatest.Options{})
	u := createUser(t, c, "gina")
	s := mustLeader(t, c)
	ctx := context.Background()
	p, err := s.WaitChanges(ctx, u.Namespace, 0, 10, 30*time.Millisecond, raftmeta.ReadOptions{})
	if err != nil || len(p.Records) != 0 || p.Cursor != 0 {
		t.Fatalf("empty journal: %+v, %v", p, err)
	}
	got := make(chan *raftmeta.ChangesPage, 1)
	go func() {
		p, err := s.WaitChanges(ctx, u.Namespace, 0, 10, 30*time.Second, raftmeta.ReadOptions{})
		if err != nil {
			t.Error(err)
		}
		got <- p
	}()
	res, _, err := commitRetry(t, c, raftmeta.CommitRequest{RequestID: "w", Namespace: u.Namespace, Ops: []raftmeta.Op{putOp("/w", "w")}})
	if err != nil {
		t.Fatal(err)
	}
	p = <-got
	if p == nil || len(p.Records) != 1 || p.Records[0].Seq != res.Seq || p.Cursor != res.Seq || p.Records[0].Changes[0].Path != "/w" {
		t.Fatalf("woken page %+v, want the one record of seq %d", p, res.Seq)
	}
}

// TestShardCorruptOrMissingStores damages the stores of a stopped replica
// in the ways disks and operators do, and checks each start-up: a clear
// ErrCorruptStore, or a correct recovery where the data allows one.
func TestShardCorruptOrMissingStores(t *testing.T) {
	setup := func(t *testing.T, snapshot bool) (*metatest.Cluster, raftmeta.Sum) {
		c := metatest.New(t, metatest.Options{Replicas: 1, Configure: func(cfg *raftmeta.Config) {
			cfg.TrailingLogs = 2
			cfg.SnapshotThreshold = 1 << 20
		}})
		u := createUser(t, c, "hank")
		for i := 0; i < 10; i++ {
			if _, _, err := commitRetry(t, c, raftmeta.CommitRequest{RequestID: fmt.Sprint(i), Namespace: u.Namespace, Ops: []raftmeta.Op{putOp(fmt.Sprintf("/f%d", i), "x")}}); err != nil {
				t.Fatal(err)
			}
		}
		if snapshot {
			if err := c.Replica(0).Shard.Snapshot(); err != nil {
				t.Fatal(err)
			}
		}
		h := converge(t, c)
		c.Stop(0)
		return c, h
	}
	dir := func(c *metatest.Cluster, parts ...string) string {
		return filepath.Join(append([]string{c.Replica(0).Dir}, parts...)...)
	}
	garble := func(t *testing.T, path string, off int64) {
		f, err := os.OpenFile(path, os.O_RDWR, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		junk := make([]byte, 4096)
		for i := range junk {
			junk[i] = byte(i*7 + 13)
		}
		if _, err := f.WriteAt(junk, off); err != nil {
			t.Fatal(err)
		}
	}
	findManifest := func(t *testing.T, d string) string {
		m, _ := filepath.Glob(filepath.Join(d, "MANIFEST-*"))
		if len(m) == 0 {
			t.Fatalf("no MANIFEST in %s", d)
		}
		return m[len(m)-1]
	}
	cases := []struct {
		name     string
		snapshot bool
		damage   func(t *testing.T, c *metatest.Cluster)
		wantErr  bool
	}{
		{"raft log data pages garbled", false, func(t *testing.T, c *metatest.Cluster) {
			path := dir(c, "raft", "raft.db")
			st, err := os.Stat(path)
			if err != nil {
				t.Fatal(err)
			}
			for off := int64(8192); off < st.Size(); off += 4096 { // every page after the two meta pages
				garble(t, path, off)
			}
		}, true},
		{"raft log deleted", false, func(t *testing.T, c *metatest.Cluster) { os.Remove(dir(c, "raft", "raft.db")) }, true},
		{"state manifest garbled", false, func(t *testing.T, c *metatest.Cluster) { garble(t, findManifest(t, dir(c, "state")), 0) }, true},
		{"state deleted, log complete: rebuilt from the log", false, func(t *testing.T, c *metatest.Cluster) { os.RemoveAll(dir(c, "state")) }, false},
		{"state deleted, log compacted: rebuilt from the snapshot", true, func(t *testing.T, c *metatest.Cluster) { os.RemoveAll(dir(c, "state")) }, false},
		{"latest snapshot garbled", true, func(t *testing.T, c *metatest.Cluster) {
			m, _ := filepath.Glob(dir(c, "raft", "snapshots", "*", "state.bin"))
			if len(m) == 0 {
				t.Fatal("no snapshot file")
			}
			garble(t, m[len(m)-1], 0)
		}, true},
		{"state and snapshots deleted, log compacted", true, func(t *testing.T, c *metatest.Cluster) {
			os.RemoveAll(dir(c, "state"))
			os.RemoveAll(dir(c, "raft", "snapshots"))
		}, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, want := setup(t, tc.snapshot)
			tc.damage(t, c)
			err := c.Start(0)
			if tc.wantErr {
				if !errors.Is(err, raftmeta.ErrCorruptStore) {
					t.Fatalf("start after damage: %v, want ErrCorruptStore", err)
				}
				t.Logf("refused clearly: %v", err)
				return
			}
			if err != nil {
				t.Fatalf("start after recoverable damage: %v", err)
			}
			if got := converge(t, c); got != want {
				t.Fatalf("rebuilt state differs from the state before the damage")
			}
		})
	}
}

func TestShardConfigValidateReportsEverything(t *testing.T) {
	err := raftmeta.Config{MaxAppendEntries: -1, KeepLast: -1, ElectionTimeout: time.Millisecond, HeartbeatTimeout: time.Second}.Validate()
	if !errors.Is(err, raftmeta.ErrInvalidArgument) {
		t.Fatalf("Validate: %v", err)
	}
	for _, want := range []string{"LocalID", "DB", "Transport", "LogStore", "MaxAppendEntries", "KeepLast", "ElectionTimeout"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("Validate error lacks %q: %v", want, err)
		}
	}
}

// TestShardConcurrentReadsShareLeadershipCheck fires many linearizable
// reads at once: they must all succeed, sharing far fewer leadership checks.
func TestShardConcurrentReadsShareLeadershipCheck(t *testing.T) {
	c := metatest.New(t, metatest.Options{})
	u := createUser(t, c, "ivan")
	if _, _, err := commitRetry(t, c, raftmeta.CommitRequest{RequestID: "a", Namespace: u.Namespace, Ops: []raftmeta.Op{putOp("/a", "a")}}); err != nil {
		t.Fatal(err)
	}
	s := mustLeader(t, c)
	// A check over the in-memory transport takes microseconds, so on a
	// busy machine the readers could arrive one after another and never
	// share one. Slowing each check down makes the window real.
	raftmeta.SetBeforeReadCheck(s, func() { time.Sleep(20 * time.Millisecond) })
	const reads = 200
	before := s.LeadershipChecks()
	start := make(chan struct{})
	var wg sync.WaitGroup
	var failed atomic.Int64
	for i := 0; i < reads; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			if _, err := s.Stat(context.Background(), u.Namespace, raftmeta.Target{Path: "/a"}, raftmeta.StatOptions{}); err != nil {
				failed.Add(1)
			}
		}()
	}
	close(start)
	wg.Wait()
	checks := s.LeadershipChecks() - before
	if failed.Load() > 0 {
		t.Fatalf("%d of %d linearizable reads failed", failed.Load(), reads)
	}
	if checks == 0 || checks > reads/2 {
		t.Fatalf("%d reads ran %d leadership checks: they are not shared", reads, checks)
	}
	t.Logf("%d concurrent reads shared %d leadership checks", reads, checks)
}

// TestShardRefusesBadInput checks input that must be refused before it is
// proposed (JSON would rewrite invalid UTF-8 into a different valid path),
// and a few refusals the state machine gives through the Shard API.
func TestShardRefusesBadInput(t *testing.T) {
	c := metatest.New(t, metatest.Options{})
	u := createUser(t, c, "judy")
	s := mustLeader(t, c)
	ctx := context.Background()
	before := s.FSM().AppliedIndex()
	cases := []struct {
		name string
		call func() error
		want error
	}{
		{"invalid UTF-8 path", func() error {
			_, err := s.Commit(ctx, raftmeta.CommitRequest{RequestID: "u1", Namespace: u.Namespace, Ops: []raftmeta.Op{putOp("/a\xffb", "x")}})
			return err
		}, raftmeta.ErrInvalidPath},
		{"invalid UTF-8 move target", func() error {
			_, err := s.Commit(ctx, raftmeta.CommitRequest{RequestID: "u2", Namespace: u.Namespace, Ops: []raftmeta.Op{{Kind: raftmeta.OpMove, Path: "/a", To: "/\xc3"}}})
			return err
		}, raftmeta.ErrInvalidPath},
		{"bad user name", func() error { return s.DeleteUser(ctx, "u3", "bad/name") }, raftmeta.ErrInvalidName},
		{"request ID with a space", func() error { return s.SetQuota(ctx, "a b", "judy", 1) }, raftmeta.ErrInvalidArgument},
		{"empty password", func() error { return s.SetPassword(ctx, "u4", "judy", "") }, raftmeta.ErrInvalidArgument},
	}
	for _, tc := range cases {
		if err := tc.call(); !errors.Is(err, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.want)
		}
	}
	if got := s.FSM().AppliedIndex(); got != before {
		t.Errorf("refused input reached the log: applied index %d -> %d", before, got)
	}
	if _, err := s.Authenticate(ctx, "judy", "wrong"); !errors.Is(err, raftmeta.ErrBadCredentials) {
		t.Errorf("wrong password: %v", err)
	}
	if _, err := s.Authenticate(ctx, "nobody", "secret"); !errors.Is(err, raftmeta.ErrBadCredentials) {
		t.Errorf("unknown user: %v", err)
	}
	if got, err := s.Authenticate(ctx, "JUDY", "secret"); err != nil || got.ID != u.ID {
		t.Errorf("right password: %v, %v", got, err)
	}
}
