package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"testing"
	"time"

	"github.com/coffer-dev/coffer/cluster"
	"github.com/coffer-dev/coffer/internal/wire"
)

func getOK(url, user, password string) error { return getJSON(url, user, password, nil) }

// getText GETs url and returns its body (200 only).
func getText(url string) (string, error) {
	resp, err := http.Get(url)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		return "", fmt.Errorf("GET %s: HTTP %d", url, resp.StatusCode)
	}
	return string(b), err
}

// getJSON GETs url (with Basic auth if user is set), wants 200 and decodes
// the body into v (if not nil); it retries for a few seconds (an admin
// check right after formation may meet a leader change).
func getJSON(url, user, password string, v any) error {
	var last error
	for range 50 {
		req, _ := http.NewRequest("GET", url, nil)
		if user != "" {
			req.SetBasicAuth(user, password)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return err
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode == 200 {
			if v == nil {
				return nil
			}
			return json.Unmarshal(b, v)
		}
		last = fmt.Errorf("GET %s: HTTP %d %s", url, resp.StatusCode, b)
		if resp.StatusCode != 503 {
			return last
		}
		time.Sleep(100 * time.Millisecond) // poll interval
	}
	return last
}

// `make run` runs `cofferd dev`: three real nodes in one process on
// loopback, with 8 shard groups of 3 replicas. Run it twice on one data
// directory: the second run reuses the cluster (same ID, same addresses).
func TestDevFormsAndRestarts(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a 3-node cluster twice")
	}
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	idRE := regexp.MustCompile(`cluster ([0-9a-f]{16}) ready in [0-9.]+s: 3 nodes, system group \+ 8 shard groups`)
	var ids []string
	for run := 1; run <= 2; run++ {
		var out bytes.Buffer
		addr, err := freeAddr()
		if err != nil {
			t.Fatal(err)
		}
		cfg := devConfig{Dir: dir, HTTPAddr: addr, Exit: true, Log: slog.New(slog.DiscardHandler), Out: &out,
			onReady: func(nodes []*cluster.Node, password string) error {
				// The first admin exists: the admin API takes its password
				// on every node, and /readyz says ready.
				for _, n := range nodes {
					_, _, _, h := n.Addrs()
					if err := getOK("http://"+h+"/readyz", "", ""); err != nil {
						return err
					}
					var st wire.ClusterStatus
					if err := getJSON("http://"+h+"/v1/admin/cluster", "admin", password, &st); err != nil {
						return err
					}
					if len(st.Groups) != 9 || len(st.Nodes) != 3 {
						return fmt.Errorf("status from %s: %d groups, %d nodes", n.Name(), len(st.Groups), len(st.Nodes))
					}
				}
				return nil
			}}
		if err := runDev(ctx, cfg); err != nil {
			t.Fatalf("run %d: %v\n%s", run, err, out.String())
		}
		m := idRE.FindStringSubmatch(out.String())
		if m == nil {
			t.Fatalf("run %d printed no ready line:\n%s", run, out.String())
		}
		ids = append(ids, m[1])
		t.Logf("run %d:\n%s", run, out.String())
	}
	if ids[0] != ids[1] {
		t.Fatalf("the restart made a new cluster: %s then %s", ids[0], ids[1])
	}
	// The generated admin password was kept for the next run.
	if b, err := os.ReadFile(filepath.Join(dir, "dev-admin-password")); err != nil || len(b) < 16 {
		t.Fatalf("dev-admin-password: %q, %v", b, err)
	}
}

// freeAddr returns one loopback address whose port is free right now.
func freeAddr() (string, error) {
	a, err := freeAddrs(1)
	if err != nil {
		return "", err
	}
	return a[0], nil
}
