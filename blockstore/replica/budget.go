package replica

import "sync"

// byteBudget is a semaphore on bytes that never waits: it bounds the block
// data held by background writes (Config.BackgroundBytes). Work that
// cannot get budget is not held back; it gives up its data and leaves the
// copy to the retry queue.
type byteBudget struct {
	mu   sync.Mutex
	max  int64
	held int64
}

func newByteBudget(max int64) *byteBudget { return &byteBudget{max: max} }

// tryAcquire takes n bytes if they fit, and reports whether it did.
func (b *byteBudget) tryAcquire(n int64) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.held+n > b.max {
		return false
	}
	b.held += n
	return true
}

// release returns n bytes taken by tryAcquire.
func (b *byteBudget) release(n int64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.held -= n
	if b.held < 0 {
		panic("replica: byte budget released more than it held")
	}
}

// inUse returns the bytes held now.
func (b *byteBudget) inUse() int64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.held
}
