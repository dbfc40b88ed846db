package main

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hermes-s6/hermes-s6/internal/testenv"
	"github.com/hermes-s6/hermes-s6/slot"
)

// Only usage paths run in-process: a valid run as root would drop this
// test process's privileges for good.
func TestUsage(t *testing.T) {
	for _, tt := range []struct {
		args []string
		code int
		out  string // expected in stdout (code 0) or stderr
	}{
		{[]string{"--help"}, 0, "Exit codes:"},
		{[]string{"-h"}, 0, "--dry-run"},
		{[]string{"--version"}, 0, "reconcile-profiles "},
		{[]string{"--no-such-flag"}, 100, "flag provided but not defined"},
		{[]string{"extra"}, 100, "unexpected arguments"},
		{[]string{"--log-format", "xml"}, 100, "unknown log format"},
		{[]string{"--log-level", "loud"}, 100, "unknown log level"},
		{[]string{"--hermes-home", "relative"}, 100, "absolute path"},
		{[]string{"--user", "a b"}, 100, "--user"},
		{[]string{"--command-dir", "/has space"}, 100, "--command-dir"},
	} {
		var stdout, stderr bytes.Buffer
		code := run(tt.args, &stdout, &stderr)
		got := stdout.String()
		if code != 0 {
			got = stderr.String()
		}
		if code != tt.code || !strings.Contains(got, tt.out) {
			t.Errorf("%q: exit %d (want %d), output %q lacks %q", tt.args, code, tt.code, got, tt.out)
		}
	}
	var stdout bytes.Buffer
	run([]string{"--help"}, &stdout, &bytes.Buffer{})
	for _, flag := range []string{"hermes-home", "scandir", "user", "command-dir", "gateway-home", "proc", "s6-basedir",
		"dry-run", "workers", "log-format", "log-level", "version", "100", "111"} {
		if !strings.Contains(stdout.String(), flag) {
			t.Errorf("--help does not document %s", flag)
		}
	}
}

var (
	buildOnce sync.Once
	builtBin  string
	buildErr  error
	buildDir  string
)

// buildBinary builds reconcile-profiles once per test binary, into a
// directory the test user can reach.
func buildBinary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		if buildDir, buildErr = os.MkdirTemp("", "reconcile-profiles-bin-"); buildErr != nil {
			return
		}
		os.Chmod(buildDir, 0o755)
		builtBin = filepath.Join(buildDir, "reconcile-profiles")
		out, err := exec.Command("go", "build", "-o", builtBin, ".").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return builtBin
}

func TestMain(m *testing.M) {
	code := m.Run()
	if buildDir != "" {
		os.RemoveAll(buildDir)
	}
	os.Exit(code)
}

func writeFile(t *testing.T, path, data string, mode os.FileMode) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(data), mode); err != nil {
		t.Fatal(err)
	}
}

type env struct {
	base, home, scandir, cmdDir, fakeBin, proc, basedir, bin string
	uid, gid                                                 int
}

func newEnv(t *testing.T, comm string) *env {
	t.Helper()
	testenv.RequireRoot(t)
	s6dir := testenv.RequireS6(t)
	uid, gid := testenv.EnsureUser(t)
	base := testenv.TempDir(t)
	testenv.DumpTreeOnFailure(t, base)
	e := &env{base: base, uid: uid, gid: gid,
		home: filepath.Join(base, "home"), scandir: filepath.Join(base, "service"),
		cmdDir: filepath.Join(base, "command"), fakeBin: filepath.Join(base, "bin"),
		proc: filepath.Join(base, "proc"), basedir: filepath.Join(base, "s6", "basedir")}
	e.bin = buildBinary(t)
	// s6-overlay's programs: with-contenv keeps the environment it got.
	writeFile(t, filepath.Join(e.cmdDir, "with-contenv"), "#!/bin/sh\nexec \"$@\"\n", 0o755)
	writeFile(t, filepath.Join(e.cmdDir, "s6-setuidgid"), "#!/bin/sh\nexec "+s6dir+"/s6-setuidgid \"$@\"\n", 0o755)
	writeFile(t, filepath.Join(e.cmdDir, "s6-log"), "#!/bin/sh\nexec "+s6dir+"/s6-log \"$@\"\n", 0o755)
	// Sealed slots' log/run is execline and drops with s6-applyuidgid:
	// the real programs, where s6-overlay has them.
	for _, prog := range slot.SealedLogPrograms {
		p := filepath.Join(s6dir, prog)
		if _, err := os.Stat(p); err != nil {
			p = filepath.Join("/usr/lib/execline/bin", prog)
		}
		if err := os.Symlink(p, filepath.Join(e.cmdDir, prog)); err != nil {
			t.Fatal(err)
		}
	}
	// A fake hermes that records who ran it, how, and sleeps until SIGTERM.
	// The record appears whole (written under a dot name, then renamed):
	// the test reads it as soon as it exists.
	writeFile(t, filepath.Join(e.fakeBin, "hermes"), `#!/bin/sh
echo "$(id -u) $* HOME=$HOME PWD=$(pwd) $HERMES_S6_SUPERVISED_CHILD$HERMES_SUPERVISED_CHILD" > "$HOME/.fake-hermes.$$"
mv "$HOME/.fake-hermes.$$" "$HOME/fake-hermes.$$"
echo "fake hermes $*"
trap 'kill $! 2>/dev/null; exit 0' TERM
sleep 1000 & wait $!
`, 0o755)
	// A fake /proc: PID 1 is s6-svscan (or not) and the container command
	// is the legacy supervised gateway.
	writeFile(t, filepath.Join(e.proc, "1", "comm"), comm+"\n", 0o644)
	writeFile(t, filepath.Join(e.proc, "1", "cmdline"), "/init\x00/opt/hermes/docker/main-wrapper.sh\x00hermes\x00gateway\x00run\x00", 0o644)
	os.MkdirAll(e.basedir, 0o755)
	// The scandir as s6-linux-init makes it: root's, .s6-svscan 0755.
	os.MkdirAll(filepath.Join(e.scandir, ".s6-svscan"), 0o755)
	os.Chmod(filepath.Join(e.scandir, ".s6-svscan"), 0o755)
	// HERMES_HOME: the user's volume.
	writeFile(t, filepath.Join(e.home, "profiles", "alpha", "SOUL.md"), "", 0o644)
	writeFile(t, filepath.Join(e.home, "profiles", "alpha", "gateway_state.json"), `{"gateway_state":"running"}`, 0o644)
	writeFile(t, filepath.Join(e.home, "profiles", "alpha", "gateway.pid"), "77", 0o644)
	writeFile(t, filepath.Join(e.home, "profiles", "beta", "SOUL.md"), "", 0o644)
	writeFile(t, filepath.Join(e.home, "profiles", "beta", "gateway_state.json"), `{"desired_state":"stopped","gateway_state":"running"}`, 0o644)
	writeFile(t, filepath.Join(e.home, "profiles", "Bad Name", "SOUL.md"), "", 0o644)
	writeFile(t, filepath.Join(e.home, "profiles", "locked", "SOUL.md"), "", 0o644)
	filepath.Walk(e.home, func(p string, _ os.FileInfo, _ error) error { return os.Lchown(p, uid, gid) })
	os.Chmod(filepath.Join(e.home, "profiles", "locked"), 0)
	return e
}

func (e *env) environ() []string {
	return []string{"PATH=" + e.fakeBin + ":/usr/bin:/bin", "HERMES_HOME=" + e.home}
}

func (e *env) reconcile(t *testing.T, extra ...string) (string, int) {
	t.Helper()
	args := append([]string{"--hermes-home", e.home, "--scandir", e.scandir, "--command-dir", e.cmdDir,
		"--gateway-home", e.home, "--proc", e.proc, "--s6-basedir", e.basedir}, extra...)
	cmd := exec.Command(e.bin, args...)
	cmd.Env = e.environ()
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	cmd.Stdout = &stderr
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return stderr.String(), code
}

func owner(t *testing.T, p string) int {
	t.Helper()
	var st syscall.Stat_t
	if err := syscall.Lstat(p, &st); err != nil {
		t.Fatalf("lstat %s: %v", p, err)
	}
	return int(st.Uid)
}

func waitFor(t *testing.T, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// startSvscan runs a real s6-svscan as root on the scandir; the services
// are brought down first when the test ends, failed or not, and nothing
// below the test's directory survives it.
func (e *env) startSvscan(t *testing.T) {
	t.Helper()
	testenv.StartSvscan(t, e.scandir, testenv.Svscan{Env: e.environ(), Args: []string{"-t0"}, Root: e.base})
	t.Cleanup(func() {
		// Registered after StartSvscan's teardown, so it runs first.
		ents, _ := os.ReadDir(e.scandir)
		for _, ent := range ents {
			if strings.HasPrefix(ent.Name(), "gateway-") {
				exec.Command("s6-svc", "-dx", filepath.Join(e.scandir, ent.Name())).Run()
				exec.Command("s6-svc", "-dx", filepath.Join(e.scandir, ent.Name(), "log")).Run()
			}
		}
	})
}

func svstat(t *testing.T, dir string) string {
	out, _ := exec.Command("s6-svstat", dir).CombinedOutput()
	return strings.TrimSpace(string(out))
}

func TestIntegrationRealS6(t *testing.T) {
	e := newEnv(t, "s6-svscan")
	e.startSvscan(t)
	if o := owner(t, filepath.Join(e.scandir, ".s6-svscan", "control")); o != 0 {
		t.Fatalf("fixture: control owned by %d before reconcile", o)
	}

	logs, code := e.reconcile(t)
	if code != 0 {
		t.Fatalf("reconcile exited %d:\n%s", code, logs)
	}
	t.Logf("reconcile logs:\n%s", logs)
	// The root part: exactly the scandir and s6-svscan's control and lock.
	for _, p := range []string{"", ".s6-svscan/control", ".s6-svscan/lock"} {
		if o := owner(t, filepath.Join(e.scandir, p)); o != e.uid {
			t.Errorf("%s owned by %d, want %d", p, o, e.uid)
		}
	}
	if o := owner(t, filepath.Join(e.scandir, ".s6-svscan")); o != 0 {
		t.Errorf(".s6-svscan owned by %d, want root", o)
	}
	// Everything else as the user.
	for _, p := range []string{"gateway-alpha", "gateway-alpha/run", "gateway-default/run", "gateway-beta/down"} {
		if o := owner(t, filepath.Join(e.scandir, p)); o != e.uid {
			t.Errorf("%s owned by %d", p, o)
		}
	}
	if _, err := os.Lstat(filepath.Join(e.scandir, "gateway-default", "down")); err == nil {
		t.Error("default is down despite the legacy migration")
	}
	if o := owner(t, filepath.Join(e.home, "gateway_state.json")); o != e.uid {
		t.Errorf("migrated state owned by %d", o)
	}
	if _, err := os.Lstat(filepath.Join(e.home, "profiles", "alpha", "gateway.pid")); !os.IsNotExist(err) {
		t.Error("stale gateway.pid not removed")
	}
	boot, err := os.ReadFile(filepath.Join(e.home, "logs", "container-boot.log"))
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(boot)), "\n")
	if len(lines) != 5 || !strings.Contains(lines[4], " profile=default prior_state=none action=started ") ||
		!strings.Contains(lines[3], "profile=locked prior_state=none action=skipped prior_exit=unknown reason=unreadable") {
		t.Fatalf("boot log:\n%s", boot)
	}
	if o := owner(t, filepath.Join(e.home, "logs", "container-boot.log")); o != e.uid {
		t.Errorf("boot log owned by %d", o)
	}
	if !strings.Contains(logs, "asked s6-svscan to rescan") {
		t.Error("no rescan logged")
	}

	// As the user: s6-svscanctl works now.
	if out, err := testenv.AsUser(exec.Command("s6-svscanctl", "-a", e.scandir), e.uid, e.gid).CombinedOutput(); err != nil {
		t.Fatalf("s6-svscanctl -a as %d: %v: %s", e.uid, err, out)
	}
	// Slots marked to start come up (checked as root: supervise/ is root's
	// 0700 until the perm-watcher runs, which this test does not use).
	for _, name := range []string{"gateway-alpha", "gateway-default"} {
		dir := filepath.Join(e.scandir, name)
		waitFor(t, name+" up", 10*time.Second, func() bool { return strings.HasPrefix(svstat(t, dir), "up ") })
	}
	beta := filepath.Join(e.scandir, "gateway-beta")
	waitFor(t, "gateway-beta supervised", 10*time.Second, func() bool { return strings.HasPrefix(svstat(t, beta), "down") })
	// The fake gateways ran as the user, with the right arguments.
	waitFor(t, "fake hermes records", 5*time.Second, func() bool {
		m, _ := filepath.Glob(filepath.Join(e.home, "fake-hermes.*"))
		return len(m) == 2
	})
	m, _ := filepath.Glob(filepath.Join(e.home, "fake-hermes.*"))
	var records []string
	for _, p := range m {
		b, _ := os.ReadFile(p)
		records = append(records, strings.TrimSpace(string(b)))
	}
	joined := strings.Join(records, "\n")
	for _, want := range []string{
		"10000 -p alpha gateway run --replace HOME=" + e.home + " PWD=" + e.home + " 11",
		"10000 gateway run --replace HOME=" + e.home + " PWD=" + e.home + " 11",
	} {
		if !strings.Contains(joined, want) {
			t.Errorf("fake hermes records lack %q:\n%s", want, joined)
		}
	}
	// The loggers made their directories as the user.
	waitFor(t, "alpha's log directory", 5*time.Second, func() bool {
		_, err := os.Stat(filepath.Join(e.home, "logs", "gateways", "alpha", "current"))
		return err == nil
	})
	if o := owner(t, filepath.Join(e.home, "logs", "gateways", "alpha")); o != e.uid {
		t.Errorf("log dir owned by %d", o)
	}

	// A second boot-time run with everything live: nothing torn down.
	pidBefore := svstat(t, filepath.Join(e.scandir, "gateway-alpha"))
	if logs, code := e.reconcile(t); code != 0 {
		t.Fatalf("second run exited %d:\n%s", code, logs)
	}
	time.Sleep(200 * time.Millisecond)
	pidAfter := svstat(t, filepath.Join(e.scandir, "gateway-alpha"))
	if strings.Fields(pidBefore)[2] != strings.Fields(pidAfter)[2] {
		t.Errorf("alpha restarted: %q -> %q", pidBefore, pidAfter)
	}
}

func TestIntegrationNoS6Detected(t *testing.T) {
	e := newEnv(t, "tini")
	logs, code := e.reconcile(t)
	if code != 0 {
		t.Fatalf("exit %d:\n%s", code, logs)
	}
	if !strings.Contains(logs, "s6-svscan not detected: not asking for a rescan") || !strings.Contains(logs, `\"tini\"`) {
		t.Errorf("logs:\n%s", logs)
	}
	// s6-svscan never ran: control and lock are reported missing.
	if !strings.Contains(logs, `"action":"missing"`) {
		t.Errorf("hand-over outcomes not logged:\n%s", logs)
	}
}

func TestIntegrationDryRunAsRoot(t *testing.T) {
	e := newEnv(t, "s6-svscan")
	before := testenv.DumpTree(e.base)
	out, code := e.reconcile(t, "--dry-run")
	if code != 0 {
		t.Fatalf("exit %d:\n%s", code, out)
	}
	if after := testenv.DumpTree(e.base); after != before {
		t.Fatalf("dry run changed the tree:\n%s\n---\n%s", before, after)
	}
	if !strings.Contains(out, "profile=default prior_state=none action=started slot="+e.scandir+"/gateway-default change=created migrate=legacy-container-cmd") {
		t.Errorf("output:\n%s", out)
	}
}

func TestIntegrationNoUser(t *testing.T) {
	e := newEnv(t, "tini")
	logs, code := e.reconcile(t, "--user", "no-such-user-hermes-s6")
	if code != 111 || !strings.Contains(logs, "no such user") {
		t.Fatalf("exit %d, want 111:\n%s", code, logs)
	}
	if o := owner(t, e.scandir); o != 0 {
		t.Error("scandir handed over anyway")
	}
}

func TestIntegrationDashboard(t *testing.T) {
	e := newEnv(t, "s6-svscan")
	writeFile(t, filepath.Join(e.proc, "1", "cmdline"), "/init\x00/opt/hermes/docker/main-wrapper.sh\x00dashboard\x00", 0o644)
	before := testenv.DumpTree(e.base)
	logs, code := e.reconcile(t)
	if code != 0 {
		t.Fatalf("exit %d:\n%s", code, logs)
	}
	if after := testenv.DumpTree(e.base); after != before {
		t.Fatalf("dashboard run changed the tree:\n%s", logs)
	}
}

// TestIntegrationHandOverFailsPassRuns: a scandir hand-over that fails (here
// .s6-svscan/control is a symlink, which perms refuses to follow) must not
// stop the boot before the boot log is written: operators and the
// container's CMD wait for its profile=default line. The pass runs as the
// user, the failure is logged with what it means, and the exit is 111.
func TestIntegrationHandOverFailsPassRuns(t *testing.T) {
	e := newEnv(t, "tini")
	ctl := filepath.Join(e.scandir, ".s6-svscan", "control")
	if err := os.Symlink("/etc/passwd", ctl); err != nil {
		t.Fatal(err)
	}
	logs, code := e.reconcile(t)
	if code != 111 {
		t.Fatalf("exit %d, want 111:\n%s", code, logs)
	}
	if !strings.Contains(logs, `"reason":"hand-over-failed"`) || !strings.Contains(logs, "Permission denied") {
		t.Errorf("the failure and its consequence are not logged:\n%s", logs)
	}
	boot, err := os.ReadFile(filepath.Join(e.home, "logs", "container-boot.log"))
	if err != nil || !strings.Contains(string(boot), " profile=default ") {
		t.Fatalf("no boot log after a failed hand-over: %v\n%s\n%s", err, boot, logs)
	}
	for _, p := range []string{"gateway-default/run", "gateway-alpha/run"} {
		if o := owner(t, filepath.Join(e.scandir, p)); o != e.uid {
			t.Errorf("%s owned by %d, want the user's %d (written after the drop)", p, o, e.uid)
		}
	}
	if o := owner(t, "/etc/passwd"); o != 0 {
		t.Fatalf("/etc/passwd owned by %d", o)
	}
}

// TestIntegrationAsUser: in a container started with -u hermes, s6-overlay
// runs everything as hermes, reconcile-profiles included. It skips the
// hand-over (the scandir is hermes's already) and does its pass; any other
// non-root UID is refused with exit 100.
func TestIntegrationAsUser(t *testing.T) {
	e := newEnv(t, "s6-svscan")
	if err := os.Chown(e.scandir, e.uid, e.gid); err != nil {
		t.Fatal(err)
	}
	run := func(uid, gid int) (string, int) {
		args := []string{"--hermes-home", e.home, "--scandir", e.scandir, "--command-dir", e.cmdDir,
			"--gateway-home", e.home, "--proc", e.proc, "--s6-basedir", e.basedir}
		cmd := testenv.AsUser(exec.Command(e.bin, args...), uid, gid)
		cmd.Env = e.environ()
		out, err := cmd.CombinedOutput()
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return string(out), ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		return string(out), 0
	}
	logs, code := run(e.uid+1, e.gid+1)
	if code != 100 || !strings.Contains(logs, "must run as root") || !strings.Contains(logs, "-u hermes") {
		t.Fatalf("as uid %d: exit %d, want 100 and why:\n%s", e.uid+1, code, logs)
	}
	logs, code = run(e.uid, e.gid)
	if code != 0 {
		t.Fatalf("as the user: exit %d:\n%s", code, logs)
	}
	if !strings.Contains(logs, `"reason":"running-as-user"`) {
		t.Errorf("no running-as-user line:\n%s", logs)
	}
	boot, err := os.ReadFile(filepath.Join(e.home, "logs", "container-boot.log"))
	if err != nil || !strings.Contains(string(boot), " profile=default ") {
		t.Fatalf("no boot log: %v\n%s", err, boot)
	}
	if o := owner(t, filepath.Join(e.scandir, "gateway-alpha", "run")); o != e.uid {
		t.Errorf("gateway-alpha/run owned by %d", o)
	}
}
