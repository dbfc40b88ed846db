package main

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hermes-s6/hermes-s6/internal/testenv"
)

// follower is a running `reconcile-profiles --follow --mode sealed`.
type follower struct {
	cmd  *exec.Cmd
	logs *testenv.Buffer
}

// startFollower runs the follower as root on e's scandir and waits for its
// readiness (fd 3), as s6-rc would.
func (e *env) startFollower(t *testing.T, extra ...string) *follower {
	t.Helper()
	args := append([]string{"--follow", "--mode", "sealed", "--notify-fd", "3", "--hermes-home", e.home,
		"--scandir", e.scandir, "--command-dir", e.cmdDir, "--gateway-home", e.home, "--proc", e.proc,
		"--log-level", "debug"}, extra...)
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	f := &follower{cmd: exec.Command(e.bin, args...), logs: &testenv.Buffer{}}
	f.cmd.Env = e.environ()
	f.cmd.Stderr = f.logs
	f.cmd.ExtraFiles = []*os.File{pw}
	if err := f.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pw.Close()
	done := make(chan struct{})
	go func() { _ = f.cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		_ = f.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			_ = f.cmd.Process.Kill()
			<-done
		}
		if t.Failed() {
			t.Logf("follower logs:\n%s", f.logs.String())
		}
	})
	ready := make(chan error, 1)
	go func() {
		_, err := bufio.NewReader(pr).ReadString('\n')
		ready <- err
	}()
	select {
	case err := <-ready:
		if err != nil {
			t.Fatalf("follower readiness: %v\n%s", err, f.logs.String())
		}
	case <-time.After(15 * time.Second):
		t.Fatalf("follower not ready within 15s:\n%s", f.logs.String())
	}
	return f
}

// asHermes runs a shell command as the test user, returns its combined
// output and error.
func (e *env) asHermes(script string) (string, error) {
	cmd := testenv.AsUser(exec.Command("/bin/sh", "-c", script), e.uid, e.gid)
	cmd.Env = append(e.environ(), "S="+e.scandir, "H="+e.home)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func statOf(t *testing.T, p string) syscall.Stat_t {
	t.Helper()
	var st syscall.Stat_t
	if err := syscall.Lstat(p, &st); err != nil {
		t.Fatalf("lstat %s: %v", p, err)
	}
	return st
}

// checkSealedSlot asserts the contract's sealed layout of one slot.
func (e *env) checkSealedSlot(t *testing.T, name string) {
	t.Helper()
	dir := filepath.Join(e.scandir, "gateway-"+name)
	for _, p := range []string{"", "run", "finish", "type", "log", "log/run"} {
		if st := statOf(t, filepath.Join(dir, p)); st.Uid != 0 || st.Mode&0o022 != 0 {
			t.Errorf("%s/%s: uid %d mode %o, want root's, not group/other-writable", dir, p, st.Uid, st.Mode&0o7777)
		}
	}
	for _, sub := range []string{"", "log/"} {
		sup := statOf(t, filepath.Join(dir, sub+"supervise"))
		if sup.Uid != 0 || int(sup.Gid) != e.gid || sup.Mode&0o7777 != 0o750 {
			t.Errorf("%s/%ssupervise: %d:%d %o, want 0:%d 0750", dir, sub, sup.Uid, sup.Gid, sup.Mode&0o7777, e.gid)
		}
		ctl := statOf(t, filepath.Join(dir, sub+"supervise/control"))
		if ctl.Uid != 0 || int(ctl.Gid) != e.gid || ctl.Mode&0o7777 != 0o620 || ctl.Mode&syscall.S_IFMT != syscall.S_IFIFO {
			t.Errorf("%s/%ssupervise/control: %d:%d %o, want FIFO 0:%d 0620", dir, sub, ctl.Uid, ctl.Gid, ctl.Mode, e.gid)
		}
	}
}

func exists(p string) bool { _, err := os.Lstat(p); return err == nil }

func TestSealedLifecycleRealS6(t *testing.T) {
	e := newEnv(t, "s6-svscan")
	e.startSvscan(t)
	f := e.startFollower(t)

	// Boot: slots for alpha (running), beta (stopped) and default; none
	// for the invalid name or the unreadable directory.
	for _, n := range []string{"alpha", "beta", "default"} {
		e.checkSealedSlot(t, n)
	}
	if exists(filepath.Join(e.scandir, "gateway-locked")) {
		t.Error("a slot for the unreadable profile directory")
	}
	waitFor(t, "boot log with profile=default", 5*time.Second, func() bool {
		b, _ := os.ReadFile(filepath.Join(e.home, "logs", "container-boot.log"))
		return strings.Contains(string(b), "profile=default")
	})
	bl, _ := os.ReadFile(filepath.Join(e.home, "logs", "container-boot.log"))
	for _, want := range []string{"profile=alpha prior_state=running action=started", "profile=beta prior_state=stopped action=registered",
		"reason=invalid-name", "profile=default"} {
		if !strings.Contains(string(bl), want) {
			t.Errorf("boot log lacks %q:\n%s", want, bl)
		}
	}
	if exists(filepath.Join(e.home, "profiles", "alpha", "gateway.pid")) {
		t.Error("stale gateway.pid not removed")
	}
	// The scandir and s6-svscan's control stay root's.
	for _, p := range []string{"", ".s6-svscan", ".s6-svscan/control", ".s6-svscan/lock"} {
		if st := statOf(t, filepath.Join(e.scandir, p)); st.Uid != 0 || st.Mode&0o022 != 0 {
			t.Errorf("%s: uid %d mode %o: not sealed", p, st.Uid, st.Mode&0o7777)
		}
	}
	waitFor(t, "alpha up", 5*time.Second, func() bool { return strings.HasPrefix(svstat(t, filepath.Join(e.scandir, "gateway-alpha")), "up") })
	// Its logger too: the sealed log/run (execline, s6-applyuidgid) ran
	// s6-log as hermes in a directory hermes made.
	waitFor(t, "alpha's logger up", 5*time.Second, func() bool {
		return strings.HasPrefix(svstat(t, filepath.Join(e.scandir, "gateway-alpha", "log")), "up")
	})
	// "up" is s6-supervise's word that it spawned log/run, not that the
	// script got as far as making the directory: wait for that too.
	waitFor(t, "logs/gateways/alpha made", 5*time.Second, func() bool {
		return exists(filepath.Join(e.home, "logs", "gateways", "alpha"))
	})
	if st := statOf(t, filepath.Join(e.home, "logs", "gateways", "alpha")); int(st.Uid) != e.uid {
		t.Errorf("logs/gateways/alpha made by uid %d, want hermes's %d", st.Uid, e.uid)
	}

	// hermes controls its gateways and their loggers.
	for _, step := range []string{
		`s6-svc -d $S/gateway-alpha && s6-svstat $S/gateway-alpha`,
		`s6-svc -u $S/gateway-beta && s6-svstat $S/gateway-beta`,
		`s6-svstat $S/gateway-alpha/log && s6-svc -t $S/gateway-alpha/log`,
	} {
		if out, err := e.asHermes(step); err != nil {
			t.Errorf("as hermes: %s: %v\n%s", step, err, out)
		}
	}

	// A profile created at run time gets a slot; hermes's first s6-svc
	// never meets "Permission denied".
	if out, err := e.asHermes(`mkdir -p $H/profiles/gamma && : > $H/profiles/gamma/SOUL.md`); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	gamma := filepath.Join(e.scandir, "gateway-gamma")
	deadline := time.Now().Add(5 * time.Second)
	for {
		out, err := e.asHermes(`s6-svc -u $S/gateway-gamma 2>&1`)
		if strings.Contains(out, "ermission denied") {
			t.Fatalf("first s6-svc as hermes: %s", out)
		}
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("s6-svc -u gateway-gamma never succeeded: %s", out)
		}
		time.Sleep(5 * time.Millisecond)
	}
	e.checkSealedSlot(t, "gamma")
	waitFor(t, "gamma up", 5*time.Second, func() bool { return strings.HasPrefix(svstat(t, gamma), "up") })

	// Deleting the profile removes the slot and its supervisors.
	if out, err := e.asHermes(`rm -rf $H/profiles/gamma`); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	waitFor(t, "gateway-gamma gone", 5*time.Second, func() bool { return !exists(gamma) })
	waitFor(t, "gamma's supervisors gone", 5*time.Second, func() bool { return len(testenv.SupervisorsBelow(gamma)) == 0 })

	// Re-created at once: back again.
	if out, err := e.asHermes(`mkdir -p $H/profiles/gamma && : > $H/profiles/gamma/SOUL.md`); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	waitFor(t, "gateway-gamma back", 5*time.Second, func() bool { return exists(filepath.Join(gamma, "supervise", "status")) })
	_ = f
}

// TestSealedIgnoredAsUser: in a container started as hermes (-u hermes)
// there is nothing to seal; the follower says so, signals readiness and
// idles, and the boot oneshot does the open pass.
func TestSealedIgnoredAsUser(t *testing.T) {
	e := newEnv(t, "s6-svscan")
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd := testenv.AsUser(exec.Command(e.bin, "--follow", "--mode", "sealed", "--notify-fd", "3", "--hermes-home", e.home,
		"--scandir", e.scandir), e.uid, e.gid)
	logs := &testenv.Buffer{}
	cmd.Stderr = logs
	cmd.ExtraFiles = []*os.File{pw}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pw.Close()
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	got := make(chan error, 1)
	go func() { _, err := bufio.NewReader(pr).ReadString('\n'); got <- err }()
	select {
	case err := <-got:
		if err != nil {
			t.Fatalf("no readiness: %v\n%s", err, logs.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("no readiness within 10s:\n%s", logs.String())
	}
	// The log goes through a pipe: it may trail the readiness a little.
	waitFor(t, "the warning that sealed mode is ignored", 5*time.Second, func() bool {
		return strings.Contains(logs.String(), "meaningless")
	})
	// The oneshot, as the user, in sealed mode: the open pass, with a warning.
	os.Chown(e.scandir, e.uid, e.gid)
	c2 := testenv.AsUser(exec.Command(e.bin, "--mode", "sealed", "--hermes-home", e.home, "--scandir", e.scandir,
		"--command-dir", e.cmdDir, "--proc", e.proc, "--s6-basedir", e.basedir), e.uid, e.gid)
	c2.Env = e.environ()
	out, err := c2.CombinedOutput()
	if err != nil {
		t.Fatalf("oneshot as the user in sealed mode: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "meaningless") || !exists(filepath.Join(e.scandir, "gateway-alpha")) {
		t.Errorf("oneshot as the user: want the open pass with a warning:\n%s", out)
	}
}

// TestModeUnknownRefused: a typo in HERMES_S6_MODE stops the boot (exit
// 100) instead of leaving a container open that was meant to be sealed.
func TestModeUnknownRefused(t *testing.T) {
	bin := buildBinary(t)
	for _, args := range [][]string{{"--follow"}, {}} {
		cmd := exec.Command(bin, args...)
		cmd.Env = []string{"HERMES_S6_MODE=seal", "PATH=/usr/bin:/bin"}
		out, _ := cmd.CombinedOutput()
		if cmd.ProcessState.ExitCode() != 100 || !strings.Contains(string(out), "HERMES_S6_MODE") {
			t.Errorf("%v with HERMES_S6_MODE=seal: exit %d, %s", args, cmd.ProcessState.ExitCode(), out)
		}
	}
}

// TestMaxProfilesEnvRefused: HERMES_S6_MAX_PROFILES reaches --follow
// through with-contenv; a value that is not a positive number stops the
// boot (exit 100) and names the variable, rather than falling back to a
// cap the operator did not choose.
func TestMaxProfilesEnvRefused(t *testing.T) {
	bin := buildBinary(t)
	for _, v := range []string{"many", "0", "-3", "1e3"} {
		cmd := exec.Command(bin, "--follow")
		cmd.Env = []string{"HERMES_S6_MAX_PROFILES=" + v, "PATH=/usr/bin:/bin"}
		out, _ := cmd.CombinedOutput()
		if cmd.ProcessState.ExitCode() != 100 || !strings.Contains(string(out), "max-profiles") && !strings.Contains(string(out), "HERMES_S6_MAX_PROFILES") {
			t.Errorf("HERMES_S6_MAX_PROFILES=%s: exit %d, %s", v, cmd.ProcessState.ExitCode(), out)
		}
	}
}
