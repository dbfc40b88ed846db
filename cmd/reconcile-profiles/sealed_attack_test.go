package main

import (
	"os/exec"

	"crypto/sha256"
	"fmt"
	"github.com/hermes-s6/hermes-s6/internal/testenv"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// rootState is what no attack may change: every object of the scandir
// that is not inside a slot's supervise/ or event/ (s6's own runtime
// state), every file of the slot template with its content, the root-only
// sentinel file, and who owns it.
func (e *env) rootState(t *testing.T, sentinel string) map[string]string {
	t.Helper()
	out := map[string]string{}
	_ = filepath.WalkDir(e.scandir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil
		}
		rel, _ := filepath.Rel(e.scandir, p)
		if strings.HasPrefix(rel, ".gw-") {
			// Root's own work in progress (a slot being staged, the
			// shared template files): gone once published.
			if d.IsDir() {
				return fs.SkipDir
			}
			return nil
		}
		parts := strings.Split(rel, string(filepath.Separator))
		for _, c := range parts {
			if c == "supervise" || c == "event" {
				return fs.SkipDir
			}
		}
		var st syscall.Stat_t
		if syscall.Lstat(p, &st) != nil {
			return nil
		}
		v := fmt.Sprintf("%d:%d %o", st.Uid, st.Gid, st.Mode)
		if !strings.HasPrefix(rel, "gateway-") {
			// Outside the slots, even a replacement with the same content
			// is a change. A slot may go and come back with its profile:
			// only its content, owner and mode matter.
			v += fmt.Sprintf(" ino=%d", st.Ino)
		}
		if st.Mode&syscall.S_IFMT == syscall.S_IFREG {
			b, _ := os.ReadFile(p)
			v += fmt.Sprintf(" sha=%x", sha256.Sum256(b))
		}
		out[rel] = v
		return nil
	})
	b, _ := os.ReadFile(sentinel)
	var st syscall.Stat_t
	_ = syscall.Lstat(sentinel, &st)
	out["<sentinel>"] = fmt.Sprintf("%d %o %q", st.Uid, st.Mode, b)
	return out
}

// rootProcs lists processes running as root below e.base that are not the
// image's own (s6-svscan, s6-supervise, the follower); sampled twice, so a
// run script that is about to drop to hermes through s6-setuidgid is not
// counted.
func (e *env) rootProcs() []string {
	sample := func() map[int]string {
		m := map[int]string{}
		for _, pid := range pidsBelow(e.base) {
			var st syscall.Stat_t
			if syscall.Stat("/proc/"+strconv.Itoa(pid), &st) != nil || st.Uid != 0 {
				continue
			}
			comm, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/comm")
			c := strings.TrimSpace(string(comm))
			switch c {
			case "s6-svscan", "s6-supervise", "reconcile-profi":
				continue
			}
			// The slot template's own scripts (./run, ./finish, log's)
			// start as root and drop to the user through s6-setuidgid
			// (s6-applyuidgid); the root-state check proves that what runs
			// in a slot is the template's.
			argv, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline")
			args := strings.Split(strings.TrimRight(string(argv), "\x00"), "\x00")
			cwd, _ := os.Readlink("/proc/" + strconv.Itoa(pid) + "/cwd")
			if (c == "sh" && len(args) >= 2 && (args[1] == "./run" || args[1] == "./finish") ||
				c == "s6-setuidgid" || c == "s6-applyuidgid") && strings.HasPrefix(cwd, e.scandir+"/gateway-") {
				continue
			}
			m[pid] = c + " " + strings.Join(args, " ") + " cwd=" + cwd
		}
		return m
	}
	a := sample()
	time.Sleep(300 * time.Millisecond)
	b := sample()
	var out []string
	for pid, c := range b {
		if a[pid] == c {
			out = append(out, fmt.Sprintf("%d(%s)", pid, c))
		}
	}
	sort.Strings(out)
	return out
}

type attack struct {
	name   string
	script string // run as hermes; $S scandir, $H HERMES_HOME, $M marker dir, $X sentinel
	// expectFail: the script must fail (it is one refused operation).
	expectFail bool
	// check, if set, asserts the attack's specific outcome.
	check func(t *testing.T, e *env) string
}

// TestSealedAttackSuite runs, as hermes, every way in we know of against a
// sealed scandir with a real s6-svscan, and after each one checks that no
// root-owned object outside the slots changed, that no marker was written
// (a planted run script ran), and that no process runs as root that the
// image did not start. It reports the count of attempts and escapes.
func TestSealedAttackSuite(t *testing.T) {
	e := newEnv(t, "s6-svscan")
	// A root-only file: the target of the event/ symlink trick.
	sentinel := filepath.Join(e.base, "root-secret")
	writeFile(t, sentinel, "root only\n", 0o600)
	marker := filepath.Join(e.base, "marker")
	os.MkdirAll(marker, 0o777)
	os.Chmod(marker, 0o1777)
	e.startSvscan(t)
	f := e.startFollower(t, "--max-profiles", "40")
	waitFor(t, "alpha up", 5*time.Second, func() bool { return strings.HasPrefix(svstat(t, filepath.Join(e.scandir, "gateway-alpha")), "up") })

	plant := `printf '#!/bin/sh\nid > $M/pwned-$$\nexec sleep 3600\n'`
	// The reader: the follower's child (found in Go: a shell loop over
	// /proc is slow on a busy machine).
	readerPid := func() string {
		procs, _ := filepath.Glob("/proc/[0-9]*/stat")
		for _, p := range procs {
			b, err := os.ReadFile(p)
			if err != nil {
				continue
			}
			fields := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
			if len(fields) > 1 && fields[1] == strconv.Itoa(f.cmd.Process.Pid) {
				return filepath.Base(filepath.Dir(p))
			}
		}
		return ""
	}
	profilesHave := func(want ...string) func(t *testing.T, e *env) string {
		return func(t *testing.T, e *env) string {
			for _, n := range want {
				if n[0] == '!' {
					if exists(filepath.Join(e.scandir, "gateway-"+n[1:])) {
						return "slot gateway-" + n[1:] + " exists"
					}
					continue
				}
				deadline := time.Now().Add(5 * time.Second)
				for !exists(filepath.Join(e.scandir, "gateway-"+n)) {
					if time.Now().After(deadline) {
						return "slot gateway-" + n + " missing"
					}
					time.Sleep(5 * time.Millisecond)
				}
			}
			return ""
		}
	}
	attacks := []attack{
		{name: "mkdir a service in the scandir", expectFail: true, script: `mkdir $S/evil`},
		{name: "stage and rename a service", expectFail: true, script: `mkdir $S/.evil.tmp`},
		{name: "rename a slot", expectFail: true, script: `mv $S/gateway-alpha $S/gateway-x`},
		{name: "delete a slot", expectFail: true, script: `rm -rf $S/gateway-beta`},
		{name: "replace a slot's run", expectFail: true, script: plant + ` > $S/gateway-beta/run`},
		{name: "add a file to a slot", expectFail: true, script: `: > $S/gateway-beta/down2`},
		{name: "remove a slot's down", expectFail: true, script: `rm -f $S/gateway-beta/down`},
		{name: "replace log/run", expectFail: true, script: plant + ` > $S/gateway-beta/log/run`},
		{name: "write into supervise/", expectFail: true, script: `: > $S/gateway-beta/supervise/x`},
		{name: "replace supervise/status", expectFail: true, script: `: > $S/gateway-beta/supervise/status`},
		{name: "event/ symlink trick", expectFail: true, script: `ln -s $X $S/gateway-alpha/event/ftrig1:@40000000aaaaaaaa:xxxxxxxxxxxxxxxx`},
		{name: "event/ symlink trick in log/", expectFail: true, script: `ln -s $X $S/gateway-alpha/log/event/ftrig1:@40000000aaaaaaaa:xxxxxxxxxxxxxxxx`},
		{name: "s6-svwait (subscribes in event/)", expectFail: true, script: `s6-svwait -t 100 -u $S/gateway-alpha`},
		{name: "s6-svscanctl -a", expectFail: true, script: `s6-svscanctl -a $S`},
		{name: "s6-svscanctl -t (stop the tree)", expectFail: true, script: `s6-svscanctl -t $S`},
		{name: "write .s6-svscan/control", expectFail: true, script: `printf an > $S/.s6-svscan/control`},
		{name: "rename .s6-svscan", expectFail: true, script: `mv $S/.s6-svscan $S/.x`},
		{name: "hostile profile names", script: `cd $H/profiles && for n in '../evil' 'Evil' '-u' '.hidden' 'a b' "$(printf 'nl\nx')" gateway-x default ` +
			`"$(head -c 252 /dev/zero | tr '\0' a)" "$(head -c 248 /dev/zero | tr '\0' b)"; do mkdir -p -- "$n" 2>/dev/null && : > "$n/SOUL.md" 2>/dev/null; done; true`,
			check: profilesHave("gateway-x", "!default2")},
		{name: "symlinked profile to a root-only directory", script: `ln -s /root $H/profiles/rootdir; mkdir -p $H/profiles/sym && ln -sf $X $H/profiles/sym/gateway_state.json && : > $H/profiles/sym/SOUL.md`,
			check: profilesHave("sym", "!rootdir")},
		{name: "FIFO and huge files", script: `mkdir -p $H/profiles/fifo && mkfifo $H/profiles/fifo/SOUL.md $H/profiles/fifo/gateway_state.json.x; ` +
			`mkfifo $H/profiles/fifo/gateway_state.json 2>/dev/null; mkdir -p $H/profiles/huge && : > $H/profiles/huge/SOUL.md && head -c 3000000 /dev/zero > $H/profiles/huge/gateway_state.json`,
			check: profilesHave("fifo", "huge")},
		{name: "profiles/ replaced by a symlink to /", script: `mv $H/profiles $H/profiles.real && ln -s / $H/profiles && sleep 0.3 && rm $H/profiles && mv $H/profiles.real $H/profiles`,
			check: profilesHave("alpha", "beta")},
		{name: "more profiles than the cap", script: `cd $H/profiles && i=0; while [ $i -lt 300 ]; do mkdir -p p$i && : > p$i/SOUL.md; i=$((i+1)); done`,
			check: func(t *testing.T, e *env) string {
				time.Sleep(time.Second)
				m, _ := filepath.Glob(filepath.Join(e.scandir, "gateway-*"))
				if len(m) > 41 {
					return fmt.Sprintf("%d slots over a cap of 40 named + default", len(m))
				}
				return ""
			}},
		{name: "remove the extra profiles", script: `cd $H/profiles && rm -rf p[0-9]*`, check: profilesHave("alpha", "!p1")},
		{name: "create/delete churn of one name", script: `i=0; while [ $i -lt 200 ]; do mkdir -p $H/profiles/churn && : > $H/profiles/churn/SOUL.md; rm -rf $H/profiles/churn; i=$((i+1)); done; mkdir -p $H/profiles/churn && : > $H/profiles/churn/SOUL.md`,
			check: profilesHave("churn")},
		{name: "kill the reader", script: `kill -9 $(cat $M/reader.pid)`, check: func(t *testing.T, e *env) string {
			time.Sleep(500 * time.Millisecond)
			if out, err := e.asHermes(`mkdir -p $H/profiles/afterkill && : > $H/profiles/afterkill/SOUL.md`); err != nil {
				return out
			}
			return profilesHave("afterkill", "alpha")(t, e)
		}},
		{name: "stop the reader", script: `kill -STOP $(cat $M/reader.pid); sleep 0.5; kill -CONT $(cat $M/reader.pid)`, check: profilesHave("alpha")},
		{name: "forge records into the reader's pipe", script: `printf 'snapshot\np ../../etc 1\nend\n' > /proc/$(cat $M/reader.pid)/fd/1`,
			check: func(t *testing.T, e *env) string {
				time.Sleep(300 * time.Millisecond)
				return profilesHave("alpha", "beta", "default")(t, e)
			}},
		{name: "forge a huge line into the reader's pipe", script: `head -c 1000000 /dev/zero | tr '\0' a > /proc/$(cat $M/reader.pid)/fd/1; true`,
			check: profilesHave("alpha", "beta", "default")},
		{name: "forge a valid snapshot naming a new profile", script: `printf 'snapshot\np default 1\np alpha 1\np beta 0\np forged 1\nend\n' > /proc/$(cat $M/reader.pid)/fd/1`,
			check: func(t *testing.T, e *env) string {
				// Root makes it from the template, as for any profile
				// hermes could create: not an escape, checked to be the
				// template (the root-state check covers its files).
				time.Sleep(300 * time.Millisecond)
				return ""
			}},
		{name: "ptrace the follower (root)", expectFail: true, script: `kill -STOP ` + strconv.Itoa(f.cmd.Process.Pid)},
	}

	attempts, escapes := 0, 0
	for _, a := range attacks {
		if pid := readerPid(); pid != "" {
			os.WriteFile(filepath.Join(marker, "reader.pid"), []byte(pid), 0o644)
		}
		before := e.rootState(t, sentinel)
		cmd := testenvAsUserScript(e, a.script, marker, sentinel)
		out, err := cmd.CombinedOutput()
		attempts++
		var why []string
		if a.expectFail && err == nil {
			why = append(why, "the operation succeeded: "+strings.TrimSpace(string(out)))
		}
		if a.check != nil {
			if msg := a.check(t, e); msg != "" {
				why = append(why, msg)
			}
		}
		// Give root's s6 a moment to act on whatever was planted.
		time.Sleep(100 * time.Millisecond)
		after := e.rootState(t, sentinel)
		for k, v := range before {
			if strings.HasPrefix(k, "gateway-") {
				// A slot may go (its profile went) or appear, but what
				// exists must be the template's, unchanged.
				if w, ok := after[k]; ok && w != v && !strings.HasSuffix(k, "down") && strings.Count(k, "/") > 0 {
					why = append(why, fmt.Sprintf("%s changed: %s -> %s", k, v, w))
				}
				continue
			}
			if after[k] != v {
				why = append(why, fmt.Sprintf("%s changed: %s -> %s", k, v, after[k]))
			}
		}
		for k, v := range after {
			if _, ok := before[k]; !ok && !strings.HasPrefix(k, "gateway-") {
				why = append(why, "new object "+k+" "+v)
			}
			if strings.HasPrefix(k, "gateway-") && !strings.HasPrefix(v, "0:0 ") {
				why = append(why, "slot object not root's: "+k+" "+v)
			}
		}
		if m, _ := filepath.Glob(filepath.Join(marker, "pwned-*")); len(m) > 0 {
			why = append(why, fmt.Sprintf("a planted script ran: %v", m))
		}
		if p := e.rootProcs(); len(p) > 0 {
			why = append(why, fmt.Sprintf("unexpected root processes: %v", p))
		}
		if f.cmd.ProcessState != nil {
			why = append(why, "the follower died")
		}
		if len(why) > 0 {
			escapes++
			t.Errorf("attack %q: ESCAPE: %s\noutput: %s", a.name, strings.Join(why, "; "), out)
		} else {
			t.Logf("attack %q: held (%s)", a.name, testenv.FirstLine(string(out)))
		}
	}
	// hermes still controls its gateways after all that.
	if out, err := e.asHermes(`s6-svc -d $S/gateway-alpha && s6-svc -u $S/gateway-alpha && s6-svstat $S/gateway-alpha`); err != nil {
		t.Errorf("hermes lost control of its gateway: %v: %s", err, out)
	}
	t.Logf("sealed attack suite (host, real s6-svscan): %d attempts, %d escapes", attempts, escapes)
	if t.Failed() {
		if pid, err := strconv.Atoi(readerPid()); err == nil {
			_ = syscall.Kill(pid, syscall.SIGQUIT) // its goroutines, into the follower's log
			time.Sleep(200 * time.Millisecond)
		}
	}
}

func pidsBelow(dir string) []int { return testenv.PidsBelow(dir) }

// testenvAsUserScript is the attack's shell, as hermes, with its variables.
func testenvAsUserScript(e *env, script, marker, sentinel string) *exec.Cmd {
	cmd := testenv.AsUser(exec.Command("/bin/sh", "-c", script), e.uid, e.gid)
	cmd.Env = append(e.environ(), "S="+e.scandir, "H="+e.home, "M="+marker, "X="+sentinel)
	return cmd
}
