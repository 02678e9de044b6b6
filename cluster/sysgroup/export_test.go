package sysgroup

import "log/slog"

// SetDedupLimit makes c remember only n request IDs (instead of
// DedupLimit), so tests can reach the bound quickly. Every replica of a
// group must use the same value.
func SetDedupLimit(c *Config, n int) { c.dedupLimit = n }

// Skipped counts the entries g's state machine skipped because it had
// applied them before a restart.
func Skipped(g *Group) uint64 { return g.fsm.p.Skipped() }

// Executed counts the commands g's state machine executed (neither skipped
// nor answered from the dedup record) since g was opened.
func Executed(g *Group) uint64 { return g.fsm.executed.Load() }

// DedupRecords counts the request IDs g's state remembers.
func DedupRecords(g *Group) (int, error) {
	n := 0
	err := g.withDB(func() error {
		lo, hi := g.fsm.k.TagBounds(tagDedup)
		return scan(g.cfg.DB, lo, hi, func(_, _ []byte) (bool, error) { n++; return true, nil })
	})
	return n, err
}

func discard() *slog.Logger { return slog.New(slog.DiscardHandler) }
