package members

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
)

// logWriter forwards memberlist's log lines to slog: lines tagged [WARN] or
// [ERR] at warn level, everything else at debug.
type logWriter struct{ log *slog.Logger }

func (w logWriter) Write(p []byte) (int, error) {
	for _, line := range bytes.Split(p, []byte{'\n'}) {
		s := strings.TrimSpace(string(line))
		if s == "" {
			continue
		}
		level := slog.LevelDebug
		if strings.Contains(s, "[WARN]") || strings.Contains(s, "[ERR]") {
			level = slog.LevelWarn
		}
		w.log.Log(context.Background(), level, s)
	}
	return len(p), nil
}
