package raftmux

import (
	"fmt"
	"io"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
)

// listFSM records the data of every applied entry.
type listFSM struct {
	mu      sync.Mutex
	entries []string
}

func (f *listFSM) Apply(l *raft.Log) any {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.entries = append(f.entries, string(l.Data))
	return nil
}

func (f *listFSM) has(want []string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, w := range want {
		if !slices.Contains(f.entries, w) {
			return false
		}
	}
	return true
}

func (f *listFSM) Snapshot() (raft.FSMSnapshot, error) { return nil, fmt.Errorf("not supported") }
func (f *listFSM) Restore(io.ReadCloser) error         { return fmt.Errorf("not supported") }

// replica is one group's member on one node.
type replica struct {
	raft  *raft.Raft
	trans *raft.NetworkTransport
	fsm   *listFSM
}

// TestRaftOverMux runs two Raft groups on three nodes, each node's groups
// sharing its one mux listener, then closes one node's mux.
func TestRaftOverMux(t *testing.T) {
	const nodes = 3
	groups := []uint64{10, 20}
	muxes := make([]*Mux, nodes)
	for i := range muxes {
		muxes[i] = newMux(t, Config{HeaderTimeout: 2 * time.Second})
	}
	var servers []raft.Server
	for i, m := range muxes {
		servers = append(servers, raft.Server{
			ID: raft.ServerID(fmt.Sprintf("n%d", i)), Address: raft.ServerAddress(m.Addr().String()), Suffrage: raft.Voter,
		})
	}
	reps := map[uint64][]*replica{}
	for _, gid := range groups {
		for i, m := range muxes {
			sl := newGroup(t, m, gid)
			trans := raft.NewNetworkTransportWithConfig(&raft.NetworkTransportConfig{
				Stream: sl, MaxPool: 3, Timeout: 2 * time.Second, Logger: hclog.NewNullLogger(),
			})
			rc := raft.DefaultConfig()
			rc.LocalID = servers[i].ID
			rc.HeartbeatTimeout = 400 * time.Millisecond
			rc.ElectionTimeout = 400 * time.Millisecond
			rc.LeaderLeaseTimeout = 200 * time.Millisecond
			rc.CommitTimeout = 5 * time.Millisecond
			rc.Logger = hclog.NewNullLogger()
			fsm := &listFSM{}
			r, err := raft.NewRaft(rc, fsm, raft.NewInmemStore(), raft.NewInmemStore(), raft.NewInmemSnapshotStore(), trans)
			if err != nil {
				t.Fatal(err)
			}
			rep := &replica{raft: r, trans: trans, fsm: fsm}
			t.Cleanup(func() {
				if err := rep.raft.Shutdown().Error(); err != nil {
					t.Errorf("shutdown: %v", err)
				}
				rep.trans.Close()
			})
			reps[gid] = append(reps[gid], rep)
		}
		if err := reps[gid][0].raft.BootstrapCluster(raft.Configuration{Servers: servers}).Error(); err != nil {
			t.Fatalf("bootstrap group %d: %v", gid, err)
		}
	}

	// leader waits for a leader of gid among the live nodes.
	leader := func(gid uint64, live []int) int {
		t.Helper()
		l := -1
		waitFor(t, 10*time.Second, fmt.Sprintf("a leader of group %d", gid), func() bool {
			for _, i := range live {
				if reps[gid][i].raft.State() == raft.Leader {
					l = i
					return true
				}
			}
			return false
		})
		return l
	}
	// apply commits entries to gid (retrying through leader changes) and
	// waits until every live replica's FSM has them.
	apply := func(gid uint64, live []int, entries []string) {
		t.Helper()
		for _, e := range entries {
			deadline := time.Now().Add(10 * time.Second)
			for {
				err := reps[gid][leader(gid, live)].raft.Apply([]byte(e), 2*time.Second).Error()
				if err == nil {
					break
				}
				// An error may mean "committed anyway": the FSM check below
				// tolerates a duplicate.
				if time.Now().After(deadline) {
					t.Fatalf("group %d: apply %q: %v", gid, e, err)
				}
			}
		}
		for _, i := range live {
			waitFor(t, 10*time.Second, fmt.Sprintf("group %d replica %d to apply %v", gid, i, entries), func() bool {
				return reps[gid][i].fsm.has(entries)
			})
		}
	}

	all := []int{0, 1, 2}
	for _, gid := range groups {
		apply(gid, all, []string{fmt.Sprintf("g%d-a", gid), fmt.Sprintf("g%d-b", gid), fmt.Sprintf("g%d-c", gid)})
	}

	// Kill the network of the node leading the first group: its mux closes,
	// and with it every connection of both its groups.
	dead := leader(groups[0], all)
	if err := muxes[dead].Close(); err != nil {
		t.Fatal(err)
	}
	var live []int
	for _, i := range all {
		if i != dead {
			live = append(live, i)
		}
	}
	for _, gid := range groups {
		// apply only uses a leader among the live nodes: for the first
		// group that is a newly elected one.
		apply(gid, live, []string{fmt.Sprintf("g%d-after-1", gid), fmt.Sprintf("g%d-after-2", gid)})
	}
	// The cut-off node got none of it.
	for _, gid := range groups {
		if reps[gid][dead].fsm.has([]string{fmt.Sprintf("g%d-after-1", gid)}) {
			t.Errorf("group %d: node %d applied an entry after its mux closed", gid, dead)
		}
	}
}
