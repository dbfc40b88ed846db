package follow

import (
	"context"
	"fmt"
	"io"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/hermes-s6/hermes-s6/reconcile"
	"github.com/hermes-s6/hermes-s6/slot"
)

// rootSink is the boot pass's reconcile.Sink in the reader: the same pass
// as open mode's (decisions, legacy migration, stale files, boot log), but
// its slots become the first snapshot sent to root, and Commit waits for
// root's "done 1" so that the boot log's profile=default line still means
// "the slots are there".
type rootSink struct {
	scandir string
	out     io.Writer
	answers <-chan string
	timeout time.Duration
	max     int

	mu   sync.Mutex
	snap Snapshot
	sent string // the encoded snapshot, for the follow loop's dedup
}

var _ reconcile.Sink = (*rootSink)(nil)

func (s *rootSink) Publish(spec slot.Spec) (slot.Result, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if spec.Name != "default" && len(s.snap) >= s.max-1 {
		return slot.Result{}, fmt.Errorf("sealed mode: more than %d named profiles; %s gets no slot (raise --max-profiles)", s.max-1, spec.Name)
	}
	s.snap = append(s.snap, Record{Name: spec.Name, Autostart: !spec.Down})
	return slot.Result{Path: filepath.Join(s.scandir, slot.DirName(spec.Name)), Created: true}, nil
}

// Close implements reconcile.Sink: nothing is kept anywhere.
func (s *rootSink) Close() error { return nil }

func (s *rootSink) Commit(ctx context.Context) (map[string]string, error) {
	s.mu.Lock()
	snap := append(Snapshot(nil), s.snap...)
	s.mu.Unlock()
	sort.Slice(snap, func(i, j int) bool { return snap[i].Name < snap[j].Name })
	var b strings.Builder
	if err := Encode(&b, snap); err != nil {
		return nil, err
	}
	s.sent = b.String()
	if _, err := io.WriteString(s.out, s.sent); err != nil {
		return nil, fmt.Errorf("sending the boot snapshot to root: %w", err)
	}
	failed := map[string]string{}
	timer := time.NewTimer(s.timeout)
	defer timer.Stop()
	for {
		select {
		case a, ok := <-s.answers:
			if !ok {
				return failed, fmt.Errorf("root closed the answer pipe before applying the boot snapshot")
			}
			if name, isFail := strings.CutPrefix(a, "fail "); isFail {
				failed[name] = reconcile.ReasonPublishFailed
			}
			if a == "done 1" {
				return failed, nil
			}
		case <-timer.C:
			return failed, fmt.Errorf("root did not apply the boot snapshot within %s", s.timeout)
		case <-ctx.Done():
			return failed, ctx.Err()
		}
	}
}
