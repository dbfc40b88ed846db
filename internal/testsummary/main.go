// Command testsummary reads `go test -json` on stdin and writes, for a CI
// log, what a reader of one e2e run needs: a line per finished top-level
// test as it happens, the full output of every failed test, a table of every
// test that ran (passed, skipped with the reason, failed, with its time),
// and the runner's own closing lines (ok/FAIL/PASS). With -counts it also
// appends the run's counts, by mode (open or sealed) and by the user the
// container runs as (root or hermes), to a file that -closing prints as one
// table for several runs.
//
//	go test -json ./e2e/ | go run ./internal/testsummary -run real-3.2.3.0 -counts /tmp/counts
//	go run ./internal/testsummary -closing /tmp/counts
//
// It exits 1 if a test or the package failed, or if the stream had no test
// at all (a run that tested nothing must not look green).
package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
)

// event is one line of `go test -json` (cmd/test2json).
type event struct {
	Action  string
	Package string
	Test    string
	Elapsed float64
	Output  string
}

// result is one test's outcome.
type result struct {
	name    string
	action  string // pass, fail, skip; empty: never finished
	elapsed float64
	output  []string
	parent  bool // has subtests
}

func main() {
	run := flag.String("run", "", "name of this run in the counts file (e.g. real-3.2.3.0)")
	counts := flag.String("counts", "", "append this run's counts (run, mode, user, passed, skipped, failed) to this file")
	closing := flag.String("closing", "", "print the table of every run in this counts file, and exit")
	flag.Parse()
	if *closing != "" {
		if err := printClosing(os.Stdout, *closing); err != nil {
			fmt.Fprintln(os.Stderr, "testsummary:", err)
			os.Exit(111)
		}
		return
	}
	failed, err := summarize(os.Stdin, os.Stdout, *run, *counts)
	if err != nil {
		fmt.Fprintln(os.Stderr, "testsummary:", err)
		os.Exit(111)
	}
	if failed {
		os.Exit(1)
	}
}

// summarize reads the stream from r and writes the summary to w; it
// reports whether the run failed.
func summarize(r io.Reader, w io.Writer, run, countsFile string) (bool, error) {
	tests := map[string]*result{}
	var order []string
	var pkgOut []string
	pkgFailed := false
	get := func(name string) *result {
		if t, ok := tests[name]; ok {
			return t
		}
		t := &result{name: name}
		tests[name] = t
		order = append(order, name)
		// Its parent is the longest prefix that is a test: a subtest's own
		// name may hold a slash ("reads s6-rc.d/user").
		for p := name; ; {
			i := strings.LastIndex(p, "/")
			if i < 0 {
				break
			}
			p = p[:i]
			if pt, ok := tests[p]; ok {
				pt.parent = true
				break
			}
		}
		return t
	}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for sc.Scan() {
		line := sc.Bytes()
		var e event
		if err := json.Unmarshal(line, &e); err != nil || e.Action == "" {
			// Not an event (a build error printed by go itself): keep it.
			pkgOut = append(pkgOut, string(line)+"\n")
			continue
		}
		if e.Test == "" {
			switch e.Action {
			case "output", "build-output":
				pkgOut = append(pkgOut, e.Output)
			case "fail", "build-fail":
				pkgFailed = true
			}
			continue
		}
		t := get(e.Test)
		switch e.Action {
		case "output":
			t.output = append(t.output, e.Output)
		case "pass", "fail", "skip":
			t.action, t.elapsed = e.Action, e.Elapsed
			if !strings.Contains(e.Test, "/") {
				fmt.Fprintf(w, "--- %s %s (%.1fs)\n", strings.ToUpper(e.Action), e.Test, e.Elapsed)
			}
		}
	}
	if err := sc.Err(); err != nil {
		return true, err
	}

	sort.SliceStable(order, func(i, j int) bool { return order[i] < order[j] })
	// Failed tests' output, as plain `go test` shows it.
	for _, n := range order {
		t := tests[n]
		if t.action == "fail" && !t.parent {
			fmt.Fprintf(w, "\n=== output of failed %s\n%s", n, strings.Join(t.output, ""))
		}
	}
	fmt.Fprintf(w, "\n=== e2e tests of %s\n", orDefault(run, "this run"))
	fmt.Fprintf(w, "%-7s %8s  %s\n", "RESULT", "TIME", "TEST")
	n := map[string]int{}
	for _, name := range order {
		t := tests[name]
		res := strings.ToUpper(t.action)
		if res == "" {
			res = "NOEND" // still running when the binary died (timeout, panic)
		}
		line := fmt.Sprintf("%-7s %7.1fs  %s", res, t.elapsed, name)
		if t.action == "skip" {
			line += ": " + skipReason(t.output)
		}
		fmt.Fprintln(w, line)
		if !t.parent {
			n[res]++
		}
	}
	fmt.Fprintf(w, "%d passed, %d skipped, %d failed, %d unfinished (tests without subtests)\n", n["PASS"], n["SKIP"], n["FAIL"], n["NOEND"])
	fmt.Fprintf(w, "\n%s", strings.Join(pkgOut, ""))

	if countsFile != "" {
		if err := appendCounts(countsFile, orDefault(run, "run"), tests); err != nil {
			return true, err
		}
	}
	return pkgFailed || n["FAIL"] > 0 || n["NOEND"] > 0 || len(tests) == 0, nil
}

// skipReason is what the test logged before skipping (t.Skip's message),
// without the runner's own lines.
func skipReason(out []string) string {
	var logged, other []string
	for _, l := range out {
		s := strings.TrimSpace(l)
		switch {
		case s == "", strings.HasPrefix(s, "=== "), strings.HasPrefix(s, "--- SKIP"):
			continue
		}
		// "    file_test.go:12: message" is the test's own (t.Log, t.Skip):
		// drop the position. Other lines are whatever wrote to the
		// process's stdout meanwhile (testcontainers' log), which go test
		// attributes to a running test, even after its skip message.
		if i := strings.Index(s, ".go:"); i > 0 && !strings.Contains(s[:i], " ") {
			if j := strings.Index(s[i+4:], ": "); j >= 0 {
				logged = append(logged, s[i+4+j+2:])
				continue
			}
		}
		other = append(other, s)
	}
	// The skip message is the last thing a skipping test logs.
	switch {
	case len(logged) > 0:
		return logged[len(logged)-1]
	case len(other) > 0:
		return other[len(other)-1]
	}
	return "(no reason given)"
}

// modeOf is sealed for the sealed-mode tests, open for the others.
func modeOf(name string) string {
	top, _, _ := strings.Cut(name, "/")
	if strings.HasPrefix(top, "TestSealed") {
		return "sealed"
	}
	return "open"
}

// userOf is who the test's container runs as: hermes for the "hermes"
// subtests and tests named AsHermes, else root (a plain docker run, or no
// container at all).
func userOf(name string) string {
	for _, part := range strings.Split(name, "/") {
		if part == "hermes" || strings.Contains(part, "AsHermes") {
			return "hermes"
		}
	}
	return "root"
}

func appendCounts(file, run string, tests map[string]*result) error {
	type key struct{ mode, user string }
	c := map[key]*[3]int{}
	for name, t := range tests {
		if t.parent {
			continue
		}
		k := key{modeOf(name), userOf(name)}
		if c[k] == nil {
			c[k] = &[3]int{}
		}
		switch t.action {
		case "pass":
			c[k][0]++
		case "skip":
			c[k][1]++
		default:
			c[k][2]++
		}
	}
	f, err := os.OpenFile(file, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return err
	}
	for _, m := range []string{"open", "sealed"} {
		for _, u := range []string{"root", "hermes"} {
			v := c[key{m, u}]
			if v == nil {
				v = &[3]int{}
			}
			fmt.Fprintf(f, "%s\t%s\t%s\t%d\t%d\t%d\n", run, m, u, v[0], v[1], v[2])
		}
	}
	return f.Close()
}

// printClosing prints the counts of every run in file as one table.
func printClosing(w io.Writer, file string) error {
	data, err := os.ReadFile(file)
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "%-22s %-7s %-7s %7s %8s %7s\n", "RUN", "MODE", "USER", "PASSED", "SKIPPED", "FAILED")
	for _, l := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		f := strings.Split(l, "\t")
		if len(f) != 6 {
			return fmt.Errorf("%s: malformed line %q", file, l)
		}
		fmt.Fprintf(w, "%-22s %-7s %-7s %7s %8s %7s\n", f[0], f[1], f[2], f[3], f[4], f[5])
	}
	return nil
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}
