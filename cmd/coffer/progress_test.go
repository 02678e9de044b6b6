package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestRenderProgress(t *testing.T) {
	tests := []struct {
		label       string
		done, total int64
		elapsed     time.Duration
		want        string
	}{
		{"big.iso", 0, 27 << 20, time.Second, "big.iso    0%  0 B / 27.0 MiB  0 B/s  ETA --:--"},
		{"big.iso", 12 << 20, 24 << 20, 2 * time.Second, "big.iso   50%  12.0 MiB / 24.0 MiB  6.0 MiB/s  ETA 0:02"},
		{"big.iso", 1 << 20, 3601 << 20, time.Second, "big.iso    0%  1.0 MiB / 3.5 GiB  1.0 MiB/s  ETA 1:00:00"},
		{"big.iso", 1, 1 << 50, time.Hour, "big.iso    0%  1 B / 1.0 PiB  0 B/s  ETA 99:59:59"},
		{"done", 10, 10, time.Second, "done  100%  10 B / 10 B  10 B/s  ETA 0:00"},
		{"grown", 12, 10, time.Second, "grown  100%  12 B / 10 B  12 B/s  ETA 0:00"},
		{"empty", 0, 0, time.Second, "empty  100%  0 B / 0 B  0 B/s  ETA 0:00"},
		{"unknown", 3 << 10, -1, 1500 * time.Millisecond, "unknown  3.0 KiB  2.0 KiB/s"},
		{"a-very-long-file-name-that-goes-on.bin", 0, 1, time.Second, "a-very-long-file-name-t…    0%  0 B / 1 B  0 B/s  ETA --:--"},
	}
	for _, tc := range tests {
		if got := renderProgress(tc.label, tc.done, tc.total, tc.elapsed); got != tc.want {
			t.Errorf("renderProgress(%q, %d, %d, %v)\n = %q\nwant %q", tc.label, tc.done, tc.total, tc.elapsed, got, tc.want)
		}
	}
	// The widest line fits 80 columns.
	long := renderProgress(strings.Repeat("x", 100), 1023<<30, 1023<<30+1, 99*time.Hour)
	if n := len([]rune(long)); n >= 80 {
		t.Errorf("a line of %d runes: %q", n, long)
	}
}

// runApp runs coffer like run, with stderr a terminal or not and the
// given progress delay.
func runApp(t *testing.T, tty bool, delay time.Duration, env map[string]string, args ...string) result {
	t.Helper()
	var out, errOut bytes.Buffer
	a := &app{stdin: strings.NewReader(""), stdout: &out, stderr: &errOut, getenv: func(k string) string { return env[k] },
		tty: tty, progressDelay: delay}
	code := a.execute(context.Background(), args)
	return result{code, out.String(), errOut.String()}
}

// put and get draw progress on stderr only when it is a terminal, only
// after the delay, and clear it at the end; stdout stays clean.
func TestProgressOnlyOnTerminal(t *testing.T) {
	srv := newFileServer(t)
	env := map[string]string{"COFFER_SERVER": srv.URL, "COFFER_PASSWORD": "x"}
	dir := t.TempDir()
	data := bytes.Repeat([]byte("coffer progress "), 1<<16) // 1 MiB
	local := filepath.Join(dir, "data.bin")
	if err := os.WriteFile(local, data, 0o644); err != nil {
		t.Fatal(err)
	}
	sub := filepath.Join(dir, "tree")
	os.MkdirAll(filepath.Join(sub, "x"), 0o755)
	os.WriteFile(filepath.Join(sub, "x", "one"), data[:1000], 0o644)
	os.WriteFile(filepath.Join(sub, "two"), data[:24], 0o644)

	cmds := []struct {
		name  string
		args  []string
		label string // the progress line's start
		total string // the progress line's total
	}{
		{"put", []string{"put", local, "/data.bin"}, "data.bin", " / 1.0 MiB"},
		{"put -r", []string{"put", "-r", sub, "/tree"}, "tree/", " / 1.0 KiB"},
		{"get", []string{"get", "/data.bin", filepath.Join(dir, "back.bin")}, "data.bin", " / 1.0 MiB"},
	}
	for _, c := range cmds {
		t.Run(c.name, func(t *testing.T) {
			// A terminal, no delay: drawn, then cleared.
			r := runApp(t, true, 0, env, c.args...)
			if r.code != 0 {
				t.Fatalf("exit %d: %s", r.code, r.stderr)
			}
			if !strings.HasPrefix(r.stderr, "\r"+c.label+" ") || !strings.Contains(r.stderr, c.total) {
				t.Errorf("no progress line %q ... %q on stderr: %q", c.label, c.total, r.stderr)
			}
			last := strings.LastIndex(r.stderr[:len(r.stderr)-1], "\r")
			if !strings.HasSuffix(r.stderr, "\r") || strings.TrimLeft(r.stderr[last+1:len(r.stderr)-1], " ") != "" {
				t.Errorf("the progress line is not cleared at the end: %q", r.stderr)
			}
			if strings.Contains(r.stdout, "\r") || r.stdout == "" {
				t.Errorf("stdout %q", r.stdout)
			}
			// Not a terminal, or a quick transfer: nothing drawn.
			for _, tc := range []struct {
				tty   bool
				delay time.Duration
			}{{false, 0}, {true, time.Hour}} {
				if r := runApp(t, tc.tty, tc.delay, env, c.args...); r.code != 0 || r.stderr != "" || r.stdout == "" {
					t.Errorf("tty %v, delay %v: exit %d, stderr %q, stdout %q", tc.tty, tc.delay, r.code, r.stderr, r.stdout)
				}
			}
		})
	}
	if got, err := os.ReadFile(filepath.Join(dir, "back.bin")); err != nil || !bytes.Equal(got, data) {
		t.Errorf("get wrote %d bytes (%v)", len(got), err)
	}
	// run itself sees that a buffer is not a terminal.
	if isTerminal(&bytes.Buffer{}) {
		t.Error("a buffer is a terminal")
	}
}

// A progress line counts what its reader and writer pass.
func TestProgressCounts(t *testing.T) {
	var term bytes.Buffer
	a := &app{stderr: &term, tty: true, progressDelay: time.Hour}
	p := a.startProgress("x", 10)
	var sink bytes.Buffer
	if _, err := sink.ReadFrom(p.reader(strings.NewReader("abcd"))); err != nil {
		t.Fatal(err)
	}
	p.writer(&sink).Write([]byte("ef"))
	if got := p.done.Load(); got != 6 || sink.String() != "abcdef" {
		t.Errorf("counted %d, passed %q", got, sink.String())
	}
	p.finish()
	p.finish() // again: nothing
	if term.Len() != 0 {
		t.Errorf("drew %q before the delay", term.String())
	}
	var nilp *progress
	if r := strings.NewReader(""); nilp.reader(r) != r {
		t.Error("a nil progress wraps the reader")
	}
	nilp.finish()
}
