package e2e

import (
	"testing"
)

// TestSymlinkedSuperviseAttack: hermes can write the scandir, so it can make
// a slot whose supervise/ is a symlink, to another service's root-owned
// supervise/ or to /etc. s6-supervise (root) follows it, which s6 allows;
// perm-watcher must not: nothing outside the slot changes owner, and the
// watcher keeps serving the other slots.
func TestSymlinkedSuperviseAttack(t *testing.T) {
	requireImage(t)
	t.Parallel()
	b := startBox(t, boxOpts{})
	// As root: hermes cannot look inside perm-watcher's 0700 supervise/,
	// which is the point; the snapshot must see it.
	snapshot := `for f in /etc /etc/passwd /etc/control /etc/lock /etc/status /run/s6-rc/servicedirs/perm-watcher/supervise /run/s6-rc/servicedirs/perm-watcher/supervise/control /run/s6-rc/servicedirs/perm-watcher/event; do
  [ -e "$f" ] && stat -c '%u:%g %a %F %n' "$f"
done; true`
	before := b.MustSh(t, snapshot, AsRoot())
	watcher := pidOfWatcher(t, b)

	b.MustSh(t, `s=/run/service
mk() { tmp=$s/.$1.tmp; mkdir "$tmp"; printf '#!/bin/sh\nexec sleep 3600\n' > "$tmp/run"; chmod 0755 "$tmp/run"; ln -s "$2" "$tmp/supervise"; mv "$tmp" "$s/$1"; }
mk evil-pw /run/s6-rc/servicedirs/perm-watcher/supervise
mk evil-etc /etc
/command/s6-svscanctl -a "$s"`)

	// A normal slot registered afterwards becomes controllable: the watcher
	// has processed the evil ones and is still working.
	b.MustSh(t, `s=/run/service; tmp=$s/.after.tmp; mkdir "$tmp"
printf '#!/bin/sh\nexec sleep 3600\n' > "$tmp/run"; chmod 0755 "$tmp/run"; : > "$tmp/down"
mv "$tmp" "$s/after"; /command/s6-svscanctl -a "$s"`)
	waitControllable(t, b, "/run/service/after")
	b.MustSh(t, `/command/s6-svc -u /run/service/after && /command/s6-svwait -t 5000 -u /run/service/after`)

	after := b.MustSh(t, snapshot, AsRoot())
	// Files that s6-supervise itself created through the /etc link (lock,
	// control, status) may appear, but must be root's.
	b.MustSh(t, `for f in /etc /etc/passwd /etc/control /etc/lock /etc/status /etc/event /run/s6-rc/servicedirs/perm-watcher/supervise /run/s6-rc/servicedirs/perm-watcher/supervise/control; do
  [ -e "$f" ] || continue
  o=$(stat -c %u:%g "$f"); [ "$o" = 0:0 ] || { echo "$f is owned by $o"; exit 1; }
done
test "$(stat -c %a /etc)" = 755`, AsRoot())
	t.Logf("before:\n%s\nafter:\n%s", before, after)
	if now := pidOfWatcher(t, b); now != watcher {
		t.Errorf("perm-watcher pid %s -> %s: it died during the attack", watcher, now)
	}
}
