package testenv

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Svscan describes a real s6-svscan started by StartSvscan.
type Svscan struct {
	// Env is s6-svscan's environment, inherited by every service (nil: a
	// minimal PATH).
	Env []string
	// Args are extra s6-svscan options, placed before the scandir.
	Args []string
	// Root bounds the teardown: processes whose working directory is below
	// it are killed (default: the scandir). Supervised services run in
	// their own sessions, so killing s6-svscan's process group misses them.
	Root string
}

// StartSvscan runs a real s6-svscan (as the test's user, root) on scandir,
// waits until it has made its control FIFO, and registers a teardown that
// never blocks for long, failed test or not: s6-svscanctl -t, then SIGKILL
// of its process group, then of every process below Root.
//
// s6-svscan's standard output and error go to /dev/null: with a pipe,
// os/exec's Wait would wait for every descendant holding it, and s6-log or
// a service in its own session can outlive its supervisor.
func StartSvscan(t testing.TB, scandir string, o Svscan) *exec.Cmd {
	t.Helper()
	RequireS6(t)
	root := o.Root
	if root == "" {
		root = scandir
	}
	cmd := exec.Command("s6-svscan", append(append([]string{}, o.Args...), scandir)...)
	cmd.Env = o.Env
	if cmd.Env == nil {
		cmd.Env = []string{"PATH=/usr/bin:/bin"}
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start s6-svscan on %s: %v", scandir, err)
	}
	pid := cmd.Process.Pid
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_ = exec.CommandContext(ctx, "s6-svscanctl", "-t", scandir).Run()
		cancel()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			_ = syscall.Kill(-pid, syscall.SIGKILL)
			select {
			case <-done:
			case <-time.After(5 * time.Second):
				t.Logf("s6-svscan (pid %d) not reaped 5s after SIGKILL; going on", pid)
			}
		}
		if left := KillBelow(root, 5*time.Second); len(left) > 0 {
			t.Logf("processes below %s still alive after SIGKILL: %v", root, left)
		}
	})
	deadline := time.Now().Add(5 * time.Second)
	for {
		if _, err := os.Lstat(filepath.Join(scandir, ".s6-svscan", "control")); err == nil {
			return cmd
		}
		select {
		case <-done:
			t.Fatalf("s6-svscan on %s exited at once", scandir)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("s6-svscan on %s made no .s6-svscan/control within 5s", scandir)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// PidsBelow lists the processes whose working directory is below dir: the
// supervisors and services of a test's own scandir, nobody else's.
func PidsBelow(dir string) []int {
	var pids []int
	procs, _ := filepath.Glob("/proc/[0-9]*")
	for _, p := range procs {
		cwd, err := os.Readlink(p + "/cwd")
		if err != nil || (cwd != dir && !strings.HasPrefix(cwd, dir+"/")) {
			continue
		}
		if pid, err := strconv.Atoi(filepath.Base(p)); err == nil {
			pids = append(pids, pid)
		}
	}
	return pids
}

// SupervisorsBelow lists the s6-supervise processes among PidsBelow(dir).
func SupervisorsBelow(dir string) []int {
	var out []int
	for _, pid := range PidsBelow(dir) {
		comm, _ := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "comm"))
		if strings.TrimSpace(string(comm)) == "s6-supervise" {
			out = append(out, pid)
		}
	}
	return out
}

// KillBelow SIGKILLs the processes below dir until none is left or d has
// passed, and returns those still there.
func KillBelow(dir string, d time.Duration) []int {
	deadline := time.Now().Add(d)
	for {
		pids := PidsBelow(dir)
		if len(pids) == 0 || time.Now().After(deadline) {
			return pids
		}
		for _, pid := range pids {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
