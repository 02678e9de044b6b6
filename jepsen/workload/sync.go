package workload

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	mrand "math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/coffer-dev/coffer/client"
	"github.com/coffer-dev/coffer/client/syncer"
	"github.com/coffer-dev/coffer/jepsen/check"
	"github.com/coffer-dev/coffer/jepsen/history"
)

// syncWorkload runs two sync devices that edit one remote folder.
type syncWorkload struct {
	base
	mu    sync.Mutex
	acked []check.Edit
}

// ErrNoDir: the sync workload was given an Env without a Dir for its
// devices' folders.
var ErrNoDir = errors.New("the sync workload needs Env.Dir")

var deviceNames = [2]string{"A", "B"}

// deviceDir is the local folder of device i.
func deviceDir(env *Env, i int) string {
	return filepath.Join(env.Dir, "sync", deviceNames[i])
}

// openDevice opens device i's engine on its folder with api.
func (w *syncWorkload) openDevice(env *Env, i int, api *client.Client, log *slog.Logger) (*syncer.Engine, error) {
	dir := deviceDir(env, i)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	return syncer.Open(syncer.Config{Dir: dir, Remote: w.folder(), API: api, Host: "dev" + deviceNames[i],
		Logger: log.With("device", deviceNames[i])})
}

func (w *syncWorkload) Run(ctx context.Context, env *Env) error {
	if env.Dir == "" {
		return ErrNoDir
	}
	var errs [2]error
	w.workers(func(proc int) {
		i := proc - w.cfg.FirstProcess
		errs[i] = w.device(ctx, env, i, proc)
	})
	return errors.Join(errs[:]...)
}

// pendingEdit is an edit not yet acknowledged.
type pendingEdit struct {
	op   *history.Pending
	edit check.Edit
}

// device runs one device's editor: edit a file, then Sync; a Sync that
// started after an edit and ended with nothing left to do acknowledges it.
func (w *syncWorkload) device(ctx context.Context, env *Env, i, proc int) error {
	log := w.logger(env)
	cl, node := env.Client(proc)
	eng, err := w.openDevice(env, i, cl, log)
	if err != nil {
		return fmt.Errorf("device %s: %w", deviceNames[i], err)
	}
	defer eng.Close()
	dir := deviceDir(env, i)
	rng := w.rng(env, proc)
	pending := map[string]*pendingEdit{}
	for n := 1; w.pause(ctx, rng); n++ {
		if rel := w.choose(rng, pending, i, n); rel != "" {
			if pe := w.edit(env, proc, node, dir, i, n, rel, rng); pe != nil {
				pending[rel] = pe
			}
		}
		sctx, cancel := context.WithTimeout(ctx, w.cfg.SyncTimeout)
		sum, err := eng.Sync(sctx)
		cancel()
		switch {
		case err == nil && sum.Pending == 0:
			w.mu.Lock()
			for rel, pe := range pending {
				pe.op.Ok(nil)
				w.acked = append(w.acked, pe.edit)
				delete(pending, rel)
			}
			w.mu.Unlock()
		case ctx.Err() != nil:
		case err != nil:
			log.Info("sync failed (expected during faults)", "device", deviceNames[i], "err", err)
		default:
			log.Info("sync stopped with steps left", "device", deviceNames[i], "pending", sum.Pending)
		}
	}
	for _, pe := range pending {
		pe.op.Unknown(errors.New("not acknowledged: no sync finished cleanly after it before the run ended"))
	}
	return nil
}

// choose picks the file to edit: one of the SyncFiles shared files that
// has no unacknowledged edit of this device, or sometimes a new file; ""
// when every shared file waits for an acknowledgement.
func (w *syncWorkload) choose(rng *mrand.Rand, pending map[string]*pendingEdit, i, n int) string {
	if rng.IntN(10) == 0 {
		return fmt.Sprintf("%s-new-%d.txt", strings.ToLower(deviceNames[i]), n)
	}
	var free []string
	for f := range w.cfg.SyncFiles {
		rel := fmt.Sprintf("f%02d.txt", f)
		if pending[rel] == nil {
			free = append(free, rel)
		}
	}
	if len(free) == 0 {
		return ""
	}
	return free[rng.IntN(len(free))]
}

// edit writes new unique content to rel and records the edit (pending
// until a Sync acknowledges it) with the content the file held before,
// which the edit is based on. The content (device and n in its first
// line) is never written twice, and its size differs from the file's, so
// that the engine sees the change even within one mtime tick.
func (w *syncWorkload) edit(env *Env, proc int, node, dir string, i, n int, rel string, rng *mrand.Rand) *pendingEdit {
	content := []byte(fmt.Sprintf("device %s edit %d seed %d\n%s", deviceNames[i], n, env.Seed, strings.Repeat("x", rng.IntN(4096))))
	full := filepath.Join(dir, filepath.FromSlash(rel))
	if fi, err := os.Stat(full); err == nil && fi.Size() == int64(len(content)) {
		content = append(content, '\n')
	}
	prev, err := hashFile(full)
	if errors.Is(err, fs.ErrNotExist) {
		prev, err = "", nil
	}
	sum := sha256.Sum256(content)
	e := check.Edit{Device: deviceNames[i], Path: rel, SHA256: hex.EncodeToString(sum[:]), Prev: prev}
	p := env.Rec.Invoke(proc, w.name, KindEdit, w.folder()+"/"+rel, EditInput{Device: e.Device, Path: rel, SHA256: e.SHA256, Prev: prev, Size: len(content)})
	p.SetNode(node)
	if err != nil {
		p.Fail(fmt.Errorf("reading the file before the edit: %w", err))
		return nil
	}
	if err := os.WriteFile(full, content, 0o644); err != nil {
		p.Fail(err)
		return nil
	}
	return &pendingEdit{op: p, edit: e}
}

// Check syncs both devices until both have nothing to do, then compares
// the two folders and the server's folder, and looks for every
// acknowledged edit.
func (w *syncWorkload) Check(ctx context.Context, env *Env, _ []history.Op) []check.Result {
	if env.Dir == "" {
		return []check.Result{invalid("converged", ErrNoDir.Error())}
	}
	log := w.logger(env)
	cctx, cancel := context.WithTimeout(ctx, w.cfg.CheckTimeout)
	defer cancel()
	var engines []*syncer.Engine
	for i := range deviceNames {
		eng, err := w.openDevice(env, i, env.Final, log)
		if err != nil {
			return []check.Result{invalid("converged", "could not open device "+deviceNames[i], err.Error())}
		}
		defer eng.Close()
		engines = append(engines, eng)
	}
	settled, passes, lastErr := w.quiesce(cctx, engines)
	settledRes := check.Result{Name: "sync-settled", Valid: settled,
		Summary: fmt.Sprintf("both devices had nothing to do after %d passes", passes)}
	if !settled {
		settledRes.Summary = fmt.Sprintf("the devices did not settle within %v (%d passes)", w.cfg.CheckTimeout, passes)
		if lastErr != nil {
			settledRes.Details = []string{"last error: " + lastErr.Error()}
		}
	}

	trees := map[string]map[string]string{}
	for i := range deviceNames {
		t, err := localTree(deviceDir(env, i))
		if err != nil {
			return []check.Result{settledRes, invalid("converged", "could not read device "+deviceNames[i]+"'s folder", err.Error())}
		}
		trees["device "+deviceNames[i]] = t
	}
	server, err := w.serverTree(cctx, env.Final)
	if err != nil {
		return []check.Result{settledRes, invalid("converged", "could not list "+w.folder(), err.Error())}
	}
	trees["server"] = server

	w.mu.Lock()
	acked := append([]check.Edit(nil), w.acked...)
	w.mu.Unlock()
	paths := map[string]bool{}
	for p := range server {
		paths[p] = true
	}
	for _, e := range acked {
		paths[e.Path] = true
	}
	hist, err := w.serverHistory(cctx, env.Final, paths)
	if err != nil {
		return []check.Result{settledRes, check.Converged(trees), invalid("edits", "could not read the server's history", err.Error())}
	}
	return []check.Result{settledRes, check.Converged(trees), check.Edits(acked, trees, hist)}
}

// quiesce syncs the devices in turn until one pass in which both finished
// without changing anything or leaving steps, or ctx ends.
func (w *syncWorkload) quiesce(ctx context.Context, engines []*syncer.Engine) (settled bool, passes int, lastErr error) {
	backoff := 100 * time.Millisecond
	for ctx.Err() == nil {
		passes++
		quiet, failed := true, false
		for _, eng := range engines {
			sctx, cancel := context.WithTimeout(ctx, w.cfg.SyncTimeout)
			sum, err := eng.Sync(sctx)
			cancel()
			if err != nil {
				lastErr, quiet, failed = err, false, true
				continue
			}
			if sum.Changed() || sum.Pending > 0 {
				quiet = false
			}
		}
		if quiet {
			return true, passes, nil
		}
		if failed {
			sleep(ctx, backoff)
			backoff = min(2*backoff, 2*time.Second)
		}
	}
	return false, passes, lastErr
}

// localTree maps each file below dir (the engine's state folder and temp
// files left out) to its SHA-256.
func localTree(dir string) (map[string]string, error) {
	tree := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p != dir && strings.HasPrefix(d.Name(), syncer.StateDirName) {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		if !d.Type().IsRegular() {
			return nil
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		h, err := hashFile(p)
		if err != nil {
			return err
		}
		tree[filepath.ToSlash(rel)] = h
		return nil
	})
	return tree, err
}

func hashFile(p string) (string, error) {
	f, err := os.Open(p)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// serverTree lists the workload's remote folder: relative path → SHA-256
// of each file.
func (w *syncWorkload) serverTree(ctx context.Context, cl *client.Client) (map[string]string, error) {
	var tree map[string]string
	err := settle(ctx, w.cfg.OpTimeout, func(actx context.Context) error {
		tree = map[string]string{}
		entries, err := cl.ListAll(actx, w.folder(), client.ListOptions{Recursive: true})
		if errors.Is(err, client.ErrNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		for _, e := range entries {
			if !e.Dir {
				tree[strings.TrimPrefix(e.Path, w.folder()+"/")] = e.Hash
			}
		}
		return nil
	})
	return tree, err
}

// serverHistory reads every revision the server keeps of each path
// (relative to the folder): its number, content hash, and whether it is a
// deletion. Revisions of a folder are left out.
func (w *syncWorkload) serverHistory(ctx context.Context, cl *client.Client, paths map[string]bool) (map[string][]check.FileRev, error) {
	hist := map[string][]check.FileRev{}
	for p := range paths {
		err := settle(ctx, w.cfg.OpTimeout, func(actx context.Context) error {
			revs, err := cl.History(actx, w.folder()+"/"+p, 10000)
			if errors.Is(err, client.ErrNotFound) {
				return nil
			}
			if err != nil {
				return err
			}
			hist[p] = nil
			for _, r := range revs {
				if !r.Dir {
					hist[p] = append(hist[p], check.FileRev{Rev: r.Rev, SHA256: r.Hash, Deleted: r.Deleted})
				}
			}
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("history of %s: %w", p, err)
		}
	}
	return hist, nil
}
