package client

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/coffer-dev/coffer/internal/wire"
)

// Block batches (docs/API.md §5): POST /v1/blocks/batch stores many blocks
// in one request and POST /v1/blocks/read reads many, so a sync of many
// small files does not cost a request per block. Both carry blocks as
// frames, "<ref> <size>\n" followed by the block's bytes; a read's answer
// ends with "end <n>\n", n the frames sent (fewer than asked when the
// server stopped early: the client asks again for the rest).

// BlockData is a block to upload: its ref (the SHA-256 of Data, 64 hex
// digits) and its bytes.
type BlockData struct {
	Ref  string
	Data []byte
}

const (
	// maxBatchBlocks is the most blocks one batch request carries or
	// asks for (the gateway's limit).
	maxBatchBlocks = 1024
	// putBatchBytes bounds the block bytes of one batch upload (the
	// gateway takes up to 64 MiB by default). An attempt may take
	// Config.Timeout per blockUnit of them, so a batch of this size gets
	// four timeouts.
	putBatchBytes = 16 << 20
	blockUnit     = 4 << 20
	// maxReadBlock bounds a block the client accepts in a read answer
	// (the largest block a commit may name).
	maxReadBlock = 64 << 20
	// maxFrameLine bounds a frame header or end line of a read answer.
	maxFrameLine = 128
)

// PutBlocks uploads blocks with POST /v1/blocks/batch, up to 1024 blocks
// and 16 MiB per request, and returns their receipts in order (pass them to
// the Commit that first names the blocks). The server verifies each block
// against its ref (a mismatch is an error matching ErrHashMismatch) and
// answers once every block of the request is durable. Storing a
// content-addressed block again is harmless, so a request fails over to
// another server even when the first may have acted on it. On an error no
// receipts are returned; blocks stored meanwhile are unreferenced garbage
// that the server collects.
func (c *Client) PutBlocks(ctx context.Context, blocks []BlockData) ([]wire.BlockReceipt, error) {
	for i, b := range blocks {
		if _, err := parseRef(b.Ref); err != nil {
			return nil, fmt.Errorf("put blocks: block %d: %w", i, err)
		}
	}
	out := make([]wire.BlockReceipt, 0, len(blocks))
	for len(blocks) > 0 {
		n, size := 0, 0
		for n < len(blocks) && n < maxBatchBlocks && (n == 0 || size+len(blocks[n].Data) <= putBatchBytes) {
			size += len(blocks[n].Data)
			n++
		}
		rcs, err := c.putBatch(ctx, blocks[:n], size)
		if err != nil {
			return nil, err
		}
		out = append(out, rcs...)
		blocks = blocks[n:]
	}
	return out, nil
}

// putBatch sends one batch of blocks, size bytes in all.
func (c *Client) putBatch(ctx context.Context, blocks []BlockData, size int) ([]wire.BlockReceipt, error) {
	var body bytes.Buffer
	body.Grow(size + len(blocks)*(64+12))
	for _, b := range blocks {
		fmt.Fprintf(&body, "%s %d\n", b.Ref, len(b.Data))
		body.Write(b.Data)
	}
	var res struct {
		Receipts []wire.BlockReceipt `json:"receipts"`
	}
	err := c.send(ctx, &request{method: http.MethodPost, path: "/v1/blocks/batch", safe: true,
		header: http.Header{"Content-Type": {"application/octet-stream"}}, body: body.Bytes(), out: &res,
		timeout: c.timeout * time.Duration(max(1, (size+blockUnit-1)/blockUnit))})
	if err != nil {
		return nil, fmt.Errorf("put %d blocks: %w", len(blocks), err)
	}
	if len(res.Receipts) != len(blocks) {
		return nil, fmt.Errorf("put %d blocks: the server answered %d receipts", len(blocks), len(res.Receipts))
	}
	for i, rc := range res.Receipts {
		b := blocks[i]
		if !strings.EqualFold(rc.Ref, b.Ref) || rc.Size != int64(len(b.Data)) || rc.Receipt == "" {
			return nil, fmt.Errorf("put blocks: block %s: the server answered ref %s, size %d, receipt %q", b.Ref, rc.Ref, rc.Size, rc.Receipt)
		}
	}
	return res.Receipts, nil
}

// ReadBlocks reads the blocks named by refs with POST /v1/blocks/read and
// calls fn with each, in the order of refs (a ref named twice is read
// twice), after checking that its bytes hash to its ref: a block that does
// not is an error matching ErrHashMismatch. fn may keep data; its error
// ends ReadBlocks and is returned as is.
//
// Every block must be referenced by a file (any retained revision) of the
// caller: the server refuses a request naming one that is not with an
// error matching ErrNotFound. ReadBlocks asks for up to 1024 refs at a
// time, and asks again for the rest when an answer stops early (the server
// bounds an answer's bytes) or breaks off after some blocks; a break
// before any block of an answer is an error matching ErrUnavailable. The
// blocks fn was called with before an error were delivered.
func (c *Client) ReadBlocks(ctx context.Context, refs []string, fn func(ref string, data []byte) error) error {
	sums := make([][sha256.Size]byte, len(refs))
	for i, ref := range refs {
		sum, err := parseRef(ref)
		if err != nil {
			return fmt.Errorf("read blocks: refs[%d]: %w", i, err)
		}
		sums[i] = sum
	}
	for len(refs) > 0 {
		k := min(len(refs), maxBatchBlocks)
		n, broken, err := c.readBatch(ctx, refs[:k], sums[:k], fn)
		refs, sums = refs[n:], sums[n:]
		if err != nil && !(broken && n > 0 && ctx.Err() == nil) {
			return err
		}
	}
	return nil
}

// readBatch asks for one batch of blocks and hands those of the answer to
// fn, returning how many it delivered. broken says the answer broke off
// (asking again for the rest may succeed).
func (c *Client) readBatch(ctx context.Context, refs []string, sums [][sha256.Size]byte, fn func(string, []byte) error) (n int, broken bool, err error) {
	body, err := json.Marshal(struct {
		Refs []string `json:"refs"`
	}{refs})
	if err != nil {
		return 0, false, err
	}
	r := &request{method: http.MethodPost, path: "/v1/blocks/read", body: body,
		header: http.Header{"Accept": {"application/octet-stream"}, "Content-Type": {"application/json"}}}
	var fnErr error
	err = c.stream(ctx, r, fmt.Sprintf("read %d blocks", len(refs)), func(status int) bool { return status == http.StatusOK },
		func(resp *http.Response) error {
			br := bufio.NewReaderSize(resp.Body, 64<<10)
			brokeOff := func(err error) error {
				broken = true
				if err == io.EOF {
					err = io.ErrUnexpectedEOF
				}
				return fmt.Errorf("%w: the answer broke off after %d blocks: %w", ErrUnavailable, n, err)
			}
			for {
				line, err := br.ReadSlice('\n')
				if err == bufio.ErrBufferFull || err == nil && len(line) > maxFrameLine {
					return fmt.Errorf("bad answer: a line longer than %d bytes", maxFrameLine)
				}
				if err != nil {
					return brokeOff(err)
				}
				head, num, _ := strings.Cut(string(line[:len(line)-1]), " ")
				size, err := strconv.ParseInt(num, 10, 64)
				if err != nil || size < 0 {
					return fmt.Errorf("bad answer: line %q", line)
				}
				if head == "end" {
					if size != int64(n) || n == 0 {
						return fmt.Errorf("bad answer: %q after %d blocks", line, n)
					}
					return nil
				}
				if n == len(refs) || !strings.EqualFold(head, refs[n]) {
					return fmt.Errorf("bad answer: block %d is %.70q, not the one asked for", n, head)
				}
				if size > maxReadBlock {
					return fmt.Errorf("bad answer: block %s of %d bytes", head, size)
				}
				data := make([]byte, size)
				if _, err := io.ReadFull(br, data); err != nil {
					return brokeOff(err)
				}
				if sha256.Sum256(data) != sums[n] {
					return fmt.Errorf("%w: block %s: the bytes received hash to %x", ErrHashMismatch, refs[n], sha256.Sum256(data))
				}
				if err := fn(refs[n], data); err != nil {
					fnErr = err
					return err
				}
				n++
			}
		})
	if fnErr != nil {
		return n, false, fnErr
	}
	return n, broken, err
}

// parseRef parses a block ref: 64 hex digits.
func parseRef(ref string) ([sha256.Size]byte, error) {
	var sum [sha256.Size]byte
	if len(ref) != 2*sha256.Size {
		return sum, fmt.Errorf("%w: ref %.70q is not 64 hex digits", ErrInvalidArgument, ref)
	}
	if _, err := hex.Decode(sum[:], []byte(ref)); err != nil {
		return sum, fmt.Errorf("%w: ref %.70q is not 64 hex digits", ErrInvalidArgument, ref)
	}
	return sum, nil
}
