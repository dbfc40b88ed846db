package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// stream is a `go test -json` run cut down by hand from a real e2e run: a
// parallel test with root/hermes subtests, a skipped one (with a line of
// testcontainers' own log after its skip message, as go test attributes
// them in a parallel run), a subtest whose
// own name holds a slash, a sealed test and the package's closing lines.
const stream = `{"Action":"start","Package":"p"}
{"Action":"run","Package":"p","Test":"TestBoot"}
{"Action":"run","Package":"p","Test":"TestBoot/root"}
{"Action":"run","Package":"p","Test":"TestBoot/hermes"}
{"Action":"output","Package":"p","Test":"TestBoot/hermes","Output":"    boot_test.go:12: PID 1 runs as uid 0, want 10000\n"}
{"Action":"pass","Package":"p","Test":"TestBoot/root","Elapsed":5.9}
{"Action":"fail","Package":"p","Test":"TestBoot/hermes","Elapsed":16.4}
{"Action":"fail","Package":"p","Test":"TestBoot","Elapsed":16.5}
{"Action":"run","Package":"p","Test":"TestStandInRunOwnerHelper"}
{"Action":"output","Package":"p","Test":"TestStandInRunOwnerHelper","Output":"=== RUN   TestStandInRunOwnerHelper\n"}
{"Action":"output","Package":"p","Test":"TestStandInRunOwnerHelper","Output":"    standin_test.go:113: img does not run the hermetic stand-in: this test checks a detail of the stand-in only\n"}
{"Action":"output","Package":"p","Test":"TestStandInRunOwnerHelper","Output":"2026/12/06 01:29:32 ⏳ Waiting for container id 796f0580280e image: img. Waiting for: all of: [container to exit]\n"}
{"Action":"output","Package":"p","Test":"TestStandInRunOwnerHelper","Output":"--- SKIP: TestStandInRunOwnerHelper (3.80s)\n"}
{"Action":"skip","Package":"p","Test":"TestStandInRunOwnerHelper","Elapsed":3.8}
{"Action":"run","Package":"p","Test":"TestP"}
{"Action":"run","Package":"p","Test":"TestP/build"}
{"Action":"run","Package":"p","Test":"TestP/build/3.2.3.0_reads_s6-rc.d/user"}
{"Action":"pass","Package":"p","Test":"TestP/build/3.2.3.0_reads_s6-rc.d/user","Elapsed":1.4}
{"Action":"pass","Package":"p","Test":"TestP/build","Elapsed":1.4}
{"Action":"pass","Package":"p","Test":"TestP","Elapsed":1.5}
{"Action":"run","Package":"p","Test":"TestSealedAsHermesContainer"}
{"Action":"pass","Package":"p","Test":"TestSealedAsHermesContainer","Elapsed":11.1}
{"Action":"output","Package":"p","Output":"FAIL\n"}
{"Action":"output","Package":"p","Output":"FAIL\tp\t325.051s\n"}
{"Action":"fail","Package":"p","Elapsed":325.1}
`

func TestSummarize(t *testing.T) {
	counts := filepath.Join(t.TempDir(), "counts")
	var out strings.Builder
	failed, err := summarize(strings.NewReader(stream), &out, "real-3.2.3.0", counts)
	if err != nil {
		t.Fatal(err)
	}
	if !failed {
		t.Error("a run with a failed test is reported as passed")
	}
	got := out.String()
	for _, want := range []string{
		"--- FAIL TestBoot (16.5s)",
		"=== output of failed TestBoot/hermes\n    boot_test.go:12: PID 1 runs as uid 0, want 10000\n",
		"SKIP        3.8s  TestStandInRunOwnerHelper: img does not run the hermetic stand-in: this test checks a detail of the stand-in only\n",
		"PASS        1.4s  TestP/build/3.2.3.0_reads_s6-rc.d/user\n",
		"3 passed, 1 skipped, 1 failed, 0 unfinished",
		"FAIL\tp\t325.051s\n",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("summary lacks %q:\n%s", want, got)
		}
	}
	// TestP/build/3.2.3.0_reads_s6-rc.d is no test: no line of its own.
	if strings.Contains(got, "s6-rc.d\n") {
		t.Errorf("a subtest name's slash made a parent of its own:\n%s", got)
	}
	data, err := os.ReadFile(counts)
	if err != nil {
		t.Fatal(err)
	}
	wantCounts := "real-3.2.3.0\topen\troot\t2\t1\t0\n" +
		"real-3.2.3.0\topen\thermes\t0\t0\t1\n" +
		"real-3.2.3.0\tsealed\troot\t0\t0\t0\n" +
		"real-3.2.3.0\tsealed\thermes\t1\t0\t0\n"
	if string(data) != wantCounts {
		t.Errorf("counts:\n%s\nwant:\n%s", data, wantCounts)
	}
	var closing strings.Builder
	if err := printClosing(&closing, counts); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(closing.String(), "real-3.2.3.0           sealed  hermes        1        0       0") {
		t.Errorf("closing table:\n%s", closing.String())
	}
}

func TestSummarizeNothingIsAFailure(t *testing.T) {
	for _, in := range []string{"", `{"Action":"output","Package":"p","Output":"ok  \tp\t0.1s [no tests to run]\n"}` + "\n"} {
		failed, err := summarize(strings.NewReader(in), &strings.Builder{}, "", "")
		if err != nil || !failed {
			t.Errorf("a stream with no test: failed=%v err=%v, want a failure", failed, err)
		}
	}
}
