package e2e

import (
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// pidOfWatcher finds perm-watcher's pid, as hermes, from /proc.
func pidOfWatcher(t testing.TB, b *box) string {
	t.Helper()
	out := b.MustSh(t, `for p in /proc/[0-9]*; do grep -qx perm-watcher "$p/comm" 2>/dev/null && echo "${p#/proc/}"; done; true`)
	return strings.TrimSpace(out)
}

// TestPermWatcherKilledWhileRegistering: perm-watcher is killed with
// SIGKILL while hermes registers 50 slots; s6 restarts it and every slot
// becomes controllable by hermes.
func TestPermWatcherKilledWhileRegistering(t *testing.T) {
	requireImage(t)
	t.Parallel()
	b := startBox(t, boxOpts{})
	old := pidOfWatcher(t, b)
	if old == "" {
		t.Fatal("no perm-watcher process")
	}

	var wg sync.WaitGroup
	wg.Add(2)
	// As root: perm-watcher is root's, and hermes cannot signal it, by design.
	// The killer waits in the container until 10 of the 50 slots exist.
	var killCode int
	var killOut string
	go func() {
		defer wg.Done()
		killCode, killOut = b.ExecSh(t, `i=0
until [ "$(ls -d /run/service/bulk-* 2>/dev/null | wc -l)" -ge 10 ]; do
  i=$((i+1)); [ $i -le 3000 ] || { echo "registration did not start"; exit 1; }
  sleep 0.01
done
kill -9 `+old+` && echo "killed with $(ls -d /run/service/bulk-* | wc -l) of 50 slots registered"`, AsRoot())
	}()
	var regCode int
	var regOut string
	go func() {
		defer wg.Done()
		regCode, regOut = b.ExecSh(t, `set -e
s=/run/service
i=0
while [ $i -lt 50 ]; do
  i=$((i+1)); tmp=$s/.bulk-$i.tmp
  mkdir "$tmp"
  printf '#!/bin/sh\nexec sleep 3600\n' > "$tmp/run"; chmod 0755 "$tmp/run"
  : > "$tmp/down"
  mv "$tmp" "$s/bulk-$i"
  /command/s6-svscanctl -a "$s"
done`)
	}()
	wg.Wait()
	if killCode != 0 {
		t.Fatalf("kill -9 perm-watcher: %s", killOut)
	}
	t.Log(strings.TrimSpace(killOut))
	if regCode != 0 {
		t.Fatalf("registering 50 slots: exit %d: %s", regCode, regOut)
	}

	waitFor(t, 20*time.Second, "perm-watcher restarted by s6", func() (bool, string) {
		p := pidOfWatcher(t, b)
		return p != "" && p != old, p
	})
	code, out := b.ExecSh(t, `i=0; n=0
while [ $i -lt 50 ]; do
  i=$((i+1)); d=/run/service/bulk-$i
  until `+usableScript+`; do
    n=$((n+1)); [ $n -le 600 ] || { echo "bulk-$i not usable"; ls -la "$d" "$d/supervise"; exit 1; }
    sleep 0.05
  done
done
i=0
while [ $i -lt 50 ]; do i=$((i+1)); /command/s6-svc -u /run/service/bulk-$i; done
i=0
while [ $i -lt 50 ]; do i=$((i+1)); /command/s6-svwait -t 10000 -u /run/service/bulk-$i; /command/s6-svc -d /run/service/bulk-$i; done`)
	if code != 0 {
		t.Fatalf("after the kill, not all 50 slots are controllable by hermes: %s", out)
	}
}

// TestCrashLoopKeepsControlOwner: a supervised process that crash-loops
// makes s6-supervise restart it over and over; its control FIFO stays
// hermes's and the service stays controllable.
func TestCrashLoopKeepsControlOwner(t *testing.T) {
	requireImage(t)
	t.Parallel()
	b := shared(t, asRoot)
	b.MustSh(t, `s=/run/service; tmp=$s/.crashy.tmp
rm -rf "$tmp"; mkdir "$tmp"
printf '#!/bin/sh\nexit 1\n' > "$tmp/run"; chmod 0755 "$tmp/run"
mv "$tmp" "$s/crashy"
/command/s6-svscanctl -a "$s"`)
	d := "/run/service/crashy"
	waitControllable(t, b, d)
	// s6-supervise restarts a dying service at most once a second.
	waitFor(t, 15*time.Second, "3 deaths of crashy", func() (bool, string) {
		code, out := b.ExecSh(t, `/command/s6-svdt `+d+` | wc -l`)
		n, _ := strconv.Atoi(strings.TrimSpace(out))
		return code == 0 && n >= 3, out
	})
	b.MustSh(t, `d=/run/service/crashy
test "$(stat -c %U "$d/supervise/control")" = hermes
`+usableScript+`
/command/s6-svc -d "$d"
/command/s6-svwait -t 5000 -D "$d"
rm -rf "$d"
/command/s6-svscanctl -an /run/service`)
}
