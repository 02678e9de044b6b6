package syncer

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/coffer-dev/coffer/client"
)

// Summary is what a Sync did.
type Summary struct {
	Uploaded       int   `json:"uploaded"`         // files whose content went up
	Downloaded     int   `json:"downloaded"`       // files whose content came down
	Moved          int   `json:"moved"`            // renames applied (either way)
	DeletedLocal   int   `json:"deleted_local"`    // local files and folders removed
	DeletedRemote  int   `json:"deleted_remote"`   // remote files and folders deleted (restorable)
	FoldersMade    int   `json:"folders_made"`     // folders created (either side)
	Conflicts      int   `json:"conflicts"`        // local versions kept as conflicted copies
	BlocksUploaded int   `json:"blocks_uploaded"`  // blocks sent (the server lacked them)
	BytesUploaded  int64 `json:"bytes_uploaded"`   // block bytes sent
	BytesDown      int64 `json:"bytes_downloaded"` // bytes fetched from the server
	BytesReused    int64 `json:"bytes_reused"`     // bytes of downloads copied from local blocks
	Skipped        int   `json:"skipped"`          // steps left for a later round (a file kept changing, a race)
	Pending        int   `json:"pending"`          // steps still planned when Sync stopped (0: in sync)
	Rounds         int   `json:"rounds"`
}

func (s *Summary) add(o Summary) {
	s.Uploaded += o.Uploaded
	s.Downloaded += o.Downloaded
	s.Moved += o.Moved
	s.DeletedLocal += o.DeletedLocal
	s.DeletedRemote += o.DeletedRemote
	s.FoldersMade += o.FoldersMade
	s.Conflicts += o.Conflicts
	s.BlocksUploaded += o.BlocksUploaded
	s.BytesUploaded += o.BytesUploaded
	s.BytesDown += o.BytesDown
	s.BytesReused += o.BytesReused
	s.Skipped += o.Skipped
}

// Changed reports whether the sync changed anything.
func (s Summary) Changed() bool {
	s.Pending, s.Rounds = 0, 0
	return s != Summary{}
}

// Engine syncs one local folder with one remote folder. Its methods must
// not be called concurrently.
type Engine struct {
	cfg   Config
	fs    FS
	api   API
	log   *slog.Logger
	st    *state
	root  string // the remote folder, clean and absolute
	fold  bool   // the local file system folds case
	mu    sync.Mutex
	hooks func(step string) error // tests: fail a step to simulate a crash

	rootID uint64
	cursor uint64
	nodes  map[uint64]*Remote
	base   map[string]*Base
	index  map[string]blockSrc // during downloads: where blocks are locally
	real   map[string]string   // NFC path → the local spelling, where they differ
	noMove map[string]bool     // moves that failed in this Sync
	// unsettled counts the files the last scan left out because they
	// kept changing while it read them.
	unsettled int
	hashes    map[string]hashEntry // content hashes of local files not (yet) in the base
	warned    map[string]bool
}

type hashEntry struct {
	size, mtime int64
	inode       uint64
	m           Manifest
}

// Open opens the folder's state database (creating it on the first run)
// and checks that it belongs to cfg's remote folder and user. It fails
// with ErrLocked while another Engine has the folder open.
func Open(cfg Config) (*Engine, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	st, err := openState(cfg.StateDir, false)
	if err != nil {
		return nil, err
	}
	e := &Engine{cfg: cfg, fs: cfg.FS, api: cfg.API, log: cfg.Logger.With("component", "sync"), st: st,
		root: cfg.Remote, hashes: map[string]hashEntry{}, warned: map[string]bool{}}
	if err := e.checkIdentity(); err != nil {
		st.close()
		return nil, err
	}
	if cfg.CaseInsensitive != nil {
		e.fold = *cfg.CaseInsensitive
	} else if _, ok := cfg.FS.(osFS); ok {
		e.fold = foldsCase(cfg.StateDir)
	}
	e.base, e.nodes, e.cursor, err = st.load()
	if err != nil {
		st.close()
		return nil, err
	}
	id, _ := st.meta("root_id")
	e.rootID, _ = strconv.ParseUint(id, 10, 64)
	return e, nil
}

// checkIdentity records the remote folder and user on the first run and
// refuses a state database made for others.
func (e *Engine) checkIdentity() error {
	root, err := e.st.meta("root")
	if err != nil {
		return err
	}
	user, err := e.st.meta("user")
	if err != nil {
		return err
	}
	if e.root == "" {
		e.root = cmp.Or(root, "/")
	}
	if root == "" {
		return e.st.setMeta(map[string]string{"root": e.root, "user": e.cfg.User})
	}
	if root != e.root {
		return fmt.Errorf("%w: this folder syncs with %s, not %s", ErrRootMismatch, root, e.root)
	}
	if e.cfg.User != "" && user != "" && user != e.cfg.User {
		return fmt.Errorf("%w: this folder syncs with user %s's files, not %s's", ErrRootMismatch, user, e.cfg.User)
	}
	return nil
}

// foldsCase tests whether the file system of dir folds case.
func foldsCase(dir string) bool {
	f, err := os.CreateTemp(dir, "case-test-*")
	if err != nil {
		return false
	}
	name := f.Name()
	f.Close()
	defer os.Remove(name)
	_, err = os.Stat(filepath.Join(filepath.Dir(name), strings.ToUpper(filepath.Base(name))))
	return err == nil
}

// Remote is the remote folder the engine syncs with.
func (e *Engine) Remote() string { return e.root }

// Close closes the state database.
func (e *Engine) Close() error { return e.st.close() }

// step runs the test hook before a side effect.
func (e *Engine) step(name string) error {
	if e.hooks != nil {
		return e.hooks(name)
	}
	return nil
}

// remotePath is the absolute remote path of a relative one.
func (e *Engine) remotePath(rel string) string {
	if rel == "" {
		return e.root
	}
	if e.root == "/" {
		return "/" + rel
	}
	return e.root + "/" + rel
}

// settleWait is the pause before another round when the only thing left
// is files that kept changing while they were read.
const settleWait = 200 * time.Millisecond

// Sync brings the folder and the remote folder together: rounds of
// reading the change feed, scanning the folder, planning and running the
// plan, until a plan is empty or MaxRounds have run.
func (e *Engine) Sync(ctx context.Context) (Summary, error) {
	var sum Summary
	stuck := 0
	e.noMove = map[string]bool{}
	defer func() { e.noMove = nil }()
	for sum.Rounds < e.cfg.MaxRounds {
		sum.Rounds++
		trees, err := e.trees(ctx)
		if err != nil {
			return sum, err
		}
		plan := Plan(trees)
		if len(plan) == 0 && e.unsettled == 0 {
			sum.Pending = 0
			return sum, nil
		}
		if len(plan) == 0 {
			// Only files that are being written: give them a moment.
			sum.Pending = e.unsettled
			select {
			case <-ctx.Done():
				return sum, ctx.Err()
			case <-time.After(settleWait):
			}
			continue
		}
		sum.Pending = len(plan)
		var got Summary
		done, err := e.run(ctx, plan, &got)
		sum.add(got)
		if err != nil {
			return sum, err
		}
		if done == 0 {
			stuck++
			if stuck >= 3 {
				break
			}
		} else {
			stuck = 0
		}
	}
	return sum, nil
}

// Pending returns what a Sync would do now, without doing it (moves are
// listed first and alone, as Plan returns them).
func (e *Engine) Pending(ctx context.Context) ([]Action, error) {
	trees, err := e.trees(ctx)
	if err != nil {
		return nil, err
	}
	return Plan(trees), nil
}

// trees brings the remote tree up to date and scans the folder.
func (e *Engine) trees(ctx context.Context) (Trees, error) {
	if err := e.pull(ctx); err != nil {
		return Trees{}, err
	}
	m, err := e.loadIgnore()
	if err != nil {
		return Trees{}, err
	}
	local, err := e.scan(ctx, m)
	if err != nil {
		return Trees{}, err
	}
	remote := e.remoteTree(m)
	base := make(map[string]*Base, len(e.base))
	for p, b := range e.base {
		if !m.Ignored(p, b.Dir) {
			base[p] = b
		}
	}
	return Trees{Base: base, Local: local, Remote: remote, NoMove: e.noMove}, nil
}

// warnOnce logs a warning once per key.
func (e *Engine) warnOnce(key, msg string, args ...any) {
	if !e.warned[key] {
		e.warned[key] = true
		e.log.Warn(msg, args...)
	}
}

// sortedPaths returns m's keys in order.
func sortedPaths[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// isSessionEnd reports errors that no retry fixes.
func isSessionEnd(err error) bool {
	return errors.Is(err, client.ErrSessionEnded) || errors.Is(err, client.ErrUnauthenticated) ||
		errors.Is(err, client.ErrForbidden)
}
