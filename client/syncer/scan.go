package syncer

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"strings"

	"github.com/coffer-dev/coffer/client/ignore"
	"golang.org/x/text/unicode/norm"
)

// IgnoreFile is the ignore rules' file at the folder's root.
const IgnoreFile = ".cofferignore"

// TempPrefix starts the names of the engine's download temp files.
const TempPrefix = ".coffer-tmp-"

// ingestTries bounds how often a file that changes while it is read is
// read again before the round skips it.
const ingestTries = 3

// errChanging says a file kept changing while it was read.
var errChanging = errors.New("the file changed while it was read")

// loadIgnore reads the folder's .cofferignore (the built-in rules only if
// there is none).
func (e *Engine) loadIgnore() (*ignore.Matcher, error) {
	f, err := e.fs.Open(IgnoreFile)
	if errors.Is(err, fs.ErrNotExist) {
		return ignore.Default(), nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	m, err := ignore.Parse(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", IgnoreFile, err)
	}
	return m, nil
}

// scan walks the folder and returns its tree by NFC path. Files whose
// size, mtime and inode match the base or an earlier scan keep their
// hash; the others are read and hashed.
func (e *Engine) scan(ctx context.Context, m *ignore.Matcher) (map[string]*Local, error) {
	out := map[string]*Local{}
	folded := map[string]string{}
	e.real = map[string]string{}
	e.unsettled = 0
	var walk func(real, key string) error
	walk = func(real, key string) error {
		ents, err := e.fs.ReadDir(real)
		if err != nil {
			if real != "" && errors.Is(err, fs.ErrNotExist) {
				return nil // gone while we walked
			}
			return fmt.Errorf("scanning %q: %w", real, err)
		}
		for _, fi := range ents {
			if err := ctx.Err(); err != nil {
				return err
			}
			crel, ckey := fi.Name, norm.NFC.String(fi.Name)
			if real != "" {
				crel, ckey = real+"/"+fi.Name, key+"/"+ckey
			}
			if strings.HasPrefix(fi.Name, TempPrefix) && !fi.Dir {
				// A download's temp file left by a crash: no download runs
				// during a scan, so it is nobody's.
				e.fs.Remove(crel)
				continue
			}
			if m.Ignored(ckey, fi.Dir) {
				continue
			}
			if fi.Symlink {
				e.warnOnce("link:"+ckey, "skipping a symbolic link or special file", "path", crel)
				continue
			}
			if _, dup := out[ckey]; dup {
				e.warnOnce("dup:"+ckey, "skipping a second name for the same path (Unicode normalization)", "path", crel)
				continue
			}
			if e.fold {
				k := strings.ToLower(ckey)
				if first, ok := folded[k]; ok {
					e.warnOnce("case:"+ckey, "skipping a path that differs from another in case only", "path", crel, "other", first)
					continue
				}
				folded[k] = ckey
			}
			if crel != ckey {
				e.real[ckey] = crel
			}
			l := &Local{Path: ckey, Real: crel, Dir: fi.Dir, Size: fi.Size, Mtime: fi.Mtime, Exec: fi.Exec && !fi.Dir, Inode: fi.Inode}
			if fi.Dir {
				out[ckey] = l
				if err := walk(crel, ckey); err != nil {
					return err
				}
				continue
			}
			ok, err := e.content(ctx, l)
			if err != nil {
				return err
			}
			if ok {
				out[ckey] = l
			}
		}
		return nil
	}
	if err := walk("", ""); err != nil {
		return nil, err
	}
	// Forget hashes of files that are gone.
	for p := range e.hashes {
		if _, ok := out[p]; !ok {
			delete(e.hashes, p)
		}
	}
	return out, nil
}

// content fills in l's hash and blocks: from the base or the hash cache
// when the file looks unchanged, otherwise by reading it. ok is false when
// the file could not be read whole (it kept changing, or vanished); the
// scan then leaves it out, and the next round looks again.
func (e *Engine) content(ctx context.Context, l *Local) (ok bool, err error) {
	if b := e.base[l.Path]; b != nil && !b.Dir && (len(b.Blocks) > 0 || b.Size == 0) && b.Size == l.Size && b.Mtime == l.Mtime && b.Inode == l.Inode {
		l.Hash, l.Blocks = b.Hash, b.Blocks
		return true, nil
	}
	if h, hit := e.hashes[l.Path]; hit && h.size == l.Size && h.mtime == l.Mtime && h.inode == l.Inode {
		l.Hash, l.Blocks = h.m.Hash, h.m.Blocks
		return true, nil
	}
	for range ingestTries {
		m, fi, err := e.ingest(ctx, l.Real)
		if errors.Is(err, errChanging) {
			continue
		}
		if errors.Is(err, fs.ErrNotExist) {
			return false, nil
		}
		if err != nil {
			if ctx.Err() != nil {
				return false, ctx.Err()
			}
			e.warnOnce("read:"+l.Path, "skipping a file that cannot be read", "path", l.Real, "err", err)
			return false, nil
		}
		l.Size, l.Mtime, l.Inode, l.Exec = fi.Size, fi.Mtime, fi.Inode, fi.Exec
		l.Hash, l.Blocks = m.Hash, m.Blocks
		e.hashes[l.Path] = hashEntry{size: fi.Size, mtime: fi.Mtime, inode: fi.Inode, m: m}
		return true, nil
	}
	e.log.Info("a file keeps changing; it syncs when it settles", "path", l.Real)
	e.unsettled++
	return false, nil
}

// ingest reads one file whole and returns its manifest, bracketed by two
// stats: errChanging when they differ or the bytes read are not the size.
func (e *Engine) ingest(ctx context.Context, real string) (Manifest, FileInfo, error) {
	before, err := e.fs.Lstat(real)
	if err != nil {
		return Manifest{}, FileInfo{}, err
	}
	f, err := e.fs.Open(real)
	if err != nil {
		return Manifest{}, FileInfo{}, err
	}
	m, err := Ingest(ctx, f)
	f.Close()
	if err != nil {
		return Manifest{}, FileInfo{}, err
	}
	after, err := e.fs.Lstat(real)
	if err != nil {
		return Manifest{}, FileInfo{}, err
	}
	if !sameFile(before, after) || m.Size != after.Size {
		return Manifest{}, FileInfo{}, errChanging
	}
	return m, after, nil
}

// sameFile reports whether two stats of one path show the same content.
func sameFile(a, b FileInfo) bool {
	return a.Size == b.Size && a.Mtime == b.Mtime && a.Inode == b.Inode && a.Dir == b.Dir
}

// realOf is how the file system spells the NFC path p (as the last scan
// saw it; new names are made in NFC).
func (e *Engine) realOf(p string) string {
	if r, ok := e.real[p]; ok {
		return r
	}
	if i := strings.LastIndexByte(p, '/'); i >= 0 {
		return e.realOf(p[:i]) + p[i:]
	}
	return p
}
