package raftmeta

import (
	"errors"
	"fmt"
	"strings"

	"github.com/coffer-dev/coffer/raftmeta/metapath"
)

// Limits that keep every record the state machine writes well below the
// snapshot stream's value limit (maxSnapshotValue).
const (
	// MaxOpsPerCommit bounds the ops of one commit batch.
	MaxOpsPerCommit = 10000
	// MaxBlocksPerFile bounds a file's block list (4 TiB at 4 MiB blocks).
	MaxBlocksPerFile = 1 << 20
	// MaxBlockSize bounds the size a put may give one block (the block
	// store's own limit is smaller); with MaxBlocksPerFile it keeps a
	// file's size far from overflowing.
	MaxBlockSize = 64 << 20
	// MaxChangesPerCommit bounds the nodes one commit changes (a subtree
	// delete changes every live node below the folder).
	MaxChangesPerCommit = 1 << 20
)

// errTooManyChanges stops a commit that would change too many nodes.
var errTooManyChanges = errors.New("too many changes")

// maxDepth bounds parent-chain walks, so a corrupt cycle cannot hang apply.
const maxDepth = metapath.MaxPathBytes/2 + 1

// commitState is one commit batch being applied.
type commitState struct {
	t       *tx
	ns      *Namespace
	quota   int64
	changes []*Change
	byID    map[uint64]*Change
	// nodes caches the nodes this commit has read or written: ops are
	// applied in place, so later ops and path computations see them
	// without another read and decode.
	nodes map[uint64]*Node
	// created holds the nodes this commit created.
	created map[uint64]bool
	// check: every block a put names must be referenced by the namespace
	// or vouched for (CommitRequest.Check).
	check   bool
	vouched map[Sum]int64
}

// checkBlocks refuses a put op naming a block the namespace does not
// reference (in this batch's state, so an earlier op of the batch counts)
// and nobody vouched for with this size.
func (cs *commitState) checkBlocks(op *Op) (*OpError, error) {
	if !cs.check {
		return nil, nil
	}
	for _, b := range op.Blocks {
		if size, ok := cs.vouched[b.Ref]; ok {
			if size != b.Size {
				return &OpError{Code: CodeInvalidArgument, Message: fmt.Sprintf("block %s has %d bytes, not %d", b.Ref, size, b.Size)}, nil
			}
			continue
		}
		_, ok, err := cs.t.getU64(cs.t.k.ref(cs.ns.ID, b.Ref))
		if err != nil {
			return nil, err
		}
		if !ok {
			return &OpError{Code: CodeNotFound, Message: fmt.Sprintf("block %s was not uploaded: store it and pass its receipt", b.Ref)}, nil
		}
	}
	return nil, nil
}

// node returns node id of the namespace, or nil.
func (cs *commitState) node(id uint64) (*Node, error) {
	if n, ok := cs.nodes[id]; ok {
		return n, nil
	}
	n, err := cs.t.node(cs.ns.ID, id)
	if err != nil || n == nil {
		return nil, err
	}
	cs.nodes[id] = n
	return n, nil
}

// child returns the node linked at (parent, fold), or nil.
func (cs *commitState) child(parent uint64, fold string) (*Node, error) {
	return cs.t.childWith(cs.ns.ID, parent, fold, cs.node)
}

// commit applies a batch of ops all-or-nothing and appends one journal
// record. The first op that fails refuses the whole batch.
func (t *tx) commit(rid string, c *commitCmd) (*result, error) {
	if len(c.Ops) == 0 {
		return &result{Err: opErr(CodeInvalidArgument, "", "empty commit")}, nil
	}
	if len(c.Ops) > MaxOpsPerCommit {
		return &result{Err: opErr(CodeInvalidArgument, "", fmt.Sprintf("more than %d ops in one commit", MaxOpsPerCommit))}, nil
	}
	ns, err := t.namespace(c.Namespace)
	if err != nil {
		return nil, err
	}
	if ns == nil || ns.Deleted {
		return &result{Err: opErr(CodeNotFound, "", fmt.Sprintf("no namespace %d", c.Namespace))}, nil
	}
	owner, err := t.user(ns.Owner)
	if err != nil {
		return nil, err
	}
	if c.Upload != "" {
		// The upload's blocks become the put op's and the upload is
		// deleted, in this entry: if the commit fails, nothing of it
		// applies and the upload stays.
		oe, err := t.finishUpload(ns.ID, c)
		if err != nil {
			return nil, err
		}
		if oe != nil {
			return &result{Err: oe}, nil
		}
	}
	cs := &commitState{t: t, ns: ns, byID: make(map[uint64]*Change), nodes: make(map[uint64]*Node), created: make(map[uint64]bool)}
	if c.Check != nil {
		cs.vouched = make(map[Sum]int64, len(c.Check.Vouched))
		for _, b := range c.Check.Vouched {
			cs.vouched[b.Ref] = b.Size
		}
		cs.check = true
	}
	if owner != nil {
		cs.quota = owner.Quota
	}
	res := &CommitResult{Index: t.index, Ops: make([]OpResult, len(c.Ops))}
	for i := range c.Ops {
		op := &c.Ops[i]
		n, oe, err := cs.apply(op)
		if errors.Is(err, errTooManyChanges) {
			oe, err = &OpError{Code: CodeInvalidArgument, Message: fmt.Sprintf("the commit changes more than %d nodes (a folder delete changes every node below it: delete its subfolders first)", MaxChangesPerCommit)}, nil
		}
		if err != nil {
			return nil, err
		}
		if oe != nil {
			oe.Op, oe.Kind = i, op.Kind
			if oe.Path == "" {
				oe.Path = op.Path
			}
			return &result{Err: oe}, nil
		}
		res.Ops[i] = OpResult{NodeID: n.ID, Rev: n.Rev}
	}
	for i := range res.Ops {
		p, err := cs.pathOf(res.Ops[i].NodeID)
		if err != nil {
			return nil, err
		}
		res.Ops[i].Path = p
	}
	rec := &JournalRecord{Index: t.index, Time: t.now, RequestID: rid}
	for _, ch := range cs.changes {
		p, err := cs.pathOf(ch.NodeID)
		if err != nil {
			return nil, err
		}
		ch.Path = p
		rec.Changes = append(rec.Changes, *ch)
	}
	ns.Head++
	if ns.Start == 0 {
		ns.Start = 1
	}
	rec.Seq = ns.Head
	res.Seq = ns.Head
	if err := t.putJSON(t.k.journal(ns.ID, rec.Seq), rec); err != nil {
		return nil, err
	}
	if err := t.putJSON(t.k.namespace(ns.ID), ns); err != nil {
		return nil, err
	}
	return &result{Commit: res}, nil
}

func (cs *commitState) apply(op *Op) (*Node, *OpError, error) {
	switch op.Kind {
	case OpPut:
		return cs.put(op)
	case OpMkdir:
		return cs.mkdir(op)
	case OpDelete:
		return cs.delete(op)
	case OpMove:
		return cs.move(op)
	case OpRestore:
		return cs.restore(op)
	}
	return nil, &OpError{Code: CodeInvalidArgument, Message: fmt.Sprintf("unknown op kind %q", op.Kind)}, nil
}

func invalidPath(err error) *OpError {
	return &OpError{Code: CodeInvalidPath, Message: err.Error()}
}

func conflict(path string, current uint64, why string) *OpError {
	return &OpError{Code: CodeConflict, Path: path, Current: current, Message: why}
}

// checkPre checks an op's preconditions against the node at its target
// (nil, or a tombstone, when nothing live is there).
func checkPre(op *Op, path string, n *Node) *OpError {
	var cur uint64
	live := n != nil && !n.Deleted
	if n != nil {
		cur = n.Rev
	}
	if op.IfNoneMatch && live {
		return conflict(path, cur, "must not exist")
	}
	if op.IfMatch != 0 && op.IfMatch != cur {
		return conflict(path, cur, fmt.Sprintf("expected revision %d", op.IfMatch))
	}
	return nil
}

// lookup resolves a clean path. Every component but the last must be a
// folder (live, unless allowDeleted); the last may be absent (node nil).
func (cs *commitState) lookup(p string, allowDeleted bool) (parent, node *Node, oe *OpError, err error) {
	cur, err := cs.node(cs.ns.Root)
	if err != nil {
		return nil, nil, nil, err
	}
	if cur == nil {
		return nil, nil, nil, fmt.Errorf("%w: namespace %d has no root", ErrCorruptStore, cs.ns.ID)
	}
	parts := metapath.Split(p)
	if len(parts) == 0 {
		return nil, cur, nil, nil
	}
	for i, name := range parts {
		next, err := cs.child(cur.ID, metapath.Fold(name))
		if err != nil {
			return nil, nil, nil, err
		}
		if i == len(parts)-1 {
			return cur, next, nil, nil
		}
		at := "/" + strings.Join(parts[:i+1], "/")
		if next == nil || (next.Deleted && !allowDeleted) {
			return nil, nil, &OpError{Code: CodeNotFound, Path: at, Message: "no such folder"}, nil
		}
		if !next.Dir {
			return nil, nil, &OpError{Code: CodeNotFolder, Path: at}, nil
		}
		cur = next
	}
	panic("unreachable")
}

// ensureDir returns the live folder at clean path p, creating missing
// folders and re-creating deleted ones on the way (like mkdir -p). Folder
// names match case-insensitively.
func (cs *commitState) ensureDir(p string) (*Node, *OpError, error) {
	cur, err := cs.node(cs.ns.Root)
	if err != nil {
		return nil, nil, err
	}
	if cur == nil {
		return nil, nil, fmt.Errorf("%w: namespace %d has no root", ErrCorruptStore, cs.ns.ID)
	}
	parts := metapath.Split(p)
	for i, name := range parts {
		fold := metapath.Fold(name)
		next, err := cs.child(cur.ID, fold)
		if err != nil {
			return nil, nil, err
		}
		at := "/" + strings.Join(parts[:i+1], "/")
		switch {
		case next != nil && next.Dir && !next.Deleted:
		case next != nil && !next.Dir && !next.Deleted:
			return nil, &OpError{Code: CodeNotFolder, Path: at}, nil
		case next != nil && next.Dir: // a deleted folder: bring it back
			next.Deleted, next.Name = false, name
			next.Rev++
			if err := cs.save(next, OpMkdir, "", 0); err != nil {
				return nil, nil, err
			}
		default: // nothing there, or a deleted file: a new folder replaces it
			if next, err = cs.newNode(cur.ID, name, true); err != nil {
				return nil, nil, err
			}
			next.Mode = 0o755
			next.Rev = 1
			if err := cs.link(next); err != nil {
				return nil, nil, err
			}
			if err := cs.save(next, OpMkdir, "", 0); err != nil {
				return nil, nil, err
			}
		}
		cur = next
	}
	return cur, nil, nil
}

func (cs *commitState) newNode(parent uint64, name string, dir bool) (*Node, error) {
	id, err := cs.t.newID()
	if err != nil {
		return nil, err
	}
	n := &Node{ID: id, Namespace: cs.ns.ID, ParentID: parent, Name: name, Dir: dir}
	cs.nodes[id] = n
	cs.created[id] = true
	return n, nil
}

// link points the tree entry (parent, fold(name)) at n, replacing whatever
// was there (callers only ever replace a tombstone, which stays reachable
// by ID).
func (cs *commitState) link(n *Node) error {
	return cs.t.putU64(cs.t.k.child(cs.ns.ID, n.ParentID, metapath.Fold(n.Name)), n.ID)
}

// save writes n and its current revision and records the change.
func (cs *commitState) save(n *Node, op OpKind, oldPath string, from uint64) error {
	t := cs.t
	n.Modified = t.now
	if err := t.putJSON(t.k.node(cs.ns.ID, n.ID), n); err != nil {
		return err
	}
	rv := revisionOf(n, op, t.now)
	rv.From = from
	if err := t.putRevision(cs.ns.ID, n.ID, rv); err != nil {
		return err
	}
	ch, ok := cs.byID[n.ID]
	if !ok {
		if len(cs.changes) >= MaxChangesPerCommit {
			return errTooManyChanges
		}
		ch = &Change{NodeID: n.ID, OldPath: oldPath}
		cs.byID[n.ID] = ch
		cs.changes = append(cs.changes, ch)
	} else if ch.OldPath == "" && oldPath != "" && !cs.created[n.ID] {
		// Changed earlier in this commit, now moved: report where the node
		// was, as for a node that was only moved.
		ch.OldPath = oldPath
	}
	ch.Rev, ch.Op, ch.ParentID, ch.Name = n.Rev, op, n.ParentID, n.Name
	ch.Dir, ch.Deleted, ch.Size, ch.Hash = n.Dir, n.Deleted, n.Size, n.Hash
	ch.Mode, ch.Mtime = 0, 0
	if !n.Deleted {
		ch.Mode, ch.Mtime = n.Mode, n.Mtime
	}
	return nil
}

// pathOf returns a node's path from the root by walking its parents.
func (cs *commitState) pathOf(id uint64) (string, error) {
	return pathOfWith(cs.node, cs.ns, id)
}

func pathOf(v *view, ns *Namespace, id uint64) (string, error) {
	return pathOfWith(func(id uint64) (*Node, error) { return v.node(ns.ID, id) }, ns, id)
}

func pathOfWith(node func(uint64) (*Node, error), ns *Namespace, id uint64) (string, error) {
	var parts []string
	for i := 0; id != ns.Root; i++ {
		if i > maxDepth {
			return "", fmt.Errorf("%w: parent chain of node %d too deep", ErrCorruptStore, id)
		}
		n, err := node(id)
		if err != nil {
			return "", err
		}
		if n == nil {
			return "", fmt.Errorf("%w: node %d missing from its chain", ErrCorruptStore, id)
		}
		parts = append(parts, n.Name)
		id = n.ParentID
	}
	for i, j := 0, len(parts)-1; i < j; i, j = i+1, j-1 {
		parts[i], parts[j] = parts[j], parts[i]
	}
	return "/" + strings.Join(parts, "/"), nil
}

func (cs *commitState) addUsage(n *Node, delta int64, files int64) *OpError {
	if delta > 0 && cs.quota > 0 && cs.ns.Used+delta > cs.quota {
		return &OpError{Code: CodeQuota, Message: fmt.Sprintf("%d bytes used of %d, this needs %d more", cs.ns.Used, cs.quota, delta)}
	}
	cs.ns.Used += delta
	cs.ns.Files += files
	return nil
}

func validContent(op *Op) *OpError {
	bad := func(why string) *OpError { return &OpError{Code: CodeInvalidArgument, Message: why} }
	if op.Size < 0 {
		return bad("negative size")
	}
	if op.Hash.IsZero() {
		return bad("missing content hash")
	}
	if op.Mode&^0o7777 != 0 {
		return bad(fmt.Sprintf("mode %o has bits beyond 07777", op.Mode))
	}
	if len(op.Blocks) > MaxBlocksPerFile {
		return bad(fmt.Sprintf("%d blocks, at most %d", len(op.Blocks), MaxBlocksPerFile))
	}
	var sum int64
	for i, b := range op.Blocks {
		if b.Size <= 0 || b.Ref.IsZero() || b.Size > MaxBlockSize {
			return bad(fmt.Sprintf("block %d has no ref, or a size <= 0 or above %d", i, MaxBlockSize))
		}
		sum += b.Size
	}
	if sum != op.Size {
		return bad(fmt.Sprintf("blocks add up to %d bytes, size is %d", sum, op.Size))
	}
	return nil
}

func (cs *commitState) put(op *Op) (*Node, *OpError, error) {
	p, err := metapath.Clean(op.Path)
	if err != nil {
		return nil, invalidPath(err), nil
	}
	if p == "/" {
		return nil, &OpError{Code: CodeIsFolder}, nil
	}
	if oe := validContent(op); oe != nil {
		return nil, oe, nil
	}
	if oe, err := cs.checkBlocks(op); err != nil || oe != nil {
		return nil, oe, err
	}
	dir, name := metapath.Parent(p)
	parent, oe, err := cs.ensureDir(dir)
	if err != nil || oe != nil {
		return nil, oe, err
	}
	cur, err := cs.child(parent.ID, metapath.Fold(name))
	if err != nil {
		return nil, nil, err
	}
	if oe := checkPre(op, p, cur); oe != nil {
		return nil, oe, nil
	}
	var n *Node
	var oldSize, files int64
	switch {
	case cur == nil || (cur.Deleted && cur.Dir):
		// Nothing there, or a deleted folder (which stays reachable by ID).
		if n, err = cs.newNode(parent.ID, name, false); err != nil {
			return nil, nil, err
		}
		files = 1
	case cur.Dir:
		return nil, &OpError{Code: CodeIsFolder, Current: cur.Rev}, nil
	case !cur.Deleted && cur.Name != name:
		return nil, &OpError{Code: CodeCaseConflict, Current: cur.Rev, Message: fmt.Sprintf("%q exists", cur.Name)}, nil
	case cur.Deleted:
		n, files = cur, 1 // a deleted file comes back: its history continues
		n.Name = name
	default:
		n, oldSize = cur, cur.Size
	}
	if oe := cs.addUsage(n, op.Size-oldSize, files); oe != nil {
		return nil, oe, nil
	}
	n.Deleted = false
	n.Size, n.Mtime, n.Hash, n.Blocks = op.Size, op.Mtime, op.Hash, op.Blocks
	n.Mode = op.Mode
	if n.Mode == 0 {
		n.Mode = 0o644
	}
	n.Rev++
	if err := cs.link(n); err != nil {
		return nil, nil, err
	}
	return n, nil, cs.save(n, OpPut, "", 0)
}

func (cs *commitState) mkdir(op *Op) (*Node, *OpError, error) {
	p, err := metapath.Clean(op.Path)
	if err != nil {
		return nil, invalidPath(err), nil
	}
	if p == "/" {
		return nil, &OpError{Code: CodeExists}, nil
	}
	if op.Mode&^0o7777 != 0 {
		return nil, &OpError{Code: CodeInvalidArgument, Message: fmt.Sprintf("mode %o has bits beyond 07777", op.Mode)}, nil
	}
	dir, name := metapath.Parent(p)
	parent, oe, err := cs.ensureDir(dir)
	if err != nil || oe != nil {
		return nil, oe, err
	}
	cur, err := cs.child(parent.ID, metapath.Fold(name))
	if err != nil {
		return nil, nil, err
	}
	if oe := checkPre(op, p, cur); oe != nil {
		return nil, oe, nil
	}
	var n *Node
	switch {
	case cur != nil && !cur.Deleted && cur.Name != name:
		return nil, &OpError{Code: CodeCaseConflict, Current: cur.Rev, Message: fmt.Sprintf("%q exists", cur.Name)}, nil
	case cur != nil && !cur.Deleted:
		return nil, &OpError{Code: CodeExists, Current: cur.Rev}, nil
	case cur != nil && cur.Dir: // a deleted folder comes back
		n = cur
		n.Name = name
	default:
		if n, err = cs.newNode(parent.ID, name, true); err != nil {
			return nil, nil, err
		}
	}
	n.Deleted = false
	n.Mode = op.Mode
	if n.Mode == 0 {
		n.Mode = 0o755
	}
	n.Mtime = op.Mtime
	n.Rev++
	if err := cs.link(n); err != nil {
		return nil, nil, err
	}
	return n, nil, cs.save(n, OpMkdir, "", 0)
}

func (cs *commitState) delete(op *Op) (*Node, *OpError, error) {
	p, err := metapath.Clean(op.Path)
	if err != nil {
		return nil, invalidPath(err), nil
	}
	if p == "/" {
		return nil, &OpError{Code: CodeInvalidMove, Message: "the root cannot be deleted"}, nil
	}
	_, n, oe, err := cs.lookup(p, false)
	if err != nil || oe != nil {
		return nil, oe, err
	}
	if n == nil || n.Deleted {
		// A failed precondition is reported as such; otherwise (even when
		// IfMatch names the tombstone's revision) there is nothing to delete.
		if oe := checkPre(op, p, n); oe != nil {
			return nil, oe, nil
		}
		return nil, &OpError{Code: CodeNotFound}, nil
	}
	if oe := checkPre(op, p, n); oe != nil {
		return nil, oe, nil
	}
	if err := cs.tombstone(n); err != nil {
		return nil, nil, err
	}
	return n, nil, nil
}

// tombstone deletes n and, for a folder, every live node below it.
func (cs *commitState) tombstone(n *Node) error {
	t := cs.t
	if n.Dir {
		var kids []uint64
		lo := t.k.children(cs.ns.ID, n.ID)
		err := t.scan(lo, prefixEnd(lo), false, func(_, v []byte) (bool, error) {
			if len(v) != 8 {
				return false, fmt.Errorf("%w: tree value of %d bytes", ErrCorruptStore, len(v))
			}
			kids = append(kids, beU64(v))
			return true, nil
		})
		if err != nil {
			return err
		}
		for _, id := range kids {
			k, err := cs.node(id)
			if err != nil {
				return err
			}
			if k == nil {
				return fmt.Errorf("%w: tree entry names missing node %d", ErrCorruptStore, id)
			}
			if !k.Deleted {
				if err := cs.tombstone(k); err != nil {
					return err
				}
			}
		}
	} else {
		cs.addUsage(n, -n.Size, -1)
	}
	n.Deleted = true
	n.Size, n.Hash, n.Blocks = 0, Sum{}, nil
	n.Rev++
	return cs.save(n, OpDelete, "", 0)
}

func (cs *commitState) move(op *Op) (*Node, *OpError, error) {
	from, err := metapath.Clean(op.Path)
	if err != nil {
		return nil, invalidPath(err), nil
	}
	to, err := metapath.Clean(op.To)
	if err != nil {
		return nil, &OpError{Code: CodeInvalidPath, Path: op.To, Message: err.Error()}, nil
	}
	if from == "/" || to == "/" {
		return nil, &OpError{Code: CodeInvalidMove, Message: "the root cannot be moved or replaced"}, nil
	}
	if from == to {
		return nil, &OpError{Code: CodeInvalidMove, Message: "source and destination are the same"}, nil
	}
	if metapath.IsAncestor(from, to) {
		return nil, &OpError{Code: CodeInvalidMove, Message: fmt.Sprintf("cannot move %q into itself", from)}, nil
	}
	_, src, oe, err := cs.lookup(from, false)
	if err != nil || oe != nil {
		return nil, oe, err
	}
	if src == nil || src.Deleted {
		return nil, &OpError{Code: CodeNotFound}, nil
	}
	if oe := checkPre(op, from, src); oe != nil {
		return nil, oe, nil
	}
	oldPath, err := cs.pathOf(src.ID)
	if err != nil {
		return nil, nil, err
	}
	toDir, toName := metapath.Parent(to)
	parent, oe, err := cs.ensureDir(toDir)
	if err != nil || oe != nil {
		if oe != nil && oe.Path == "" {
			oe.Path = op.To
		}
		return nil, oe, err
	}
	dest, err := cs.child(parent.ID, metapath.Fold(toName))
	if err != nil {
		return nil, nil, err
	}
	if dest != nil && dest.ID != src.ID && !dest.Deleted {
		return nil, &OpError{Code: CodeExists, Path: to, Current: dest.Rev}, nil
	}
	// Unlink the old name; a tombstone at the destination is replaced (it
	// stays reachable by ID).
	if err := cs.t.del(cs.t.k.child(cs.ns.ID, src.ParentID, metapath.Fold(src.Name))); err != nil {
		return nil, nil, err
	}
	src.ParentID, src.Name = parent.ID, toName
	src.Rev++
	if err := cs.link(src); err != nil {
		return nil, nil, err
	}
	return src, nil, cs.save(src, OpMove, oldPath, 0)
}

func (cs *commitState) restore(op *Op) (*Node, *OpError, error) {
	t := cs.t
	var n *Node
	var dest string
	if op.NodeID != 0 {
		var err error
		if n, err = cs.node(op.NodeID); err != nil {
			return nil, nil, err
		}
		if n == nil || n.ID == cs.ns.Root {
			return nil, &OpError{Code: CodeNotFound, Message: fmt.Sprintf("no file %d", op.NodeID)}, nil
		}
		if op.Path != "" {
			p, err := metapath.Clean(op.Path)
			if err != nil {
				return nil, invalidPath(err), nil
			}
			if p == "/" {
				// As for a put: the root is a folder, and cannot be replaced.
				return nil, &OpError{Code: CodeIsFolder, Message: "cannot restore a file to the root"}, nil
			}
			dest = p
		}
	} else {
		p, err := metapath.Clean(op.Path)
		if err != nil {
			return nil, invalidPath(err), nil
		}
		_, node, oe, err := cs.lookup(p, true)
		if err != nil || oe != nil {
			return nil, oe, err
		}
		if node == nil || node.ID == cs.ns.Root {
			return nil, &OpError{Code: CodeNotFound}, nil
		}
		n = node
	}
	if n.Dir {
		return nil, &OpError{Code: CodeIsFolder, Message: "only files can be restored"}, nil
	}
	if oe := checkPre(op, op.Path, n); oe != nil {
		return nil, oe, nil
	}
	if op.Rev == 0 {
		return nil, &OpError{Code: CodeInvalidArgument, Message: "missing revision"}, nil
	}
	rv, err := t.revision(cs.ns.ID, n.ID, op.Rev)
	if err != nil {
		return nil, nil, err
	}
	if rv == nil {
		return nil, &OpError{Code: CodeNotFound, Current: n.Rev, Message: fmt.Sprintf("revision %d is not retained", op.Rev)}, nil
	}
	if rv.Deleted {
		return nil, &OpError{Code: CodeInvalidArgument, Message: fmt.Sprintf("revision %d is a deletion", op.Rev)}, nil
	}
	var oldSize, files int64
	if n.Deleted {
		files = 1
		parentID, name := n.ParentID, n.Name
		if dest != "" {
			dir, base := metapath.Parent(dest)
			parent, oe, err := cs.ensureDir(dir)
			if err != nil || oe != nil {
				return nil, oe, err
			}
			parentID, name = parent.ID, base
		} else {
			parent, oe, err := cs.revive(parentID)
			if err != nil || oe != nil {
				return nil, oe, err
			}
			parentID = parent.ID
		}
		if oe, err := cs.claim(n, parentID, name); err != nil || oe != nil {
			return nil, oe, err
		}
	} else {
		oldSize = n.Size
	}
	if oe := cs.addUsage(n, rv.Size-oldSize, files); oe != nil {
		return nil, oe, nil
	}
	n.Deleted = false
	n.Size, n.Mtime, n.Mode, n.Hash, n.Blocks = rv.Size, rv.Mtime, rv.Mode, rv.Hash, rv.Blocks
	n.Rev++
	return n, nil, cs.save(n, OpRestore, "", rv.Rev)
}

// claim links the deleted node n at (parent, name): free, already n, or a
// tombstone (which it replaces) are fine; a live node there is ErrExists.
func (cs *commitState) claim(n *Node, parent uint64, name string) (*OpError, error) {
	occ, err := cs.child(parent, metapath.Fold(name))
	if err != nil {
		return nil, err
	}
	if occ != nil && occ.ID != n.ID && !occ.Deleted {
		p, err := cs.pathOf(occ.ID)
		if err != nil {
			return nil, err
		}
		return &OpError{Code: CodeExists, Path: p, Current: occ.Rev, Message: "the restored node's place is taken"}, nil
	}
	if occ == nil || occ.ID != n.ID {
		// n was unlinked (moved over, or replaced): unlink its old entry only
		// if it still points at n.
		old := cs.t.k.child(cs.ns.ID, n.ParentID, metapath.Fold(n.Name))
		if id, ok, err := cs.t.getU64(old); err != nil {
			return nil, err
		} else if ok && id == n.ID {
			if err := cs.t.del(old); err != nil {
				return nil, err
			}
		}
	}
	n.ParentID, n.Name = parent, name
	return nil, cs.link(n)
}

// revive makes the folder id live again, with its ancestors, so a deleted
// file inside it can be restored. If the folder's place is now held by
// another live folder, that folder is used instead.
func (cs *commitState) revive(id uint64) (*Node, *OpError, error) {
	var chain []*Node
	for i := 0; ; i++ {
		if i > maxDepth {
			return nil, nil, fmt.Errorf("%w: parent chain of node %d too deep", ErrCorruptStore, id)
		}
		d, err := cs.node(id)
		if err != nil {
			return nil, nil, err
		}
		if d == nil {
			return nil, nil, fmt.Errorf("%w: folder %d missing", ErrCorruptStore, id)
		}
		if !d.Deleted {
			chain = append(chain, d)
			break
		}
		chain = append(chain, d)
		id = d.ParentID
	}
	cur := chain[len(chain)-1] // live
	for i := len(chain) - 2; i >= 0; i-- {
		d := chain[i]
		occ, err := cs.child(cur.ID, metapath.Fold(d.Name))
		if err != nil {
			return nil, nil, err
		}
		switch {
		case occ != nil && occ.ID != d.ID && !occ.Deleted && occ.Dir:
			cur = occ // a live folder of that name now: restore into it
			continue
		case occ != nil && occ.ID != d.ID && !occ.Deleted:
			p, err := cs.pathOf(occ.ID)
			if err != nil {
				return nil, nil, err
			}
			return nil, &OpError{Code: CodeNotFolder, Path: p, Message: "a file now holds a restored file's folder's place"}, nil
		}
		if oe, err := cs.claim(d, cur.ID, d.Name); err != nil || oe != nil {
			return nil, oe, err
		}
		d.Deleted = false
		d.Rev++
		if err := cs.save(d, OpMkdir, "", 0); err != nil {
			return nil, nil, err
		}
		cur = d
	}
	return cur, nil, nil
}
