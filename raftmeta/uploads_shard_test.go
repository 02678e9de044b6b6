package raftmeta_test

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/coffer-dev/coffer/raftmeta"
	"github.com/coffer-dev/coffer/raftmeta/metatest"
)

func sum(s string) raftmeta.Sum { return raftmeta.Sum(sha256.Sum256([]byte(s))) }

// TestShardUploads drives an upload session through the Shard API of a
// 3-replica group: create, appends (a wrong offset reports the right
// one), a retried append, a finish that fails and keeps the upload, a
// finish that commits the blocks in order, expiry by the shard's clock
// and the prune that deletes expired sessions; bad input never reaches
// the log.
func TestShardUploads(t *testing.T) {
	clock := &fakeClock{now: time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)}
	c := metatest.New(t, metatest.Options{Configure: func(cfg *raftmeta.Config) { cfg.Now = clock.Now }})
	ns := createUser(t, c, "uma").Namespace
	other := createUser(t, c, "otto").Namespace
	s := mustLeader(t, c)
	ctx := context.Background()
	const id = "00112233445566778899aabbccddeeff"

	up, err := s.CreateUpload(ctx, "c1", ns, id, "/in/file.bin", []byte("h0"), []byte(`{"mode":420}`))
	if err != nil || up.Path != "/in/file.bin" || up.Created != clock.Now().UnixNano() || up.Expires != up.Created+int64(raftmeta.UploadTTL) {
		t.Fatalf("CreateUpload = %+v, %v", up, err)
	}
	blocks := []raftmeta.Block{{Ref: sum("one"), Size: 3}, {Ref: sum("two"), Size: 3}, {Ref: sum("three"), Size: 5}}
	if up, err = s.AppendUpload(ctx, "a1", ns, id, 0, blocks[:2], []byte("h6")); err != nil || up.Size != 6 || up.Blocks != 2 {
		t.Fatalf("AppendUpload = %+v, %v", up, err)
	}
	// A retry gets the first answer.
	if again, err := s.AppendUpload(ctx, "a1", ns, id, 0, blocks[:2], []byte("h6")); err != nil || !reflect.DeepEqual(again, up) {
		t.Fatalf("retried AppendUpload = %+v, %v; want %+v", again, err, up)
	}
	_, err = s.AppendUpload(ctx, "a2", ns, id, 3, blocks[2:], []byte("h11"))
	var oe *raftmeta.OpError
	if !errors.Is(err, raftmeta.ErrOffsetMismatch) || !errors.As(err, &oe) || oe.Offset != 6 {
		t.Fatalf("append at a wrong offset: %v, want ErrOffsetMismatch at 6", err)
	}
	if up, err = s.AppendUpload(ctx, "a3", ns, id, 6, blocks[2:], []byte("h11")); err != nil || up.Size != 11 || up.Blocks != 3 {
		t.Fatalf("AppendUpload = %+v, %v", up, err)
	}
	got, err := s.GetUpload(ctx, ns, id, raftmeta.ReadOptions{})
	if err != nil || !reflect.DeepEqual(got, up) || string(got.State) != "h11" || string(got.Meta) != `{"mode":420}` {
		t.Fatalf("GetUpload = %+v, %v; want %+v", got, err, up)
	}
	if _, err := s.GetUpload(ctx, other, id, raftmeta.ReadOptions{}); !errors.Is(err, raftmeta.ErrNotFound) {
		t.Fatalf("GetUpload from another namespace: %v", err)
	}

	// A finish whose commit fails keeps the upload.
	if _, err := s.Commit(ctx, raftmeta.CommitRequest{RequestID: "taken", Namespace: ns, Ops: []raftmeta.Op{putOp("/in/file.bin", "x")}}); err != nil {
		t.Fatal(err)
	}
	finish := raftmeta.Op{Kind: raftmeta.OpPut, Path: up.Path, Size: up.Size, Hash: sum("whole"), IfNoneMatch: true}
	if _, err := s.Commit(ctx, raftmeta.CommitRequest{RequestID: "f1", Namespace: ns, Upload: id, Ops: []raftmeta.Op{finish}}); !errors.Is(err, raftmeta.ErrConflict) {
		t.Fatalf("finish over an existing file: %v, want ErrConflict", err)
	}
	if _, err := s.GetUpload(ctx, ns, id, raftmeta.ReadOptions{}); err != nil {
		t.Fatalf("upload after a failed finish: %v", err)
	}
	finish.IfNoneMatch = false
	res, err := s.Commit(ctx, raftmeta.CommitRequest{RequestID: "f2", Namespace: ns, Upload: id, Ops: []raftmeta.Op{finish}})
	if err != nil {
		t.Fatal(err)
	}
	e, err := s.Stat(ctx, ns, raftmeta.Target{ID: res.Ops[0].NodeID}, raftmeta.StatOptions{})
	if err != nil || !reflect.DeepEqual(e.Blocks, blocks) || e.Size != 11 || e.Rev != 2 {
		t.Fatalf("finished file %+v, %v; want blocks %+v", e, err, blocks)
	}
	if _, err := s.GetUpload(ctx, ns, id, raftmeta.ReadOptions{}); !errors.Is(err, raftmeta.ErrNotFound) {
		t.Fatalf("upload after finish: %v", err)
	}
	// Its blocks are now referenced content of the namespace (only).
	refs := []raftmeta.Sum{sum("one"), sum("two"), sum("three"), sum("x"), sum("four")}
	if r, err := s.Referenced(ctx, ns, refs, raftmeta.ReadOptions{}); err != nil || fmt.Sprint(r) != "[true true true true false]" {
		t.Fatalf("Referenced = %v, %v", r, err)
	}
	if r, err := s.Referenced(ctx, other, refs, raftmeta.ReadOptions{}); err != nil || fmt.Sprint(r) != "[false false false false false]" {
		t.Fatalf("Referenced in another namespace = %v, %v", r, err)
	}

	// Expiry by the shard's clock, then prune.
	if _, err := s.CreateUpload(ctx, "c2", ns, id, "/later", nil, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := s.AppendUpload(ctx, "a4", ns, id, 0, blocks[:1], nil); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteUpload(ctx, "d0", ns, "ffffffffffffffffffffffffffffffff"); !errors.Is(err, raftmeta.ErrNotFound) {
		t.Fatalf("DeleteUpload of an unknown upload: %v", err)
	}
	clock.Add(raftmeta.UploadTTL)
	if _, err := s.GetUpload(ctx, ns, id, raftmeta.ReadOptions{}); !errors.Is(err, raftmeta.ErrNotFound) {
		t.Fatalf("GetUpload after expiry: %v", err)
	}
	if _, err := s.AppendUpload(ctx, "a5", ns, id, 3, blocks[1:2], nil); !errors.Is(err, raftmeta.ErrNotFound) {
		t.Fatalf("AppendUpload after expiry: %v", err)
	}
	pr, err := s.Prune(ctx)
	if err != nil || pr.Uploads != 1 {
		t.Fatalf("Prune = %+v, %v; want 1 upload", pr, err)
	}

	// Delete.
	if _, err := s.CreateUpload(ctx, "c3", ns, id, "/x", nil, nil); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteUpload(ctx, "d1", ns, id); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteUpload(ctx, "d1", ns, id); err != nil {
		t.Fatalf("retried DeleteUpload: %v", err)
	}

	// A request ID is not reused across kinds of commands: the stored
	// result of the other command is not passed off as this one's.
	if _, err := s.CreateUpload(ctx, "f2", ns, id, "/y", nil, nil); !errors.Is(err, raftmeta.ErrInvalidArgument) {
		t.Errorf("CreateUpload with a commit's request ID: %v, want ErrInvalidArgument", err)
	}
	if _, err := s.Commit(ctx, raftmeta.CommitRequest{RequestID: "c3", Namespace: ns, Ops: []raftmeta.Op{putOp("/z", "z")}}); !errors.Is(err, raftmeta.ErrInvalidArgument) {
		t.Errorf("Commit with an upload's request ID: %v, want ErrInvalidArgument", err)
	}

	// Bad input is refused before it is proposed.
	before := s.FSM().AppliedIndex()
	big := make([]byte, raftmeta.MaxUploadStateBytes+1)
	bad := []struct {
		name string
		call func() error
		want error
	}{
		{"bad ID", func() error { _, err := s.CreateUpload(ctx, "b1", ns, "xyz", "/f", nil, nil); return err }, raftmeta.ErrInvalidArgument},
		{"no request ID", func() error { _, err := s.CreateUpload(ctx, "", ns, id, "/f", nil, nil); return err }, raftmeta.ErrInvalidArgument},
		{"big state", func() error { _, err := s.CreateUpload(ctx, "b2", ns, id, "/f", big, nil); return err }, raftmeta.ErrInvalidArgument},
		{"big meta", func() error { _, err := s.CreateUpload(ctx, "b3", ns, id, "/f", nil, big); return err }, raftmeta.ErrInvalidArgument},
		{"invalid UTF-8 path", func() error { _, err := s.CreateUpload(ctx, "b4", ns, id, "/\xff", nil, nil); return err }, raftmeta.ErrInvalidPath},
		{"negative offset", func() error { _, err := s.AppendUpload(ctx, "b5", ns, id, -1, nil, nil); return err }, raftmeta.ErrInvalidArgument},
		{"empty block", func() error {
			_, err := s.AppendUpload(ctx, "b6", ns, id, 0, []raftmeta.Block{{Ref: sum("a")}}, nil)
			return err
		}, raftmeta.ErrInvalidArgument},
		{"append big state", func() error { _, err := s.AppendUpload(ctx, "b7", ns, id, 0, nil, big); return err }, raftmeta.ErrInvalidArgument},
		{"delete bad ID", func() error { return s.DeleteUpload(ctx, "b8", ns, id[1:]) }, raftmeta.ErrInvalidArgument},
		{"get bad ID", func() error { _, err := s.GetUpload(ctx, ns, "", raftmeta.ReadOptions{}); return err }, raftmeta.ErrInvalidArgument},
		{"commit bad upload ID", func() error {
			_, err := s.Commit(ctx, raftmeta.CommitRequest{RequestID: "b9", Namespace: ns, Upload: "X", Ops: []raftmeta.Op{finish}})
			return err
		}, raftmeta.ErrInvalidArgument},
	}
	for _, tc := range bad {
		if err := tc.call(); !errors.Is(err, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.want)
		}
	}
	if got := s.FSM().AppliedIndex(); got != before {
		t.Errorf("refused input reached the log: applied index %d -> %d", before, got)
	}
	converge(t, c)
}

// TestShardNamespaceUsersReferenced covers the Namespace, Users and
// Referenced reads.
func TestShardNamespaceUsersReferenced(t *testing.T) {
	c := metatest.New(t, metatest.Options{})
	var users []*raftmeta.User
	for _, name := range []string{"Erin", "dave", "carol", "Bob", "alice"} {
		users = append(users, createUser(t, c, name))
	}
	s := mustLeader(t, c)
	ctx := context.Background()
	if err := s.DeleteUser(ctx, "del-carol", "carol"); err != nil {
		t.Fatal(err)
	}
	alice := users[4]
	if _, err := s.Commit(ctx, raftmeta.CommitRequest{RequestID: "p1", Namespace: alice.Namespace, Ops: []raftmeta.Op{putOp("/a", "aaa"), putOp("/b", "bbbb")}}); err != nil {
		t.Fatal(err)
	}

	n, err := s.Namespace(ctx, alice.Namespace, raftmeta.ReadOptions{})
	if err != nil || n.ID != alice.Namespace || n.Owner != alice.ID || n.Used != 7 || n.Files != 2 || n.Head != 1 {
		t.Fatalf("Namespace = %+v, %v", n, err)
	}
	for _, id := range []uint64{users[2].Namespace, 999999} {
		if _, err := s.Namespace(ctx, id, raftmeta.ReadOptions{}); !errors.Is(err, raftmeta.ErrNotFound) {
			t.Errorf("Namespace(%d) = %v, want ErrNotFound", id, err)
		}
	}

	// Users in folded-name order, deleted ones left out, no hashes, in
	// pages of every size.
	want := []string{"alice", "Bob", "dave", "Erin"}
	for limit := 0; limit <= 5; limit++ {
		var names []string
		tok := ""
		for pages := 0; ; pages++ {
			if pages > 10 {
				t.Fatalf("limit %d: the listing does not end", limit)
			}
			p, err := s.Users(ctx, raftmeta.UsersOptions{Limit: limit, PageToken: tok})
			if err != nil {
				t.Fatal(err)
			}
			for _, u := range p.Users {
				if u.PasswordHash != "" || u.Deleted {
					t.Fatalf("listed user %+v", u)
				}
				names = append(names, u.Name)
			}
			if p.NextPageToken == "" {
				break
			}
			tok = p.NextPageToken
		}
		if fmt.Sprint(names) != fmt.Sprint(want) {
			t.Errorf("limit %d: users %v, want %v", limit, names, want)
		}
	}
	if _, err := s.Users(ctx, raftmeta.UsersOptions{PageToken: "!!"}); !errors.Is(err, raftmeta.ErrInvalidArgument) {
		t.Errorf("bad page token: %v", err)
	}

	// Referenced.
	refs := []raftmeta.Sum{sum("aaa"), sum("ccc"), sum("bbbb")}
	if r, err := s.Referenced(ctx, alice.Namespace, refs, raftmeta.ReadOptions{}); err != nil || fmt.Sprint(r) != "[true false true]" {
		t.Errorf("Referenced = %v, %v", r, err)
	}
	if r, err := s.Referenced(ctx, alice.Namespace, nil, raftmeta.ReadOptions{}); err != nil || len(r) != 0 {
		t.Errorf("Referenced of nothing = %v, %v", r, err)
	}
	if _, err := s.Referenced(ctx, 999999, refs, raftmeta.ReadOptions{}); !errors.Is(err, raftmeta.ErrNotFound) {
		t.Errorf("Referenced in an unknown namespace: %v", err)
	}
	if r, err := s.Referenced(ctx, alice.Namespace, make([]raftmeta.Sum, raftmeta.MaxRefsPerQuery), raftmeta.ReadOptions{}); err != nil || len(r) != raftmeta.MaxRefsPerQuery {
		t.Errorf("Referenced of MaxRefsPerQuery refs: %d answers, %v", len(r), err)
	}
	if _, err := s.Referenced(ctx, alice.Namespace, make([]raftmeta.Sum, raftmeta.MaxRefsPerQuery+1), raftmeta.ReadOptions{}); !errors.Is(err, raftmeta.ErrInvalidArgument) {
		t.Errorf("Referenced of too many refs: %v", err)
	}
	// A follower answers stale reads from its own state.
	idx := s.FSM().AppliedIndex()
	for i := 0; i < c.Len(); i++ {
		wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		err := c.Shard(i).WaitApplied(wctx, idx)
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		if r, err := c.Shard(i).Referenced(ctx, alice.Namespace, refs, raftmeta.ReadOptions{Stale: true}); err != nil || fmt.Sprint(r) != "[true false true]" {
			t.Errorf("replica %d: stale Referenced = %v, %v", i, r, err)
		}
	}
	converge(t, c)
}
