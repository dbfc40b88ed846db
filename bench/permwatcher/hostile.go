package main

import (
	"bufio"
	"encoding/json"
	"fmt"

	"os"
	"os/exec"
	"path/filepath"

	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/hermes-s6/hermes-s6/identity"
	"github.com/hermes-s6/hermes-s6/perms"
	"github.com/hermes-s6/hermes-s6/s6"
)

// The issue-9 measurements (-hostile fakes, -hostile register).
//
// fakes: for each binary given (-bin, and -bin-old to compare) and each
// number of fake service trees (-fakes, default 0,2000,10000: made by the
// user before perm-watcher starts: the dir, supervise/, log/,
// log/supervise/), it reports perm-watcher's inotify watches (from
// /proc/<pid>/fdinfo), its first pass, its idle CPU, the hand-over latency
// of -regs registrations one at a time, and the same CPU and latency while
// the user runs a chmod loop on the scandir. There is no s6-svscan (it
// would start 10,000 supervisors): the bench starts s6-supervise itself on
// each registered slot, at once, as s6-svscan does after a rescan.
// Latency is from the rename into the scandir to the user's first
// successful write to supervise/control.
//
// cli: -n registrations replayed as the hermes CLI makes them
// (package cliregister, run as the user: staging with the CLI's own skeleton,
// rename, s6-svscanctl -a, then s6-svc -u retried on "supervisor not
// listening", s6-svstat, s6-svwait -u), one after the other, per binary
// and without perm-watcher; the table counts failed registrations (issue
// 15: perm-watcher writing into the staging directory made them fail) and
// "Permission denied" from any s6 program.
//
// register: -n registrations through a real s6-svscan with perm-watcher
// running: the user stages a slot, renames it into place, asks for a rescan
// (s6-svscanctl -a) and at once runs `s6-svc -u` on it; the table counts
// the first attempt's outcome.

func runHostile(what, bin, binOld string, fakesList []int, regs, n int, pol string, id identity.Identity, self string) {
	owner := perms.Owner{UID: id.UID, GID: id.GID}
	bins := [][2]string{{"new", bin}}
	if binOld != "" {
		bins = append(bins, [2]string{"old", binOld})
	}
	switch what {
	case "fakes":
		fmt.Println("| binary | fake trees | watches | first pass | idle CPU (10 s) | hand-over p50 / max | chmod loop: CPU (10 s) | chmod loop: hand-over p50 / max |")
		fmt.Println("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
		for _, nf := range fakesList {
			for _, b := range bins {
				fmt.Println(fakesRow(b[0], b[1], nf, regs, owner, id, self))
			}
		}
	case "register":
		fmt.Println("| way | first s6-svc on | ok | supervisor not listening | Permission denied | other | ok after (p50 / max) |")
		fmt.Println("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
		fmt.Println(registerRow("new (default --nice -10)", bin, n, pol, owner, id, self))
		fmt.Println(registerRow("new --nice 0", bin, n, pol, owner, id, self, "--nice", "0"))
		if binOld != "" {
			fmt.Println(registerRow("old", binOld, n, pol, owner, id, self))
		}
		fmt.Println(registerRow("no perm-watcher", "", n, pol, owner, id, self))
	case "cli":
		fmt.Println("| perm-watcher | registrations | ok | failed | Permission denied | first s6-svc: ok / not listening | wall |")
		fmt.Println("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
		for _, b := range bins {
			fmt.Println(cliRow(b[0], b[1], n, pol, owner, id, self))
		}
		fmt.Println(cliRow("none", "", n, pol, owner, id, self))
	default:
		check(fmt.Errorf("-hostile %q: use fakes, register or cli", what))
	}
}

func fakesRow(name, bin string, nf, regs int, owner perms.Owner, id identity.Identity, self string) string {
	root, err := os.MkdirTemp(baseDir, "permwatcher-hostile-")
	check(err)
	defer func() { killBelow(root); os.RemoveAll(root) }()
	check(os.Chmod(root, 0o755))
	sd := filepath.Join(root, "scandir")
	check(os.Mkdir(sd, 0o755))
	check(os.Mkdir(sd+"/.s6-svscan", 0o755))
	check(os.Lchown(sd, owner.UID, owner.GID))
	for i := 0; i < nf; i++ {
		d := filepath.Join(sd, fmt.Sprintf("fake-%05d", i))
		for _, p := range []string{d, d + "/supervise", d + "/log", d + "/log/supervise"} {
			check(os.Mkdir(p, 0o755))
			check(os.Lchown(p, owner.UID, owner.GID))
		}
	}
	start := time.Now()
	pid, stop := startWatcher(bin, sd, filepath.Join(root, "perm-watcher.log"))
	defer stop()
	first := time.Since(start)
	time.Sleep(2 * time.Second) // follow-ups of the first pass
	watches := len(inotifyWatches(pid))
	cpu0 := cpuTime(pid)
	time.Sleep(10 * time.Second)
	idle := time.Duration(cpuTime(pid)-cpu0) * 10 * time.Millisecond
	lat := registerSeq(self, sd, regs, "quiet-", id)

	// The same under a chmod loop on the scandir, as the user.
	loop := exec.Command(self, sd)
	loop.Env = []string{helperEnv + "=chmod-loop"}
	loop.Dir = "/"
	loop.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(id.UID), Gid: uint32(id.GID), Groups: []uint32{}}}
	check(loop.Start())
	time.Sleep(500 * time.Millisecond)
	cpu0 = cpuTime(pid)
	time.Sleep(10 * time.Second)
	busy := time.Duration(cpuTime(pid)-cpu0) * 10 * time.Millisecond
	latLoop := registerSeq(self, sd, regs, "loop-", id)
	loop.Process.Kill()
	loop.Wait()
	return fmt.Sprintf("| %s | %d | %d | %v | %v | %s / %s | %v (%.0f%% of a core) | %s / %s |", name, nf, watches, first.Round(time.Millisecond),
		idle, ms(pct(lat, 50)), ms(pct(lat, 100)), busy, busy.Seconds()*10, ms(pct(latLoop, 50)), ms(pct(latLoop, 100)))
}

// inotifyWatches lists the inodes pid watches.
func inotifyWatches(pid int) []string {
	fds, _ := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	var inos []string
	for _, fd := range fds {
		if l, _ := os.Readlink(fmt.Sprintf("/proc/%d/fd/%s", pid, fd.Name())); l != "anon_inode:inotify" {
			continue
		}
		b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/fdinfo/%s", pid, fd.Name()))
		for _, l := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(l, "inotify ") {
				inos = append(inos, l)
			}
		}
	}
	return inos
}

// registerSeq registers regs slots one at a time through the user-side
// helper; for each, as soon as the helper has renamed it into place, it
// starts s6-supervise on it (what s6-svscan does after a rescan).
func registerSeq(self, sd string, regs int, prefix string, id identity.Identity) []time.Duration {
	cmd := exec.Command(self, sd, prefix)
	cmd.Env = []string{helperEnv + "=seq-user"}
	cmd.Dir = "/"
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(id.UID), Gid: uint32(id.GID), Groups: []uint32{}}}
	in, err := cmd.StdinPipe()
	check(err)
	outp, err := cmd.StdoutPipe()
	check(err)
	cmd.Stderr = os.Stderr
	check(cmd.Start())
	sc := bufio.NewScanner(outp)
	var lat []time.Duration
	var sups []*exec.Cmd
	for i := 0; i < regs; i++ {
		fmt.Fprintf(in, "%d\n", i)
		for sc.Scan() {
			f := strings.Fields(sc.Text())
			if f[0] == "go" {
				sup := exec.Command("s6-supervise", f[1])
				sup.Dir = "/"
				check(sup.Start())
				sups = append(sups, sup)
				continue
			}
			if f[0] == "lat" {
				n, _ := strconv.ParseInt(f[1], 10, 64)
				lat = append(lat, time.Duration(n))
				break
			}
		}
	}
	in.Close()
	cmd.Wait()
	for _, s := range sups {
		s.Process.Signal(syscall.SIGTERM)
	}
	for _, s := range sups {
		s.Wait()
	}
	return lat
}

// seqUser is the user's side of registerSeq: for each line on stdin, stage
// a slot, rename it into place, say so, and poll its control.
func seqUser(sd, prefix string) error {
	sc := bufio.NewScanner(os.Stdin)
	out := bufio.NewWriter(os.Stdout)
	for sc.Scan() {
		name := prefix + sc.Text()
		tmp := filepath.Join(sd, "."+name+".tmp")
		if err := os.Mkdir(tmp, 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(tmp+"/run", []byte("#!/bin/sh\nexec sleep 100000\n"), 0o755); err != nil {
			return err
		}
		final := filepath.Join(sd, name)
		if err := os.Rename(tmp, final); err != nil {
			return err
		}
		start := time.Now()
		fmt.Fprintf(out, "go %s\n", final)
		out.Flush()
		for time.Since(start) < time.Minute {
			fd, err := syscall.Open(final+"/supervise/control", syscall.O_WRONLY|syscall.O_NONBLOCK|syscall.O_CLOEXEC, 0)
			if err == nil {
				_, err = syscall.Write(fd, []byte("u"))
				syscall.Close(fd)
				if err == nil {
					break
				}
			}
			time.Sleep(100 * time.Microsecond)
		}
		fmt.Fprintf(out, "lat %d\n", time.Since(start))
		out.Flush()
	}
	return nil
}

// chmodLoop flips the scandir's mode as fast as it can (as the user, who
// owns it in open mode).
func chmodLoop(sd string) error {
	for i := 0; ; i++ {
		mode := uint32(0o755)
		if i%2 == 1 {
			mode = 0o775
		}
		if err := unix.Chmod(sd, mode); err != nil {
			return err
		}
	}
}

func registerRow(name, bin string, n int, pol string, owner perms.Owner, id identity.Identity, self string, extra ...string) string {
	root, sd, stopSvscan := freshScandir(owner)
	defer func() { stopSvscan(); os.RemoveAll(root) }()
	if bin != "" {
		_, stop := startWatcherArgs(bin, sd, filepath.Join(root, "perm-watcher.log"), append([]string{"--policy", pol}, extra...)...)
		defer stop()
	}
	// Without perm-watcher nothing ever makes control writable: count the
	// first attempts only.
	cmd := exec.Command(self, sd, strconv.Itoa(n), strconv.FormatBool(bin != ""))
	cmd.Env = []string{helperEnv + "=register-user", "PATH=" + os.Getenv("PATH")}
	cmd.Dir = "/"
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(id.UID), Gid: uint32(id.GID), Groups: []uint32{}}}
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	check(err)
	var res registerResult
	check(json.Unmarshal(out, &res))
	var okAfter []time.Duration
	for _, d := range res.OKAfter {
		okAfter = append(okAfter, time.Duration(d))
	}
	other := ""
	for k, v := range res.Other {
		other += fmt.Sprintf("%d (%s) ", v, k)
	}
	if other == "" {
		other = "0"
	}
	after := "never"
	if len(okAfter) == 2*n {
		after = ms(pct(okAfter, 50)) + " / " + ms(pct(okAfter, 100))
	}
	return fmt.Sprintf("| %s | %d + %d log/ | %d | %d | %d (%d on log/) | %s | %s |", name, n, n, res.OK, res.NotListening, res.Denied, res.DeniedLog, strings.TrimSpace(other), after)
}

type registerResult struct {
	OK, NotListening, Denied int
	DeniedLog                int // of Denied, on log/
	Other                    map[string]int
	OKAfter                  []int64 // time until s6-svc first succeeded, per slot
}

// registerUser is the user's side of the register measurement.
func registerUser(sd string, n int, retry bool) error {
	res := registerResult{Other: map[string]int{}}
	for i := 0; i < n; i++ {
		name := fmt.Sprintf("reg-%04d", i)
		tmp := filepath.Join(sd, "."+name+".tmp")
		if err := os.Mkdir(tmp, 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(tmp+"/run", []byte("#!/bin/sh\nexec sleep 100000\n"), 0o755); err != nil {
			return err
		}
		// A log/ sub-service, as every gateway slot has.
		if err := os.Mkdir(tmp+"/log", 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(tmp+"/log/run", []byte("#!/bin/sh\nexec cat >/dev/null\n"), 0o755); err != nil {
			return err
		}
		final := filepath.Join(sd, name)
		if err := os.Rename(tmp, final); err != nil {
			return err
		}
		start := time.Now()
		if err := s6.Rescan(sd); err != nil {
			return err
		}
		// The user's first s6-svc on the slot, then on its log/, at once.
		for _, dir := range []string{final, final + "/log"} {
			for attempt := 0; ; attempt++ {
				out, err := exec.Command("s6-svc", "-u", dir).CombinedOutput()
				msg := string(out)
				if attempt == 0 {
					switch {
					case err == nil:
						res.OK++
					case strings.Contains(msg, "supervisor not listening"):
						res.NotListening++
					case strings.Contains(msg, "Permission denied"):
						res.Denied++
						if strings.HasSuffix(dir, "/log") {
							res.DeniedLog++
						}
					default:
						k := strings.TrimSpace(msg)
						if i := strings.LastIndex(k, ": "); i >= 0 {
							k = k[i+2:]
						}
						res.Other[k]++
					}
				}
				if err == nil {
					res.OKAfter = append(res.OKAfter, int64(time.Since(start)))
					break
				}
				if !retry {
					break
				}
				if time.Since(start) > 30*time.Second {
					return fmt.Errorf("%s: s6-svc still failing after 30s: %s", dir, msg)
				}
				time.Sleep(time.Millisecond)
			}
		}
	}
	return json.NewEncoder(os.Stdout).Encode(res)
}

// startWatcherArgs is startWatcher with extra flags.
func startWatcherArgs(bin, sd, logPath string, extra ...string) (int, func()) {
	r, w, err := os.Pipe()
	check(err)
	logf, err := os.Create(logPath)
	check(err)
	cmd := exec.Command(bin, append([]string{"--scandir", sd, "--notify-fd", "3"}, extra...)...)
	cmd.ExtraFiles = []*os.File{w}
	cmd.Stdout, cmd.Stderr = logf, logf
	check(cmd.Start())
	w.Close()
	logf.Close()
	buf := make([]byte, 1)
	_, err = r.Read(buf)
	check(err)
	r.Close()
	return cmd.Process.Pid, func() {
		cmd.Process.Signal(syscall.SIGTERM)
		cmd.Wait()
	}
}

// trustedBase makes dir a root-owned 0755 tmpfs (production's /run is one)
// whose ancestors only root can write, as perm-watcher requires of the
// scandir's; it returns what undoes it.
func trustedBase(dir string) func() {
	check(os.MkdirAll(dir, 0o755))
	var fs unix.Statfs_t
	check(unix.Statfs(dir, &fs))
	if fs.Type == unix.TMPFS_MAGIC {
		return func() {}
	}
	check(unix.Mount("tmpfs", dir, "tmpfs", 0, "mode=0755,size=2g"))
	return func() { _ = unix.Unmount(dir, unix.MNT_DETACH) }
}

func cliRow(name, bin string, n int, pol string, owner perms.Owner, id identity.Identity, self string) string {
	root, sd, stopSvscan := freshScandir(owner)
	defer func() { stopSvscan(); os.RemoveAll(root) }()
	if bin != "" {
		_, stop := startWatcherArgs(bin, sd, filepath.Join(root, "perm-watcher.log"), "--policy", pol)
		defer stop()
	}
	args := []string{sd}
	for i := 0; i < n; i++ {
		args = append(args, fmt.Sprintf("cli-%04d", i))
	}
	cmd := exec.Command(self, args...)
	cmd.Env = []string{helperEnv + "=cli-register", "PATH=" + os.Getenv("PATH")}
	cmd.Dir = "/"
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(id.UID), Gid: uint32(id.GID), Groups: []uint32{}}}
	start := time.Now()
	out, _ := cmd.CombinedOutput()
	wall := time.Since(start)
	ok, failed, denied, firstOK, firstNL := 0, 0, 0, 0, 0
	kinds := map[string]int{}
	for _, l := range strings.Split(string(out), "\n") {
		switch {
		case strings.HasPrefix(l, "ok "):
			ok++
			if strings.Contains(l, "first=ok ") {
				firstOK++
			} else if strings.Contains(l, "first=not-listening ") {
				firstNL++
			}
		case strings.HasPrefix(l, "FAIL "):
			failed++
			k := l
			if i := strings.LastIndex(k, ": "); i >= 0 {
				k = k[i+2:]
			}
			kinds[k]++
		}
		if strings.Contains(l, "Permission denied") {
			denied++
		}
	}
	fail := strconv.Itoa(failed)
	if failed > 0 {
		var ks []string
		for k, v := range kinds {
			ks = append(ks, fmt.Sprintf("%d %s", v, k))
		}
		fail += " (" + strings.Join(ks, "; ") + ")"
	}
	return fmt.Sprintf("| %s | %d | %d | %s | %d | %d / %d | %v |", name, n, ok, fail, denied, firstOK, firstNL, wall.Round(time.Second))
}
