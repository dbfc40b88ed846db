// Command permwatcher benchmarks perm-watcher against a real s6-svscan.
//
//	go build -o /tmp/perm-watcher ./cmd/perm-watcher
//	go run ./bench/permwatcher -bin /tmp/perm-watcher [-n 300] [-idle 60s] [-rss 1000]
//	go run ./bench/permwatcher -bin /tmp/perm-watcher -n 1 -reps 200 -rss 0   # one registration at a time
//
// Run as root with Debian's s6 installed and the user hermes (UID 10000).
// For four ways of making slots usable it measures, for a burst of n
// slots, the time from "all slots renamed into the scandir and rescan
// requested" to "UID 10000's first s6-svc-equivalent write to
// supervise/control succeeds" (open O_WRONLY|O_NONBLOCK + write "u", what
// s6-svc -u does), and reports p50/p99/max:
//
//	floor:    no fixer; the user pre-creates supervise/ and the control FIFO
//	s6-only:  no fixer, and the client runs as root: s6-supervise does all
//	          its own work (mkdir supervise/, mkfifo control, event/), so
//	          this is the bound any fixer is measured against with the
//	          same s6 work (the floor spares s6-supervise two creations)
//	watcher:  perm-watcher (the binary, as root)
//	poll-1s:  a loop fixing every service once a second (perms.FixService)
//
// The scandirs are made in -dir (default /run/hermes-s6-bench, a root-owned
// 0755 tmpfs, mounted there if it is not one, as production's /run is:
// perm-watcher refuses a scandir below the sticky /dev/shm or /tmp; on this
// VM's ext4 s6-supervise's inode creations would dominate).
//
// -hostile fakes|register runs the issue-9 measurements instead, -hostile
// cli the issue-15 one (hostile.go).
//
// Then perm-watcher's CPU time over an idle period (the same process, run
// with its default flags: only --scandir and --notify-fd are given, so the
// default --resync applies; after a settle time for the burst's last status
// writes) and its RSS with -rss services (their supervise/ layout made as
// s6-supervise makes it, without running 1,000 supervisors).
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/hermes-s6/hermes-s6/identity"
	"github.com/hermes-s6/hermes-s6/internal/cliregister"
	"github.com/hermes-s6/hermes-s6/perms"
	"github.com/hermes-s6/hermes-s6/s6"
)

const helperEnv = "PERMWATCHER_BENCH_HELPER"

// baseDir holds the scandirs (-dir); straceArgs are -strace-args.
var (
	baseDir    = "/dev/shm"
	straceArgs = "-c -f"
)

func main() {
	if h := os.Getenv(helperEnv); h != "" {
		var err error
		switch h {
		case "seq-user":
			err = seqUser(os.Args[1], os.Args[2])
		case "chmod-loop":
			err = chmodLoop(os.Args[1])
		case "cli-register":
			if cliregister.Main(os.Args[1:], os.Stdout) != 0 {
				os.Exit(1)
			}
			return
		case "register-user":
			err = registerUser(os.Args[1], atoi(os.Args[2]), os.Args[3] == "true")
		default:
			err = userSide(os.Args[1], os.Args[2] == "skeleton", atoi(os.Args[3]), os.Args[4])
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "helper:", err)
			os.Exit(1)
		}
		return
	}
	bin := flag.String("bin", "", "perm-watcher binary (go build -o /tmp/perm-watcher ./cmd/perm-watcher)")
	n := flag.Int("n", 300, "services in the burst")
	idle := flag.Duration("idle", 60*time.Second, "idle period for the CPU measurement")
	settle := flag.Duration("settle", 5*time.Second, "wait after the burst before the idle measurement starts")
	reps := flag.Int("reps", 1, "bursts per way, one after the other on the same s6-svscan (with -n 1: single-registration latency)")
	rssN := flag.Int("rss", 1000, "services for the RSS measurement (0: skip)")
	waysFlag := flag.String("ways", "floor,s6-only,watcher,poll-1s", "comma-separated ways to run")
	flag.StringVar(&baseDir, "dir", "/run/hermes-s6-bench", "where the scandirs are made: a root-owned 0755 tmpfs, as production's /run (mounted there if it is not one; perm-watcher refuses a scandir below a sticky /dev/shm)")
	hostile := flag.String("hostile", "", "run an issue-9 or issue-15 measurement instead (see hostile.go): fakes, register or cli")
	binOld := flag.String("bin-old", "", "with -hostile: another perm-watcher binary to compare side by side")
	fakesFlag := flag.String("fakes", "0,2000,10000", "with -hostile fakes: numbers of fake service trees")
	regs := flag.Int("regs", 30, "with -hostile fakes: registrations one at a time per measurement")
	pol := flag.String("policy", "owner", "with -hostile register: perm-watcher's --policy")
	keepLog := flag.String("keep-log", "", "copy perm-watcher's log (watcher way) to this file")
	flag.StringVar(&straceArgs, "strace-args", "-c -f", "strace options for -strace")
	straceOut := flag.String("strace", "", "write `strace -c -f` of perm-watcher over the burst (watcher way) to this file")
	flag.Parse()
	if os.Geteuid() != 0 || *bin == "" {
		fmt.Fprintln(os.Stderr, "run as root with -bin /path/to/perm-watcher")
		os.Exit(100)
	}
	id, err := identity.Lookup("hermes")
	check(err)
	owner := perms.Owner{UID: id.UID, GID: id.GID}
	defer trustedBase(baseDir)()
	self := copySelf()
	defer os.RemoveAll(filepath.Dir(self))
	if *hostile != "" {
		var fakes []int
		for _, f := range strings.Split(*fakesFlag, ",") {
			fakes = append(fakes, atoi(f))
		}
		fmt.Printf("host: %s, %d CPUs, loadavg %s\n", kernel(), numCPU(), loadavg())
		runHostile(*hostile, *bin, *binOld, fakes, *regs, *n, *pol, id, self)
		fmt.Printf("loadavg after: %s\n", loadavg())
		return
	}

	fmt.Printf("host: %s, %d CPUs, loadavg %s\n", kernel(), numCPU(), loadavg())
	var rows []string
	var watcherPID int
	var stopWatcher func()
	for _, mode := range strings.Split(*waysFlag, ",") {
		root, sd, stopSvscan := freshScandir(owner)
		var stopFixer func()
		var stopStrace func()
		logPath := filepath.Join(root, "perm-watcher.log")
		switch mode {
		case "floor", "s6-only":
		case "watcher":
			watcherPID, stopFixer = startWatcher(*bin, sd, logPath)
			if *straceOut != "" {
				stopStrace = startStrace(watcherPID, *straceOut)
			}
		case "poll-1s":
			stopFixer = startPoller(sd, owner)
		default:
			check(fmt.Errorf("unknown way %q", mode))
		}
		var cpu0 int64
		if mode == "watcher" {
			cpu0 = cpuTime(watcherPID)
		}
		var lat []time.Duration
		var wall time.Duration
		for r := 0; r < *reps; r++ {
			if r > 0 {
				time.Sleep(50 * time.Millisecond) // the previous slots' start-up writes
			}
			l, w := measure(self, sd, mode == "floor", mode == "s6-only", *n, id, fmt.Sprintf("slot-%d-", r))
			lat = append(lat, l...)
			wall = max(wall, w)
		}
		rows = append(rows, fmt.Sprintf("| %s | %d | %s | %s | %s | %s |", mode, len(lat),
			ms(pct(lat, 50)), ms(pct(lat, 99)), ms(pct(lat, 100)), ms(wall)))
		if mode == "watcher" {
			rows = append(rows, fmt.Sprintf("\nperm-watcher CPU from the burst until all %d usable: %v (utime+stime ticks)",
				*n**reps, time.Duration(cpuTime(watcherPID)-cpu0)*10*time.Millisecond))
			if stopStrace != nil {
				time.Sleep(time.Second) // the last events (the user's writes to control)
				stopStrace()
			}
			// Idle CPU with the services still there, default flags.
			time.Sleep(*settle)
			cpu0 := cpuTime(watcherPID)
			time.Sleep(*idle)
			cpu1 := cpuTime(watcherPID)
			rows = append(rows, fmt.Sprintf("\nperm-watcher idle CPU over %v with %d services, default flags (after %v settling): %v (utime+stime ticks: %d -> %d)",
				*idle, *n**reps, *settle, time.Duration(cpu1-cpu0)*10*time.Millisecond, cpu0, cpu1))
			stopWatcher = stopFixer
			stopWatcher()
			rows = append(rows, workLine(logPath, *n**reps))
			if *keepLog != "" {
				b, err := os.ReadFile(logPath)
				check(err)
				check(os.WriteFile(*keepLog, b, 0o644))
			}
		} else if stopFixer != nil {
			stopFixer()
		}
		stopSvscan()
		os.RemoveAll(root)
	}
	fmt.Println("| way | services | p50 | p99 | max | all usable after |")
	fmt.Println("| --- | --- | --- | --- | --- | --- |")
	for _, r := range rows {
		fmt.Println(r)
	}
	if *rssN > 0 {
		fmt.Println()
		fmt.Println(rssRun(*bin, *rssN, owner))
	}
}

// workLine reports the work counters perm-watcher logs when it stops, per
// registered slot.
func workLine(logPath string, n int) string {
	b, err := os.ReadFile(logPath)
	check(err)
	for _, line := range strings.Split(string(b), "\n") {
		var m map[string]any
		if json.Unmarshal([]byte(line), &m) != nil || m["message"] != "perm-watcher stopping" {
			continue
		}
		var parts []string
		for _, k := range []string{"events", "queued", "handles", "reads", "full_passes"} {
			v, _ := m[k].(float64)
			parts = append(parts, fmt.Sprintf("%s %.0f (%.2f/slot)", k, v, v/float64(n)))
		}
		return "perm-watcher work for the burst and the idle period: " + strings.Join(parts, ", ")
	}
	return "perm-watcher work: no counters in its log"
}

// startStrace attaches `strace -c -f` to pid and returns once it is
// attached; the returned func detaches it (SIGINT) and waits for the
// summary.
func startStrace(pid int, out string) func() {
	args := append(strings.Fields(straceArgs), "-o", out, "-p", strconv.Itoa(pid))
	cmd := exec.Command("strace", args...)
	stderr, err := cmd.StderrPipe()
	check(err)
	check(cmd.Start())
	sc := bufio.NewScanner(stderr)
	for sc.Scan() {
		if strings.Contains(sc.Text(), "attached") {
			break
		}
	}
	go io.Copy(io.Discard, stderr)
	time.Sleep(100 * time.Millisecond) // the other threads
	return func() {
		cmd.Process.Signal(syscall.SIGINT)
		cmd.Wait()
	}
}

func atoi(s string) int { n, _ := strconv.Atoi(s); return n }

func check(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(111)
	}
}

func ms(d time.Duration) string { return fmt.Sprintf("%.1f ms", float64(d.Microseconds())/1000) }

func pct(v []time.Duration, p int) time.Duration {
	if len(v) == 0 {
		return 0
	}
	s := slices.Clone(v)
	slices.Sort(s)
	i := (len(s)*p + 99) / 100
	if i < 1 {
		i = 1
	}
	return s[i-1]
}

func copySelf() string {
	dir, err := os.MkdirTemp(baseDir, "permwatcher-bench-")
	check(err)
	os.Chmod(dir, 0o755)
	dst := filepath.Join(dir, "bench")
	src, err := os.Open("/proc/self/exe")
	check(err)
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY, 0o755)
	check(err)
	_, err = io.Copy(out, src)
	check(err)
	out.Close()
	src.Close()
	return dst
}

// freshScandir starts s6-svscan on a new scandir handed over to owner.
func freshScandir(owner perms.Owner) (root, sd string, stop func()) {
	root, err := os.MkdirTemp(baseDir, "permwatcher-bench-")
	check(err)
	check(os.Chmod(root, 0o755))
	sd = filepath.Join(root, "scandir")
	check(os.Mkdir(sd, 0o755))
	check(os.Mkdir(sd+"/.s6-svscan", 0o755))
	cmd := exec.Command("s6-svscan", "-c", "4096", sd)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	check(cmd.Start())
	for i := 0; ; i++ {
		if _, err := os.Lstat(sd + "/.s6-svscan/lock"); err == nil {
			if _, err := os.Lstat(sd + "/.s6-svscan/control"); err == nil {
				break
			}
		}
		if i > 5000 {
			check(fmt.Errorf("s6-svscan did not start"))
		}
		time.Sleep(time.Millisecond)
	}
	_, err = perms.HandOverScandir(sd, owner)
	check(err)
	return root, sd, func() {
		_ = exec.Command("s6-svscanctl", "-t", sd).Run()
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		}
		// Wait for the supervisors (ours: their cwd is below root) to go.
		for i := 0; i < 300; i++ {
			if !anyBelow(root) {
				return
			}
			time.Sleep(100 * time.Millisecond)
		}
		killBelow(root)
	}
}

func pidsBelow(dir string) []int {
	var pids []int
	procs, _ := filepath.Glob("/proc/[0-9]*")
	for _, p := range procs {
		cwd, err := os.Readlink(p + "/cwd")
		if err == nil && strings.HasPrefix(cwd, dir+"/") {
			pids = append(pids, atoi(filepath.Base(p)))
		}
	}
	return pids
}

func anyBelow(dir string) bool { return len(pidsBelow(dir)) > 0 }

func killBelow(dir string) {
	for _, pid := range pidsBelow(dir) {
		syscall.Kill(pid, syscall.SIGKILL)
	}
}

// startWatcher runs the binary with its default flags (only --scandir and
// --notify-fd) and its log in logPath (a file, not a pipe: default-level
// logs must cost the same as in production), and returns once it is ready.
func startWatcher(bin, sd, logPath string) (int, func()) {
	r, w, err := os.Pipe()
	check(err)
	logf, err := os.Create(logPath)
	check(err)
	cmd := exec.Command(bin, "--scandir", sd, "--notify-fd", "3")
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

func startPoller(sd string, owner perms.Owner) func() {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			if s, err := perms.OpenScandir(sd); err == nil {
				names, _ := s.Names()
				for _, n := range names {
					if !strings.HasPrefix(n, ".") {
						s.FixService(n, owner, perms.PolicyOwner)
					}
				}
				s.Close()
			}
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	}()
	return func() { cancel(); <-done }
}

// measure runs the user side and returns per-service latencies and the
// time until all were usable.
func measure(self, sd string, skeleton, asRoot bool, n int, id identity.Identity, prefix string) ([]time.Duration, time.Duration) {
	mode := "plain"
	if skeleton {
		mode = "skeleton"
	}
	cmd := exec.Command(self, sd, mode, strconv.Itoa(n), prefix)
	cmd.Env = []string{helperEnv + "=1"}
	cmd.Dir = "/"
	if !asRoot {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(id.UID), Gid: uint32(id.GID), Groups: []uint32{}}}
	}
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	check(err)
	var res struct{ Lat []int64 }
	check(json.Unmarshal(out, &res))
	var lat []time.Duration
	var wall time.Duration
	for _, l := range res.Lat {
		d := time.Duration(l)
		lat = append(lat, d)
		wall = max(wall, d)
	}
	return lat, wall
}

// userSide runs as UID 10000: registers n slots (staged, renamed), asks for
// a rescan, then polls every slot's control until a write succeeds.
func userSide(sd string, skeleton bool, n int, prefix string) error {
	names := make([]string, n)
	for i := range names {
		names[i] = fmt.Sprintf("%s%04d", prefix, i)
		tmp := filepath.Join(sd, "."+names[i]+".tmp")
		if err := os.Mkdir(tmp, 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(tmp+"/run", []byte("#!/bin/sh\nexec sleep 100000\n"), 0o755); err != nil {
			return err
		}
		if skeleton {
			if err := os.Mkdir(tmp+"/supervise", 0o700); err != nil {
				return err
			}
			if err := syscall.Mkfifo(tmp+"/supervise/control", 0o600); err != nil {
				return err
			}
		}
	}
	for _, name := range names {
		if err := os.Rename(filepath.Join(sd, "."+name+".tmp"), filepath.Join(sd, name)); err != nil {
			return err
		}
	}
	start := time.Now()
	if err := s6.Rescan(sd); err != nil {
		return err
	}
	lat := make([]int64, n)
	left := n
	deadline := start.Add(5 * time.Minute)
	for left > 0 && time.Now().Before(deadline) {
		for i, name := range names {
			if lat[i] != 0 {
				continue
			}
			fd, err := syscall.Open(filepath.Join(sd, name, "supervise/control"), syscall.O_WRONLY|syscall.O_NONBLOCK|syscall.O_CLOEXEC, 0)
			if err != nil {
				continue
			}
			_, err = syscall.Write(fd, []byte("u"))
			syscall.Close(fd)
			if err == nil {
				lat[i] = int64(time.Since(start))
				left--
			}
		}
		time.Sleep(200 * time.Microsecond)
	}
	if left > 0 {
		return fmt.Errorf("%d slots never became usable", left)
	}
	return json.NewEncoder(os.Stdout).Encode(struct{ Lat []int64 }{lat})
}

func cpuTime(pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	check(err)
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	// fields after ")": state(0) ... utime(11) stime(12)
	u, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return u + st
}

// rssRun starts perm-watcher on n services laid out as s6-supervise makes
// them (root's supervise/, control FIFO, event/) and reports its RSS after
// the first pass.
func rssRun(bin string, n int, owner perms.Owner) string {
	root, err := os.MkdirTemp(baseDir, "permwatcher-bench-")
	check(err)
	defer os.RemoveAll(root)
	os.Chmod(root, 0o755)
	sd := filepath.Join(root, "scandir")
	check(os.Mkdir(sd, 0o755))
	for i := 0; i < n; i++ {
		d := filepath.Join(sd, fmt.Sprintf("svc-%04d", i))
		for _, sub := range []string{d, d + "/log"} {
			check(os.MkdirAll(sub+"/supervise", 0o700))
			check(syscall.Mkfifo(sub+"/supervise/control", 0o600))
			check(os.Mkdir(sub+"/event", 0o700))
			check(syscall.Chmod(sub+"/event", 0o3730))
		}
	}
	start := time.Now()
	pid, stop := startWatcher(bin, sd, filepath.Join(root, "perm-watcher.log"))
	first := time.Since(start)
	rss := vmRSS(pid)
	stop()
	return fmt.Sprintf("perm-watcher with %d services (+ %d log/ sub-services): first pass ready in %v, VmRSS %s", n, n, first.Round(time.Millisecond), rss)
}

func vmRSS(pid int) string {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	check(err)
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if strings.HasPrefix(sc.Text(), "VmRSS:") {
			return strings.TrimSpace(strings.TrimPrefix(sc.Text(), "VmRSS:"))
		}
	}
	return "?"
}

func kernel() string {
	b, _ := os.ReadFile("/proc/sys/kernel/osrelease")
	return strings.TrimSpace(string(b))
}

func loadavg() string {
	b, _ := os.ReadFile("/proc/loadavg")
	return strings.Join(strings.Fields(string(b))[:3], " ")
}

func numCPU() int {
	b, _ := os.ReadFile("/proc/cpuinfo")
	return strings.Count(string(b), "processor\t")
}
