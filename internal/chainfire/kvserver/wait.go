package kvserver

import (
	"sync"
)

// result is what applying one proposal produced.
type result struct {
	resp any
	err  error
	// compacted closes when a physical compaction finished.
	compacted <-chan struct{}
}

// waitTable hands apply results to the goroutines waiting for them, keyed by
// request id.
type waitTable struct {
	mu sync.Mutex
	m  map[uint64]chan result
}

func newWaitTable() *waitTable { return &waitTable{m: map[uint64]chan result{}} }

func (w *waitTable) register(id uint64) <-chan result {
	ch := make(chan result, 1)
	w.mu.Lock()
	w.m[id] = ch
	w.mu.Unlock()
	return ch
}

func (w *waitTable) trigger(id uint64, r result) {
	w.mu.Lock()
	ch, ok := w.m[id]
	delete(w.m, id)
	w.mu.Unlock()
	if ok {
		ch <- r
	}
}

func (w *waitTable) cancel(id uint64) {
	w.mu.Lock()
	delete(w.m, id)
	w.mu.Unlock()
}

// indexWait lets goroutines wait until the applied index reaches a value.
type indexWait struct {
	mu      sync.Mutex
	applied uint64
	waiters []indexWaiter
}

type indexWaiter struct {
	index uint64
	ch    chan struct{}
}

func (w *indexWait) wait(index uint64) <-chan struct{} {
	ch := make(chan struct{})
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.applied >= index {
		close(ch)
		return ch
	}
	w.waiters = append(w.waiters, indexWaiter{index, ch})
	return ch
}

func (w *indexWait) trigger(applied uint64) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.applied = applied
	kept := w.waiters[:0]
	for _, x := range w.waiters {
		if x.index <= applied {
			close(x.ch)
		} else {
			kept = append(kept, x)
		}
	}
	for i := len(kept); i < len(w.waiters); i++ {
		w.waiters[i] = indexWaiter{}
	}
	w.waiters = kept
}
