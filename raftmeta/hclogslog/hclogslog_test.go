package hclogslog_test

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"

	"github.com/coffer-dev/coffer/raftmeta/hclogslog"
	"github.com/hashicorp/go-hclog"
)

func TestLevelsNamesAndStandardWriter(t *testing.T) {
	var buf bytes.Buffer
	sl := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	l := hclogslog.New(sl, hclog.Info).Named("raft").With("group", 7)
	l.Debug("dropped below min level")
	l.Info("elected", "term", 3)
	l.StandardLogger(nil).Print("[WARN] memberlist: suspect node")
	out := buf.String()
	if strings.Contains(out, "dropped") {
		t.Errorf("debug record passed an info minimum: %s", out)
	}
	for _, want := range []string{"level=INFO msg=elected group=7 logger=raft term=3", "level=WARN msg=\"memberlist: suspect node\""} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if !l.IsWarn() || l.IsDebug() {
		t.Errorf("IsWarn=%v IsDebug=%v at min level info", l.IsWarn(), l.IsDebug())
	}
}
