package gateway

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coffer-dev/coffer/gateway/auth"
	"github.com/coffer-dev/coffer/internal/wire"
)

func (s *sess) whoamiStatus(t testing.TB) answer {
	t.Helper()
	return s.do("GET", "/v1/whoami", nil, nil)
}

func TestLogout(t *testing.T) {
	e := newEnv(t, envOpts{})
	alice := e.user("alice")
	other := e.login("alice", "alice-pw")
	want(t, "whoami", alice.whoamiStatus(t), 200, "")

	a := alice.do("POST", "/v1/logout", nil, nil)
	if want(t, "logout", a, 200, "") {
		var cleared bool
		for _, c := range (&http.Response{Header: a.hdr}).Cookies() {
			cleared = cleared || (c.Name == CookieName && c.MaxAge < 0)
		}
		if !cleared {
			t.Errorf("logout did not clear the cookie: %v", a.hdr["Set-Cookie"])
		}
	}
	// The gateway that logged the session out refuses it at once.
	want(t, "the logged-out token", alice.whoamiStatus(t), 401, "token_revoked")
	want(t, "the logged-out token, another route", alice.do("GET", "/v1/files/x", nil, nil), 401, "token_revoked")
	want(t, "logout again", alice.do("POST", "/v1/logout", nil, nil), 401, "token_revoked")
	// The user's other session goes on.
	want(t, "another session", other.whoamiStatus(t), 200, "")

	// The cookie session works as the bearer one, and logs out the same way.
	cookie := &sess{e: e}
	hdr := map[string]string{"Cookie": CookieName + "=" + other.token}
	want(t, "cookie whoami", cookie.do("GET", "/v1/whoami", nil, hdr), 200, "")
	want(t, "cookie logout", cookie.do("POST", "/v1/logout", nil, hdr), 200, "")
	want(t, "cookie after logout", cookie.do("GET", "/v1/whoami", nil, hdr), 401, "token_revoked")
	want(t, "its bearer form", other.whoamiStatus(t), 401, "token_revoked")
}

// TestLogoutSeenByOtherGateways: a logout through one gateway is seen by
// another within its revocation cache's TTL.
func TestLogoutSeenByOtherGateways(t *testing.T) {
	e := newEnv(t, envOpts{})
	alice := e.user("alice")
	other := alice.via(e.secondGateway())
	want(t, "whoami via the other gateway", other.whoamiStatus(t), 200, "") // caches "not revoked" there
	want(t, "logout", alice.do("POST", "/v1/logout", nil, nil), 200, "")
	e.clk.add(auth.DefaultCheckerTTL + time.Second)
	want(t, "the other gateway after the TTL", other.whoamiStatus(t), 401, "token_revoked")
}

func TestLogoutAll(t *testing.T) {
	e := newEnv(t, envOpts{})
	alice := e.user("alice")
	second := e.login("alice", "alice-pw")
	other := alice.via(e.secondGateway())
	want(t, "whoami", other.whoamiStatus(t), 200, "")
	bob := e.user("bob")

	want(t, "logout all", alice.do("POST", "/v1/logout?all=1", nil, nil), 200, "")
	want(t, "the session that logged out", alice.whoamiStatus(t), 401, "token_revoked")
	want(t, "another session", second.whoamiStatus(t), 401, "token_revoked")
	want(t, "another user", bob.whoamiStatus(t), 200, "")
	e.clk.add(auth.DefaultCheckerTTL + time.Second)
	want(t, "another gateway, after the TTL", other.whoamiStatus(t), 401, "token_revoked")
	again := e.login("alice", "alice-pw")
	want(t, "a new login", again.whoamiStatus(t), 200, "")
}

// TestLoginRightAfterRevocation: a login in the same second as a cut-off
// (logout everywhere, password change, admin reset) must give a token that
// works.
func TestLoginRightAfterRevocation(t *testing.T) {
	e := newEnv(t, envOpts{})
	alice := e.user("alice")
	want(t, "logout all", alice.do("POST", "/v1/logout?all=1", nil, nil), 200, "")
	want(t, "a login right after logout all", e.login("alice", "alice-pw").whoamiStatus(t), 200, "")

	e.clk.add(time.Minute)
	bob := e.user("bob")
	want(t, "change password", bob.postJSON("/v1/password", wire.PasswordRequest{Current: "bob-pw", New: "bob-2"}, nil), 200, "")
	want(t, "a login right after the change", e.login("bob", "bob-2").whoamiStatus(t), 200, "")

	e.clk.add(time.Minute)
	carol := e.user("carol")
	root := e.login("root", "rootpw")
	want(t, "admin reset", root.do("PUT", "/v1/admin/users/carol/password", strings.NewReader(`{"new":"carol-2"}`), nil), 200, "")
	want(t, "the old session", carol.whoamiStatus(t), 401, "token_revoked")
	want(t, "a login right after the reset", e.login("carol", "carol-2").whoamiStatus(t), 200, "")
}

func TestChangePassword(t *testing.T) {
	e := newEnv(t, envOpts{})
	alice := e.user("alice")
	second := e.login("alice", "alice-pw")

	for _, tc := range []struct {
		name, body string
		status     int
		code       string
	}{
		{"wrong current password", `{"current":"nope","new":"x"}`, 401, "unauthenticated"},
		{"no current password", `{"new":"x"}`, 401, "unauthenticated"},
		{"unknown field", `{"current":"alice-pw","new":"x","again":"x"}`, 400, "invalid_argument"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			want(t, "password", alice.do("POST", "/v1/password", strings.NewReader(tc.body), nil), tc.status, tc.code)
		})
	}
	want(t, "still logged in", alice.whoamiStatus(t), 200, "")

	a := alice.postJSON("/v1/password", wire.PasswordRequest{Current: "alice-pw", New: "alice-new"}, nil)
	if !want(t, "change password", a, 200, "") {
		return
	}
	lr := decodeAs[LoginResponse](t, a)
	if lr.Token == "" || lr.Token == alice.token || lr.User != "alice" {
		t.Fatalf("change password answered %+v", lr)
	}
	fresh := &sess{e: e, token: lr.Token}
	want(t, "the fresh token", fresh.whoamiStatus(t), 200, "")
	want(t, "the old token", alice.whoamiStatus(t), 401, "token_revoked")
	want(t, "another old session", second.whoamiStatus(t), 401, "token_revoked")

	e.clk.add(time.Second)
	anon := &sess{e: e}
	want(t, "login with the old password", anon.do("POST", "/v1/login", strings.NewReader(`{"name":"alice","password":"alice-pw"}`), nil), 401, "unauthenticated")
	want(t, "login with the new password", e.login("alice", "alice-new").whoamiStatus(t), 200, "")
	want(t, "basic with the new password", anon.do("GET", "/v1/whoami", nil, map[string]string{"Authorization": "Basic " + basic("alice", "alice-new")}), 200, "")
	want(t, "basic with the old password", anon.do("GET", "/v1/whoami", nil, map[string]string{"Authorization": "Basic " + basic("alice", "alice-pw")}), 401, "unauthenticated")
}

func TestDeletedAndRecreatedUser(t *testing.T) {
	e := newEnv(t, envOpts{})
	root := e.login("root", "rootpw")
	bob := e.user("bob")
	want(t, "bob's put", bob.put("/b.txt", []byte("bob's"), nil), 201, "")
	e.clk.add(2 * time.Second)

	want(t, "delete bob", root.do("DELETE", "/v1/admin/users/bob", nil, nil), 200, "")
	want(t, "the deleted user's token", bob.whoamiStatus(t), 401, "token_revoked")
	want(t, "the deleted user's file", bob.do("GET", "/v1/files/b.txt", nil, nil), 401, "token_revoked")
	want(t, "the deleted user's login", (&sess{e: e}).do("POST", "/v1/login", strings.NewReader(`{"name":"bob","password":"bob-pw"}`), nil), 401, "unauthenticated")

	want(t, "re-create bob", root.postJSON("/v1/admin/users", wire.UserRequest{Name: "bob", Password: "bob-pw"}, nil), 201, "")
	want(t, "the old bob's token", bob.whoamiStatus(t), 401, "token_revoked")
	// Past the revocation cache's TTL the answer comes from the new
	// account's creation time.
	e.clk.add(auth.DefaultCheckerTTL + time.Second)
	want(t, "the old bob's token, uncached", bob.whoamiStatus(t), 401, "token_revoked")
	nb := e.login("bob", "bob-pw")
	want(t, "the new bob", nb.whoamiStatus(t), 200, "")
	want(t, "the new bob sees none of the old one's files", nb.do("GET", "/v1/files/b.txt", nil, nil), 404, "not_found")
}

// TestRecreatedUserLoginAtOnce: a user re-created through a gateway can
// use a new session on it at once.
func TestRecreatedUserLoginAtOnce(t *testing.T) {
	e := newEnv(t, envOpts{})
	root := e.login("root", "rootpw")
	bob := e.user("bob")
	e.clk.add(2 * time.Second)
	want(t, "delete bob", root.do("DELETE", "/v1/admin/users/bob", nil, nil), 200, "")
	want(t, "the deleted user's token", bob.whoamiStatus(t), 401, "token_revoked")
	e.clk.add(2 * time.Second)
	want(t, "re-create bob", root.postJSON("/v1/admin/users", wire.UserRequest{Name: "bob", Password: "bob-pw"}, nil), 201, "")
	want(t, "the new bob", e.login("bob", "bob-pw").whoamiStatus(t), 200, "")
}

// TestRecreatedUserSameSecond: a token of a deleted user is refused for a
// new user of the same name even when all happens within one second.
func TestRecreatedUserSameSecond(t *testing.T) {
	e := newEnv(t, envOpts{})
	root := e.login("root", "rootpw")
	bob := e.user("bob")
	want(t, "delete bob", root.do("DELETE", "/v1/admin/users/bob", nil, nil), 200, "")
	want(t, "re-create bob", root.postJSON("/v1/admin/users", wire.UserRequest{Name: "bob", Password: "other"}, nil), 201, "")
	want(t, "the old bob's token", bob.whoamiStatus(t), 401, "token_revoked")
}
