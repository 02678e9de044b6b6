package raftmeta_test

import (
	"context"
	"crypto/sha256"
	"errors"
	"testing"

	"github.com/coffer-dev/coffer/raftmeta"
	"github.com/coffer-dev/coffer/raftmeta/metatest"
)

// A commit with a block check names only blocks its namespace references
// when it applies, or blocks vouched for with their size.
func TestCommitBlockCheck(t *testing.T) {
	c := metatest.New(t, metatest.Options{Replicas: 1})
	u := createUser(t, c, "bea")
	other := createUser(t, c, "otto")
	s := mustLeader(t, c)
	ctx := context.Background()
	blk := func(b byte) raftmeta.Block { return raftmeta.Block{Ref: sha256.Sum256([]byte{b}), Size: 1} }
	put := func(path string, b raftmeta.Block) raftmeta.Op {
		return raftmeta.Op{Kind: raftmeta.OpPut, Path: path, Size: b.Size, Hash: raftmeta.Sum(b.Ref), Blocks: []raftmeta.Block{b}}
	}
	n := 0
	commit := func(ns uint64, check *raftmeta.BlockCheck, ops ...raftmeta.Op) error {
		n++
		_, err := s.Commit(ctx, raftmeta.CommitRequest{RequestID: "bc-" + string(rune('a'+n)), Namespace: ns, Ops: ops, Check: check})
		return err
	}
	a, b := blk(1), blk(2)
	for _, tc := range []struct {
		name  string
		ns    uint64
		check *raftmeta.BlockCheck
		ops   []raftmeta.Op
		want  error
	}{
		{"unreferenced, not vouched", u.Namespace, &raftmeta.BlockCheck{}, []raftmeta.Op{put("/x", a)}, raftmeta.ErrNotFound},
		{"vouched with another size", u.Namespace, &raftmeta.BlockCheck{Vouched: []raftmeta.Block{{Ref: a.Ref, Size: 2}}}, []raftmeta.Op{put("/x", a)}, raftmeta.ErrInvalidArgument},
		{"vouched", u.Namespace, &raftmeta.BlockCheck{Vouched: []raftmeta.Block{a}}, []raftmeta.Op{put("/x", a)}, nil},
		{"referenced by the namespace now", u.Namespace, &raftmeta.BlockCheck{}, []raftmeta.Op{put("/y", a)}, nil},
		{"referenced by another namespace only", other.Namespace, &raftmeta.BlockCheck{}, []raftmeta.Op{put("/x", a)}, raftmeta.ErrNotFound},
		{"an earlier op of the batch vouched it", u.Namespace, &raftmeta.BlockCheck{Vouched: []raftmeta.Block{b}}, []raftmeta.Op{put("/b1", b), put("/b2", b)}, nil},
		{"no check (a gateway's own blocks)", other.Namespace, nil, []raftmeta.Op{put("/z", blk(3))}, nil},
		{"a block above MaxBlockSize", u.Namespace, nil, []raftmeta.Op{{Kind: raftmeta.OpPut, Path: "/big", Size: raftmeta.MaxBlockSize + 1, Hash: raftmeta.Sum(a.Ref),
			Blocks: []raftmeta.Block{{Ref: a.Ref, Size: raftmeta.MaxBlockSize + 1}}}}, raftmeta.ErrInvalidArgument},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := commit(tc.ns, tc.check, tc.ops...)
			if (tc.want == nil) != (err == nil) || (tc.want != nil && !errors.Is(err, tc.want)) {
				t.Fatalf("commit = %v, want %v", err, tc.want)
			}
		})
	}
}
