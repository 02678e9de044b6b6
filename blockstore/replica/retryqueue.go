package replica

import (
	"container/heap"
	"container/list"
	"sync"
	"time"

	"github.com/coffer-dev/coffer/blockstore"
)

// retryKey is one missing copy: a block that a node should hold.
type retryKey struct {
	ref  blockstore.Ref
	node NodeID
}

type retryEntry struct {
	key     retryKey
	attempt int       // failed attempts so far
	due     time.Time // when to try next
	seq     uint64    // tie-break of due, for a stable order
	hidx    int       // index in retryQueue.heap
	elem    *list.Element
}

// retryQueue holds missing copies to write, each with its own backoff. It
// does not hold block data: a retry fetches the block again. It is bounded:
// when full, the entry queued longest ago is dropped.
type retryQueue struct {
	mu      sync.Mutex
	max     int
	byKey   map[retryKey]*retryEntry
	heap    entryHeap  // by due time
	fifo    *list.List // by time queued, oldest first
	seq     uint64
	dropped int64
	wake    chan struct{} // buffer 1: an entry was added
}

func newRetryQueue(max int) *retryQueue {
	return &retryQueue{
		max:   max,
		byKey: make(map[retryKey]*retryEntry),
		fifo:  list.New(),
		wake:  make(chan struct{}, 1),
	}
}

// add queues key to be tried at due, unless it is already queued (then the
// earlier due time wins). It drops the oldest entry if the queue is full.
func (q *retryQueue) add(key retryKey, attempt int, due time.Time) {
	q.mu.Lock()
	if e, ok := q.byKey[key]; ok {
		if due.Before(e.due) {
			e.due = due
			heap.Fix(&q.heap, e.hidx)
		}
		q.mu.Unlock()
		return
	}
	for len(q.byKey) >= q.max {
		oldest := q.fifo.Front().Value.(*retryEntry)
		q.remove(oldest)
		q.dropped++
	}
	q.seq++
	e := &retryEntry{key: key, attempt: attempt, due: due, seq: q.seq}
	e.elem = q.fifo.PushBack(e)
	heap.Push(&q.heap, e)
	q.byKey[key] = e
	q.mu.Unlock()
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

func (q *retryQueue) remove(e *retryEntry) {
	heap.Remove(&q.heap, e.hidx)
	q.fifo.Remove(e.elem)
	delete(q.byKey, e.key)
}

// pop removes and returns an entry that is due at now. If none is, it
// returns how long until the next one is due (0 when the queue is empty).
func (q *retryQueue) pop(now time.Time) (e *retryEntry, wait time.Duration) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if len(q.heap) == 0 {
		return nil, 0
	}
	top := q.heap[0]
	if top.due.After(now) {
		return nil, top.due.Sub(now)
	}
	q.remove(top)
	return top, 0
}

func (q *retryQueue) stats() (length, dropped int64) {
	q.mu.Lock()
	defer q.mu.Unlock()
	return int64(len(q.byKey)), q.dropped
}

type entryHeap []*retryEntry

func (h entryHeap) Len() int { return len(h) }
func (h entryHeap) Less(i, j int) bool {
	if !h[i].due.Equal(h[j].due) {
		return h[i].due.Before(h[j].due)
	}
	return h[i].seq < h[j].seq
}
func (h entryHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].hidx = i
	h[j].hidx = j
}
func (h *entryHeap) Push(x any) {
	e := x.(*retryEntry)
	e.hidx = len(*h)
	*h = append(*h, e)
}
func (h *entryHeap) Pop() any {
	old := *h
	e := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	e.hidx = -1
	return e
}
