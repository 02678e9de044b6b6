package syncer

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io/fs"
	"path"
	"slices"
	"strings"
	"sync"
)

// memFS is an in-memory FS for the planner's property test. Inodes and a
// logical clock for mtimes make it behave like a disk for the engine;
// it records the content of every file the engine removes or replaces.
type memFS struct {
	mu        sync.Mutex
	nodes     map[string]*memNode // by path; "" is the root
	ino       uint64
	clock     int64
	destroyed []string // hashes of content the engine removed or replaced
	temps     int
	// onOpen, if set, runs (without the lock) before every Open: tests
	// change files while the engine reads them.
	onOpen func(p string)
}

type memNode struct {
	dir   bool
	data  []byte
	mtime int64
	exec  bool
	ino   uint64
}

func newMemFS() *memFS {
	m := &memFS{nodes: map[string]*memNode{}}
	m.nodes[""] = &memNode{dir: true, ino: m.nextIno()}
	return m
}

func (m *memFS) nextIno() uint64 { m.ino++; return m.ino }
func (m *memFS) tick() int64     { m.clock += 1000; return m.clock }

func hashOf(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

func (m *memFS) info(p string, n *memNode) FileInfo {
	return FileInfo{Name: path.Base(p), Dir: n.dir, Size: int64(len(n.data)), Mtime: n.mtime, Exec: n.exec, Inode: n.ino}
}

func notExist(op, p string) error { return &fs.PathError{Op: op, Path: p, Err: fs.ErrNotExist} }

func (m *memFS) Lstat(p string) (FileInfo, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	n, ok := m.nodes[p]
	if !ok {
		return FileInfo{}, notExist("lstat", p)
	}
	return m.info(p, n), nil
}

func (m *memFS) children(p string) []string {
	var out []string
	for q := range m.nodes {
		if q != "" && parentOf(q) == p {
			out = append(out, q)
		}
	}
	slices.Sort(out)
	return out
}

func (m *memFS) ReadDir(p string) ([]FileInfo, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	n, ok := m.nodes[p]
	if !ok || !n.dir {
		return nil, notExist("readdir", p)
	}
	var out []FileInfo
	for _, q := range m.children(p) {
		out = append(out, m.info(q, m.nodes[q]))
	}
	return out, nil
}

type memFile struct{ *bytes.Reader }

func (memFile) Close() error { return nil }

func (m *memFS) Open(p string) (File, error) {
	if m.onOpen != nil {
		m.onOpen(p)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	n, ok := m.nodes[p]
	if !ok || n.dir {
		return nil, notExist("open", p)
	}
	return memFile{bytes.NewReader(slices.Clone(n.data))}, nil
}

type memTemp struct {
	m    *memFS
	name string
}

func (t *memTemp) Name() string { return t.name }
func (t *memTemp) Sync() error  { return nil }
func (t *memTemp) Close() error { return nil }
func (t *memTemp) Write(b []byte) (int, error) {
	t.m.mu.Lock()
	defer t.m.mu.Unlock()
	n, ok := t.m.nodes[t.name]
	if !ok {
		return 0, notExist("write", t.name)
	}
	n.data = append(n.data, b...)
	n.mtime = t.m.tick()
	return len(b), nil
}

func (m *memFS) CreateTemp(dir, prefix string) (TempFile, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if n, ok := m.nodes[dir]; !ok || !n.dir {
		return nil, notExist("createtemp", dir)
	}
	m.temps++
	name := fmt.Sprintf("%s%d", prefix, m.temps)
	if dir != "" {
		name = dir + "/" + name
	}
	m.nodes[name] = &memNode{mtime: m.tick(), ino: m.nextIno()}
	return &memTemp{m: m, name: name}, nil
}

func (m *memFS) Rename(from, to string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	n, ok := m.nodes[from]
	if !ok {
		return notExist("rename", from)
	}
	if p, ok := m.nodes[parentOf(to)]; !ok || !p.dir {
		return notExist("rename", to)
	}
	if old, ok := m.nodes[to]; ok {
		if old.dir || n.dir {
			return &fs.PathError{Op: "rename", Path: to, Err: fs.ErrExist}
		}
		m.destroyed = append(m.destroyed, hashOf(old.data))
	}
	if n.dir && under(to, from) {
		return &fs.PathError{Op: "rename", Path: to, Err: fs.ErrInvalid}
	}
	for q, c := range m.nodes {
		if q != "" && under(q, from) {
			delete(m.nodes, q)
			m.nodes[to+q[len(from):]] = c
		}
	}
	return nil
}

func (m *memFS) Remove(p string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	n, ok := m.nodes[p]
	if !ok {
		return notExist("remove", p)
	}
	if n.dir && len(m.children(p)) > 0 {
		return ErrNotEmpty
	}
	if !n.dir && !strings.HasPrefix(path.Base(p), TempPrefix) {
		m.destroyed = append(m.destroyed, hashOf(n.data))
	}
	delete(m.nodes, p)
	return nil
}

func (m *memFS) Mkdir(p string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.nodes[p]; ok {
		return &fs.PathError{Op: "mkdir", Path: p, Err: fs.ErrExist}
	}
	if par, ok := m.nodes[parentOf(p)]; !ok || !par.dir {
		return notExist("mkdir", p)
	}
	m.nodes[p] = &memNode{dir: true, mtime: m.tick(), ino: m.nextIno()}
	return nil
}

func (m *memFS) SetAttr(p string, exec bool, mtime int64) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	n, ok := m.nodes[p]
	if !ok {
		return notExist("setattr", p)
	}
	n.exec = exec
	n.mtime = m.tick() // a logical clock: every change moves it on
	return nil
}

func (m *memFS) SyncDir(string) error { return nil }

// The test's own (the user's) operations: not recorded as destroyed.

func (m *memFS) userWrite(p string, data []byte) {
	m.mu.Lock()
	defer m.mu.Unlock()
	n, ok := m.nodes[p]
	if !ok {
		n = &memNode{ino: m.nextIno()}
		m.nodes[p] = n
	}
	n.data = slices.Clone(data)
	n.mtime = m.tick()
}

func (m *memFS) userMkdir(p string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.nodes[p] = &memNode{dir: true, mtime: m.tick(), ino: m.nextIno()}
}

func (m *memFS) userRemoveAll(p string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for q := range m.nodes {
		if under(q, p) {
			delete(m.nodes, q)
		}
	}
}

func (m *memFS) userRename(from, to string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for q, c := range m.nodes {
		if q != "" && under(q, from) {
			delete(m.nodes, q)
			m.nodes[to+q[len(from):]] = c
		}
	}
}

func (m *memFS) userChmod(p string, exec bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if n, ok := m.nodes[p]; ok {
		n.exec = exec
		n.mtime = m.tick()
	}
}

// snapshot lists files (path → hash, with "+x" for executables) and
// folders (path → "/"), without temp files.
func (m *memFS) snapshot() map[string]string {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := map[string]string{}
	for p, n := range m.nodes {
		if p == "" || strings.HasPrefix(path.Base(p), TempPrefix) {
			continue
		}
		switch {
		case n.dir:
			out[p] = "/"
		case n.exec:
			out[p] = hashOf(n.data)[:12] + "+x"
		default:
			out[p] = hashOf(n.data)[:12]
		}
	}
	return out
}

// paths lists the files and folders, sorted.
func (m *memFS) paths(dirs bool) []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []string
	for p, n := range m.nodes {
		if p != "" && n.dir == dirs && !strings.HasPrefix(path.Base(p), TempPrefix) {
			out = append(out, p)
		}
	}
	slices.Sort(out)
	return out
}
