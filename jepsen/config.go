package jepsen

import (
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"time"
)

// Fault kinds the nemesis knows.
const (
	FaultKill       = "kill"               // SIGKILL a random node, restart it after the hold
	FaultKillLeader = "kill-leader"        // SIGKILL the leader of a random shard, restart it after the hold
	FaultPause      = "pause"              // SIGSTOP a random node, SIGCONT after the hold
	FaultIsolate    = "partition-one"      // one node cut off from the others
	FaultMajority   = "partition-majority" // a majority and a minority that cannot see each other
	FaultBridge     = "partition-bridge"   // two halves that cannot see each other, one node that sees both
	FaultSlow       = "slow"               // one node's link delayed (tc netem)
	FaultLossy      = "lossy"              // one node's link drops packets (tc netem)
	FaultTransfer   = "leader-transfer"    // leadership of a random group moved to another voter
	FaultMembers    = "member-change"      // a new node joins, then an old one is removed (once per run)
)

// FaultKinds lists every fault kind.
var FaultKinds = []string{FaultKill, FaultKillLeader, FaultPause, FaultIsolate, FaultMajority, FaultBridge,
	FaultSlow, FaultLossy, FaultTransfer, FaultMembers}

// networkFault says a fault kind needs the namespaced network.
func networkFault(kind string) bool {
	switch kind {
	case FaultIsolate, FaultMajority, FaultBridge, FaultSlow, FaultLossy:
		return true
	}
	return false
}

// Net modes.
const (
	NetAuto     = "auto"     // namespaces when root and the tools are there, else loopback
	NetNetns    = "netns"    // namespaces, or fail
	NetLoopback = "loopback" // 127.0.0.1 ports; process and cluster faults only
)

// Scenario is one run's plan: its faults, its workloads and the length of
// its phases. A run is: Warmup with no faults, Faulty with faults (each
// held 3–6 s, 1–3 s apart, every kind at least once when time allows),
// everything healed, Recovery with no faults, then the workloads stop and
// the checks run.
type Scenario struct {
	Name string
	// Nodes, if set, overrides Config.Nodes for this scenario (3 or 5).
	Nodes     int
	Faults    []string
	Workloads []string
	Warmup    time.Duration
	Faulty    time.Duration
	Recovery  time.Duration
	// MinOpsPerSec is the least rate of ok operations in the Warmup and in
	// the Recovery phase: a run that did no real work fails.
	MinOpsPerSec float64
}

// Suites are named lists of scenarios. "ci" covers every fault kind and
// every workload in a few minutes on 2 cores; "full" runs longer versions.
var Suites = map[string][]Scenario{
	"ci": {
		{Name: "process", Faults: []string{FaultKill, FaultKillLeader, FaultPause}, Workloads: []string{"register", "set", "upload", "feed"},
			Warmup: 5 * time.Second, Faulty: 35 * time.Second, Recovery: 6 * time.Second, MinOpsPerSec: 2},
		{Name: "partition", Faults: []string{FaultIsolate, FaultMajority, FaultBridge}, Workloads: []string{"register", "set", "feed"},
			Warmup: 5 * time.Second, Faulty: 35 * time.Second, Recovery: 6 * time.Second, MinOpsPerSec: 2},
		{Name: "links", Faults: []string{FaultSlow, FaultLossy, FaultTransfer}, Workloads: []string{"register", "upload", "feed"},
			Warmup: 5 * time.Second, Faulty: 30 * time.Second, Recovery: 6 * time.Second, MinOpsPerSec: 2},
		{Name: "members", Faults: []string{FaultMembers, FaultKill}, Workloads: []string{"register", "set", "upload"},
			Warmup: 5 * time.Second, Faulty: 35 * time.Second, Recovery: 8 * time.Second, MinOpsPerSec: 2},
		{Name: "sync", Faults: []string{FaultKill, FaultIsolate}, Workloads: []string{"sync", "set"},
			Warmup: 5 * time.Second, Faulty: 30 * time.Second, Recovery: 6 * time.Second, MinOpsPerSec: 1},
		// Five nodes, three replicas per group: requests also reach nodes
		// that host no replica of the user's shard (a node answering
		// not_found there once made existing files and users look missing).
		{Name: "process-5", Nodes: 5, Faults: []string{FaultKill, FaultKillLeader, FaultPause}, Workloads: []string{"register", "set", "feed"},
			Warmup: 5 * time.Second, Faulty: 30 * time.Second, Recovery: 6 * time.Second, MinOpsPerSec: 2},
	},
	"full": {
		{Name: "everything", Faults: FaultKinds, Workloads: []string{"register", "set", "upload", "feed", "sync"},
			Warmup: 10 * time.Second, Faulty: 150 * time.Second, Recovery: 15 * time.Second, MinOpsPerSec: 2},
		{Name: "process-long", Faults: []string{FaultKill, FaultKillLeader, FaultPause, FaultTransfer}, Workloads: []string{"register", "set", "upload", "feed"},
			Warmup: 10 * time.Second, Faulty: 120 * time.Second, Recovery: 15 * time.Second, MinOpsPerSec: 2},
		{Name: "partition-long", Faults: []string{FaultIsolate, FaultMajority, FaultBridge, FaultSlow, FaultLossy}, Workloads: []string{"register", "set", "feed", "sync"},
			Warmup: 10 * time.Second, Faulty: 120 * time.Second, Recovery: 15 * time.Second, MinOpsPerSec: 2},
	},
}

// Config configures one Run.
type Config struct {
	// Binary is the cofferd executable ("": Run builds it into Out).
	Binary string
	// Out is the results root: each run makes its own folder in it.
	Out string
	// Nodes is the cluster size, 3 or 5 (default 3).
	Nodes int
	// Shards is the number of shard groups (default 4).
	Shards int
	// Seed seeds the nemesis and the workloads (0: from the clock). The
	// schedule and the seed are logged, so a run can be repeated.
	Seed int64
	// Scenario is what to run.
	Scenario Scenario
	// Net is NetAuto (default), NetNetns or NetLoopback.
	Net string
	// Logger receives progress (default: discard).
	Logger *slog.Logger
}

// ErrInvalidConfig: a Config failed validation.
var ErrInvalidConfig = errors.New("invalid jepsen config")

func (c Config) withDefaults() Config {
	if c.Scenario.Nodes != 0 {
		c.Nodes = c.Scenario.Nodes
	}
	if c.Nodes == 0 {
		c.Nodes = 3
	}
	if c.Shards == 0 {
		c.Shards = 4
	}
	if c.Seed == 0 {
		c.Seed = time.Now().UnixNano()
	}
	if c.Net == "" {
		c.Net = NetAuto
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c
}

// Validate reports every problem at once, wrapping ErrInvalidConfig.
func (c Config) Validate() error {
	c = c.withDefaults()
	var errs []error
	if c.Out == "" {
		errs = append(errs, errors.New("no Out folder"))
	}
	if c.Nodes != 3 && c.Nodes != 5 {
		errs = append(errs, fmt.Errorf("Nodes %d: 3 or 5", c.Nodes))
	}
	if c.Shards < 1 || c.Shards > 64 {
		errs = append(errs, fmt.Errorf("Shards %d: 1..64", c.Shards))
	}
	if !slices.Contains([]string{NetAuto, NetNetns, NetLoopback}, c.Net) {
		errs = append(errs, fmt.Errorf("Net %q: auto, netns or loopback", c.Net))
	}
	s := c.Scenario
	if s.Name == "" {
		errs = append(errs, errors.New("the scenario has no name"))
	}
	for _, f := range s.Faults {
		if !slices.Contains(FaultKinds, f) {
			errs = append(errs, fmt.Errorf("unknown fault %q (known: %v)", f, FaultKinds))
		}
	}
	if len(s.Workloads) == 0 {
		errs = append(errs, errors.New("the scenario has no workloads"))
	}
	if s.Warmup <= 0 || s.Faulty < 0 || s.Recovery <= 0 {
		errs = append(errs, errors.New("Warmup and Recovery must be positive, Faulty not negative"))
	}
	if len(errs) > 0 {
		return fmt.Errorf("%w: %w", ErrInvalidConfig, errors.Join(errs...))
	}
	return nil
}
