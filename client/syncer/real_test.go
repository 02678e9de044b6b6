package syncer_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io/fs"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/coffer-dev/coffer/client"
	"github.com/coffer-dev/coffer/client/syncer"
	"github.com/coffer-dev/coffer/internal/testcluster"
)

// device is one PC: a folder on disk and its engine.
type device struct {
	t   *testing.T
	dir string
	e   *syncer.Engine
	c   *client.Client
}

func newDevice(t *testing.T, c *client.Client, host string) *device {
	t.Helper()
	d := &device{t: t, dir: t.TempDir(), c: c}
	d.open(host)
	return d
}

func (d *device) open(host string) {
	d.t.Helper()
	e, err := syncer.Open(syncer.Config{Dir: d.dir, API: d.c, Host: host,
		Logger: slog.New(slog.NewTextHandler(testWriter{d.t}, &slog.HandlerOptions{Level: slog.LevelWarn})),
		Now:    func() time.Time { return time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC) }})
	if err != nil {
		d.t.Fatal(err)
	}
	d.e = e
	d.t.Cleanup(func() { e.Close() })
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

func (d *device) sync() syncer.Summary {
	d.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	s, err := d.e.Sync(ctx)
	if err != nil {
		d.t.Fatalf("sync %s: %v", d.dir, err)
	}
	if s.Pending != 0 {
		d.t.Fatalf("sync %s: %d steps left: %+v", d.dir, s.Pending, s)
	}
	return s
}

func (d *device) write(rel string, data []byte) {
	d.t.Helper()
	p := filepath.Join(d.dir, rel)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		d.t.Fatal(err)
	}
	if err := os.WriteFile(p, data, 0o644); err != nil {
		d.t.Fatal(err)
	}
}

// tree returns every file's SHA-256 and every folder (as "/") by path,
// without the state folder.
func tree(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, de fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		if rel == "." {
			return nil
		}
		if rel == ".coffer" {
			return filepath.SkipDir
		}
		if de.IsDir() {
			out[filepath.ToSlash(rel)] = "/"
			return nil
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		s := sha256.Sum256(data)
		out[filepath.ToSlash(rel)] = hex.EncodeToString(s[:8])
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func sameTrees(t *testing.T, a, b map[string]string) {
	t.Helper()
	var diffs []string
	for p, v := range a {
		if b[p] != v {
			diffs = append(diffs, p+": "+v+" vs "+b[p])
		}
	}
	for p, v := range b {
		if _, ok := a[p]; !ok {
			diffs = append(diffs, p+": missing vs "+v)
		}
	}
	sort.Strings(diffs)
	if len(diffs) > 0 {
		t.Fatalf("trees differ:\n%s", strings.Join(diffs, "\n"))
	}
}

func randBytes(n int, seed uint64) []byte {
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

func TestTwoFoldersBasics(t *testing.T) {
	cl := testcluster.Start(t, 1)
	u := cl.AddUser(t, "alice", "alice password")
	a := newDevice(t, u, "pc-a")
	b := newDevice(t, u, "pc-b")

	a.write("docs/a.txt", []byte("hello"))
	a.write("docs/deep/b.bin", randBytes(3<<20, 1))
	a.write("top.txt", []byte("top"))
	s := a.sync()
	if s.Uploaded != 3 {
		t.Fatalf("uploaded %d files, want 3: %+v", s.Uploaded, s)
	}
	s = b.sync()
	if s.Downloaded != 3 {
		t.Fatalf("downloaded %d, want 3: %+v", s.Downloaded, s)
	}
	sameTrees(t, tree(t, a.dir), tree(t, b.dir))

	// Edit, rename, delete on b; a follows.
	b.write("docs/a.txt", []byte("hello again"))
	if err := os.Rename(filepath.Join(b.dir, "docs/deep"), filepath.Join(b.dir, "docs/moved")); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(b.dir, "top.txt")); err != nil {
		t.Fatal(err)
	}
	s = b.sync()
	if s.BytesUploaded > 100 {
		t.Fatalf("a rename and a small edit sent %d bytes", s.BytesUploaded)
	}
	s = a.sync()
	if s.Moved != 1 || s.DeletedLocal != 1 || s.Downloaded != 1 {
		t.Fatalf("a: %+v", s)
	}
	sameTrees(t, tree(t, a.dir), tree(t, b.dir))

	// A conflict: both edit the same file.
	a.write("docs/a.txt", []byte("from a"))
	b.write("docs/a.txt", []byte("from b"))
	a.sync()
	s = b.sync()
	if s.Conflicts != 1 {
		t.Fatalf("b: %+v", s)
	}
	a.sync()
	ta, tb := tree(t, a.dir), tree(t, b.dir)
	sameTrees(t, ta, tb)
	got, err := os.ReadFile(filepath.Join(b.dir, "docs/a.txt"))
	if err != nil || !bytes.Equal(got, []byte("from a")) {
		t.Fatalf("docs/a.txt = %q, %v", got, err)
	}
	copyName := "docs/a (conflicted copy pc-b 2026-11-25 120000).txt"
	got, err = os.ReadFile(filepath.Join(a.dir, copyName))
	if err != nil || !bytes.Equal(got, []byte("from b")) {
		t.Fatalf("%s = %q, %v (tree %v)", copyName, got, err, ta)
	}
}

// Renaming a folder of 1,000 files is one move on the other side: no
// content goes up or down.
func TestRenameFolderOf1000Files(t *testing.T) {
	cl := testcluster.Start(t, 1)
	u := cl.AddUser(t, "bob", "bob password")
	a := newDevice(t, u, "pc-a")
	b := newDevice(t, u, "pc-b")
	for i := range 1000 {
		a.write(filepath.Join("photos", "2026", strconv.Itoa(i)+".jpg"), randBytes(512+i, uint64(i)))
	}
	if s := a.sync(); s.Uploaded != 1000 {
		t.Fatalf("first sync: %+v", s)
	}
	if s := b.sync(); s.Downloaded != 1000 {
		t.Fatalf("b's first sync: %+v", s)
	}
	if err := os.Rename(filepath.Join(a.dir, "photos"), filepath.Join(a.dir, "pictures")); err != nil {
		t.Fatal(err)
	}
	s := a.sync()
	if s.Moved != 1 || s.BytesUploaded != 0 || s.BlocksUploaded != 0 || s.Uploaded != 0 || s.DeletedRemote != 0 {
		t.Fatalf("the rename on a: %+v", s)
	}
	s = b.sync()
	if s.Moved != 1 || s.BytesDown != 0 || s.Downloaded != 0 || s.DeletedLocal != 0 {
		t.Fatalf("the rename on b: %+v", s)
	}
	sameTrees(t, tree(t, a.dir), tree(t, b.dir))
}

// Inserting one byte in the middle of a 64 MiB file sends at most two
// blocks, and the other device fetches only those.
func TestOneByteInsertSendsTwoBlocks(t *testing.T) {
	cl := testcluster.Start(t, 1)
	u := cl.AddUser(t, "carol", "carol password")
	a := newDevice(t, u, "pc-a")
	b := newDevice(t, u, "pc-b")
	data := randBytes(64<<20, 7)
	a.write("big.bin", data)
	if s := a.sync(); s.Uploaded != 1 || s.BytesUploaded != 64<<20 {
		t.Fatalf("first sync: %+v", s)
	}
	b.sync()
	mid := len(data) / 2
	edited := append(append(append([]byte{}, data[:mid]...), 'X'), data[mid:]...)
	a.write("big.bin", edited)
	s := a.sync()
	if s.Uploaded != 1 || s.BlocksUploaded < 1 || s.BlocksUploaded > 2 || s.BytesUploaded > 8<<20 {
		t.Fatalf("the edit sent %d blocks, %d bytes: %+v", s.BlocksUploaded, s.BytesUploaded, s)
	}
	t.Logf("1-byte insert: %d blocks, %d bytes up", s.BlocksUploaded, s.BytesUploaded)
	s = b.sync()
	if s.Downloaded != 1 || s.BytesDown > 8<<20 || s.BytesReused < 56<<20 {
		t.Fatalf("b fetched %d bytes and reused %d: %+v", s.BytesDown, s.BytesReused, s)
	}
	t.Logf("1-byte insert: %d bytes down, %d reused", s.BytesDown, s.BytesReused)
	got, err := os.ReadFile(filepath.Join(b.dir, "big.bin"))
	if err != nil || !bytes.Equal(got, edited) {
		t.Fatalf("b's copy differs (%v)", err)
	}
}

// Names written in NFD sync under their NFC form; symbolic links and
// ignored files stay local; the executable bit travels.
func TestNamesLinksIgnoresAndModes(t *testing.T) {
	cl := testcluster.Start(t, 1)
	u := cl.AddUser(t, "erin", "erin password")
	a := newDevice(t, u, "pc-a")
	b := newDevice(t, u, "pc-b")
	nfd := "cafe\u0301.txt" // "café" decomposed
	a.write(nfd, []byte("coffee"))
	a.write(".cofferignore", []byte("*.log\nbuild/\n"))
	a.write("debug.log", []byte("noise"))
	a.write("build/out.o", []byte("object"))
	a.write(".report.docx.swp", []byte("editor temp"))
	a.write("run.sh", []byte("#!/bin/sh\necho hi\n"))
	if err := os.Chmod(filepath.Join(a.dir, "run.sh"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("run.sh", filepath.Join(a.dir, "link")); err != nil {
		t.Fatal(err)
	}
	a.sync()
	if _, err := u.Stat(context.Background(), "/caf\u00e9.txt", false); err != nil {
		t.Fatalf("the NFC name is not on the server: %v", err)
	}
	b.sync()
	got := tree(t, b.dir)
	for _, p := range []string{"café.txt", ".cofferignore", "run.sh"} {
		if _, ok := got[p]; !ok {
			t.Errorf("b lacks %s: %v", p, got)
		}
	}
	for _, p := range []string{"debug.log", "build", "build/out.o", ".report.docx.swp", "link"} {
		if _, ok := got[p]; ok {
			t.Errorf("b has %s, which should stay local", p)
		}
	}
	fi, err := os.Stat(filepath.Join(b.dir, "run.sh"))
	if err != nil || fi.Mode().Perm()&0o100 == 0 {
		t.Fatalf("run.sh on b: %v %v", fi.Mode(), err)
	}
	// A second sync of a changes nothing: the NFD name maps to the NFC one.
	if s := a.sync(); s.Changed() {
		t.Fatalf("a's second sync: %+v", s)
	}
	// Clearing the bit on b travels back.
	if err := os.Chmod(filepath.Join(b.dir, "run.sh"), 0o644); err != nil {
		t.Fatal(err)
	}
	b.sync()
	a.sync()
	fi, err = os.Stat(filepath.Join(a.dir, "run.sh"))
	if err != nil || fi.Mode().Perm()&0o100 != 0 {
		t.Fatalf("run.sh on a after b cleared x: %v %v", fi.Mode(), err)
	}
}

// Two folders under Watch: a file written in one appears in the other,
// and so does a rename, with no call to Sync.
func TestWatchPropagates(t *testing.T) {
	cl := testcluster.Start(t, 1)
	u := cl.AddUser(t, "finn", "finn password")
	a := newDevice(t, u, "pc-a")
	b := newDevice(t, u, "pc-b")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 2)
	for _, d := range []*device{a, b} {
		go func() { done <- d.e.Watch(ctx, nil) }()
	}
	defer func() {
		cancel()
		for range 2 {
			if err := <-done; err != nil {
				t.Errorf("watch: %v", err)
			}
		}
	}()
	waitFile := func(p string, want []byte) {
		t.Helper()
		deadline := time.Now().Add(20 * time.Second)
		for {
			got, err := os.ReadFile(p)
			if err == nil && bytes.Equal(got, want) {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: %q, %v after 20s", p, got, err)
			}
			time.Sleep(10 * time.Millisecond) // poll interval
		}
	}
	a.write("notes/today.txt", []byte("first"))
	waitFile(filepath.Join(b.dir, "notes/today.txt"), []byte("first"))
	b.write("notes/today.txt", []byte("second"))
	waitFile(filepath.Join(a.dir, "notes/today.txt"), []byte("second"))
	if err := os.Rename(filepath.Join(a.dir, "notes"), filepath.Join(a.dir, "journal")); err != nil {
		t.Fatal(err)
	}
	waitFile(filepath.Join(b.dir, "journal/today.txt"), []byte("second"))
}
