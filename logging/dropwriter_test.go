package logging

import (
	"bytes"
	"os"
	"strings"
	"sync"
	"testing"
	"time"
)

// A writer whose reader never reads (a full pipe) blocks no Write: lines
// beyond the queue are dropped and counted, and the count is reported once
// the reader reads again.
func TestDropWriterNeverBlocks(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	d := NewDropWriter(w, 8)
	line := []byte(strings.Repeat("x", 1000) + "\n")
	done := make(chan struct{})
	go func() {
		for i := 0; i < 1000; i++ { // 1 MB: far beyond a pipe's 64 KiB
			d.Write(line)
		}
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Write blocked on a stalled reader")
	}
	if d.Dropped() == 0 {
		t.Fatal("nothing dropped although the reader never read")
	}
	var buf bytes.Buffer
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); buf.ReadFrom(r) }()
	for deadline := time.Now().Add(5 * time.Second); len(d.ch) > 0 && time.Now().Before(deadline); {
		time.Sleep(time.Millisecond)
	}
	d.Write([]byte("last\n"))
	d.Close(5 * time.Second)
	w.Close()
	wg.Wait()
	out := buf.String()
	if !strings.Contains(out, `"dropped_lines":`) || !strings.HasSuffix(out, "last\n") {
		t.Errorf("the drop count or the last line is missing: ...%q", out[max(0, len(out)-300):])
	}
}
