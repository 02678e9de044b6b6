package gateway

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/coffer-dev/coffer/blockstore"
	"github.com/coffer-dev/coffer/gateway/auth"
	"github.com/coffer-dev/coffer/internal/wire"
	"github.com/coffer-dev/coffer/raftmeta"
)

// Block batches. A client's first sync of many small files moves as many
// blocks each way; one request per block would spend the user's request
// rate on them. POST /v1/blocks/batch stores many blocks in one request and
// POST /v1/blocks/read reads many. Both carry the blocks as frames,
//
//	"<ref> <size>\n" followed by exactly size bytes
//
// ref being the block's SHA-256 in hex and size its length in decimal. A
// read's answer ends with the line "end <n>\n", n the number of frames
// before it: fewer than the refs asked for when the answer stopped early.

const (
	// MaxBatchBlocks bounds the blocks of one POST /v1/blocks/batch and the
	// refs of one POST /v1/blocks/read.
	MaxBatchBlocks = 1024
	// maxFrameHeader bounds a frame's header line: 64 hex digits, a space,
	// the size in decimal and "\n", with room to spare.
	maxFrameHeader = 96
	// batchReadAhead is how many blocks a batch read fetches at once, ahead
	// of the one it writes.
	batchReadAhead = 8
)

// blockBatch answers POST /v1/blocks/batch: a receipt per block, in the
// order of the request.
type blockBatch struct {
	Receipts []wire.BlockReceipt `json:"receipts"`
}

// readRequest is the body of POST /v1/blocks/read.
type readRequest struct {
	Refs []string `json:"refs"`
}

// batchError is a batch refused for what the client sent.
type batchError struct {
	status int
	code   string
	msg    string
}

func (e *batchError) Error() string { return e.msg }

func malformed(format string, args ...any) *batchError {
	return &batchError{http.StatusBadRequest, "invalid_argument", fmt.Sprintf(format, args...)}
}

func tooLarge(format string, args ...any) *batchError {
	return &batchError{http.StatusRequestEntityTooLarge, "too_large", fmt.Sprintf(format, args...)}
}

// putBlockBatch stores the blocks of a framed body as PUT /v1/blocks/{ref}
// stores one (verified, durable on W of R block nodes, PutParallelism at
// once) and answers a receipt for each, in order. It is one request for
// the rate and in-flight limits, and its body is charged against
// UploadMemory as a file PUT of its length is. A batch that fails answers
// no receipts, but the blocks stored before the failure stay: unreferenced
// blocks are garbage for the collector.
func (s *Server) putBlockBatch(w http.ResponseWriter, r *http.Request, cl auth.Claims) {
	if r.ContentLength > s.cfg.MaxBatchBytes+MaxBatchBlocks*maxFrameHeader {
		wire.WriteError(w, http.StatusRequestEntityTooLarge, "too_large", fmt.Sprintf("a batch holds at most %d bytes of blocks", s.cfg.MaxBatchBytes))
		return
	}
	key, ok := s.receiptKey(w, r)
	if !ok {
		return
	}
	charge := bodyCharge(r.ContentLength)
	if !s.uploads.take(charge) {
		retryAfter(w, time.Second)
		wire.WriteError(w, http.StatusTooManyRequests, "overloaded", errBusy.Error()+"; retry later")
		return
	}
	defer s.uploads.give(charge)
	blocks, err := s.storeBatch(r.Context(), r.Body)
	if err != nil {
		var be *batchError
		if errors.As(err, &be) {
			wire.WriteError(w, be.status, be.code, be.msg)
			return
		}
		s.writeMetaError(w, r, err)
		return
	}
	expires := s.cfg.Now().Add(ReceiptTTL)
	out := blockBatch{Receipts: make([]wire.BlockReceipt, len(blocks))}
	for i, b := range blocks {
		ref := blockstore.Ref(b.Ref)
		out.Receipts[i] = wire.BlockReceipt{Ref: ref.String(), Size: b.Size,
			Receipt: makeReceipt(key, cl.Shard, cl.Namespace, ref, b.Size, expires)}
	}
	wire.WriteJSON(w, http.StatusOK, out)
}

// storeBatch reads a framed body, verifies each block against its ref and
// stores it (PutParallelism at once, each put bounded by CallTimeout),
// holding no more than the block being read and those being stored. It
// returns the blocks in order once all are stored. A fault of the body
// (malformed, too large, a wrong hash, broken off) is a *batchError: the
// blocks before it are stored, the rest are not read. The first failed
// put ends the batch with its error and cancels the other puts.
func (s *Server) storeBatch(ctx context.Context, body io.Reader) ([]raftmeta.Block, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		first error
		sem   = make(chan struct{}, s.cfg.PutParallelism)
	)
	// fault records the batch's first error; a failed put also cancels the
	// others (the batch has failed), while a fault of the body lets the
	// puts under way finish.
	fault := func(err error) {
		mu.Lock()
		if first == nil {
			first = err
		}
		mu.Unlock()
	}
	fail := func(err error) {
		fault(err)
		cancel()
	}
	bodyR := &bodyReader{r: body}
	br := bufio.NewReaderSize(bodyR, 64<<10)
	// bodyErr explains a frame that could not be read: the body broke off,
	// or it is malformed.
	bodyErr := func(i int, err error) error {
		if bodyR.err != nil {
			return &batchError{http.StatusBadRequest, "incomplete_body", fmt.Sprintf("the body broke off in frame %d: %v", i, bodyR.err)}
		}
		return malformed("frame %d: %v", i, err)
	}
	var (
		blocks []raftmeta.Block
		total  int64
	)
read:
	for i := 0; ctx.Err() == nil; i++ {
		ref, size, err := readFrameHeader(br)
		if err == io.EOF {
			break
		}
		if err != nil {
			fault(bodyErr(i, err))
			break
		}
		switch {
		case i == MaxBatchBlocks:
			fault(tooLarge("a batch holds at most %d blocks", MaxBatchBlocks))
			break read
		case size > maxBlockBody:
			fault(tooLarge("frame %d: block %s has %d bytes: a block is at most %d bytes", i, ref, size, maxBlockBody))
			break read
		case total+size > s.cfg.MaxBatchBytes:
			fault(tooLarge("frame %d: the batch's blocks exceed %d bytes", i, s.cfg.MaxBatchBytes))
			break read
		}
		total += size
		data := make([]byte, size)
		if _, err := io.ReadFull(br, data); err != nil {
			fault(bodyErr(i, fmt.Errorf("the body ends within block %s (%d bytes)", ref, size)))
			break
		}
		if got := blockstore.Sum(data); got != ref {
			fault(&batchError{http.StatusBadRequest, "hash_mismatch", fmt.Sprintf("frame %d: the bytes of block %s hash to %s", i, ref, got)})
			break
		}
		blocks = append(blocks, raftmeta.Block{Ref: raftmeta.Sum(ref), Size: size})
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			break read
		}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			pctx, pcancel := context.WithTimeout(ctx, s.cfg.CallTimeout)
			defer pcancel()
			if err := s.cfg.Blocks.Put(pctx, ref, data); err != nil {
				fail(fmt.Errorf("store block %s (frame %d): %w", ref, i, err))
				return
			}
			if s.cache != nil {
				s.cache.Add(ref, data)
			}
		}()
	}
	wg.Wait()
	mu.Lock()
	err := first
	mu.Unlock()
	if err == nil {
		err = ctx.Err() // the client went away
	}
	if err != nil {
		return nil, err
	}
	if len(blocks) == 0 {
		return nil, malformed("the batch holds no blocks")
	}
	return blocks, nil
}

// readFrameHeader reads a frame's "<ref> <size>\n". A body that ends
// before it (nothing read) is io.EOF.
func readFrameHeader(br *bufio.Reader) (blockstore.Ref, int64, error) {
	line, err := br.ReadSlice('\n')
	switch {
	case err == io.EOF && len(line) == 0:
		return blockstore.Ref{}, 0, io.EOF
	case err == io.EOF:
		return blockstore.Ref{}, 0, errors.New("the body ends within a frame header")
	case errors.Is(err, bufio.ErrBufferFull) || err == nil && len(line) > maxFrameHeader:
		return blockstore.Ref{}, 0, fmt.Errorf("a frame header is longer than %d bytes", maxFrameHeader)
	case err != nil:
		return blockstore.Ref{}, 0, err
	}
	h, sz, ok := strings.Cut(string(line[:len(line)-1]), " ")
	if !ok {
		return blockstore.Ref{}, 0, fmt.Errorf("frame header %q is not \"<ref> <size>\"", line)
	}
	ref, err := blockstore.ParseRef(h)
	if err != nil {
		return blockstore.Ref{}, 0, err
	}
	size, err := strconv.ParseInt(sz, 10, 64)
	if err != nil || size < 0 || sz[0] < '0' || sz[0] > '9' {
		return blockstore.Ref{}, 0, fmt.Errorf("frame header %q: the size is not a decimal number", line)
	}
	return ref, size, nil
}

// readBlocks streams blocks the caller's namespace references, as frames
// in the order asked, then "end <n>\n". Every ref must be referenced by a
// retained revision of the caller's own files (the reference index that
// POST /v1/blocks/missing reads) before any block is fetched, so the
// answer never depends on other users' data. The blocks come from the
// block cache or the block nodes (verified there), batchReadAhead at once.
// The answer stops early — n below the refs asked for — after the block
// that takes it to MaxBatchBytes, or before a block that cannot be fetched
// once the answer has started (asked again, that block comes first and
// its error is answered); it always holds at least one block.
func (s *Server) readBlocks(w http.ResponseWriter, r *http.Request, cl auth.Claims) {
	var req readRequest
	if !decodeJSON(w, r, s.cfg.MaxJSONBody, &req) {
		return
	}
	if len(req.Refs) == 0 || len(req.Refs) > MaxBatchBlocks {
		wire.WriteError(w, http.StatusBadRequest, "invalid_argument", fmt.Sprintf("1 to %d refs per request", MaxBatchBlocks))
		return
	}
	sums, ok := parseRefs(w, req.Refs)
	if !ok {
		return
	}
	cctx, cancel := s.callCtx(r)
	have, err := s.cfg.Meta.Referenced(cctx, cl.Shard, cl.Namespace, sums, raftmeta.ReadOptions{})
	cancel()
	if err != nil {
		s.writeMetaError(w, r, err)
		return
	}
	for i, ok := range have {
		if !ok {
			wire.WriteError(w, http.StatusNotFound, "not_found",
				fmt.Sprintf("refs[%d]: block %s: no file of yours references it", i, sums[i]))
			return
		}
	}

	ctx, stop := context.WithCancel(r.Context())
	defer stop() // the fetches not needed any more
	type fetched struct {
		data []byte
		err  error
	}
	pending := make([]chan fetched, len(sums))
	start := func(i int) {
		if i >= len(sums) {
			return
		}
		ch := make(chan fetched, 1)
		pending[i] = ch
		go func() {
			data, err := s.getBlock(ctx, blockstore.Ref(sums[i]))
			ch <- fetched{data, err}
		}()
	}
	for i := range batchReadAhead {
		start(i)
	}
	next := func(i int) fetched {
		f := <-pending[i]
		pending[i] = nil
		start(i + batchReadAhead)
		return f
	}

	f := next(0)
	if f.err != nil {
		s.writeMetaError(w, r, f.err)
		return
	}
	hdr := w.Header()
	hdr.Set("Content-Type", "application/octet-stream")
	hdr.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(http.StatusOK)
	var sent int64
	n := 0
	for {
		if _, err := fmt.Fprintf(w, "%s %d\n", sums[n], len(f.data)); err != nil {
			return // the client is gone
		}
		if _, err := w.Write(f.data); err != nil {
			return
		}
		n++
		sent += int64(len(f.data))
		if n == len(sums) || sent >= s.cfg.MaxBatchBytes {
			break
		}
		if f = next(n); f.err != nil {
			if r.Context().Err() != nil {
				return
			}
			s.log.Warn("a batch read stops early: a block cannot be fetched", "ref", sums[n].String(), "sent", n, "err", f.err)
			break
		}
	}
	fmt.Fprintf(w, "end %d\n", n)
}
