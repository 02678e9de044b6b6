package check

import (
	"fmt"
	"slices"

	"github.com/coffer-dev/coffer/jepsen/history"
)

// FeedChange is one file changed by a commit, as a change-feed record
// shows it.
type FeedChange struct {
	Path   string `json:"path"`
	Rev    uint64 `json:"rev"`
	NodeID uint64 `json:"node_id,omitempty"` // the file's stable ID (0: not given)
}

// FeedRecord is one record of a namespace's change feed: one commit.
type FeedRecord struct {
	Seq       uint64       `json:"seq"`
	RequestID string       `json:"request_id,omitempty"`
	Changes   []FeedChange `json:"changes"`
}

// FeedLog is what one reader read from one namespace's feed, in the order
// read, over as many cursor reads as it took.
type FeedLog struct {
	Reader string `json:"reader"`
	// From is the cursor the reader started after (0: the feed's start);
	// its first record must be From+1.
	From    uint64       `json:"from"`
	Records []FeedRecord `json:"records"`
	// ToEnd: the reader read up to the feed's head after the last commit
	// was acknowledged, so every ok commit should be in what it read (if
	// From is 0).
	ToEnd bool `json:"to_end"`
	// Head is, for a ToEnd log, the feed's head as the last page read
	// named it: the log must end exactly there.
	Head uint64 `json:"head,omitempty"`
}

// FeedCommit is a commit the workload made in the namespace: the file and
// revision it made and the journal seq the server answered (for an ok
// commit; 0: not known), the request ID it was sent with (if known), and
// how it ended.
type FeedCommit struct {
	Path      string         `json:"path"`
	Rev       uint64         `json:"rev,omitempty"`
	Seq       uint64         `json:"seq,omitempty"`
	RequestID string         `json:"request_id,omitempty"`
	Status    history.Status `json:"status"`
}

// Feed checks one namespace's change feed as several readers read it
// against the commits made in it; see DESIGN.md for the exact rules. In
// short: each reader's seqs run From+1, From+2, … with no gap, duplicate or
// reordering, and a reader that read to the end stopped exactly at the head
// the feed named; a file's revisions only grow along the feed; readers
// agree on every seq they both read; some reader read the whole feed (from
// 0 to the end), and every ok commit is in it, at the seq its answer named;
// no failed commit (known by its request ID) is.
func Feed(logs []FeedLog, commits []FeedCommit) Result {
	const name = "feed"
	var p problems
	union := map[uint64]FeedRecord{} // seq → the first reader's record
	unionBy := map[uint64]string{}   // seq → that reader
	var lo, hi uint64
	complete := false
	var end uint64 // the highest head a whole-feed reader ended at
	for _, l := range logs {
		checkFeedLog(l, &p)
		if l.ToEnd && l.From == 0 {
			complete = true
			end = max(end, l.Head)
		}
		for _, r := range l.Records {
			if len(union) == 0 || r.Seq < lo {
				lo = r.Seq
			}
			hi = max(hi, r.Seq)
			prev, seen := union[r.Seq]
			if !seen {
				union[r.Seq], unionBy[r.Seq] = r, l.Reader
				continue
			}
			if !sameRecord(prev, r) && unionBy[r.Seq] != l.Reader {
				p.add("readers disagree at seq %d: %s read %s, %s read %s", r.Seq, unionBy[r.Seq], describeRecord(prev), l.Reader, describeRecord(r))
			}
		}
	}

	type where struct {
		seq uint64
		req string
	}
	byChange := map[[2]string][]where{} // (path, rev) → records with it
	byRequest := map[string][]uint64{}  // request ID → seqs
	for seq, r := range union {
		for _, c := range r.Changes {
			k := [2]string{c.Path, fmt.Sprint(c.Rev)}
			byChange[k] = append(byChange[k], where{seq, r.RequestID})
		}
		if r.RequestID != "" {
			byRequest[r.RequestID] = append(byRequest[r.RequestID], seq)
		}
	}
	if !complete {
		p.add("no reader read the whole feed (from cursor 0 to the head): the ok commits could not be checked")
	}
	var okN, okSeen, okAtSeq, okMissing, okUnchecked, failN, failSeen, failUnchecked, unkN, unkSeen int
	for _, c := range commits {
		key := [2]string{c.Path, fmt.Sprint(c.Rev)}
		switch c.Status {
		case history.StatusOK:
			okN++
			ws := byChange[key]
			if c.Seq != 0 {
				if r, read := union[c.Seq]; read {
					if recordHas(r, c) {
						okAtSeq++
					} else {
						p.add("wrong seq: the ok commit of %q rev %d (request %q) was acknowledged at seq %d, but the feed's seq %d is %s",
							c.Path, c.Rev, c.RequestID, c.Seq, c.Seq, describeRecord(r))
					}
				} else if complete && len(ws) > 0 {
					at := make([]uint64, len(ws))
					for i, w := range ws {
						at[i] = w.seq
					}
					slices.Sort(at)
					p.add("wrong seq: the ok commit of %q rev %d (request %q) was acknowledged at seq %d, beyond the whole feed's head %d, but the feed has it at seq %v",
						c.Path, c.Rev, c.RequestID, c.Seq, end, at)
				}
			}
			if len(ws) == 0 {
				if complete {
					okMissing++
					at := ""
					if c.Seq != 0 {
						at = fmt.Sprintf(", acknowledged at seq %d", c.Seq)
					}
					p.add("missing: the ok commit of %q rev %d (request %q%s) is not in the feed", c.Path, c.Rev, c.RequestID, at)
				} else {
					okUnchecked++
				}
				continue
			}
			okSeen++
			for _, w := range ws {
				if c.RequestID != "" && w.req != "" && w.req != c.RequestID {
					p.add("wrong commit: %q rev %d was acknowledged to request %q, but the feed's seq %d is request %q", c.Path, c.Rev, c.RequestID, w.seq, w.req)
				}
			}
		case history.StatusFail:
			failN++
			if c.RequestID == "" {
				failUnchecked++
				continue
			}
			if seqs := byRequest[c.RequestID]; len(seqs) > 0 {
				failSeen++
				slices.Sort(seqs)
				p.add("failed commit visible: request %q on %q failed, but the feed has it at seq %v", c.RequestID, c.Path, seqs)
			}
		case history.StatusUnknown:
			unkN++
			if len(byChange[key]) > 0 || (c.RequestID != "" && len(byRequest[c.RequestID]) > 0) {
				unkSeen++
			}
		default:
			p.add("malformed: the commit of %q rev %d (request %q) has status %q", c.Path, c.Rev, c.RequestID, c.Status)
		}
	}
	summary := fmt.Sprintf("%d readers, %d records (seq %d..%d); %d ok commits: %d in the feed (%d at the seq acknowledged), %d missing",
		len(logs), len(union), lo, hi, okN, okSeen, okAtSeq, okMissing)
	if okUnchecked > 0 {
		summary += fmt.Sprintf(", %d not checkable (no reader read the whole feed)", okUnchecked)
	}
	summary += fmt.Sprintf("; %d failed commits: %d in the feed", failN, failSeen)
	if failUnchecked > 0 {
		summary += fmt.Sprintf(", %d not checkable (no request ID)", failUnchecked)
	}
	summary += fmt.Sprintf("; %d unknown commits: %d in the feed", unkN, unkSeen)
	return p.result(name, summary)
}

// checkFeedLog checks one reader's records: seqs From+1, From+2, … with
// no duplicate, reordering or gap, each file's revisions growing, and a
// ToEnd log ending at its Head.
func checkFeedLog(l FeedLog, p *problems) {
	seen := map[uint64]int{} // seq → position first read
	type at struct{ rev, seq uint64 }
	lastRev := map[uint64]at{} // node ID → its last revision
	top := l.From              // the highest seq read so far
	for i, r := range l.Records {
		first, dup := seen[r.Seq]
		switch {
		case r.Seq <= l.From:
			p.add("reader %s: seq %d (position %d) is at or before its cursor %d", l.Reader, r.Seq, i, l.From)
		case dup:
			p.add("reader %s: duplicate: seq %d read again at position %d (first at %d)", l.Reader, r.Seq, i, first)
		case r.Seq < top:
			p.add("reader %s: reordered: seq %d read after seq %d (position %d)", l.Reader, r.Seq, top, i)
		}
		if dup {
			continue // reported; its changes were checked the first time
		}
		seen[r.Seq] = i
		top = max(top, r.Seq)
		for _, c := range r.Changes {
			if c.NodeID == 0 {
				continue
			}
			if last, ok := lastRev[c.NodeID]; ok && c.Rev <= last.rev {
				p.add("reader %s: node %d (%q) has rev %d at seq %d after rev %d at seq %d", l.Reader, c.NodeID, c.Path, c.Rev, r.Seq, last.rev, last.seq)
			}
			lastRev[c.NodeID] = at{c.Rev, r.Seq}
		}
	}
	// Gaps: the seqs after the cursor up to the highest read that were
	// never read, as ranges.
	seqs := make([]uint64, 0, len(seen))
	for s := range seen {
		if s > l.From {
			seqs = append(seqs, s)
		}
	}
	slices.Sort(seqs)
	next := l.From + 1
	for _, s := range seqs {
		switch {
		case s == next+1:
			p.add("reader %s: gap: seq %d missing (read up to %d)", l.Reader, next, top)
		case s > next:
			p.add("reader %s: gap: seq %d..%d missing (read up to %d)", l.Reader, next, s-1, top)
		}
		next = s + 1
	}
	// A reader that read to the end must have read up to the head the
	// feed named then: a page that moves the cursor to the head without
	// the records before it hides a missing tail.
	switch {
	case !l.ToEnd:
	case top < l.Head:
		p.add("reader %s: missing tail: read to the end up to seq %d, but the feed's head was %d (seq %d..%d never read)", l.Reader, top, l.Head, top+1, l.Head)
	case top > l.Head:
		p.add("reader %s: read up to seq %d, beyond the head %d the feed named at the end", l.Reader, top, l.Head)
	}
}

// recordHas reports whether r is the record of commit c: it changes c's
// path to c's revision, and (if both are known) has c's request ID.
func recordHas(r FeedRecord, c FeedCommit) bool {
	if c.RequestID != "" && r.RequestID != "" && c.RequestID != r.RequestID {
		return false
	}
	return slices.ContainsFunc(r.Changes, func(ch FeedChange) bool { return ch.Path == c.Path && ch.Rev == c.Rev })
}

func sameRecord(a, b FeedRecord) bool {
	return a.Seq == b.Seq && a.RequestID == b.RequestID && slices.Equal(a.Changes, b.Changes)
}

func describeRecord(r FeedRecord) string {
	return fmt.Sprintf("{request %q, changes %v}", r.RequestID, r.Changes)
}
