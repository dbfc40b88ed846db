package e2e

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/testcontainers/testcontainers-go"
	"github.com/testcontainers/testcontainers-go/wait"
)

// TestStandInExitCode: the container's command runs as the main program
// after the services, and its exit code is the container's.
func TestStandInExitCode(t *testing.T) {
	requireImage(t)
	t.Parallel()
	ctx := context.Background()
	// The command checks it runs after boot reconcile, as s6-overlay's CMD does.
	c, err := testcontainers.Run(ctx, testImage,
		testcontainers.WithCmd("sh", "-c", `grep -q ' profile=default ' /opt/data/logs/container-boot.log || exit 3; exit 42`),
		testcontainers.WithWaitStrategy(wait.ForExit().WithExitTimeout(60*time.Second)),
	)
	if c != nil {
		t.Cleanup(func() { _ = testcontainers.TerminateContainer(c) })
	}
	if err != nil {
		t.Fatal(err)
	}
	st, err := c.State(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.ExitCode != 42 {
		(&box{Container: c, name: t.Name()}).dump(t)
		t.Fatalf("container exit code %d, want 42 (3: the command ran before boot reconcile)", st.ExitCode)
	}
}

// TestStandInReapsZombies: an orphan is re-parented to PID 1 (s6-svscan),
// which reaps it when it dies.
func TestStandInReapsZombies(t *testing.T) {
	requireImage(t)
	t.Parallel()
	b := shared(t)
	// The inner sh exits at once, orphaning its background sleep.
	out := b.MustSh(t, `sh -c 'sleep 1 >/dev/null 2>&1 & echo $!'`)
	pid, err := strconv.Atoi(strings.TrimSpace(out))
	if err != nil {
		t.Fatalf("pid: %q", out)
	}
	stat := "/proc/" + strconv.Itoa(pid) + "/stat"
	// While it runs, its parent is PID 1.
	code, st := b.ExecSh(t, `cat `+stat)
	if code == 0 {
		f := strings.Fields(st[strings.LastIndex(st, ")")+1:])
		if len(f) > 1 && f[1] != "1" {
			t.Errorf("orphan %d has parent %s, want 1", pid, f[1])
		}
	}
	// Once it exits it must disappear, not stay a zombie.
	waitFor(t, 10*time.Second, "the orphan to be reaped", func() (bool, string) {
		code, st := b.ExecSh(t, `cat `+stat+` 2>/dev/null`)
		return code != 0, st
	})
}

// TestStandInStopIsFast: docker stop ends the container by itself (exit 0),
// under the engine's 10 s timeout (S6_KILL_GRACETIME is 100 ms in the test
// image).
func TestStandInStopIsFast(t *testing.T) {
	requireImage(t)
	t.Parallel()
	b := startBox(t, boxOpts{})
	start := time.Now()
	timeout := 10 * time.Second
	if err := b.Stop(context.Background(), &timeout); err != nil {
		t.Fatal(err)
	}
	// Under docker's 10 s stop timeout, with room for a loaded machine
	// (scripts/boot-times.sh measures it: about 1 s on an idle one).
	if d := time.Since(start); d > 8*time.Second {
		t.Errorf("docker stop took %v", d)
	}
	st, err := b.State(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if st.ExitCode != 0 {
		t.Errorf("exit code after docker stop = %d, want 0", st.ExitCode)
	}
}

// isStandIn reports whether the test image runs the hermetic stand-in
// (hermetic/init) rather than s6-overlay.
func isStandIn(t *testing.T) bool {
	t.Helper()
	_, err := dockerCLI("run", "--rm", "--entrypoint", "test", testImage, "-x", "/usr/lib/hermetic-s6/stage2")
	return err == nil
}

// requireStandIn skips a test of the stand-in's own details on any other image.
func requireStandIn(t *testing.T) {
	t.Helper()
	if !isStandIn(t) {
		t.Skipf("%s does not run the hermetic stand-in (no /usr/lib/hermetic-s6/stage2): this test checks a detail of the stand-in only", testImage)
	}
}

// TestStandInEmulatesItsVersion: the stand-in lays out the evidence of the
// s6-overlay version it emulates as that version's noarch tarball does.
func TestStandInEmulatesItsVersion(t *testing.T) {
	requireImage(t)
	t.Parallel()
	requireStandIn(t)
	v := s6OverlayVersion(t)
	script := `test "$HERMETIC_S6_OVERLAY_VERSION" = "` + v + `" || { echo "HERMETIC_S6_OVERLAY_VERSION=$HERMETIC_S6_OVERLAY_VERSION, link says ` + v + `"; exit 1; }
test -d /package/admin/s6-overlay-` + v + `
`
	if readsUserBundlesD(v) {
		script += `test ! -e /etc/s6-overlay/s6-rc.d/user && test ! -e /etc/s6-overlay/s6-rc.d/user2`
	} else {
		script += `for b in user user2; do test "$(cat /etc/s6-overlay/s6-rc.d/$b/type)" = bundle; done`
	}
	if out, err := dockerCLI("run", "--rm", "--entrypoint", "sh", testImage, "-c", "set -e\n"+script); err != nil {
		t.Errorf("stand-in emulating %s: %v\n%s", v, err, out)
	}
}

// TestStandInRunOwnerHelper: the setuid helper that gives /run to a -u
// container's user is setuid root and refuses everything else: arguments,
// and any call once the scandir exists (here: hermes in a running root
// container, who must not get /run).
func TestStandInRunOwnerHelper(t *testing.T) {
	requireImage(t)
	t.Parallel()
	requireStandIn(t)
	b := shared(t)
	b.MustSh(t, `h=/usr/lib/hermetic-s6/fix-run-owner
test "$(stat -c %U:%a "$h")" = root:4755
rc=0; "$h" 2>/dev/null || rc=$?; test "$rc" = 100 || { echo "no arguments, scandir present: exit $rc, want 100"; exit 1; }
rc=0; "$h" /etc 2>/dev/null || rc=$?; test "$rc" = 100 || { echo "with an argument: exit $rc, want 100"; exit 1; }
test "$(stat -c %U /run)" = root`)
}

// TestScandirAsS6OverlayMakesIt: the entries and control files that
// s6-overlay's scandir has besides the project's (S6-OVERLAY-FACTS.md),
// whatever makes them; owned by the container's user.
func TestScandirAsS6OverlayMakesIt(t *testing.T) {
	requireImage(t)
	t.Parallel()
	forEachMode(t, func(t *testing.T, m mode) {
		b := sharedIn(t, m)
		// As root: .s6-svscan's scripts and perm-watcher's supervise/ are
		// not hermes's to read in a root container.
		b.MustSh(t, `u=`+string(m)+`
s=/run/service
for f in SIGTERM SIGINT SIGQUIT SIGUSR1 SIGUSR2 SIGPWR SIGWINCH crash finish; do
  test -x "$s/.s6-svscan/$f" || { echo "no executable .s6-svscan/$f"; exit 1; }
  test "$(stat -c %U "$s/.s6-svscan/$f")" = "$u" || { echo ".s6-svscan/$f is $(stat -c %U "$s/.s6-svscan/$f")'s"; exit 1; }
done
test ! -e "$s/.s6-svscan/SIGHUP" || { echo ".s6-svscan/SIGHUP exists: s6-overlay makes none (s6-svscan's default applies)"; exit 1; }
test -f "$s/s6-linux-init-shutdownd/run" || { echo "s6-linux-init-shutdownd has no run"; exit 1; }
test -d "$s/s6-linux-init-shutdownd" && test ! -L "$s/s6-linux-init-shutdownd"
for n in s6rc-fdholder s6rc-oneshot-runner; do
  test -L "$s/$n" && test "$(stat -c %U "$s/$n")" = "$u" || { echo "$n: not a symlink of $u"; exit 1; }
done
d=$s/perm-watcher
test "$(stat -c %U:%a "$d/supervise")" = "$u:700"
test "$(stat -c %U:%a "$d/supervise/control")" = "$u:600"
test "$(stat -c %U:%a "$d/event")" = "$u:3730"`, AsRoot())
	})
}
