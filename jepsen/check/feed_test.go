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

// commitOf is the commit that rec(seq, node, rev) records.
func commitOf(seq, node, rev uint64, s history.Status) FeedCommit {
	return FeedCommit{Path: fmt.Sprintf("/f%d", node), Rev: rev, RequestID: fmt.Sprintf("r%d", seq), Status: s}
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
		{"complete and in order", []FeedLog{{Reader: "a", Records: good, ToEnd: true}}, goodCommits, true,
			[]string{"1 readers, 4 records (seq 1..4); 3 ok commits: 3 in the feed, 0 missing; 1 failed commits: 0 in the feed; 2 unknown commits: 1 in the feed"}},
		{"several readers overlap and agree", []FeedLog{
			{Reader: "a", Records: good[:3]},
			{Reader: "b", From: 1, Records: good[1:], ToEnd: true},
			{Reader: "c", Records: good, ToEnd: true},
		}, goodCommits, true, []string{"3 readers"}},
		{"a reader from a later cursor", []FeedLog{{Reader: "a", From: 2, Records: good[2:], ToEnd: true}}, nil, true, nil},
		{"nothing read yet", []FeedLog{{Reader: "a"}}, []FeedCommit{commitOf(1, 1, 1, ok)}, true, []string{"1 not checkable (no reader read the whole feed)"}},
		{"feed not read to the end: a missing commit is not checkable", []FeedLog{{Reader: "a", Records: good[:2]}}, goodCommits, true, []string{"1 not checkable"}},

		{"gap", []FeedLog{{Reader: "a", Records: recs(rec(1, 1, 1), rec(2, 2, 1), rec(5, 1, 2))}}, nil, false, []string{"reader a: gap: seq 3..4 missing"}},
		{"gap after the cursor", []FeedLog{{Reader: "a", From: 3, Records: recs(rec(5, 1, 1))}}, nil, false, []string{"gap: seq 4 missing"}},
		{"record at the cursor", []FeedLog{{Reader: "a", From: 3, Records: recs(rec(3, 1, 1), rec(4, 1, 2))}}, nil, false, []string{"seq 3 (position 0) is at or before its cursor 3"}},
		{"duplicate", []FeedLog{{Reader: "a", Records: recs(rec(1, 1, 1), rec(2, 2, 1), rec(2, 2, 1), rec(3, 1, 2))}}, nil, false, []string{"duplicate: seq 2 read again at position 2 (first at 1)"}},
		{"reordered", []FeedLog{{Reader: "a", Records: recs(rec(1, 1, 1), rec(3, 2, 1), rec(2, 3, 1))}}, nil, false, []string{"reordered: seq 2 read after seq 3"}},
		{"a file's revision goes back", []FeedLog{{Reader: "a", Records: recs(rec(1, 1, 2), rec(2, 1, 1))}}, nil, false, []string{"node 1 (\"/f1\") has rev 1 at seq 2 after rev 2 at seq 1"}},
		{"missing ok commit", []FeedLog{{Reader: "a", Records: good[:3], ToEnd: true}}, goodCommits, false, []string{`missing: the ok commit of "/f1" rev 3 (request "r4")`}},
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
