package gateway

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sort"

	"github.com/coffer-dev/coffer/blockstore"
	"github.com/coffer-dev/coffer/raftmeta"
)

// readAhead is how many blocks a download fetches ahead of the reader.
const readAhead = 2

// loadBlock returns a block's bytes, from the cache or the block nodes,
// checked against the size the file records.
func (s *Server) loadBlock(ctx context.Context, b raftmeta.Block) ([]byte, error) {
	ref := blockstore.Ref(b.Ref)
	data, err := s.getBlock(ctx, ref)
	if err != nil {
		return nil, err
	}
	if int64(len(data)) != b.Size {
		return nil, fmt.Errorf("block %s has %d bytes, the file says %d", ref, len(data), b.Size)
	}
	return data, nil
}

// getBlock returns a block's bytes, verified, from the cache or the block
// nodes (which then go into the cache).
func (s *Server) getBlock(ctx context.Context, ref blockstore.Ref) ([]byte, error) {
	if s.cache != nil {
		return s.cache.Load(ctx, ref, func(ctx context.Context) ([]byte, error) { return s.cfg.Blocks.Get(ctx, ref) })
	}
	return s.cfg.Blocks.Get(ctx, ref)
}

// blockReader is an io.ReadSeeker over a file's blocks, fetching them as
// it goes, readAhead blocks ahead.
type blockReader struct {
	s      *Server
	ctx    context.Context
	cancel context.CancelFunc
	blocks []raftmeta.Block
	starts []int64 // starts[i]: offset of block i; starts[len] = size
	pos    int64

	cur     int // index of data's block, -1 if none
	data    []byte
	pending map[int]chan fetched
}

type fetched struct {
	data []byte
	err  error
}

func (s *Server) newBlockReader(ctx context.Context, blocks []raftmeta.Block) *blockReader {
	ctx, cancel := context.WithCancel(ctx)
	starts := make([]int64, len(blocks)+1)
	for i, b := range blocks {
		starts[i+1] = starts[i] + b.Size
	}
	return &blockReader{s: s, ctx: ctx, cancel: cancel, blocks: blocks, starts: starts, cur: -1, pending: map[int]chan fetched{}}
}

func (br *blockReader) size() int64 { return br.starts[len(br.blocks)] }

func (br *blockReader) close() { br.cancel() }

// start begins fetching block i unless it is under way.
func (br *blockReader) start(i int) {
	if i < 0 || i >= len(br.blocks) || br.pending[i] != nil {
		return
	}
	ch := make(chan fetched, 1)
	br.pending[i] = ch
	go func() {
		data, err := br.s.loadBlock(br.ctx, br.blocks[i])
		ch <- fetched{data, err}
	}()
}

// block returns block i's bytes, starting the fetches after it.
func (br *blockReader) block(i int) ([]byte, error) {
	if br.cur == i {
		return br.data, nil
	}
	br.start(i)
	for j := i + 1; j <= i+readAhead; j++ {
		br.start(j)
	}
	var f fetched
	select {
	case f = <-br.pending[i]:
	case <-br.ctx.Done():
		return nil, br.ctx.Err()
	}
	delete(br.pending, i)
	// Fetches behind the reader are not needed any more (a seek back
	// starts them again).
	for j := range br.pending {
		if j < i {
			delete(br.pending, j)
		}
	}
	if f.err != nil {
		return nil, f.err
	}
	br.cur, br.data = i, f.data
	return f.data, nil
}

func (br *blockReader) Read(p []byte) (int, error) {
	if br.pos >= br.size() {
		return 0, io.EOF
	}
	i := sort.Search(len(br.blocks), func(i int) bool { return br.starts[i+1] > br.pos })
	data, err := br.block(i)
	if err != nil {
		return 0, err
	}
	n := copy(p, data[br.pos-br.starts[i]:])
	br.pos += int64(n)
	return n, nil
}

var errSeek = errors.New("seek out of range")

func (br *blockReader) Seek(off int64, whence int) (int64, error) {
	switch whence {
	case io.SeekStart:
	case io.SeekCurrent:
		off += br.pos
	case io.SeekEnd:
		off += br.size()
	default:
		return 0, errSeek
	}
	if off < 0 {
		return 0, errSeek
	}
	br.pos = off
	return off, nil
}
