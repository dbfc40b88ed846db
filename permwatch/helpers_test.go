package permwatch

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
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

// startSvscan runs s6-svscan as root on the scandir; its teardown (which
// cannot hang) kills whatever is left below the fixture's root.
func (f *fixture) startSvscan() {
	f.t.Helper()
	f.svscan = testenv.StartSvscan(f.t, f.scandir, testenv.Svscan{Args: []string{"-c", "4096"}, Root: f.root})
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
