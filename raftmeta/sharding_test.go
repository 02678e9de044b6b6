package raftmeta

import (
	"errors"
	"testing"
)

func TestShardOf(t *testing.T) {
	a, err := ShardOf("Alice", 8)
	if err != nil {
		t.Fatal(err)
	}
	for _, spelling := range []string{"alice", "ALICE", "Alice"} {
		if b, _ := ShardOf(spelling, 8); b != a {
			t.Errorf("ShardOf(%q) = %d, ShardOf(Alice) = %d: spellings of one name must agree", spelling, b, a)
		}
	}
	// Stable across releases: users' data lives where this says.
	if got, _ := ShardOf("admin", 8); got != shardOfAdmin8 {
		t.Errorf("ShardOf(admin, 8) = %d, want %d (the mapping must never change)", got, shardOfAdmin8)
	}
	seen := map[uint64]int{}
	for i := range 8000 {
		g, err := ShardOf("user"+string(rune('a'+i%26))+itoa(i), 8)
		if err != nil || g < 1 || g > 8 {
			t.Fatalf("ShardOf = %d, %v", g, err)
		}
		seen[g]++
	}
	for g := uint64(1); g <= 8; g++ {
		if seen[g] < 800 || seen[g] > 1200 {
			t.Errorf("shard %d got %d of 8000 users: unbalanced", g, seen[g])
		}
	}
	if _, err := ShardOf("a b", 8); !errors.Is(err, ErrInvalidName) {
		t.Errorf("bad name: %v", err)
	}
	if _, err := ShardOf("a", 0); !errors.Is(err, ErrInvalidArgument) {
		t.Errorf("0 shards: %v", err)
	}
}

func itoa(i int) string {
	b := []byte{}
	for {
		b = append([]byte{byte('0' + i%10)}, b...)
		i /= 10
		if i == 0 {
			return string(b)
		}
	}
}

// shardOfAdmin8 pins the mapping: SHA-256("admin") mod 8, plus 1.
const shardOfAdmin8 = 6

func TestDropGroupKeepsOtherGroups(t *testing.T) {
	db, err := OpenPebble(t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for _, g := range []uint64{1, 2, 3} {
		if err := db.Set(newKeys(g).applied(), u64(7), nil); err != nil {
			t.Fatal(err)
		}
	}
	if err := DropGroup(db, 2); err != nil {
		t.Fatal(err)
	}
	for _, g := range []uint64{1, 2, 3} {
		_, closer, err := db.Get(newKeys(g).applied())
		if closer != nil {
			closer.Close()
		}
		if (err == nil) != (g != 2) {
			t.Errorf("group %d after DropGroup(2): get err %v", g, err)
		}
	}
}
