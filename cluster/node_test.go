package cluster

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/coffer-dev/coffer/blockstore"
	"github.com/coffer-dev/coffer/cluster/adminrpc"
	"github.com/coffer-dev/coffer/cluster/metarpc"
	"github.com/coffer-dev/coffer/cluster/sysgroup"
	"github.com/coffer-dev/coffer/internal/wire"
	"github.com/coffer-dev/coffer/raftmeta"
)

const testAdminPassword = "correct horse battery"

// testNode starts a Fast node on free loopback ports.
type testNodeOpts struct {
	name   string
	dir    string
	join   []string
	expect int
	shards int
}

func testLogger(t testing.TB) *slog.Logger {
	if testing.Verbose() && os.Getenv("COFFER_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	}
	return slog.New(slog.DiscardHandler)
}

func testConfig(t testing.TB, o testNodeOpts) Config {
	if o.dir == "" {
		o.dir = filepath.Join(t.TempDir(), o.name)
	}
	return Config{
		Name: o.name, Dir: o.dir,
		RaftAddr: "127.0.0.1:0", GRPCAddr: "127.0.0.1:0", GossipAddr: "127.0.0.1:0", HTTPAddr: "127.0.0.1:0",
		Join: o.join, BootstrapExpect: o.expect, Shards: o.shards,
		AdminPassword: testAdminPassword,
		Password:      raftmeta.PasswordParams{Time: 1, MemoryKiB: 1024, Threads: 1},
		Fast:          true, BlockMinFreeBytes: -1,
		Logger: testLogger(t).With("test_node", o.name),
	}
}

func startTestNode(t testing.TB, o testNodeOpts) *Node {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	n, err := Start(ctx, testConfig(t, o))
	if err != nil {
		t.Fatalf("start %s: %v", o.name, err)
	}
	t.Cleanup(func() { n.Close() })
	return n
}

// waitFor polls cond until it returns nil or the deadline passes.
func waitFor(t testing.TB, timeout time.Duration, what string, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not done after %v: %v", what, timeout, err)
		}
		time.Sleep(50 * time.Millisecond) // poll interval
	}
}

// formed checks that every group has a leader and exactly the voters
// want names, with no nonvoters, as n's Status reports it.
func formed(ctx context.Context, n *Node, want []string) (*wire.ClusterStatus, error) {
	st, err := n.Status(ctx)
	if err != nil {
		return nil, err
	}
	if st.Shards == 0 || len(st.Groups) != st.Shards+1 {
		return st, fmt.Errorf("groups %d of %d answer; problems %v", len(st.Groups), st.Shards+1, st.Problems)
	}
	for _, g := range st.Groups {
		var voters []string
		for _, r := range g.Replicas {
			if r.Suffrage != "voter" {
				return st, fmt.Errorf("group %d has nonvoter %s", g.ID, r.Node)
			}
			voters = append(voters, r.Node)
		}
		slices.Sort(voters)
		if g.Leader == "" {
			return st, fmt.Errorf("group %d has no leader", g.ID)
		}
		if want != nil && !slices.Equal(voters, want) {
			return st, fmt.Errorf("group %d voters %v, want %v", g.ID, voters, want)
		}
		if want == nil && len(voters) != 3 {
			return st, fmt.Errorf("group %d voters %v, want 3", g.ID, voters)
		}
	}
	return st, nil
}

func replicasPerNode(st *wire.ClusterStatus) map[string]int {
	out := map[string]int{}
	for _, g := range st.Groups {
		for _, r := range g.Replicas {
			out[r.Node]++
		}
	}
	return out
}

func leadersPerNode(st *wire.ClusterStatus) map[string]int {
	out := map[string]int{}
	for _, g := range st.Groups {
		out[g.Leader]++
	}
	return out
}

// adminGet fetches an admin endpoint of n with the admin's credentials.
func adminGet(t testing.TB, n *Node, path, user, password string) (int, []byte) {
	t.Helper()
	_, _, _, httpAddr := n.Addrs()
	req, _ := http.NewRequest("GET", "http://"+httpAddr+path, nil)
	if user != "" {
		req.SetBasicAuth(user, password)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

// crash stops a node as a crash would: no leadership hand-off, no gossip
// leave. (Its files are closed, which a crash would not do; what is on
// disk is what fsync made durable either way.)
func (n *Node) crash() {
	n.crashed.Store(true)
	n.members.Kill()
	n.Close()
}

// One story, in-process: three nodes form a cluster (with the admin user);
// leaders are spread; a fourth node joins and receives replicas; a node
// crashes and its replicas move to the others; a node is removed on
// purpose and drained.
func TestClusterFormsGrowsHealsAndDrains(t *testing.T) {
	if testing.Short() {
		t.Skip("in-process cluster")
	}
	ctx := context.Background()
	const shards = 4
	n1 := startTestNode(t, testNodeOpts{name: "n1", expect: 3, shards: shards})
	_, _, seed, _ := n1.Addrs()
	n2 := startTestNode(t, testNodeOpts{name: "n2", expect: 3, shards: shards, join: []string{seed}})
	n3 := startTestNode(t, testNodeOpts{name: "n3", expect: 3, shards: shards, join: []string{seed}})
	all3 := []string{"n1", "n2", "n3"}
	waitFor(t, 60*time.Second, "three nodes form the cluster", func() error {
		_, err := formed(ctx, n1, all3)
		return err
	})
	for _, n := range []*Node{n1, n2, n3} {
		waitFor(t, 10*time.Second, n.Name()+" ready", n.Ready)
		if n.ClusterID() != n1.ClusterID() || n.Shards() != shards {
			t.Fatalf("%s: cluster %q shards %d; n1 has %q", n.Name(), n.ClusterID(), n.Shards(), n1.ClusterID())
		}
	}
	// The cluster ID is recorded in every data directory.
	b, err := os.ReadFile(filepath.Join(n3.cfg.Dir, "node.json"))
	if err != nil || !strings.Contains(string(b), n1.ClusterID()) {
		t.Fatalf("n3 node.json %s, %v: want the cluster ID %s", b, err, n1.ClusterID())
	}
	// Leaders are spread: 5 groups over 3 nodes.
	waitFor(t, 30*time.Second, "leaders spread", func() error {
		st, err := formed(ctx, n1, all3)
		if err != nil {
			return err
		}
		l := leadersPerNode(st)
		if spread(l) > 1 || len(l) != 3 {
			return fmt.Errorf("leaders per node %v", l)
		}
		return nil
	})
	// The first admin exists and the admin API takes its credentials.
	var st wire.ClusterStatus
	waitFor(t, 30*time.Second, "admin status over HTTP", func() error {
		code, body := adminGet(t, n2, "/v1/admin/cluster", "admin", testAdminPassword)
		if code != 200 {
			return fmt.Errorf("HTTP %d %s", code, body)
		}
		return json.Unmarshal(body, &st)
	})
	if st.ClusterID != n1.ClusterID() || len(st.Nodes) != 3 || len(st.Groups) != shards+1 {
		t.Fatalf("status %+v", st)
	}
	for _, nd := range st.Nodes {
		if nd.State != "alive" || nd.Block == nil {
			t.Errorf("node %+v: want alive with block usage", nd)
		}
	}
	if code, body := adminGet(t, n2, "/v1/admin/cluster", "admin", "wrong"); code != 401 || !strings.Contains(string(body), `"unauthenticated"`) {
		t.Errorf("wrong password: HTTP %d %s", code, body)
	}
	if code, _ := adminGet(t, n2, "/readyz", "", ""); code != 200 {
		t.Errorf("/readyz = %d", code)
	}
	// The gateway: log in on n3, use the token on n1 (tokens are verified
	// locally with the cluster's key, on any node).
	_, _, _, h3 := n3.Addrs()
	resp, err := http.Post("http://"+h3+"/v1/login", "application/json", strings.NewReader(`{"name":"admin","password":"`+testAdminPassword+`"}`))
	if err != nil {
		t.Fatal(err)
	}
	var login struct{ Token string }
	json.NewDecoder(resp.Body).Decode(&login)
	resp.Body.Close()
	if resp.StatusCode != 200 || login.Token == "" {
		t.Fatalf("login on n3: HTTP %d", resp.StatusCode)
	}
	_, _, _, h1 := n1.Addrs()
	req, _ := http.NewRequest("GET", "http://"+h1+"/v1/whoami", nil)
	req.Header.Set("Authorization", "Bearer "+login.Token)
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var who struct {
		User  string
		Admin bool
	}
	json.NewDecoder(resp.Body).Decode(&who)
	resp.Body.Close()
	if resp.StatusCode != 200 || who.User != "admin" || !who.Admin {
		t.Fatalf("whoami on n1 with n3's token: HTTP %d %+v", resp.StatusCode, who)
	}
	code, metrics := adminGet(t, n1, "/metrics", "", "")
	for _, series := range []string{
		`coffer_raft_commit_index{group="0"}`, `coffer_raft_applied_index{group="3"}`, `coffer_raft_apply_lag_entries{group="1"}`,
		`coffer_raft_is_leader{group="2"}`, `coffer_raft_leader_changes_total{group="0"}`, `coffer_gossip_members{state="alive"} 3`,
		`coffer_block_bytes{kind="disk"}`, `coffer_grpc_requests_total{code="OK",method="/coffer.cluster.v1.AdminService/Call"}`,
		`go_goroutines`,
	} {
		if code != 200 || !strings.Contains(string(metrics), series) {
			t.Errorf("/metrics (HTTP %d) lacks %s", code, series)
		}
	}

	// A fourth node joins and receives replicas: 15 replicas over 4 nodes.
	n4 := startTestNode(t, testNodeOpts{name: "n4", shards: shards, join: []string{seed}})
	waitFor(t, 90*time.Second, "n4 receives replicas", func() error {
		st, err := formed(ctx, n1, nil)
		if err != nil {
			return err
		}
		r := replicasPerNode(st)
		if r["n4"] < 3 || spread(r) > 1 {
			return fmt.Errorf("replicas per node %v", r)
		}
		return nil
	})

	// n2 crashes: after DeadAfter its replicas move to the three others.
	n2.crash()
	rest := []string{"n1", "n3", "n4"}
	waitFor(t, 90*time.Second, "n2's replicas move", func() error {
		_, err := formed(ctx, n1, rest)
		return err
	})
	st2, err := n3.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, nd := range st2.Nodes {
		if nd.Name == "n2" && nd.State != "dead" {
			t.Errorf("status lists n2 as %q, want dead", nd.State)
		}
	}

	// n4 is removed on purpose: drained (no replacement left: groups
	// keep n1 and n3), then recorded as removed.
	if err := n3.RemoveNode(ctx, "n4"); err != nil {
		t.Fatal(err)
	}
	if err := n3.RemoveNode(ctx, "nobody"); err == nil {
		t.Error("removing an unknown node succeeded")
	}
	waitFor(t, 90*time.Second, "n4 drained and removed", func() error {
		if _, err := formed(ctx, n1, []string{"n1", "n3"}); err != nil {
			return err
		}
		leader := n1.leaderName(SystemGroup)
		var sys *sysgroup.Group
		for _, n := range []*Node{n1, n3} {
			if n.Name() == leader {
				sys = n.group(SystemGroup).sys
			}
		}
		if sys == nil {
			return fmt.Errorf("no system group leader")
		}
		rec, err := sys.Node("n4")
		if err != nil || rec.State != sysgroup.NodeRemoved {
			return fmt.Errorf("n4 record %+v, %v", rec, err)
		}
		if !n4.draining.Load() {
			return errors.New("n4 was not told to drain")
		}
		return nil
	})
	// n4 drops its replicas once no group lists it.
	waitFor(t, 30*time.Second, "n4 drops its replicas", func() error {
		if h := n4.hosted(); len(h) != 0 {
			return fmt.Errorf("n4 still hosts %d replicas", len(h))
		}
		return nil
	})
}

// A node without the meta role takes no group replicas; one without the
// block role is not a block node (but still reads and writes blocks).
func TestRolesRespected(t *testing.T) {
	if testing.Short() {
		t.Skip("in-process cluster")
	}
	ctx := context.Background()
	n1 := startTestNode(t, testNodeOpts{name: "n1", expect: 3, shards: 1})
	_, _, seed, _ := n1.Addrs()
	n2 := startTestNode(t, testNodeOpts{name: "n2", expect: 3, shards: 1, join: []string{seed}})
	cfg := testConfig(t, testNodeOpts{name: "n3", expect: 3, shards: 1, join: []string{seed}})
	cfg.Roles = []string{RoleMeta, RoleGateway} // no block store
	n3, err := Start(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n3.Close() })
	bcfg := testConfig(t, testNodeOpts{name: "b1", join: []string{seed}})
	bcfg.Roles = []string{RoleBlock}
	b1, err := Start(ctx, bcfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b1.Close() })
	waitFor(t, 60*time.Second, "the meta nodes form the cluster", func() error {
		_, err := formed(ctx, n1, []string{"n1", "n2", "n3"})
		return err
	})
	waitFor(t, 10*time.Second, "block nodes seen", func() error {
		if got := fmt.Sprint(blockIDs(n1)); got != "[b1 n1 n2]" {
			return fmt.Errorf("block nodes %s", got)
		}
		return nil
	})
	if h := b1.hosted(); len(h) != 0 {
		t.Errorf("block-only b1 hosts %d group replicas", len(h))
	}
	if n3.blocks != nil {
		t.Errorf("n3 (no block role) has a local block store")
	}
	// n3 still writes blocks to W of the R block nodes and reads them back.
	data := []byte("a block written by a node without a block store")
	ref := blockstore.Ref(sha256.Sum256(data))
	if err := n3.Blocks().Put(ctx, ref, data); err != nil {
		t.Fatalf("put through n3: %v", err)
	}
	got, err := n3.Blocks().Get(ctx, ref)
	if err != nil || string(got) != string(data) {
		t.Fatalf("get through n3: %q, %v", got, err)
	}

	// Every node, also one without a system group replica, has the
	// cluster's signing key.
	var want *adminrpc.ClusterKeys
	for _, n := range []*Node{n1, n2, n3, b1} {
		k, err := n.ClusterKeys(ctx)
		if err != nil {
			t.Fatalf("%s: ClusterKeys: %v", n.Name(), err)
		}
		if want == nil {
			want = k
		}
		if len(k.SigningKey) != 32 || string(k.SigningKey) != string(want.SigningKey) || k.ClusterID != n1.ClusterID() {
			t.Fatalf("%s: keys of %q (%d bytes) differ from n1's", n.Name(), k.ClusterID, len(k.SigningKey))
		}
	}
	if b1.group(SystemGroup) != nil {
		t.Fatal("b1 hosts the system group; the test wants a node that does not")
	}

	// The node's metadata router reaches shard 1's leader from any node,
	// also after the leadership moves.
	meta := b1.Meta() // a node that hosts no replica at all
	u, err := meta.CreateUser(ctx, 1, raftmeta.CreateUserRequest{RequestID: "mk-alice", Name: "alice", Password: "pw"})
	if err != nil {
		t.Fatal(err)
	}
	put := func(path string) error {
		sum := raftmeta.Sum(sha256.Sum256([]byte(path)))
		_, err := meta.Commit(ctx, 1, raftmeta.CommitRequest{RequestID: "put-" + path, Namespace: u.Namespace, Ops: []raftmeta.Op{{
			Kind: raftmeta.OpPut, Path: path, Size: 1, Hash: sum, Blocks: []raftmeta.Block{{Ref: sum, Size: 1}}}}})
		return err
	}
	if err := put("/before"); err != nil {
		t.Fatal(err)
	}
	// Move shard 1's leadership to another voter.
	all := map[string]*Node{"n1": n1, "n2": n2, "n3": n3}
	leader := n1.leaderName(1)
	ln := all[leader]
	if ln == nil {
		t.Fatalf("shard 1 leader %q is not a meta node", leader)
	}
	info, err := ln.GroupInfo(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	to := ""
	for _, r := range info.Config {
		if r.Node != leader && r.Suffrage == "voter" {
			to = r.Node
		}
	}
	if err := ln.ChangeGroup(ctx, adminrpc.GroupChange{Group: 1, Kind: adminrpc.Transfer, Node: to}); err != nil {
		t.Fatalf("transfer to %s: %v", to, err)
	}
	if err := put("/after"); err != nil {
		t.Fatalf("commit after the leadership moved: %v", err)
	}
	for _, p := range []string{"/before", "/after"} {
		if _, err := meta.Stat(ctx, 1, u.Namespace, raftmeta.Target{Path: p}, raftmeta.StatOptions{}); err != nil {
			t.Errorf("stat %s: %v", p, err)
		}
	}
}

func blockIDs(n *Node) []string {
	var out []string
	for _, b := range (&blockMembership{n: n}).BlockNodes() {
		out = append(out, string(b.ID))
	}
	return out
}

// A node removed while it was down comes back with its old replicas on
// disk; the orphan sweep drops them (their groups' leaders no longer list
// it) and, removed for good, it gets no new ones.
func TestRemovedNodeDropsStaleReplicasOnRestart(t *testing.T) {
	if testing.Short() {
		t.Skip("in-process cluster")
	}
	ctx := context.Background()
	const shards = 2
	n1 := startTestNode(t, testNodeOpts{name: "n1", expect: 3, shards: shards})
	_, _, seed, _ := n1.Addrs()
	startTestNode(t, testNodeOpts{name: "n2", expect: 3, shards: shards, join: []string{seed}})
	startTestNode(t, testNodeOpts{name: "n3", expect: 3, shards: shards, join: []string{seed}})
	waitFor(t, 60*time.Second, "three nodes form the cluster", func() error {
		_, err := formed(ctx, n1, []string{"n1", "n2", "n3"})
		return err
	})
	cfg4 := testConfig(t, testNodeOpts{name: "n4", shards: shards, join: []string{seed}})
	n4, err := Start(ctx, cfg4)
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, 60*time.Second, "n4 becomes a voter", func() error {
		st, err := formed(ctx, n1, nil)
		if err != nil {
			return err
		}
		if r := replicasPerNode(st); r["n4"] < 2 {
			return fmt.Errorf("replicas per node %v", r)
		}
		return nil
	})
	held := len(n4.hosted())
	// n4 crashes and is removed while down.
	cfg4.RaftAddr, cfg4.GRPCAddr, cfg4.GossipAddr, cfg4.HTTPAddr = n4.Addrs()
	n4.crash()
	if err := n1.RemoveNode(ctx, "n4"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 60*time.Second, "n4's replicas move away", func() error {
		_, err := formed(ctx, n1, []string{"n1", "n2", "n3"})
		return err
	})
	// Removed (and down), n4 is not a block node that failed to answer: the
	// block audit leaves it out (the fault harness found it counted as
	// one).
	waitFor(t, 30*time.Second, "the block audit leaves removed n4 out", func() error {
		a, err := n1.AuditBlocks(ctx)
		if err != nil {
			return err
		}
		for _, nd := range a.Nodes {
			if nd.Node == "n4" || nd.Error != "" {
				return fmt.Errorf("audit node %+v", nd)
			}
		}
		return nil
	})
	// n4 restarts on the same directory and addresses with its stale
	// replicas, and drops every one.
	n4, err = Start(ctx, cfg4)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n4.Close() })
	if len(n4.hosted()) != held {
		t.Fatalf("n4 reopened %d replicas, held %d", len(n4.hosted()), held)
	}
	waitFor(t, 60*time.Second, "n4 drops its stale replicas", func() error {
		if h := len(n4.hosted()); h != 0 || n4.dropped.Load() != int64(held) {
			return fmt.Errorf("n4 hosts %d, dropped %d of %d", h, n4.dropped.Load(), held)
		}
		return nil
	})
	if _, err := formed(ctx, n1, []string{"n1", "n2", "n3"}); err != nil {
		t.Fatalf("after n4's return: %v", err)
	}
	if _, err := os.Stat(n4.dir.groupPath(0)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("n4's group 0 directory is still there: %v", err)
	}
	// A metadata call that reaches n4 now must be told to ask elsewhere
	// (no_replica), never that the user or file does not exist: the fault
	// harness saw reads answered not_found by a node without a replica.
	if _, err := n4.Shard(1); !errors.Is(err, metarpc.ErrNoReplica) || errors.Is(err, raftmeta.ErrNotFound) {
		t.Errorf("n4.Shard(1) = %v, want ErrNoReplica", err)
	}
	// Back but removed, it is told to drain: block placement leaves it out.
	waitFor(t, 30*time.Second, "n4 drains", func() error {
		if !n4.draining.Load() {
			return errors.New("n4 not told to drain")
		}
		for _, id := range blockIDs(n1) {
			if id == "n4" {
				return errors.New("n1 still places blocks on n4")
			}
		}
		return nil
	})
}
