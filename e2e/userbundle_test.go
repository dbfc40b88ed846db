package e2e

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/testcontainers/testcontainers-go"
	"github.com/testcontainers/testcontainers-go/wait"
)

// Where s6-overlay reads the user bundle depends on its version
// (S6-OVERLAY-FACTS.md): <= 3.2.3.0 only /etc/s6-overlay/s6-rc.d/user/,
// >= 3.2.3.1 user-bundles.d/ unless s6-rc.d/user/ exists (then that, after
// writing `bundle` into its type file, which a -u container cannot). These
// tests read the version from the image, as install-user-bundle does, so
// they hold for the stand-in at either version and for a real s6-overlay.

const (
	legacyUser  = "/etc/s6-overlay/s6-rc.d/user"
	userBundles = "/etc/s6-overlay/user-bundles.d/user"
	// splitVersion is the first version that reads user-bundles.d.
	splitVersion = "3.2.3.1"
)

var (
	versionOnce sync.Once
	version     string
	versionErr  error
)

// s6OverlayVersion is the s6-overlay version of the test image: the target
// of /package/admin/s6-overlay (s6-overlay-X.Y.Z.W), as its noarch tarball
// lays it out.
func s6OverlayVersion(t *testing.T) string {
	t.Helper()
	versionOnce.Do(func() {
		out, err := dockerCLI("run", "--rm", "--entrypoint", "readlink", testImage, "/package/admin/s6-overlay")
		if err != nil {
			versionErr = fmt.Errorf("readlink /package/admin/s6-overlay in %s: %v: %s", testImage, err, out)
			return
		}
		v := strings.TrimPrefix(strings.TrimSpace(out), "s6-overlay-")
		if _, err := parseVersion(v); err != nil {
			versionErr = fmt.Errorf("/package/admin/s6-overlay -> %q in %s: %v", out, testImage, err)
			return
		}
		version = v
	})
	if versionErr != nil {
		t.Fatal(versionErr)
	}
	return version
}

func parseVersion(v string) ([]int, error) {
	var n []int
	for _, f := range strings.Split(v, ".") {
		i, err := strconv.Atoi(f)
		if err != nil {
			return nil, fmt.Errorf("not a version: %q", v)
		}
		n = append(n, i)
	}
	return n, nil
}

// readsUserBundlesD: does version v read user-bundles.d (>= 3.2.3.1)?
func readsUserBundlesD(v string) bool {
	a, _ := parseVersion(v)
	b, _ := parseVersion(splitVersion)
	for i := 0; i < len(b); i++ {
		x := 0
		if i < len(a) {
			x = a[i]
		}
		if x != b[i] {
			return x > b[i]
		}
	}
	return true
}

// TestUserBundleWhereTheVersionLooks: the image declares the project's
// services where its s6-overlay version reads them, and only there. It fails
// for an image with rootfs/'s old user-bundles.d/ on 3.2.3.0 (the services
// never start) and for one with an s6-rc.d/user/ on >= 3.2.3.1 (a -u hermes
// boot stops).
func TestUserBundleWhereTheVersionLooks(t *testing.T) {
	requireImage(t)
	t.Parallel()
	v := s6OverlayVersion(t)
	script := `for n in perm-watcher profile-follower reconcile-profiles; do test -e "$dir/contents.d/$n" || { echo "$n is not in $dir/contents.d"; exit 1; }; done`
	if readsUserBundlesD(v) {
		script = `dir=` + userBundles + `
if test -e ` + legacyUser + `; then echo "` + legacyUser + ` exists: s6-overlay ` + v + ` then ignores user-bundles.d and cannot boot as -u hermes"; exit 1; fi
` + script
	} else {
		script = `dir=` + legacyUser + `
test "$(cat ` + legacyUser + `/type)" = bundle || { echo "no bundle ` + legacyUser + `"; exit 1; }
if ls ` + userBundles + `/contents.d/* >/dev/null 2>&1; then echo "services in ` + userBundles + `, which s6-overlay ` + v + ` never reads"; ls ` + userBundles + `/contents.d; exit 1; fi
` + script
	}
	if out, err := dockerCLI("run", "--rm", "--entrypoint", "sh", testImage, "-c", script); err != nil {
		t.Errorf("s6-overlay %s: the user bundle is not where this version reads it: %v\n%s", v, err, out)
	}
}

// bootProbe is a container command that tells, by its exit code, whether
// it runs after the project's services came up (42: boot log written and
// perm-watcher running) or without them (43).
var bootProbe = []string{"sh", "-c", `pw=no
for p in /proc/[0-9]*; do grep -qx perm-watcher "$p/comm" 2>/dev/null && pw=yes; done
if [ "$pw" = yes ] && grep -q ' profile=default ' /opt/data/logs/container-boot.log 2>/dev/null; then exit 42; fi
exit 43`}

// outcome of a boot with a given user bundle layout.
type outcome int

const (
	servicesThenCmd outcome = iota // services up, then the command (exit 42)
	cmdWithoutThem                 // the command runs, the services never start (exit 43)
	bootStops                      // stage 2 fails: the command never runs, the container stays up
)

func (o outcome) String() string {
	return [...]string{"services up, then the command", "the command without the services", "the boot stops"}[o]
}

// TestUserBundleElsewhereIsNotRead: the stand-in (or s6-overlay) is no more
// forgiving than the version it is: an image whose services are declared
// only where that version does not look boots without them, and the
// deprecated layout of >= 3.2.3.1 stops a -u hermes boot. Each case is the
// test image with its layout moved (a derived image), booted as root and as
// hermes, with bootProbe as its command.
func TestUserBundleElsewhereIsNotRead(t *testing.T) {
	requireImage(t)
	t.Parallel()
	v := s6OverlayVersion(t)
	type tcase struct {
		name   string
		script string // run as root in the image to move the layout
		want   map[mode]outcome
	}
	var cases []tcase
	if readsUserBundlesD(v) {
		cases = []tcase{
			{
				// As a 3.2.3.0 tarball leaves it, beside our user-bundles.d.
				name:   "a leftover s6-rc.d/user beside user-bundles.d",
				script: `mkdir -p ` + legacyUser + `/contents.d; echo bundle > ` + legacyUser + `/type`,
				want:   map[mode]outcome{asRoot: cmdWithoutThem, asHermes: bootStops},
			},
			{
				name: "only in the deprecated s6-rc.d/user",
				script: `mkdir -p ` + legacyUser + `/contents.d
mv ` + userBundles + `/contents.d/* ` + legacyUser + `/contents.d/
rm -rf ` + userBundles,
				want: map[mode]outcome{asRoot: servicesThenCmd, asHermes: bootStops},
			},
		}
	} else {
		cases = []tcase{{
			name: "only in user-bundles.d",
			script: `mkdir -p ` + userBundles + `/contents.d
echo bundle > ` + userBundles + `/type
mv ` + legacyUser + `/contents.d/* ` + userBundles + `/contents.d/`,
			want: map[mode]outcome{asRoot: cmdWithoutThem, asHermes: cmdWithoutThem},
		}}
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			img := deriveImage(t, c.script)
			for _, m := range modes {
				t.Run(string(m), func(t *testing.T) {
					t.Parallel()
					checkOutcome(t, img, m, c.want[m], v)
				})
			}
		})
	}
}

// TestCmdWaitsForTheUserBundle: the command runs only once the user bundle
// is up, and a longrun that never gets ready holds it back (s6-overlay's
// default S6_CMD_WAIT_FOR_SERVICES_MAXTIME=0 is "for ever"); the services
// that do not depend on it still come up.
func TestCmdWaitsForTheUserBundle(t *testing.T) {
	requireImage(t)
	t.Parallel()
	img := deriveImage(t, `d=/etc/s6-overlay/s6-rc.d/never-ready
mkdir -p "$d/dependencies.d"
echo longrun > "$d/type"
: > "$d/dependencies.d/base"
echo 3 > "$d/notification-fd"
printf '#!/bin/sh\nexec sleep infinity\n' > "$d/run"
chmod 0755 "$d/run"
/usr/lib/hermes-s6/install-user-bundle never-ready`)
	forEachMode(t, func(t *testing.T, m mode) {
		ctx := context.Background()
		c, err := testcontainers.Run(ctx, img, withUser(m),
			testcontainers.WithCmd("sh", "-c", "echo command-ran; exit 7"))
		b := &box{Container: c, name: t.Name(), mode: m}
		if c != nil {
			t.Cleanup(func() {
				if t.Failed() {
					b.dump(t)
				}
				_ = testcontainers.TerminateContainer(c)
			})
		}
		if err != nil {
			t.Fatal(err)
		}
		b.waitReady(t)
		time.Sleep(2 * time.Second)
		st, err := c.State(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if !st.Running || strings.Contains(b.logs(t), "command-ran") {
			t.Fatalf("the command ran (running=%v, exit %d) although never-ready never got ready", st.Running, st.ExitCode)
		}
	})
}

// deriveImage makes an image from the test image with script run in it as
// root (entrypoint and command reset to the test image's /init and none),
// removed after the test.
func deriveImage(t *testing.T, script string) string {
	t.Helper()
	id := strconv.FormatInt(time.Now().UnixNano(), 36)
	name := "hermes-s6-e2e-derive-" + id
	tag := "hermes-s6-e2e-derived:" + id
	out, err := dockerCLI("run", "--name", name, "--user", "0", "--entrypoint", "sh", testImage, "-c", "set -e\n"+script)
	defer func() { _, _ = dockerCLI("rm", "-f", "-v", name) }()
	if err != nil {
		t.Fatalf("derive an image: %v\n%s\nscript:\n%s", err, out, script)
	}
	if out, err := dockerCLI("commit", "--change", `ENTRYPOINT ["/init"]`, "--change", `CMD []`, "--change", "USER root", name, tag); err != nil {
		t.Fatalf("docker commit: %v\n%s", err, out)
	}
	t.Cleanup(func() { _, _ = dockerCLI("rmi", "-f", tag) })
	return tag
}

// checkOutcome boots img as m with bootProbe and checks what happened.
func checkOutcome(t *testing.T, img string, m mode, want outcome, v string) {
	t.Helper()
	ctx := context.Background()
	opts := []testcontainers.ContainerCustomizer{withUser(m), testcontainers.WithCmd(bootProbe...)}
	switch want {
	case bootStops:
		opts = append(opts, testcontainers.WithWaitStrategy(wait.ForLog("Permission denied").WithStartupTimeout(60*time.Second)))
	default:
		opts = append(opts, testcontainers.WithWaitStrategy(wait.ForExit().WithExitTimeout(60*time.Second)))
	}
	c, err := testcontainers.Run(ctx, img, opts...)
	b := &box{Container: c, name: t.Name(), mode: m}
	if c != nil {
		t.Cleanup(func() {
			if t.Failed() {
				b.dump(t)
			}
			_ = testcontainers.TerminateContainer(c)
		})
	}
	if err != nil {
		t.Fatalf("s6-overlay %s as %s, want %v: %v", v, m, want, err)
	}
	if want == bootStops {
		// Give a command that would run a chance to: it must not.
		time.Sleep(2 * time.Second)
	}
	st, err := c.State(ctx)
	if err != nil {
		t.Fatal(err)
	}
	got := map[bool]outcome{true: bootStops}[st.Running]
	if !st.Running {
		switch st.ExitCode {
		case 42:
			got = servicesThenCmd
		case 43:
			got = cmdWithoutThem
		default:
			t.Fatalf("s6-overlay %s as %s: the container exited %d, want %v", v, m, st.ExitCode, want)
		}
	}
	if got != want {
		t.Errorf("s6-overlay %s as %s: %v, want %v", v, m, got, want)
	}
}

// TestStoppedReconcileCannotHoldTheBoot: the reconcile-profiles oneshot runs
// as hermes after its drop, so hermes can stop it (kill -STOP); s6-overlay
// holds the container's command back until the user bundle is up, by
// default for ever. The shipped definition has a timeout-up, so a stopped
// reconcile fails the oneshot instead and the command runs. (Shortened to
// 3 s here; the shipped value is 60 s.)
func TestStoppedReconcileCannotHoldTheBoot(t *testing.T) {
	requireImage(t)
	t.Parallel()
	img := deriveImage(t, `d=/etc/s6-overlay/s6-rc.d/reconcile-profiles
test -s "$d/timeout-up" || { echo "the shipped reconcile-profiles has no timeout-up" >&2; exit 1; }
echo 3000 > "$d/timeout-up"
mv /usr/local/bin/reconcile-profiles /usr/local/bin/reconcile-profiles.real
# Only the oneshot stops (the profile-follower longrun is the same binary with --follow).
printf '#!/bin/sh\ncase " $* " in *" --follow "*) ;; *) kill -STOP $$ ;; esac\nexec /usr/local/bin/reconcile-profiles.real "$@"\n' > /usr/local/bin/reconcile-profiles
chmod 0755 /usr/local/bin/reconcile-profiles`)
	forEachMode(t, func(t *testing.T, m mode) {
		ctx := context.Background()
		c, err := testcontainers.Run(ctx, img, withUser(m),
			testcontainers.WithCmd("sh", "-c", "echo command-ran; exit 7"),
			testcontainers.WithWaitStrategy(wait.ForExit().WithExitTimeout(90*time.Second)))
		b := &box{Container: c, name: t.Name(), mode: m}
		if c != nil {
			t.Cleanup(func() {
				if t.Failed() {
					b.dump(t)
				}
				_ = testcontainers.TerminateContainer(c)
			})
		}
		if err != nil {
			t.Fatalf("the container did not finish although reconcile-profiles was stopped with a 3 s timeout-up: %v", err)
		}
		st, err := c.State(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if st.Running || st.ExitCode != 7 || !strings.Contains(b.logs(t), "command-ran") {
			t.Fatalf("running=%v exit %d, want the command to run and exit 7\n%s", st.Running, st.ExitCode, b.logs(t))
		}
	})
}
