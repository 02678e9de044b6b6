package gateway

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"testing"
)

// History pages with ?from and next_from; an old revision's GET names the
// file's node.
func TestHistoryPagesAndRevID(t *testing.T) {
	e := newEnv(t, envOpts{})
	alice := e.user("alice")
	for i := 1; i <= 5; i++ {
		if a := alice.do("PUT", "/v1/files/h.txt", bytes.NewReader([]byte(fmt.Sprint("v", i))), nil); a.status/100 != 2 {
			t.Fatalf("put %d: %d %s", i, a.status, a.body)
		}
	}
	var got []uint64
	from := ""
	for pages := 0; pages < 10; pages++ {
		a := alice.do("GET", "/v1/history/h.txt?limit=2"+from, nil, nil)
		var page struct {
			Revisions []struct{ Rev uint64 } `json:"revisions"`
			NextFrom  uint64                 `json:"next_from"`
		}
		if a.status != 200 || json.Unmarshal(a.body, &page) != nil {
			t.Fatalf("history: %d %s", a.status, a.body)
		}
		for _, r := range page.Revisions {
			got = append(got, r.Rev)
		}
		if page.NextFrom == 0 {
			break
		}
		from = "&from=" + strconv.FormatUint(page.NextFrom, 10)
	}
	if fmt.Sprint(got) != "[5 4 3 2 1]" {
		t.Fatalf("revisions over the pages: %v", got)
	}
	cur := alice.do("GET", "/v1/files/h.txt", nil, nil)
	old := alice.do("GET", "/v1/files/h.txt?rev=2", nil, nil)
	if old.status != 200 || string(old.body) != "v2" || old.hdr.Get(HeaderID) == "" || old.hdr.Get(HeaderID) != cur.hdr.Get(HeaderID) {
		t.Fatalf("?rev=2: %d %q, id %q (current %q)", old.status, old.body, old.hdr.Get(HeaderID), cur.hdr.Get(HeaderID))
	}
}
