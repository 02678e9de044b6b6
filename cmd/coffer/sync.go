package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/coffer-dev/coffer/client/syncer"
)

// syncReport is what `sync --json` prints.
type syncReport struct {
	Local  string `json:"local"`
	Remote string `json:"remote"`
	syncer.Summary
}

func (a *app) syncCommand() *cobra.Command {
	var watch bool
	var rescan time.Duration
	cmd := &cobra.Command{
		Use:   "sync LOCALDIR [REMOTE]",
		Short: "Two-way sync of a local folder with a remote folder",
		Long: `sync makes LOCALDIR and the remote folder REMOTE identical, in both
directions: new and changed files go both ways, renames are applied as
renames, deletes propagate (a deleted file stays restorable with
'coffer restore'). When both sides changed a file, the remote version keeps
the name and the local one is kept beside it as
"NAME (conflicted copy HOST DATE TIME).EXT", uploaded too. An edit beats a
delete.

REMOTE defaults to the folder LOCALDIR synced with before, else "/". The
sync state lives in LOCALDIR/.coffer. Paths matched by LOCALDIR/.cofferignore
(gitignore syntax) and editors' temp files are not synced; symbolic links
are skipped with a warning.

--watch keeps syncing: on local changes, on remote changes (the change
feed), and on a full rescan every --rescan. Stop it with Ctrl-C.`,
		Args: usageArgs(cobra.RangeArgs(1, 2)),
		RunE: func(cmd *cobra.Command, args []string) error {
			remote := ""
			if len(args) == 2 {
				remote = args[1]
				if !strings.HasPrefix(remote, "/") {
					remote = "/" + remote
				}
				remote = strings.TrimSuffix(remote, "/")
				if remote == "" {
					remote = "/"
				}
			}
			return a.runSync(cmd.Context(), args[0], remote, watch, rescan)
		},
	}
	cmd.Flags().BoolVar(&watch, "watch", false, "keep syncing until interrupted")
	cmd.Flags().DurationVar(&rescan, "rescan", syncer.DefaultRescanInterval, "with --watch: how often to rescan the whole folder")
	return cmd
}

// warnLogger prints the engine's warnings on stderr as "coffer: warning: …".
func warnLogger(w io.Writer) *slog.Logger {
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelWarn,
		ReplaceAttr: func(groups []string, at slog.Attr) slog.Attr {
			switch at.Key {
			case slog.TimeKey, "component":
				return slog.Attr{}
			case slog.LevelKey:
				return slog.String("coffer", strings.ToLower(at.Value.String()))
			}
			return at
		}}))
}

// openEngine opens the sync engine of dir with the CLI's credentials.
func (a *app) openEngine(ctx context.Context, dir, remote string, rescan time.Duration) (*syncer.Engine, error) {
	c, err := a.client()
	if err != nil {
		return nil, err
	}
	who, err := c.Whoami(ctx)
	if err != nil {
		return nil, err
	}
	e, err := syncer.Open(syncer.Config{Dir: dir, Remote: remote, User: who.User, API: c,
		Logger: warnLogger(a.stderr), RescanInterval: rescan})
	if errors.Is(err, syncer.ErrInvalidConfig) || errors.Is(err, syncer.ErrRootMismatch) {
		return nil, usageError{err}
	}
	return e, err
}

func (a *app) runSync(ctx context.Context, dir, remote string, watch bool, rescan time.Duration) error {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return err
	}
	e, err := a.openEngine(ctx, abs, remote, rescan)
	if err != nil {
		return err
	}
	defer e.Close()
	if !watch {
		start := time.Now()
		sum, err := e.Sync(ctx)
		if perr := a.printSync(abs, e.Remote(), sum, fmt.Sprintf("synced in %.1fs", time.Since(start).Seconds())); perr != nil && err == nil {
			err = perr
		}
		if err == nil && sum.Pending > 0 {
			err = fmt.Errorf("%d steps are still to do (files kept changing, or other devices kept committing); run sync again", sum.Pending)
		}
		return err
	}
	if !a.json {
		fmt.Fprintf(a.stderr, "Watching %s ⇄ %s (Ctrl-C to stop)\n", abs, e.Remote())
	}
	return e.Watch(ctx, func(sum syncer.Summary, err error) {
		now := time.Now().Format(time.TimeOnly)
		if err != nil {
			fmt.Fprintf(a.stderr, "coffer: %s sync: %v\n", now, err)
			return
		}
		a.printSync(abs, e.Remote(), sum, now+" synced")
	})
}

// printSync prints a sync's summary: one line (or JSON).
func (a *app) printSync(local, remote string, s syncer.Summary, what string) error {
	if a.json {
		return printJSON(a.stdout, syncReport{Local: local, Remote: remote, Summary: s})
	}
	if !s.Changed() && s.Pending == 0 {
		_, err := fmt.Fprintf(a.stdout, "%s and %s are in sync\n", local, remote)
		return err
	}
	parts := []string{
		fmt.Sprintf("%d uploaded", s.Uploaded),
		fmt.Sprintf("%d downloaded", s.Downloaded),
		fmt.Sprintf("%d moved", s.Moved),
		fmt.Sprintf("%d deleted (%d here, %d there)", s.DeletedLocal+s.DeletedRemote, s.DeletedLocal, s.DeletedRemote),
		fmt.Sprintf("%d conflicts", s.Conflicts),
	}
	if s.FoldersMade > 0 {
		parts = append(parts, fmt.Sprintf("%d folders made", s.FoldersMade))
	}
	line := fmt.Sprintf("%s: %s; %s up, %s down", what, strings.Join(parts, ", "),
		humanBytes(s.BytesUploaded), humanBytes(s.BytesDown))
	if s.BytesReused > 0 {
		line += fmt.Sprintf(" (%s reused from local files)", humanBytes(s.BytesReused))
	}
	if s.Pending > 0 {
		line += fmt.Sprintf("; %d steps left", s.Pending)
	}
	_, err := fmt.Fprintln(a.stdout, line)
	return err
}

// statusReport is what `status --json` prints.
type statusReport struct {
	Local   string          `json:"local"`
	Remote  string          `json:"remote,omitempty"`
	Running bool            `json:"running"` // a sync --watch holds the folder
	Watch   *syncer.Status  `json:"watch,omitempty"`
	Pending []pendingAction `json:"pending"`
}

type pendingAction struct {
	Kind string `json:"kind"`
	Path string `json:"path"`
	To   string `json:"to,omitempty"`
}

func (a *app) statusCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "status [LOCALDIR]",
		Short: "Show what a sync of LOCALDIR (default .) would do",
		Long: `status compares LOCALDIR (default: the current folder), the remote folder
it syncs with, and the last synced state, and lists what a sync would do,
without doing it. While 'coffer sync --watch' runs on the folder, status
shows what that sync reported last instead.`,
		Args: usageArgs(cobra.MaximumNArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			dir := "."
			if len(args) == 1 {
				dir = args[0]
			}
			abs, err := filepath.Abs(dir)
			if err != nil {
				return err
			}
			stateDir := filepath.Join(abs, syncer.StateDirName)
			if _, err := os.Stat(filepath.Join(stateDir, syncer.StateFile)); err != nil {
				return usageErrorf("%s is not a synced folder (no %s): run 'coffer sync %s' first", abs, filepath.Join(syncer.StateDirName, syncer.StateFile), dir)
			}
			rep := statusReport{Local: abs, Pending: []pendingAction{}}
			e, err := a.openEngine(cmd.Context(), abs, "", 0)
			if errors.Is(err, syncer.ErrLocked) {
				rep.Running = true
				if st, err := syncer.ReadStatus(stateDir); err == nil {
					rep.Watch = st
				}
				return a.printStatus(rep)
			}
			if err != nil {
				return err
			}
			defer e.Close()
			rep.Remote = e.Remote()
			plan, err := e.Pending(cmd.Context())
			if err != nil {
				return err
			}
			for _, act := range plan {
				switch act.Kind {
				case syncer.Record, syncer.Forget, syncer.Refresh:
					continue // bookkeeping, nothing to transfer
				}
				rep.Pending = append(rep.Pending, pendingAction{Kind: act.Kind.String(), Path: act.Path, To: act.To})
			}
			return a.printStatus(rep)
		},
	}
}

func (a *app) printStatus(rep statusReport) error {
	if a.json {
		return printJSON(a.stdout, rep)
	}
	w := a.stdout
	if rep.Running {
		fmt.Fprintf(w, "%s: a 'coffer sync --watch' is running on this folder\n", rep.Local)
		if st := rep.Watch; st != nil {
			fmt.Fprintf(w, "  state %s at %s", st.State, st.Time.Format(time.DateTime))
			if st.Error != "" {
				fmt.Fprintf(w, " (%s)", st.Error)
			}
			fmt.Fprintf(w, "\n  pending %d; since it started: %d uploaded, %d downloaded, %d conflicts\n",
				st.Pending, st.Total.Uploaded, st.Total.Downloaded, st.Total.Conflicts)
		}
		return nil
	}
	if len(rep.Pending) == 0 {
		_, err := fmt.Fprintf(w, "%s and %s are in sync\n", rep.Local, rep.Remote)
		return err
	}
	fmt.Fprintf(w, "%s ⇄ %s: %d pending\n", rep.Local, rep.Remote, len(rep.Pending))
	for _, p := range rep.Pending {
		if p.To != "" {
			fmt.Fprintf(w, "  %-13s %s → %s\n", p.Kind, p.Path, p.To)
		} else {
			fmt.Fprintf(w, "  %-13s %s\n", p.Kind, p.Path)
		}
	}
	return nil
}
