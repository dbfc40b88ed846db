package follow

import (
	"context"
	"sync"
	"time"
)

// batches is a queue whose consumer takes everything queued so far at once.
// Removals go through two of them (remove.go): a churning hermes deletes
// hundreds of profiles a second, and one stop, one rename pass, one scan and
// one /proc walk per batch is what keeps root's cost, and s6-svscan's,
// independent of how many slots go at once.
type batches[T any] struct {
	mu    sync.Mutex
	items []T
	wake  chan struct{} // capacity 1: "something was put"
}

func newBatches[T any]() *batches[T] { return &batches[T]{wake: make(chan struct{}, 1)} }

func (b *batches[T]) put(items ...T) {
	if len(items) == 0 {
		return
	}
	b.mu.Lock()
	b.items = append(b.items, items...)
	b.mu.Unlock()
	select {
	case b.wake <- struct{}{}:
	default:
	}
}

// take returns everything queued, waiting for something to be put, at most
// wait when wait > 0 (then the batch may be empty). ok is false once ctx is
// done.
func (b *batches[T]) take(ctx context.Context, wait time.Duration) (items []T, ok bool) {
	var timeout <-chan time.Time
	if wait > 0 {
		t := time.NewTimer(wait)
		defer t.Stop()
		timeout = t.C
	}
	for {
		b.mu.Lock()
		items, b.items = b.items, nil
		b.mu.Unlock()
		if len(items) > 0 {
			return items, true
		}
		select {
		case <-ctx.Done():
			return nil, false
		case <-timeout:
			return nil, true
		case <-b.wake:
		}
	}
}
