package syncer

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"path"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/coffer-dev/coffer/client"
	"github.com/coffer-dev/coffer/internal/cdc"
	"github.com/coffer-dev/coffer/internal/wire"
)

// Commit batching: ops per commit, blocks named per commit, and bytes of
// files uploaded before each commit.
const (
	commitOps    = 1000
	commitBlocks = 20000
	uploadBatch  = 256 << 20
)

// ErrCrash is what a test hook returns to stop the engine at a step, as a
// crash would.
var ErrCrash = errors.New("simulated crash")

// run carries out one plan and reports how many actions took effect. An
// action whose premise no longer holds (the file changed again, a
// concurrent commit won) is skipped: the next round plans it afresh. The
// error is for what no later round fixes by itself: the server cannot be
// reached, the session ended, the state database failed, ctx ended.
func (e *Engine) run(ctx context.Context, plan []Action, sum *Summary) (int, error) {
	by := map[Kind][]Action{}
	for _, a := range plan {
		e.log.Debug("plan", "kind", a.Kind, "path", a.Path, "to", a.To)
		by[a.Kind] = append(by[a.Kind], a)
	}
	done := 0
	count := func(n int, err error) error {
		done += n
		return err
	}
	// Moves come alone.
	for _, a := range by[MoveLocal] {
		if err := count(e.moveLocal(a, sum)); err != nil {
			return done, err
		}
	}
	if len(by[MoveRemote]) > 0 {
		if err := count(e.moveRemote(ctx, by[MoveRemote], sum)); err != nil {
			return done, err
		}
	}
	for _, a := range by[Conflict] {
		if err := count(e.conflict(a, "conflicted copy "+e.cfg.Host+" "+e.cfg.Now().Format("2006-01-02 150405"), sum)); err != nil {
			return done, err
		}
	}
	for _, a := range by[CaseClash] {
		if err := count(e.conflict(a, "case conflict", sum)); err != nil {
			return done, err
		}
	}
	dels := by[DeleteLocal]
	slices.SortFunc(dels, deepestFirst)
	for _, a := range dels {
		if err := count(e.deleteLocal(a, sum)); err != nil {
			return done, err
		}
	}
	for _, a := range by[MkdirLocal] { // in path order: parents first
		if err := count(e.mkdirLocal(a, sum)); err != nil {
			return done, err
		}
	}
	if err := count(e.downloads(ctx, by[Download], sum)); err != nil {
		return done, err
	}
	if err := count(e.pushRemote(ctx, by[DeleteRemote], by[MkdirRemote], by[Upload], sum)); err != nil {
		return done, err
	}
	var changes []baseChange
	for _, a := range by[Record] {
		changes = append(changes, baseChange{a.Path, recordOf(a.Local, a.Remote.ID, a.Remote.Rev)})
	}
	for _, a := range by[Forget] {
		changes = append(changes, baseChange{Path: a.Path})
	}
	if len(changes) > 0 {
		if err := e.step("record"); err != nil {
			return done, err
		}
		if err := e.setBase(changes); err != nil {
			return done, err
		}
		done += len(changes)
	}
	for _, a := range by[Refresh] {
		if err := count(e.refresh(ctx, a, sum)); err != nil {
			return done, err
		}
	}
	return done, nil
}

func deepestFirst(a, b Action) int {
	if d := depth(b.Path) - depth(a.Path); d != 0 {
		return d
	}
	return strings.Compare(b.Path, a.Path)
}

// recordOf is the base entry for a local file or folder in sync with the
// remote node id at rev.
func recordOf(l *Local, id, rev uint64) *Base {
	return &Base{ID: id, Rev: rev, Dir: l.Dir, Size: l.Size, Hash: l.Hash, Exec: l.Exec,
		Mtime: l.Mtime, Inode: l.Inode, Blocks: l.Blocks}
}

// setBase writes base changes to the database and to memory.
func (e *Engine) setBase(changes []baseChange) error {
	if err := e.st.updateBase(changes); err != nil {
		return fmt.Errorf("%w: %w", ErrStateDB, err)
	}
	for _, c := range changes {
		if c.B == nil {
			delete(e.base, c.Path)
			continue
		}
		c.B.Path = c.Path
		e.base[c.Path] = c.B
		delete(e.hashes, c.Path)
	}
	return nil
}

// fatal reports errors that end the round: everything but a failed
// premise.
func fatal(err error) bool {
	return errors.Is(err, ErrCrash) || errors.Is(err, ErrStateDB) || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) ||
		errors.Is(err, client.ErrUnavailable) || isSessionEnd(err)
}

// skip counts an action that did not happen, or returns a fatal error.
func (e *Engine) skip(sum *Summary, what string, a Action, err error) (int, error) {
	if fatal(err) {
		return 0, fmt.Errorf("%s %s: %w", what, a.Path, err)
	}
	e.log.Info("skipped; the next round looks again", "step", what, "path", a.Path, "err", err)
	sum.Skipped++
	return 0, nil
}

// unchanged checks that the local path still is what the plan saw (nil l:
// that nothing is there).
func (e *Engine) unchanged(real string, l *Local) error {
	fi, err := e.fs.Lstat(real)
	if l == nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err != nil {
			return err
		}
		return errors.New("something appeared at the path")
	}
	if err != nil {
		return err
	}
	if fi.Dir != l.Dir || (!l.Dir && (fi.Size != l.Size || fi.Mtime != l.Mtime || fi.Inode != l.Inode)) {
		return errors.New("the local file changed")
	}
	return nil
}

// mkdirAll makes the local folder p and its parents.
func (e *Engine) mkdirAll(p string) error {
	if p == "" {
		return nil
	}
	fi, err := e.fs.Lstat(p)
	if err == nil {
		if fi.Dir {
			return nil
		}
		return fmt.Errorf("%s is a file", p)
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	if err := e.mkdirAll(parentOf(p)); err != nil {
		return err
	}
	if err := e.fs.Mkdir(p); err != nil && !errors.Is(err, fs.ErrExist) {
		return err
	}
	return nil
}

func (e *Engine) moveLocal(a Action, sum *Summary) (int, error) {
	if err := e.step("move-local"); err != nil {
		return 0, err
	}
	to := e.realOf(a.To)
	if err := e.unchanged(to, nil); err != nil {
		return e.skip(sum, "move-local", a, err)
	}
	if err := e.mkdirAll(parentOf(to)); err != nil {
		return e.skip(sum, "move-local", a, err)
	}
	if err := e.fs.Rename(a.Local.Real, to); err != nil {
		e.noMove[a.Path] = true
		return e.skip(sum, "move-local", a, err)
	}
	if err := e.fs.SyncDir(parentOf(to)); err != nil {
		return 0, err
	}
	if err := e.step("move-local-record"); err != nil {
		return 0, err
	}
	if err := e.moveBaseTree(a.Path, a.To); err != nil {
		return 0, err
	}
	sum.Moved++
	return 1, nil
}

// moveBaseTree moves the base entries at and below from to to.
func (e *Engine) moveBaseTree(from, to string) error {
	if err := e.st.moveBase(from, to); err != nil {
		return fmt.Errorf("%w: %w", ErrStateDB, err)
	}
	for p, b := range e.base {
		if under(p, from) {
			delete(e.base, p)
			np := to + p[len(from):]
			b.Path = np
			e.base[np] = b
		}
	}
	return nil
}

func (e *Engine) moveRemote(ctx context.Context, moves []Action, sum *Summary) (int, error) {
	done := 0
	for _, a := range moves {
		if err := e.step("move-remote"); err != nil {
			return done, err
		}
		op := wire.Op{Kind: "move", Path: e.remotePath(a.Path), To: e.remotePath(a.To), IfMatch: a.Remote.Rev}
		res, err := e.api.Commit(ctx, "", []wire.Op{op}, nil)
		if err != nil {
			e.noMove[a.Path] = true
			if _, err := e.skip(sum, "move-remote", a, err); err != nil {
				return done, err
			}
			continue
		}
		if err := e.step("move-remote-record"); err != nil {
			return done, err
		}
		if err := e.moveBaseTree(a.Path, a.To); err != nil {
			return done, err
		}
		if b := e.base[a.To]; b != nil && len(res.Ops) == 1 {
			nb := *b
			nb.Rev = res.Ops[0].Rev
			if err := e.setBase([]baseChange{{a.To, &nb}}); err != nil {
				return done, err
			}
		}
		sum.Moved++
		done++
	}
	return done, nil
}

// asideName is "NAME (TAG).EXT" in p's folder, with " 2", " 3"… after
// the tag when that is taken (locally or in the base).
func (e *Engine) asideName(p, tag string) (string, error) {
	dir, name := parentOf(p), path.Base(p)
	ext := path.Ext(name)
	if ext == name { // ".bashrc"
		ext = ""
	}
	stem := strings.TrimSuffix(name, ext)
	for i := 1; i < 1000; i++ {
		n := fmt.Sprintf("%s (%s", stem, tag)
		if i > 1 {
			n += fmt.Sprintf(" %d", i)
		}
		n += ")" + ext
		if dir != "" {
			n = dir + "/" + n
		}
		if _, taken := e.base[n]; taken {
			continue
		}
		if _, err := e.fs.Lstat(e.realOf(n)); errors.Is(err, fs.ErrNotExist) {
			return e.realOf(dir) + strings.TrimPrefix(n, dir), nil
		}
	}
	return "", fmt.Errorf("no free name for a copy of %s", p)
}

// conflict moves the local Path aside to "NAME (TAG).EXT": a conflicted
// copy (the remote version then takes the path), or a name that clashes
// in case with another. The copy is uploaded next round as a new file.
func (e *Engine) conflict(a Action, tag string, sum *Summary) (int, error) {
	if err := e.step("conflict"); err != nil {
		return 0, err
	}
	if err := e.unchanged(a.Local.Real, a.Local); err != nil {
		return e.skip(sum, "conflict", a, err)
	}
	name, err := e.asideName(a.Path, tag)
	if err != nil {
		return e.skip(sum, "conflict", a, err)
	}
	if err := e.fs.Rename(a.Local.Real, name); err != nil {
		return e.skip(sum, "conflict", a, err)
	}
	if err := e.fs.SyncDir(parentOf(name)); err != nil {
		return 0, err
	}
	e.log.Warn("kept the local version under another name", "path", a.Path, "as", name, "why", tag)
	sum.Conflicts++
	return 1, nil
}

func (e *Engine) deleteLocal(a Action, sum *Summary) (int, error) {
	if err := e.step("delete-local"); err != nil {
		return 0, err
	}
	if err := e.unchanged(a.Local.Real, a.Local); err != nil {
		return e.skip(sum, "delete-local", a, err)
	}
	err := e.fs.Remove(a.Local.Real)
	if errors.Is(err, ErrNotEmpty) {
		e.clearJunk(a.Local.Real)
		err = e.fs.Remove(a.Local.Real)
	}
	switch {
	case errors.Is(err, ErrNotEmpty):
		// Something new is inside: the folder stays, and its new contents
		// are uploaded (which makes the folder again remotely).
		e.log.Info("kept a folder deleted remotely: it holds new files", "path", a.Path)
	case err != nil && !errors.Is(err, fs.ErrNotExist):
		return e.skip(sum, "delete-local", a, err)
	default:
		sum.DeletedLocal++
		if err := e.fs.SyncDir(parentOf(a.Local.Real)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return 0, err
		}
	}
	if err := e.setBase([]baseChange{{Path: a.Path}}); err != nil {
		return 0, err
	}
	return 1, nil
}

// clearJunk removes what the sync does not carry from a folder about to
// be deleted: ignored files and stale temp files.
func (e *Engine) clearJunk(dir string) {
	m, err := e.loadIgnore()
	if err != nil {
		return
	}
	ents, err := e.fs.ReadDir(dir)
	if err != nil {
		return
	}
	for _, fi := range ents {
		p := dir + "/" + fi.Name
		if !fi.Dir && (strings.HasPrefix(fi.Name, TempPrefix) || m.Ignored(p, false)) {
			e.fs.Remove(p)
		}
	}
}

func (e *Engine) mkdirLocal(a Action, sum *Summary) (int, error) {
	if err := e.step("mkdir-local"); err != nil {
		return 0, err
	}
	real := e.realOf(a.Path)
	if err := e.mkdirAll(real); err != nil {
		return e.skip(sum, "mkdir-local", a, err)
	}
	fi, err := e.fs.Lstat(real)
	if err != nil {
		return e.skip(sum, "mkdir-local", a, err)
	}
	if err := e.fs.SyncDir(parentOf(real)); err != nil {
		return 0, err
	}
	if err := e.setBase([]baseChange{{a.Path, &Base{ID: a.Remote.ID, Rev: a.Remote.Rev, Dir: true, Inode: fi.Inode, Mtime: fi.Mtime}}}); err != nil {
		return 0, err
	}
	sum.FoldersMade++
	return 1, nil
}

// refresh records a new remote revision of content the folder already
// has, taking on its executable bit.
func (e *Engine) refresh(ctx context.Context, a Action, sum *Summary) (int, error) {
	en := &client.Entry{ID: a.Remote.ID, Rev: a.Remote.Rev, Hash: a.Remote.Hash, Mode: a.Remote.Mode}
	if en.Mode == 0 { // not in the feed record: ask
		var err error
		if en, err = e.api.Stat(ctx, e.remotePath(a.Path), false); err != nil {
			return e.skip(sum, "refresh", a, err)
		}
	}
	if en.Dir || en.Hash != a.Local.Hash {
		return e.skip(sum, "refresh", a, errors.New("the remote file changed again"))
	}
	l := *a.Local
	if exec := en.Mode&0o100 != 0; exec != l.Exec {
		if err := e.step("refresh-attr"); err != nil {
			return 0, err
		}
		if err := e.unchanged(l.Real, a.Local); err != nil {
			return e.skip(sum, "refresh", a, err)
		}
		if err := e.fs.SetAttr(l.Real, exec, l.Mtime); err != nil {
			return e.skip(sum, "refresh", a, err)
		}
		fi, err := e.fs.Lstat(l.Real)
		if err != nil {
			return e.skip(sum, "refresh", a, err)
		}
		l.Exec, l.Mtime, l.Inode = fi.Exec, fi.Mtime, fi.Inode
	}
	if err := e.setBase([]baseChange{{a.Path, recordOf(&l, en.ID, en.Rev)}}); err != nil {
		return 0, err
	}
	return 1, nil
}

// modeOf is the remote mode of a local file.
func modeOf(exec bool) uint32 {
	if exec {
		return 0o755
	}
	return 0o644
}

// pushRemote commits the local deletes, new folders and changed files:
// deletes first (deepest first), then creations in path order, in batches
// of at most commitOps ops, commitBlocks blocks and uploadBatch bytes. For
// each batch it uploads the blocks the server lacks, then commits, so a
// long first sync makes progress that a crash does not lose. A batch that
// fails on one op's precondition is retried op by op, so the others land.
func (e *Engine) pushRemote(ctx context.Context, dels, mkdirs, uploads []Action, sum *Summary) (int, error) {
	slices.SortFunc(dels, deepestFirst)
	creates := append(slices.Clone(mkdirs), uploads...)
	slices.SortFunc(creates, func(a, b Action) int { return strings.Compare(a.Path, b.Path) })
	done := 0
	for _, group := range [][]Action{dels, creates} {
		for len(group) > 0 {
			n, blocks := 0, 0
			var bytes int64
			for n < len(group) && n < commitOps {
				bl := localBlocks(group[n])
				var size int64
				if group[n].Kind == Upload {
					size = group[n].Local.Size
				}
				if n > 0 && (blocks+len(bl) > commitBlocks || bytes+size > uploadBatch) {
					break
				}
				blocks += len(bl)
				bytes += size
				n++
			}
			batch := group[:n]
			group = group[n:]
			var ups, rest []Action
			for _, a := range batch {
				if a.Kind == Upload {
					ups = append(ups, a)
				} else {
					rest = append(rest, a)
				}
			}
			receipts, good, err := e.sendBlocks(ctx, ups, sum)
			if err != nil {
				return done, err
			}
			batch = append(rest, good...) // deletes keep their order
			if len(good) > 0 && len(rest) > 0 {
				slices.SortFunc(batch, func(a, b Action) int { return strings.Compare(a.Path, b.Path) })
			}
			if len(batch) == 0 {
				continue
			}
			d, err := e.commitBatch(ctx, batch, receipts, sum)
			done += d
			if err != nil {
				return done, err
			}
		}
	}
	return done, nil
}

func localBlocks(a Action) []wire.Block {
	if a.Kind == Upload {
		return a.Local.Blocks
	}
	return nil
}

// opOf is the commit op of a remote action.
func (e *Engine) opOf(a Action) wire.Op {
	p := e.remotePath(a.Path)
	switch a.Kind {
	case DeleteRemote:
		return wire.Op{Kind: "delete", Path: p, IfMatch: a.Remote.Rev}
	case MkdirRemote:
		return wire.Op{Kind: "mkdir", Path: p, IfNoneMatch: true, Mtime: a.Local.Mtime}
	}
	op := wire.Op{Kind: "put", Path: p, Size: a.Local.Size, Mtime: a.Local.Mtime, Mode: modeOf(a.Local.Exec),
		Hash: a.Local.Hash, Blocks: a.Local.Blocks}
	if a.Remote != nil && !a.Remote.Dir {
		op.IfMatch = a.Remote.Rev
	} else {
		op.IfNoneMatch = true
	}
	return op
}

// commitBatch commits actions as one batch; on a failed precondition it
// commits them one at a time, skipping the ones that fail.
func (e *Engine) commitBatch(ctx context.Context, batch []Action, receipts map[string]string, sum *Summary) (int, error) {
	ops := make([]wire.Op, len(batch))
	var rcpts []string
	seen := map[string]bool{}
	for i, a := range batch {
		ops[i] = e.opOf(a)
		for _, b := range ops[i].Blocks {
			if r, ok := receipts[b.Ref]; ok && !seen[b.Ref] {
				seen[b.Ref] = true
				rcpts = append(rcpts, r)
			}
		}
	}
	if err := e.step("commit"); err != nil {
		return 0, err
	}
	res, err := e.api.Commit(ctx, "", ops, rcpts)
	if err != nil {
		if fatal(err) {
			return 0, fmt.Errorf("commit: %w", err)
		}
		if errors.Is(err, client.ErrInvalidArgument) && len(rcpts) > 0 {
			// Perhaps a stored receipt the server no longer takes: the next
			// round sends those blocks again.
			if err := e.st.clearReceipts(); err != nil {
				return 0, err
			}
		}
		if len(batch) == 1 {
			return e.skip(sum, batch[0].Kind.String(), batch[0], err)
		}
		done := 0
		for i := range batch {
			d, err := e.commitBatch(ctx, batch[i:i+1], receipts, sum)
			done += d
			if err != nil {
				return done, err
			}
		}
		return done, nil
	}
	if err := e.step("commit-record"); err != nil {
		return 0, err
	}
	var changes []baseChange
	for i, a := range batch {
		var r client.OpResult
		if i < len(res.Ops) {
			r = res.Ops[i]
		}
		switch a.Kind {
		case DeleteRemote:
			for p := range e.base {
				if under(p, a.Path) {
					changes = append(changes, baseChange{Path: p})
				}
			}
			sum.DeletedRemote++
		case MkdirRemote:
			changes = append(changes, baseChange{a.Path, recordOf(a.Local, r.ID, r.Rev)})
			sum.FoldersMade++
		case Upload:
			changes = append(changes, baseChange{a.Path, recordOf(a.Local, r.ID, r.Rev)})
			sum.Uploaded++
		}
	}
	if err := e.setBase(changes); err != nil {
		return 0, err
	}
	return len(batch), nil
}

// sendBlocks uploads the blocks of the files to upload that the server
// lacks, reading each from its file and checking it against the hash the
// scan took. It returns the receipts by ref and the uploads still good:
// a file that changed since the scan is skipped (the next round reads it
// again), so a torn file is never committed.
func (e *Engine) sendBlocks(ctx context.Context, uploads []Action, sum *Summary) (map[string]string, []Action, error) {
	receipts := map[string]string{}
	if len(uploads) == 0 {
		return receipts, nil, nil
	}
	type src struct {
		a    int // index in uploads
		off  int64
		size int64
	}
	where := map[string]src{}
	var refs []string
	for i, a := range uploads {
		var off int64
		for _, b := range a.Local.Blocks {
			if _, ok := where[b.Ref]; !ok {
				where[b.Ref] = src{i, off, b.Size}
				refs = append(refs, b.Ref)
			}
			off += b.Size
		}
	}
	var missing []string
	for len(refs) > 0 {
		n := min(len(refs), 10000)
		m, err := e.api.MissingBlocks(ctx, refs[:n])
		if err != nil {
			return nil, nil, fmt.Errorf("asking for missing blocks: %w", err)
		}
		missing = append(missing, m...)
		refs = refs[n:]
	}
	// Blocks sent before a crash (or a failed commit) come with a stored
	// receipt.
	stored, err := e.st.receipts(missing, time.Now())
	if err != nil {
		return nil, nil, err
	}
	for ref, r := range stored {
		receipts[ref] = r
	}
	bad := make([]bool, len(uploads))
	var mu sync.Mutex
	var firstErr error
	fresh := map[string]string{} // receipts not yet stored
	flush := func() {
		if err := e.st.saveReceipts(fresh, time.Now()); err != nil && firstErr == nil {
			firstErr = err
		}
		clear(fresh)
	}
	// One job is a large block (PutBlock) or a group of small ones
	// (PutBlocks: one request for many small files).
	work := make(chan []string)
	var wg sync.WaitGroup
	for range e.cfg.Parallel {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for job := range work {
				var blocks []client.BlockData
				for _, ref := range job {
					s := where[ref]
					mu.Lock()
					skip := bad[s.a] || firstErr != nil
					mu.Unlock()
					if skip {
						continue
					}
					data, err := e.readBlock(uploads[s.a].Local.Real, s.off, s.size, ref)
					if err != nil {
						mu.Lock()
						if errors.Is(err, errChanging) || errors.Is(err, fs.ErrNotExist) {
							bad[s.a] = true
						} else if firstErr == nil {
							firstErr = err
						}
						mu.Unlock()
						continue
					}
					blocks = append(blocks, client.BlockData{Ref: ref, Data: data})
				}
				if len(blocks) == 0 {
					continue
				}
				var rcs []wire.BlockReceipt
				err := e.step("put-block")
				if err == nil {
					if len(blocks) == 1 {
						var rc *wire.BlockReceipt
						if rc, err = e.api.PutBlock(ctx, blocks[0].Ref, blocks[0].Data); err == nil {
							rcs = []wire.BlockReceipt{*rc}
						}
					} else {
						rcs, err = e.api.PutBlocks(ctx, blocks)
					}
				}
				mu.Lock()
				if err != nil && firstErr == nil {
					firstErr = err
				}
				for i, rc := range rcs {
					receipts[rc.Ref] = rc.Receipt
					fresh[rc.Ref] = rc.Receipt
					sum.BlocksUploaded++
					sum.BytesUploaded += int64(len(blocks[i].Data))
				}
				if len(fresh) >= 32 {
					flush()
				}
				mu.Unlock()
			}
		}()
	}
	var group []string
	var groupBytes int64
	for _, ref := range missing {
		s, ok := where[ref]
		if !ok || stored[ref] != "" {
			continue // not asked, or sent before
		}
		if s.size >= smallBlock {
			work <- []string{ref}
			continue
		}
		group = append(group, ref)
		groupBytes += s.size
		if len(group) >= groupBlocks || groupBytes >= groupSize {
			work <- group
			group, groupBytes = nil, 0
		}
	}
	if len(group) > 0 {
		work <- group
	}
	close(work)
	wg.Wait()
	flush()
	if firstErr != nil {
		return nil, nil, fmt.Errorf("uploading blocks: %w", firstErr)
	}
	var good []Action
	for i, a := range uploads {
		if !bad[i] {
			if err := e.unchanged(a.Local.Real, a.Local); err == nil {
				good = append(good, a)
				continue
			}
		}
		e.log.Info("a file changed while it was uploaded; the next round reads it again", "path", a.Path)
		sum.Skipped++
	}
	return receipts, good, nil
}

// Blocks smaller than smallBlock go up in groups of up to groupBlocks
// blocks and groupSize bytes, one request each.
const (
	smallBlock  = 1 << 20
	groupBlocks = 256
	groupSize   = 8 << 20
)

// readBlock reads one block of a local file and checks its hash:
// errChanging when the bytes are not the ones the scan hashed.
func (e *Engine) readBlock(real string, off, size int64, ref string) ([]byte, error) {
	f, err := e.fs.Open(real)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data := make([]byte, size)
	if _, err := f.ReadAt(data, off); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, errChanging
		}
		return nil, err
	}
	sum := sha256.Sum256(data)
	if hex.EncodeToString(sum[:]) != ref {
		return nil, errChanging
	}
	return data, nil
}

// Small files (one block, under cdc.DefaultMin) whose blocks the folder
// does not have are read in groups of up to readGroup, one POST
// /v1/blocks/read each, and placed together: one folder fsync per folder
// and one state-DB transaction per group instead of one per file.
const readGroup = 256

// downloads runs the downloads, Parallel jobs at once: a job is one file,
// or a group of small files.
func (e *Engine) downloads(ctx context.Context, acts []Action, sum *Summary) (int, error) {
	if len(acts) == 0 {
		return 0, nil
	}
	e.index = e.blockIndex()
	type job struct {
		acts  []Action
		group bool
	}
	var jobs []job
	var group []Action
	for _, a := range acts {
		if !e.groupable(a) {
			jobs = append(jobs, job{acts: []Action{a}})
			continue
		}
		group = append(group, a)
		if len(group) == readGroup {
			jobs = append(jobs, job{group, true})
			group = nil
		}
	}
	if len(group) > 0 {
		jobs = append(jobs, job{group, true})
	}
	work := make(chan job)
	var (
		wg       sync.WaitGroup
		done     int
		firstErr error
	)
	for range min(e.cfg.Parallel, len(jobs)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range work {
				var local Summary
				var n int
				var err error
				if j.group {
					n, err = e.downloadGroup(ctx, j.acts, &local)
				} else {
					n, err = e.download(ctx, j.acts[0], &local)
				}
				e.mu.Lock()
				sum.add(local)
				done += n
				if err != nil && firstErr == nil {
					firstErr = err
				}
				e.mu.Unlock()
			}
		}()
	}
	for _, j := range jobs {
		e.mu.Lock()
		stop := firstErr != nil
		e.mu.Unlock()
		if stop {
			break
		}
		work <- j
	}
	close(work)
	wg.Wait()
	e.index = nil
	return done, firstErr
}

// groupable says a download can go in a group: a small file whose
// attributes the feed gave (no stat needed) and whose one block the folder
// does not already hold (an empty file needs no block at all).
func (e *Engine) groupable(a Action) bool {
	r := a.Remote
	if r.Size >= cdc.DefaultMin || r.Mode == 0 {
		return false
	}
	if r.Size == 0 {
		return true
	}
	_, have := e.index[r.Hash] // called before the workers start
	return !have
}

// download fetches one remote file and places it.
func (e *Engine) download(ctx context.Context, a Action, sum *Summary) (int, error) {
	en, err := e.entryOf(ctx, a)
	if err != nil {
		return e.skip(sum, "download", a, err)
	}
	st, err := e.stage(ctx, a, en, nil, sum)
	if st == nil {
		return 0, err
	}
	return e.place([]*staged{st}, sum)
}

// downloadGroup reads the blocks of a group of small files in one request
// and places them together.
func (e *Engine) downloadGroup(ctx context.Context, acts []Action, sum *Summary) (int, error) {
	var refs []string
	for _, a := range acts {
		if a.Remote.Size > 0 {
			refs = append(refs, a.Remote.Hash)
		}
	}
	data := make(map[string][]byte, len(refs))
	if len(refs) > 0 {
		if err := e.step("download"); err != nil {
			return 0, err
		}
		err := e.api.ReadBlocks(ctx, refs, func(ref string, b []byte) error {
			if _, dup := data[ref]; !dup {
				sum.BytesDown += int64(len(b))
			}
			data[ref] = b
			return nil
		})
		if err != nil {
			if fatal(err) {
				return 0, fmt.Errorf("reading %d small files: %w", len(refs), err)
			}
			// A file deleted or replaced meanwhile makes the whole
			// request fail (its block may be gone): fetch one by one.
			e.log.Debug("group read failed; fetching the files one by one", "files", len(acts), "err", err)
			done := 0
			for _, a := range acts {
				n, err := e.download(ctx, a, sum)
				done += n
				if err != nil {
					return done, err
				}
			}
			return done, nil
		}
	}
	var sts []*staged
	for _, a := range acts {
		r := a.Remote
		en := &client.Entry{ID: r.ID, Rev: r.Rev, Size: r.Size, Hash: r.Hash, Mode: r.Mode, Mtime: r.Mtime}
		pre := []byte{}
		if r.Size > 0 {
			en.Blocks = []wire.Block{{Ref: r.Hash, Size: r.Size}}
			pre = data[r.Hash]
		}
		st, err := e.stage(ctx, a, en, pre, sum)
		if err != nil {
			for _, s := range sts {
				e.fs.Remove(s.tmp)
			}
			return 0, err
		}
		if st != nil {
			sts = append(sts, st)
		}
	}
	return e.place(sts, sum)
}

// staged is a downloaded file in its temp file, fsynced, waiting to be
// renamed into place.
type staged struct {
	a         Action
	real, tmp string
	info      *client.FileInfo
	en        *client.Entry
}

// stage writes revision en of a's remote file (pre: its bytes, already
// read; nil: fetch them) to a temp file beside its path, verified and
// fsynced, with its exec bit and mtime set. A nil staged with a nil error
// is a skipped download.
func (e *Engine) stage(ctx context.Context, a Action, en *client.Entry, pre []byte, sum *Summary) (*staged, error) {
	real := e.realOf(a.Path)
	if a.Local != nil {
		real = a.Local.Real
	}
	dir := parentOf(real)
	skip := func(err error) (*staged, error) {
		_, err = e.skip(sum, "download", a, err)
		return nil, err
	}
	if pre == nil {
		if err := e.step("download"); err != nil {
			return nil, err
		}
	}
	e.mu.Lock()
	err := e.mkdirAll(dir)
	e.mu.Unlock()
	if err != nil {
		return skip(err)
	}
	tmp, err := e.fs.CreateTemp(dir, TempPrefix)
	if err != nil {
		return skip(err)
	}
	ok := false
	defer func() {
		if !ok {
			tmp.Close()
			e.fs.Remove(tmp.Name())
		}
	}()
	var info *client.FileInfo
	if pre != nil {
		info, err = e.writeSmall(en, pre, tmp)
	} else {
		var got, reused int64
		info, got, reused, err = e.fetch(ctx, a.Path, en, tmp)
		sum.BytesDown += got
		sum.BytesReused += reused
	}
	if err != nil {
		return skip(err)
	}
	if err := tmp.Sync(); err != nil {
		return nil, err
	}
	if err := tmp.Close(); err != nil {
		return nil, err
	}
	if err := e.fs.SetAttr(tmp.Name(), info.Mode&0o100 != 0, info.Mtime.UnixNano()); err != nil {
		return skip(err)
	}
	ok = true
	return &staged{a: a, real: real, tmp: tmp.Name(), info: info, en: en}, nil
}

// writeSmall writes a small file's bytes, read in a group, after checking
// them against the file's hash.
func (e *Engine) writeSmall(en *client.Entry, data []byte, w io.Writer) (*client.FileInfo, error) {
	if sum := sha256.Sum256(data); int64(len(data)) != en.Size || hex.EncodeToString(sum[:]) != en.Hash {
		return nil, fmt.Errorf("%w: the file", client.ErrHashMismatch)
	}
	if _, err := w.Write(data); err != nil {
		return nil, err
	}
	return &client.FileInfo{ID: en.ID, Rev: en.Rev, Size: en.Size, Hash: en.Hash, Mode: en.Mode, Mtime: time.Unix(0, en.Mtime)}, nil
}

// place renames staged files into place where the local path still holds
// what the plan saw, fsyncs their folders once each, and records them in
// the base in one transaction. A file whose path changed meanwhile is
// skipped (its temp file removed).
func (e *Engine) place(sts []*staged, sum *Summary) (int, error) {
	if len(sts) == 0 {
		return 0, nil
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	var placed []*staged
	dirs := map[string]bool{}
	var err error
	for i, st := range sts {
		if err = e.step("download-rename"); err != nil {
			for _, s := range sts[i:] {
				e.fs.Remove(s.tmp)
			}
			break
		}
		if uerr := e.unchanged(st.real, st.a.Local); uerr == nil {
			uerr = e.fs.Rename(st.tmp, st.real)
			if uerr == nil {
				placed = append(placed, st)
				dirs[parentOf(st.real)] = true
				continue
			}
			e.fs.Remove(st.tmp)
			if _, err = e.skip(sum, "download", st.a, uerr); err != nil {
				break
			}
		} else {
			e.fs.Remove(st.tmp)
			if _, err = e.skip(sum, "download", st.a, uerr); err != nil {
				break
			}
		}
	}
	for _, d := range slices.Sorted(maps.Keys(dirs)) {
		if serr := e.fs.SyncDir(d); serr != nil {
			return 0, serr
		}
	}
	if err != nil {
		return 0, err // the renamed files are durable; the next plan records them
	}
	var changes []baseChange
	var recorded []*staged
	for _, st := range placed {
		fi, lerr := e.fs.Lstat(st.real)
		if lerr != nil {
			if _, err := e.skip(sum, "download", st.a, lerr); err != nil {
				return 0, err
			}
			continue
		}
		info := st.info
		changes = append(changes, baseChange{st.a.Path, &Base{ID: info.ID, Rev: info.Rev, Size: info.Size, Hash: info.Hash,
			Exec: fi.Exec, Mtime: fi.Mtime, Inode: fi.Inode, Blocks: st.en.Blocks}})
		recorded = append(recorded, st)
	}
	if len(changes) == 0 {
		return 0, nil
	}
	if err := e.step("download-record"); err != nil {
		return 0, err
	}
	if err := e.setBase(changes); err != nil {
		return 0, err
	}
	for _, st := range recorded {
		var off int64
		for _, bl := range st.en.Blocks {
			if _, have := e.index[bl.Ref]; !have {
				e.index[bl.Ref] = blockSrc{st.real, off}
			}
			off += bl.Size
		}
		sum.Downloaded++
	}
	return len(recorded), nil
}

// entryOf returns what a download needs of the remote file: a file
// smaller than the smallest block is one block whose ref is the file's
// hash, so the plan's Remote says it all; a larger one is looked up (stat)
// for its block list.
func (e *Engine) entryOf(ctx context.Context, a Action) (*client.Entry, error) {
	r := a.Remote
	if r.Size < cdc.DefaultMin {
		en := &client.Entry{ID: r.ID, Rev: r.Rev, Size: r.Size, Hash: r.Hash, Mode: r.Mode, Mtime: r.Mtime}
		if r.Size > 0 {
			en.Blocks = []wire.Block{{Ref: r.Hash, Size: r.Size}}
		}
		return en, nil
	}
	en, err := e.api.Stat(ctx, e.remotePath(a.Path), false)
	if err != nil {
		return nil, err
	}
	if en.Dir {
		return nil, errors.New("it became a folder")
	}
	return en, nil
}

// maxRun bounds one ranged read of consecutive missing blocks.
const maxRun = 16 << 20

// fetch writes revision en of the remote file p to w and verifies it. It
// copies the blocks it finds in local files (checking each hash) and
// fetches runs of the others with ranged reads; a file with no local
// blocks is fetched whole. It returns the file's attributes and the bytes
// fetched and reused.
func (e *Engine) fetch(ctx context.Context, p string, en *client.Entry, w io.Writer) (info *client.FileInfo, got, reused int64, err error) {
	e.mu.Lock()
	srcs := make([]*blockSrc, len(en.Blocks))
	have := 0
	for i, b := range en.Blocks {
		if s, ok := e.index[b.Ref]; ok {
			srcs[i] = &s
			have++
		}
	}
	e.mu.Unlock()
	if have == 0 {
		cw := &countWriter{w: w}
		info, err := e.api.Download(ctx, e.remotePath(p), en.Rev, cw)
		if err == nil && info.Hash != en.Hash {
			err = fmt.Errorf("%w: revision %d is not the one asked for", client.ErrHashMismatch, en.Rev)
		}
		return info, cw.n, 0, err
	}
	if en.Mode == 0 && len(en.Blocks) == 1 {
		// A small file the plan knew from the feed: its attributes come
		// with a stat.
		full, err := e.api.Stat(ctx, e.remotePath(p), false)
		if err != nil {
			return nil, 0, 0, err
		}
		if full.Rev != en.Rev || full.Hash != en.Hash {
			return nil, 0, 0, errors.New("the remote file changed again")
		}
		en = full
	}
	info = &client.FileInfo{ID: en.ID, Rev: en.Rev, Size: en.Size, Hash: en.Hash, Mode: en.Mode, Mtime: time.Unix(0, en.Mtime)}
	whole := sha256.New()
	out := io.MultiWriter(w, whole)
	var off int64
	for i := 0; i < len(en.Blocks); {
		b := en.Blocks[i]
		if s := srcs[i]; s != nil {
			if data, err := e.readBlock(s.real, s.off, b.Size, b.Ref); err == nil {
				if _, err := out.Write(data); err != nil {
					return nil, got, reused, err
				}
				reused += b.Size
				off += b.Size
				i++
				continue
			}
		}
		// A run of blocks to fetch.
		j, n := i, int64(0)
		for j < len(en.Blocks) && (j == i || (srcs[j] == nil && n+en.Blocks[j].Size <= maxRun)) {
			n += en.Blocks[j].Size
			j++
		}
		var buf bytes.Buffer
		if err := e.api.ReadRange(ctx, e.remotePath(p), en.Rev, off, n, &buf); err != nil {
			return nil, got, reused, err
		}
		got += int64(buf.Len())
		data := buf.Bytes()
		for k := i; k < j; k++ {
			sz := en.Blocks[k].Size
			if int64(len(data)) < sz {
				return nil, got, reused, fmt.Errorf("%w: a short range", client.ErrHashMismatch)
			}
			s := sha256.Sum256(data[:sz])
			if hex.EncodeToString(s[:]) != en.Blocks[k].Ref {
				return nil, got, reused, fmt.Errorf("%w: block %d", client.ErrHashMismatch, k)
			}
			if _, err := out.Write(data[:sz]); err != nil {
				return nil, got, reused, err
			}
			data = data[sz:]
		}
		off += n
		i = j
	}
	if hex.EncodeToString(whole.Sum(nil)) != en.Hash {
		return nil, got, reused, fmt.Errorf("%w: the file", client.ErrHashMismatch)
	}
	return info, got, reused, nil
}

type blockSrc struct {
	real string
	off  int64
}

// blockIndex maps the refs of the blocks in the base's files to where they
// are locally.
func (e *Engine) blockIndex() map[string]blockSrc {
	idx := map[string]blockSrc{}
	for p, b := range e.base {
		var off int64
		for _, bl := range b.Blocks {
			if _, ok := idx[bl.Ref]; !ok {
				idx[bl.Ref] = blockSrc{e.realOf(p), off}
			}
			off += bl.Size
		}
	}
	return idx
}

type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}
