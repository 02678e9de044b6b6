package gateway

import (
	"bytes"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/coffer-dev/coffer/internal/wire"
)

// oneShard is a cluster of one shard: the harness maps every shard to its
// one real shard, so listing users must not walk several.
type oneShard struct{ fakeCluster }

func (oneShard) Shards() int { return 1 }

func TestAdminUsers(t *testing.T) {
	e := newEnv(t, envOpts{configure: func(c *Config) { c.Cluster = oneShard{fakeCluster{key: bytes.Repeat([]byte{7}, 32)}} }})
	root := e.login("root", "rootpw")

	a := root.postJSON("/v1/admin/users", wire.UserRequest{Name: "carol", Password: "carol-pw"}, nil)
	if want(t, "create carol", a, 201, "") {
		u := decodeAs[wire.UserInfo](t, a)
		if u.Name != "carol" || u.ID == 0 || u.Namespace == 0 || u.Admin || u.Quota != 0 || u.Shard != 1 || u.Created == "" {
			t.Errorf("create answered %+v", u)
		}
	}
	want(t, "create dave", root.postJSON("/v1/admin/users", wire.UserRequest{Name: "dave", Password: "dave-pw", Quota: 1 << 20}, nil), 201, "")
	want(t, "create erin (admin)", root.postJSON("/v1/admin/users", wire.UserRequest{Name: "erin", Password: "erin-pw", Admin: true}, nil), 201, "")
	for _, tc := range []struct {
		name, body string
		status     int
		code       string
	}{
		{"an existing name", `{"name":"carol","password":"x"}`, 409, "exists"},
		{"an existing name in other case", `{"name":"CAROL","password":"x"}`, 409, "exists"},
		{"a bad name", `{"name":"no spaces please","password":"x"}`, 400, "invalid_name"},
		{"a negative quota", `{"name":"frank","password":"x","quota":-1}`, 400, "invalid_argument"},
		{"an unknown field", `{"name":"frank","password":"x","role":"god"}`, 400, "invalid_argument"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			want(t, "create", root.do("POST", "/v1/admin/users", strings.NewReader(tc.body), nil), tc.status, tc.code)
		})
	}

	// Paging one user at a time visits every user once, in name order.
	var names []string
	token := ""
	for range 10 {
		a := root.do("GET", "/v1/admin/users?limit=1&page_token="+url.QueryEscape(token), nil, nil)
		if !want(t, "list", a, 200, "") {
			break
		}
		l := decodeAs[wire.UserList](t, a)
		if len(l.Users) > 1 {
			t.Fatalf("a page of %d users with limit=1", len(l.Users))
		}
		for _, u := range l.Users {
			names = append(names, u.Name)
		}
		if token = l.NextPageToken; token == "" {
			break
		}
	}
	if strings.Join(names, ",") != "carol,dave,erin,root" {
		t.Errorf("paged listing: %v", names)
	}
	all := decodeAs[wire.UserList](t, root.do("GET", "/v1/admin/users", nil, nil))
	if len(all.Users) != 4 || all.NextPageToken != "" {
		t.Errorf("listing: %+v", all)
	}
	want(t, "a bad page token", root.do("GET", "/v1/admin/users?page_token=9.x", nil, nil), 400, "invalid_argument")
	want(t, "a bad limit", root.do("GET", "/v1/admin/users?limit=x", nil, nil), 400, "invalid_argument")

	a = root.do("GET", "/v1/admin/users/dave", nil, nil)
	if want(t, "get dave", a, 200, "") {
		if u := decodeAs[wire.UserInfo](t, a); u.Name != "dave" || u.Quota != 1<<20 {
			t.Errorf("get answered %+v", u)
		}
	}
	want(t, "get nobody", root.do("GET", "/v1/admin/users/nobody", nil, nil), 404, "not_found")

	// Quota: a put over it is 507, the usage shows.
	carol := e.login("carol", "carol-pw")
	want(t, "set quota", root.do("PUT", "/v1/admin/users/carol/quota", strings.NewReader(`{"quota":100}`), nil), 200, "")
	want(t, "negative quota", root.do("PUT", "/v1/admin/users/carol/quota", strings.NewReader(`{"quota":-5}`), nil), 400, "invalid_argument")
	want(t, "quota of nobody", root.do("PUT", "/v1/admin/users/nobody/quota", strings.NewReader(`{"quota":5}`), nil), 404, "not_found")
	want(t, "within quota", carol.put("/a", randBytes(60), nil), 201, "")
	a = carol.put("/b", randBytes(60), nil)
	want(t, "over quota", a, 507, "quota_exceeded")
	want(t, "nothing committed", carol.do("GET", "/v1/files/b", nil, nil), 404, "not_found")
	want(t, "a replacement within quota", carol.put("/a", randBytes(100), nil), 200, "")
	if u := decodeAs[wire.UserInfo](t, root.do("GET", "/v1/admin/users/carol", nil, nil)); u.Quota != 100 || u.Used != 100 || u.Files != 1 {
		t.Errorf("carol's usage: %+v", u)
	}
	if w := decodeAs[Whoami](t, carol.do("GET", "/v1/whoami", nil, nil)); w.Quota != 100 || w.Used != 100 {
		t.Errorf("carol's whoami: %+v", w)
	}

	// Non-admins are refused every admin route.
	for _, r := range []struct{ method, path, body string }{
		{"GET", "/v1/admin/users", ""},
		{"POST", "/v1/admin/users", `{"name":"x","password":"x"}`},
		{"GET", "/v1/admin/users/carol", ""},
		{"PUT", "/v1/admin/users/carol/quota", `{"quota":0}`},
		{"PUT", "/v1/admin/users/dave/password", `{"new":"x"}`},
		{"POST", "/v1/admin/users/dave/logout", ""},
		{"DELETE", "/v1/admin/users/dave", ""},
	} {
		want(t, "carol "+r.method+" "+r.path, carol.do(r.method, r.path, strings.NewReader(r.body), nil), 403, "forbidden")
	}
	// Another admin may.
	erin := e.login("erin", "erin-pw")
	want(t, "erin lists", erin.do("GET", "/v1/admin/users", nil, nil), 200, "")

	// Reset password: carol's sessions end; the new password works.
	dave := e.login("dave", "dave-pw")
	want(t, "reset password", root.do("PUT", "/v1/admin/users/carol/password", strings.NewReader(`{"new":"carol-2"}`), nil), 200, "")
	want(t, "carol's old session", carol.do("GET", "/v1/whoami", nil, nil), 401, "token_revoked")
	want(t, "another user's session", dave.do("GET", "/v1/whoami", nil, nil), 200, "")
	e.clk.add(time.Second)
	want(t, "carol's old password", (&sess{e: e}).do("POST", "/v1/login", strings.NewReader(`{"name":"carol","password":"carol-pw"}`), nil), 401, "unauthenticated")
	carol = e.login("carol", "carol-2")
	want(t, "carol's new session", carol.do("GET", "/v1/whoami", nil, nil), 200, "")

	// Logout a user: every session ends.
	want(t, "logout carol", root.do("POST", "/v1/admin/users/carol/logout", nil, nil), 200, "")
	want(t, "carol after the logout", carol.do("GET", "/v1/whoami", nil, nil), 401, "token_revoked")
	want(t, "logout nobody", root.do("POST", "/v1/admin/users/nobody/logout", nil, nil), 404, "not_found")

	// Delete a user; not oneself.
	want(t, "delete self", root.do("DELETE", "/v1/admin/users/root", nil, nil), 400, "invalid_argument")
	want(t, "delete self, other case", root.do("DELETE", "/v1/admin/users/ROOT", nil, nil), 400, "invalid_argument")
	want(t, "root still there", root.do("GET", "/v1/whoami", nil, nil), 200, "")
	want(t, "delete dave", root.do("DELETE", "/v1/admin/users/dave", nil, nil), 200, "")
	want(t, "get dave", root.do("GET", "/v1/admin/users/dave", nil, nil), 404, "not_found")
	want(t, "delete dave again", root.do("DELETE", "/v1/admin/users/dave", nil, nil), 404, "not_found")
	want(t, "dave's session", dave.do("GET", "/v1/whoami", nil, nil), 401, "token_revoked")
	want(t, "dave's login", (&sess{e: e}).do("POST", "/v1/login", strings.NewReader(`{"name":"dave","password":"dave-pw"}`), nil), 401, "unauthenticated")
	if names := decodeAs[wire.UserList](t, root.do("GET", "/v1/admin/users", nil, nil)).Users; len(names) != 3 {
		t.Errorf("after the delete: %+v", names)
	}
}
