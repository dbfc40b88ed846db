package permwatch

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hermes-s6/hermes-s6/internal/testenv"
)

// cpuTicks is utime+stime of pid, in clock ticks (/proc/<pid>/stat fields
// 14 and 15, counted after the parenthesised comm).
func cpuTicks(t *testing.T, pid int) int {
	t.Helper()
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	must(t, err)
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	u, _ := strconv.Atoi(f[11])
	k, _ := strconv.Atoi(f[12])
	return u + k
}

// TestRunAsUser: in a container started as the user itself (docker run -u
// hermes), perm-watcher runs as that user. It must not crash-loop (s6-rc
// waits for its readiness and s6-overlay holds the CMD back until then): it
// signals readiness, stays up using no CPU, and exits 0 at once on SIGTERM.
// Any other non-root UID is refused with exit 100.
func TestRunAsUser(t *testing.T) {
	uid, gid := testenv.EnsureUser(t)
	bin := buildBinary(t)
	// As under -u hermes: s6-svscan made the scandir and .s6-svscan as the user.
	scandir := testenv.TempDir(t)
	must(t, os.Mkdir(filepath.Join(scandir, ".s6-svscan"), 0o755))
	must(t, os.Chown(scandir, uid, gid))
	must(t, os.Chown(filepath.Join(scandir, ".s6-svscan"), uid, gid))
	// As in an open-mode root container after reconcile-profiles: the
	// scandir is the user's, .s6-svscan stays root's (s6-svscan is root).
	rootScandir := testenv.TempDir(t)
	must(t, os.Mkdir(filepath.Join(rootScandir, ".s6-svscan"), 0o755))
	must(t, os.Chown(rootScandir, uid, gid))

	t.Run("as the user: ready, idle, SIGTERM", func(t *testing.T) {
		r, w, err := os.Pipe()
		must(t, err)
		defer r.Close()
		var stderr bytes.Buffer
		cmd := testenv.AsUser(exec.Command(bin, "--scandir", scandir, "--notify-fd", "3"), uid, gid)
		cmd.ExtraFiles = []*os.File{w}
		cmd.Stderr = &stderr
		must(t, cmd.Start())
		w.Close()
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		defer func() { _ = cmd.Process.Kill() }()

		must(t, r.SetReadDeadline(time.Now().Add(10*time.Second)))
		buf := make([]byte, 4)
		n, err := r.Read(buf)
		if err != nil || string(buf[:n]) != "\n" {
			t.Fatalf("readiness: read %q, %v; want a newline\n%s", buf[:n], err, &stderr)
		}
		before := cpuTicks(t, cmd.Process.Pid)
		time.Sleep(1500 * time.Millisecond)
		select {
		case err := <-done:
			t.Fatalf("exited while it should idle: %v\n%s", err, &stderr)
		default:
		}
		if after := cpuTicks(t, cmd.Process.Pid); after != before {
			t.Errorf("used %d CPU ticks while idle, want 0", after-before)
		}
		must(t, cmd.Process.Signal(syscall.SIGTERM))
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("after SIGTERM: %v, want exit 0", err)
			}
		case <-time.After(2 * time.Second):
			t.Fatal("still running 2s after SIGTERM")
		}
		if !strings.Contains(stderr.String(), `"reason":"running-as-user"`) || strings.Count(stderr.String(), "running-as-user") != 1 {
			t.Errorf("want one running-as-user line, got:\n%s", &stderr)
		}
	})

	t.Run("as the user with --once: exit 0", func(t *testing.T) {
		out, err := testenv.AsUser(exec.Command(bin, "--scandir", scandir, "--once"), uid, gid).CombinedOutput()
		if err != nil {
			t.Fatalf("--once as the user: %v\n%s", err, out)
		}
	})

	t.Run("as the user, s6-svscan is root's: exit 100", func(t *testing.T) {
		out, err := testenv.AsUser(exec.Command(bin, "--scandir", rootScandir, "--once"), uid, gid).CombinedOutput()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 100 || !strings.Contains(string(out), "must run as root: s6-svscan runs as uid 0") {
			t.Fatalf("as the user beside a root s6-svscan: %v, want exit 100 and why\n%s", err, out)
		}
	})

	t.Run("another non-root uid: exit 100", func(t *testing.T) {
		out, err := testenv.AsUser(exec.Command(bin, "--scandir", scandir), uid+1, gid+1).CombinedOutput()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 100 {
			t.Fatalf("as uid %d: %v, want exit 100\n%s", uid+1, err, out)
		}
		for _, want := range []string{"must run as root", "--user hermes itself", "euid is " + strconv.Itoa(uid+1)} {
			if !strings.Contains(string(out), want) {
				t.Errorf("output lacks %q:\n%s", want, out)
			}
		}
	})
}
