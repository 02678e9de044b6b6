package cluster

// The admin checks the fault harness relies on, against one in-process
// 3-node cluster: replica state hashes, leadership transfers and the block
// audit (with a copy deleted and one corrupted on disk).

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/coffer-dev/coffer/blockstore"
	"github.com/coffer-dev/coffer/client"
	"github.com/coffer-dev/coffer/internal/wire"
	"github.com/coffer-dev/coffer/raftmeta"
)

// checksShards gives 5 groups over 3 nodes: leaders spread 2, 2, 1, so a
// transfer from a node leading two to the one leading one keeps the spread
// (the placement controller then leaves it alone).
const checksShards = 4

func TestAdminChecks(t *testing.T) {
	if testing.Short() {
		t.Skip("in-process cluster")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	n1 := startTestNode(t, testNodeOpts{name: "n1", expect: 3, shards: checksShards})
	_, _, seed, _ := n1.Addrs()
	n2 := startTestNode(t, testNodeOpts{name: "n2", expect: 3, shards: checksShards, join: []string{seed}})
	n3 := startTestNode(t, testNodeOpts{name: "n3", expect: 3, shards: checksShards, join: []string{seed}})
	c := &apiCluster{nodes: []*Node{n1, n2, n3}, hc: &http.Client{}}
	waitFor(t, 90*time.Second, "three nodes form the cluster, leaders spread", func() error {
		_, err := steadyLeaders(ctx, n1)
		return err
	})
	for _, n := range c.nodes {
		waitFor(t, 30*time.Second, n.Name()+" ready", n.Ready)
	}
	adminToken := c.login(t, 0, "admin", testAdminPassword)
	var servers []string
	for i := range c.nodes {
		servers = append(servers, "http://"+c.addr(i))
	}
	admin, err := client.New(client.Config{Servers: servers, Token: adminToken})
	if err != nil {
		t.Fatal(err)
	}

	// A user on a shard whose leader leads two groups: the transfer below
	// moves exactly that shard, and the user's writes go through it.
	st, err := steadyLeaders(ctx, n1)
	if err != nil {
		t.Fatal(err)
	}
	leads := leadersPerNode(st)
	var shard uint64
	var from string
	for _, g := range st.Groups {
		if g.ID != SystemGroup && leads[g.Leader] == 2 {
			shard, from = g.ID, g.Leader
			break
		}
	}
	if shard == 0 {
		t.Fatalf("no shard led by a node that leads two groups: %v", leads)
	}
	user := ""
	for i := 0; user == ""; i++ {
		name := "user" + strconv.Itoa(i)
		if s, _ := raftmeta.ShardOf(name, checksShards); s == shard {
			user = name
		}
	}
	token := c.newUser(t, 1, adminToken, user)
	files := map[string][]byte{}
	for i := range 6 {
		p := fmt.Sprintf("/f%d", i)
		files[p] = randBytes(uint64(100+i), 1000+i*150_000)
		c.put(t, i%3, token, p, files[p], nil, http.StatusCreated)
	}

	t.Run("refused", func(t *testing.T) {
		for _, rt := range []struct{ method, path string }{
			{"GET", "/v1/admin/groups/1/hashes"},
			{"POST", "/v1/admin/groups/1/transfer"},
			{"POST", "/v1/admin/blocks/audit"},
		} {
			r := c.call(t, 0, rt.method, rt.path, token, nil, nil)
			if r.status != http.StatusForbidden || r.detail().Code != "forbidden" {
				t.Errorf("%s %s as a user: %s, want 403 forbidden", rt.method, rt.path, r)
			}
			if r := c.call(t, 0, rt.method, rt.path, "", nil, nil); r.status != http.StatusUnauthorized {
				t.Errorf("%s %s without credentials: %s, want 401", rt.method, rt.path, r)
			}
		}
		for _, rt := range []struct{ method, path, body string }{
			{"GET", "/v1/admin/groups/one/hashes", ""},
			{"POST", "/v1/admin/groups/-1/transfer", ""},
			{"POST", "/v1/admin/groups/1/transfer", `{"to":"n1","now":true}`},
			{"POST", "/v1/admin/groups/1/transfer", `["n1"]`},
			{"POST", "/v1/admin/blocks/audit?timeout=forever", ""},
			{"POST", "/v1/admin/blocks/audit?timeout=3h", ""},
		} {
			r := c.call(t, 0, rt.method, rt.path, adminToken, []byte(rt.body), nil)
			if r.status != http.StatusBadRequest || r.detail().Code != "invalid_argument" {
				t.Errorf("%s %s %s: %s, want 400 invalid_argument", rt.method, rt.path, rt.body, r)
			}
		}
	})

	t.Run("hashes", func(t *testing.T) {
		for id := range uint64(checksShards + 1) {
			h := convergedHashes(t, ctx, admin, id)
			if len(h.Replicas) != 3 {
				t.Errorf("group %d: %d replicas, want 3", id, len(h.Replicas))
			}
			for _, r := range h.Replicas[1:] {
				if r.StateHash != h.Replicas[0].StateHash {
					t.Errorf("group %d at applied index %d: %s has hash %s, %s has %s", id, r.Applied,
						h.Replicas[0].Node, h.Replicas[0].StateHash, r.Node, r.StateHash)
				}
			}
		}
		// A write moves the user's shard to a new index and a new hash.
		before := convergedHashes(t, ctx, admin, shard)
		c.put(t, 2, token, "/hash-probe", []byte("moves the hash"), nil, http.StatusCreated)
		after := convergedHashes(t, ctx, admin, shard)
		if after.Replicas[0].Applied <= before.Replicas[0].Applied || after.Replicas[0].StateHash == before.Replicas[0].StateHash {
			t.Errorf("shard %d: before a write %+v, after %+v", shard, before.Replicas[0], after.Replicas[0])
		}
		if _, err := admin.GroupHashes(ctx, checksShards+1); !errors.Is(err, client.ErrNotFound) {
			t.Errorf("hashes of group %d: %v, want ErrNotFound", checksShards+1, err)
		}
	})

	t.Run("transfer", func(t *testing.T) {
		st, err := steadyLeaders(ctx, n1)
		if err != nil {
			t.Fatal(err)
		}
		leads := leadersPerNode(st)
		var to string // the node that leads one group
		for _, n := range c.nodes {
			if leads[n.Name()] == 1 {
				to = n.Name()
			}
		}
		prev := groupOf(st, shard)
		if prev.Leader != from || to == "" {
			t.Fatalf("shard %d led by %s (want %s); leaders per node %v", shard, prev.Leader, from, leads)
		}
		// No target: the voter leading the fewest groups.
		res, err := admin.TransferLeader(ctx, shard, "")
		if err != nil {
			t.Fatal(err)
		}
		if res.Leader != to || res.Previous != from || res.Term <= prev.Term {
			t.Fatalf("transfer of shard %d: %+v; want from %s to %s after term %d", shard, res, from, to, prev.Term)
		}
		waitLeader(t, ctx, admin, shard, to)
		// Writes keep working, through the new leader.
		c.put(t, 0, token, "/after-transfer", []byte("written after the transfer"), nil, http.StatusCreated)
		if r := c.call(t, 2, "GET", "/v1/files/f1", token, nil, nil); r.status != http.StatusOK || string(r.body) != string(files["/f1"]) {
			t.Errorf("GET /f1 after the transfer: %s", r)
		}
		// Naming the leader changes nothing; naming a non-voter is refused.
		same, err := admin.TransferLeader(ctx, shard, to)
		if err != nil || same.Leader != to || same.Term != res.Term {
			t.Errorf("transfer to the leader itself: %+v, %v; want %s at term %d", same, err, to, res.Term)
		}
		if _, err := admin.TransferLeader(ctx, shard, "nobody"); !errors.Is(err, client.ErrInvalidArgument) {
			t.Errorf("transfer to a non-member: %v, want ErrInvalidArgument", err)
		}
		if _, err := admin.TransferLeader(ctx, checksShards+1, ""); !errors.Is(err, client.ErrNotFound) {
			t.Errorf("transfer of an unknown group: %v, want ErrNotFound", err)
		}
		// Back to the first leader, by name.
		back, err := admin.TransferLeader(ctx, shard, from)
		if err != nil || back.Leader != from || back.Term <= res.Term {
			t.Fatalf("transfer back to %s: %+v, %v", from, back, err)
		}
		waitLeader(t, ctx, admin, shard, from)
		c.put(t, 1, token, "/after-transfer", []byte("and after the transfer back"), nil, http.StatusOK)
	})

	t.Run("audit", func(t *testing.T) {
		a, err := admin.AuditBlocks(ctx)
		if err != nil {
			t.Fatal(err)
		}
		checkAudit(t, a, len(files))
		// Damage two copies behind the replicator's back: delete n2's copy
		// of one block and corrupt n3's copy of another on disk.
		refs := localRefs(t, ctx, n2)
		if len(refs) < 2 {
			t.Fatalf("n2 holds %d blocks", len(refs))
		}
		deleted, corrupted := refs[0], refs[len(refs)-1]
		if ok, err := n2.blocks.Delete(ctx, deleted, time.Now().Add(time.Hour)); !ok || err != nil {
			t.Fatalf("delete %s on n2: %v, %v", deleted.Short(), ok, err)
		}
		loc, err := n3.blocks.Locate(ctx, corrupted)
		if err != nil {
			t.Fatal(err)
		}
		flipByte(t, loc.Path, loc.Offset+loc.Length/2)
		if has, _ := n2.blocks.Has(ctx, []blockstore.Ref{deleted}); has[0] {
			t.Fatal("n2 still has the deleted copy")
		}

		a, err = admin.AuditBlocks(ctx)
		if err != nil {
			t.Fatal(err)
		}
		checkAudit(t, a, len(files))
		nodes := map[string]wire.BlockAuditNode{}
		pushed := int64(0)
		for _, an := range a.Nodes {
			nodes[an.Node] = an
			pushed += an.Pushed
		}
		if nodes["n3"].Corrupt != 1 || nodes["n3"].Repaired != 1 {
			t.Errorf("n3's scrub: %+v, want 1 corrupt copy found and repaired", nodes["n3"])
		}
		if pushed < 1 {
			t.Errorf("no node pushed the copy n2 lost: %+v", a.Nodes)
		}
		for _, n := range []*Node{n2, n3} {
			if has, _ := n.blocks.Has(ctx, []blockstore.Ref{deleted, corrupted}); !has[0] || !has[1] {
				t.Errorf("%s after the audit: has %v", n.Name(), has)
			}
		}
		if _, err := n3.blocks.Get(ctx, corrupted); err != nil {
			t.Errorf("n3's repaired copy: %v", err)
		}
	})
}

// steadyLeaders returns n's status once every group has three voters, the
// leaders are spread (at most one apart) and the leaderships gossiped
// agree with the groups' leaders (transferTarget reads the gossip).
func steadyLeaders(ctx context.Context, n *Node) (*wire.ClusterStatus, error) {
	st, err := formed(ctx, n, []string{"n1", "n2", "n3"})
	if err != nil {
		return nil, err
	}
	l := leadersPerNode(st)
	if len(l) != 3 || spread(l) > 1 {
		return nil, fmt.Errorf("leaders per node %v", l)
	}
	for _, ns := range st.Nodes {
		var led []uint64
		for _, g := range st.Groups {
			if g.Leader == ns.Name {
				led = append(led, g.ID)
			}
		}
		if !slices.Equal(ns.Leads, led) {
			return nil, fmt.Errorf("%s gossips leads %v, leads %v", ns.Name, ns.Leads, led)
		}
	}
	return st, nil
}

func groupOf(st *wire.ClusterStatus, id uint64) wire.GroupStatus {
	for _, g := range st.Groups {
		if g.ID == id {
			return g
		}
	}
	return wire.GroupStatus{}
}

// convergedHashes polls a group's hashes until every replica answered
// with a hash at the same applied index.
func convergedHashes(t *testing.T, ctx context.Context, admin *client.Client, id uint64) *wire.GroupHashes {
	t.Helper()
	var h *wire.GroupHashes
	waitFor(t, 30*time.Second, fmt.Sprintf("group %d replicas at one applied index", id), func() error {
		var err error
		if h, err = admin.GroupHashes(ctx, id); err != nil {
			return err
		}
		if h.Group != id || len(h.Replicas) == 0 || h.Leader == "" {
			return fmt.Errorf("answer %+v", h)
		}
		for _, r := range h.Replicas {
			if r.Error != "" || len(r.StateHash) != 64 {
				return fmt.Errorf("%s: hash %q, error %q", r.Node, r.StateHash, r.Error)
			}
			if r.Applied != h.Replicas[0].Applied || r.Applied == 0 {
				return fmt.Errorf("applied indexes differ: %+v", h.Replicas)
			}
		}
		return nil
	})
	return h
}

// waitLeader waits until the cluster status names leader as the group's.
func waitLeader(t *testing.T, ctx context.Context, admin *client.Client, id uint64, leader string) {
	t.Helper()
	waitFor(t, 10*time.Second, fmt.Sprintf("status shows %s leading group %d", leader, id), func() error {
		st, err := admin.ClusterStatus(ctx)
		if err != nil {
			return err
		}
		if g := groupOf(st, id); g.Leader != leader {
			return fmt.Errorf("leader %q", g.Leader)
		}
		return nil
	})
}

// checkAudit wants every block on all three nodes and no errors.
func checkAudit(t *testing.T, a *wire.BlockAudit, minBlocks int) {
	t.Helper()
	if a.R != 3 || a.Blocks < int64(minBlocks) || a.UnderReplicatedTotal != 0 || len(a.UnderReplicated) != 0 || len(a.Nodes) != 3 {
		t.Fatalf("audit %+v: want R 3, at least %d blocks, none under-replicated, 3 nodes", a, minBlocks)
	}
	for _, n := range a.Nodes {
		if n.Error != "" || n.Blocks != a.Blocks || n.Scanned < a.Blocks-1 || n.Failed != 0 {
			t.Errorf("audit of %s: %+v; want every one of the %d blocks, no error", n.Node, n, a.Blocks)
		}
	}
}

// localRefs lists a node's local blocks.
func localRefs(t *testing.T, ctx context.Context, n *Node) []blockstore.Ref {
	t.Helper()
	var out []blockstore.Ref
	err := n.blocks.Enumerate(ctx, blockstore.Ref{}, func(info blockstore.BlockInfo) error {
		out = append(out, info.Ref)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// flipByte damages one byte of a file in place.
func flipByte(t *testing.T, path string, off int64) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b := make([]byte, 1)
	if _, err := f.ReadAt(b, off); err != nil {
		t.Fatal(err)
	}
	b[0] ^= 0x40
	if _, err := f.WriteAt(b, off); err != nil {
		t.Fatal(err)
	}
}
