package gateway

import (
	"fmt"
	"strings"
	"sync"
	"testing"
)

// TestConcurrentCommits: writers racing on one revision get exactly one
// success; every other one is a conflict naming the new revision, never a
// silent overwrite.
func TestConcurrentCommits(t *testing.T) {
	e := newEnv(t, envOpts{})
	alice := e.user("alice")
	want(t, "put", alice.put("/race.txt", []byte("base"), nil), 201, "")
	const n = 8
	var wg sync.WaitGroup
	answers := make([]answer, n)
	errs := make([]error, n)
	start := make(chan struct{})
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			answers[i], errs[i] = alice.tryDo("PUT", "/v1/files/race.txt", strings.NewReader(fmt.Sprintf("writer %d", i)), map[string]string{"If-Match": "1"})
		}()
	}
	close(start)
	wg.Wait()
	winner := -1
	for i, a := range answers {
		if errs[i] != nil {
			t.Fatalf("writer %d: %v", i, errs[i])
		}
		switch {
		case a.status == 200:
			if winner >= 0 {
				t.Errorf("writers %d and %d both succeeded", winner, i)
			}
			winner = i
		case a.status == 409 && a.code() == "conflict" && a.json()["current_rev"] == float64(2):
		default:
			t.Errorf("writer %d: HTTP %d %s", i, a.status, a.body)
		}
	}
	if winner < 0 {
		t.Fatal("no writer succeeded")
	}
	g := alice.do("GET", "/v1/files/race.txt", nil, nil)
	if string(g.body) != fmt.Sprintf("writer %d", winner) || g.hdr.Get("ETag") != `"2"` {
		t.Errorf("the file holds %q (ETag %s), the winner was %d", g.body, g.hdr.Get("ETag"), winner)
	}
	if revs := alice.history("/race.txt"); len(revs) != 2 {
		t.Errorf("history has %d revisions, want 2", len(revs))
	}
}
