package e2e

import (
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/hermes-s6/hermes-s6/internal/testenv"
)

// sealedSeed: profiles in every state.
const sealedSeed = `
cd /opt/data
printf '{"gateway_state":"running"}' > gateway_state.json
mkdir -p profiles/alpha profiles/beta profiles/gamma "profiles/Bad Name" profiles/nosoul
echo a > profiles/alpha/SOUL.md
printf '{"gateway_state":"running"}' > profiles/alpha/gateway_state.json
echo b > profiles/beta/SOUL.md
printf '{"desired_state":"stopped","gateway_state":"running"}' > profiles/beta/gateway_state.json
echo g > profiles/gamma/SOUL.md
printf '{not json' > profiles/gamma/gateway_state.json
echo x > "profiles/Bad Name/SOUL.md"
`

// TestSealedLifecycle boots a sealed container (HERMES_S6_MODE=sealed) and
// does, as hermes, what the hermes CLI does: read, start, stop, restart
// gateways; create and delete profiles at run time; control a static
// service; then restarts the container. Every step is done as hermes.
func TestSealedLifecycle(t *testing.T) {
	requireImage(t)
	t.Parallel()
	vol := newVolume(t)
	if err := seed(t.Context(), vol, sealedSeed); err != nil {
		t.Fatal(err)
	}
	b := startBox(t, boxOpts{volume: vol, env: map[string]string{"HERMES_S6_MODE": "sealed"}})

	// Boot: the decisions of open mode, in a sealed scandir.
	b.MustSh(t, `log=/opt/data/logs/container-boot.log
grep -q 'profile=alpha prior_state=running action=started' $log
grep -q 'profile=beta prior_state=stopped action=registered' $log
grep -q 'profile=gamma prior_state=none action=registered' $log
grep -q 'reason=invalid-name' $log
! grep -q 'profile=nosoul' $log
test "$(stat -c %u:%a /run/service)" = 0:755
test "$(stat -c %u /run/service/.s6-svscan/control)" = 0
for s in alpha beta gamma default; do
  d=/run/service/gateway-$s
  test "$(stat -c '%u %a' "$d")" = "0 755"
  test "$(stat -c %u:%a $d/supervise)" = "0:750"
  test "$(stat -c %u:%a $d/log/supervise)" = "0:750"
  test "$(stat -c %u $d/event)" = 0
done
test ! -e /run/service/gateway-nosoul`)
	waitFor(t, 10*time.Second, "alpha and default up, beta down", func() (bool, string) {
		_, out := b.ExecSh(t, `for s in alpha default beta; do /command/s6-svstat -o up /run/service/gateway-$s; done | tr '\n' ' '`)
		return strings.TrimSpace(out) == "true true false", out
	})

	// Start, stop, restart as hermes (polling s6-svstat: no s6-svwait).
	b.MustSh(t, `s=/run/service/gateway-beta
/command/s6-svc -u $s
i=0; until [ "$(/command/s6-svstat -o up $s)" = true ]; do i=$((i+1)); [ $i -lt 200 ] || exit 1; sleep 0.05; done
/command/s6-svc -d $s
i=0; until [ "$(/command/s6-svstat -o up $s)" = false ]; do i=$((i+1)); [ $i -lt 200 ] || exit 1; sleep 0.05; done
# The fake gateway wrote desired_state running when it started, and the
# follower follows the state file; the hermes CLI's "gateway stop" records
# the stop there too, so do the same before expecting beta down after a
# restart, and wait until the follower has put its down file back.
f=/opt/data/profiles/beta/gateway_state.json
printf '{"gateway_state":"stopped","desired_state":"stopped"}\n' > $f.tmp && mv -f $f.tmp $f
i=0; until [ -e $s/down ]; do i=$((i+1)); [ $i -lt 200 ] || exit 1; sleep 0.05; done
/command/s6-svc -t /run/service/gateway-alpha
/command/s6-svc -t /run/service/gateway-alpha/log
/command/s6-svstat /run/service/gateway-alpha/log`)

	// A profile created at run time: its slot appears, and hermes's first
	// s6-svc fails at most with "supervisor not listening"/"no such file".
	b.MustSh(t, `mkdir -p /opt/data/profiles/delta && echo d > /opt/data/profiles/delta/SOUL.md
s=/run/service/gateway-delta
i=0
until out=$(/command/s6-svc -u $s 2>&1); do
  case $out in *ermission*) echo "first s6-svc: $out"; exit 1 ;; esac
  i=$((i+1)); [ $i -lt 1000 ] || { echo "never usable: $out"; exit 1; }
  sleep 0.01
done
i=0; until [ "$(/command/s6-svstat -o up $s)" = true ]; do i=$((i+1)); [ $i -lt 200 ] || exit 1; sleep 0.05; done`)

	// Static s6-rc service control.
	b.MustSh(t, `s=/run/service/static-test
/command/s6-svc -d $s
i=0; until [ "$(/command/s6-svstat -o up $s)" = false ]; do i=$((i+1)); [ $i -lt 200 ] || exit 1; sleep 0.05; done
/command/s6-svc -u $s
i=0; until [ "$(/command/s6-svstat -o up $s)" = true ]; do i=$((i+1)); [ $i -lt 200 ] || exit 1; sleep 0.05; done`)

	// Delete: the slot and its supervisors go.
	b.MustSh(t, `rm -rf /opt/data/profiles/delta
i=0; while [ -e /run/service/gateway-delta ]; do i=$((i+1)); [ $i -lt 200 ] || exit 1; sleep 0.05; done
i=0; while ps -eo args | grep -q '[s]6-supervise gateway-delta'; do i=$((i+1)); [ $i -lt 200 ] || exit 1; sleep 0.05; done`)

	// What hermes cannot do any more.
	for _, step := range []string{
		`mkdir /run/service/evil`,
		`/command/s6-svscanctl -a /run/service`,
		`ln -s /etc/shadow /run/service/gateway-alpha/event/ftrig1:@x`,
		`: > /run/service/gateway-alpha/run`,
		`rm -rf /run/service/gateway-beta`,
	} {
		if code, out := b.ExecSh(t, step); code == 0 {
			t.Errorf("as hermes, %q succeeded in sealed mode: %s", step, out)
		}
	}

	// A restart keeps the decisions: alpha ran (its gateway wrote
	// running), beta was stopped, delta is gone.
	b.restart(t)
	b.MustSh(t, `test "$(stat -c %u /run/service)" = 0
test ! -e /run/service/gateway-delta
test -e /run/service/gateway-beta/down
test ! -e /run/service/gateway-alpha/down`)
}

// attackPrelude starts every attack and check script (run as hermes): the
// paths, and small helpers. has/gone wait up to 10 s for slots to appear
// or go, since root publishes them asynchronously.
const attackPrelude = `S=/run/service H=/opt/data M=/tmp/m X=/root/sentinel PATH=/command:$PATH
# A planted run script: if s6 ever ran it, it would leave id's output in $M.
plant() { printf '#!/bin/sh\nid > /tmp/m/pwned-$$\nexec sleep 3600\n'; }
# The anchored pattern does not match this very shell, whose argv holds it too.
reader() { pgrep -u hermes -f '^reconcile-profiles --internal-reader'; }
follower() { pgrep -u root -f '^/usr/local/bin/reconcile-profiles --follow'; }
# After a kill or a forged record root restarts the reader with backoff.
waitreader() { i=0; until r=$(reader); do i=$((i+1)); [ $i -lt 200 ] || return 1; sleep 0.05; done; echo $r; }
# A reader other than the one a forged record went to (its pid in /tmp/forged).
newreader() { i=0; until r=$(reader) && [ "$r" != "$(cat /tmp/forged)" ]; do i=$((i+1)); [ $i -lt 200 ] || { echo "root kept the reader that sent garbage"; return 1; }; sleep 0.05; done; }
has() { for n; do i=0; until [ -e "$S/gateway-$n" ]; do i=$((i+1)); [ $i -lt 200 ] || { echo "slot gateway-$n missing"; return 1; }; sleep 0.05; done; done; }
gone() { for n; do i=0; while [ -e "$S/gateway-$n" ]; do i=$((i+1)); [ $i -lt 200 ] || { echo "slot gateway-$n still there"; return 1; }; sleep 0.05; done; done; }
`

// rootCheckScript (as root: it must see what hermes cannot) prints the
// state no attack may change, and "BAD ..." lines for what must never be.
//   - obj/sha: every object of the scandir and of s6-rc's service
//     directories outside the slots, with its inode (a replacement is a
//     change) and content; supervise/ and event/ are s6's runtime state.
//     Also /etc/passwd, /etc/shadow and the root-only sentinel.
//   - pid: the follower and perm-watcher (a restart means one died).
//   - slot: each slot's files but down (it follows the state file), by
//     owner, mode and content: a slot may go and come back with its
//     profile, but never differ from the template.
//   - BAD: a slot file not root-only, a slot name that is not a valid
//     profile's, a marker left by a planted script, a root s6-supervise
//     left running in a deleted directory, or a root process that is not
//     the image's own (rootProcessCheck). Root processes are sampled
//     twice, 0.3 s apart, and only those in both count: a slot's ./run
//     starts as root and drops to hermes through s6-setuidgid at once.
const rootCheckScript = `cd /run/service || exit 1
` + rootProcessCheck + `
sample() {
  procs | judge
  # Two supervisors of one name: one of them is a removed slot's that was
  # never pruned (seen once after the churn attack).
  ps -u root -o args= | grep '^s6-supervise ' | sort | uniq -d | sed 's/^/two supervisors: /'
}
first=$(sample)
echo "pid follower $(pgrep -u root -f '^/usr/local/bin/reconcile-profiles --follow' | tr '\n' ' ')"
echo "pid perm-watcher $(pgrep -u root -f '^/usr/local/bin/perm-watcher' | tr '\n' ' ')"
# 2>/dev/null: a removed slot's .gw-gone-N can vanish between readdir and lstat.
outside() { find -H . /run/s6-rc/servicedirs/ -path './gateway-*' -prune -o -path './.gw-*' -prune -o -name supervise -prune -o -name event -prune -o "$@" 2>/dev/null; }
outside -printf 'obj %p %u:%g %m %i %y %l\n'
outside -type f -exec sha256sum {} + | awk '{print "sha " $2 " " $1}'
stat -c 'obj %n %u:%g %a %i' /etc/passwd /etc/shadow /root /root/sentinel
sha256sum /etc/passwd /etc/shadow /root/sentinel | awk '{print "sha " $2 " " $1}'
inslots() { find gateway-* -name supervise -prune -o -name event -prune -o "$@" 2>/dev/null; }
inslots ! -name down -printf 'slot %p %u:%g %m %y\n'
inslots -type f ! -name down -exec sha256sum {} + | awk '{print "slot " $2 " sha=" $1}'
inslots \( ! -user 0 -o ! -group 0 -o -perm /022 \) -printf 'BAD slot object not root-only: %p %u:%g %m\n'
find . -maxdepth 1 -name 'gateway-*' \( -name '*[!a-z0-9_-]*' -o -name 'gateway-[_-]*' -o -name gateway- \) -printf 'BAD slot name: %p\n'
# A supervisor whose slot directory was deleted under it: s6-svscan no
# longer knows it, so nothing will ever stop it (a leak hermes can repeat).
for p in $(pgrep -u root -x s6-supervise); do
  l=$(readlink /proc/$p/cwd 2>/dev/null) || continue
  case $l in *' (deleted)') echo "BAD root s6-supervise of a deleted directory: $p $(tr '\0' ' ' < /proc/$p/cmdline) cwd=$l" ;; esac
done
sleep 0.3
second=$(sample)
printf '%s\n' "$second" | while IFS= read -r l; do
  [ -n "$l" ] && printf '%s\n' "$first" | grep -qxF -- "$l" && echo "BAD root process: $l"
done
for f in /tmp/m/pwned-*; do [ -e "$f" ] && echo "BAD planted script ran: $f: $(cat "$f")"; done
true
`

// rootView is rootCheckScript's output: state lines outside the slots,
// each slot's lines, and what must never be.
type rootView struct {
	state map[string]bool
	slots map[string][]string
	bad   []string
}

func (b *box) rootView(t *testing.T) rootView {
	t.Helper()
	// Not MustSh: set -e would stop at the first grep that finds nothing.
	code, out := b.ExecSh(t, rootCheckScript, AsRoot())
	if code != 0 {
		t.Fatalf("root check exited %d:\n%s", code, out)
	}
	v := rootView{state: map[string]bool{}, slots: map[string][]string{}}
	for _, l := range strings.Split(out, "\n") {
		switch {
		case l == "":
		case strings.HasPrefix(l, "BAD "):
			v.bad = append(v.bad, l)
		case strings.HasPrefix(l, "slot "):
			name, _, _ := strings.Cut(strings.Fields(l)[1], "/")
			v.slots[name] = append(v.slots[name], l)
		default:
			v.state[l] = true
		}
	}
	for _, ls := range v.slots {
		sort.Strings(ls)
	}
	return v
}

// changes lists what differs from before to after that no attack may
// change, and after's BAD lines. A root process seen once is looked at
// again a second later: on a loaded machine a slot's ./run can stay root
// for more than 0.3 s before it drops to hermes.
func (b *box) changes(t *testing.T, before, after rootView) []string {
	t.Helper()
	var why []string
	for l := range before.state {
		if !after.state[l] {
			why = append(why, "gone or changed: "+l)
		}
	}
	for l := range after.state {
		if !before.state[l] {
			why = append(why, "new: "+l)
		}
	}
	for name, ls := range before.slots {
		if ls2, ok := after.slots[name]; ok && strings.Join(ls, "\n") != strings.Join(ls2, "\n") {
			why = append(why, fmt.Sprintf("slot %s changed:\n%s\n->\n%s", name, strings.Join(ls, "\n"), strings.Join(ls2, "\n")))
		}
	}
	var again map[string]bool
	for _, l := range after.bad {
		if strings.HasPrefix(l, "BAD root process: ") {
			if again == nil {
				time.Sleep(time.Second)
				again = map[string]bool{}
				for _, l2 := range b.rootView(t).bad {
					again[l2] = true
				}
			}
			if !again[l] {
				continue
			}
		}
		why = append(why, l)
	}
	sort.Strings(why)
	return why
}

// TestSealedAttacksInContainer runs, as hermes in a sealed container, every
// attack of the host suite (TestSealedAttackSuite) that makes sense in a
// container, and a few only a container has (PID 1, 10,000 profiles).
// After each one it checks, as root, that no root-owned object outside the
// slots changed, that every slot is still the template's, that no planted
// script ran and that no process runs as root that the image did not
// start. The follower's cap is lowered to 40 named profiles to keep the
// 10,000-profile attack light. Each attack that fails any of this counts
// as an escape.
func TestSealedAttacksInContainer(t *testing.T) {
	requireImage(t)
	t.Parallel()
	vol := newVolume(t)
	if err := seed(t.Context(), vol, sealedSeed); err != nil {
		t.Fatal(err)
	}
	// CAP_SYS_PTRACE is for root's exec only, to forge records into the
	// reader's pipe (see there). hermes's execs start with no capability
	// at all (checked below), so what hermes can do is unchanged.
	b := startBox(t, boxOpts{volume: vol, capAdd: []string{"SYS_PTRACE"},
		env: map[string]string{"HERMES_S6_MODE": "sealed", "HERMES_S6_MAX_PROFILES": "40"}})
	b.MustSh(t, `grep -E '^Cap(Inh|Prm|Eff|Amb):' /proc/self/status | grep -v ':	0000000000000000$' && exit 1; true`)
	// As root: a root-only file for the symlink tricks to aim at, and a
	// marker directory a planted script, whoever runs it, can write to.
	b.MustSh(t, `printf 'root only\n' > /root/sentinel && chmod 600 /root/sentinel && mkdir -m 1777 /tmp/m`, AsRoot())
	start := time.Now()

	// A 39-byte ftrig1:@... name: what s6-supervise writes event bytes into.
	const ftrig = `ftrig1:@40000000aaaaaaaa:xxxxxxxxxxxxxxxx`
	attacks := []struct {
		name       string
		script     string // as hermes, after attackPrelude
		expectFail bool   // the script is one operation that must be refused
		check      string // as hermes, set -e: the attack's own outcome
		root       bool   // the script runs as root (see the forged records)
	}{
		// The scandir and the slots: all root's.
		{name: "mkdir a service in the scandir", expectFail: true, script: `mkdir $S/evil && plant > $S/evil/run && chmod +x $S/evil/run`},
		{name: "a dot-named staging dir in the scandir", expectFail: true, script: `mkdir $S/.evil.tmp`},
		{name: "rename a slot", expectFail: true, script: `mv $S/gateway-alpha $S/gateway-moved`},
		{name: "delete a slot", expectFail: true, script: `rm -rf $S/gateway-beta`},
		{name: "replace a slot's run", expectFail: true, script: `plant > $S/gateway-beta/run`},
		{name: "add a file to a slot", expectFail: true, script: `: > $S/gateway-beta/down2`},
		{name: "remove a slot's down", expectFail: true, script: `rm -f $S/gateway-beta/down`},
		{name: "replace log/run", expectFail: true, script: `plant > $S/gateway-beta/log/run`},
		{name: "write into supervise/", expectFail: true, script: `: > $S/gateway-beta/supervise/x`},
		{name: "replace supervise/status", expectFail: true, script: `: > $S/gateway-beta/supervise/status`},
		// s6-supervise (root) writes an event byte into every event/ftrig1:@
		// entry, following symlinks: event/ must stay out of hermes's reach.
		{name: "event/ symlink trick", expectFail: true, script: `ln -s $X $S/gateway-alpha/event/` + ftrig + ` && s6-svc -d $S/gateway-alpha && s6-svc -u $S/gateway-alpha`},
		{name: "event/ symlink trick in log/", expectFail: true, script: `ln -s $X $S/gateway-alpha/log/event/` + ftrig + ` && s6-svc -t $S/gateway-alpha/log`},
		{name: "s6-svwait (subscribes in event/)", expectFail: true, script: `/command/s6-svwait -t 100 -u $S/gateway-alpha`},
		{name: "s6-svscanctl -a", expectFail: true, script: `/command/s6-svscanctl -a $S`},
		{name: "s6-svscanctl -t (stop the tree)", expectFail: true, script: `/command/s6-svscanctl -t $S`},
		{name: "write .s6-svscan/control", expectFail: true, script: `printf an > $S/.s6-svscan/control`},
		{name: "rename .s6-svscan", expectFail: true, script: `mv $S/.s6-svscan $S/.x`},

		// $HERMES_HOME: whatever is there reaches root as a name and a bit.
		// 252 bytes is over hermes's name limit; 248 is a valid name whose
		// gateway-<name> would pass NAME_MAX.
		{name: "hostile profile names", script: `cd $H/profiles && for n in '../evil' 'Evil' '-u' '.hidden' 'a b' "$(printf 'nl\nx')" gateway-x default ` +
			`"$(head -c 252 /dev/zero | tr '\0' a)" "$(head -c 248 /dev/zero | tr '\0' b)"; do mkdir -p -- "$n" 2>/dev/null && : > "$n/SOUL.md" 2>/dev/null; done; true`,
			check: `has gateway-x alpha; test "$(ls -A $S | grep -c '^gateway-default$')" = 1`},
		{name: "symlinked profile dir to /root, state file a symlink to a root-only file", script: `ln -s /root $H/profiles/rootdir; mkdir -p $H/profiles/sym && ln -sf $X $H/profiles/sym/gateway_state.json && : > $H/profiles/sym/SOUL.md`,
			check: `has sym; test ! -e $S/gateway-rootdir`},
		// A reader that opened a FIFO without O_NONBLOCK, or read a state
		// file whole, would hang or bloat: the other profile must still come.
		{name: "FIFO SOUL.md, FIFO state file, 3 MB state file", script: `mkdir -p $H/profiles/fifo $H/profiles/fifostate $H/profiles/huge && mkfifo $H/profiles/fifo/SOUL.md $H/profiles/fifo/gateway_state.json && ` +
			`: > $H/profiles/fifostate/SOUL.md && mkfifo $H/profiles/fifostate/gateway_state.json && : > $H/profiles/huge/SOUL.md && head -c 3000000 /dev/zero > $H/profiles/huge/gateway_state.json`,
			check: `has fifo fifostate huge`},
		{name: "profiles/ swapped for a symlink to / and back", script: `mv $H/profiles $H/profiles.real && ln -s / $H/profiles && sleep 0.3 && rm $H/profiles && mv $H/profiles.real $H/profiles`,
			check: `has alpha beta sym; for n in etc root usr bin; do test ! -e $S/gateway-$n; done`},
		// s6-svscan knows services by device and inode: a slot deleted and
		// made again at once must still get its supervisor.
		{name: "create/delete churn of one name (200 times)", script: `i=0; while [ $i -lt 200 ]; do mkdir -p $H/profiles/churn && : > $H/profiles/churn/SOUL.md; rm -rf $H/profiles/churn; i=$((i+1)); done; mkdir -p $H/profiles/churn && : > $H/profiles/churn/SOUL.md`,
			// The sleep: a supervisor s6-svscan failed to prune is told to
			// exit 1 s after the prune and its directory deleted once it
			// has; one that is still there after that shows here.
			check: `has churn; i=0; until s6-svstat $S/gateway-churn >/dev/null 2>&1; do i=$((i+1)); [ $i -lt 200 ] || { echo "gateway-churn has no supervisor"; exit 1; }; sleep 0.05; done; sleep 6`},
		// The same, longer: on s6 2.13.1 s6-svscan's prune leaves a root
		// s6-supervise of gateway-churn/log running about half the time
		// per round of 200. The follower used to delete its directory
		// anyway, leaving it running there for ever (6 after three rounds
		// by hand): a leak hermes could repeat past the profile cap.
		{name: "create/delete churn of one name (400 more)", script: `i=0; while [ $i -lt 400 ]; do mkdir -p $H/profiles/churn && : > $H/profiles/churn/SOUL.md; rm -rf $H/profiles/churn; i=$((i+1)); done; mkdir -p $H/profiles/churn && : > $H/profiles/churn/SOUL.md`,
			check: `has churn; i=0; until s6-svstat $S/gateway-churn >/dev/null 2>&1; do i=$((i+1)); [ $i -lt 200 ] || { echo "gateway-churn has no supervisor"; exit 1; }; sleep 0.05; done; sleep 6`},

		// The reader is hermes's: hermes may kill, stop or speak for it.
		// Root keeps the slots, restarts it (backoff 100 ms doubling) and
		// validates whatever comes out of its pipe.
		{name: "kill -9 the reader", script: `r=$(reader) && kill -9 $r`,
			check: `mkdir -p $H/profiles/afterkill && : > $H/profiles/afterkill/SOUL.md; has afterkill alpha; test -n "$(reader)"`},
		{name: "kill -STOP/-CONT the reader", script: `r=$(reader) && kill -STOP $r && mkdir -p $H/profiles/duringstop && : > $H/profiles/duringstop/SOUL.md && sleep 0.5 && kill -CONT $r`,
			check: `has duringstop; mkdir -p $H/profiles/afterstop && : > $H/profiles/afterstop/SOUL.md; has afterstop`},
		// hermes cannot reopen its reader's stdout through
		// /proc/<pid>/fd/1: root made the pipe, and a pipe's inode is its
		// maker's, mode 0600 (EACCES). It could still ptrace the reader,
		// which runs as hermes, and write from inside it. Tried as hermes
		// and logged; then root (with CAP_SYS_PTRACE: the pipe is root's
		// but the process is hermes's) writes into the pipe, standing for
		// a hermes that got hold of it: root's validation is what is
		// tested. An invalid stream must make root drop it and start a
		// new reader.
		{name: "open the reader's stdout as hermes", script: `if printf 'snapshot\np ../../etc 1\nend\n' > /proc/$(reader)/fd/1; then echo "hermes wrote into its reader's pipe"; else echo "hermes cannot open its reader's pipe"; fi`,
			check: `has alpha beta default`},
		{name: "forge an invalid name into the reader's pipe", root: true, script: `r=$(waitreader) && echo $r > /tmp/forged && printf 'snapshot\np ../../etc 1\nend\n' > /proc/$r/fd/1`,
			check: `newreader; if ls -A $S | grep -q etc; then echo "a slot named after etc"; exit 1; fi; mkdir -p $H/profiles/afterbad && : > $H/profiles/afterbad/SOUL.md; has afterbad alpha beta default`},
		{name: "forge a 1 MB line into the reader's pipe", root: true, script: `r=$(waitreader) && echo $r > /tmp/forged && head -c 1000000 /dev/zero | tr '\0' a | timeout 10 sh -c 'cat > /proc/$1/fd/1' - $r; true`,
			check: `newreader; mkdir -p $H/profiles/afterlong && : > $H/profiles/afterlong/SOUL.md; has afterlong alpha beta default`},
		// A valid snapshot may make a slot from the template, as creating
		// the profile would: not an escape. The reader's next snapshot is
		// the truth again.
		{name: "forge a valid snapshot naming a new profile", root: true, script: `printf 'snapshot\np default 1\np alpha 1\np beta 0\np forged 1\nend\n' > /proc/$(waitreader)/fd/1`,
			check: `has forged; mkdir -p $H/profiles/afterforge && : > $H/profiles/afterforge/SOUL.md; has afterforge gamma; gone forged`},

		// Over the cap (40 here) profiles get no slot, and the follower lives.
		// The new names sort before the old ones, so the snapshot swaps most
		// slots: root makes a new slot only once a removed one's
		// supervisors are gone, so the count never passes 41, not even
		// for a moment (it used to peak at 46 and 66).
		{name: "10,000 profiles", script: `cd $H/profiles && seq 1 10000 | sed s/^/p/ | xargs mkdir && seq 1 10000 | sed 's|^|p|; s|$|/SOUL.md|' | xargs touch`,
			check: `has p1; max=0 last=-1 same=0 i=0
while [ $same -lt 10 ]; do
  n=$(ls -A $S | grep -c '^gateway-'); [ $n -le $max ] || max=$n
  if [ $n = $last ]; then same=$((same+1)); else same=0 last=$n; fi
  i=$((i+1)); [ $i -lt 300 ] || { echo "slot count never settled: $n"; exit 1; }; sleep 0.1
done
[ $n -le 41 ] || { echo "$n slots over a cap of 40 + default"; exit 1; }
[ $max -le 41 ] || { echo "the slot count peaked at $max over a cap of 40 + default"; exit 1; }
test -n "$(follower)"; echo "$n slots settled, peak $max"`},
		{name: "delete the 10,000 profiles", script: `cd $H/profiles && seq 1 10000 | sed s/^/p/ | xargs rm -rf`,
			check: `i=0; while ls -A $S | grep -q '^gateway-p[0-9]'; do i=$((i+1)); [ $i -lt 600 ] || { echo "named slots left:"; ls -A $S; exit 1; }; sleep 0.05; done; has alpha sym churn`},

		// Root's processes are not hermes's to signal.
		{name: "kill -STOP the follower", expectFail: true, script: `p=$(follower) && kill -STOP $p`},
		{name: "kill -STOP perm-watcher", expectFail: true, script: `p=$(pgrep -u root -f '^/usr/local/bin/perm-watcher') && kill -STOP $p`},
		{name: "kill -STOP PID 1", expectFail: true, script: `kill -STOP 1`},
	}

	before := b.rootView(t)
	attempts, escapes := 0, 0
	reported := map[string]bool{}
	for _, a := range attacks {
		attempts++
		opts := []ExecOption{}
		if a.root {
			opts = append(opts, AsRoot())
		}
		code, out := b.ExecSh(t, attackPrelude+a.script, opts...)
		var why []string
		if a.expectFail && code == 0 {
			why = append(why, "the operation succeeded")
		}
		if a.check != "" {
			c, o := b.ExecSh(t, "set -e\n"+attackPrelude+a.check)
			if c != 0 {
				why = append(why, "check failed: "+strings.TrimSpace(o))
			} else if o = strings.TrimSpace(o); o != "" {
				out += " / " + o
			}
		}
		after := b.rootView(t)
		for _, w := range b.changes(t, before, after) {
			// What lasts (a leaked process) is counted once, against the
			// attack after which it was first seen.
			if strings.HasPrefix(w, "BAD ") {
				if reported[w] {
					continue
				}
				reported[w] = true
			}
			why = append(why, w)
		}
		before = after
		if len(why) > 0 {
			escapes++
			t.Errorf("attack %q: ESCAPE:\n%s\noutput: %s", a.name, strings.Join(why, "\n"), out)
		} else {
			t.Logf("attack %q: held (%s)", a.name, testenv.FirstLine(out))
		}
	}
	// hermes still controls its gateways after all that.
	b.MustSh(t, `s=/run/service/gateway-alpha
/command/s6-svc -d $s
i=0; until [ "$(/command/s6-svstat -o up $s)" = false ]; do i=$((i+1)); [ $i -lt 200 ] || exit 1; sleep 0.05; done
/command/s6-svc -u $s
i=0; until [ "$(/command/s6-svstat -o up $s)" = true ]; do i=$((i+1)); [ $i -lt 200 ] || exit 1; sleep 0.05; done
/command/s6-svstat $s`)
	t.Logf("sealed attack suite (container): %d attempts, %d escapes, in %v", attempts, escapes, time.Since(start).Round(100*time.Millisecond))
	checkPlantedRootProcesses(t, b)
}

// checkPlantedRootProcesses proves that the root check above cannot be
// fooled by a name: root runs (standing for an escape that got root to run
// what hermes planted) a hermes-written copy of sleep named s6-supervise, a
// hermes-written script, the image's own sleep with the stand-in's
// `sleep infinity` arguments outside any service, and the image's own
// s6-supervise on a service directory hermes made. Each must be a BAD root
// process.
func checkPlantedRootProcesses(t *testing.T, b *box) {
	t.Helper()
	b.MustSh(t, `rm -rf /tmp/plant && mkdir /tmp/plant && cp "$(readlink -f /bin/sleep)" /tmp/plant/s6-supervise
printf '#!/bin/sh\nwhile :; do sleep 1; done\n' > /tmp/plant/run && chmod +x /tmp/plant/run
mkdir /tmp/plant/svc && printf '#!/bin/sh\nexec sleep 1000\n' > /tmp/plant/svc/run && chmod +x /tmp/plant/svc/run`)
	// As root: the planted things run as root here by construction.
	out := b.MustSh(t, `start() { setsid "$@" </dev/null >/dev/null 2>&1 & echo $!; }
start /tmp/plant/s6-supervise 1000
start /tmp/plant/run
start sleep infinity
cd /tmp/plant && start "$(readlink -f /command/s6-supervise)" svc`, AsRoot())
	pids := strings.Fields(out)
	defer b.ExecSh(t, "kill "+strings.Join(pids, " "), AsRoot())
	if len(pids) != 4 {
		t.Fatalf("planted root processes: %q", out)
	}
	bad := strings.Join(b.rootView(t).bad, "\n")
	for i, what := range []string{"a hermes-written binary named s6-supervise", "a hermes-written script", "sleep infinity outside any service", "the image's s6-supervise on a directory hermes made"} {
		if !strings.Contains(bad, "BAD root process: pid="+pids[i]+" ") {
			t.Errorf("root check: %s (pid %s) is not reported as a BAD root process; BAD lines:\n%s", what, pids[i], bad)
		}
	}
	t.Logf("planted root processes, all reported:\n%s", bad)
}

// TestSealedAsHermesContainer: sealed mode in a container started as
// hermes (-u hermes) is meaningless (every s6 process is hermes's already):
// it is ignored with a warning, and the container boots as in open mode.
func TestSealedAsHermesContainer(t *testing.T) {
	requireImage(t)
	t.Parallel()
	vol := newVolume(t)
	if err := seed(t.Context(), vol, sealedSeed); err != nil {
		t.Fatal(err)
	}
	b := startBox(t, boxOpts{mode: asHermes, volume: vol, env: map[string]string{"HERMES_S6_MODE": "sealed"}})
	b.MustSh(t, `grep -q 'profile=alpha prior_state=running action=started' /opt/data/logs/container-boot.log
test -d /run/service/gateway-alpha
i=0; until [ "$(/command/s6-svstat -o up /run/service/gateway-alpha)" = true ]; do i=$((i+1)); [ $i -lt 200 ] || exit 1; sleep 0.05; done`)
	waitFor(t, 10*time.Second, "the warning that sealed mode is ignored", func() (bool, string) {
		logs := b.logs(t)
		return strings.Contains(logs, "sealed mode is meaningless"), tail(logs, 2000)
	})
}

// TestSealedFirstControlNeverDenied: hermes's first s6-svc on a new slot
// never says "Permission denied". s6-svc from s6 2.12 on investigates a
// control FIFO it could not open (ENOENT) by opening the service directory
// and then supervise/ for reading; a client whose first open ran just
// before the slot was renamed in, and whose second ran just after, used to
// meet sealed mode's supervise/ and print "something is wrong with the
// .../supervise directory: Permission denied" (2 of 60 profiles on s6
// 2.13.1). The deterministic part puts s6-svc in that second step: a
// supervise/ with the owner and mode of a real slot's, and no control.
// The second part polls 40 new profiles as the hermes CLI does.
func TestSealedFirstControlNeverDenied(t *testing.T) {
	requireImage(t)
	t.Parallel()
	b := startBox(t, boxOpts{env: map[string]string{"HERMES_S6_MODE": "sealed"}})
	b.MustSh(t, `d=/run/service/gateway-default
for s in $d/supervise $d/log/supervise; do
  m=$(stat -c %a $s); g=$(stat -c %g $s); u=$(stat -c %u $s)
  r=/tmp/race$(echo $s | tr / _)
  mkdir -p $r/svc/supervise && chown $u:$g $r/svc/supervise && chmod $m $r/svc/supervise
  chmod 755 $r $r/svc
done`, AsRoot())
	for _, sub := range []string{"supervise", "log/supervise"} {
		dir := "/tmp/race" + strings.ReplaceAll("/run/service/gateway-default/"+sub, "/", "_") + "/svc"
		code, out := b.ExecSh(t, `/command/s6-svc -u `+dir)
		if code == 0 || strings.Contains(out, "ermission") {
			t.Errorf("s6-svc on a slot whose supervise/ has %s's mode and no control yet: exit %d, %q; want a failure that is not \"Permission denied\"", sub, code, out)
		}
	}
	out := b.MustSh(t, `denied=0 i=1
while [ $i -le 40 ]; do
  p=race$i
  mkdir -p /opt/data/profiles/$p && : > /opt/data/profiles/$p/SOUL.md
  n=0
  until out=$(/command/s6-svc -u /run/service/gateway-$p 2>&1); do
    case $out in *ermission*) denied=$((denied+1)); echo "$p: $out" ;; esac
    n=$((n+1)); [ $n -lt 20000 ] || { echo "$p never usable: $out"; exit 1; }
  done
  i=$((i+1))
done
echo "denied=$denied"`)
	if !strings.Contains(out, "denied=0") {
		t.Errorf("first s6-svc on new profiles met \"Permission denied\":\n%s", out)
	}
}
