package e2e

import (
	"context"
	"io"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestBoot: the container comes up with s6-svscan as PID 1, visible to
// hermes as the hermes CLI's detection needs it, our two services ran, and
// boot reconcile logged one line per profile; started as root and as hermes.
func TestBoot(t *testing.T) {
	requireImage(t)
	t.Parallel()
	forEachMode(t, testBoot)
}

func testBoot(t *testing.T, m mode) {
	b := sharedIn(t, m)

	// The hermes CLI's s6 detection, as hermes: /proc/1/comm and /run/s6/basedir.
	if out := b.MustSh(t, `cat /proc/1/comm`); strings.TrimSpace(out) != "s6-svscan" {
		t.Errorf("/proc/1/comm = %q, want s6-svscan", out)
	}
	b.MustSh(t, `test -d /run/s6/basedir`)
	b.MustSh(t, `test "$(id -un)" = hermes`)
	// PID 1 runs as the container's user.
	wantUID := map[mode]string{asRoot: "0", asHermes: "10000"}[m]
	if out := b.MustSh(t, `awk '/^Uid:/ {print $2}' /proc/1/status`); strings.TrimSpace(out) != wantUID {
		t.Errorf("PID 1 runs as uid %q, want %s", strings.TrimSpace(out), wantUID)
	}

	// perm-watcher: a longrun, up and ready. Its own supervise/ stays root's
	// (the watcher excludes itself), so hermes checks its process instead.
	b.MustSh(t, `for p in /proc/[0-9]*; do grep -qx perm-watcher "$p/comm" 2>/dev/null && exit 0; done; echo "no perm-watcher process"; exit 1`)
	// As root: s6-svstat of perm-watcher needs its supervise/, root's 0700
	// in a root container.
	if code, out := b.Exec(t, []string{"/command/s6-svstat", "-o", "up,ready", "/run/service/perm-watcher"}, AsRoot()); code != 0 || strings.TrimSpace(out) != "true true" {
		t.Errorf("perm-watcher s6-svstat -o up,ready: %d %q", code, out)
	}
	// Its scandir entry is a symlink made by s6-rc-init (so owned by the
	// container's user) into s6-rc's servicedirs. Which form the target
	// takes depends on the s6-rc version: not asserted.
	b.MustSh(t, `test -L /run/service/perm-watcher
test "$(stat -c %U /run/service/perm-watcher)" = `+string(m)+`
test -f /run/service/perm-watcher/run
case $(readlink -f /run/service/perm-watcher) in /run/s6-rc*/servicedirs/perm-watcher) ;; *) readlink -f /run/service/perm-watcher; exit 1 ;; esac`)

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
	// The scandir and svscan's control are hermes's after reconcile (root
	// container) or from the start (hermes container).
	b.MustSh(t, `test "$(stat -c %U /run/service)" = hermes
test "$(stat -c %U /run/service/.s6-svscan/control)" = hermes
test "$(stat -c %a /run/service/.s6-svscan)" = 755`)
	// Slots: running ones up, the stopped one down, all readable by hermes.
	for slot, want := range map[string]string{"gateway-default": "true", "gateway-alpha": "true", "gateway-beta": "false"} {
		waitUp(t, b, "/run/service/"+slot, want)
	}

	if m == asHermes {
		// s6-overlay's preinit gives /run to the container's user.
		b.MustSh(t, `test "$(stat -c %U /run)" = hermes`)
		logs := b.logs(t)
		if !strings.Contains(logs, "/run belongs to uid 0 instead of 10000 - fixing it") {
			t.Errorf("docker logs do not say that /run was given to uid 10000:\n%s", tail(logs, 4000))
		}
		// Nothing crash-loops and perm-watcher, with nothing to do, uses no
		// CPU: the same process 1.5 s later, its utime+stime (fields 14 and
		// 15 of /proc/PID/stat, in clock ticks) unchanged but for a tick.
		before := pidOfWatcher(t, b)
		cpu := func(pid string) int {
			out := b.MustSh(t, `read -r l < /proc/`+pid+`/stat; set -- ${l##*) }; echo $((${12} + ${13}))`)
			n, err := strconv.Atoi(strings.TrimSpace(out))
			if err != nil {
				t.Fatalf("cpu time of perm-watcher: %q", out)
			}
			return n
		}
		if before == "" {
			t.Fatal("no perm-watcher process")
		}
		c0 := cpu(before)
		time.Sleep(1500 * time.Millisecond)
		if after := pidOfWatcher(t, b); after != before {
			t.Errorf("perm-watcher pid %q then %q 1.5 s later: it must run once and wait, not restart", before, after)
		} else if c1 := cpu(before); c1-c0 > 1 {
			t.Errorf("perm-watcher used %d clock ticks of CPU in 1.5 s with nothing to do, want none", c1-c0)
		}
	}
}

// logs returns the container's docker logs (stdout and stderr).
func (b *box) logs(t testing.TB) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	r, err := b.Logs(ctx)
	if err != nil {
		t.Fatalf("docker logs: %v", err)
	}
	defer r.Close()
	out, _ := io.ReadAll(r)
	return string(out)
}

// TestRescan: hermes can ask s6-svscan to rescan.
func TestRescan(t *testing.T) {
	requireImage(t)
	t.Parallel()
	forEachMode(t, func(t *testing.T, m mode) {
		b := sharedIn(t, m)
		b.MustSh(t, `/command/s6-svscanctl -a /run/service`)
	})
}

// TestStaticService: a static s6-rc longrun (the test image's static-test)
// is controllable by hermes once perm-watcher has handed it over (root
// container) or from the start (hermes container).
func TestStaticService(t *testing.T) {
	requireImage(t)
	t.Parallel()
	forEachMode(t, func(t *testing.T, m mode) {
		b := sharedIn(t, m)
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
	})
}
