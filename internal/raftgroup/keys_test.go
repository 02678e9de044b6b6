package raftgroup

import (
	"bytes"
	"testing"
)

func TestPrefixEnd(t *testing.T) {
	tests := []struct {
		in, want []byte
	}{
		{[]byte("a"), []byte("b")},
		{[]byte{'g', 0, 1}, []byte{'g', 0, 2}},
		{[]byte{'g', 1, 0xff}, []byte{'g', 2}},
		{[]byte{'g', 0xff, 0xff}, []byte{'h'}},
		{[]byte{0xff, 0xff}, nil},
		{nil, nil},
	}
	for _, tt := range tests {
		in := bytes.Clone(tt.in)
		got := PrefixEnd(tt.in)
		if !bytes.Equal(got, tt.want) || (got == nil) != (tt.want == nil) {
			t.Errorf("PrefixEnd(%x) = %x, want %x", tt.in, got, tt.want)
		}
		if !bytes.Equal(in, tt.in) {
			t.Errorf("PrefixEnd changed its argument to %x", tt.in)
		}
	}
}

func TestKeys(t *testing.T) {
	k := NewKeys('S', 0x0102030405060708)
	if want := []byte{'S', 1, 2, 3, 4, 5, 6, 7, 8}; !bytes.Equal(k.Prefix, want) {
		t.Fatalf("prefix %x, want %x", k.Prefix, want)
	}
	if got, want := k.Key('n', []byte("ab"), U64(9)), append(bytes.Clone(k.Prefix), 'n', 'a', 'b', 0, 0, 0, 0, 0, 0, 0, 9); !bytes.Equal(got, want) {
		t.Fatalf("Key = %x, want %x", got, want)
	}
	in := func(key, lo, hi []byte) bool { return bytes.Compare(key, lo) >= 0 && bytes.Compare(key, hi) < 0 }
	lo, hi := k.Bounds()
	tlo, thi := k.TagBounds('n')
	for _, tt := range []struct {
		name         string
		key          []byte
		inGroup, inN bool
	}{
		{"tag only", k.Key('n'), true, true},
		{"record", k.Key('n', []byte{0xff, 0xff}), true, true},
		{"other tag", k.Key('o'), true, false},
		{"tag below", k.Key('m', []byte{0xff}), true, false},
		{"next group", NewKeys('S', 0x0102030405060709).Key('a'), false, false},
		{"other kind, same group", NewKeys('g', 0x0102030405060708).Key('n'), false, false},
	} {
		if got := in(tt.key, lo, hi); got != tt.inGroup {
			t.Errorf("%s: in group range = %v, want %v", tt.name, got, tt.inGroup)
		}
		if got := in(tt.key, tlo, thi); got != tt.inN {
			t.Errorf("%s: in tag range = %v, want %v", tt.name, got, tt.inN)
		}
	}
	// Key must not alias the prefix: appending to one key leaves others alone.
	a := k.Key('a')
	_ = append(a[:len(a):len(a)], 'x')
	if !bytes.Equal(k.Key('a'), a) || len(k.Prefix) != 9 {
		t.Fatal("keys share storage with the prefix")
	}
}

func TestU64SortsAsNumbers(t *testing.T) {
	vals := []uint64{0, 1, 255, 256, 1 << 32, ^uint64(0)}
	for i := 1; i < len(vals); i++ {
		if bytes.Compare(U64(vals[i-1]), U64(vals[i])) >= 0 {
			t.Errorf("U64(%d) does not sort before U64(%d)", vals[i-1], vals[i])
		}
	}
}
