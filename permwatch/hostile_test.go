package permwatch

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"golang.org/x/sys/unix"

	"github.com/hermes-s6/hermes-s6/internal/testenv"
	"github.com/hermes-s6/hermes-s6/perms"
)

// These tests play the hostile user of issue 9 against the built binary
// (or the engine): thousands of fake service trees, symlink swaps, churn
// with changing names, renamed excluded services, a stalled log reader.

// binProc is perm-watcher running as a separate process.
type binProc struct {
	cmd     *exec.Cmd
	pid     int
	logPath string
	done    chan struct{}
}

type binOpts struct {
	// maxWatches >= 0 runs perm-watcher in a private user namespace (ids
	// 0-65535 mapped to themselves) whose max_inotify_watches is set to
	// that value: the machine's own limit is never touched.
	maxWatches int
	stderr     *os.File // default: a log file
	args       []string
}

func (f *fixture) startBin(o binOpts) *binProc {
	t := f.t
	t.Helper()
	bin := buildBinary(t)
	args := append([]string{"--scandir", f.scandir, "--notify-fd", "3", "--log-level", "debug"}, o.args...)
	var cmd *exec.Cmd
	if o.maxWatches >= 0 {
		cmd = exec.Command("/bin/sh", append([]string{"-c", `echo "$0" > /proc/sys/user/max_inotify_watches && exec "$@"`,
			strconv.Itoa(o.maxWatches), bin}, args...)...)
		cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWUSER,
			UidMappings: []syscall.SysProcIDMap{{ContainerID: 0, HostID: 0, Size: 65536}},
			GidMappings: []syscall.SysProcIDMap{{ContainerID: 0, HostID: 0, Size: 65536}}}
	} else {
		cmd = exec.Command(bin, args...)
	}
	cmd.Dir = "/"
	p := &binProc{cmd: cmd, logPath: filepath.Join(f.root, "perm-watcher.log"), done: make(chan struct{})}
	if o.stderr != nil {
		cmd.Stdout, cmd.Stderr = o.stderr, o.stderr
	} else {
		logf, err := os.Create(p.logPath)
		must(t, err)
		defer logf.Close()
		cmd.Stdout, cmd.Stderr = logf, logf
	}
	r, w, err := os.Pipe()
	must(t, err)
	defer r.Close()
	cmd.ExtraFiles = []*os.File{w}
	must(t, cmd.Start())
	w.Close()
	p.pid = cmd.Process.Pid
	go func() { _ = cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.done:
		case <-time.After(5 * time.Second):
			_ = cmd.Process.Kill()
			<-p.done
		}
		if t.Failed() && o.stderr == nil {
			b, _ := os.ReadFile(p.logPath)
			if len(b) > 20000 {
				b = append(b[:10000], append([]byte("\n[...]\n"), b[len(b)-10000:]...)...)
			}
			t.Logf("perm-watcher output:\n%s", b)
		}
	})
	must(t, r.SetReadDeadline(time.Now().Add(60*time.Second)))
	buf := make([]byte, 1)
	if _, err := r.Read(buf); err != nil {
		t.Fatalf("perm-watcher not ready: %v", err)
	}
	return p
}

func (p *binProc) log() string { b, _ := os.ReadFile(p.logPath); return string(b) }

// inotifyInodes lists the inodes pid's inotify instances watch (from
// /proc/<pid>/fdinfo: "inotify wd:1 ino:<hex> sdev:...").
func inotifyInodes(t *testing.T, pid int) []uint64 {
	t.Helper()
	fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	must(t, err)
	var inos []uint64
	for _, fd := range fds {
		l, err := os.Readlink(fmt.Sprintf("/proc/%d/fd/%s", pid, fd.Name()))
		if err != nil || l != "anon_inode:inotify" {
			continue
		}
		info, err := os.ReadFile(fmt.Sprintf("/proc/%d/fdinfo/%s", pid, fd.Name()))
		must(t, err)
		sc := bufio.NewScanner(bytes.NewReader(info))
		for sc.Scan() {
			if !strings.HasPrefix(sc.Text(), "inotify ") {
				continue
			}
			for _, field := range strings.Fields(sc.Text()) {
				if v, ok := strings.CutPrefix(field, "ino:"); ok {
					n, err := strconv.ParseUint(v, 16, 64)
					must(t, err)
					inos = append(inos, n)
				}
			}
		}
	}
	return inos
}

func inodeOf(t *testing.T, p string) uint64 {
	var st syscall.Stat_t
	must(t, syscall.Lstat(p, &st))
	return st.Ino
}

// fakeTrees makes n service trees as the user would (all the user's):
// the dir, supervise/, log/, log/supervise/; every third has supervise/
// as a symlink to a root-only directory instead.
func (f *fixture) fakeTrees(prefix string, n int, rootOnly string) {
	f.t.Helper()
	for i := 0; i < n; i++ {
		st := filepath.Join(f.root, ".fake")
		must(f.t, os.Mkdir(st, 0o755))
		dirs := []string{st, st + "/log", st + "/log/supervise"}
		if i%3 == 0 {
			must(f.t, os.Symlink(rootOnly, st+"/supervise"))
			must(f.t, os.Lchown(st+"/supervise", f.uid, f.gid))
		} else {
			dirs = append(dirs, st+"/supervise")
		}
		for _, d := range dirs[1:] {
			must(f.t, os.Mkdir(d, 0o755))
		}
		for _, d := range dirs {
			must(f.t, os.Lchown(d, f.uid, f.gid))
		}
		must(f.t, os.Rename(st, filepath.Join(f.scandir, fmt.Sprintf("%s-%05d", prefix, i))))
	}
}

// userStage makes an empty slot as the user would and renames it into the
// scandir; it returns the slot's path.
func (f *fixture) userStage(name string) string {
	f.t.Helper()
	tmp := filepath.Join(f.scandir, "."+name+".tmp")
	must(f.t, os.Mkdir(tmp, 0o755))
	must(f.t, os.Lchown(tmp, f.uid, f.gid))
	must(f.t, os.Mkdir(tmp+"/log", 0o755))
	must(f.t, os.Lchown(tmp+"/log", f.uid, f.gid))
	d := filepath.Join(f.scandir, name)
	must(f.t, os.Rename(tmp, d))
	return d
}

// waitPrepared waits until the slot's supervise/control (and its log's)
// exist and are usable by the user under the owner policy.
func (f *fixture) waitPrepared(d string, within time.Duration) time.Duration {
	f.t.Helper()
	start := time.Now()
	f.waitFor(within, d+" prepared", func() (bool, string) {
		for _, p := range []string{d + "/supervise/control", d + "/log/supervise/control", d + "/event"} {
			var st syscall.Stat_t
			if err := syscall.Lstat(p, &st); err != nil || int(st.Uid) != f.uid {
				return false, fmt.Sprint(p, err, st.Uid)
			}
		}
		return true, ""
	})
	return time.Since(start)
}

// TestWatchesBounded (F1, F4): with thousands of fake service trees made
// by the user, some with supervise/ a symlink to a root-only directory,
// perm-watcher holds one inotify watch, on the scandir itself, never one on
// a symlink's target; it runs in a private user namespace whose
// max_inotify_watches is 16 and never enters degraded mode; a legitimate
// slot is still prepared at once.
func TestWatchesBounded(t *testing.T) {
	f := newFixture(t)
	must(t, os.Lchown(f.scandir, f.uid, f.gid))
	rootOnly := filepath.Join(f.root, "rootonly")
	must(t, os.Mkdir(rootOnly, 0o700))
	f.fakeTrees("pre", 3000, rootOnly)
	p := f.startBin(binOpts{maxWatches: 16})
	scandirIno := inodeOf(t, f.scandir)
	checkWatches := func(when string) {
		inos := inotifyInodes(t, p.pid)
		if len(inos) != 1 || inos[0] != scandirIno {
			t.Errorf("%s: watched inodes %v, want only the scandir's (%d); rootonly is %d", when, inos, scandirIno, inodeOf(t, rootOnly))
		}
	}
	checkWatches("after the first pass")
	f.fakeTrees("live", 2000, rootOnly)
	// Swap a slot's supervise/ for a symlink to the root-only directory,
	// back and forth.
	swap := f.userStage("swap")
	must(t, os.Symlink(rootOnly, filepath.Join(f.root, "alt")))
	must(t, os.Lchown(filepath.Join(f.root, "alt"), f.uid, f.gid))
	must(t, os.Rename(filepath.Join(f.root, "alt"), swap+"/alt"))
	f.waitPrepared(swap, 5*time.Second)
	deadline := time.Now().Add(time.Second)
	for time.Now().Before(deadline) {
		must(t, renameExchange(swap+"/supervise", swap+"/alt"))
	}
	d := f.waitPrepared(f.userStage("legit"), 5*time.Second)
	t.Logf("legit slot prepared %v after it appeared, with 5,000 fake trees", d)
	checkWatches("after 2,000 more fake trees and the swaps")
	if log := p.log(); strings.Contains(log, "degraded") {
		t.Errorf("degraded mode entered:\n%s", grepLines(log, "degraded"))
	}
}

func renameExchange(a, b string) error {
	return unix.Renameat2(unix.AT_FDCWD, a, unix.AT_FDCWD, b, unix.RENAME_EXCHANGE)
}

func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// TestDegradedLeft (F1): with no watch to be had (max_inotify_watches 0
// in its user namespace) perm-watcher is degraded and still prepares
// slots; once the limit allows one watch it leaves degraded mode.
func TestDegradedLeft(t *testing.T) {
	f := newFixture(t)
	must(t, os.Lchown(f.scandir, f.uid, f.gid))
	p := f.startBin(binOpts{maxWatches: 0, args: []string{"--degraded-interval", "200ms"}})
	f.waitFor(5*time.Second, "degraded mode logged", func() (bool, string) {
		return strings.Contains(p.log(), "degraded mode"), p.log()
	})
	f.waitPrepared(f.userStage("while-degraded"), 10*time.Second)
	out, err := exec.Command("nsenter", "--user=/proc/"+strconv.Itoa(p.pid)+"/ns/user", "/bin/sh", "-c",
		"echo 1 > /proc/sys/user/max_inotify_watches").CombinedOutput()
	if err != nil {
		t.Fatalf("raising the namespace's limit: %v %s", err, out)
	}
	f.waitFor(10*time.Second, "degraded mode left", func() (bool, string) {
		return strings.Contains(p.log(), "leaving degraded mode"), ""
	})
	if inos := inotifyInodes(t, p.pid); len(inos) != 1 || inos[0] != inodeOf(t, f.scandir) {
		t.Errorf("watched inodes %v, want the scandir's", inos)
	}
	f.waitPrepared(f.userStage("after"), 5*time.Second)
}

// TestStalledLogReader (F2): perm-watcher's stderr is a pipe nobody reads
// (a stalled s6-log); with thousands of lines to log, a new slot is still
// prepared at once.
func TestStalledLogReader(t *testing.T) {
	f := newFixture(t)
	must(t, os.Lchown(f.scandir, f.uid, f.gid))
	r, w, err := os.Pipe()
	must(t, err)
	defer r.Close()
	defer w.Close()
	rootOnly := filepath.Join(f.root, "rootonly")
	must(t, os.Mkdir(rootOnly, 0o700))
	p := f.startBin(binOpts{maxWatches: -1, stderr: w})
	// It runs at nice -10 (DefaultNice), every thread.
	tasks, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", p.pid))
	must(t, err)
	for _, task := range tasks {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%s/stat", p.pid, task.Name()))
		must(t, err)
		s := string(b)
		fields := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
		if fields[16] != strconv.Itoa(DefaultNice) { // field 19 of stat: nice
			t.Errorf("thread %s runs at nice %s, want %d", task.Name(), fields[16], DefaultNice)
		}
	}
	// Debug lines for each: far more than a pipe's 64 KiB.
	f.fakeTrees("noise", 2000, rootOnly)
	// A slot whose objects root's s6-supervise already made (so that the
	// same hand-over is asked of any version of perm-watcher).
	st := filepath.Join(f.root, ".legit")
	rootSupervised(t, st)
	rootSupervised(t, st+"/log")
	must(t, os.Lchown(st, f.uid, f.gid))
	must(t, os.Rename(st, filepath.Join(f.scandir, "legit")))
	d := f.waitPrepared(filepath.Join(f.scandir, "legit"), 5*time.Second)
	t.Logf("legit slot handed over %v after it appeared, stderr stalled", d)
}

// countingWriter counts what is written, and when.
type countingWriter struct {
	mu    sync.Mutex
	n     int
	lines []string
}

func (c *countingWriter) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.n += len(p)
	c.lines = append(c.lines, string(p))
	return len(p), nil
}

func (c *countingWriter) bytes() int { c.mu.Lock(); defer c.mu.Unlock(); return c.n }

// TestQuietUnderAttack (F2): the user churns the scandir as fast as it can
// for 5 s (entries with changing names: symlinks to a root-only directory,
// which are refused, and directories; renamed and removed again), from a
// process running as UID 10000. perm-watcher's log stays within a few
// KiB per second.
func TestQuietUnderAttack(t *testing.T) {
	f := newFixture(t)
	must(t, os.Lchown(f.scandir, f.uid, f.gid))
	rootOnly := filepath.Join(f.root, "rootonly")
	must(t, os.Mkdir(rootOnly, 0o755))
	cw := &countingWriter{}
	f.startWatcher(perms.PolicyOwner, func(c *Config) { c.Log = zerolog.New(cw).Level(zerolog.InfoLevel) })
	before := cw.bytes()
	const dur = 5 * time.Second
	cmd := exec.Command(selfCopy(t), f.scandir, dur.String(), rootOnly)
	cmd.Env = []string{helperEnv + "=churn"}
	cmd.Dir = "/"
	testenv.AsUser(cmd, f.uid, f.gid)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("churn as the user: %v\n%s", err, out)
	}
	t.Logf("churn: %s", strings.TrimSpace(string(out)))
	time.Sleep(200 * time.Millisecond)
	n := cw.bytes() - before
	perSec := float64(n) / dur.Seconds()
	t.Logf("%d bytes of log in %v of churn (%.0f B/s)", n, dur, perSec)
	if perSec > 4096 {
		t.Errorf("%.0f B/s of log under churn, want at most 4 KiB/s; first lines:\n%s", perSec, strings.Join(cw.lines[:min(10, len(cw.lines))], ""))
	}
	f.waitPrepared(f.userStage("legit"), 5*time.Second)
}

// churn is the helper's attack loop (as the user): for dur, create entries
// with new names (a symlink to target, which is refused, and a directory),
// rename them and remove them.
func churn(scandir string, dur time.Duration, target string) error {
	deadline := time.Now().Add(dur)
	i := 0
	for ; time.Now().Before(deadline); i++ {
		l := filepath.Join(scandir, fmt.Sprintf("ln-%d", i))
		if err := os.Symlink(target, l); err != nil {
			return err
		}
		d := filepath.Join(scandir, fmt.Sprintf("dir-%d", i))
		if err := os.Mkdir(d, 0o755); err != nil {
			return err
		}
		if err := os.Rename(l, l+"-x"); err != nil {
			return err
		}
		if i%2 == 0 {
			_ = os.RemoveAll(d)
			_ = os.Remove(l + "-x")
		}
	}
	fmt.Printf("%d rounds\n", i)
	return nil
}

// TestExcludeByIdentity (F3): an excluded service stays excluded when the
// user renames it: s6-rc's root-owned symlink (matched by its target's
// name) and s6-linux-init's real s6-svscan-log directory (remembered by
// device and inode).
func TestExcludeByIdentity(t *testing.T) {
	f := newFixture(t)
	must(t, os.Lchown(f.scandir, f.uid, f.gid))
	sdirs := filepath.Join(f.root, "servicedirs")
	must(t, os.Mkdir(sdirs, 0o755))
	runner := filepath.Join(sdirs, "s6rc-oneshot-runner")
	rootSupervised(t, runner)
	must(t, os.Symlink(runner, filepath.Join(f.scandir, "s6rc-oneshot-runner")))
	logger := filepath.Join(f.scandir, "s6-svscan-log")
	rootSupervised(t, logger)
	victims := snapshot(t, runner+"/supervise", runner+"/supervise/control", runner+"/event",
		logger+"/supervise", logger+"/supervise/control", logger+"/event")
	f.startWatcher(perms.PolicyOwner, func(c *Config) { c.Resync = 100 * time.Millisecond })
	if out, err := f.asUser(`set -e; mv "$1/s6rc-oneshot-runner" "$1/innocent"; mv "$1/s6-svscan-log" "$1/innocent2"`, f.scandir); err != nil {
		t.Fatalf("renaming as the user: %v\n%s", err, out)
	}
	time.Sleep(500 * time.Millisecond) // events and a few full passes
	for p, v := range victims {
		p = strings.Replace(p, "/s6-svscan-log/", "/innocent2/", 1)
		var st syscall.Stat_t
		must(t, syscall.Lstat(p, &st))
		if got := [3]uint32{st.Uid, st.Gid, st.Mode}; got != v {
			t.Errorf("%s changed after the rename: %v -> %v", p, v, got)
		}
	}
	f.waitPrepared(f.userStage("legit"), 5*time.Second)
}

// TestAncestorRefused (F7): the program refuses a scandir below a
// directory others can write (here a sticky 1777 one, like /tmp), with
// one error naming that directory and the fix, and touches nothing.
func TestAncestorRefused(t *testing.T) {
	testenv.RequireRoot(t)
	testenv.EnsureUser(t)
	root := testenv.TempDir(t)
	sticky := filepath.Join(root, "sticky")
	must(t, os.Mkdir(sticky, 0o755))
	must(t, os.Chmod(sticky, 0o1777))
	sd := filepath.Join(sticky, "scandir")
	rootSupervised(t, sd+"/svc")
	before := snapshot(t, sd+"/svc/supervise", sd+"/svc/supervise/control", sd+"/svc/event")
	code, out := runBin(t, buildBinary(t), false, "--once", "--scandir", sd)
	if code == 0 || !strings.Contains(out, sticky) || !strings.Contains(out, "chmod go-w") {
		t.Errorf("exit %d, want a refusal naming %s and the fix:\n%s", code, sticky, out)
	}
	before.unchanged(t)
}
