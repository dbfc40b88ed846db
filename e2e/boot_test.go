package e2e

import (
	"regexp"
	"strings"
	"testing"
)

// TestBoot: the container comes up with s6-svscan as PID 1, visible to
// hermes as the hermes CLI's detection needs it, our two services ran, and
// boot reconcile logged one line per profile.
func TestBoot(t *testing.T) {
	requireImage(t)
	t.Parallel()
	b := shared(t)

	// The hermes CLI's s6 detection, as hermes: /proc/1/comm and /run/s6/basedir.
	if out := b.MustSh(t, `cat /proc/1/comm`); strings.TrimSpace(out) != "s6-svscan" {
		t.Errorf("/proc/1/comm = %q, want s6-svscan", out)
	}
	b.MustSh(t, `test -d /run/s6/basedir`)
	b.MustSh(t, `test "$(id -un)" = hermes`)

	// perm-watcher: a longrun, up and ready. Its own supervise/ stays root's
	// (the watcher excludes itself), so hermes checks its process instead.
	b.MustSh(t, `for p in /proc/[0-9]*; do grep -qx perm-watcher "$p/comm" 2>/dev/null && exit 0; done; echo "no perm-watcher process"; exit 1`)
	// As root: s6-svstat of perm-watcher needs its root-only supervise/.
	if code, out := b.Exec(t, []string{"/command/s6-svstat", "-o", "up,ready", "/run/service/perm-watcher"}, AsRoot()); code != 0 || strings.TrimSpace(out) != "true true" {
		t.Errorf("perm-watcher s6-svstat -o up,ready: %d %q", code, out)
	}
	// Its scandir entry is a root-owned symlink into s6-rc's servicedirs, as under s6-overlay.
	b.MustSh(t, `test -L /run/service/perm-watcher
test "$(stat -c %U /run/service/perm-watcher)" = root
case $(readlink /run/service/perm-watcher) in /run/s6-rc:s6-rc-init:*/servicedirs/perm-watcher) ;; *) exit 1 ;; esac`)

	// reconcile-profiles (a oneshot) ran: one line per profile, once.
	log := b.MustSh(t, `cat /opt/data/logs/container-boot.log`)
	for _, p := range []string{"default", "alpha", "beta"} {
		re := regexp.MustCompile(`(?m)^\S+ profile=` + p + ` `)
		if n := len(re.FindAllString(log, -1)); n != 1 {
			t.Errorf("container-boot.log has %d lines for profile %s, want 1:\n%s", n, p, log)
		}
	}
	if n := strings.Count(strings.TrimSpace(log), "\n") + 1; n != 3 {
		t.Errorf("container-boot.log has %d lines, want 3:\n%s", n, log)
	}
	// The scandir and svscan's control are hermes's after reconcile.
	b.MustSh(t, `test "$(stat -c %U /run/service)" = hermes
test "$(stat -c %U /run/service/.s6-svscan/control)" = hermes
test "$(stat -c %a /run/service/.s6-svscan)" = 755`)
	// Slots: running ones up, the stopped one down, all readable by hermes.
	for slot, want := range map[string]string{"gateway-default": "true", "gateway-alpha": "true", "gateway-beta": "false"} {
		waitUp(t, b, "/run/service/"+slot, want)
	}
}

// TestRescan: hermes can ask s6-svscan to rescan.
func TestRescan(t *testing.T) {
	requireImage(t)
	t.Parallel()
	b := shared(t)
	b.MustSh(t, `/command/s6-svscanctl -a /run/service`)
}

// TestStaticService: a static s6-rc longrun (the test image's static-test)
// is controllable by hermes once perm-watcher has handed it over.
func TestStaticService(t *testing.T) {
	requireImage(t)
	t.Parallel()
	b := shared(t)
	svc := "/run/service/static-test"
	waitControllable(t, b, svc)
	b.MustSh(t, `svc=/run/service/static-test
/command/s6-svstat "$svc"
/command/s6-svc -d "$svc"
/command/s6-svwait -t 5000 -D "$svc"
test "$(/command/s6-svstat -o up "$svc")" = false
/command/s6-svc -u "$svc"
/command/s6-svwait -t 5000 -u "$svc"
test "$(/command/s6-svstat -o up "$svc")" = true`)
}
