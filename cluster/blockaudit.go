package cluster

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/coffer-dev/coffer/blockstore"
	"github.com/coffer-dev/coffer/blockstore/replica"
	"github.com/coffer-dev/coffer/cluster/adminrpc"
	"github.com/coffer-dev/coffer/cluster/members"
	"github.com/coffer-dev/coffer/cluster/sysgroup"
	"github.com/coffer-dev/coffer/internal/wire"
)

// Block audit: a scrub and then a repair pass on every block node, then a
// count of the copies of every block.

// DefaultAuditTimeout bounds a block audit whose caller sets no shorter
// deadline; MaxAuditTimeout is the longest an HTTP caller may ask for.
const (
	DefaultAuditTimeout = 10 * time.Minute
	MaxAuditTimeout     = 2 * time.Hour
)

// auditPage is how many refs the count reads from one node at a time.
const auditPage = 4096

// ScrubBlocks implements adminrpc.Service: one scrub of this node's local
// block store (every copy read and verified; a corrupt one is dropped and
// restored from the other nodes).
func (n *Node) ScrubBlocks(ctx context.Context) (*adminrpc.ScrubResult, error) {
	r, err := n.localReplicator()
	if err != nil {
		return nil, err
	}
	rep, err := r.ScrubNow(ctx)
	if err != nil {
		return nil, blockPassErr("scrub", err)
	}
	return &adminrpc.ScrubResult{Node: n.cfg.Name, Scanned: rep.Scanned, Bytes: rep.Bytes, Corrupt: rep.Corrupt,
		Repaired: rep.Repaired, Failed: rep.Failed}, nil
}

// RepairBlocks implements adminrpc.Service: one repair pass over this
// node's local block store.
func (n *Node) RepairBlocks(ctx context.Context) (*adminrpc.RepairResult, error) {
	r, err := n.localReplicator()
	if err != nil {
		return nil, err
	}
	rep, err := r.RepairNow(ctx)
	if err != nil {
		return nil, blockPassErr("repair", err)
	}
	out := &adminrpc.RepairResult{Node: n.cfg.Name, Scanned: rep.Scanned, Pushed: rep.Pushed, BytesPushed: rep.BytesPushed,
		HandedOff: rep.HandedOff, Failed: rep.Failed}
	for _, id := range rep.Unreachable {
		out.Unreachable = append(out.Unreachable, string(id))
	}
	return out, nil
}

// localReplicator returns the replicator of this node's block store, once
// it runs (ErrNotFound on a node without the block role).
func (n *Node) localReplicator() (*replica.Replicator, error) {
	if n.blocks == nil {
		return nil, fmt.Errorf("%w: node %s has no block store", adminrpc.ErrNotFound, n.cfg.Name)
	}
	r := n.liveRepl.Load()
	if r == nil {
		return nil, fmt.Errorf("%w: node %s: the block replicator is not running", adminrpc.ErrUnavailable, n.cfg.Name)
	}
	return r, nil
}

// blockPassErr is the error of a scrub or repair pass: a closed store or
// replicator is unavailable; ctx's error stays as it is.
func blockPassErr(pass string, err error) error {
	if errors.Is(err, blockstore.ErrClosed) {
		return fmt.Errorf("%w: %s: %v", adminrpc.ErrUnavailable, pass, err)
	}
	return fmt.Errorf("%s: %w", pass, err)
}

// auditNode is one block node in an audit.
type auditNode struct {
	wire.BlockAuditNode
	addr      string // gRPC
	reachable bool   // alive in gossip, and its admin service could be dialled
	verified  bool   // its scrub succeeded: its copies count
	errs      []string
}

func (a *auditNode) fail(format string, args ...any) {
	a.errs = append(a.errs, fmt.Sprintf(format, args...))
}

// AuditBlocks scrubs every block node's store, then runs a repair pass on
// every one, then counts, for every block any of them holds, the block
// nodes that hold a verified copy: the scrub verified every copy present
// before it, and a copy stored since (a repair push, a new write) was
// verified by the store that took it. The scrubs run in parallel, then the
// repairs; the count reads each node's refs in pages (memory: a page per
// node) and merges them in ref order. A node that cannot be reached, whose
// scrub fails or that is draining has its copies left out of the count.
// A node removed from the cluster (by the system group's records, when
// this node hosts a replica of it) is skipped: it holds nothing the
// cluster counts on. A block that no node holds at all is not seen. The audit stops with
// ctx's error if ctx ends first.
func (n *Node) AuditBlocks(ctx context.Context) (*wire.BlockAudit, error) {
	audit := &wire.BlockAudit{R: n.cfg.BlockR, UnderReplicated: []wire.UnderReplicated{}, Nodes: []wire.BlockAuditNode{}}
	removed := map[string]bool{}
	if g := n.group(SystemGroup); g != nil {
		if recs, err := g.sys.Nodes(); err == nil {
			for _, r := range recs {
				removed[r.Name] = r.State == sysgroup.NodeRemoved
			}
		}
	}
	var nodes []*auditNode
	for _, m := range n.members.All() {
		if !m.Meta.HasRole(RoleBlock) || m.State == members.StateLeft || removed[m.Name] {
			continue
		}
		a := &auditNode{BlockAuditNode: wire.BlockAuditNode{Node: m.Name, Draining: m.Meta.Draining}, addr: m.Meta.GRPCAddr,
			reachable: m.State == members.StateAlive || m.State == members.StateSuspect}
		if !a.reachable {
			a.fail("not reachable: gossip says it is %s", m.State)
		}
		nodes = append(nodes, a)
	}
	if len(nodes) == 0 {
		return nil, fmt.Errorf("%w: no block nodes", adminrpc.ErrUnavailable)
	}
	n.log.Info("block audit started", "nodes", len(nodes))
	start := time.Now()
	n.eachAuditNode(nodes, func(a *auditNode, svc adminrpc.Service) {
		r, err := svc.ScrubBlocks(ctx)
		if err == nil && r == nil {
			err = errors.New("empty answer")
		}
		if err != nil {
			a.fail("scrub: %v", err)
			return
		}
		a.Scanned, a.Corrupt, a.Repaired, a.Failed = r.Scanned, r.Corrupt, r.Repaired, r.Failed
		a.verified = true
	})
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("block audit: scrub: %w", err)
	}
	n.eachAuditNode(nodes, func(a *auditNode, svc adminrpc.Service) {
		r, err := svc.RepairBlocks(ctx)
		if err == nil && r == nil {
			err = errors.New("empty answer")
		}
		if err != nil {
			a.fail("repair: %v", err)
			return
		}
		a.Pushed, a.HandedOff, a.Failed = r.Pushed, r.HandedOff, a.Failed+r.Failed
		if len(r.Unreachable) > 0 {
			a.fail("repair: placement nodes unreachable: %s", strings.Join(r.Unreachable, ", "))
		}
	})
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("block audit: repair: %w", err)
	}
	if err := n.countCopies(ctx, audit, nodes); err != nil {
		return nil, fmt.Errorf("block audit: count: %w", err)
	}
	for _, a := range nodes {
		a.Error = strings.Join(a.errs, "; ")
		audit.Nodes = append(audit.Nodes, a.BlockAuditNode)
	}
	n.log.Info("block audit done", "blocks", audit.Blocks, "under_replicated", audit.UnderReplicatedTotal,
		"took", time.Since(start).Round(time.Millisecond))
	return audit, nil
}

// eachAuditNode runs f with the node's admin service, in parallel, on
// every node that is reachable (the repair also runs where the scrub
// failed: its pushes still help).
func (n *Node) eachAuditNode(nodes []*auditNode, f func(a *auditNode, svc adminrpc.Service)) {
	var wg sync.WaitGroup
	for _, a := range nodes {
		if !a.reachable {
			continue
		}
		svc, err := n.serviceOf(a.Node)
		if err != nil {
			a.fail("%v", err)
			a.reachable = false
			continue
		}
		wg.Go(func() { f(a, svc) })
	}
	wg.Wait()
}

// countCopies merges the refs of every verified, non-draining node in ref
// order and counts each block's copies.
func (n *Node) countCopies(ctx context.Context, audit *wire.BlockAudit, nodes []*auditNode) error {
	var pagers []*refPager
	for _, a := range nodes {
		if !a.verified || a.Draining {
			continue
		}
		var src enumerator
		if a.Node == n.cfg.Name && n.blocks != nil {
			src = n.blocks
		} else {
			c, err := n.blockPool.Client(ctx, a.addr)
			if err != nil {
				a.fail("list: %v", err)
				continue
			}
			src = c
		}
		pagers = append(pagers, &refPager{node: a, src: src})
	}
	return mergeCounts(ctx, audit, pagers)
}

// mergeCounts merges the pagers' refs in ref order and counts each block's
// copies into audit and each node's Blocks. A pager that fails is dropped
// (its node gets the error); ctx ending stops it with ctx's error.
func mergeCounts(ctx context.Context, audit *wire.BlockAudit, pagers []*refPager) error {
	for {
		var low blockstore.Ref
		found := false
		for _, p := range pagers {
			ref, ok, err := p.head(ctx)
			if err != nil {
				if cerr := ctx.Err(); cerr != nil {
					return cerr
				}
				p.node.fail("list (counted up to the failure): %v", err)
				continue
			}
			if ok && (!found || refLess(ref, low)) {
				low, found = ref, true
			}
		}
		if !found {
			return nil
		}
		copies := 0
		for _, p := range pagers {
			if ref, ok, _ := p.head(ctx); ok && ref == low {
				copies++
				p.node.Blocks++
				p.i++
			}
		}
		audit.Blocks++
		if copies < audit.R {
			audit.UnderReplicatedTotal++
			if len(audit.UnderReplicated) < wire.MaxAuditList {
				audit.UnderReplicated = append(audit.UnderReplicated, wire.UnderReplicated{Ref: low.String(), Copies: copies})
			}
		}
	}
}

// enumerator is the part of a block store the count reads.
type enumerator interface {
	Enumerate(ctx context.Context, from blockstore.Ref, fn func(blockstore.BlockInfo) error) error
}

// refPager reads one node's refs a page at a time, in ref order.
type refPager struct {
	node *auditNode
	src  enumerator
	buf  []blockstore.Ref
	i    int // next in buf
	from blockstore.Ref
	done bool // no pages left (after buf)
	err  error
}

// head returns the node's next ref (false once it has none), reading the
// next page when the current one is used up. After an error it has none.
func (p *refPager) head(ctx context.Context) (blockstore.Ref, bool, error) {
	for p.i == len(p.buf) {
		if p.done || p.err != nil {
			return blockstore.Ref{}, false, nil
		}
		p.buf, p.i = p.buf[:0], 0
		err := p.src.Enumerate(ctx, p.from, func(info blockstore.BlockInfo) error {
			p.buf = append(p.buf, info.Ref)
			if len(p.buf) == auditPage {
				return blockstore.ErrStop
			}
			return nil
		})
		if err != nil {
			p.err, p.buf = err, p.buf[:0]
			return blockstore.Ref{}, false, err
		}
		if len(p.buf) < auditPage {
			p.done = true
		} else {
			var ok bool
			p.from, ok = p.buf[len(p.buf)-1].Next()
			p.done = !ok
		}
	}
	return p.buf[p.i], true, nil
}

func refLess(a, b blockstore.Ref) bool { return bytes.Compare(a[:], b[:]) < 0 }
