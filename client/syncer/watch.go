package syncer

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/fsnotify/fsnotify"

	"github.com/coffer-dev/coffer/client"
)

// StatusFile is the file in StateDir where Watch records its state after
// every sync, for `coffer status` to read while the watch holds the
// database.
const StatusFile = "status.json"

// Status is what StatusFile holds.
type Status struct {
	Time    time.Time `json:"time"`
	State   string    `json:"state"` // "idle", "syncing" or "error"
	Error   string    `json:"error,omitempty"`
	Last    Summary   `json:"last"`    // the last sync that ran
	Total   Summary   `json:"total"`   // since the watch started
	Pending int       `json:"pending"` // steps planned but not done
}

// ReadStatus reads the status a running Watch writes into stateDir.
func ReadStatus(stateDir string) (*Status, error) {
	data, err := os.ReadFile(filepath.Join(stateDir, StatusFile))
	if err != nil {
		return nil, err
	}
	var s Status
	if err := json.Unmarshal(data, &s); err != nil {
		return nil, fmt.Errorf("%s: %w", StatusFile, err)
	}
	return &s, nil
}

func (e *Engine) writeStatus(s Status) {
	data, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return
	}
	tmp := filepath.Join(e.cfg.StateDir, StatusFile+".tmp")
	if err := os.WriteFile(tmp, data, 0o600); err == nil {
		os.Rename(tmp, filepath.Join(e.cfg.StateDir, StatusFile))
	}
}

// Watch syncs now and then again whenever the folder changes (file-system
// events, debounced by Debounce), the change feed has news (a long-poll;
// not debounced), or
// RescanInterval passes (the watcher can miss events). onSync, if not
// nil, is called after every sync. Errors of a sync are logged and the
// sync retried with a growing pause (1 s to 30 s), except those no retry
// fixes (the session ended, the state database failed): Watch returns
// them. It returns nil when ctx ends.
func (e *Engine) Watch(ctx context.Context, onSync func(Summary, error)) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	kick := make(chan struct{}, 1)
	poke := func() {
		select {
		case kick <- struct{}{}:
		default:
		}
	}
	w, err := e.newWatcher(poke)
	if err != nil {
		e.log.Warn("no file-system events; relying on rescans", "err", err)
	}
	if w != nil {
		defer w.close()
	}
	// News from the change feed needs no settling: it wakes a sync at once.
	remote := make(chan struct{}, 1)
	pokeRemote := func() {
		select {
		case remote <- struct{}{}:
		default:
		}
	}
	cursor := make(chan uint64, 1)
	go e.longPoll(ctx, cursor, pokeRemote)
	rescan := time.NewTicker(e.cfg.RescanInterval)
	defer rescan.Stop()

	var total Summary
	pause := time.Duration(0)
	poke()
	for {
		settleFirst := true
		select {
		case <-ctx.Done():
			return nil
		case <-kick:
		case <-rescan.C:
		case <-remote:
			settleFirst = false
		}
		if pause > 0 {
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(pause):
			}
		}
		// Let a burst of file-system events settle.
		settle := time.NewTimer(e.cfg.Debounce)
		if !settleFirst {
			settle.Reset(0)
		}
	drain:
		for {
			select {
			case <-ctx.Done():
				settle.Stop()
				return nil
			case <-kick:
				settle.Reset(e.cfg.Debounce)
			case <-settle.C:
				break drain
			}
		}
		e.writeStatus(Status{Time: time.Now(), State: "syncing", Total: total})
		sum, err := e.Sync(ctx)
		total.add(sum)
		if w != nil {
			w.update(e)
		}
		select {
		case cursor <- e.cursor:
		default:
			select {
			case <-cursor:
			default:
			}
			cursor <- e.cursor
		}
		st := Status{Time: time.Now(), State: "idle", Last: sum, Total: total, Pending: sum.Pending}
		if onSync != nil && (err != nil || sum.Changed() || sum.Pending > 0) {
			onSync(sum, err)
		}
		switch {
		case ctx.Err() != nil:
			return nil
		case err != nil && (isSessionEnd(err) || errors.Is(err, ErrStateDB)):
			st.State, st.Error = "error", err.Error()
			e.writeStatus(st)
			return err
		case err != nil:
			st.State, st.Error = "error", err.Error()
			pause = min(max(2*pause, time.Second), 30*time.Second)
			e.log.Warn("sync failed; retrying", "err", err, "in", pause)
			poke()
		default:
			pause = 0
			if sum.Pending > 0 {
				poke()
			}
		}
		e.writeStatus(st)
	}
}

// longPoll waits on the change feed from the cursor the last sync
// reached and pokes when something arrives.
func (e *Engine) longPoll(ctx context.Context, cursors <-chan uint64, poke func()) {
	var cur uint64
	have := false
	for {
		if !have {
			select {
			case <-ctx.Done():
				return
			case cur = <-cursors:
				have = true
			}
		}
		select {
		case c := <-cursors:
			cur = c
		default:
		}
		page, err := e.api.Changes(ctx, cur, 1, 30*time.Second)
		switch {
		case ctx.Err() != nil:
			return
		case err != nil && !errors.Is(err, client.ErrCursorReset):
			select { // the server is away: try again in a while
			case <-ctx.Done():
				return
			case <-time.After(2 * time.Second):
			}
		case err != nil || len(page.Records) > 0:
			poke()
			have = false // wait for the sync to move the cursor on
		}
	}
}

// watcher keeps fsnotify watches on every folder of the tree.
type watcher struct {
	fw      *fsnotify.Watcher
	watched map[string]bool
	done    chan struct{}
}

func (e *Engine) newWatcher(poke func()) (*watcher, error) {
	o, ok := e.fs.(osFS)
	if !ok {
		return nil, errors.New("not a local folder")
	}
	fw, err := fsnotify.NewWatcher()
	if err != nil {
		return nil, err
	}
	w := &watcher{fw: fw, watched: map[string]bool{}, done: make(chan struct{})}
	state, _ := filepath.Abs(e.cfg.StateDir)
	go func() {
		defer close(w.done)
		for {
			select {
			case ev, ok := <-fw.Events:
				if !ok {
					return
				}
				if strings.HasPrefix(ev.Name, state) || strings.HasPrefix(filepath.Base(ev.Name), TempPrefix) {
					continue
				}
				if ev.Has(fsnotify.Create) {
					// A new folder: watch it now, so events inside it are not
					// missed before the next sync's update.
					if fi, err := os.Lstat(ev.Name); err == nil && fi.IsDir() {
						fw.Add(ev.Name)
					}
				}
				poke()
			case _, ok := <-fw.Errors:
				if !ok {
					return
				}
				poke() // an overflow: rescan
			}
		}
	}()
	if err := fw.Add(o.root); err != nil {
		w.close()
		return nil, err
	}
	w.watched[o.root] = true
	return w, nil
}

// update watches the folders the last scan saw and drops the others.
func (w *watcher) update(e *Engine) {
	o := e.fs.(osFS)
	want := map[string]bool{o.root: true}
	for p, b := range e.base {
		if b.Dir {
			want[o.abs(e.realOf(p))] = true
		}
	}
	for p := range want {
		if !w.watched[p] {
			if err := w.fw.Add(p); err == nil {
				w.watched[p] = true
			}
		}
	}
	for p := range w.watched {
		if !want[p] {
			w.fw.Remove(p)
			delete(w.watched, p)
		}
	}
}

func (w *watcher) close() {
	w.fw.Close()
	<-w.done
}
