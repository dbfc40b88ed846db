package e2e

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// slotScript stages a gateway slot the way the hermes CLI does (as hermes):
// build /run/service/.gateway-<p>.tmp/ with the files of CONTRACT.md's slot
// table, rename it into place, ask s6-svscan to rescan. The slot starts
// down (a `down` file), so that tests decide when it runs.
//
// extraEnv lines are exported by run before it execs the (fake) gateway.
func slotScript(profile string, extraEnv ...string) string {
	env := ""
	for _, e := range extraEnv {
		env += "export " + e + "\n"
	}
	s := `s=/run/service
tmp=$s/.gateway-@P@.tmp
rm -rf "$tmp"
mkdir -p "$tmp/log"
echo longrun > "$tmp/type"
cat > "$tmp/run" <<'EOS'
#!/command/with-contenv sh
set -e
export HOME=/opt/data
cd /opt/data
export HERMES_S6_SUPERVISED_CHILD=1
export HERMES_SUPERVISED_CHILD=1
# Through s6-setuidgid only when the supervisor is root's (CONTRACT.md):
# in a container started as hermes it is hermes's already.
if [ "$(id -u)" = 0 ]; then set -- /command/s6-setuidgid hermes; else set --; fi
@ENV@exec "$@" hermes -p @P@ gateway run --replace
EOS
cat > "$tmp/finish" <<'EOS'
#!/bin/sh
case "$1" in 0|78) exit 125 ;; esac
exit 0
EOS
cat > "$tmp/log/run" <<'EOS'
#!/command/with-contenv sh
dir="${HERMES_HOME:-/opt/data}/logs/gateways/@P@"
if [ "$(id -u)" = 0 ]; then set -- /command/s6-setuidgid hermes; else set --; fi
"$@" mkdir -p "$dir"
"$@" rm -f "$dir/lock"
exec "$@" /command/s6-log 1 n10 s1000000 T "$dir"
EOS
chmod 0755 "$tmp/run" "$tmp/finish" "$tmp/log/run"
: > "$tmp/down"
mv "$tmp" "$s/gateway-@P@"
/command/s6-svscanctl -a "$s"
`
	s = strings.ReplaceAll(s, "@ENV@", env)
	return strings.ReplaceAll(s, "@P@", profile)
}

// unregisterScript is the hermes CLI's unregister: stop, wait, delete the
// slot and have s6-svscan drop its supervisors.
//
// The delete comes before `s6-svscanctl -an`: -n only drops supervisors
// whose directory is gone from the scandir, so in the other order (as
// CONTRACT.md lists the steps) s6-supervise of the slot and of its log/
// stay alive until some later -an (checked with s6 2.11.3).
func unregisterScript(profile string) string {
	return strings.ReplaceAll(`s=/run/service/gateway-@P@
/command/s6-svc -d "$s"
/command/s6-svwait -t 10000 -D "$s"
rm -rf "$s"
/command/s6-svscanctl -an /run/service
`, "@P@", profile)
}

// usableScript exits 0 once hermes can use the service dir d: write its
// control FIFO, subscribe in event/, read its status.
const usableScript = `test -p "$d/supervise/control" && test -w "$d/supervise/control" && test -w "$d/event" && /command/s6-svstat "$d" >/dev/null 2>&1`

// waitControllable polls (in one exec) until hermes can control svc: a new
// slot gets supervise/ a little after the rescan, and its owner a little
// after that (perm-watcher).
func waitControllable(t testing.TB, b *box, svc string) {
	t.Helper()
	code, out := b.ExecSh(t, fmt.Sprintf(`d=%s
i=0
until %s; do
  i=$((i+1)); [ $i -le 400 ] || { ls -la "$d" "$d/supervise" 2>&1; exit 1; }
  sleep 0.05
done`, svc, usableScript))
	if code != 0 {
		t.Fatalf("%s not controllable by hermes after 20 s:\n%s", svc, out)
	}
}

// waitUp polls until s6-svstat -o up of svc (as hermes) prints want.
func waitUp(t testing.TB, b *box, svc, want string) {
	t.Helper()
	waitFor(t, 20*time.Second, svc+" up="+want, func() (bool, string) {
		code, out := b.Exec(t, []string{"/command/s6-svstat", "-o", "up", svc})
		return code == 0 && strings.TrimSpace(out) == want, out
	})
}

// waitGateway polls until the (fake) gateway of profile is up and has
// written its state file with its pid: from then on it handles SIGTERM.
// It returns the pid.
func waitGateway(t testing.TB, b *box, profile string) string {
	t.Helper()
	slot := "/run/service/gateway-" + profile
	state := "/opt/data/profiles/" + profile + "/gateway_state.json"
	if profile == "default" {
		state = "/opt/data/gateway_state.json"
	}
	var pid string
	waitFor(t, 20*time.Second, "gateway "+profile+" running with its state file", func() (bool, string) {
		code, out := b.ExecSh(t, fmt.Sprintf(`/command/s6-svstat -o up,pid %s && cat %s`, slot, state))
		f := strings.Fields(out)
		if code != 0 || len(f) < 3 || f[0] != "true" {
			return false, out
		}
		pid = f[1]
		return strings.Contains(out, `"gateway_state":"running"`) && strings.Contains(out, `"pid":`+pid+`,`), out
	})
	return pid
}

// supervisorsOf lists s6-supervise processes whose argument starts with name.
func supervisorsOf(t testing.TB, b *box, name string) string {
	t.Helper()
	_, out := b.ExecSh(t, fmt.Sprintf(`for p in /proc/[0-9]*; do
  a=$(tr '\0' ' ' < "$p/cmdline" 2>/dev/null) || continue
  case "$a" in "s6-supervise %s"*) echo "${p#/proc/} $a" ;; esac
done; true`, name))
	return strings.TrimSpace(out)
}

// TestGatewayLifecycle: what the hermes CLI does at run time, as hermes, in
// a container started as root and in one started as hermes.
func TestGatewayLifecycle(t *testing.T) {
	requireImage(t)
	t.Parallel()
	forEachMode(t, testGatewayLifecycle)
}

func testGatewayLifecycle(t *testing.T, m mode) {
	b := sharedIn(t, m)
	const p = "life"
	slot := "/run/service/gateway-" + p

	// A gateway that dies of SIGTERM's default action would be restarted by
	// finish; the fake exits 143 to look the same (see TestGatewayCleanExit).
	register := func() {
		b.MustSh(t, slotScript(p, "HERMES_FAKE_TERM_EXIT=143"))
		waitControllable(t, b, slot)
		waitControllable(t, b, slot+"/log")
	}
	register()

	// Up.
	b.MustSh(t, `s=/run/service/gateway-life
/command/s6-svc -u "$s"
/command/s6-svwait -t 10000 -u "$s"
test "$(/command/s6-svstat -o up "$s")" = true`)
	pid1 := waitGateway(t, b, p)

	// Restart: -t kills it, s6-supervise starts it again with a new pid.
	b.MustSh(t, `/command/s6-svc -t /run/service/gateway-life`)
	waitFor(t, 10*time.Second, "a restarted gateway (new pid)", func() (bool, string) {
		code, out := b.Exec(t, []string{"/command/s6-svstat", "-o", "up,pid", slot})
		f := strings.Fields(out)
		return code == 0 && len(f) == 2 && f[0] == "true" && f[1] != pid1 && f[1] != "-1", out
	})
	waitGateway(t, b, p)

	// Down, and wait for it.
	b.MustSh(t, `s=/run/service/gateway-life
/command/s6-svc -d "$s"
/command/s6-svwait -t 10000 -D "$s"
test "$(/command/s6-svstat -o up "$s")" = false`)

	// The log/ sub-service is controllable too.
	b.MustSh(t, `l=/run/service/gateway-life/log
test "$(/command/s6-svstat -o up "$l")" = true
/command/s6-svc -d "$l"
/command/s6-svwait -t 10000 -D "$l"
/command/s6-svc -u "$l"
/command/s6-svwait -t 10000 -u "$l"
test -d /opt/data/logs/gateways/life`)

	// Unregister leaves nothing behind.
	b.MustSh(t, unregisterScript(p))
	waitFor(t, 10*time.Second, "no supervisor left for gateway-life", func() (bool, string) {
		out := supervisorsOf(t, b, "gateway-"+p)
		return out == "", out
	})
	if out := b.MustSh(t, `ls -A /run/service`); strings.Contains(out, p) {
		t.Errorf("left in /run/service after unregister:\n%s", out)
	}

	// The same name again.
	register()
	b.MustSh(t, `s=/run/service/gateway-life
/command/s6-svc -u "$s"
/command/s6-svwait -t 10000 -u "$s"
test "$(/command/s6-svstat -o up "$s")" = true`)
	b.MustSh(t, unregisterScript(p))
}

// TestGatewayCleanExit pins down a consequence of the slot's finish: a
// gateway that exits 0 on SIGTERM (a clean shutdown) is "permanently down"
// (finish exits 125), so `s6-svc -t` stops it rather than restarting it. A
// restart of such a gateway is `s6-svc -d` then `-u`.
func TestGatewayCleanExit(t *testing.T) {
	requireImage(t)
	t.Parallel()
	b := shared(t)
	slot := "/run/service/gateway-clean"
	b.MustSh(t, slotScript("clean"))
	waitControllable(t, b, slot)
	b.MustSh(t, `s=/run/service/gateway-clean
/command/s6-svc -u "$s"`)
	waitGateway(t, b, "clean")
	b.MustSh(t, `s=/run/service/gateway-clean
/command/s6-svc -t "$s"
/command/s6-svwait -t 10000 -D "$s"`)
	// s6-svwait -D returns once finish has run and s6-supervise has decided:
	// a service it would restart shows "want up" while down.
	if out := b.MustSh(t, `/command/s6-svstat /run/service/gateway-clean`); !strings.HasPrefix(out, "down (exitcode 0)") || strings.Contains(out, "want up") {
		t.Errorf("after -t of a gateway exiting 0: %q, want down with exit code 0 and not wanted up (finish exit 125)", out)
	}
	b.MustSh(t, `s=/run/service/gateway-clean
/command/s6-svc -u "$s"
/command/s6-svwait -t 10000 -u "$s"`)
	b.MustSh(t, unregisterScript("clean"))
}
