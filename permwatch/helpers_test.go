package permwatch

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/hermes-s6/hermes-s6/internal/testenv"
	"github.com/hermes-s6/hermes-s6/perms"
)

// fixture is a temporary scandir with a real s6-svscan on it.
type fixture struct {
	t        *testing.T
	root     string // world-traversable temp dir
	scandir  string
	uid, gid int
	svscan   *exec.Cmd
	logBuf   *syncBuffer
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// newFixture makes <tmp>/scandir (root's, 0755, with .s6-svscan 0755 as
// s6-linux-init makes it) without starting s6-svscan.
func newFixture(t *testing.T) *fixture {
	t.Helper()
	testenv.RequireRoot(t)
	testenv.RequireS6(t)
	uid, gid := testenv.EnsureUser(t)
	root := testenv.TempDir(t)
	f := &fixture{t: t, root: root, scandir: filepath.Join(root, "scandir"), uid: uid, gid: gid, logBuf: &syncBuffer{}}
	must(t, os.Mkdir(f.scandir, 0o755))
	must(t, os.Mkdir(filepath.Join(f.scandir, ".s6-svscan"), 0o755))
	testenv.DumpTreeOnFailure(t, f.scandir)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("perm-watcher log:\n%s", f.logBuf.String())
		}
	})
	return f
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// startSvscan runs s6-svscan as root on the scandir and registers its
// shutdown (s6-svscanctl -t, then a kill) even when the test fails.
//
// Its stdout and stderr are nil (/dev/null), never an io.Writer: with a
// Writer, os/exec copies through a pipe and cmd.Wait blocks until every
// descendant (s6-supervise, the services it runs in their own sessions)
// has closed it. Every wait in the cleanup is bounded, and only our own
// process group and the processes whose cwd is below our temp root are
// killed.
func (f *fixture) startSvscan() {
	t := f.t
	t.Helper()
	cmd := exec.Command("s6-svscan", "-c", "4096", f.scandir)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Stdout, cmd.Stderr = nil, nil
	must(t, cmd.Start())
	f.svscan = cmd
	pid := cmd.Process.Pid
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_ = exec.CommandContext(ctx, "s6-svscanctl", "-t", f.scandir).Run()
		cancel()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			// Our own process group only (Setpgid above): s6-svscan and
			// the s6-supervise processes it forked.
			_ = syscall.Kill(-pid, syscall.SIGKILL)
			select {
			case <-done:
			case <-time.After(5 * time.Second):
				t.Logf("s6-svscan (pid %d) still not reaped 5s after SIGKILL; going on", pid)
			}
		}
		// Supervisors and services that outlived s6-svscan (services run
		// in their own sessions): kill what still runs below our root.
		if left := killBelow(f.root, 5*time.Second); len(left) > 0 {
			t.Logf("processes below %s still alive after SIGKILL: %v", f.root, left)
		}
	})
	f.waitFor(5*time.Second, "s6-svscan control FIFO", func() (bool, string) {
		_, err := os.Lstat(filepath.Join(f.scandir, ".s6-svscan/control"))
		return err == nil, fmt.Sprint(err)
	})
}

// pidsBelow lists the processes whose cwd is below dir: s6-supervise and
// the services it runs for our temp scandir, nobody else's.
func pidsBelow(dir string) []int {
	var pids []int
	procs, _ := filepath.Glob("/proc/[0-9]*")
	for _, p := range procs {
		cwd, err := os.Readlink(p + "/cwd")
		if err != nil || !strings.HasPrefix(cwd, dir+"/") {
			continue
		}
		if pid, err := strconv.Atoi(filepath.Base(p)); err == nil {
			pids = append(pids, pid)
		}
	}
	return pids
}

// killBelow SIGKILLs the processes below dir until none is left or d has
// passed, and returns those still there, so a failed test leaves nothing
// behind and a cleanup never blocks for long.
func killBelow(dir string, d time.Duration) []int {
	deadline := time.Now().Add(d)
	for {
		pids := pidsBelow(dir)
		if len(pids) == 0 || time.Now().After(deadline) {
			return pids
		}
		for _, pid := range pids {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// handOver gives the scandir and .s6-svscan/control to the user, as
// reconcile-profiles does at boot.
func (f *fixture) handOver() {
	f.t.Helper()
	f.waitFor(5*time.Second, ".s6-svscan/lock", func() (bool, string) {
		_, err := os.Lstat(filepath.Join(f.scandir, ".s6-svscan/lock"))
		return err == nil, fmt.Sprint(err)
	})
	if _, err := perms.HandOverScandir(f.scandir, perms.Owner{UID: f.uid, GID: f.gid}); err != nil {
		f.t.Fatal(err)
	}
}

// startWatcher runs Run in-process; it returns a stop function that
// cancels it and checks it ended at once.
func (f *fixture) startWatcher(pol perms.Policy, mod ...func(*Config)) (stop func()) {
	t := f.t
	t.Helper()
	ready := make(chan struct{})
	log := zerolog.New(f.logBuf).Level(zerolog.DebugLevel).With().Timestamp().Logger()
	cfg := Config{
		Scandir: f.scandir,
		User:    testenv.TestUser,
		Policy:  pol,
		Exclude: DefaultExcludes,
		Resync:  time.Minute,
		Ready:   func() { close(ready) },
		Log:     log,
	}
	for _, m := range mod {
		m(&cfg)
	}
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- Run(ctx, cfg) }()
	select {
	case <-ready:
	case err := <-errc:
		cancel()
		t.Fatalf("Run ended before ready: %v", err)
	case <-time.After(20 * time.Second):
		cancel()
		t.Fatal("perm-watcher not ready after 20s")
	}
	stopped := false
	stop = func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		select {
		case err := <-errc:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(time.Second):
			t.Errorf("Run did not return within 1s of cancellation")
		}
	}
	t.Cleanup(stop)
	return stop
}

// waitFor polls cond until it holds or the deadline passes.
func (f *fixture) waitFor(d time.Duration, what string, cond func() (bool, string)) {
	f.t.Helper()
	deadline := time.Now().Add(d)
	delay := time.Millisecond
	for {
		ok, detail := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			f.t.Fatalf("timed out after %v waiting for %s: %s", d, what, detail)
		}
		time.Sleep(delay)
		if delay < 50*time.Millisecond {
			delay *= 2
		}
	}
}

// asUser runs a shell script as the test user and returns its output.
func (f *fixture) asUser(script string, args ...string) (string, error) {
	cmd := exec.Command("/bin/sh", append([]string{"-c", script, "sh"}, args...)...)
	cmd.Dir = "/"
	cmd.Env = []string{"PATH=/usr/bin:/bin:/usr/sbin:/sbin", "HOME=/nonexistent"}
	testenv.AsUser(cmd, f.uid, f.gid)
	cmd.WaitDelay = 30 * time.Second // never wait forever on a pipe a straggler holds
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// registerScript stages slots as the hermes CLI does: build .<name>.tmp,
// rename it into place; then s6-svscanctl -a. Arguments: scandir, names...
const registerScript = `set -e
sd=$1; shift
for n in "$@"; do
  tmp="$sd/.$n.tmp"
  mkdir "$tmp" "$tmp/log"
  printf '#!/bin/sh\nexec sleep 100000\n' > "$tmp/run"
  printf '#!/bin/sh\nexec cat >/dev/null\n' > "$tmp/log/run"
  chmod 0755 "$tmp/run" "$tmp/log/run"
  mv "$tmp" "$sd/$n"
done
s6-svscanctl -a "$sd"
`

func (f *fixture) register(names ...string) {
	f.t.Helper()
	if out, err := f.asUser(registerScript, append([]string{f.scandir}, names...)...); err != nil {
		f.t.Fatalf("registering %v as the user: %v\n%s", names, err, out)
	}
}

// usableScript succeeds iff the user can read the status of, control and
// wait on every service dir given (without changing their state).
const usableScript = `for d in "$@"; do
  s6-svstat "$d" >/dev/null || exit 1
  s6-svc -u "$d" || exit 1
  [ -w "$d/event" ] && [ -x "$d/event" ] || { echo "$d/event not wx"; exit 1; }
done
`

func (f *fixture) usable(dirs ...string) (bool, string) {
	out, err := f.asUser(usableScript, dirs...)
	return err == nil, fmt.Sprintf("%v: %s", err, out)
}

// exercise runs the whole user-side sequence on a service dir: down, wait
// down, up, wait up, restart, status.
const exerciseScript = `set -ex
d=$1
s6-svc -d "$d"
s6-svwait -t 10000 -D "$d"
s6-svstat "$d" | grep -q '^down'
s6-svc -u "$d"
s6-svwait -t 10000 -u "$d"
s6-svstat "$d" | grep -q '^up'
s6-svc -t "$d"
s6-svstat "$d" >/dev/null
`

func (f *fixture) exercise(dir string) {
	f.t.Helper()
	if out, err := f.asUser(exerciseScript, dir); err != nil {
		f.t.Errorf("as the user, on %s: %v\n%s", dir, err, out)
	}
}

func (f *fixture) svc(names ...string) []string {
	var dirs []string
	for _, n := range names {
		dirs = append(dirs, filepath.Join(f.scandir, n))
	}
	return dirs
}

var (
	binOnce sync.Once
	binPath string
	binErr  error
)

// buildBinary builds cmd/perm-watcher once per test binary run into a
// world-readable place.
func buildBinary(t *testing.T) string {
	t.Helper()
	binOnce.Do(func() {
		dir, err := os.MkdirTemp("", "perm-watcher-bin-")
		if err != nil {
			binErr = err
			return
		}
		os.Chmod(dir, 0o755)
		binPath = filepath.Join(dir, "perm-watcher")
		out, err := exec.Command("go", "build", "-o", binPath, "github.com/hermes-s6/hermes-s6/cmd/perm-watcher").CombinedOutput()
		if err != nil {
			binErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if binErr != nil {
		t.Fatal(binErr)
	}
	return binPath
}

// runBin runs the binary (as the test user when asUser) and returns its
// exit code and combined output.
func runBin(t *testing.T, bin string, asUser bool, args ...string) (int, string) {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Dir = "/"
	if asUser {
		testenv.AsUser(cmd, testenv.TestUID, testenv.TestUID)
	}
	cmd.WaitDelay = 30 * time.Second
	out, err := cmd.CombinedOutput()
	if err != nil {
		if ee, ok := err.(*exec.ExitError); ok {
			return ee.ExitCode(), string(out)
		}
		t.Fatalf("%s %v: %v", bin, args, err)
	}
	return 0, string(out)
}

func t0ctx() context.Context { return context.Background() }
