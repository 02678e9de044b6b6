package raftmeta_test

import (
	"context"
	"crypto/sha256"
	"testing"
	"time"

	"github.com/coffer-dev/coffer/raftmeta"
	"github.com/coffer-dev/coffer/raftmeta/metatest"
)

func TestSmoke(t *testing.T) {
	c := metatest.New(t, metatest.Options{})
	s, err := c.LeaderShard(10 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	u, err := s.CreateUser(ctx, raftmeta.CreateUserRequest{RequestID: "u1", Name: "alice", Password: "pw"})
	if err != nil {
		t.Fatal(err)
	}
	data := []byte("hello")
	sum := sha256.Sum256(data)
	res, err := s.Commit(ctx, raftmeta.CommitRequest{RequestID: "c1", Namespace: u.Namespace, Ops: []raftmeta.Op{
		{Kind: raftmeta.OpPut, Path: "/docs/a.txt", Size: 5, Hash: sum, Blocks: []raftmeta.Block{{Ref: sum, Size: 5}}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("commit %+v", res)
	e, err := s.Stat(ctx, u.Namespace, raftmeta.Target{Path: "/DOCS/A.TXT"}, raftmeta.StatOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("stat %+v", e)
	if _, err := c.WaitConverged(ctx); err != nil {
		t.Fatal(err)
	}
}
