package syncer

import (
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"time"
)

// FileInfo is what the engine needs to know about a local file or folder.
type FileInfo struct {
	Name    string // base name as the file system spells it
	Dir     bool
	Symlink bool // a symbolic link (or another non-regular file): skipped
	Size    int64
	Mtime   int64  // Unix ns
	Exec    bool   // the owner's executable bit
	Inode   uint64 // identifies the file across renames (0: unknown)
}

// File is a local file open for reading.
type File interface {
	io.Reader
	io.ReaderAt
	io.Closer
}

// TempFile is a new local file being written.
type TempFile interface {
	io.Writer
	Name() string // its path, relative to the root
	Sync() error
	Close() error
}

// FS is the local folder the engine syncs. Every name is slash-separated
// and relative to the folder's root ("" is the root itself). The engine
// uses osFS in production; tests use an in-memory one.
type FS interface {
	Lstat(name string) (FileInfo, error)
	// ReadDir lists a folder, in any order.
	ReadDir(name string) ([]FileInfo, error)
	Open(name string) (File, error)
	// CreateTemp creates a new file in folder dir whose base name starts
	// with prefix.
	CreateTemp(dir, prefix string) (TempFile, error)
	// Rename replaces newname, if it exists, atomically.
	Rename(oldname, newname string) error
	// Remove removes a file or an empty folder.
	Remove(name string) error
	Mkdir(name string) error
	// SetAttr sets the executable bit and the modification time.
	SetAttr(name string, exec bool, mtime int64) error
	// SyncDir makes a folder's entries durable.
	SyncDir(name string) error
}

// ErrNotEmpty is returned by Remove for a folder that holds something.
var ErrNotEmpty = errors.New("folder not empty")

// OSFS returns the FS of the folder root on the local disk.
func OSFS(root string) FS { return osFS{root: root} }

type osFS struct{ root string }

func (o osFS) abs(name string) string { return filepath.Join(o.root, filepath.FromSlash(name)) }

func infoOf(fi fs.FileInfo) FileInfo {
	out := FileInfo{Name: fi.Name(), Dir: fi.IsDir(), Size: fi.Size(), Mtime: fi.ModTime().UnixNano(),
		Exec: fi.Mode().Perm()&0o100 != 0}
	if !fi.Mode().IsRegular() && !fi.IsDir() {
		out.Symlink = true
	}
	out.Inode = inodeOf(fi)
	if out.Dir {
		out.Size = 0
	}
	return out
}

func (o osFS) Lstat(name string) (FileInfo, error) {
	fi, err := os.Lstat(o.abs(name))
	if err != nil {
		return FileInfo{}, err
	}
	return infoOf(fi), nil
}

func (o osFS) ReadDir(name string) ([]FileInfo, error) {
	ents, err := os.ReadDir(o.abs(name))
	if err != nil {
		return nil, err
	}
	out := make([]FileInfo, 0, len(ents))
	for _, e := range ents {
		fi, err := e.Info()
		if errors.Is(err, fs.ErrNotExist) {
			continue // gone since the listing
		}
		if err != nil {
			return nil, err
		}
		out = append(out, infoOf(fi))
	}
	return out, nil
}

func (o osFS) Open(name string) (File, error) { return os.Open(o.abs(name)) }

type osTemp struct {
	*os.File
	rel string
}

func (t osTemp) Name() string { return t.rel }

func (o osFS) CreateTemp(dir, prefix string) (TempFile, error) {
	f, err := os.CreateTemp(o.abs(dir), prefix+"*")
	if err != nil {
		return nil, err
	}
	// CreateTemp makes 0600; a synced file gets the usual 0644 (SetAttr
	// adds x where r is for an executable).
	if err := f.Chmod(0o644); err != nil {
		f.Close()
		os.Remove(f.Name())
		return nil, err
	}
	rel := filepath.Base(f.Name())
	if dir != "" {
		rel = dir + "/" + rel
	}
	return osTemp{File: f, rel: rel}, nil
}

func (o osFS) Rename(oldname, newname string) error {
	return os.Rename(o.abs(oldname), o.abs(newname))
}

func (o osFS) Remove(name string) error {
	err := os.Remove(o.abs(name))
	if isNotEmpty(err) {
		return ErrNotEmpty
	}
	return err
}

func (o osFS) Mkdir(name string) error { return os.Mkdir(o.abs(name), 0o755) }

func (o osFS) SetAttr(name string, exec bool, mtime int64) error {
	p := o.abs(name)
	fi, err := os.Lstat(p)
	if err != nil {
		return err
	}
	mode := fi.Mode().Perm()
	if exec {
		mode |= 0o100 | (mode&0o044)>>2 // x wherever r is
	} else {
		mode &^= 0o111
	}
	if err := os.Chmod(p, mode); err != nil {
		return err
	}
	t := time.Unix(0, mtime)
	return os.Chtimes(p, t, t)
}

func (o osFS) SyncDir(name string) error {
	d, err := os.Open(o.abs(name))
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
