package check

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/coffer-dev/coffer/jepsen/history"
)

type tree = map[string]string

func TestConverged(t *testing.T) {
	same := tree{"a.txt": hA, "d/b.txt": hB}
	tests := []struct {
		name  string
		trees map[string]tree
		valid bool
		want  []string
	}{
		{"identical", map[string]tree{"pc1": same, "pc2": same, "server": same}, true, []string{"3 trees (pc1, pc2, server), 2 files in pc1: identical"}},
		{"two empty trees", map[string]tree{"pc1": {}, "pc2": {}}, true, nil},
		{"content differs", map[string]tree{"pc1": same, "pc2": {"a.txt": hA, "d/b.txt": hC}}, false, []string{`"d/b.txt" differs: ` + hB + ` in pc1, ` + hC + ` in pc2`}},
		{"file missing", map[string]tree{"pc1": same, "pc2": {"a.txt": hA}}, false, []string{`"d/b.txt" is in pc1 but not in pc2`}},
		{"extra file", map[string]tree{"pc1": same, "server": {"a.txt": hA, "d/b.txt": hB, "x": hC}}, false, []string{`"x" is in server but not in pc1`}},
		{"one tree", map[string]tree{"pc1": same}, false, []string{"need at least two trees"}},
		{"no trees", nil, false, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			expect(t, Converged(tc.trees), tc.valid, tc.want...)
		})
	}
}

// revs is a file's history: rev 1 holds the first hash, rev 2 the second,
// …; "-" is a deletion.
func revs(hashes ...string) []FileRev {
	out := make([]FileRev, len(hashes))
	for i, h := range hashes {
		out[i] = FileRev{Rev: uint64(i + 1), SHA256: h, Deleted: h == "-"}
	}
	return out
}

// ed is an acknowledged edit of dev writing sha to p, based on prev.
func ed(dev, p, sha, prev string) Edit { return Edit{Device: dev, Path: p, SHA256: sha, Prev: prev} }

func TestEdits(t *testing.T) {
	cc := "notes (conflicted copy pc2 2030-01-02 150405).txt"
	hD := strings.Repeat("d", 64)
	tests := []struct {
		name    string
		edits   []Edit
		trees   map[string]tree
		history map[string][]FileRev
		valid   bool
		want    []string
	}{
		{"at its path", []Edit{ed("pc1", "d/notes.txt", hA, "")}, map[string]tree{"pc1": {"d/notes.txt": hA}, "server": {"d/notes.txt": hA}}, nil, true, []string{"1 at their path"}},
		{"as a conflicted copy", []Edit{ed("pc2", "d/notes.txt", hB, "")}, map[string]tree{"pc1": {"d/notes.txt": hA, "d/" + cc: hB}}, nil, true, []string{"1 as conflicted copies"}},
		{"numbered conflicted copy", []Edit{ed("pc2", "notes.txt", hB, "")}, map[string]tree{"s": {"notes (conflicted copy my host 2030-01-02 150405 2).txt": hB}}, nil, true, nil},
		{"copy of a copy", []Edit{ed("pc2", "notes.txt", hB, "")}, map[string]tree{"s": {"notes (conflicted copy a 2030-01-02 150405) (conflicted copy b 2030-01-02 150406).txt": hB}}, nil, true, nil},
		{"dotfile copy", []Edit{ed("pc2", ".bashrc", hB, "")}, map[string]tree{"s": {".bashrc (conflicted copy a 2030-01-02 150405)": hB}}, nil, true, nil},
		{"no extension", []Edit{ed("pc2", "Makefile", hB, "")}, map[string]tree{"s": {"Makefile (conflicted copy a 2030-01-02 150405)": hB}}, nil, true, nil},
		{"superseded, in history", []Edit{ed("pc1", "notes.txt", strings.ToUpper(hA), "")}, map[string]tree{"s": {"notes.txt": hB}}, map[string][]FileRev{"notes.txt": revs(hA, hB)}, true,
			[]string{"1 only in history", "1 in their path's history: 1 directly after the revision they were based on, 0 silent overwrites"}},
		{"copy superseded, in its history", []Edit{ed("pc2", "notes.txt", hB, "")}, map[string]tree{"s": {cc: hC}}, map[string][]FileRev{cc: revs(hB, hC)}, true, nil},
		{"no edits", nil, map[string]tree{"s": {}}, nil, true, nil},
		{"deleted revisions hold no content", []Edit{ed("pc1", "notes.txt", hA, "")}, map[string]tree{"s": {}}, map[string][]FileRev{"notes.txt": {{Rev: 1, SHA256: hA, Deleted: true}}}, false, []string{"lost edit"}},

		{"lost edit", []Edit{ed("pc1", "notes.txt", hA, "")}, map[string]tree{"s": {"notes.txt": hB}}, map[string][]FileRev{"notes.txt": revs(hB)}, false,
			[]string{"lost edit: pc1 wrote " + hA + ` to "notes.txt"; in s it is`}},
		{"lost in one tree only", []Edit{ed("pc1", "notes.txt", hA, "")}, map[string]tree{"pc1": {"notes.txt": hA}, "pc2": {"notes.txt": hB}}, nil, false, []string{"in pc2 it is"}},
		{"copy in another folder does not count", []Edit{ed("pc2", "d/notes.txt", hB, "")}, map[string]tree{"s": {cc: hB}}, nil, false, []string{"lost edit"}},
		{"a name that only looks like a copy", []Edit{ed("pc2", "notes.txt", hB, "")}, map[string]tree{"s": {"notes (conflicted copy).txt": hB, "notes2.txt": hB}}, nil, false, nil},
		{"another file's history does not count", []Edit{ed("pc2", "notes.txt", hB, "")}, map[string]tree{"s": {}}, map[string][]FileRev{"other.txt": revs(hB)}, false, nil},
		{"no trees", []Edit{ed("pc1", "a", hA, "")}, nil, nil, false, []string{"no trees given"}},

		// The order of an edit's revision and the one it was based on.
		{"each edit follows the one it saw", []Edit{ed("pc1", "n.txt", hA, ""), ed("pc2", "n.txt", hB, hA), ed("pc1", "n.txt", hC, strings.ToUpper(hB))},
			map[string]tree{"s": {"n.txt": hC}}, map[string][]FileRev{"n.txt": revs(hA, hB, hC)}, true,
			[]string{"3 in their path's history: 3 directly after the revision they were based on, 0 silent overwrites"}},
		{"the other device's edit diverted to a conflicted copy", []Edit{ed("pc1", "notes.txt", hB, hA), ed("pc2", "notes.txt", hC, hA)},
			map[string]tree{"s": {"notes.txt": hB, cc: hC}}, map[string][]FileRev{"notes.txt": revs(hA, hB), cc: revs(hC)}, true,
			[]string{"1 as conflicted copies", "1 in their path's history: 1 directly after"}},
		{"a new file after a deletion", []Edit{ed("pc1", "n.txt", hB, "")}, map[string]tree{"s": {"n.txt": hB}}, map[string][]FileRev{"n.txt": revs(hA, "-", hB)}, true, nil},
		{"a change of metadata keeps the content", []Edit{ed("pc1", "n.txt", hB, hA)}, map[string]tree{"s": {"n.txt": hB}}, map[string][]FileRev{"n.txt": revs(hA, hB, hB)}, true, nil},
		{"history in any order", []Edit{ed("pc2", "n.txt", hB, hA)}, map[string]tree{"s": {"n.txt": hB}}, map[string][]FileRev{"n.txt": {{Rev: 2, SHA256: hB}, {Rev: 1, SHA256: hA}}}, true, nil},

		// A planted silent overwrite: pc2 wrote hC based on hA, over pc1's
		// hB, which it never saw. Every edit is still somewhere, so the
		// lost-edit rule alone passes it.
		{"silent overwrite", []Edit{ed("pc1", "notes.txt", hB, hA), ed("pc2", "notes.txt", hC, hA)},
			map[string]tree{"pc1": {"notes.txt": hC}, "pc2": {"notes.txt": hC}, "server": {"notes.txt": hC}}, map[string][]FileRev{"notes.txt": revs(hA, hB, hC)}, false,
			[]string{"0 lost", "1 silent overwrites", "silent overwrite: pc2 wrote " + hC + ` to "notes.txt" at rev 3 based on ` + hA + ", but rev 2 before it holds " + hB}},
		{"a new file written over an existing one", []Edit{ed("pc2", "n.txt", hB, "")}, map[string]tree{"s": {"n.txt": hB}}, map[string][]FileRev{"n.txt": revs(hA, hB)}, false,
			[]string{`at rev 2 based on no file, but rev 1 before it holds ` + hA}},
		{"based on content the file never had before", []Edit{ed("pc2", "n.txt", hB, hA)}, map[string]tree{"s": {"n.txt": hB}}, map[string][]FileRev{"n.txt": revs(hB)}, false,
			[]string{"it is the file's first revision"}},
		{"based on content, written after a deletion", []Edit{ed("pc2", "n.txt", hB, hA)}, map[string]tree{"s": {"n.txt": hB}}, map[string][]FileRev{"n.txt": revs(hA, "-", hB)}, false,
			[]string{"rev 2 before it holds a deletion"}},
		{"written again over a later edit", []Edit{ed("pc1", "n.txt", hB, hA), ed("pc2", "n.txt", hC, hB)},
			map[string]tree{"s": {"n.txt": hB}}, map[string][]FileRev{"n.txt": revs(hA, hB, hC, hB)}, false,
			[]string{"pc1's edit " + hB + ` of "n.txt" (first at rev 2) was written again at rev 4 over ` + hC + " at rev 3"}},
		{"the revision before is not kept", []Edit{ed("pc1", "n.txt", hD, hC)}, map[string]tree{"s": {"n.txt": hD}}, map[string][]FileRev{"n.txt": {{Rev: 7, SHA256: hD}}}, false,
			[]string{"1 not verifiable", "rev 6 is not in the server's history"}},
		{"a revision listed twice", nil, map[string]tree{"s": {}}, map[string][]FileRev{"n.txt": {{Rev: 1, SHA256: hA}, {Rev: 1, SHA256: hB}}}, false,
			[]string{`malformed history of "n.txt": rev 1 listed twice`}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			expect(t, Edits(tc.edits, tc.trees, tc.history), tc.valid, tc.want...)
		})
	}
}

func TestReplicas(t *testing.T) {
	tests := []struct {
		name   string
		hashes map[string]map[string]string
		valid  bool
		want   []string
	}{
		{"identical", map[string]map[string]string{"g1": {"n1": "x", "n2": "x", "n3": "x"}, "g2": {"n1": "y"}}, true, []string{"2 groups, 4 replicas: 2 groups identical"}},
		{"disagree", map[string]map[string]string{"g1": {"n1": "x", "n2": "y", "n3": "x"}}, false, []string{"group g1: replicas disagree: x on n1, n3; y on n2"}},
		{"no hash", map[string]map[string]string{"g1": {"n1": "x", "n2": ""}}, false, []string{"group g1: node n2 reported no state hash"}},
		{"no replicas", map[string]map[string]string{"g1": {}}, false, []string{"group g1: no replicas reported"}},
		{"no groups", nil, false, []string{"no groups given"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			expect(t, Replicas(tc.hashes), tc.valid, tc.want...)
		})
	}
}

func TestBlockReplicas(t *testing.T) {
	tests := []struct {
		name   string
		counts map[string]int
		r      int
		valid  bool
		want   []string
	}{
		{"enough", map[string]int{"b1": 3, "b2": 4}, 3, true, []string{"2 blocks, 0 with fewer than 3"}},
		{"short", map[string]int{"b1": 3, "b2": 1}, 3, false, []string{"block b2 has 1 verified replica, want 3"}},
		{"none", map[string]int{"b1": 0}, 1, false, []string{"0 verified replicas"}},
		{"bad r", map[string]int{"b1": 3}, 0, false, []string{"invalid checker options"}},
		{"no blocks", nil, 3, false, []string{"no blocks given"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			expect(t, BlockReplicas(tc.counts, tc.r), tc.valid, tc.want...)
		})
	}
}

func TestThroughput(t *testing.T) {
	// 10 ok ops returning in each of the first two seconds, none later,
	// plus failures that do not count.
	var ops []history.Op
	for i := range 20 {
		ret := time.Duration(i)*100*time.Millisecond + time.Millisecond
		ops = append(ops, history.Op{Status: ok, Call: ret - time.Millisecond, Return: ret},
			history.Op{Status: fail, Return: ret}, history.Op{Status: unknown})
	}
	early := Window{"before faults", 0, time.Second}
	late := Window{"after heal", 5 * time.Second, 7 * time.Second}
	tests := []struct {
		name    string
		windows []Window
		min     float64
		valid   bool
		want    []string
	}{
		{"busy", []Window{early}, 10, true, []string{"before faults 10.0/s"}},
		{"idle after heal", []Window{early, late}, 5, false, []string{"window after heal [5s, 7s]: 0.0 ok ops/s (0 ops), want at least 5"}},
		{"too slow", []Window{early}, 11, false, nil},
		{"inverted window", []Window{{"x", time.Second, time.Second}}, 1, false, []string{"window x: ends"}},
		{"no windows", nil, 1, false, []string{"no windows given"}},
		{"negative minimum", []Window{early}, -1, false, []string{"negative"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			expect(t, Throughput(ops, tc.windows, tc.min), tc.valid, tc.want...)
		})
	}
}

func TestSummary(t *testing.T) {
	ops := []history.Op{{Status: ok}, {Status: ok}, {Status: fail}, {Status: unknown}}
	faults := []history.Fault{{Kind: "kill"}, {Kind: "partition"}, {Kind: "kill"}}
	good := Result{Name: "register", Valid: true}
	bad := Result{Name: "feed"}
	tests := []struct {
		name    string
		ops     []history.Op
		faults  []history.Fault
		results []Result
		line    string
		ok      bool
	}{
		{"pass", ops, faults, []Result{good, good}, "PASS: 4 ops (2 ok, 1 fail, 1 unknown); faults: kill 2, partition 1; checks: 2/2 passed", true},
		{"fail", ops, nil, []Result{good, bad}, "FAIL: 4 ops (2 ok, 1 fail, 1 unknown); faults: none; checks: 1/2 passed (failed: feed)", false},
		{"no checks", nil, nil, nil, "FAIL: 0 ops (0 ok, 0 fail, 0 unknown); faults: none; checks: 0/0 passed (no checks ran)", false},
		{"bad status", []history.Op{{Status: "x"}}, nil, []Result{good}, "PASS: 1 ops (0 ok, 0 fail, 0 unknown, 1 with a bad status); faults: none; checks: 1/1 passed", true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			line, ok := Summary(tc.ops, tc.faults, tc.results)
			if line != tc.line || ok != tc.ok {
				t.Errorf("got  %q %v\nwant %q %v", line, ok, tc.line, tc.ok)
			}
		})
	}
}

func TestDetailsAreBounded(t *testing.T) {
	var creates []history.Op
	for i := range 100 {
		creates = append(creates, create(fmt.Sprintf("/s/%03d", i), ok))
	}
	r := Set(creates, nil)
	if r.Valid || len(r.Details) != MaxDetails+1 || r.Details[MaxDetails] != "… and 80 more" {
		t.Errorf("details: %d, last %q", len(r.Details), r.Details[len(r.Details)-1])
	}
	if !strings.Contains(r.Summary, "100 problems") || r.Details[0] != `lost: "/s/000" was created (ok) but is absent at the end` {
		t.Errorf("summary %q, first detail %q", r.Summary, r.Details[0])
	}
	if s := r.String(); !strings.HasPrefix(s, "set: INVALID: ") {
		t.Errorf("String %q", s)
	}
}

// TestOddInputNeverPanics feeds every checker histories of garbage.
func TestOddInputNeverPanics(t *testing.T) {
	odd := []history.Op{
		{},
		{Kind: history.KindWrite, Status: ok, Input: []byte(`null`), Output: []byte(`[]`)},
		{Kind: history.KindCAS, Status: fail, Input: []byte(`{"expect_rev":-1}`)},
		{Kind: history.KindRead, Status: ok, Call: -5, Return: -10, Output: []byte(`{"rev":18446744073709551615}`)},
		{Kind: history.KindWrite, Status: unknown, Input: []byte(`{"value":"x"}`), Return: 5},
		{Kind: history.KindUpload, Status: ok, Input: []byte(`"str"`)},
		{Kind: history.KindCreate, Status: "??"},
	}
	for _, o := range odd {
		_ = Register([]history.Op{o}, RegisterOptions{})
	}
	_ = Register(odd, RegisterOptions{VisualizePath: t.TempDir() + "/v.html"})
	_ = Set(odd, []string{"", ""})
	_ = Bytes(odd, map[string]string{"": ""})
	_ = Feed([]FeedLog{{Records: []FeedRecord{{}, {}, {Seq: 1<<64 - 1}}}, {From: 1<<64 - 1}}, []FeedCommit{{}, {Status: fail}})
	_ = Converged(map[string]map[string]string{"a": nil, "b": {"": ""}})
	_ = Edits([]Edit{{}, {Path: "((", SHA256: "x"}, {Path: "z", Prev: "y"}}, map[string]map[string]string{"a": nil},
		map[string][]FileRev{"": nil, "((": {{Rev: 0, SHA256: "x"}, {Rev: 1<<64 - 1, SHA256: "x"}}, "z": {{Rev: 1<<64 - 1}}})
	_ = Replicas(map[string]map[string]string{"": nil})
	_ = BlockReplicas(map[string]int{"": -1}, 1)
	_ = Throughput(odd, []Window{{End: 1}}, 0)
	_, _ = Summary(odd, []history.Fault{{}}, []Result{{}})
}
