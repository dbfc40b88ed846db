package logging

import (
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"
)

// DropWriter passes whole writes (one log line each, as zerolog makes
// them) to an io.Writer from its own goroutine, so that a caller never
// waits for the log's reader: when queue lines are already waiting, a line
// is dropped and counted, and the count is written (as one JSON line) before
// the next line that gets through. perm-watcher logs through it because a
// stalled stderr reader (s6-log blocked on a full disk, a paused logger)
// must not stop it from handing services over.
type DropWriter struct {
	w       io.Writer
	ch      chan []byte
	dropped atomic.Int64 // not yet reported
	total   atomic.Int64
	done    chan struct{}
	once    sync.Once
}

// NewDropWriter starts the writer goroutine; Close stops it.
func NewDropWriter(w io.Writer, queue int) *DropWriter {
	d := &DropWriter{w: w, ch: make(chan []byte, queue), done: make(chan struct{})}
	go d.run()
	return d
}

// Write queues a copy of p and never blocks; it always reports success
// (a dropped line is counted, not an error: nothing can be done about it
// at the caller).
func (d *DropWriter) Write(p []byte) (int, error) {
	b := append([]byte(nil), p...)
	select {
	case d.ch <- b:
	default:
		d.dropped.Add(1)
		d.total.Add(1)
	}
	return len(p), nil
}

// Dropped is the number of lines dropped since the start.
func (d *DropWriter) Dropped() int64 { return d.total.Load() }

func (d *DropWriter) run() {
	defer close(d.done)
	for b := range d.ch {
		d.report()
		_, _ = d.w.Write(b)
	}
	d.report()
}

func (d *DropWriter) report() {
	if n := d.dropped.Swap(0); n > 0 {
		fmt.Fprintf(d.w, `{"level":"warn","dropped_lines":%d,"time":%q,"message":"log lines dropped: the log reader did not keep up"}`+"\n",
			n, time.Now().Format(time.RFC3339Nano))
	}
}

// Close stops accepting lines and waits at most timeout for the queued
// ones to be written (a stalled reader must not hold the exit either).
func (d *DropWriter) Close(timeout time.Duration) {
	d.once.Do(func() { close(d.ch) })
	select {
	case <-d.done:
	case <-time.After(timeout):
	}
}
