// Package cliregister replays the hermes CLI's registration of a gateway
// slot, step by step as CONTRACT.md ("The CLI's registration") describes,
// as whoever runs it (the tests run it as hermes, UID 10000), then uses the
// slot as a client would. It is the one replayer of the host integration
// test (package permwatch), the e2e suite (cmd/cli-register, copied into
// the container) and bench/permwatcher (-hostile cli).
//
// Like the CLI (Python, in-process), it makes its files with system calls,
// without a process per step; only the s6 programs are run.
package cliregister

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Options tune Register.
type Options struct {
	// NoSkeleton skips step 3 (an unseeded registrar, as older CLIs).
	NoSkeleton bool
	// Run is the slot's run script body (default: exec sleep 100000).
	Run string
	// S6Dir holds the s6 programs; "" means /command when it exists
	// (s6-overlay, as the CLI calls them), else the PATH.
	S6Dir string
	// Timeout bounds the retries of step 5 (default 2 minutes: 200
	// registrations at once next to 1,000 running slots keep a loaded
	// 2-core machine's s6-svscan from starting a supervisor for more than
	// 30 s; the retries only ever see "supervisor not listening" then).
	Timeout time.Duration
}

// Result is one profile's registration.
type Result struct {
	Profile string
	// Step names what failed ("" when all went well): register (steps
	// 1-4), s6-svc, s6-svstat or s6-svwait.
	Step string
	Err  error
	// First is the first s6-svc -u's outcome: ok, not-listening or other.
	First string
	Tries int
}

// Line is Result as one output line: "ok P first=F tries=N" or
// "FAIL P step: error".
func (r Result) Line() string {
	if r.Step != "" {
		return fmt.Sprintf("FAIL %s %s: %s", r.Profile, r.Step, strings.ReplaceAll(r.Err.Error(), "\n", " "))
	}
	return fmt.Sprintf("ok %s first=%s tries=%d", r.Profile, r.First, r.Tries)
}

func (o *Options) prog(name string) string {
	dir := o.S6Dir
	if dir == "" {
		if st, err := os.Stat("/command"); err == nil && st.IsDir() {
			dir = "/command"
		}
	}
	if dir == "" {
		return name
	}
	return filepath.Join(dir, name)
}

// run runs an s6 program and returns its combined output as the error
// text when it fails.
func (o *Options) run(name string, args ...string) (string, error) {
	out, err := exec.Command(o.prog(name), args...).CombinedOutput()
	s := strings.TrimSpace(string(out))
	if err != nil {
		if s == "" {
			s = err.Error()
		}
		return s, errors.New(s)
	}
	return s, nil
}

// Register replays the CLI's registration of profile's slot gateway-<p> in
// scandir, then starts and uses it:
//  1. the slot must not exist; an old .gateway-<p>.tmp is deleted; mkdir;
//  2. type, run, finish, log/, log/run;
//  3. the CLI's skeleton, check-then-create (each directory made only if
//     its name does not exist, with a plain mkdir that fails on EEXIST),
//     then chmod and chown: event/ 03730, supervise/ 0755,
//     supervise/event/ 03730, FIFO supervise/control 0660 (made only if
//     missing); the same in log/;
//  4. down; rename to gateway-<p>; s6-svscanctl -a (on failure the slot is
//     deleted); an error before the rename deletes the staging directory;
//  5. s6-svc -u, retried while it says "supervisor not listening" (the
//     CLI's start does not retry; the tests do, to go on); then s6-svstat
//     and s6-svwait -u.
func Register(scandir, profile string, o Options) Result {
	r := Result{Profile: profile}
	slot := filepath.Join(scandir, "gateway-"+profile)
	tmp := filepath.Join(scandir, ".gateway-"+profile+".tmp")
	fail := func(step string, err error) Result {
		r.Step, r.Err = step, err
		return r
	}
	if _, err := os.Lstat(slot); err == nil {
		return fail("register", fmt.Errorf("already registered: %s exists", slot))
	}
	if _, err := os.Lstat(tmp); err == nil {
		if err := os.RemoveAll(tmp); err != nil {
			return fail("register", fmt.Errorf("Could not register s6 gateway service: %w", err))
		}
	}
	if err := stage(tmp, o); err != nil {
		_ = os.RemoveAll(tmp)
		return fail("register", fmt.Errorf("Could not register s6 gateway service: %w", err))
	}
	if err := os.Rename(tmp, slot); err != nil {
		_ = os.RemoveAll(tmp)
		return fail("register", fmt.Errorf("Could not register s6 gateway service: %w", err))
	}
	if _, err := o.run("s6-svscanctl", "-a", scandir); err != nil {
		_ = os.RemoveAll(slot)
		return fail("register", fmt.Errorf("s6-svscanctl -a: %w", err))
	}

	timeout := o.Timeout
	if timeout == 0 {
		timeout = 2 * time.Minute
	}
	deadline := time.Now().Add(timeout)
	for {
		r.Tries++
		out, err := o.run("s6-svc", "-u", slot)
		if err == nil {
			if r.First == "" {
				r.First = "ok"
			}
			break
		}
		if !strings.Contains(out, "supervisor not listening") {
			if r.First == "" {
				r.First = "other"
			}
			return fail("s6-svc", fmt.Errorf("s6-svc -u (try %d): %w", r.Tries, err))
		}
		if r.First == "" {
			r.First = "not-listening"
		}
		if time.Now().After(deadline) {
			return fail("s6-svc", fmt.Errorf("s6-svc -u: still not listening after %d tries: %w", r.Tries, err))
		}
		time.Sleep(2 * time.Millisecond)
	}
	// s6-supervise listens on control a moment before it writes its first
	// status file: s6-svstat may say "No such file or directory" right
	// after a successful s6-svc (s6's order, not a permission).
	for {
		out, err := o.run("s6-svstat", slot)
		if err == nil {
			break
		}
		if !strings.Contains(out, "No such file or directory") || time.Now().After(deadline) {
			return fail("s6-svstat", err)
		}
		time.Sleep(2 * time.Millisecond)
	}
	wait := max(time.Until(deadline), 10*time.Second)
	if _, err := o.run("s6-svwait", "-t", strconv.FormatInt(wait.Milliseconds(), 10), "-u", slot); err != nil {
		return fail("s6-svwait", err)
	}
	return r
}

func stage(tmp string, o Options) error {
	run := o.Run
	if run == "" {
		run = "exec sleep 100000"
	}
	if err := os.Mkdir(tmp, 0o755); err != nil {
		return err
	}
	files := []struct {
		name, body string
		mode       os.FileMode
	}{
		{"type", "longrun\n", 0o644},
		{"run", "#!/bin/sh\n" + run + "\n", 0o755},
		{"finish", "#!/bin/sh\nexit 0\n", 0o755},
		{"log", "", os.ModeDir | 0o755},
		{"log/run", "#!/bin/sh\nexec cat >/dev/null\n", 0o755},
	}
	for _, f := range files {
		p := filepath.Join(tmp, f.name)
		if f.mode.IsDir() {
			if err := os.Mkdir(p, f.mode.Perm()); err != nil {
				return err
			}
			continue
		}
		if err := os.WriteFile(p, []byte(f.body), f.mode); err != nil {
			return err
		}
		if err := os.Chmod(p, f.mode); err != nil {
			return err
		}
	}
	if !o.NoSkeleton {
		for _, d := range []string{tmp, filepath.Join(tmp, "log")} {
			if err := skeleton(d); err != nil {
				return err
			}
		}
	}
	return os.WriteFile(filepath.Join(tmp, "down"), nil, 0o644)
}

// skeleton seeds d as the CLI does: check, then create with a plain mkdir
// (EEXIST is an error), then chmod and chown.
func skeleton(d string) error {
	uid, gid := os.Getuid(), os.Getgid()
	seed := func(p string, mode os.FileMode) error {
		if _, err := os.Lstat(p); errors.Is(err, os.ErrNotExist) {
			if err := os.Mkdir(p, 0o755); err != nil {
				return err
			}
		}
		if err := os.Chmod(p, mode); err != nil {
			return err
		}
		return os.Chown(p, uid, gid)
	}
	for _, s := range []struct {
		rel  string
		mode os.FileMode
	}{
		{"event", os.ModeSetgid | os.ModeSticky | 0o730},
		{"supervise", 0o755},
		{"supervise/event", os.ModeSetgid | os.ModeSticky | 0o730},
	} {
		if err := seed(filepath.Join(d, s.rel), s.mode); err != nil {
			return err
		}
	}
	ctl := filepath.Join(d, "supervise/control")
	if _, err := os.Lstat(ctl); errors.Is(err, os.ErrNotExist) {
		if err := syscall.Mkfifo(ctl, 0o660); err != nil {
			return &os.PathError{Op: "mkfifo", Path: ctl, Err: err}
		}
	}
	if err := os.Chmod(ctl, 0o660); err != nil {
		return err
	}
	return os.Chown(ctl, uid, gid)
}

// Main is cli-register's: `cli-register [-no-skeleton] SCANDIR PROFILE...`
// registers the profiles one after the other and writes one Line per
// profile to out. It returns the exit code: 0 if every one went well, 1
// otherwise, 100 on usage errors.
func Main(args []string, out io.Writer) int {
	var o Options
	for len(args) > 0 && strings.HasPrefix(args[0], "-") {
		switch args[0] {
		case "-no-skeleton":
			o.NoSkeleton = true
		default:
			fmt.Fprintf(out, "cli-register: unknown option %s\n", args[0])
			return 100
		}
		args = args[1:]
	}
	if len(args) < 2 {
		fmt.Fprintln(out, "usage: cli-register [-no-skeleton] SCANDIR PROFILE...")
		return 100
	}
	w := bufio.NewWriter(out)
	defer w.Flush()
	code := 0
	for _, p := range args[1:] {
		r := Register(args[0], p, o)
		fmt.Fprintln(w, r.Line())
		w.Flush()
		if r.Step != "" {
			code = 1
		}
	}
	return code
}

// Tally is what a set of output lines says.
type Tally struct {
	OK, Failed, Denied, FirstOK, FirstNotListening int
	Failures                                       []string // the first 20
}

// Count reads Main's output (of one or several runs).
func Count(out string) Tally {
	var t Tally
	for _, l := range strings.Split(out, "\n") {
		switch {
		case strings.HasPrefix(l, "ok "):
			t.OK++
			if strings.Contains(l, " first=ok ") {
				t.FirstOK++
			} else if strings.Contains(l, " first=not-listening ") {
				t.FirstNotListening++
			}
		case strings.HasPrefix(l, "FAIL "):
			t.Failed++
			if len(t.Failures) < 20 {
				t.Failures = append(t.Failures, l)
			}
		}
		if strings.Contains(l, "Permission denied") {
			t.Denied++
		}
	}
	return t
}
