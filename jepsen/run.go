package jepsen

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/coffer-dev/coffer/client"
	"github.com/coffer-dev/coffer/jepsen/check"
	"github.com/coffer-dev/coffer/jepsen/history"
	"github.com/coffer-dev/coffer/jepsen/netns"
	"github.com/coffer-dev/coffer/jepsen/proc"
	"github.com/coffer-dev/coffer/jepsen/workload"
)

// Report is what one run found.
type Report struct {
	Scenario string `json:"scenario"`
	Seed     int64  `json:"seed"`
	// Dir is the run's result folder.
	Dir string `json:"dir"`
	// Net is "netns" or "loopback".
	Net string `json:"net"`
	// Summary is the one-line verdict; Valid is true only if every check
	// passed.
	Summary string         `json:"summary"`
	Valid   bool           `json:"valid"`
	Ops     history.Counts `json:"ops"`
	// Faults counts the faults injected by kind; Skipped those the
	// nemesis could not inject (network faults on loopback among them).
	Faults  map[string]int `json:"faults"`
	Skipped map[string]int `json:"skipped,omitempty"`
	// NotRun lists the scenario's fault kinds left out because the
	// network namespaces were not available.
	NotRun  []string       `json:"not_run,omitempty"`
	Results []check.Result `json:"results"`
}

// The user every workload runs as.
const (
	jepsenUser     = "jepsen"
	jepsenPassword = "jepsen-password-1"
)

// Run runs one scenario on a fresh cluster and checks it. The error is for
// a run that could not be carried out (the cluster did not start, the
// network could not be built); failed checks are in the Report.
func Run(ctx context.Context, cfg Config) (*Report, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	log := cfg.Logger.With("component", "jepsen", "scenario", cfg.Scenario.Name, "seed", cfg.Seed)
	cfg.Logger = log
	dir := filepath.Join(cfg.Out, fmt.Sprintf("%s-%s-%d", cfg.Scenario.Name, time.Now().UTC().Format("20060102-150405"), cfg.Seed))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	if cfg.Binary == "" {
		bin, err := proc.Build(ctx, cfg.Out)
		if err != nil {
			return nil, err
		}
		cfg.Binary = bin
	}
	rep := &Report{Scenario: cfg.Scenario.Name, Seed: cfg.Seed, Dir: dir, Faults: map[string]int{}}
	namespaced, why := useNetns(cfg.Net)
	if cfg.Net == NetNetns && !namespaced {
		return nil, fmt.Errorf("network namespaces: %s", why)
	}
	rep.Net = NetLoopback
	if namespaced {
		rep.Net = NetNetns
	}
	kinds := cfg.Scenario.Faults
	if !namespaced {
		if why != "" {
			log.Warn("running without network namespaces: process and cluster faults only", "why", why)
		}
		for _, k := range kinds {
			if networkFault(k) {
				rep.NotRun = append(rep.NotRun, k)
			}
		}
		kinds = slices.DeleteFunc(slices.Clone(kinds), networkFault)
	}
	log.Info("run", "dir", dir, "net", rep.Net, "nodes", cfg.Nodes, "faults", kinds, "workloads", cfg.Scenario.Workloads)

	tb, err := startTestbed(ctx, cfg, dir, namespaced)
	if err != nil {
		return nil, err
	}
	defer tb.close()
	if _, err := tb.admin.CreateUser(ctx, client.CreateUserRequest{Name: jepsenUser, Password: jepsenPassword}); err != nil {
		return nil, fmt.Errorf("creating the user: %w", err)
	}
	user, token, err := tb.login(ctx, jepsenUser, jepsenPassword, tb.urls(), 10*time.Second)
	if err != nil {
		return nil, err
	}

	start := time.Now()
	rec := history.NewRecorder(start)
	tl := history.NewTimeline(start)
	rng := rand.New(rand.NewPCG(uint64(cfg.Seed), 0x6a657073656e))
	var wls []workload.Workload
	for i, name := range cfg.Scenario.Workloads {
		w, err := workload.New(name, workload.Config{FirstProcess: workload.ProcessStride * i})
		if err != nil {
			return nil, err
		}
		wls = append(wls, w)
	}
	clients := &clientSet{tb: tb, token: token, fallback: user, timeout: 3 * time.Second}
	env := &workload.Env{Rec: rec, Client: clients.get, Final: user, Seed: cfg.Seed, Dir: dir, Logger: log, Faults: tl.Faults}

	sc := cfg.Scenario
	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	var wg sync.WaitGroup
	for _, w := range wls {
		wg.Go(func() {
			if err := w.Run(runCtx, env); err != nil {
				log.Error("workload stopped", "workload", w.Name(), "err", err)
			}
		})
	}
	nem := &nemesis{tb: tb, rng: rng, tl: tl, log: log, kinds: kinds, skipped: map[string]int{}}
	hold(ctx, sc.Warmup)
	faultStart := rec.Elapsed()
	if len(kinds) > 0 && sc.Faulty > 0 {
		nem.run(ctx, time.Now().Add(sc.Faulty))
	}
	// Heal everything, whatever state the last fault left.
	healCtx, cancelHeal := context.WithTimeout(context.WithoutCancel(ctx), 3*time.Minute)
	healStart := rec.Elapsed()
	healErr := heal(healCtx, tb)
	cancelHeal()
	healed := rec.Elapsed()
	hold(ctx, sc.Recovery)
	recoveryEnd := rec.Elapsed()
	stop()
	wg.Wait()
	log.Info("workloads stopped; checking", "ops", history.Count(rec.Ops()))

	var results []check.Result
	if healErr != nil {
		results = append(results, check.Result{Name: "heal", Valid: false, Summary: healErr.Error()})
	}
	faults := tl.Faults()
	results = append(results, nemesisResult(nem, kinds, faults, healStart))
	ops := rec.Ops()
	// Throughput counts acknowledged writes only: a cluster that serves
	// reads but takes no writes after healing did no real work.
	results = append(results, check.Throughput(mutations(ops), []check.Window{
		{Name: "before the first fault", Start: 0, End: faultStart},
		{Name: "after healing", Start: healed, End: recoveryEnd},
	}, sc.MinOpsPerSec))
	wctx, cancelW := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Minute)
	for _, w := range wls {
		results = append(results, w.Check(wctx, env, ops)...)
	}
	cancelW()
	ops = rec.Ops() // the checks' own reads are recorded too
	ectx, cancelE := context.WithTimeout(context.WithoutCancel(ctx), 4*time.Minute)
	results = append(results, endState(ectx, tb)...)
	cancelE()
	results = append(results, noCrashes(tb))

	for _, f := range faults {
		rep.Faults[f.Kind]++
	}
	if len(nem.skipped) > 0 {
		rep.Skipped = nem.skipped
	}
	rep.Results = results
	rep.Ops = history.Count(ops)
	rep.Summary, rep.Valid = check.Summary(ops, faults, results)
	if err := writeResults(dir, rec, tl, rep); err != nil {
		return rep, err
	}
	return rep, nil
}

// useNetns says whether the run can use network namespaces, and why not.
func useNetns(mode string) (bool, string) {
	if mode == NetLoopback {
		return false, ""
	}
	if err := netns.Available(context.Background()); err != nil {
		return false, err.Error()
	}
	return true, ""
}

// heal ends every fault: the network whole again, links clear, paused
// nodes continued, killed nodes restarted; then waits for every node to be
// ready and the cluster formed.
func heal(ctx context.Context, tb *testbed) error {
	var errs []error
	if tb.net != nil {
		if err := tb.net.Heal(ctx); err != nil {
			errs = append(errs, err)
		}
		if err := tb.net.ClearLinks(ctx); err != nil {
			errs = append(errs, err)
		}
	}
	for _, i := range tb.liveNodes() {
		switch {
		case tb.pc.Paused(i):
			if err := tb.pc.Cont(i); err != nil {
				errs = append(errs, err)
			}
		case !tb.pc.Running(i):
			if err := tb.pc.Restart(ctx, i); err != nil {
				errs = append(errs, err)
			}
		}
	}
	if err := tb.waitHealthy(ctx, 90*time.Second); err != nil {
		errs = append(errs, err)
	}
	if err := tb.waitFormed(ctx, 3, 90*time.Second); err != nil {
		errs = append(errs, fmt.Errorf("the cluster did not form again: %w", err))
	}
	if len(errs) > 0 {
		return fmt.Errorf("healing: %w", errors.Join(errs...))
	}
	return nil
}

// mutationKinds are the kinds of ops that change the server.
var mutationKinds = []string{history.KindWrite, history.KindCAS, history.KindCreate, history.KindUpload, "edit"}

// mutations returns the ops that change the server.
func mutations(ops []history.Op) []history.Op {
	return slices.DeleteFunc(slices.Clone(ops), func(o history.Op) bool { return !slices.Contains(mutationKinds, o.Kind) })
}

// nemesisResult fails a run whose nemesis left a fault unhealed, whose
// member change did not complete, or that never injected one of its
// fault kinds (a scenario that ran no faults proves nothing).
func nemesisResult(n *nemesis, kinds []string, faults []history.Fault, healStart time.Duration) check.Result {
	r := check.Result{Name: "nemesis", Valid: true}
	r.Details = append(r.Details, n.failures...)
	injected := map[string]int{}
	for _, f := range faults {
		injected[f.Kind]++
		if f.End == 0 || f.End > healStart {
			r.Details = append(r.Details, fmt.Sprintf("fault %d (%s: %s) not healed before the final heal", f.ID, f.Kind, f.Description))
		}
	}
	var missing []string
	for _, k := range kinds {
		if injected[k] == 0 {
			missing = append(missing, k)
		}
	}
	if len(missing) > 0 {
		r.Details = append(r.Details, fmt.Sprintf("never injected: %s (skipped attempts: %v)", strings.Join(missing, ", "), n.skipped))
	}
	r.Valid = len(r.Details) == 0
	r.Summary = fmt.Sprintf("%d faults injected, every kind of %v at least once: %v; %d not healed or failed", len(faults), kinds, len(missing) == 0, len(n.failures))
	return r
}

// clientSet builds and keeps one client per process: its primary gateway
// is live node p mod N, failing over to the others in order.
type clientSet struct {
	tb       *testbed
	token    string
	fallback *client.Client
	timeout  time.Duration
	mu       sync.Mutex
	byProc   map[int]*client.Client
	nodeOf   map[int]string
}

func (c *clientSet) get(p int) (*client.Client, string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if cl, ok := c.byProc[p]; ok {
		return cl, c.nodeOf[p]
	}
	if c.byProc == nil {
		c.byProc, c.nodeOf = map[int]*client.Client{}, map[int]string{}
	}
	live := c.tb.liveNodes()
	first := p % len(live)
	var servers []string
	for k := range live {
		servers = append(servers, c.tb.pc.HTTPURL(live[(first+k)%len(live)]))
	}
	cl, err := client.New(client.Config{Servers: servers, Token: c.token, Timeout: c.timeout})
	if err != nil { // cannot happen: the URLs and token were good for the first client
		return c.fallback, "any"
	}
	c.byProc[p] = cl
	c.nodeOf[p] = c.tb.pc.Spec(live[first]).Name
	return cl, c.nodeOf[p]
}

// writeResults writes the run's history, timeline, report and summary.
func writeResults(dir string, rec *history.Recorder, tl *history.Timeline, rep *Report) error {
	if err := rec.WriteJSON(filepath.Join(dir, "history.json")); err != nil {
		return err
	}
	if err := tl.WriteJSON(filepath.Join(dir, "timeline.json")); err != nil {
		return err
	}
	b, err := json.MarshalIndent(rep, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "report.json"), append(b, '\n'), 0o644); err != nil {
		return err
	}
	line := rep.Scenario + " seed " + strconv.FormatInt(rep.Seed, 10) + " (" + rep.Net + "): " + rep.Summary + "\n"
	for _, k := range slices.Sorted(maps.Keys(rep.Skipped)) {
		line += fmt.Sprintf("  skipped %s ×%d\n", k, rep.Skipped[k])
	}
	if len(rep.NotRun) > 0 {
		line += fmt.Sprintf("  not run (no network namespaces): %s\n", strings.Join(rep.NotRun, ", "))
	}
	for _, r := range rep.Results {
		line += "  " + r.String() + "\n"
	}
	line += "schedule (seconds since the start):\n"
	for _, f := range tl.Faults() {
		line += fmt.Sprintf("  %7.1f–%7.1f  %-18s %s\n", f.Start.Seconds(), f.End.Seconds(), f.Kind, f.Description)
	}
	return os.WriteFile(filepath.Join(dir, "summary.txt"), []byte(line), 0o644)
}
