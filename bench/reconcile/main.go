// Command reconcile benchmarks reconcile-profiles as a whole process (exec
// to exit, Go runtime start-up included) with hyperfine, at several profile
// counts, optionally against an older binary on the same inputs:
//
//	make build
//	go run ./bench/reconcile -bin bin/reconcile-profiles [-before /tmp/old-reconcile-profiles]
//
// Inputs (on tmpfs, -dir): HERMES_HOME with n named profiles, half of them
// running, each with SOUL.md, gateway_state.json and
// state/gateway.lifecycle.json, plus the default profile's state and a
// small config.yaml (multiplexing off); each run
// writes into an empty scandir (made again by hyperfine's --prepare, not
// timed). --proc points at an empty directory (no container command, no s6
// detection: the host's processes would otherwise be scanned) and the log
// level is the default (info), stderr discarded. As root, every run goes
// through `setpriv` to -uid (the pass as it runs after the privilege drop,
// without needing the user to exist); the "exec floor" row is setpriv
// running /bin/true, what every row pays before the binary starts.
//
// The machine is shared and noisy, so the binaries are measured in
// alternating rounds (before, after, after, before, ...), each round a few
// hyperfine runs, and the table gives the median of all runs per binary.
// -strace then counts each binary's system calls per profile at the
// largest count (strace -f -c, --log-level error).
package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

func main() {
	bin := flag.String("bin", "bin/reconcile-profiles", "the reconcile-profiles binary to measure")
	before := flag.String("before", "", "an older binary to measure beside it, on the same inputs (optional)")
	counts := flag.String("n", "10,100,1000", "comma-separated numbers of named profiles")
	rounds := flag.Int("rounds", 6, "alternating rounds per binary and count")
	runs := flag.Int("runs", 10, "hyperfine runs per round")
	dir := flag.String("dir", "/dev/shm", "tmpfs for HERMES_HOME and the scandir")
	uid := flag.Int("uid", 10000, "as root: run the binary as this UID (and GID) via setpriv")
	straceOn := flag.Bool("strace", false, "also count system calls per profile (strace -f -c, --log-level error) at the largest count")
	flag.Parse()

	if _, err := exec.LookPath("hyperfine"); err != nil {
		fmt.Fprintln(os.Stderr, "bench/reconcile: hyperfine is not installed (apt-get install hyperfine):\n"+
			"  NO whole-process figures were measured.")
		os.Exit(2)
	}
	if err := run(*bin, *before, *counts, *rounds, *runs, *dir, *uid, *straceOn); err != nil {
		fmt.Fprintln(os.Stderr, "bench/reconcile:", err)
		os.Exit(1)
	}
}

type variant struct {
	label string
	cmd   []string // with {scandir} to fill in
}

func run(bin, before, counts string, rounds, runs int, dir string, uid int, straceOn bool) error {
	base, err := os.MkdirTemp(dir, "reconcile-wholeprocess-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(base)
	if err := os.Chmod(base, 0o755); err != nil { // MkdirTemp made it 0700: -uid must get through
		return err
	}
	var wrap []string
	asRoot := os.Geteuid() == 0
	if asRoot {
		wrap = []string{"setpriv", "--reuid=" + strconv.Itoa(uid), "--regid=" + strconv.Itoa(uid), "--clear-groups"}
	}
	abs := func(p string) string {
		a, err := filepath.Abs(p)
		if err != nil {
			return p
		}
		return a
	}
	fmt.Printf("whole process, hyperfine -N, %d alternating rounds x %d runs per binary; median wall time of all runs (user+sys CPU: mean)\n", rounds, runs)
	fmt.Printf("after: %s\n", abs(bin))
	if before != "" {
		fmt.Printf("before: %s\n", abs(before))
	}
	if asRoot {
		fmt.Printf("as root: every run is `%s <binary>`; exec floor: `%s /bin/true`\n", strings.Join(wrap, " "), strings.Join(wrap, " "))
	}
	fmt.Printf("%-9s | %-10s | %12s | %12s | %6s\n", "profiles", "binary", "median", "CPU", "runs")
	var last lastRun
	for _, f := range strings.Split(counts, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil {
			return fmt.Errorf("-n %q: %w", f, err)
		}
		root := filepath.Join(base, strconv.Itoa(n))
		home := filepath.Join(root, "home")
		if err := populate(home, n); err != nil {
			return err
		}
		for _, d := range []string{"proc", "svc"} {
			os.MkdirAll(filepath.Join(root, d), 0o755)
		}
		if asRoot {
			if err := exec.Command("chown", "-R", fmt.Sprintf("%d:%d", uid, uid), root).Run(); err != nil {
				return fmt.Errorf("chown %s: %w", root, err)
			}
		}
		svc := filepath.Join(root, "svc")
		prep := fmt.Sprintf("sh -c 'rm -rf %s && mkdir %s", svc, svc)
		if asRoot {
			prep += fmt.Sprintf(" && chown %d:%d %s", uid, uid, svc)
		}
		prep += "'"
		args := func(b string) []string {
			return append(slices.Clone(wrap), abs(b), "--hermes-home", home, "--scandir", svc,
				"--proc", filepath.Join(root, "proc"), "--s6-basedir", filepath.Join(root, "nobasedir"))
		}
		vs := []variant{{"after", args(bin)}}
		if before != "" {
			vs = append([]variant{{"before", args(before)}}, vs...)
		}
		if asRoot {
			vs = append(vs, variant{"exec floor", append(slices.Clone(wrap), "/bin/true")})
		}
		times := make([][]float64, len(vs))
		cpu := make([][]float64, len(vs))
		for r := range rounds {
			order := make([]int, len(vs))
			for i := range order {
				order[i] = i
			}
			if r%2 == 1 {
				slices.Reverse(order)
			}
			for _, i := range order {
				t, c, err := hyperfine(vs[i].cmd, prep, runs, filepath.Join(root, "out.json"))
				if err != nil {
					return fmt.Errorf("%s, %d profiles: %w", vs[i].label, n, err)
				}
				times[i] = append(times[i], t...)
				cpu[i] = append(cpu[i], c)
			}
		}
		for i, v := range vs {
			fmt.Printf("%-9d | %-10s | %9.2f ms | %9.2f ms | %6d\n", n, v.label, median(times[i])*1e3, mean(cpu[i])*1e3, len(times[i]))
		}
		last = lastRun{n: n, prep: prep, variants: vs[:len(vs)-btoi(asRoot)], root: root}
	}
	if straceOn {
		return countSyscalls(last)
	}
	return nil
}

// lastRun is the largest count's setup, for -strace.
type lastRun struct {
	n        int
	prep     string
	variants []variant // the binaries (no exec floor)
	root     string
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

// countSyscalls runs each binary once under strace -f -c (log level
// error, so that only the pass's own work is counted) and prints the
// system calls per profile that happen at least 0.1 times per profile.
func countSyscalls(l lastRun) error {
	if _, err := exec.LookPath("strace"); err != nil {
		return errors.New("-strace: strace is not installed")
	}
	counts := make([]map[string]float64, len(l.variants))
	names := map[string]bool{}
	for i, v := range l.variants {
		if out, err := exec.Command("sh", "-c", strings.TrimSuffix(strings.TrimPrefix(l.prep, "sh -c '"), "'")).CombinedOutput(); err != nil {
			return fmt.Errorf("prepare: %w: %s", err, out)
		}
		out := filepath.Join(l.root, "strace.txt")
		args := append([]string{"-f", "-c", "-o", out}, append(slices.Clone(v.cmd), "--log-level", "error")...)
		if msg, err := exec.Command("strace", args...).CombinedOutput(); err != nil {
			return fmt.Errorf("strace %s: %w\n%s", v.label, err, msg)
		}
		data, err := os.ReadFile(out)
		if err != nil {
			return err
		}
		counts[i] = map[string]float64{}
		for _, line := range strings.Split(string(data), "\n") {
			f := strings.Fields(line)
			// % time, seconds, usecs/call, calls, [errors,] syscall
			if len(f) < 5 || f[len(f)-1] == "total" || f[len(f)-1] == "syscall" {
				continue
			}
			calls, err := strconv.Atoi(f[3])
			if err != nil {
				continue
			}
			per := float64(calls) / float64(l.n)
			counts[i][f[len(f)-1]] = per
			if per >= 0.1 {
				names[f[len(f)-1]] = true
			}
		}
	}
	fmt.Printf("\nsystem calls per profile, %d profiles (strace -f -c, --log-level error):\n", l.n)
	fmt.Printf("%-14s", "syscall")
	for _, v := range l.variants {
		fmt.Printf(" | %8s", v.label)
	}
	fmt.Println()
	sorted := slices.Sorted(func(yield func(string) bool) {
		for k := range names {
			if !yield(k) {
				return
			}
		}
	})
	slices.SortStableFunc(sorted, func(a, b string) int { return int(1000 * (counts[len(counts)-1][b] - counts[len(counts)-1][a])) })
	for _, name := range sorted {
		fmt.Printf("%-14s", name)
		for i := range l.variants {
			fmt.Printf(" | %8.2f", counts[i][name])
		}
		fmt.Println()
	}
	fmt.Printf("%-14s", "all")
	for i := range l.variants {
		var t float64
		for _, c := range counts[i] {
			t += c
		}
		fmt.Printf(" | %8.2f", t)
	}
	fmt.Println("\n(futex and nanosleep are the Go runtime's; under strace they grow with the wall time)")
	return nil
}

// hyperfine runs cmd runs times (after one warm-up) and returns the wall
// times and the mean user+system time, in seconds.
func hyperfine(cmd []string, prepare string, runs int, out string) ([]float64, float64, error) {
	q := make([]string, len(cmd))
	for i, a := range cmd {
		q[i] = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
	}
	c := exec.Command("hyperfine", "-N", "--style", "none", "--warmup", "1", "--runs", strconv.Itoa(runs),
		"--prepare", prepare, "--export-json", out, strings.Join(q, " "))
	if msg, err := c.CombinedOutput(); err != nil {
		return nil, 0, fmt.Errorf("hyperfine: %w\n%s", err, msg)
	}
	data, err := os.ReadFile(out)
	if err != nil {
		return nil, 0, err
	}
	var res struct {
		Results []struct {
			Times  []float64 `json:"times"`
			User   float64   `json:"user"`
			System float64   `json:"system"`
			Codes  []int     `json:"exit_codes"`
		} `json:"results"`
	}
	if err := json.Unmarshal(data, &res); err != nil || len(res.Results) != 1 {
		return nil, 0, fmt.Errorf("hyperfine's JSON: %v", err)
	}
	r := res.Results[0]
	for _, code := range r.Codes {
		if code != 0 {
			return nil, 0, errors.New("the command exited " + strconv.Itoa(code))
		}
	}
	return r.Times, r.User + r.System, nil
}

// populate makes n named profiles, half of them running, each with
// SOUL.md, a state file and a lifecycle file, and the default's state (as
// reconcile's in-process BenchmarkPass does).
func populate(home string, n int) error {
	for i := range n {
		dir := filepath.Join(home, "profiles", fmt.Sprintf("p%05d", i))
		if err := os.MkdirAll(filepath.Join(dir, "state"), 0o755); err != nil {
			return err
		}
		state := "stopped"
		if i%2 == 0 {
			state = "running"
		}
		for name, data := range map[string]string{
			"SOUL.md":                      "soul",
			"gateway_state.json":           `{"gateway_state":"` + state + `","pid":1234,"platforms":{"telegram":{"state":"connected"}}}`,
			"state/gateway.lifecycle.json": `{"phase":"exited"}`,
		} {
			if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o644); err != nil {
				return err
			}
		}
	}
	if err := os.WriteFile(filepath.Join(home, "config.yaml"), []byte(configYAML), 0o644); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(home, "gateway_state.json"), []byte(`{"gateway_state":"running"}`), 0o644)
}

// configYAML is a small hermes config.yaml (older binaries do not read it).
const configYAML = `model:
  default: anthropic/claude-sonnet-4
  provider: openrouter
terminal:
  backend: local
  cwd: /opt/data/work
gateway:
  multiplex_profiles: false
platforms:
  telegram:
    enabled: true
`

func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func mean(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	var t float64
	for _, x := range v {
		t += x
	}
	return t / float64(len(v))
}
