package e2e

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// svscanWarnings are what s6-svscan says when its table and the scandir
// part ways (issue 16): each is counted in the container's log.
var svscanWarnings = []string{"another instance", "unable to chdir", "too many services", "unable to stat", "still exists"}

// TestSealedChurn (issue 16, item 1): a hostile hermes churns profiles in a
// sealed container, and what s6-svscan itself holds is checked, not only
// what root holds. For HERMES_S6_E2E_CHURN_SECONDS (default 120), as
// hermes, 399 profiles are created and deleted every 2 s (with "keep" they
// are the 400 the reader lists), while root, standing in for a hermes that
// ptraces its reader, writes forged snapshots of 401 and of 5 slots into
// the reader's pipe every 2 s, until 10 s before the churn ends: the last
// word is then the reader's own (every churned profile deleted). A forged
// 401 written last would rightly have root build 400 slots after the
// churn, at the pace s6-svscan spawns supervisors on the host, which is
// not what the 30 s bound below measures.
//
// During the churn: "keep" stays up and controllable by hermes, and no
// static service is started a second time ("another instance"). Within 30
// s after it: every slot has its two supervisors (s6-svstat), root's
// s6-supervise count is 2 x slots + the static services counted before,
// s6-svscan's warnings have stopped, root's processes use 0 ticks in 2 s
// (within 10 s), and a new profile is controllable by hermes within 1 s
// (the median of three).
func TestSealedChurn(t *testing.T) {
	requireImage(t)
	secs, err := strconv.Atoi(envOr("HERMES_S6_E2E_CHURN_SECONDS", "120"))
	if err != nil || secs < 0 {
		t.Fatalf("HERMES_S6_E2E_CHURN_SECONDS=%q: want a number of seconds", envOr("HERMES_S6_E2E_CHURN_SECONDS", ""))
	}
	if secs == 0 {
		t.Skip("HERMES_S6_E2E_CHURN_SECONDS=0 turns the churn off (unset, it runs for 120 s)")
	}
	t.Parallel()
	// CAP_SYS_PTRACE for root's exec only, to forge snapshots into the
	// reader's pipe (as in TestSealedAttacksInContainer).
	b := startBox(t, boxOpts{env: map[string]string{"HERMES_S6_MODE": "sealed"}, capAdd: []string{"SYS_PTRACE"}})

	b.MustSh(t, `P=/opt/data/profiles S=/run/service
mkdir -p $P/keep && : > $P/keep/SOUL.md
i=0; until /command/s6-svc -u $S/gateway-keep 2>/dev/null; do i=$((i+1)); [ $i -lt 200 ] || { echo "keep never controllable"; exit 1; }; sleep 0.05; done`)
	static := rootSupervisors(t, b)
	if static.gateway != 4 { // default and keep, each with its log/
		t.Fatalf("before the churn: %d root s6-supervise on gateway slots, want 4", static.gateway)
	}

	// The churn, in the background inside the container: docker exec
	// returns at once.
	b.MustSh(t, fmt.Sprintf(`cd /opt/data/profiles
L=$(i=1; while [ $i -le 399 ]; do echo c$i; i=$((i+1)); done)
nohup sh -c 'end=$(( $(date +%%s) + %d )); n=0
while [ $(date +%%s) -lt $end ]; do
  mkdir -p $0 2>/dev/null; for d in $0; do : > $d/SOUL.md; done; sleep 1
  rm -rf $0; sleep 1; n=$((n+1))
done; echo $n > /tmp/churn.done' "$L" >/tmp/churn.log 2>&1 &`, secs))
	// Forged snapshots as root (see TestSealedAttacksInContainer): each
	// under PIPE_BUF bytes, so one write, never interleaved with the
	// reader's own.
	b.MustSh(t, fmt.Sprintf(`{ echo snapshot; echo 'p default 1'; echo 'p keep 1'; i=1; while [ $i -le 399 ]; do echo "p f$i 1"; i=$((i+1)); done; echo end; } > /tmp/big
{ echo snapshot; echo 'p default 1'; echo 'p keep 1'; echo 'p f1 1'; echo 'p f2 0'; echo 'p f3 1'; echo end; } > /tmp/small
[ $(wc -c < /tmp/big) -lt 4096 ] || { echo "forged snapshot over PIPE_BUF"; exit 1; }
nohup sh -c 'end=$(( $(date +%%s) + %d )); n=0
while [ $(date +%%s) -lt $end ]; do
  for f in /tmp/big /tmp/small; do
    r=$(pgrep -u hermes -f "^reconcile-profiles --internal-reader") && cat $f > /proc/$r/fd/1 2>/dev/null && n=$((n+1)); sleep 1
  done
done; echo $n > /tmp/forge.done' >/tmp/forge.log 2>&1 &`, max(secs-10, 1)), AsRoot())

	start := time.Now()
	checks := 0
	for time.Since(start) < time.Duration(secs)*time.Second {
		// "keep" is not churned: up, and hermes controls it, throughout.
		if code, out := b.ExecSh(t, `S=/run/service/gateway-keep
/command/s6-svstat -o up $S | grep -qx true || { /command/s6-svstat $S; echo "keep not up"; exit 1; }
/command/s6-svc -u $S`); code != 0 {
			t.Errorf("%v into the churn: gateway-keep: %s", time.Since(start).Round(time.Second), out)
		}
		checks++
		time.Sleep(3 * time.Second)
	}
	waitFor(t, 60*time.Second, "the churn scripts to end", func() (bool, string) {
		code, out := b.ExecSh(t, `cat /tmp/churn.done /tmp/forge.done`, AsRoot())
		return code == 0, out
	})
	ended := time.Now()
	rounds := b.MustSh(t, `echo churn $(cat /tmp/churn.done) forged $(cat /tmp/forge.done)`, AsRoot())
	if strings.Contains(rounds, "forged 0") {
		t.Errorf("no forged snapshot was written into the reader's pipe: %s", rounds)
	}
	during := svscanCounts(t, b)
	t.Logf("churn over %d s: rounds %s; keep checked %d times; s6-svscan said: %v", secs, strings.TrimSpace(rounds), checks, during)
	if during["another instance"] > 0 {
		t.Errorf("s6-svscan started a static service a second time %d times (\"another instance\")", during["another instance"])
	}

	// Within 30 s: the slots and s6-svscan agree again.
	waitFor(t, 30*time.Second, "every slot supervised, and root's s6-supervise = 2 x slots + static", func() (bool, string) {
		code, out := b.ExecSh(t, `n=0; for s in /run/service/gateway-*; do
  for d in $s $s/log; do /command/s6-svstat $d >/dev/null 2>&1 || { echo "no supervisor: $d"; exit 1; }; done; n=$((n+1))
done; echo $n`)
		if code != 0 {
			return false, out
		}
		slots, _ := strconv.Atoi(strings.TrimSpace(out))
		c := rootSupervisors(t, b)
		return c.gateway == 2*slots && c.other == static.other,
			fmt.Sprintf("%d slots, root s6-supervise on slots %d, others %d (before: %d)", slots, c.gateway, c.other, static.other)
	})
	settled := time.Now()
	waitFor(t, 10*time.Second, "root's processes idle (0 ticks in 2 s)", func() (bool, string) {
		out := b.MustSh(t, `snap() { for f in $(grep -l '^Uid:[[:space:]]*0[[:space:]]' /proc/[0-9]*/status 2>/dev/null); do cat ${f%/status}/stat 2>/dev/null; done | awk '{ print $1, $14 + $15 }'; }
snap > /tmp/ticks.a; sleep 2; snap > /tmp/ticks.b
awk 'NR == FNR { a[$1] = $2; next } { d += $2 - a[$1] } END { print d + 0 }' /tmp/ticks.a /tmp/ticks.b`)
		return strings.TrimSpace(out) == "0", "root ticks in 2 s: " + out
	})
	// s6-svscan's complaints have stopped (a loop of failed supervisor
	// spawns would go on here).
	c1 := svscanCounts(t, b)
	time.Sleep(3 * time.Second)
	if c2 := svscanCounts(t, b); fmt.Sprint(c1) != fmt.Sprint(c2) {
		t.Errorf("s6-svscan still complains after the churn: %v, 3 s later %v", c1, c2)
	}
	// Three new profiles, one after the other: the median is what is
	// judged, so that one scheduling hiccup of the shared CI host (the
	// suite's image builds run beside this test) is not taken for root's.
	var probes []int
	for i := 1; i <= 3; i++ {
		out := b.MustSh(t, fmt.Sprintf(`P=/opt/data/profiles S=/run/service
t0=$(date +%%s%%N); mkdir $P/probe%d && : > $P/probe%d/SOUL.md
until /command/s6-svc -u $S/gateway-probe%d 2>/dev/null; do [ $(( $(date +%%s%%N) - t0 )) -lt 10000000000 ] || { echo "probe%d not controllable in 10 s"; exit 1; }; sleep 0.01; done
echo $(( ($(date +%%s%%N) - t0) / 1000000 ))`, i, i, i, i))
		ms, _ := strconv.Atoi(strings.TrimSpace(out))
		probes = append(probes, ms)
	}
	ms := slices.Sorted(slices.Values(probes))[1]
	t.Logf("after the churn: settled in %v, idle, new profiles controllable in %v ms (median %d); root's follower said: %v",
		settled.Sub(ended).Round(100*time.Millisecond), probes, ms, followerCounts(t, b))
	if ms > 1000 {
		t.Errorf("new profiles after the churn were controllable after %v ms (median %d), want within 1 s", probes, ms)
	}
}

type supervisorCount struct{ gateway, other int }

// rootSupervisors counts root's s6-supervise processes, on gateway slots
// (and their log/) and on anything else (the static services).
func rootSupervisors(t *testing.T, b *box) supervisorCount {
	t.Helper()
	var c supervisorCount
	for _, l := range strings.Split(b.MustSh(t, `ps -u root -o args= | grep '^s6-supervise ' || :`), "\n") {
		switch {
		case strings.HasPrefix(l, "s6-supervise gateway-"):
			c.gateway++
		case strings.HasPrefix(l, "s6-supervise "):
			c.other++
		}
	}
	return c
}

// svscanCounts counts s6-svscan's warnings (and those of the supervisors
// it spawns: "another instance" is s6-supervise's) in the container's log.
func svscanCounts(t *testing.T, b *box) map[string]int {
	t.Helper()
	return logCounts(t, b, func(l string) bool {
		return strings.Contains(l, "s6-svscan") || strings.Contains(l, "s6-supervise")
	}, svscanWarnings)
}

// followerNotes are what root's follower says when s6-svscan did not do
// what it asked: slots made again (verify.go), scans not over in time.
var followerNotes = []string{"supervisors never came up", "did not read its control FIFO in time", "still runs in a removed slot"}

// followerCounts counts followerNotes in the container's log, and logs the
// first line of each.
func followerCounts(t *testing.T, b *box) map[string]int {
	t.Helper()
	first := map[string]string{}
	m := logCounts(t, b, func(l string) bool {
		if !strings.Contains(l, `"message"`) {
			return false
		}
		for _, n := range followerNotes {
			if strings.Contains(l, n) && first[n] == "" {
				first[n] = l
			}
		}
		return true
	}, followerNotes)
	for _, n := range followerNotes {
		if first[n] != "" {
			t.Logf("root's follower, first of %d %q: %s", m[n], n, first[n])
		}
	}
	return m
}

// logCounts counts, in the container's log, the lines that pass keep and
// contain each of subs.
func logCounts(t *testing.T, b *box, keep func(string) bool, subs []string) map[string]int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	r, err := b.Logs(ctx)
	if err != nil {
		t.Fatalf("docker logs: %v", err)
	}
	var buf bytes.Buffer
	_, _ = io.Copy(&buf, r)
	m := map[string]int{}
	for _, l := range strings.Split(buf.String(), "\n") {
		if !keep(l) {
			continue
		}
		for _, w := range subs {
			if strings.Contains(l, w) {
				m[w]++
			}
		}
	}
	return m
}
