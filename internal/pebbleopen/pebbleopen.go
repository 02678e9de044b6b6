// Package pebbleopen opens a Pebble instance the way every Coffer store
// does: newest format, logs to slog, a block cache, bloom filters on every
// level, and Pebble's fatal errors turned into an error instead of a crash.
package pebbleopen

import (
	"fmt"
	"log/slog"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/bloom"
)

// Open opens (creating if needed) the Pebble instance in dir with a block
// cache of cacheBytes. An error from Pebble is returned as is; a fatal
// error Pebble raised while opening (a damaged store) comes back as an
// error whose text says so. The caller maps either to its own sentinel.
func Open(dir string, cacheBytes int64, log *slog.Logger) (db *pebble.DB, err error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	defer func() {
		if r := recover(); r != nil {
			db, err = nil, fmt.Errorf("pebble %s: fatal: %v", dir, r)
		}
	}()
	cache := pebble.NewCache(cacheBytes)
	defer cache.Unref()
	opts := &pebble.Options{
		FormatMajorVersion: pebble.FormatNewest,
		Logger:             Logger{L: log.With("component", "pebble")},
		Cache:              cache,
	}
	// Most point reads of our stores are of keys that may not exist (a new
	// request ID, a new file name, a block not stored yet): bloom filters
	// answer those without reading data blocks.
	for i := range opts.Levels {
		opts.Levels[i].FilterPolicy = bloom.FilterPolicy(10)
		opts.Levels[i].FilterType = pebble.TableFilter
	}
	return pebble.Open(dir, opts)
}

// Logger sends Pebble's logs to slog (its Infof at debug level); Fatalf
// panics as Pebble expects, and Open's recover turns that into an error.
type Logger struct{ L *slog.Logger }

// Infof logs at debug level.
func (p Logger) Infof(format string, args ...any) { p.L.Debug(fmt.Sprintf(format, args...)) }

// Errorf logs at error level.
func (p Logger) Errorf(format string, args ...any) { p.L.Error(fmt.Sprintf(format, args...)) }

// Fatalf panics with the message.
func (p Logger) Fatalf(format string, args ...any) { panic(fmt.Sprintf(format, args...)) }
