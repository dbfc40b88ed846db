package e2e

import (
	"fmt"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"
)

// restartSeed is HERMES_HOME for TestBootReconcileAcrossRestarts.
const restartSeed = `
cd /opt/data
printf '{"gateway_state":"running"}' > gateway_state.json
mk() { mkdir -p "profiles/$1"; echo "$1" > "profiles/$1/SOUL.md"; if [ -n "$2" ]; then printf '%s' "$2" > "profiles/$1/gateway_state.json"; fi; }
mk run1 '{"gateway_state":"running"}'
mk run2 '{"gateway_state":"draining"}'
mk run3 '{"gateway_state":"stopped","desired_state":"running"}'
mk stop1 '{"gateway_state":"stopped"}'
mk fail1 '{"gateway_state":"startup_failed"}'
mk corrupt '{"gateway_state":'
mk nostate ''
mk Bad_Name '{"gateway_state":"running"}'
mkdir -p profiles/notaprofile
printf '{"gateway_state":"running"}' > profiles/notaprofile/gateway_state.json
`

// staleScript leaves the runtime files of a dead PID namespace behind, as
// a gateway killed with its container would.
const staleScript = `cd /opt/data
for d in . profiles/run1 profiles/stop1; do echo 4242 > "$d/gateway.pid"; echo '[]' > "$d/processes.json"; done`

// TestBootReconcileAcrossRestarts: on a named volume, boot reconcile
// brings back exactly the profiles whose desired state is running, after
// each of 5 `docker restart`s, and bad profiles do not stop the others; in a
// container started as root and in one started as hermes.
func TestBootReconcileAcrossRestarts(t *testing.T) {
	requireImage(t)
	t.Parallel()
	forEachMode(t, testBootReconcileAcrossRestarts)
}

func testBootReconcileAcrossRestarts(t *testing.T, m mode) {
	vol := newVolume(t)
	if err := seed(t.Context(), vol, restartSeed+staleScript); err != nil {
		t.Fatal(err)
	}
	b := startBox(t, boxOpts{volume: vol, mode: m})

	up := []string{"default", "run1", "run2", "run3"}
	down := []string{"stop1", "fail1", "corrupt", "nostate"}
	// The gateway slots exactly; of the rest only ours: s6-overlay adds its
	// own entries (s6-linux-init-shutdownd, s6rc-fdholder, ...), which this
	// test does not pin down.
	var want []string
	for _, p := range append(append([]string{}, up...), down...) {
		want = append(want, "gateway-"+p)
	}
	sort.Strings(want)

	logLines := func() []string {
		out := strings.TrimSpace(b.MustSh(t, `cat /opt/data/logs/container-boot.log`))
		return strings.Split(out, "\n")
	}
	prev := 0 // boot-log lines before this boot
	check := func(boot int) {
		t.Helper()
		// One exec polls every slot's state, as hermes.
		code, out := b.ExecSh(t, fmt.Sprintf(`i=0
while :; do
  bad=
  for p in %s; do [ "$(/command/s6-svstat -o up /run/service/gateway-$p 2>&1)" = true ] || bad="$bad $p(want up)"; done
  for p in %s; do [ "$(/command/s6-svstat -o up /run/service/gateway-$p 2>&1)" = false ] || bad="$bad $p(want down)"; done
  [ -z "$bad" ] && exit 0
  i=$((i+1)); [ $i -le 400 ] || { echo "$bad"; exit 1; }
  sleep 0.05
done`, strings.Join(up, " "), strings.Join(down, " ")))
		if code != 0 {
			t.Fatalf("boot %d: slots not in their desired state after 20 s: %s", boot, out)
		}
		all := strings.Fields(b.MustSh(t, `ls /run/service`))
		var got []string
		for _, e := range all {
			if strings.HasPrefix(e, "gateway-") {
				got = append(got, e)
			}
		}
		sort.Strings(got)
		if strings.Join(got, " ") != strings.Join(want, " ") {
			t.Errorf("boot %d: gateway slots in /run/service = %v, want %v", boot, got, want)
		}
		for _, ours := range []string{"perm-watcher", "static-test"} {
			if !slices.Contains(all, ours) {
				t.Errorf("boot %d: no %s in /run/service: %v", boot, ours, all)
			}
		}
		b.MustSh(t, `cd /opt/data
for d in . profiles/run1 profiles/stop1; do
  for f in gateway.pid processes.json; do
    if [ -e "$d/$f" ]; then echo "stale $d/$f still there"; exit 1; fi
  done
done`)
		// The last boot logged one line per registered slot.
		lines := logLines()
		log := strings.Join(lines[prev:], "\n")
		seen := map[string]int{}
		for _, l := range lines[prev:] {
			for _, f := range strings.Fields(l) {
				if p, ok := strings.CutPrefix(f, "profile="); ok {
					seen[p]++
				}
			}
		}
		for _, p := range append(append([]string{}, up...), down...) {
			if seen[p] != 1 {
				t.Errorf("boot %d: this boot's log lines name profile %s %d times:\n%s", boot, p, seen[p], log)
			}
		}
		if t.Failed() {
			t.FailNow()
		}
	}
	check(1)
	for i := 2; i <= 6; i++ {
		b.MustSh(t, staleScript)
		prev = len(logLines())
		b.restart(t)
		t0 := time.Now()
		check(i)
		t.Logf("restart %d: same result (checked in %v)", i-1, time.Since(t0).Round(time.Millisecond))
	}
}
