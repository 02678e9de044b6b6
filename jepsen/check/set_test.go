package check

import (
	"strings"
	"testing"
	"time"

	"github.com/coffer-dev/coffer/jepsen/history"
)

func create(key string, s history.Status) history.Op {
	return history.Op{Kind: history.KindCreate, Key: key, Status: s}
}

const (
	ok      = history.StatusOK
	fail    = history.StatusFail
	unknown = history.StatusUnknown
)

func TestSet(t *testing.T) {
	tests := []struct {
		name    string
		creates []history.Op
		final   []string
		valid   bool
		want    []string
	}{
		{"all present", []history.Op{create("/s/1", ok), create("/s/2", ok)}, []string{"/s/2", "/s/1"}, true, []string{"2 elements attempted (2 acknowledged), 2 present"}},
		{"unknown creates either way", []history.Op{create("/s/1", unknown), create("/s/2", unknown)}, []string{"/s/1"}, true, []string{"unknown creates: 1 present, 1 absent"}},
		{"failed create absent", []history.Op{create("/s/1", fail)}, nil, true, nil},
		{"retry after a failure", []history.Op{create("/s/1", fail), create("/s/1", ok)}, []string{"/s/1"}, true, nil},
		{"empty", nil, nil, true, nil},

		{"lost create", []history.Op{create("/s/1", ok), create("/s/2", ok)}, []string{"/s/1"}, false, []string{`lost: "/s/2"`, "1 lost"}},
		{"failed create present", []history.Op{create("/s/1", fail)}, []string{"/s/1"}, false, []string{`"/s/1" is present but every create of it failed`}},
		{"unexpected element", []history.Op{create("/s/1", ok)}, []string{"/s/1", "/s/zz"}, false, []string{`unexpected: "/s/zz" is present but was never created`}},
		{"listed twice", []history.Op{create("/s/1", ok)}, []string{"/s/1", "/s/1"}, false, []string{`duplicate: "/s/1" is listed 2 times`}},
		{"bad status", []history.Op{create("/s/1", "odd")}, []string{"/s/1"}, false, []string{"malformed"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			expect(t, Set(tc.creates, tc.final), tc.valid, tc.want...)
		})
	}
}

func upload(key, sum string, call, ret int, s history.Status) history.Op {
	o := history.Op{Kind: history.KindUpload, Key: key, Call: time.Duration(call) * ms, Status: s}
	if s != unknown {
		o.Return = time.Duration(ret) * ms
	}
	if sum != "" {
		o.Input = mustJSON(history.UploadInput{SHA256: sum})
	}
	return o
}

var (
	hA = strings.Repeat("a", 64)
	hB = strings.Repeat("b", 64)
	hC = strings.Repeat("c", 64)
)

func TestBytes(t *testing.T) {
	tests := []struct {
		name    string
		uploads []history.Op
		final   map[string]string
		valid   bool
		want    []string
	}{
		{"identical", []history.Op{upload("/u/1", hA, 0, 1, ok)}, map[string]string{"/u/1": hA}, true, []string{"1 match"}},
		{"hash case does not matter", []history.Op{upload("/u/1", strings.ToUpper(hA), 0, 1, ok)}, map[string]string{"/u/1": hA}, true, nil},
		{"unknown upload absent", []history.Op{upload("/u/1", hA, 0, 0, unknown)}, map[string]string{}, true, []string{"1 absent without an ok upload"}},
		{"unknown upload present", []history.Op{upload("/u/1", hA, 0, 0, unknown)}, map[string]string{"/u/1": hA}, true, nil},
		{"failed upload absent", []history.Op{upload("/u/1", hA, 0, 1, fail)}, nil, true, nil},
		{"concurrent uploads: either wins", []history.Op{upload("/u/1", hA, 0, 5, ok), upload("/u/1", hB, 1, 6, ok)}, map[string]string{"/u/1": hA}, true, nil},
		{"later unknown upload may win", []history.Op{upload("/u/1", hA, 0, 1, ok), upload("/u/1", hB, 2, 0, unknown)}, map[string]string{"/u/1": hB}, true, nil},

		{"torn upload", []history.Op{upload("/u/1", hA, 0, 1, ok)}, map[string]string{"/u/1": hC}, false, []string{`torn or corrupt: "/u/1" holds ` + hC}},
		{"torn unknown upload", []history.Op{upload("/u/1", hA, 0, 0, unknown)}, map[string]string{"/u/1": hC}, false, []string{"torn or corrupt"}},
		{"lost upload", []history.Op{upload("/u/1", hA, 0, 1, ok)}, map[string]string{}, false, []string{`lost: "/u/1"`}},
		{"failed upload visible", []history.Op{upload("/u/1", hA, 0, 1, fail)}, map[string]string{"/u/1": hA}, false, []string{"failed upload visible"}},
		{"stale content", []history.Op{upload("/u/1", hA, 0, 1, ok), upload("/u/1", hB, 2, 3, ok)}, map[string]string{"/u/1": hA}, false, []string{`stale: "/u/1"`}},
		{"unexpected file", []history.Op{upload("/u/1", hA, 0, 1, ok)}, map[string]string{"/u/1": hA, "/u/9": hB}, false, []string{`unexpected: "/u/9"`}},
		{"upload without a hash", []history.Op{upload("/u/1", "", 0, 1, ok)}, map[string]string{"/u/1": hA}, false, []string{"malformed"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			expect(t, Bytes(tc.uploads, tc.final), tc.valid, tc.want...)
		})
	}
}
