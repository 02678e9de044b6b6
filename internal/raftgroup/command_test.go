package raftgroup

import (
	"strings"
	"testing"
)

type testCmd struct {
	Type uint8  `json:"t"`
	RID  string `json:"rid,omitempty"`
	Time int64  `json:"time"`
}

func TestCommandRoundTrip(t *testing.T) {
	in := testCmd{Type: 3, RID: "r-1", Time: 42}
	b, err := EncodeCommand(&in)
	if err != nil {
		t.Fatal(err)
	}
	if b[0] != CommandVersion || string(b[1:]) != `{"t":3,"rid":"r-1","time":42}` {
		t.Fatalf("encoded %q", b)
	}
	var out testCmd
	if err := DecodeCommand(b, &out); err != nil || out != in {
		t.Fatalf("decoded %+v (%v), want %+v", out, err, in)
	}
}

func TestDecodeCommandRefuses(t *testing.T) {
	tests := []struct {
		name string
		in   []byte
		want string
	}{
		{"empty", nil, "unknown command encoding"},
		{"other version", []byte{CommandVersion + 1, '{', '}'}, "unknown command encoding"},
		{"no version", []byte(`{"t":1}`), "unknown command encoding"},
		{"bad json", []byte{CommandVersion, '{'}, "decode command: "},
		{"wrong type", []byte{CommandVersion, '[', ']'}, "decode command: "},
	}
	for _, tt := range tests {
		var c testCmd
		err := DecodeCommand(tt.in, &c)
		if err == nil || !strings.HasPrefix(err.Error(), tt.want) {
			t.Errorf("%s: %v, want %q", tt.name, err, tt.want)
		}
	}
	if _, err := EncodeCommand(func() {}); err == nil {
		t.Error("encoding a func succeeded")
	}
}
