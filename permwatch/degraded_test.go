package permwatch

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/fsnotify/fsnotify"

	"github.com/hermes-s6/hermes-s6/perms"
)

// TestDegraded: when inotify cannot be used (watch limit: ENOSPC from
// inotify_add_watch; instance limit: EMFILE from inotify_init1), Run logs
// one error naming the /proc/sys/fs/inotify limit and the fix, and keeps
// working by periodic full passes: a service registered while degraded
// becomes usable by the user, with a real s6-svscan. The limits are
// simulated through the seams newWatcher/addWatchFn (the machine-wide
// sysctls are shared with tests running concurrently).
func TestDegraded(t *testing.T) {
	cases := []struct {
		name  string
		limit string
		fail  func(t *testing.T)
	}{
		{"watch limit ENOSPC", "max_user_watches", func(t *testing.T) {
			orig := addWatchFn
			t.Cleanup(func() { addWatchFn = orig })
			addWatchFn = func(_ *fsnotify.Watcher, p string) error { return fmt.Errorf("%q: %w", p, syscall.ENOSPC) }
		}},
		{"instance limit EMFILE", "max_user_instances", func(t *testing.T) {
			orig := newWatcher
			t.Cleanup(func() { newWatcher = orig })
			newWatcher = func() (*fsnotify.Watcher, error) {
				return nil, os.NewSyscallError("inotify_init1", syscall.EMFILE)
			}
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			f.register0("pre")
			f.startSvscan()
			f.handOver()
			f.waitFor(10*time.Second, "pre supervised", func() (bool, string) {
				_, err := os.Lstat(filepath.Join(f.scandir, "pre/log/supervise/control"))
				_, err2 := os.Lstat(filepath.Join(f.scandir, "pre/supervise/control"))
				return err == nil && err2 == nil, fmt.Sprint(err, err2)
			})
			tc.fail(t)
			f.startWatcher(perms.PolicyOwner, func(c *Config) {
				c.Resync = 0 // only degraded mode may find the late service
				c.DegradedInterval = 200 * time.Millisecond
			})
			if ok, detail := f.usable(f.svc("pre", "pre/log")...); !ok {
				t.Fatalf("pre not usable right after the first pass: %s", detail)
			}
			f.register("late")
			f.waitFor(20*time.Second, "late (registered while degraded) usable by the user", func() (bool, string) {
				return f.usable(f.svc("late", "late/log")...)
			})
			f.exercise(filepath.Join(f.scandir, "late"))

			var errLines []string
			for _, l := range strings.Split(f.logBuf.String(), "\n") {
				if strings.Contains(l, `"level":"error"`) {
					errLines = append(errLines, l)
				}
			}
			if len(errLines) != 1 {
				t.Fatalf("%d error lines, want exactly one:\n%s", len(errLines), strings.Join(errLines, "\n"))
			}
			for _, want := range []string{"/proc/sys/fs/inotify/" + tc.limit, "sysctl -w fs.inotify." + tc.limit + "=", "full pass every 200ms", "degraded mode"} {
				if !strings.Contains(errLines[0], want) {
					t.Errorf("the error does not say %q:\n%s", want, errLines[0])
				}
			}
			t.Logf("the one error: %s", errLines[0])
		})
	}
}

// TestNotifyFD runs the built binary with --notify-fd 3 on a real fd (an
// ExtraFiles pipe): the newline arrives only once the first full pass is
// done (a service that existed at start is already usable when it
// arrives), then the fd is closed while perm-watcher keeps running, and
// SIGTERM ends it at once with exit 0.
func TestNotifyFD(t *testing.T) {
	f := newFixture(t)
	f.register0("pre")
	f.startSvscan()
	f.handOver()
	f.waitFor(10*time.Second, "pre supervised", func() (bool, string) {
		_, err := os.Lstat(filepath.Join(f.scandir, "pre/log/supervise/control"))
		_, err2 := os.Lstat(filepath.Join(f.scandir, "pre/supervise/control"))
		return err == nil && err2 == nil, fmt.Sprint(err, err2)
	})
	if ok, _ := f.usable(f.svc("pre")...); ok {
		t.Fatal("pre is usable before perm-watcher ran: the test proves nothing")
	}
	// Many more services laid out as s6-supervise makes them (no
	// supervisors: cheap), so that the first pass takes long enough for an
	// early newline to be caught.
	for i := 0; i < 300; i++ {
		rootSupervised(t, filepath.Join(f.scandir, fmt.Sprintf("many-%03d", i)))
	}
	bin := buildBinary(t)

	r, w, err := os.Pipe()
	must(t, err)
	defer r.Close()
	logPath := filepath.Join(f.root, "perm-watcher.log")
	logf, err := os.Create(logPath)
	must(t, err)
	defer logf.Close()
	cmd := exec.Command(bin, "--scandir", f.scandir, "--notify-fd", "3", "--log-level", "debug")
	cmd.ExtraFiles = []*os.File{w} // fd 3 in the child
	cmd.Stdout, cmd.Stderr = logf, logf
	must(t, cmd.Start())
	w.Close() // the child's fd 3 is now the only writer
	var waitErr error
	done := make(chan struct{}) // closed once reaped; waitErr is set then
	go func() { waitErr = cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			_ = cmd.Process.Kill()
			select {
			case <-done:
			case <-time.After(5 * time.Second):
				t.Logf("perm-watcher (pid %d) not reaped 5s after SIGKILL", cmd.Process.Pid)
			}
		}
		if t.Failed() {
			b, _ := os.ReadFile(logPath)
			t.Logf("perm-watcher output:\n%s", b)
		}
	})

	must(t, r.SetReadDeadline(time.Now().Add(30*time.Second)))
	buf := make([]byte, 16)
	n, err := r.Read(buf)
	if err != nil || string(buf[:n]) != "\n" {
		t.Fatalf("readiness: read %q, %v; want one newline", buf[:n], err)
	}
	// Checked at once: the first full pass must be done by now. The layout
	// services are checked in the reverse of the scandir's readdir order,
	// the order the pass walks it, so the last one handled comes first.
	d, err := os.Open(f.scandir)
	must(t, err)
	names, err := d.Readdirnames(-1)
	d.Close()
	must(t, err)
	for i := len(names) - 1; i >= 0; i-- {
		if !strings.HasPrefix(names[i], "many-") {
			continue
		}
		var st syscall.Stat_t
		must(t, syscall.Lstat(filepath.Join(f.scandir, names[i], "supervise/control"), &st))
		if int(st.Uid) != f.uid {
			t.Fatalf("readiness arrived before %s/supervise/control was handed over (uid %d)", names[i], st.Uid)
		}
	}
	// (Not the log: its per-service lines are rate-limited, so 300
	// services' hand-overs are partly counted in a summary instead.)
	if ok, detail := f.usable(f.svc("pre", "pre/log")...); !ok {
		t.Fatalf("readiness arrived before pre was fixed: %s", detail)
	}
	// Then the fd is closed (EOF: no writer left), nothing more written.
	n, err = r.Read(buf)
	if !errors.Is(err, io.EOF) {
		t.Fatalf("after the newline: read %q, %v; want EOF (fd closed)", buf[:n], err)
	}
	select {
	case <-done:
		t.Fatalf("perm-watcher exited after signalling readiness: %v", waitErr)
	default:
	}
	// It keeps working after readiness.
	f.register("gw")
	f.waitFor(20*time.Second, "gw usable", func() (bool, string) { return f.usable(f.svc("gw", "gw/log")...) })

	start := time.Now()
	must(t, cmd.Process.Signal(syscall.SIGTERM))
	select {
	case <-done:
		if waitErr != nil {
			t.Errorf("after SIGTERM: %v, want exit 0", waitErr)
		}
		t.Logf("exited %v after SIGTERM", time.Since(start))
	case <-time.After(2 * time.Second):
		t.Fatal("still running 2s after SIGTERM")
	}
}
