// Command sealed benchmarks sealed mode (reconcile-profiles --follow)
// against a real s6-svscan on the host.
//
//	go build -o /tmp/reconcile-profiles ./cmd/reconcile-profiles
//	go run ./bench/sealed -bin /tmp/reconcile-profiles [-seq 200] [-burst 300] [-del 20] [-idle 60s] [-rss 1000]
//
// Run as root with Debian's s6 installed and the user hermes (UID 10000).
// Everything hermes does is done by this program re-executed as hermes:
//
//	seq:   profiles created one at a time (mkdir, SOUL.md); for each, the
//	       time until hermes's first successful `s6-svc -u` equivalent (open
//	       supervise/control O_WRONLY|O_NONBLOCK, write "u": what s6-svc
//	       does), polled every 1 ms, and whether any attempt met EACCES;
//	burst: -burst profiles created at once, then each polled the same way;
//	       the latency of each from the start of the burst (the spread);
//	del:   profiles deleted one at a time; the time until the slot
//	       directory is gone and no s6-supervise runs in it;
//	idle:  CPU ticks (utime+stime) of root's follower and of the reader over
//	       -idle with nothing happening;
//	rss:   the follower's VmRSS with -rss profiles (a scandir without
//	       s6-svscan, so that 2,000 supervisors are not started for it).
//
// The scandir and HERMES_HOME are made in -dir (default /run, a tmpfs
// as in production; every ancestor of a scandir must be root-only).
package main

import (
	"bufio"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/hermes-s6/hermes-s6/identity"
	"github.com/hermes-s6/hermes-s6/perms"
	"github.com/hermes-s6/hermes-s6/s6"
	"github.com/hermes-s6/hermes-s6/slot"
)

const helperEnv = "SEALED_BENCH_HELPER"

// keepLog is -keep-log.
var keepLog string

func main() {
	if os.Getenv(helperEnv) != "" {
		if err := helper(os.Args[1:]); err != nil {
			fmt.Fprintln(os.Stderr, "helper:", err)
			os.Exit(1)
		}
		return
	}
	bin := flag.String("bin", "", "reconcile-profiles binary")
	seq := flag.Int("seq", 200, "profiles created one at a time")
	floor := flag.Int("floor", 50, "slots published directly by root, one at a time, without the follower (the s6 floor under the same load; 0: skip)")
	burst := flag.Int("burst", 300, "profiles created at once")
	del := flag.Int("del", 20, "profiles deleted one at a time")
	idle := flag.Duration("idle", 60*time.Second, "idle period for the CPU measurement")
	rssN := flag.Int("rss", 1000, "profiles for the RSS measurement (0: skip)")
	flag.StringVar(&keepLog, "keep-log", "", "copy the follower's log (level info) of the latency run to this file")
	dir := flag.String("dir", "/run", "where the scandir and HERMES_HOME are made (a tmpfs whose ancestors only root can write, as production's /run)")
	flag.Parse()
	if *bin == "" || os.Geteuid() != 0 {
		fmt.Fprintln(os.Stderr, "usage: run as root with -bin <reconcile-profiles>")
		os.Exit(100)
	}
	if *floor > 0 {
		if err := runFloor(*dir, *floor); err != nil {
			fmt.Fprintln(os.Stderr, "sealed bench: floor:", err)
			os.Exit(111)
		}
	}
	if err := run(*bin, *dir, *seq, *burst, *del, *idle, *rssN); err != nil {
		fmt.Fprintln(os.Stderr, "sealed bench:", err)
		os.Exit(111)
	}
}

type world struct {
	base, home, scandir, cmdDir string
	id                          identity.Identity
	svscan, follower            *exec.Cmd
}

func setup(dir string, withSvscan bool) (*world, error) {
	id, err := identity.Lookup("hermes")
	if err != nil {
		return nil, err
	}
	base, err := os.MkdirTemp(dir, "sealed-bench-")
	if err != nil {
		return nil, err
	}
	os.Chmod(base, 0o755)
	w := &world{base: base, home: filepath.Join(base, "home"), scandir: filepath.Join(base, "service"), cmdDir: filepath.Join(base, "command"), id: id}
	s6dir := "/usr/bin"
	files := map[string]string{
		"command/with-contenv": "#!/bin/sh\nexec \"$@\"\n",
		"command/s6-setuidgid": "#!/bin/sh\nexec " + s6dir + "/s6-setuidgid \"$@\"\n",
		"command/s6-log":       "#!/bin/sh\nexec " + s6dir + "/s6-log \"$@\"\n",
		"bin/hermes":           "#!/bin/sh\nexec sleep 3600\n",
	}
	for p, c := range files {
		full := filepath.Join(base, p)
		os.MkdirAll(filepath.Dir(full), 0o755)
		if err := os.WriteFile(full, []byte(c), 0o755); err != nil {
			return nil, err
		}
	}
	os.MkdirAll(filepath.Join(w.home, "profiles"), 0o755)
	os.WriteFile(filepath.Join(w.home, "config.yaml"), []byte("gateway:\n  multiplex_profiles: false\n"), 0o644)
	for _, p := range []string{w.home, filepath.Join(w.home, "profiles"), filepath.Join(w.home, "config.yaml")} {
		os.Lchown(p, id.UID, id.GID)
	}
	os.MkdirAll(filepath.Join(w.scandir, ".s6-svscan"), 0o755)
	if withSvscan {
		// -c: room for 1,000 slots and their loggers (s6 2.11 defaults to fewer).
		w.svscan = exec.Command("s6-svscan", "-t0", "-c", "4096", w.scandir)
		w.svscan.Env = w.env()
		w.svscan.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		if err := w.svscan.Start(); err != nil {
			return nil, err
		}
		for i := 0; i < 500; i++ {
			if _, err := os.Lstat(filepath.Join(w.scandir, ".s6-svscan/control")); err == nil {
				break
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	return w, nil
}

func (w *world) env() []string {
	return []string{"PATH=" + filepath.Join(w.base, "bin") + ":/usr/bin:/bin", "HERMES_HOME=" + w.home}
}

func (w *world) startFollower(bin string) error {
	pr, pw, err := os.Pipe()
	if err != nil {
		return err
	}
	w.follower = exec.Command(bin, "--follow", "--mode", "sealed", "--notify-fd", "3", "--hermes-home", w.home,
		"--scandir", w.scandir, "--command-dir", w.cmdDir, "--gateway-home", w.home, "--proc", filepath.Join(w.base, "noproc"),
		"--log-level", logLevel(), "--max-profiles", "1000")
	w.follower.Env = w.env()
	w.follower.ExtraFiles = []*os.File{pw}
	logf, _ := os.Create(filepath.Join(w.base, "follower.log"))
	w.follower.Stderr = logf
	if err := w.follower.Start(); err != nil {
		return err
	}
	pw.Close()
	done := make(chan error, 1)
	go func() { _, err := bufio.NewReader(pr).ReadString('\n'); done <- err }()
	select {
	case err := <-done:
		if err != nil {
			b, _ := os.ReadFile(filepath.Join(w.base, "follower.log"))
			return fmt.Errorf("follower readiness: %w; its log:\n%s", err, b)
		}
		return nil
	case <-time.After(60 * time.Second):
		return errors.New("follower not ready within 60s")
	}
}

func logLevel() string {
	if keepLog != "" {
		return "info"
	}
	return "warn"
}

func (w *world) close() {
	if keepLog != "" && w.svscan != nil {
		if b, err := os.ReadFile(filepath.Join(w.base, "follower.log")); err == nil {
			_ = os.WriteFile(keepLog, b, 0o644)
		}
	}
	if w.follower != nil {
		w.follower.Process.Signal(syscall.SIGTERM)
		w.follower.Wait()
	}
	if w.svscan != nil {
		exec.Command("s6-svscanctl", "-t", w.scandir).Run()
		done := make(chan struct{})
		go func() { w.svscan.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			syscall.Kill(-w.svscan.Process.Pid, syscall.SIGKILL)
		}
	}
	// Whatever is left below base (services in their own sessions).
	for i := 0; i < 50; i++ {
		left := false
		procs, _ := filepath.Glob("/proc/[0-9]*/cwd")
		for _, p := range procs {
			if c, err := os.Readlink(p); err == nil && strings.HasPrefix(c, w.base) {
				pid, _ := strconv.Atoi(filepath.Base(filepath.Dir(p)))
				syscall.Kill(pid, syscall.SIGKILL)
				left = true
			}
		}
		if !left {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	os.RemoveAll(w.base)
}

// asHermes runs this program as hermes with the helper's arguments and
// returns its standard output.
func (w *world) asHermes(args ...string) (string, error) {
	cmd := exec.Command("/proc/self/exe", args...)
	cmd.Env = append(w.env(), helperEnv+"=1")
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(w.id.UID), Gid: uint32(w.id.GID), Groups: []uint32{}}}
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	return string(out), err
}

// helper is hermes's side: "create <home> <scandir> <prefix> <n> <seq|burst>".
// It prints one latency in microseconds per profile, then "eacces <count>"
// (attempts that met "Permission denied": must be 0).
func helper(args []string) error {
	if len(args) != 6 || args[0] != "create" {
		return fmt.Errorf("bad helper arguments %q", args)
	}
	home, scandir, prefix, mode := args[1], args[2], args[3], args[5]
	n, _ := strconv.Atoi(args[4])
	eacces := 0
	out := bufio.NewWriter(os.Stdout)
	defer out.Flush()
	wait := func(name string, start time.Time) error {
		deadline := start.Add(120 * time.Second)
		for {
			err := svcU(scandir, name)
			if err == nil {
				fmt.Fprintln(out, time.Since(start).Microseconds())
				return nil
			}
			if errors.Is(err, syscall.EACCES) {
				eacces++
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("%s: not usable after 120s: %v", name, err)
			}
			time.Sleep(time.Millisecond)
		}
	}
	switch mode {
	case "seq":
		for i := 0; i < n; i++ {
			name := fmt.Sprintf("%s%d", prefix, i)
			start := time.Now()
			if err := create(home, name); err != nil {
				return err
			}
			if err := wait(name, start); err != nil {
				return err
			}
		}
	case "burst":
		start := time.Now()
		for i := 0; i < n; i++ {
			if err := create(home, fmt.Sprintf("%s%d", prefix, i)); err != nil {
				return err
			}
		}
		for i := 0; i < n; i++ {
			if err := wait(fmt.Sprintf("%s%d", prefix, i), start); err != nil {
				return err
			}
		}
	}
	fmt.Fprintln(out, "eacces", eacces)
	return nil
}

func create(home, name string) error {
	d := filepath.Join(home, "profiles", name)
	if err := os.Mkdir(d, 0o755); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(d, "SOUL.md"), nil, 0o644)
}

// svcU is what `s6-svc -u` does: open the control FIFO without blocking and
// write "u". It returns nil on success, the errno otherwise.
func svcU(scandir, name string) error {
	p := filepath.Join(scandir, "gateway-"+name, "supervise", "control")
	fd, err := syscall.Open(p, syscall.O_WRONLY|syscall.O_NONBLOCK|syscall.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer syscall.Close(fd)
	_, err = syscall.Write(fd, []byte("u"))
	return err
}

func percentile(d []time.Duration, p float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := slices.Clone(d)
	slices.Sort(s)
	i := int(float64(len(s)-1) * p)
	return s[i]
}

func ms(d time.Duration) string { return fmt.Sprintf("%.1f ms", float64(d.Microseconds())/1000) }

func cpuTicks(pid int) (int, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
	u, _ := strconv.Atoi(f[11])
	s, _ := strconv.Atoi(f[12])
	return u + s, nil
}

func rssKiB(pid int) int {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "VmRSS:"); ok {
			n, _ := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(v), " kB"))
			return n
		}
	}
	return 0
}

func childOf(ppid int) int {
	procs, _ := filepath.Glob("/proc/[0-9]*/stat")
	for _, p := range procs {
		b, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
		if len(f) > 1 && f[1] == strconv.Itoa(ppid) {
			pid, _ := strconv.Atoi(filepath.Base(filepath.Dir(p)))
			return pid
		}
	}
	return 0
}

func parseLatencies(out string) ([]time.Duration, int) {
	var ds []time.Duration
	eacces := 0
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		if v, ok := strings.CutPrefix(l, "eacces "); ok {
			eacces, _ = strconv.Atoi(v)
			continue
		}
		us, err := strconv.Atoi(l)
		if err == nil {
			ds = append(ds, time.Duration(us)*time.Microsecond)
		}
	}
	return ds, eacces
}

func run(bin, dir string, seq, burst, del int, idle time.Duration, rssN int) error {
	w, err := setup(dir, true)
	if err != nil {
		return err
	}
	defer w.close()
	if err := w.startFollower(bin); err != nil {
		return err
	}
	fmt.Printf("sealed mode, host, real s6-svscan (%s), reconcile-profiles --follow\n\n", dir)
	if seq > 0 {
		out, err := w.asHermes("create", w.home, w.scandir, "s", strconv.Itoa(seq), "seq")
		if err != nil {
			return fmt.Errorf("seq: %w", err)
		}
		ds, eacces := parseLatencies(out)
		fmt.Printf("created one at a time -> first successful s6-svc -u (n=%d): p50 %s  p99 %s  max %s  EACCES seen: %d\n",
			len(ds), ms(percentile(ds, 0.5)), ms(percentile(ds, 0.99)), ms(percentile(ds, 1)), eacces)
	}
	if burst > 0 {
		out, err := w.asHermes("create", w.home, w.scandir, "b", strconv.Itoa(burst), "burst")
		if err != nil {
			return fmt.Errorf("burst: %w", err)
		}
		ds, eacces := parseLatencies(out)
		fmt.Printf("%d created at once -> each usable, from the start (n=%d usable): min %s  p50 %s  p99 %s  max %s  EACCES seen: %d\n",
			burst, len(ds), ms(percentile(ds, 0)), ms(percentile(ds, 0.5)), ms(percentile(ds, 0.99)), ms(percentile(ds, 1)), eacces)
	}
	if del > 0 {
		var ds []time.Duration
		for i := 0; i < del && i < seq; i++ {
			name := fmt.Sprintf("s%d", i)
			slotDir := filepath.Join(w.scandir, "gateway-"+name)
			// By pid: a removed slot is renamed out of the scandir before its
			// supervisors exit, and their cwd follows the rename.
			sups := supervisorsIn(slotDir)
			start := time.Now()
			if err := os.RemoveAll(filepath.Join(w.home, "profiles", name)); err != nil {
				return err
			}
			for {
				_, err := os.Lstat(slotDir)
				if errors.Is(err, os.ErrNotExist) && !anyAlive(sups) {
					break
				}
				if time.Since(start) > 30*time.Second {
					return fmt.Errorf("%s: slot or supervisors still there after 30s", name)
				}
				time.Sleep(time.Millisecond)
			}
			ds = append(ds, time.Since(start))
		}
		fmt.Printf("deleted one at a time -> slot gone and its supervisors exited (n=%d, gateway up): p50 %s  max %s\n",
			len(ds), ms(percentile(ds, 0.5)), ms(percentile(ds, 1)))
	}
	if idle > 0 {
		time.Sleep(5 * time.Second) // settle
		rp := childOf(w.follower.Process.Pid)
		f0, _ := cpuTicks(w.follower.Process.Pid)
		r0, _ := cpuTicks(rp)
		time.Sleep(idle)
		f1, _ := cpuTicks(w.follower.Process.Pid)
		r1, _ := cpuTicks(rp)
		fmt.Printf("idle %s with %d slots: follower (root) %d ticks, reader (hermes) %d ticks\n", idle, seq+burst-min(del, seq)+1, f1-f0, r1-r0)
	}
	fmt.Printf("follower RSS now: %d KiB\n", rssKiB(w.follower.Process.Pid))
	w.close()
	if rssN > 0 {
		w2, err := setup(dir, false)
		if err != nil {
			return err
		}
		defer w2.close()
		for i := 0; i < rssN; i++ {
			if err := create(w2.home, fmt.Sprintf("r%d", i)); err != nil {
				return err
			}
		}
		filepath.Walk(filepath.Join(w2.home, "profiles"), func(p string, _ os.FileInfo, _ error) error {
			return os.Lchown(p, w2.id.UID, w2.id.GID)
		})
		if err := w2.startFollower(bin); err != nil {
			return err
		}
		m, _ := filepath.Glob(filepath.Join(w2.scandir, "gateway-*"))
		time.Sleep(2 * time.Second)
		fmt.Printf("RSS with %d profiles (%d slots, no supervisors): follower (root) %d KiB, reader (hermes) %d KiB\n",
			rssN, len(m), rssKiB(w2.follower.Process.Pid), rssKiB(childOf(w2.follower.Process.Pid)))
	}
	return nil
}

// runFloor publishes n slots one at a time as root, the way the follower
// does (the slot template, supervise/ prepared by package perms, rename,
// rescan) but without inotify, the reader or the pipe, and times each until
// the control write succeeds: what s6 itself costs on this machine now.
func runFloor(dir string, n int) error {
	w, err := setup(dir, true)
	if err != nil {
		return err
	}
	defer w.close()
	sd, err := perms.OpenScandir(w.scandir)
	if err != nil {
		return err
	}
	defer sd.Close()
	owner := perms.Owner{UID: w.id.UID, GID: w.id.GID}
	var ds []time.Duration
	for i := 0; i < n; i++ {
		name := fmt.Sprintf("f%d", i)
		start := time.Now()
		pub, err := slot.NewPublisher(w.scandir, false)
		if err != nil {
			return err
		}
		pub.BeforeRename = func(staging string) error {
			_, err := sd.Prepare(staging, owner, perms.PolicySealed, perms.ScopeAll)
			return err
		}
		if _, err := pub.Publish(slot.Spec{Name: name, User: "hermes", CommandDir: w.cmdDir, Home: w.home, Down: true}); err != nil {
			return err
		}
		if err := s6.Rescan(w.scandir); err != nil {
			return err
		}
		for svcU(w.scandir, name) != nil {
			if time.Since(start) > 120*time.Second {
				return fmt.Errorf("%s: not usable after 120s", name)
			}
			time.Sleep(time.Millisecond)
		}
		ds = append(ds, time.Since(start))
	}
	fmt.Printf("floor: root publishes a slot and rescans -> first successful control write, no follower (n=%d): p50 %s  p99 %s  max %s\n",
		len(ds), ms(percentile(ds, 0.5)), ms(percentile(ds, 0.99)), ms(percentile(ds, 1)))
	return nil
}

// supervisorsIn lists the pids of the s6-supervise processes running in
// dir or below it.
func supervisorsIn(dir string) []int {
	var pids []int
	procs, _ := filepath.Glob("/proc/[0-9]*/cwd")
	for _, p := range procs {
		c, err := os.Readlink(p)
		if err != nil || (c != dir && !strings.HasPrefix(c, dir+"/")) {
			continue
		}
		comm, _ := os.ReadFile(filepath.Join(filepath.Dir(p), "comm"))
		if strings.TrimSpace(string(comm)) == "s6-supervise" {
			pid, _ := strconv.Atoi(filepath.Base(filepath.Dir(p)))
			pids = append(pids, pid)
		}
	}
	return pids
}

// anyAlive reports whether one of pids still runs (a zombie counts as gone).
func anyAlive(pids []int) bool {
	for _, pid := range pids {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err == nil && !strings.Contains(string(b[strings.LastIndexByte(string(b), ')')+1:]), " Z ") {
			return true
		}
	}
	return false
}
