package main

import (
	"fmt"
	"io"
	"math"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"
)

// Progress drawing.
const (
	// progressDelay is how long a transfer runs before its progress is
	// drawn: quick ones draw nothing.
	progressDelay = time.Second
	// progressEvery is the least time between two redraws.
	progressEvery = 100 * time.Millisecond
	// progressLabel caps the runes of the label, so that the line fits 80
	// columns.
	progressLabel = 24
)

// progress draws one transfer's progress (bytes done of total, rate and
// ETA) on one line of stderr, redrawn in place with \r. It draws only
// when stderr is a terminal, starting after a delay, and finish clears
// the line. The bytes are counted by the reader and writer wrappers
// around what the transfer streams. A nil *progress draws nothing and
// its wrappers return what they wrap.
type progress struct {
	w     io.Writer
	label string
	total int64 // <0: unknown
	start time.Time
	done  atomic.Int64

	quit, exited chan struct{}
	once         sync.Once // of finish

	mu    sync.Mutex // serializes the writes to w (and to others through print)
	width int        // runes of the line drawn now (0: none)
}

// startProgress starts drawing the progress of a transfer of total bytes
// (<0: unknown), from a.progressDelay on. It returns nil when stderr is
// not a terminal. Call finish when the transfer ends.
func (a *app) startProgress(label string, total int64) *progress {
	if !a.tty {
		return nil
	}
	p := &progress{w: a.stderr, label: label, total: total, start: time.Now(),
		quit: make(chan struct{}), exited: make(chan struct{})}
	go p.loop(a.progressDelay)
	return p
}

// loop draws after delay and then every progressEvery until finish.
func (p *progress) loop(delay time.Duration) {
	defer close(p.exited)
	if delay > 0 {
		t := time.NewTimer(delay)
		select {
		case <-t.C:
		case <-p.quit:
			t.Stop()
			return
		}
	}
	tick := time.NewTicker(progressEvery)
	defer tick.Stop()
	for {
		p.draw()
		select {
		case <-tick.C:
		case <-p.quit:
			return
		}
	}
}

// draw redraws the line with the current state.
func (p *progress) draw() {
	line := renderProgress(p.label, p.done.Load(), p.total, time.Since(p.start))
	n := utf8.RuneCountInString(line)
	p.mu.Lock()
	defer p.mu.Unlock()
	pad := ""
	if p.width > n {
		pad = strings.Repeat(" ", p.width-n)
	}
	fmt.Fprintf(p.w, "\r%s%s", line, pad)
	p.width = n
}

// clear blanks the line drawn, if any; the caller holds p.mu.
func (p *progress) clear() {
	if p.width > 0 {
		fmt.Fprintf(p.w, "\r%s\r", strings.Repeat(" ", p.width))
		p.width = 0
	}
}

// finish stops drawing and clears the line. Calling it again does
// nothing.
func (p *progress) finish() {
	if p == nil {
		return
	}
	p.once.Do(func() {
		close(p.quit)
		<-p.exited
		p.mu.Lock()
		p.clear()
		p.mu.Unlock()
	})
}

// printf prints to w (stdout or stderr, which may be the same terminal)
// without mixing the text into the progress line: the line is cleared
// first and redrawn at the next tick.
func (p *progress) printf(w io.Writer, format string, args ...any) {
	if p == nil {
		fmt.Fprintf(w, format, args...)
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.clear()
	fmt.Fprintf(w, format, args...)
}

// reader counts what r reads as done.
func (p *progress) reader(r io.Reader) io.Reader {
	if p == nil {
		return r
	}
	return &countingReader{r: r, n: &p.done}
}

// writer counts what is written to w as done.
func (p *progress) writer(w io.Writer) io.Writer {
	if p == nil {
		return w
	}
	return &countingWriter{w: w, n: &p.done}
}

type countingReader struct {
	r io.Reader
	n *atomic.Int64
}

func (c *countingReader) Read(b []byte) (int, error) {
	n, err := c.r.Read(b)
	c.n.Add(int64(n))
	return n, err
}

type countingWriter struct {
	w io.Writer
	n *atomic.Int64
}

func (c *countingWriter) Write(b []byte) (int, error) {
	n, err := c.w.Write(b)
	c.n.Add(int64(n))
	return n, err
}

// renderProgress is the progress line of a transfer of done of total
// bytes (total <0: unknown) elapsed after its start, e.g.
//
//	big.iso  45%  12.3 MiB / 27.0 MiB  5.1 MiB/s  ETA 0:03
//
// The rate is the average since the start.
func renderProgress(label string, done, total int64, elapsed time.Duration) string {
	if utf8.RuneCountInString(label) > progressLabel {
		r := []rune(label)
		label = string(r[:progressLabel-1]) + "…"
	}
	var rate float64
	if elapsed > 0 {
		rate = float64(done) / elapsed.Seconds()
	}
	var b strings.Builder
	b.WriteString(label)
	if total >= 0 {
		pct := int64(100)
		if total > 0 && done < total {
			pct = done * 100 / total
		}
		fmt.Fprintf(&b, "  %3d%%  %s / %s", pct, humanBytes(done), humanBytes(total))
	} else {
		fmt.Fprintf(&b, "  %s", humanBytes(done))
	}
	fmt.Fprintf(&b, "  %s/s", humanBytes(int64(rate)))
	if total >= 0 {
		eta := "--:--"
		if left := total - done; left <= 0 {
			eta = fmtETA(0)
		} else if rate > 0 {
			eta = fmtETA(float64(left) / rate)
		}
		b.WriteString("  ETA " + eta)
	}
	return b.String()
}

// fmtETA formats secs, rounded up, as m:ss or h:mm:ss (at most 99:59:59).
func fmtETA(secs float64) string {
	const most = 99*3600 + 59*60 + 59
	s := int64(most)
	if secs < most {
		s = int64(math.Ceil(secs))
	}
	if s >= 3600 {
		return fmt.Sprintf("%d:%02d:%02d", s/3600, s/60%60, s%60)
	}
	return fmt.Sprintf("%d:%02d", s/60, s%60)
}
