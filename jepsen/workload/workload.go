package workload

import (
	"context"
	"fmt"
	"log/slog"
	"strings"

	"github.com/coffer-dev/coffer/client"
	"github.com/coffer-dev/coffer/jepsen/check"
	"github.com/coffer-dev/coffer/jepsen/history"
)

// Env is what a workload gets from the runner.
type Env struct {
	Rec *history.Recorder
	// Client returns the client process p uses (the runner builds it: its
	// primary gateway is node p mod N, failing over to the others, with a
	// short per-attempt timeout) and the primary's name for Op.Node.
	Client func(p int) (*client.Client, string)
	// Final is a client for the end-state reads after healing (all
	// gateways).
	Final  *client.Client
	Seed   int64
	Dir    string // this run's result folder; a workload may make a subfolder
	Logger *slog.Logger
	// Faults, if set, returns the run's fault timeline; the register
	// workload draws it on porcupine's visualisation. Optional.
	Faults func() []history.Fault
}

// Workload is one kind of client load with its checks.
type Workload interface {
	Name() string
	// Run runs operations until ctx ends, recording each in env.Rec. It
	// returns nil when ctx ends (an error only when it could not start).
	Run(ctx context.Context, env *Env) error
	// Check reads the end state (retrying reads with backoff for a bounded
	// time: the cluster is healed but may still be settling) and checks
	// ops (the whole history of all workloads). It returns one or more
	// results.
	Check(ctx context.Context, env *Env, ops []history.Op) []check.Result
}

// Names are the workloads New makes, in a stable order.
var Names = []string{"register", "set", "upload", "feed", "sync"}

// New returns the workload called name, configured by cfg (zero fields
// take the workload's defaults). An unknown name is an error wrapping
// ErrUnknownWorkload; a bad cfg one wrapping ErrInvalidConfig.
func New(name string, cfg Config) (Workload, error) {
	if _, ok := defaults[name]; !ok {
		return nil, fmt.Errorf("%w: %q (known: %s)", ErrUnknownWorkload, name, strings.Join(Names, ", "))
	}
	cfg, err := cfg.validateFor(name)
	if err != nil {
		return nil, err
	}
	b := base{name: name, cfg: cfg}
	switch name {
	case "register":
		return newRegister(b), nil
	case "set":
		return &setWorkload{base: b}, nil
	case "upload":
		return &uploadWorkload{base: b}, nil
	case "feed":
		return &feedWorkload{base: b}, nil
	default:
		return &syncWorkload{base: b}, nil
	}
}
