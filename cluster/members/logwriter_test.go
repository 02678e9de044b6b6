package members

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
)

func TestLogWriterLevels(t *testing.T) {
	var buf bytes.Buffer
	l := newStdLogger(slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug})))
	l.Printf("[DEBUG] memberlist: hello")
	l.Printf("[WARN] memberlist: careful")
	l.Printf("[ERR] memberlist: broken")
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 3 {
		t.Fatalf("got %d lines: %q", len(lines), buf.String())
	}
	for i, want := range []string{"level=DEBUG", "level=WARN", "level=WARN"} {
		if !strings.Contains(lines[i], want) {
			t.Errorf("line %d = %q, want %s", i, lines[i], want)
		}
	}
	if !strings.Contains(lines[0], "memberlist: hello") {
		t.Errorf("message lost: %q", lines[0])
	}
}
