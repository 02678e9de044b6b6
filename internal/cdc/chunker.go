package cdc

import (
	"io"
)

// minBuf is the size a Chunker's buffer starts at; it grows to 2*Max.
const minBuf = 64 << 10

// readSize bounds one Read, so that the bytes are cut while they are still
// in the CPU's cache.
const readSize = 256 << 10

// maxEmptyReads is how many (0, nil) reads in a row make Next give up with
// io.ErrNoProgress.
const maxEmptyReads = 100

// Chunker cuts the stream of an io.Reader into content-defined chunks, one
// per call of Next. It reads into a buffer that starts small and grows as
// needed up to 2*Max bytes (8 MiB by default), so a short stream costs
// little memory; every chunk Next returns is a view of that buffer. A
// Chunker is not safe for concurrent use.
type Chunker struct {
	r          io.Reader
	p          params
	buf        []byte // buf[start:end] is read but not yet returned
	start, end int
	s          scan  // the search for the end of the chunk at start
	eof        bool  // r returned io.EOF
	err        error // a read error, returned by every later Next
	off        int64
}

// New returns a Chunker that reads r, or an error wrapping ErrInvalidConfig
// if cfg is invalid.
func New(r io.Reader, cfg Config) (*Chunker, error) {
	p, err := cfg.params()
	if err != nil {
		return nil, err
	}
	return &Chunker{r: r, p: p, s: p.newScan()}, nil
}

// Next returns the next chunk. The slice is a view of the Chunker's buffer,
// valid only until the next call of Next: copy it to keep it. After the
// last chunk Next returns nil, io.EOF; an empty stream has no chunks.
//
// If r fails with an error other than io.EOF, Next returns nil and that
// error as is, and so does every later call; the chunks already returned
// are a prefix of the stream's, and the bytes read after them are lost.
func (c *Chunker) Next() ([]byte, error) {
	for c.err == nil {
		n := c.p.find(c.buf[c.start:c.end], &c.s)
		if n == 0 && c.eof {
			n = c.end - c.start // the rest, maybe nothing
			if n == 0 {
				return nil, io.EOF
			}
		}
		if n > 0 {
			chunk := c.buf[c.start : c.start+n : c.start+n]
			c.start += n
			c.off += int64(n)
			c.s = c.p.newScan()
			return chunk, nil
		}
		c.err = c.read()
	}
	return nil, c.err
}

// Offset returns the number of bytes returned so far: the stream offset of
// the next chunk.
func (c *Chunker) Offset() int64 {
	return c.off
}

// read reads more of r (at most readSize bytes) after buf[start:end]. If
// the buffer is full it first makes room: it moves the unreturned bytes
// (fewer than Max) to the front if that frees at least half of it or the
// buffer is already 2*Max bytes, else it grows the buffer. It returns a
// read error other than io.EOF.
func (c *Chunker) read() error {
	if c.end == len(c.buf) {
		switch {
		case c.start > 0 && (c.start >= len(c.buf)/2 || len(c.buf) == 2*c.p.max):
			c.end = copy(c.buf, c.buf[c.start:c.end])
			c.start = 0
		default:
			nb := make([]byte, min(2*c.p.max, max(minBuf, 2*len(c.buf))))
			c.end = copy(nb, c.buf[c.start:c.end])
			c.buf, c.start = nb, 0
		}
	}
	for range maxEmptyReads {
		n, err := c.r.Read(c.buf[c.end:min(len(c.buf), c.end+readSize)])
		if n < 0 || n > len(c.buf)-c.end {
			return errInvalidRead
		}
		c.end += n
		if err == io.EOF {
			c.eof = true
			return nil
		}
		if err != nil || n > 0 {
			return err
		}
	}
	return io.ErrNoProgress
}
