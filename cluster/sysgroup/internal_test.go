package sysgroup

import (
	"bytes"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/coffer-dev/coffer/raftmeta"
	"github.com/hashicorp/raft"
)

func TestCheckTransition(t *testing.T) {
	states := []NodeState{"", NodeActive, NodeRemoving, NodeRemoved}
	allowed := map[[2]NodeState]bool{
		{"", NodeActive}:             true,
		{NodeActive, NodeActive}:     true,
		{NodeActive, NodeRemoving}:   true,
		{NodeRemoving, NodeRemoving}: true,
		{NodeRemoving, NodeRemoved}:  true,
		{NodeRemoved, NodeRemoved}:   true,
	}
	for _, from := range states {
		for _, to := range append(states, "bogus") {
			err := checkTransition(from, to)
			if allowed[[2]NodeState{from, to}] {
				if err != nil {
					t.Errorf("%q -> %q: %v, want allowed", from, to, err)
				}
			} else if !errors.Is(err, ErrInvalidArgument) {
				t.Errorf("%q -> %q: %v, want ErrInvalidArgument", from, to, err)
			}
		}
	}
}

func TestCheckInfo(t *testing.T) {
	key := make([]byte, SigningKeyLen)
	tests := []struct {
		name string
		in   Info
		want []string
	}{
		{"valid", Info{ClusterID: "c", Shards: 1, SigningKey: key}, nil},
		{"max", Info{ClusterID: strings.Repeat("c", 64), Shards: 1024, SigningKey: key}, nil},
		{"all wrong", Info{ClusterID: strings.Repeat("c", 65), Shards: 0, SigningKey: key[:16], AdminCreated: true},
			[]string{"ClusterID is 65 bytes", "Shards 0", "SigningKey is 16 bytes", "AdminCreated"}},
		{"empty id", Info{Shards: 1, SigningKey: key}, []string{"ClusterID is required"}},
		{"bad utf8", Info{ClusterID: "\xff", Shards: 1, SigningKey: key}, []string{"UTF-8"}},
		{"too many shards", Info{ClusterID: "c", Shards: 1025, SigningKey: key}, []string{"Shards 1025"}},
		{"long key", Info{ClusterID: "c", Shards: 1, SigningKey: make([]byte, 33)}, []string{"SigningKey is 33"}},
	}
	for _, tt := range tests {
		err := checkInfo(&tt.in)
		if tt.want == nil {
			if err != nil {
				t.Errorf("%s: %v", tt.name, err)
			}
			continue
		}
		if !errors.Is(err, ErrInvalidArgument) {
			t.Errorf("%s: %v, want ErrInvalidArgument", tt.name, err)
			continue
		}
		for _, w := range tt.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s: %q does not mention %q", tt.name, err, w)
			}
		}
	}
}

func TestCheckNameAndSetting(t *testing.T) {
	for _, tt := range []struct {
		name string
		ok   bool
	}{
		{"a", true}, {strings.Repeat("n", 63), true}, {"", false}, {strings.Repeat("n", 64), false}, {"\xff", false},
	} {
		if err := checkName(tt.name); (err == nil) != tt.ok || (err != nil && !errors.Is(err, ErrInvalidArgument)) {
			t.Errorf("checkName(%q) = %v", tt.name, err)
		}
	}
	for _, tt := range []struct {
		key, value string
		ok         bool
	}{
		{"block.replicas", "3", true}, {"k", "", true}, {"k", strings.Repeat("v", 4096), true},
		{"", "v", false}, {"a key", "v", false}, {strings.Repeat("k", 129), "v", false},
		{"k", strings.Repeat("v", 4097), false}, {"k", "\xff", false},
	} {
		if err := checkSetting(tt.key, tt.value); (err == nil) != tt.ok || (err != nil && !errors.Is(err, ErrInvalidArgument)) {
			t.Errorf("checkSetting(%q, %d bytes) = %v", tt.key, len(tt.value), err)
		}
	}
}

func TestKeysDoNotCollide(t *testing.T) {
	k0, k1 := newKeys(0), newKeys(1)
	lo, hi := k0.Bounds()
	for _, key := range [][]byte{k1.applied(), k1.info(), k1.node("a"), []byte("g\x00\x00\x00\x00\x00\x00\x00\x00a")} {
		if bytes.Compare(key, lo) >= 0 && bytes.Compare(key, hi) < 0 {
			t.Errorf("key %q of another group is inside group 0's range", key)
		}
	}
	for _, key := range [][]byte{k0.applied(), k0.node("\xff\xff"), k0.dedupQ(^uint64(0), "r")} {
		if bytes.Compare(key, lo) < 0 || bytes.Compare(key, hi) >= 0 {
			t.Errorf("key %q of group 0 is outside its range", key)
		}
	}
}

// TestSnapshotRoundTrip applies commands to a state machine directly,
// snapshots it, restores the snapshot into a second DB and checks a damaged
// stream is refused without touching the state.
func TestSnapshotRoundTrip(t *testing.T) {
	open := func() *pebble.DB {
		db, err := raftmeta.OpenPebble(filepath.Join(t.TempDir(), "state"), nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		return db
	}
	src, dst := open(), open()
	f, err := newFSM(src, 0, DedupLimit, discard())
	if err != nil {
		t.Fatal(err)
	}
	cmds := []*command{
		{Type: cmdInit, RequestID: "i", Init: &Info{ClusterID: "c", Shards: 2, SigningKey: make([]byte, 32)}},
		{Type: cmdSetNodeState, RequestID: "n", Node: &setNodeCmd{Name: "a", State: NodeActive}},
		{Type: cmdSetSetting, RequestID: "s", Setting: &setSettingCmd{Key: "k", Value: "v"}},
	}
	for i, c := range cmds {
		c.Time = time.Date(2030, 1, 1, 0, 0, i, 0, time.UTC).UnixNano()
		data, err := encodeCommand(c)
		if err != nil {
			t.Fatal(err)
		}
		res, ok := f.Apply(&raft.Log{Index: uint64(i + 1), Type: raft.LogCommand, Data: data}).(*result)
		if !ok || res.err() != nil {
			t.Fatalf("apply %d: %+v", i, res)
		}
	}
	// An undecodable entry is refused, but still advances the applied index.
	res := f.Apply(&raft.Log{Index: 4, Type: raft.LogCommand, Data: []byte{9, '{'}}).(*result)
	if !errors.Is(res.err(), ErrInvalidArgument) || f.p.Applied() != 4 {
		t.Fatalf("bad entry: %v, applied %d", res.err(), f.p.Applied())
	}
	var buf bytes.Buffer
	if err := writeSnapshot(&buf, src, f.k); err != nil {
		t.Fatal(err)
	}
	want, wantIdx, err := stateHash(src, f.k)
	if err != nil {
		t.Fatal(err)
	}
	stream := buf.Bytes()

	// Damaged streams: nothing is written.
	flipped := bytes.Clone(stream)
	flipped[len(flipped)/2] ^= 1
	for name, bad := range map[string][]byte{
		"flipped":   flipped,
		"truncated": stream[:len(stream)-1],
		"empty":     nil,
		"magic":     append([]byte("NOTASNAPSHOT"), stream[12:]...),
	} {
		if _, err := restoreSnapshot(dst, f.k, bytes.NewReader(bad)); !errors.Is(err, errBadSnapshot) {
			t.Errorf("%s: %v, want errBadSnapshot", name, err)
		}
		if idx, err := getU64(dst, f.k.applied()); err != nil || idx != 0 {
			t.Fatalf("%s: a bad snapshot left applied index %d (%v)", name, idx, err)
		}
	}

	g, err := newFSM(dst, 0, DedupLimit, discard())
	if err != nil {
		t.Fatal(err)
	}
	if err := g.Restore(nopCloser{bytes.NewReader(stream)}); err != nil {
		t.Fatal(err)
	}
	got, gotIdx, err := stateHash(dst, g.k)
	if err != nil {
		t.Fatal(err)
	}
	if got != want || gotIdx != wantIdx || g.p.Applied() != 4 {
		t.Fatalf("restored hash %x at %d (fsm %d), want %x at %d", got[:8], gotIdx, g.p.Applied(), want[:8], wantIdx)
	}
	// A replay of an entry the snapshot covers is skipped.
	data, _ := encodeCommand(&command{Type: cmdSetSetting, RequestID: "s2", Setting: &setSettingCmd{Key: "k", Value: "x"}})
	g.Apply(&raft.Log{Index: 3, Type: raft.LogCommand, Data: data})
	if g.p.Skipped() != 1 || g.executed.Load() != 0 {
		t.Fatalf("replayed entry: skipped %d, executed %d", g.p.Skipped(), g.executed.Load())
	}
}

type nopCloser struct{ *bytes.Reader }

func (nopCloser) Close() error { return nil }
