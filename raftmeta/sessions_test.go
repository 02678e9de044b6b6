package raftmeta

import (
	"bytes"
	"io"
	"reflect"
	"strings"
	"testing"
	"time"
)

// Tests of session revocation in the state machine: SessionsValidAfter on
// users and per-token revocation records.

func fxRevokeSessions(h *fxHarness, rid, name string) *result {
	h.t.Helper()
	return h.apply(&command{Type: cmdRevokeSessions, RequestID: rid, RevokeSessions: &userNameCmd{Name: name}})
}

func fxRevokeToken(h *fxHarness, rid, id string, expires int64) *result {
	h.t.Helper()
	return h.apply(&command{Type: cmdRevokeToken, RequestID: rid, RevokeToken: &revokeTokenCmd{TokenID: id, Expires: expires}})
}

// fxValidAfter reads a user's SessionsValidAfter from the state.
func fxValidAfter(h *fxHarness, name string) time.Time {
	h.t.Helper()
	u, err := h.v().userByName(name)
	if err != nil || u == nil {
		h.t.Fatalf("user %q: %+v, %v", name, u, err)
	}
	return u.SessionsValidAfter
}

func fxTokenRevoked(h *fxHarness, id string, now int64) bool {
	h.t.Helper()
	ok, err := h.v().tokenRevoked(id, now)
	if err != nil {
		h.t.Fatalf("tokenRevoked %q: %v", id, err)
	}
	return ok
}

func TestSessionsValidAfter(t *testing.T) {
	h := fxNew(t)
	u := h.createUser("alice", 0)
	if !u.SessionsValidAfter.IsZero() || !fxValidAfter(h, "alice").IsZero() {
		t.Fatalf("new user has SessionsValidAfter %v", u.SessionsValidAfter)
	}
	// A user that never ended its sessions is stored as before.
	raw, c, err := h.d.db.Get(h.f.k.user(u.ID))
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(raw, []byte("sessions_valid_after")) {
		t.Fatalf("new user record %s carries a zero SessionsValidAfter", raw)
	}
	c.Close()

	// A password change moves it to the command's proposal time.
	at := h.now
	res := h.apply(&command{Type: cmdSetPassword, SetPassword: &setPasswordCmd{Name: "Alice", PasswordHash: "h2"}})
	if res.Err != nil || !res.User.SessionsValidAfter.Equal(time.Unix(0, at)) {
		t.Fatalf("set password: %+v", res)
	}
	if got := fxValidAfter(h, "alice"); !got.Equal(time.Unix(0, at)) {
		t.Fatalf("after set password: %v, want %v", got, time.Unix(0, at))
	}
	// A refused password change leaves it.
	fxWantCode(t, h.apply(&command{Type: cmdSetPassword, SetPassword: &setPasswordCmd{Name: "alice"}}).Err, CodeInvalidArgument)
	if got := fxValidAfter(h, "alice"); !got.Equal(time.Unix(0, at)) {
		t.Fatalf("refused set password moved it to %v", got)
	}

	// RevokeSessions moves it too, and returns the user.
	at2 := h.now
	res = fxRevokeSessions(h, "", "alice")
	if res.Err != nil || res.User == nil || res.User.ID != u.ID || !res.User.SessionsValidAfter.Equal(time.Unix(0, at2)) {
		t.Fatalf("revoke sessions: %+v", res)
	}
	if got := fxValidAfter(h, "alice"); !got.Equal(time.Unix(0, at2)) || !got.After(time.Unix(0, at)) {
		t.Fatalf("after revoke sessions: %v, want %v", got, time.Unix(0, at2))
	}
	// A command stamped earlier (a leader with a slower clock) never moves
	// it back.
	early := at - int64(time.Hour)
	for _, c := range []*command{
		{Type: cmdRevokeSessions, Time: early, RevokeSessions: &userNameCmd{Name: "alice"}},
		{Type: cmdSetPassword, Time: early, SetPassword: &setPasswordCmd{Name: "alice", PasswordHash: "h3"}},
	} {
		if res := h.apply(c); res.Err != nil {
			t.Fatal(res.Err)
		}
		if got := fxValidAfter(h, "alice"); !got.Equal(time.Unix(0, at2)) {
			t.Fatalf("earlier command moved it back to %v", got)
		}
	}
	// Other users are untouched.
	h.createUser("bob", 0)
	if got := fxValidAfter(h, "bob"); !got.IsZero() {
		t.Fatalf("bob: %v", got)
	}

	// Refusals.
	cases := []struct {
		name string
		c    *command
		code Code
	}{
		{"unknown user", &command{Type: cmdRevokeSessions, RevokeSessions: &userNameCmd{Name: "nobody"}}, CodeNotFound},
		{"invalid name", &command{Type: cmdRevokeSessions, RevokeSessions: &userNameCmd{Name: "no body"}}, CodeNotFound},
		{"malformed", &command{Type: cmdRevokeSessions}, CodeInvalidArgument},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			defer h.use(t)()
			fxWantCode(t, h.apply(tc.c).Err, tc.code)
		})
	}

	// A deleted user: not found, also for a later RevokeSessions; a new
	// user of the same name starts with no cut-off.
	h.apply(&command{Type: cmdDeleteUser, DeleteUser: &userNameCmd{Name: "alice"}})
	fxWantCode(t, fxRevokeSessions(h, "", "alice").Err, CodeNotFound)
	if got, err := h.v().userByName("alice"); got != nil || err != nil {
		t.Fatalf("deleted user found: %+v, %v", got, err)
	}
	if got := h.createUser("alice", 0); !got.SessionsValidAfter.IsZero() {
		t.Fatalf("re-created user %+v", got)
	}
}

func TestSessionsDedup(t *testing.T) {
	h := fxNew(t)
	h.createUser("alice", 0)
	first := fxRevokeSessions(h, "logout-1", "alice")
	if first.Err != nil {
		t.Fatal(first.Err)
	}
	hash := h.contentHash()
	// A retry, proposed later, gets the first result and changes nothing.
	h.now += int64(time.Hour)
	again := fxRevokeSessions(h, "logout-1", "alice")
	if !reflect.DeepEqual(again, first) {
		t.Fatalf("retry = %+v, want %+v", again, first)
	}
	if h.contentHash() != hash || !fxValidAfter(h, "alice").Equal(first.User.SessionsValidAfter) {
		t.Fatal("a retried RevokeSessions changed the state")
	}
	// A new request ID applies.
	if res := fxRevokeSessions(h, "logout-2", "alice"); res.Err != nil || !res.User.SessionsValidAfter.After(first.User.SessionsValidAfter) {
		t.Fatalf("new request: %+v", res)
	}

	// RevokeToken: a refusal is remembered, even once it would succeed.
	const id = "00ff"
	hash = h.contentHash()
	bad := fxRevokeToken(h, "tok-1", id, h.now) // expires at the proposal time
	fxWantCode(t, bad.Err, CodeInvalidArgument)
	if retry := fxRevokeToken(h, "tok-1", id, h.now+int64(time.Hour)); !reflect.DeepEqual(retry, bad) {
		t.Fatalf("retried refusal %+v, want %+v", retry, bad)
	}
	if fxTokenRevoked(h, id, h.now) {
		t.Fatal("a retried refused revocation stored a record")
	}
	// A success is applied once: the retry does not extend the record.
	exp := h.now + int64(time.Hour)
	if res := fxRevokeToken(h, "tok-2", id, exp); res.Err != nil {
		t.Fatal(res.Err)
	}
	hash = h.contentHash()
	if res := fxRevokeToken(h, "tok-2", id, exp+int64(time.Hour)); res.Err != nil {
		t.Fatal(res.Err)
	}
	if h.contentHash() != hash || fxTokenRevoked(h, id, exp) {
		t.Fatal("a retried RevokeToken applied again")
	}
}

func TestRevokeToken(t *testing.T) {
	const day = int64(24 * time.Hour)
	okID := strings.Repeat("0123456789abcdef", 2)
	cases := []struct {
		name    string
		id      string
		expires int64 // relative to the proposal time
		code    Code
	}{
		{"valid", okID, day, CodeOK},
		{"one hex digit", "a", day, CodeOK},
		{"64 hex digits", strings.Repeat("f", 64), day, CodeOK},
		{"expires in 1ns", okID, 1, CodeOK},
		{"expires in exactly 30 days", okID, 30 * day, CodeOK},
		{"empty ID", "", day, CodeInvalidArgument},
		{"65 hex digits", strings.Repeat("f", 65), day, CodeInvalidArgument},
		{"upper-case hex", "ABCDEF", day, CodeInvalidArgument},
		{"not hex", "xyz", day, CodeInvalidArgument},
		{"slash", "ab/cd", day, CodeInvalidArgument},
		{"NUL", "ab\x00cd", day, CodeInvalidArgument},
		{"expires at the proposal time", okID, 0, CodeInvalidArgument},
		{"expired", okID, -day, CodeInvalidArgument},
		{"expires past 30 days", okID, 30*day + 1, CodeInvalidArgument},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := fxNew(t)
			now := h.now
			before := h.contentHash()
			res := fxRevokeToken(h, "", tc.id, now+tc.expires)
			if tc.code != CodeOK {
				fxWantCode(t, res.Err, tc.code)
				if h.contentHash() != before {
					t.Fatal("a refused revocation changed the state")
				}
				return
			}
			if res.Err != nil {
				t.Fatal(res.Err)
			}
			exp := now + tc.expires
			// Revoked until its expiry, not at or after it.
			for _, c := range []struct {
				at   int64
				want bool
			}{{now, true}, {exp - 1, true}, {exp, false}, {exp + day, false}} {
				if got := fxTokenRevoked(h, tc.id, c.at); got != c.want {
					t.Fatalf("revoked at %+dns = %v, want %v", c.at-now, got, c.want)
				}
			}
			other := tc.id[:len(tc.id)-1] // a prefix is another token
			if other == "" {
				other = "b"
			}
			if fxTokenRevoked(h, other, now) {
				t.Fatalf("token %q reads as revoked", other)
			}
		})
	}

	t.Run("again", func(t *testing.T) {
		h := fxNew(t)
		const id = "abc123"
		exp := h.now + day
		if res := fxRevokeToken(h, "", id, exp); res.Err != nil {
			t.Fatal(res.Err)
		}
		hash := h.contentHash()
		// The same revocation again (or one with an earlier expiry)
		// succeeds and changes nothing.
		for _, e := range []int64{exp, exp - time.Hour.Nanoseconds()} {
			if res := fxRevokeToken(h, "", id, e); res.Err != nil {
				t.Fatal(res.Err)
			}
			if h.contentHash() != hash {
				t.Fatal("revoking a revoked token again changed the state")
			}
		}
		// A later expiry extends the record.
		if res := fxRevokeToken(h, "", id, exp+day); res.Err != nil {
			t.Fatal(res.Err)
		}
		if !fxTokenRevoked(h, id, exp) {
			t.Fatal("the later expiry was not kept")
		}
	})
	t.Run("malformed", func(t *testing.T) {
		h := fxNew(t)
		fxWantCode(t, h.apply(&command{Type: cmdRevokeToken}).Err, CodeInvalidArgument)
	})
}

func TestPruneTokens(t *testing.T) {
	const min = int64(time.Minute)
	build := func(t *testing.T) (*fxHarness, int64) {
		h := fxNew(t)
		ns := h.createUser("alice", 0).Namespace
		h.must(ns, fxPut("/f", "one"))
		base := h.now
		// Tokens expiring 1..6 minutes from base.
		for i := int64(1); i <= 6; i++ {
			if res := fxRevokeToken(h, "", strings.Repeat(string("0123456789abcdef"[i]), 4), base+i*min); res.Err != nil {
				t.Fatal(res.Err)
			}
		}
		h.now = base + 3*min + 30*int64(time.Second) // tokens 1..3 expired
		return h, base
	}
	h, base := build(t)
	res, steps := h.pruneAll(time.Hour, 10, 1000)
	if steps != 1 || res.Tokens != 3 || res.Revisions != 0 || res.Records != 0 {
		t.Fatalf("prune = %+v in %d steps; want 3 tokens", res, steps)
	}
	for i := int64(1); i <= 6; i++ {
		id := strings.Repeat(string("0123456789abcdef"[i]), 4)
		// Check the records themselves: expired ones are gone, the
		// others are still revoked.
		var rec tokenRecord
		ok, err := h.v().getJSON(h.f.k.token(id), &rec)
		if err != nil || ok != (i > 3) {
			t.Fatalf("token %s after prune: present %v, %v", id, ok, err)
		}
		if i > 3 && !fxTokenRevoked(h, id, h.now) {
			t.Fatalf("token %s no longer revoked", id)
		}
	}
	if again, _ := h.pruneAll(time.Hour, 10, 1000); again.Tokens != 0 {
		t.Fatalf("second prune %+v", again)
	}
	// Much later, every record goes.
	h.now = base + time.Hour.Nanoseconds()
	if r, _ := h.pruneAll(time.Hour, 10, 1000); r.Tokens != 3 {
		t.Fatalf("late prune %+v", r)
	}
	if n := fxCountTag(h, tagToken); n != 0 {
		t.Fatalf("%d token records left", n)
	}

	// In small steps: bounded per entry, same end state and totals.
	one, _ := build(t)
	total, _ := one.pruneAll(time.Hour, 10, 1000)
	for _, max := range []int{1, 2} {
		h, _ := build(t)
		got, steps := h.pruneAll(time.Hour, 10, max)
		// Nodes (2), the namespace (1) and 6 token records, max per step.
		if want := (2 + 1 + 6 + max - 1) / max; steps < want || !reflect.DeepEqual(got, total) {
			t.Fatalf("max %d: prune %+v in %d steps; want %+v in at least %d", max, got, steps, total, want)
		}
		if h.contentHash() != one.contentHash() {
			t.Fatalf("max %d: stepwise prune ends in another state", max)
		}
	}
}

// fxCountTag counts a group's keys with one tag.
func fxCountTag(h *fxHarness, tag byte) int {
	h.t.Helper()
	lo := h.f.k.Key(tag)
	n := 0
	if err := h.v().scan(lo, prefixEnd(lo), false, func(_, _ []byte) (bool, error) { n++; return true, nil }); err != nil {
		h.t.Fatal(err)
	}
	return n
}

func TestSessionsSnapshot(t *testing.T) {
	src := fxNew(t)
	fxBusyHistory(src)
	// A snapshot of a state without any session records (as an older
	// release wrote it) restores, and the restored state takes them.
	old := fxSnapshot(t, src)
	oldHash, _ := src.stateHash()
	dst := fxNew(t)
	if err := dst.f.Restore(io.NopCloser(bytes.NewReader(old))); err != nil {
		t.Fatal(err)
	}
	if got, _ := dst.stateHash(); got != oldHash {
		t.Fatal("old snapshot restores to another state")
	}
	dst.index, dst.now = src.index, src.now

	// The new records change the state hash.
	for i, c := range []func(h *fxHarness) *result{
		func(h *fxHarness) *result { return fxRevokeSessions(h, "", "alice") },
		func(h *fxHarness) *result { return fxRevokeToken(h, "", "beef", h.now+int64(time.Hour)) },
	} {
		before, _ := src.stateHash()
		beforeContent := src.contentHash()
		if res := c(src); res.Err != nil {
			t.Fatal(res.Err)
		}
		if after, _ := src.stateHash(); after == before || src.contentHash() == beforeContent {
			t.Fatalf("command %d does not change the state hash", i)
		}
		// The restored replica applies the same entries to the same state.
		dst.applyLogs(src.logs[len(src.logs)-1])
		a, ai := src.stateHash()
		b, bi := dst.stateHash()
		if a != b || ai != bi {
			t.Fatalf("command %d: replicas differ", i)
		}
	}
	va := fxValidAfter(src, "alice")
	if va.IsZero() {
		t.Fatal("no SessionsValidAfter")
	}

	// A snapshot with them round-trips.
	want, idx := src.stateHash()
	data := fxSnapshot(t, src)
	fresh := fxNew(t)
	if err := fresh.f.Restore(io.NopCloser(bytes.NewReader(data))); err != nil {
		t.Fatal(err)
	}
	if got, gi := fresh.stateHash(); got != want || gi != idx {
		t.Fatal("restored state differs")
	}
	if !fxTokenRevoked(fresh, "beef", src.now) || !fxValidAfter(fresh, "alice").Equal(va) {
		t.Fatal("restored state lost the session records")
	}
	// Replay after a restart skips them (applied once).
	fresh.f = fresh.openFSM()
	out := fresh.applyLogs(src.logs[len(src.logs)-2:]...)
	if !fxNoResult(out[0]) || !fxNoResult(out[1]) {
		t.Fatalf("replayed entries were applied again: %+v", out)
	}
	if got, _ := fresh.stateHash(); got != want {
		t.Fatal("replay changed the state")
	}
}
