package cluster

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
)

// Data directory layout (DESIGN.md documents it for operators):
//
//	DIR/node.json          the node's identity: name, cluster ID, layout version
//	DIR/LOCK               held (flock) while a process uses DIR
//	DIR/state/             Pebble: the state machines of every group hosted here
//	DIR/raft/g<ID>/        one group's Raft log and stable store (raft.db) and snapshots/
//	DIR/blocks/            the block store (segments/ and index/)
//	DIR/admin-password     the first admin's generated password (on the node that created it)
const layoutVersion = 1

// identity is DIR/node.json.
type identity struct {
	Layout    int    `json:"layout"`
	Name      string `json:"name"`
	ClusterID string `json:"cluster_id,omitempty"`
	// Bootstrapping is set while this node creates a new cluster's groups
	// (until the system group is initialised), so a restart finishes it.
	Bootstrapping bool `json:"bootstrapping,omitempty"`
}

type dataDir struct {
	path string
	lock *os.File
}

// openDataDir creates or opens dir for node name: it takes the directory's
// lock, checks that dir is writable and belongs to this node, and returns
// the stored identity.
func openDataDir(dir, name string) (*dataDir, identity, error) {
	var id identity
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, id, fmt.Errorf("%w: %v", ErrDataDir, err)
	}
	probe := filepath.Join(dir, ".write-test")
	if err := os.WriteFile(probe, nil, 0o600); err != nil {
		return nil, id, fmt.Errorf("%w: %s is not writable: %v", ErrDataDir, dir, err)
	}
	_ = os.Remove(probe)
	lock, err := os.OpenFile(filepath.Join(dir, "LOCK"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, id, fmt.Errorf("%w: %v", ErrDataDir, err)
	}
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		lock.Close()
		return nil, id, fmt.Errorf("%w: %s is in use by another process", ErrDataDir, dir)
	}
	d := &dataDir{path: dir, lock: lock}
	b, err := os.ReadFile(filepath.Join(dir, "node.json"))
	switch {
	case errors.Is(err, os.ErrNotExist):
		id = identity{Layout: layoutVersion, Name: name}
		if err := d.saveIdentity(id); err != nil {
			d.close()
			return nil, id, err
		}
	case err != nil:
		d.close()
		return nil, id, fmt.Errorf("%w: %v", ErrDataDir, err)
	default:
		if err := json.Unmarshal(b, &id); err != nil {
			d.close()
			return nil, id, fmt.Errorf("%w: node.json: %v", ErrDataDir, err)
		}
		if id.Layout > layoutVersion {
			d.close()
			return nil, id, fmt.Errorf("%w: layout %d is newer than this cofferd understands (%d)", ErrDataDir, id.Layout, layoutVersion)
		}
		if id.Name != name {
			d.close()
			return nil, id, fmt.Errorf("%w: %s belongs to node %q, not %q (use --name %s, or another --dir)", ErrDataDir, dir, id.Name, name, id.Name)
		}
	}
	return d, id, nil
}

// saveIdentity writes node.json atomically and durably.
func (d *dataDir) saveIdentity(id identity) error {
	b, _ := json.MarshalIndent(id, "", "  ")
	if err := writeFileSync(filepath.Join(d.path, "node.json"), append(b, '\n'), 0o600); err != nil {
		return fmt.Errorf("%w: write node.json: %v", ErrDataDir, err)
	}
	return nil
}

func (d *dataDir) statePath() string  { return filepath.Join(d.path, "state") }
func (d *dataDir) blocksPath() string { return filepath.Join(d.path, "blocks") }
func (d *dataDir) groupPath(g uint64) string {
	return filepath.Join(d.path, "raft", "g"+strconv.FormatUint(g, 10))
}

// groups lists the groups that have a Raft directory here.
func (d *dataDir) groups() ([]uint64, error) {
	ents, err := os.ReadDir(filepath.Join(d.path, "raft"))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []uint64
	for _, e := range ents {
		if !e.IsDir() || !strings.HasPrefix(e.Name(), "g") {
			continue
		}
		g, err := strconv.ParseUint(e.Name()[1:], 10, 64)
		if err == nil {
			out = append(out, g)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out, nil
}

func (d *dataDir) close() {
	if d.lock != nil {
		_ = syscall.Flock(int(d.lock.Fd()), syscall.LOCK_UN)
		_ = d.lock.Close()
		d.lock = nil
	}
}

// writeFileSync writes path through a temporary file, fsyncs it, renames it
// into place and fsyncs the directory.
func writeFileSync(path string, data []byte, perm os.FileMode) error {
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, perm)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	dir, err := os.Open(filepath.Dir(path))
	if err != nil {
		return err
	}
	defer dir.Close()
	return dir.Sync()
}
