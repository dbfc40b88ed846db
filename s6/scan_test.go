package s6

import (
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hermes-s6/hermes-s6/internal/testenv"
)

// fifoDir makes scandir/.s6-svscan/control and opens its read end
// (non-blocking: the test decides when to read).
func fifoDir(t *testing.T) (string, *os.File) {
	t.Helper()
	dir := t.TempDir()
	if err := os.Mkdir(filepath.Join(dir, ControlDir), 0o755); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, ControlFIFO)
	if err := syscall.Mkfifo(p, 0o600); err != nil {
		t.Fatal(err)
	}
	r, err := os.OpenFile(p, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return dir, r
}

// A reader that reads, one byte at a time as s6-svscan does, lets Scan
// finish; Scan sent "a" then two "z".
func TestScanReadsBack(t *testing.T) {
	dir, r := fifoDir(t)
	got := make(chan string, 1)
	go func() {
		var all []byte
		buf := make([]byte, 1)
		for deadline := time.Now().Add(5 * time.Second); len(all) < 3 && time.Now().Before(deadline); {
			if n, _ := r.Read(buf); n == 1 {
				all = append(all, buf[0])
				continue
			}
			time.Sleep(time.Millisecond)
		}
		got <- string(all)
	}()
	if err := Scan(dir, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	if s := <-got; s != "azz" {
		t.Fatalf("s6-svscan read %q, want \"azz\"", s)
	}
}

// An s6-svscan that does not read (busy, stopped) makes Scan fail with
// ErrScanTimeout, naming the FIFO, instead of hanging.
func TestScanTimeout(t *testing.T) {
	dir, _ := fifoDir(t)
	start := time.Now()
	err := Scan(dir, 50*time.Millisecond)
	if !errors.Is(err, ErrScanTimeout) || !strings.Contains(err.Error(), ControlFIFO) {
		t.Fatalf("err = %v, want ErrScanTimeout naming %s", err, ControlFIFO)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("Scan gave up after %v, timeout 50ms", d)
	}
}

func TestScanNotRunning(t *testing.T) {
	if err := Scan(t.TempDir(), time.Second); !errors.Is(err, ErrNotRunning) {
		t.Fatalf("err = %v, want ErrNotRunning", err)
	}
}

// TestScanWaitsForTheScan, on a real s6-svscan: when Scan returns, the
// scan it asked for is over: s6-svscan has forked a supervisor for every
// new service directory (300 of them: a scan that long is tens of
// milliseconds, where Rescan returns at once).
func TestScanWaitsForTheScan(t *testing.T) {
	testenv.RequireRoot(t)
	scandir := testenv.TempDir(t)
	testenv.DumpTreeOnFailure(t, scandir)
	svscan := testenv.StartSvscan(t, scandir, testenv.Svscan{Args: []string{"-c", "4096"}})
	const n = 300
	for i := 0; i < n; i++ {
		d := filepath.Join(scandir, "svc"+strconv.Itoa(i))
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
		// down: s6-supervise starts nothing; only its fork counts here.
		for name, body := range map[string]string{"run": "#!/bin/sh\nexec sleep 1000\n", "down": ""} {
			if err := os.WriteFile(filepath.Join(d, name), []byte(body), 0o755); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := Scan(scandir, 30*time.Second); err != nil {
		t.Fatal(err)
	}
	if got := children(t, svscan.Process.Pid); got < n {
		t.Fatalf("Scan returned with %d children of s6-svscan, want at least %d: the scan was not over", got, n)
	}
}

// children counts the processes whose parent is pid.
func children(t *testing.T, pid int) int {
	t.Helper()
	ents, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, e := range ents {
		if _, err := strconv.Atoi(e.Name()); err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...: comm may hold spaces, not ')'.
		s := string(b)
		f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
		if len(f) > 1 && f[1] == strconv.Itoa(pid) {
			n++
		}
	}
	return n
}
