package check

import (
	"fmt"
	"testing"

	"github.com/coffer-dev/coffer/jepsen/history"
)

// rec is a record of one change: file /f<node> at rev, request "r<seq>".
func rec(seq, node, rev uint64) FeedRecord {
	return FeedRecord{Seq: seq, RequestID: fmt.Sprintf("r%d", seq), Changes: []FeedChange{{Path: fmt.Sprintf("/f%d", node), Rev: rev, NodeID: node}}}
}

func recs(rs ...FeedRecord) []FeedRecord { return rs }

// commitOf is the commit that rec(seq, node, rev) records; an ok one
// knows its seq from the commit's answer.
func commitOf(seq, node, rev uint64, s history.Status) FeedCommit {
	c := FeedCommit{Path: fmt.Sprintf("/f%d", node), Rev: rev, RequestID: fmt.Sprintf("r%d", seq), Status: s}
	if s == history.StatusOK {
		c.Seq = seq
	}
	return c
}

func TestFeed(t *testing.T) {
	good := recs(rec(1, 1, 1), rec(2, 2, 1), rec(3, 1, 2), rec(4, 1, 3))
	goodCommits := []FeedCommit{commitOf(1, 1, 1, ok), commitOf(2, 2, 1, ok), commitOf(3, 1, 2, unknown), commitOf(4, 1, 3, ok),
		commitOf(9, 3, 1, unknown), commitOf(10, 4, 0, fail)}
	tests := []struct {
		name    string
		logs    []FeedLog
		commits []FeedCommit
		valid   bool
		want    []string
	}{
		{"complete and in order", []FeedLog{{Reader: "a", Records: good, ToEnd: true, Head: 4}}, goodCommits, true,
			[]string{"1 readers, 4 records (seq 1..4); 3 ok commits: 3 in the feed (3 at the seq acknowledged), 0 missing; 1 failed commits: 0 in the feed; 2 unknown commits: 1 in the feed"}},
		{"several readers overlap and agree", []FeedLog{
			{Reader: "a", Records: good[:3]},
			{Reader: "b", From: 1, Records: good[1:], ToEnd: true, Head: 4},
			{Reader: "c", Records: good, ToEnd: true, Head: 4},
		}, goodCommits, true, []string{"3 readers"}},
		{"a reader from a later cursor beside a whole one", []FeedLog{{Reader: "a", From: 2, Records: good[2:], ToEnd: true, Head: 4}, {Reader: "b", Records: good, ToEnd: true, Head: 4}}, nil, true, nil},
		{"an empty feed read whole", []FeedLog{{Reader: "a", ToEnd: true}}, nil, true, nil},
		{"a reader reset to the head reads on from there", []FeedLog{{Reader: "a", From: 4, ToEnd: true, Head: 4}, {Reader: "b", Records: good, ToEnd: true, Head: 4}}, nil, true, nil},
		{"a commit without a known seq", []FeedLog{{Reader: "a", Records: good, ToEnd: true, Head: 4}}, []FeedCommit{{Path: "/f1", Rev: 2, RequestID: "r3", Status: ok}}, true,
			[]string{"1 in the feed (0 at the seq acknowledged)"}},

		// No log from 0 to the end: the ok commits went unchecked.
		{"nothing read yet", []FeedLog{{Reader: "a"}}, []FeedCommit{commitOf(1, 1, 1, ok)}, false,
			[]string{"1 not checkable (no reader read the whole feed)", "no reader read the whole feed (from cursor 0 to the head)"}},
		{"feed not read to the end", []FeedLog{{Reader: "a", Records: good[:2]}}, goodCommits, false, []string{"1 not checkable", "no reader read the whole feed"}},
		{"only from a later cursor", []FeedLog{{Reader: "a", From: 2, Records: good[2:], ToEnd: true, Head: 4}}, nil, false, []string{"no reader read the whole feed"}},
		{"no logs", nil, nil, false, []string{"no reader read the whole feed"}},

		// A last empty page that moved the cursor to the head without the
		// records before it: the tail is missing.
		{"missing tail", []FeedLog{{Reader: "a", Records: good[:3], ToEnd: true, Head: 4}}, nil, false,
			[]string{"reader a: missing tail: read to the end up to seq 3, but the feed's head was 4 (seq 4..4 never read)"}},
		{"missing tail after a reset", []FeedLog{{Reader: "a", From: 2, ToEnd: true, Head: 4}, {Reader: "b", Records: good, ToEnd: true, Head: 4}}, nil, false,
			[]string{"reader a: missing tail: read to the end up to seq 2, but the feed's head was 4"}},
		{"read beyond the head", []FeedLog{{Reader: "a", Records: good, ToEnd: true, Head: 3}}, nil, false, []string{"reader a: read up to seq 4, beyond the head 3"}},

		// The seq a commit's answer named holds another commit.
		{"acknowledged at another seq", []FeedLog{{Reader: "a", Records: good, ToEnd: true, Head: 4}}, []FeedCommit{{Path: "/f1", Rev: 2, RequestID: "r3", Seq: 2, Status: ok}}, false,
			[]string{`wrong seq: the ok commit of "/f1" rev 2 (request "r3") was acknowledged at seq 2, but the feed's seq 2 is {request "r2"`}},
		{"acknowledged at a seq whose record has another request", []FeedLog{{Reader: "a", Records: good, ToEnd: true, Head: 4}}, []FeedCommit{{Path: "/f1", Rev: 2, RequestID: "x", Seq: 3, Status: ok}}, false,
			[]string{`wrong seq: the ok commit of "/f1" rev 2 (request "x") was acknowledged at seq 3`}},
		{"acknowledged beyond the head", []FeedLog{{Reader: "a", Records: good, ToEnd: true, Head: 4}}, []FeedCommit{{Path: "/f1", Rev: 3, RequestID: "r4", Seq: 9, Status: ok}}, false,
			[]string{"acknowledged at seq 9, beyond the whole feed's head 4, but the feed has it at seq [4]"}},
		{"acknowledged, not in the feed", []FeedLog{{Reader: "a", Records: good, ToEnd: true, Head: 4}}, []FeedCommit{{Path: "/f9", Rev: 1, RequestID: "r9", Seq: 9, Status: ok}}, false,
			[]string{`missing: the ok commit of "/f9" rev 1 (request "r9", acknowledged at seq 9) is not in the feed`}},

		{"gap", []FeedLog{{Reader: "a", Records: recs(rec(1, 1, 1), rec(2, 2, 1), rec(5, 1, 2))}}, nil, false, []string{"reader a: gap: seq 3..4 missing"}},
		{"gap after the cursor", []FeedLog{{Reader: "a", From: 3, Records: recs(rec(5, 1, 1))}}, nil, false, []string{"gap: seq 4 missing"}},
		{"record at the cursor", []FeedLog{{Reader: "a", From: 3, Records: recs(rec(3, 1, 1), rec(4, 1, 2))}}, nil, false, []string{"seq 3 (position 0) is at or before its cursor 3"}},
		{"duplicate", []FeedLog{{Reader: "a", Records: recs(rec(1, 1, 1), rec(2, 2, 1), rec(2, 2, 1), rec(3, 1, 2))}}, nil, false, []string{"duplicate: seq 2 read again at position 2 (first at 1)"}},
		{"reordered", []FeedLog{{Reader: "a", Records: recs(rec(1, 1, 1), rec(3, 2, 1), rec(2, 3, 1))}}, nil, false, []string{"reordered: seq 2 read after seq 3"}},
		{"a file's revision goes back", []FeedLog{{Reader: "a", Records: recs(rec(1, 1, 2), rec(2, 1, 1))}}, nil, false, []string{"node 1 (\"/f1\") has rev 1 at seq 2 after rev 2 at seq 1"}},
		{"missing ok commit", []FeedLog{{Reader: "a", Records: good[:3], ToEnd: true, Head: 3}}, goodCommits, false, []string{`missing: the ok commit of "/f1" rev 3 (request "r4", acknowledged at seq 4) is not in the feed`}},
		{"failed commit visible", []FeedLog{{Reader: "a", Records: good}}, []FeedCommit{commitOf(3, 1, 0, fail)}, false, []string{`failed commit visible: request "r3"`}},
		{"revision acknowledged to another request", []FeedLog{{Reader: "a", Records: good}}, []FeedCommit{{Path: "/f1", Rev: 2, RequestID: "other", Status: ok}}, false,
			[]string{`"/f1" rev 2 was acknowledged to request "other", but the feed's seq 3 is request "r3"`}},
		{"readers disagree", []FeedLog{{Reader: "a", Records: good}, {Reader: "b", Records: recs(rec(1, 1, 1), rec(2, 7, 1))}}, nil, false, []string{"readers disagree at seq 2: a read"}},
		{"bad status", nil, []FeedCommit{{Path: "/x", Status: "odd"}}, false, []string{"malformed"}},
		{"huge seq does not hang", []FeedLog{{Reader: "a", Records: recs(rec(1, 1, 1), rec(1<<62, 2, 1))}}, nil, false, []string{"gap: seq 2..4611686018427387903 missing"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			expect(t, Feed(tc.logs, tc.commits), tc.valid, tc.want...)
		})
	}
}
