package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"testing"
	"time"

	"github.com/coffer-dev/coffer/cluster"
	"github.com/coffer-dev/coffer/raftmeta"
)

// apiCall sends one request to base+path with a Bearer token, retrying
// 503 (the cluster settling right after formation) for up to 30 s; a
// mutating request carries idemKey so a retry is applied at most once.
func apiCall(base, method, path, token, idemKey string, body []byte) (int, http.Header, []byte, error) {
	deadline := time.Now().Add(30 * time.Second)
	for {
		req, err := http.NewRequest(method, base+path, bytes.NewReader(body))
		if err != nil {
			return 0, nil, nil, err
		}
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		if idemKey != "" {
			req.Header.Set("Idempotency-Key", idemKey)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return 0, nil, nil, err
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			return 0, nil, nil, err
		}
		if resp.StatusCode == http.StatusServiceUnavailable && time.Now().Before(deadline) {
			time.Sleep(100 * time.Millisecond) // back off before the retry
			continue
		}
		return resp.StatusCode, resp.Header, b, nil
	}
}

// `cofferd dev` serves the user API: the first admin logs in with the dev
// admin password, uploads a file, reads it back, lists its folder and sees
// its history.
func TestDevServesTheAPI(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a 3-node cluster")
	}
	addr, err := freeAddr()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	var out bytes.Buffer
	checked := false
	cfg := devConfig{Dir: t.TempDir(), HTTPAddr: addr, Exit: true, Log: slog.New(slog.DiscardHandler), Out: &out,
		onReady: func(nodes []*cluster.Node, password string) error {
			checked = true
			return checkDevAPI(t, "http://"+addr, password)
		}}
	if err := runDev(ctx, cfg); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	if !checked {
		t.Fatalf("runDev never reported ready:\n%s", out.String())
	}
}

// checkDevAPI runs the API checks against the dev cluster's gateway.
func checkDevAPI(t *testing.T, base, password string) error {
	login, _ := json.Marshal(map[string]string{"name": cluster.AdminUser, "password": password})
	code, _, body, err := apiCall(base, "POST", "/v1/login", "", "", login)
	if err != nil {
		return err
	}
	var tok struct {
		Token string `json:"token"`
		Admin bool   `json:"admin"`
	}
	if code != http.StatusOK || json.Unmarshal(body, &tok) != nil || tok.Token == "" || !tok.Admin {
		return fmt.Errorf("login as %s: HTTP %d %s", cluster.AdminUser, code, body)
	}

	data := make([]byte, 1<<20)
	rand.Read(data)
	const path = "/dev-test/one.bin"
	code, _, body, err = apiCall(base, "PUT", "/v1/files"+path, tok.Token, "dev-test-put", data)
	if err != nil {
		return err
	}
	var put struct {
		Rev  uint64 `json:"rev"`
		Size int64  `json:"size"`
	}
	if code != http.StatusCreated || json.Unmarshal(body, &put) != nil || put.Rev != 1 || put.Size != int64(len(data)) {
		return fmt.Errorf("PUT %s: HTTP %d %s", path, code, body)
	}

	code, hdr, got, err := apiCall(base, "GET", "/v1/files"+path, tok.Token, "", nil)
	if err != nil {
		return err
	}
	if code != http.StatusOK || !bytes.Equal(got, data) || hdr.Get("X-Coffer-Rev") != "1" {
		return fmt.Errorf("GET %s: HTTP %d, %d bytes, rev %q; want the %d bytes put, rev 1", path, code, len(got), hdr.Get("X-Coffer-Rev"), len(data))
	}

	code, _, body, err = apiCall(base, "GET", "/v1/list/dev-test", tok.Token, "", nil)
	if err != nil {
		return err
	}
	var list raftmeta.ListPage
	if code != http.StatusOK || json.Unmarshal(body, &list) != nil {
		return fmt.Errorf("list /dev-test: HTTP %d %s", code, body)
	}
	if len(list.Entries) != 1 || list.Entries[0].Name != "one.bin" || list.Entries[0].Size != int64(len(data)) || list.Entries[0].Rev != 1 {
		return fmt.Errorf("list /dev-test: %+v; want one.bin alone, %d bytes, rev 1", list.Entries, len(data))
	}

	code, _, body, err = apiCall(base, "GET", "/v1/history"+path, tok.Token, "", nil)
	if err != nil {
		return err
	}
	var hist struct {
		Revisions []raftmeta.Revision `json:"revisions"`
	}
	if code != http.StatusOK || json.Unmarshal(body, &hist) != nil {
		return fmt.Errorf("history %s: HTTP %d %s", path, code, body)
	}
	if len(hist.Revisions) != 1 || hist.Revisions[0].Rev != 1 || hist.Revisions[0].Size != int64(len(data)) {
		return fmt.Errorf("history %s: %+v; want revision 1 alone", path, hist.Revisions)
	}
	t.Logf("dev API: login, PUT 1 MiB, GET, list, history all as expected")
	return nil
}
