package netns

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"os"
	"slices"
	"strings"
)

// Sweep removes what earlier runs with this name prefix left behind when
// their owner process died without Close (killed, crashed, power cut short
// of a reboot): their namespaces (killing what still runs inside), root
// links and lock files. A run is dead when no process holds the flock on
// its lock file; the PID recorded there is only logged, since PIDs are
// reused. Runs whose lock is held, including runs of this process, are
// never touched. Sweep takes each dead run's lock while removing it, so a
// concurrent Create of the same subnet waits for, or skips, that subnet.
// prefix "" means DefaultPrefix. A nil logger discards.
func Sweep(ctx context.Context, prefix string, logger *slog.Logger) error {
	if prefix == "" {
		prefix = DefaultPrefix
	}
	if err := validPrefix(prefix); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidArgument, err)
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	log := logger.With("component", "netns")
	t, err := findTools()
	if err != nil {
		return err
	}
	r := runner{t: t, log: log}
	if err := os.MkdirAll(StateDir, 0o755); err != nil {
		return fmt.Errorf("state dir: %w", err)
	}

	// Candidate runs: lock files of this prefix, and names of this prefix.
	runs := map[string]bool{}
	if ents, err := os.ReadDir(StateDir); err == nil {
		for _, e := range ents {
			name := e.Name()
			run, ok := strings.CutPrefix(name, "run-")
			if !ok || !strings.HasSuffix(run, ".lock") {
				continue
			}
			run = strings.TrimSuffix(run, ".lock")
			if st := readStateFile(lockPath(run)); st.Prefix == prefix || st.Prefix == "" {
				runs[run] = true
			}
		}
	}
	for _, ns := range listNetns(prefix, "") {
		run, _ := parseRun(prefix, ns)
		runs[run] = true
	}
	if ifs, err := net.Interfaces(); err == nil {
		for _, ifc := range ifs {
			if run, ok := parseRun(prefix, ifc.Name); ok && ifc.Name == rootLinkName(prefix, run) {
				runs[run] = true
			}
		}
	}

	var errs []error
	for _, run := range slices.Sorted(maps.Keys(runs)) {
		if err := ctx.Err(); err != nil {
			return errors.Join(append(errs, err)...)
		}
		if err := sweepRun(ctx, r, log, prefix, run); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// sweepRun removes run if its owner is dead.
func sweepRun(ctx context.Context, r runner, log *slog.Logger, prefix, run string) error {
	path := lockPath(run)
	f, err := tryLock(path)
	if errors.Is(err, errBusy) {
		st := readStateFile(path)
		log.Debug("sweep: run is live, left alone", "run", prefix+run, "owner_prefix", st.Prefix, "pid", st.PID)
		return nil
	}
	if err != nil {
		return err
	}
	defer f.Close()
	st := readState(f)
	log.Info("sweep: removing a dead run", "run", prefix+run, "subnet", st.Subnet, "dead_pid", st.PID, "created", st.Created)
	if err := r.removeRun(ctx, log, prefix, run); err != nil {
		return err
	}
	// A lock file of another prefix's dead run stays for that prefix's
	// Sweep; one we just created (empty) or ours goes.
	if st.Prefix == "" || st.Prefix == prefix {
		if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
	}
	return nil
}
