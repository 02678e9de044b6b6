package blocktest

import (
	"bytes"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/coffer-dev/coffer/blockstore"
)

func TestRandomBlock(t *testing.T) {
	for _, size := range []int{0, 1, 7, 8, 9, 1000, 65536} {
		ref, data := RandomBlock(rand.New(rand.NewPCG(1, 2)), size)
		if len(data) != size {
			t.Fatalf("RandomBlock(%d) returned %d bytes", size, len(data))
		}
		if err := ref.Verify(data); err != nil {
			t.Fatalf("RandomBlock(%d): %v", size, err)
		}
		ref2, data2 := RandomBlock(rand.New(rand.NewPCG(1, 2)), size)
		if ref2 != ref || !bytes.Equal(data, data2) {
			t.Fatalf("RandomBlock(%d) differs for the same seed", size)
		}
		if size >= 8 {
			if bytes.Count(data, data[:1]) == size {
				t.Fatalf("RandomBlock(%d) returned %d equal bytes", size, size)
			}
			other, _ := RandomBlock(rand.New(rand.NewPCG(3, 4)), size)
			if other == ref {
				t.Fatalf("RandomBlock(%d) is the same for different seeds", size)
			}
		}
	}
}

func TestNextRef(t *testing.T) {
	ref := func(tail ...byte) blockstore.Ref {
		var r blockstore.Ref
		copy(r[len(r)-len(tail):], tail)
		return r
	}
	var all blockstore.Ref
	for i := range all {
		all[i] = 0xff
	}
	for _, tc := range []struct {
		name   string
		in     blockstore.Ref
		want   blockstore.Ref
		wantOK bool
	}{
		{"zero", blockstore.Ref{}, ref(1), true},
		{"last byte", ref(0x12, 0x34), ref(0x12, 0x35), true},
		{"carry", ref(0x12, 0xff), ref(0x13, 0x00), true},
		{"carries", ref(0x01, 0xff, 0xff, 0xff), ref(0x02, 0, 0, 0), true},
		{"largest", all, blockstore.Ref{}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := tc.in.Next()
			if ok != tc.wantOK || (ok && got != tc.want) {
				t.Fatalf("%s.Next() = %s, %v; want %s, %v", tc.in, got, ok, tc.want, tc.wantOK)
			}
			if ok && compareRefs(tc.in, got) >= 0 {
				t.Fatalf("%s.Next() = %s is not greater", tc.in, got)
			}
		})
	}
}

func TestSortedRefs(t *testing.T) {
	a := blockstore.Ref{1}
	b := blockstore.Ref{1, 2}
	c := blockstore.Ref{2}
	in := []blockstore.Ref{c, a, b}
	if got, want := sortedRefs(in), []blockstore.Ref{a, b, c}; !slices.Equal(got, want) {
		t.Fatalf("sortedRefs = %v, want %v", got, want)
	}
	if in[0] != c {
		t.Fatal("sortedRefs sorted its argument in place")
	}
}

func TestSeq(t *testing.T) {
	s := NewSeq(64, 1)
	refs := s.Refs(3)
	seen := map[blockstore.Ref]bool{}
	buf := make([]byte, 64)
	for i, r := range refs {
		s.Fill(buf, i)
		if blockstore.Sum(buf) != r {
			t.Fatalf("block %d does not match its ref", i)
		}
		seen[r] = true
	}
	if len(seen) != 3 {
		t.Fatal("blocks not distinct")
	}
}
