package permwatch

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hermes-s6/hermes-s6/internal/cliregister"
	"github.com/hermes-s6/hermes-s6/internal/testenv"
	"github.com/hermes-s6/hermes-s6/perms"
)

// cliRegister runs the shared replayer of the hermes CLI's registration
// (package cliregister) as the test user, in the test binary copied where
// that user can run it (self), on profiles one after the other.
func (f *fixture) cliRegister(self string, profiles ...string) (string, error) {
	cmd := exec.Command(self, append([]string{f.scandir}, profiles...)...)
	cmd.Env = []string{helperEnv + "=cli-register", "PATH=/usr/bin:/bin:/usr/sbin:/sbin"}
	cmd.Dir = "/"
	testenv.AsUser(cmd, f.uid, f.gid)
	cmd.WaitDelay = 30 * time.Second
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func envInt(t *testing.T, name string, def int) int {
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 {
		t.Fatalf("%s=%q: want a positive number", name, v)
	}
	return n
}

// TestCLIRegistrationReplay (#15): the hermes CLI's own registration,
// replayed step by step as CONTRACT.md describes (package cliregister: staging
// under .gateway-<p>.tmp, its skeleton seeded check-then-create, rename,
// s6-svscanctl -a), as UID 10000 against a real s6-svscan with
// perm-watcher running (owner policy, open mode's), each registration at
// once followed by s6-svc -u (retried on "supervisor not listening"),
// s6-svstat and s6-svwait -u. 1,000 registrations one after the other,
// then 200 at once: not one may fail, and no s6 program may say
// "Permission denied". HERMES_S6_REPLAY_SEQ and HERMES_S6_REPLAY_CONCURRENT
// shorten it. The replayer makes its files with system calls, as the
// CLI's Python does, and runs only the s6 programs.
func TestCLIRegistrationReplay(t *testing.T) {
	if testing.Short() {
		t.Skip("1,200 registrations through a real s6-svscan: not with -short")
	}
	seqN := envInt(t, "HERMES_S6_REPLAY_SEQ", 1000)
	concN := envInt(t, "HERMES_S6_REPLAY_CONCURRENT", 200)
	f := newFixture(t)
	f.startSvscan()
	f.handOver()
	f.startWatcher(perms.PolicyOwner)
	self := selfCopy(t)

	var names []string
	for i := 0; i < seqN; i++ {
		names = append(names, fmt.Sprintf("seq-%04d", i))
	}
	start := time.Now()
	out, err := f.cliRegister(self, names...)
	r := cliregister.Count(out)
	t.Logf("%d sequential registrations in %v: %d ok (first s6-svc: %d ok, %d not listening), %d failed, %d Permission denied",
		seqN, time.Since(start).Round(time.Millisecond), r.OK, r.FirstOK, r.FirstNotListening, r.Failed, r.Denied)
	if err != nil || r.OK != seqN || r.Failed != 0 || r.Denied != 0 {
		t.Fatalf("sequential: %v; failures:\n%s", err, strings.Join(r.Failures, "\n"))
	}

	// 200 registrars at once, one profile each, as 200 CLIs would.
	start = time.Now()
	var wg sync.WaitGroup
	var mu sync.Mutex
	var all strings.Builder
	var errs []string
	for i := 0; i < concN; i++ {
		wg.Add(1)
		go func(name string) {
			defer wg.Done()
			o, err := f.cliRegister(self, name)
			mu.Lock()
			defer mu.Unlock()
			all.WriteString(o)
			if err != nil {
				errs = append(errs, fmt.Sprintf("%s: %v", name, err))
			}
		}(fmt.Sprintf("conc-%03d", i))
	}
	wg.Wait()
	r = cliregister.Count(all.String())
	t.Logf("%d concurrent registrations in %v: %d ok (first s6-svc: %d ok, %d not listening), %d failed, %d Permission denied",
		concN, time.Since(start).Round(time.Millisecond), r.OK, r.FirstOK, r.FirstNotListening, r.Failed, r.Denied)
	if len(errs) > 0 || r.OK != concN || r.Failed != 0 || r.Denied != 0 {
		t.Fatalf("concurrent: %d registrars failed (%v); failures:\n%s", len(errs), errs[:min(len(errs), 5)], strings.Join(r.Failures, "\n"))
	}
	// The skeleton was kept: the user's own 0755 supervise/ and 0660 control.
	for _, p := range []string{"seq-0000", "conc-000"} {
		d := filepath.Join(f.scandir, "gateway-"+p)
		for rel, want := range map[string]os.FileMode{"supervise": os.ModeDir | 0o755, "supervise/control": os.ModeNamedPipe | 0o660,
			"log/supervise": os.ModeDir | 0o755, "log/supervise/control": os.ModeNamedPipe | 0o660} {
			fi, err := os.Lstat(filepath.Join(d, rel))
			if err != nil || fi.Mode() != want {
				t.Errorf("%s/%s: %v %v, want the CLI's %v", d, rel, fi.Mode(), err, want)
			}
		}
	}
}

// TestStagingDirUntouched (#15's rmdir regression): a dot-named scandir
// entry is someone's staging area. The user's `mkdir .x && rm -rf .x`
// never fails with "Directory not empty" (perm-watcher used to prepare
// supervise/ in there between the two), and a staging directory left alone
// for a while stays exactly as its maker left it.
func TestStagingDirUntouched(t *testing.T) {
	f := newFixture(t)
	f.startSvscan()
	f.handOver()
	f.startWatcher(perms.PolicyOwner)
	out, err := f.asUser(`sd=$1; i=0; bad=0
while [ $i -lt 300 ]; do
  i=$((i+1))
  mkdir "$sd/.x" || exit 1
  if ! err=$(rm -rf "$sd/.x" 2>&1); then echo "rm -rf .x ($i): $err"; bad=$((bad+1)); rm -rf "$sd/.x"; fi
done
[ $bad -eq 0 ]`, f.scandir)
	if err != nil {
		t.Fatalf("mkdir .x && rm -rf .x as the user: %v\n%s", err, out)
	}
	out, err = f.asUser(`set -e; sd=$1
mkdir "$sd/.staged" "$sd/.staged/log"
printf '#!/bin/sh\nexec sleep 100000\n' > "$sd/.staged/run"; chmod 0755 "$sd/.staged/run"
sleep 0.3
ls -A "$sd/.staged" "$sd/.staged/log"`, f.scandir)
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		switch strings.TrimSpace(l) {
		case "", "log", "run", f.scandir + "/.staged:", f.scandir + "/.staged/log:":
		default:
			t.Errorf("something was made in the staging directory: %q\n%s", l, out)
		}
	}
	// Renamed into place, it is prepared as any unseeded slot.
	must(t, os.Rename(filepath.Join(f.scandir, ".staged"), filepath.Join(f.scandir, "staged")))
	f.waitPrepared(filepath.Join(f.scandir, "staged"), 5*time.Second)
}
