// Package hclogslog adapts a *slog.Logger to hclog.Logger, so hashicorp
// libraries (raft, memberlist) log through the process's structured logger.
package hclogslog

import (
	"context"
	"io"
	"log"
	"log/slog"
	"strings"

	"github.com/hashicorp/go-hclog"
)

// New returns an hclog.Logger writing to l. Records below minLevel are
// dropped before they are formatted (hashicorp libraries log a lot at
// debug level).
func New(l *slog.Logger, minLevel hclog.Level) hclog.Logger {
	return &logger{l: l, level: minLevel}
}

type logger struct {
	l       *slog.Logger
	name    string
	level   hclog.Level
	implied []interface{}
}

func toSlog(level hclog.Level) slog.Level {
	switch {
	case level <= hclog.Debug:
		return slog.LevelDebug
	case level == hclog.Info:
		return slog.LevelInfo
	case level == hclog.Warn:
		return slog.LevelWarn
	}
	return slog.LevelError
}

func (g *logger) Log(level hclog.Level, msg string, args ...interface{}) {
	if level < g.level || level == hclog.Off {
		return
	}
	sl := toSlog(level)
	ctx := context.Background()
	if !g.l.Enabled(ctx, sl) {
		return
	}
	if g.name != "" {
		args = append([]interface{}{"logger", g.name}, args...)
	}
	g.l.Log(ctx, sl, msg, args...)
}

func (g *logger) Trace(msg string, args ...interface{}) { g.Log(hclog.Trace, msg, args...) }
func (g *logger) Debug(msg string, args ...interface{}) { g.Log(hclog.Debug, msg, args...) }
func (g *logger) Info(msg string, args ...interface{})  { g.Log(hclog.Info, msg, args...) }
func (g *logger) Warn(msg string, args ...interface{})  { g.Log(hclog.Warn, msg, args...) }
func (g *logger) Error(msg string, args ...interface{}) { g.Log(hclog.Error, msg, args...) }
func (g *logger) IsTrace() bool                         { return g.level <= hclog.Trace }
func (g *logger) IsDebug() bool                         { return g.level <= hclog.Debug }
func (g *logger) IsInfo() bool                          { return g.level <= hclog.Info }
func (g *logger) IsWarn() bool                          { return g.level <= hclog.Warn }
func (g *logger) IsError() bool                         { return g.level <= hclog.Error }
func (g *logger) ImpliedArgs() []interface{}            { return g.implied }
func (g *logger) Name() string                          { return g.name }
func (g *logger) SetLevel(level hclog.Level)            { g.level = level }
func (g *logger) GetLevel() hclog.Level                 { return g.level }

func (g *logger) With(args ...interface{}) hclog.Logger {
	c := *g
	c.l = g.l.With(args...)
	c.implied = append(append([]interface{}(nil), g.implied...), args...)
	return &c
}

func (g *logger) Named(name string) hclog.Logger {
	c := *g
	if c.name != "" {
		c.name += "." + name
	} else {
		c.name = name
	}
	return &c
}

func (g *logger) ResetNamed(name string) hclog.Logger {
	c := *g
	c.name = name
	return &c
}

func (g *logger) StandardLogger(opts *hclog.StandardLoggerOptions) *log.Logger {
	return log.New(g.StandardWriter(opts), "", 0)
}

func (g *logger) StandardWriter(*hclog.StandardLoggerOptions) io.Writer {
	return writer{g}
}

// writer turns standard-library log lines ("[WARN] memberlist: ...") into
// records at the level they name.
type writer struct{ g *logger }

func (w writer) Write(p []byte) (int, error) {
	msg := strings.TrimSpace(string(p))
	level := hclog.Info
	for prefix, l := range map[string]hclog.Level{"[TRACE]": hclog.Trace, "[DEBUG]": hclog.Debug, "[INFO]": hclog.Info, "[WARN]": hclog.Warn, "[ERR]": hclog.Error, "[ERROR]": hclog.Error} {
		if strings.HasPrefix(msg, prefix) {
			level = l
			msg = strings.TrimSpace(strings.TrimPrefix(msg, prefix))
			break
		}
	}
	w.g.Log(level, msg)
	return len(p), nil
}
