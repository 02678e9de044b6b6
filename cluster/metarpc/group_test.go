package metarpc

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/coffer-dev/coffer/raftmeta"
	"github.com/coffer-dev/coffer/raftmeta/metatest"
)

// groupShards serves replica i of a metatest group as group 1.
type groupShards struct {
	c     *metatest.Cluster
	i     int
	addrs map[string]string // node name -> gRPC address; read-only once serving
}

func (g *groupShards) Shard(group uint64) (Shard, error) {
	if group != 1 {
		return nil, fmt.Errorf("%w: group %d", ErrNoReplica, group)
	}
	s := g.c.Shard(g.i)
	if s == nil {
		return nil, fmt.Errorf("%w: replica stopped", ErrNoReplica)
	}
	return s, nil
}

func (g *groupShards) GRPCAddr(nodeID string) string { return g.addrs[nodeID] }

// testGroup is a 3-replica group, each replica behind its own gRPC server
// on 127.0.0.1.
type testGroup struct {
	c       *metatest.Cluster
	addrs   map[string]string
	clients map[string]*Client // by gRPC address
}

func startGroup(t *testing.T) *testGroup {
	t.Helper()
	c := metatest.New(t, metatest.Options{})
	g := &testGroup{c: c, addrs: make(map[string]string), clients: make(map[string]*Client)}
	liss := make([]net.Listener, c.Len())
	for i := range liss {
		liss[i] = listen(t)
		g.addrs[string(c.Replica(i).ID)] = liss[i].Addr().String()
	}
	for i, lis := range liss {
		ts := serve(t, lis, &groupShards{c: c, i: i, addrs: g.addrs})
		g.clients[ts.addr] = NewClient(dial(t, ts.addr), ClientConfig{CallTimeout: 10 * time.Second})
	}
	return g
}

// leader returns the index of the leader and its client.
func (g *testGroup) leader(t *testing.T) (int, *Client) {
	t.Helper()
	i, err := g.c.WaitLeader(testTimeout)
	if err != nil {
		t.Fatal(err)
	}
	return i, g.client(i)
}

func (g *testGroup) client(i int) *Client {
	return g.clients[g.addrs[string(g.c.Replica(i).ID)]]
}

// onLeader runs fn against the leader, following not-leader answers to
// the gRPC address they name and retrying while the outcome is open, as
// the gateway will: fn must be safe to retry (same request ID).
func (g *testGroup) onLeader(t *testing.T, fn func(c *Client) error) {
	t.Helper()
	_, c := g.leader(t)
	deadline := time.Now().Add(testTimeout)
	for {
		err := fn(c)
		if err == nil {
			return
		}
		var nl *raftmeta.NotLeaderError
		switch {
		case time.Now().After(deadline):
			t.Fatalf("no outcome: %v", err)
		case errors.As(err, &nl) && g.clients[nl.Leader] != nil:
			c = g.clients[nl.Leader]
		case errors.Is(err, raftmeta.ErrNotLeader), errors.Is(err, raftmeta.ErrUnknownOutcome), errors.Is(err, ErrUnavailable):
			_, c = g.leader(t) // waits for a leader that serves reads
		default:
			t.Fatal(err)
		}
	}
}

// putOp is a one-block file put with content derived from body.
func putOp(path, body string) raftmeta.Op {
	sum := raftmeta.Sum(sha256.Sum256([]byte(body)))
	return raftmeta.Op{Kind: raftmeta.OpPut, Path: path, Size: int64(len(body)), Hash: sum, Mode: 0o644,
		Blocks: []raftmeta.Block{{Ref: sum, Size: int64(len(body))}}}
}

// sameJSON fails unless a and b encode to the same JSON.
func sameJSON(t *testing.T, what string, a, b any) {
	t.Helper()
	ja, err := json.Marshal(a)
	if err != nil {
		t.Fatal(err)
	}
	jb, err := json.Marshal(b)
	if err != nil {
		t.Fatal(err)
	}
	if string(ja) != string(jb) {
		t.Errorf("%s differs:\n rpc    %s\n direct %s", what, ja, jb)
	}
}

// TestGroup runs the metadata operations through the client against a
// real 3-replica group.
func TestGroup(t *testing.T) {
	g := startGroup(t)
	ctx := testContext(t)
	var alice *raftmeta.User
	g.onLeader(t, func(c *Client) (err error) {
		alice, err = c.CreateUser(ctx, 1, raftmeta.CreateUserRequest{RequestID: "create-alice", Name: "alice", Password: "pw1", Quota: 1 << 20})
		return err
	})
	if alice == nil || alice.Name != "alice" || alice.Namespace == 0 || alice.Quota != 1<<20 {
		t.Fatalf("CreateUser = %+v", alice)
	}
	ns := alice.Namespace

	t.Run("round trip", func(t *testing.T) {
		var res1, res2 *raftmeta.CommitResult
		g.onLeader(t, func(c *Client) (err error) {
			res1, err = c.Commit(ctx, 1, raftmeta.CommitRequest{RequestID: "put-1", Namespace: ns, Ops: []raftmeta.Op{putOp("/a.txt", "one")}})
			return err
		})
		g.onLeader(t, func(c *Client) (err error) {
			op := putOp("/a.txt", "two")
			op.IfMatch = res1.Ops[0].Rev
			res2, err = c.Commit(ctx, 1, raftmeta.CommitRequest{RequestID: "put-2", Namespace: ns, Ops: []raftmeta.Op{op, {Kind: raftmeta.OpMkdir, Path: "/docs"}}})
			return err
		})
		if len(res1.Ops) != 1 || res1.Ops[0].Rev != 1 || len(res2.Ops) != 2 || res2.Ops[0].Rev != 2 || res2.Seq != res1.Seq+1 {
			t.Fatalf("commits = %+v, %+v", res1, res2)
		}
		// A retry with the same request ID returns the first result.
		var again *raftmeta.CommitResult
		g.onLeader(t, func(c *Client) (err error) {
			again, err = c.Commit(ctx, 1, raftmeta.CommitRequest{RequestID: "put-1", Namespace: ns, Ops: []raftmeta.Op{putOp("/a.txt", "one")}})
			return err
		})
		sameJSON(t, "retried commit", again, res1)

		// Every read through the client equals the same read made on
		// the leader's shard directly (both linearizable).
		li, c := g.leader(t)
		s := g.c.Shard(li)
		target := raftmeta.Target{Path: "/a.txt"}
		reads := []struct {
			name   string
			rpc    func() (any, error)
			direct func() (any, error)
			check  func(any) error
		}{
			{"Stat", func() (any, error) { return c.Stat(ctx, 1, ns, target, raftmeta.StatOptions{}) },
				func() (any, error) { return s.Stat(ctx, ns, target, raftmeta.StatOptions{}) },
				func(v any) error {
					if e := v.(*raftmeta.Entry); e.Rev != 2 || e.Path != "/a.txt" || e.Size != 3 {
						return fmt.Errorf("entry %+v", e)
					}
					return nil
				}},
			{"History", func() (any, error) { return c.History(ctx, 1, ns, target, raftmeta.HistoryOptions{}) },
				func() (any, error) { return s.History(ctx, ns, target, raftmeta.HistoryOptions{}) },
				func(v any) error {
					if revs := v.([]raftmeta.Revision); len(revs) != 2 || revs[0].Rev != 2 || revs[1].Rev != 1 {
						return fmt.Errorf("history %+v", revs)
					}
					return nil
				}},
			{"List", func() (any, error) { return c.List(ctx, 1, ns, raftmeta.Target{Path: "/"}, raftmeta.ListOptions{}) },
				func() (any, error) { return s.List(ctx, ns, raftmeta.Target{Path: "/"}, raftmeta.ListOptions{}) },
				func(v any) error {
					if p := v.(*raftmeta.ListPage); len(p.Entries) != 2 || p.Entries[0].Name != "a.txt" || p.Entries[1].Name != "docs" {
						return fmt.Errorf("listing %+v", p)
					}
					return nil
				}},
			{"Changes", func() (any, error) { return c.Changes(ctx, 1, ns, 0, 100, raftmeta.ReadOptions{}) },
				func() (any, error) { return s.Changes(ctx, ns, 0, 100, raftmeta.ReadOptions{}) },
				func(v any) error {
					if p := v.(*raftmeta.ChangesPage); len(p.Records) != 2 || p.Cursor != res2.Seq || p.Head != res2.Seq || p.Records[1].RequestID != "put-2" {
						return fmt.Errorf("changes %+v", p)
					}
					return nil
				}},
			{"User", func() (any, error) { return c.User(ctx, 1, "ALICE", raftmeta.ReadOptions{}) },
				func() (any, error) { return s.User(ctx, "alice", raftmeta.ReadOptions{}) },
				func(v any) error {
					if u := v.(*raftmeta.User); u.ID != alice.ID {
						return fmt.Errorf("user %+v", u)
					}
					return nil
				}},
			{"Authenticate", func() (any, error) { return c.Authenticate(ctx, 1, "alice", "pw1") },
				func() (any, error) { return s.Authenticate(ctx, "alice", "pw1") },
				func(v any) error {
					if u := v.(*raftmeta.User); u.ID != alice.ID {
						return fmt.Errorf("user %+v", u)
					}
					return nil
				}},
		}
		for _, r := range reads {
			got, err := r.rpc()
			if err != nil {
				t.Errorf("%s through the client: %v", r.name, err)
				continue
			}
			want, err := r.direct()
			if err != nil {
				t.Errorf("%s on the shard: %v", r.name, err)
				continue
			}
			sameJSON(t, r.name, got, want)
			if err := r.check(got); err != nil {
				t.Errorf("%s: %v", r.name, err)
			}
		}
	})

	t.Run("user admin", func(t *testing.T) {
		g.onLeader(t, func(c *Client) error { return c.SetQuota(ctx, 1, "quota-alice", "alice", 5<<20) })
		g.onLeader(t, func(c *Client) error { return c.SetPassword(ctx, 1, "password-alice", "alice", "pw2") })
		_, c := g.leader(t)
		u, err := c.Authenticate(ctx, 1, "alice", "pw2")
		if err != nil || u.Quota != 5<<20 {
			t.Errorf("Authenticate with the new password = %+v, %v", u, err)
		}
		if _, err := c.Authenticate(ctx, 1, "alice", "pw1"); !errors.Is(err, raftmeta.ErrBadCredentials) {
			t.Errorf("Authenticate with the old password: %v, want ErrBadCredentials", err)
		}
		g.onLeader(t, func(c *Client) error {
			_, err := c.CreateUser(ctx, 1, raftmeta.CreateUserRequest{RequestID: "create-bob", Name: "bob", Password: "x"})
			return err
		})
		g.onLeader(t, func(c *Client) error { return c.DeleteUser(ctx, 1, "delete-bob", "bob") })
		_, c = g.leader(t)
		_, err = c.User(ctx, 1, "bob", raftmeta.ReadOptions{})
		var oe *raftmeta.OpError
		if !errors.Is(err, raftmeta.ErrNotFound) || !errors.As(err, &oe) || oe.Code != raftmeta.CodeNotFound {
			t.Errorf("User(bob) after DeleteUser: %v, want a not_found OpError", err)
		}
		var pr *raftmeta.PruneResult
		g.onLeader(t, func(c *Client) (err error) {
			pr, err = c.Prune(ctx, 1)
			return err
		})
		if pr == nil {
			t.Error("Prune returned no result")
		}
	})

	t.Run("follower answers not leader", func(t *testing.T) {
		for attempt := 0; ; attempt++ {
			li, _ := g.leader(t)
			leaderID := string(g.c.Replica(li).ID)
			f := g.client((li + 1) % g.c.Len())
			_, cerr := f.Commit(ctx, 1, raftmeta.CommitRequest{RequestID: "follower-put", Namespace: ns, Ops: []raftmeta.Op{putOp("/f.txt", "f")}})
			_, serr := f.Stat(ctx, 1, ns, raftmeta.Target{Path: "/"}, raftmeta.StatOptions{})
			if now, _ := g.leader(t); now != li && attempt < 5 {
				continue // the leader changed meanwhile: ask again
			}
			for _, err := range []error{cerr, serr} {
				var nl *raftmeta.NotLeaderError
				if !errors.As(err, &nl) || !errors.Is(err, raftmeta.ErrNotLeader) || CodeOf(err) != raftmeta.CodeNotLeader {
					t.Fatalf("%v: want a *NotLeaderError", err)
				}
				if nl.LeaderID != leaderID || nl.Leader != g.addrs[leaderID] {
					t.Errorf("NotLeaderError %+v, want leader %s at %s", nl, leaderID, g.addrs[leaderID])
				}
			}
			break
		}
		// A stale read is served by the follower (once it has caught up).
		ctxc, cancel := context.WithTimeout(ctx, testTimeout)
		defer cancel()
		if _, err := g.c.WaitConverged(ctxc); err != nil {
			t.Fatal(err)
		}
		li, _ := g.leader(t)
		u, err := g.client((li+1)%g.c.Len()).User(ctx, 1, "alice", raftmeta.ReadOptions{Stale: true})
		if err != nil || u.ID != alice.ID {
			t.Errorf("stale User on a follower = %+v, %v", u, err)
		}
	})

	t.Run("conflict", func(t *testing.T) {
		li, c := g.leader(t)
		op := putOp("/a.txt", "three")
		op.IfNoneMatch = true
		_, direct := g.c.Shard(li).Commit(ctx, raftmeta.CommitRequest{RequestID: "conflict-direct", Namespace: ns, Ops: []raftmeta.Op{{Kind: raftmeta.OpMkdir, Path: "/x"}, op}})
		_, remote := c.Commit(ctx, 1, raftmeta.CommitRequest{RequestID: "conflict-rpc", Namespace: ns, Ops: []raftmeta.Op{{Kind: raftmeta.OpMkdir, Path: "/x"}, op}})
		var want, got *raftmeta.OpError
		if !errors.As(direct, &want) {
			t.Fatalf("direct commit: %v, want an *OpError", direct)
		}
		if !errors.As(remote, &got) {
			t.Fatalf("commit through the client: %v, want an *OpError", remote)
		}
		if *got != *want {
			t.Errorf("OpError %+v, want %+v", *got, *want)
		}
		if got.Code != raftmeta.CodeConflict || got.Op != 1 || got.Current != 2 || !errors.Is(remote, raftmeta.ErrConflict) {
			t.Errorf("%v: want a conflict on op 1 at revision 2", remote)
		}
	})

	t.Run("wait changes", func(t *testing.T) {
		_, c := g.leader(t)
		p, err := c.Changes(ctx, 1, ns, 0, 1, raftmeta.ReadOptions{})
		if err != nil {
			t.Fatal(err)
		}
		head := p.Head

		// Nothing follows the head: the wait times out with an empty page.
		start := time.Now()
		p, err = c.WaitChanges(ctx, 1, ns, head, 10, 300*time.Millisecond, raftmeta.ReadOptions{})
		if err != nil || len(p.Records) != 0 || p.Cursor != head {
			t.Errorf("WaitChanges with nothing new = %+v, %v; want an empty page at %d", p, err, head)
		}
		if d := time.Since(start); d < 300*time.Millisecond {
			t.Errorf("WaitChanges returned after %v, before its timeout", d)
		}

		// A commit ends the wait.
		type answer struct {
			p   *raftmeta.ChangesPage
			err error
		}
		done := make(chan answer, 1)
		go func() {
			p, err := c.WaitChanges(ctx, 1, ns, head, 10, 20*time.Second, raftmeta.ReadOptions{})
			done <- answer{p, err}
		}()
		g.onLeader(t, func(c *Client) error {
			_, err := c.Commit(ctx, 1, raftmeta.CommitRequest{RequestID: "wake", Namespace: ns, Ops: []raftmeta.Op{putOp("/wake.txt", "w")}})
			return err
		})
		a := waitFor(t, done, "WaitChanges to return")
		if a.err != nil {
			t.Fatal(a.err)
		}
		if len(a.p.Records) != 1 || a.p.Records[0].RequestID != "wake" || a.p.Records[0].Seq != head+1 {
			t.Errorf("WaitChanges = %+v, want the record of the commit", a.p)
		}
	})

	t.Run("gateway methods", func(t *testing.T) {
		const id = "0123456789abcdef0123456789abcdef"
		blocks := []raftmeta.Block{putOp("/", "up-1").Blocks[0], putOp("/", "up-22").Blocks[0]}
		var up *raftmeta.Upload
		g.onLeader(t, func(c *Client) (err error) {
			up, err = c.CreateUpload(ctx, 1, "up-create", ns, id, "/up.bin", []byte("s0"), []byte("m"))
			return err
		})
		if up.ID != id || up.Path != "/up.bin" || up.Expires-up.Created != int64(raftmeta.UploadTTL) {
			t.Fatalf("CreateUpload = %+v", up)
		}
		g.onLeader(t, func(c *Client) (err error) {
			up, err = c.AppendUpload(ctx, 1, "up-append", ns, id, 0, blocks, []byte("s9"))
			return err
		})
		if up.Size != 9 || up.Blocks != 2 {
			t.Fatalf("AppendUpload = %+v", up)
		}
		var mismatch *raftmeta.OpError
		g.onLeader(t, func(c *Client) error {
			_, err := c.AppendUpload(ctx, 1, "up-append-2", ns, id, 4, nil, nil)
			if errors.As(err, &mismatch) {
				return nil
			}
			return err
		})
		if mismatch.Code != raftmeta.CodeOffsetMismatch || mismatch.Offset != 9 {
			t.Fatalf("append at a wrong offset: %+v", mismatch)
		}
		var res *raftmeta.CommitResult
		g.onLeader(t, func(c *Client) (err error) {
			res, err = c.Commit(ctx, 1, raftmeta.CommitRequest{RequestID: "up-finish", Namespace: ns, Upload: id,
				Ops: []raftmeta.Op{{Kind: raftmeta.OpPut, Path: "/up.bin", Size: 9, Hash: raftmeta.Sum{1}}}})
			return err
		})
		_, c := g.leader(t)
		if e, err := c.Stat(ctx, 1, ns, raftmeta.Target{ID: res.Ops[0].NodeID}, raftmeta.StatOptions{}); err != nil || len(e.Blocks) != 2 || e.Blocks[1] != blocks[1] {
			t.Fatalf("finished file %+v, %v", e, err)
		}
		if _, err := c.GetUpload(ctx, 1, ns, id, raftmeta.ReadOptions{}); !errors.Is(err, raftmeta.ErrNotFound) {
			t.Fatalf("GetUpload after finish: %v", err)
		}
		g.onLeader(t, func(c *Client) error {
			_, err := c.CreateUpload(ctx, 1, "up-create-2", ns, id, "/up2.bin", nil, nil)
			return err
		})
		g.onLeader(t, func(c *Client) error { return c.DeleteUpload(ctx, 1, "up-delete", ns, id) })
		g.onLeader(t, func(c *Client) error {
			return c.RevokeToken(ctx, 1, "tok-1", "abcdef", time.Now().Add(time.Hour))
		})
		var revoked *raftmeta.User
		g.onLeader(t, func(c *Client) (err error) {
			revoked, err = c.RevokeSessions(ctx, 1, "out-1", "alice")
			return err
		})
		if revoked.SessionsValidAfter.IsZero() {
			t.Fatalf("RevokeSessions = %+v", revoked)
		}

		// Reads through the client equal the same reads on the leader.
		li, c := g.leader(t)
		s := g.c.Shard(li)
		refs := []raftmeta.Sum{blocks[0].Ref, {7}, blocks[1].Ref}
		reads := []struct {
			name        string
			rpc, direct func() (any, error)
		}{
			{"Referenced", func() (any, error) { return c.Referenced(ctx, 1, ns, refs, raftmeta.ReadOptions{}) },
				func() (any, error) { return s.Referenced(ctx, ns, refs, raftmeta.ReadOptions{}) }},
			{"Namespace", func() (any, error) { return c.Namespace(ctx, 1, ns, raftmeta.ReadOptions{}) },
				func() (any, error) { return s.Namespace(ctx, ns, raftmeta.ReadOptions{}) }},
			{"Users", func() (any, error) { return c.Users(ctx, 1, raftmeta.UsersOptions{Limit: 1}) },
				func() (any, error) { return s.Users(ctx, raftmeta.UsersOptions{Limit: 1}) }},
			{"SessionsValidAfter", func() (any, error) { return c.SessionsValidAfter(ctx, 1, "alice", raftmeta.ReadOptions{}) },
				func() (any, error) { return s.SessionsValidAfter(ctx, "alice", raftmeta.ReadOptions{}) }},
			{"TokenRevoked", func() (any, error) { return c.TokenRevoked(ctx, 1, "abcdef", raftmeta.ReadOptions{}) },
				func() (any, error) { return s.TokenRevoked(ctx, "abcdef", raftmeta.ReadOptions{}) }},
		}
		for _, r := range reads {
			got, err := r.rpc()
			if err != nil {
				t.Errorf("%s through the client: %v", r.name, err)
				continue
			}
			want, err := r.direct()
			if err != nil {
				t.Errorf("%s on the shard: %v", r.name, err)
				continue
			}
			sameJSON(t, r.name, got, want)
		}
		if r, err := c.Referenced(ctx, 1, ns, refs, raftmeta.ReadOptions{}); err != nil || fmt.Sprint(r) != "[true false true]" {
			t.Errorf("Referenced = %v, %v", r, err)
		}
		if ok, err := c.TokenRevoked(ctx, 1, "abcdef", raftmeta.ReadOptions{}); err != nil || !ok {
			t.Errorf("TokenRevoked = %v, %v", ok, err)
		}
		if at, err := c.SessionsValidAfter(ctx, 1, "alice", raftmeta.ReadOptions{}); err != nil || !at.Equal(revoked.SessionsValidAfter) {
			t.Errorf("SessionsValidAfter = %v, %v; want %v", at, err, revoked.SessionsValidAfter)
		}
		if p, err := c.Users(ctx, 1, raftmeta.UsersOptions{}); err != nil || len(p.Users) == 0 || p.Users[0].PasswordHash != "" {
			t.Errorf("Users = %+v, %v", p, err)
		}
	})

	t.Run("unknown group", func(t *testing.T) {
		_, c := g.leader(t)
		_, err := c.Stat(ctx, 99, ns, raftmeta.Target{Path: "/"}, raftmeta.StatOptions{})
		if !errors.Is(err, ErrNoReplica) || CodeOf(err) != CodeNoReplica {
			t.Errorf("%v: want ErrNoReplica", err)
		}
	})
}
