package follow

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/hermes-s6/hermes-s6/bootlog"
	"github.com/hermes-s6/hermes-s6/internal/testenv"
	"github.com/hermes-s6/hermes-s6/slot"
)

// TestReaderRefusesTooLongNamesOnce: on a scandir whose names stop at 243
// bytes (s6-svscan 2.13+, or a 251-byte filesystem), a profile of 245
// bytes created at run time gets no record, one log line naming the limit
// and one boot-log skipped entry, however many snapshots follow; the other
// profiles are not held up.
func TestReaderRefusesTooLongNamesOnce(t *testing.T) {
	home := t.TempDir()
	long := strings.Repeat("l", 245)
	mk := func(name string) {
		t.Helper()
		if err := os.MkdirAll(filepath.Join(home, "profiles", name), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(home, "profiles", name, "SOUL.md"), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	var logs, out testenv.Buffer
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- Reader(ctx, ReaderConfig{HermesHome: home, Out: &out, Log: zerolog.New(&logs),
			NameLimit: slot.NameLimit{FS: 255, Svscan: slot.SvscanNameMax}, Reported: map[string]bool{}})
	}()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Reader: %v", err)
		}
	}()
	wait := func(what string, cond func() bool) {
		t.Helper()
		for i := 0; i < 200 && !cond(); i++ {
			time.Sleep(25 * time.Millisecond)
		}
		if !cond() {
			t.Fatalf("%s; snapshots:\n%s\nlogs:\n%s", what, out.String(), logs.String())
		}
	}
	mk(long)
	mk("alpha")
	wait("alpha published", func() bool { return strings.Contains(out.String(), "p alpha 0\n") })
	mk("beta") // another snapshot: the long name is not reported again
	wait("beta published", func() bool { return strings.Contains(out.String(), "p beta 0\n") })
	if strings.Contains(out.String(), long) {
		t.Errorf("the %d-byte name was sent to root", len(long))
	}
	if n := strings.Count(logs.String(), `"reason":"name-too-long"`); n != 1 {
		t.Errorf("%d name-too-long lines, want 1:\n%s", n, logs.String())
	}
	if !strings.Contains(logs.String(), "at most 243 bytes") {
		t.Errorf("the log line does not name the limit:\n%s", logs.String())
	}
	data, err := os.ReadFile(filepath.Join(home, bootlog.File))
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(string(data), "profile="+long+" "); n != 1 || !strings.Contains(string(data), "action=skipped") ||
		!strings.Contains(string(data), "reason=name-too-long") {
		t.Errorf("boot log (want one skipped name-too-long entry):\n%s", data)
	}
}
