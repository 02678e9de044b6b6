package raftgroup

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"testing"
)

var testMagic = []byte("COFFERTEST1\n")

type rec struct{ key, val string }

func writeTest(t *testing.T, applied uint64, recs []rec) []byte {
	t.Helper()
	var buf bytes.Buffer
	err := WriteSnapshot(&buf, testMagic, applied, func(w io.Writer) (uint64, error) {
		for _, r := range recs {
			if err := WriteRecord(w, []byte(r.key), []byte(r.val)); err != nil {
				return 0, err
			}
		}
		return uint64(len(recs)), nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// readTest reads a whole stream; strict also asks for EOF after it.
func readTest(data []byte, prefix []byte, maxValue uint64, strict bool) (uint64, []rec, error) {
	sr, err := NewSnapshotReader(bytes.NewReader(data), testMagic, "test snapshot", maxValue)
	if err != nil {
		return 0, nil, err
	}
	var out []rec
	for {
		k, v, err := sr.Next(prefix)
		if err != nil {
			return 0, nil, err
		}
		if k == nil {
			break
		}
		out = append(out, rec{string(k), string(v)})
	}
	if err := sr.Finish(); err != nil {
		return 0, nil, err
	}
	if strict {
		if err := sr.ExpectEOF(); err != nil {
			return 0, nil, err
		}
	}
	return sr.Applied(), out, nil
}

func TestSnapshotRoundTrip(t *testing.T) {
	recs := []rec{{"a", "1"}, {"b", ""}, {"c", string(bytes.Repeat([]byte{0xfe}, 70000))}}
	data := writeTest(t, 77, recs)
	// The framing is fixed: header, records, end mark, count, checksum.
	if !bytes.Equal(data[:MagicLen], testMagic) || binary.BigEndian.Uint64(data[MagicLen:]) != 77 {
		t.Fatalf("header %q", data[:MagicLen+8])
	}
	if sum := sha256.Sum256(data[:len(data)-sha256.Size]); !bytes.Equal(sum[:], data[len(data)-sha256.Size:]) {
		t.Fatal("the stream does not end in the SHA-256 of the rest")
	}
	if n := binary.BigEndian.Uint64(data[len(data)-sha256.Size-8:]); n != 3 {
		t.Fatalf("trailer count %d, want 3", n)
	}
	idx, err := ReadSnapshotIndex(bytes.NewReader(data), testMagic, "test snapshot")
	if err != nil || idx != 77 {
		t.Fatalf("ReadSnapshotIndex = %d, %v", idx, err)
	}
	applied, got, err := readTest(data, []byte("P"), 1<<20, true)
	if err != nil {
		t.Fatal(err)
	}
	if applied != 77 || len(got) != len(recs) {
		t.Fatalf("read %d records at %d, want %d at 77", len(got), applied, len(recs))
	}
	for i, r := range recs {
		if got[i].key != "P"+r.key || got[i].val != r.val {
			t.Errorf("record %d = %q (%d bytes), want %q with the prefix", i, got[i].key, len(got[i].val), r.key)
		}
	}
	// An empty state (no records) round-trips too.
	if applied, got, err := readTest(writeTest(t, 1, nil), nil, 10, true); err != nil || applied != 1 || len(got) != 0 {
		t.Fatalf("empty: %d records at %d, %v", len(got), applied, err)
	}
}

func TestSnapshotBadStreams(t *testing.T) {
	data := writeTest(t, 9, []rec{{"k1", "v1"}, {"k2", "value two"}})
	n := len(data)
	flip := func(i int) []byte { b := bytes.Clone(data); b[i] ^= 0x01; return b }
	// A stream with a wrong count: records rewritten, count and checksum
	// consistent with the bytes but not with the records.
	var wrongCount bytes.Buffer
	WriteSnapshot(&wrongCount, testMagic, 9, func(w io.Writer) (uint64, error) {
		return 5, WriteRecord(w, []byte("k"), []byte("v"))
	})
	tests := []struct {
		name   string
		data   []byte
		max    uint64
		strict bool
		want   string
	}{
		{"empty", nil, 1 << 20, false, "header"},
		{"short header", data[:10], 1 << 20, false, "header"},
		{"magic", append([]byte("NOTASNAPSHOT"), data[MagicLen:]...), 1 << 20, false, "not a test snapshot"},
		{"cut in a record", data[:MagicLen+8+3], 1 << 20, false, ""},
		{"cut before the trailer", data[:n-sha256.Size-8], 1 << 20, false, "trailer"},
		{"cut in the checksum", data[:n-5], 1 << 20, false, "checksum"},
		{"flip in a key", flip(MagicLen + 8 + 1), 1 << 20, false, "checksum mismatch"},
		{"flip in the index", flip(MagicLen + 7), 1 << 20, false, "checksum mismatch"},
		{"flip in the checksum", flip(n - 1), 1 << 20, false, "checksum mismatch"},
		{"wrong count", wrongCount.Bytes(), 1 << 20, false, "1 records, trailer says 5"},
		{"value over the limit", data, 3, false, "value length"},
		{"bytes after the checksum", append(bytes.Clone(data), 0), 1 << 20, true, "bytes after the checksum"},
	}
	for _, tt := range tests {
		_, _, err := readTest(tt.data, nil, tt.max, tt.strict)
		if !errors.Is(err, ErrBadSnapshot) {
			t.Errorf("%s: %v, want ErrBadSnapshot", tt.name, err)
			continue
		}
		if !bytes.Contains([]byte(err.Error()), []byte(tt.want)) {
			t.Errorf("%s: %q does not mention %q", tt.name, err, tt.want)
		}
	}
	// Without ExpectEOF, bytes after the checksum are not looked at.
	if _, _, err := readTest(append(bytes.Clone(data), 0), nil, 1<<20, false); err != nil {
		t.Errorf("lenient read of a stream with a tail: %v", err)
	}
	// A huge key length is refused before anything is allocated.
	huge := append(append(bytes.Clone(data[:MagicLen+8]), binary.AppendUvarint(nil, MaxSnapshotKey+1)...), 'x')
	if _, _, err := readTest(huge, nil, 1<<20, false); !errors.Is(err, ErrBadSnapshot) || !bytes.Contains([]byte(err.Error()), []byte("key of")) {
		t.Errorf("huge key: %v", err)
	}
}

func TestSnapshotReaderFinishEarly(t *testing.T) {
	data := writeTest(t, 3, []rec{{"k", "v"}})
	sr, err := NewSnapshotReader(bytes.NewReader(data), testMagic, "test snapshot", 10)
	if err != nil {
		t.Fatal(err)
	}
	if err := sr.Finish(); !errors.Is(err, ErrBadSnapshot) {
		t.Fatalf("Finish before the end mark: %v", err)
	}
}

func TestWriteSnapshotRefuses(t *testing.T) {
	body := func(io.Writer) (uint64, error) { return 0, nil }
	if err := WriteSnapshot(io.Discard, testMagic, 0, body); !errors.Is(err, ErrBadSnapshot) {
		t.Errorf("applied 0: %v", err)
	}
	if err := WriteSnapshot(io.Discard, []byte("SHORT"), 1, body); !errors.Is(err, ErrBadSnapshot) {
		t.Errorf("short magic: %v", err)
	}
	boom := errors.New("boom")
	if err := WriteSnapshot(io.Discard, testMagic, 1, func(io.Writer) (uint64, error) { return 0, boom }); !errors.Is(err, boom) {
		t.Errorf("records error: %v", err)
	}
	if err := WriteSnapshot(failWriter{}, testMagic, 1, body); err == nil {
		t.Error("a failing writer went unnoticed")
	}
}

type failWriter struct{}

func (failWriter) Write([]byte) (int, error) { return 0, fmt.Errorf("disk full") }
