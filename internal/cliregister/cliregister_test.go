package cliregister

import (
	"os"
	"path/filepath"
	"testing"
)

// TestStageSeedsTheSkeleton: the staging directory holds the slot's files,
// down, and in it and in log/ the CLI's skeleton with its modes.
func TestStageSeedsTheSkeleton(t *testing.T) {
	tmp := filepath.Join(t.TempDir(), ".gateway-p.tmp")
	if err := stage(tmp, Options{}); err != nil {
		t.Fatal(err)
	}
	want := map[string]os.FileMode{
		"type": 0o644, "run": 0o755, "finish": 0o755, "down": 0o644, "log": os.ModeDir | 0o755, "log/run": 0o755,
	}
	for _, d := range []string{"", "log/"} {
		want[d+"event"] = os.ModeDir | os.ModeSetgid | os.ModeSticky | 0o730
		want[d+"supervise"] = os.ModeDir | 0o755
		want[d+"supervise/event"] = os.ModeDir | os.ModeSetgid | os.ModeSticky | 0o730
		want[d+"supervise/control"] = os.ModeNamedPipe | 0o660
	}
	for rel, m := range want {
		fi, err := os.Lstat(filepath.Join(tmp, rel))
		if err != nil {
			t.Errorf("%s: %v", rel, err)
			continue
		}
		// umask may take bits off a file's mode, never off a chmod'ed one.
		if got := fi.Mode(); got != m && rel != "type" && rel != "down" {
			t.Errorf("%s: %v, want %v", rel, got, m)
		}
	}
}

// TestStageNoSkeleton: an unseeded registrar leaves supervise/ and event/
// to others.
func TestStageNoSkeleton(t *testing.T) {
	tmp := filepath.Join(t.TempDir(), ".gateway-p.tmp")
	if err := stage(tmp, Options{NoSkeleton: true}); err != nil {
		t.Fatal(err)
	}
	for _, rel := range []string{"supervise", "event", "log/supervise", "log/event"} {
		if _, err := os.Lstat(filepath.Join(tmp, rel)); !os.IsNotExist(err) {
			t.Errorf("%s: %v, want absent", rel, err)
		}
	}
}

// TestSkeletonKeepsExisting: check-then-create: a directory already there
// is kept (and given the CLI's mode), not re-made.
func TestSkeletonKeepsExisting(t *testing.T) {
	d := t.TempDir()
	if err := os.Mkdir(filepath.Join(d, "supervise"), 0o700); err != nil {
		t.Fatal(err)
	}
	marker := filepath.Join(d, "supervise", "marker")
	if err := os.WriteFile(marker, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := skeleton(d); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(marker); err != nil {
		t.Errorf("existing supervise/ re-made: %v", err)
	}
}

func TestCountAndLine(t *testing.T) {
	out := Result{Profile: "a", First: "ok", Tries: 1}.Line() + "\n" +
		Result{Profile: "b", First: "not-listening", Tries: 3}.Line() + "\n" +
		Result{Profile: "c", Step: "s6-svc", Err: os.ErrPermission}.Line() + "\n" +
		"FAIL d s6-svstat: s6-svstat: fatal: unable to read status for x: Permission denied\n"
	c := Count(out)
	if c.OK != 2 || c.FirstOK != 1 || c.FirstNotListening != 1 || c.Failed != 2 || c.Denied != 1 || len(c.Failures) != 2 {
		t.Errorf("Count: %+v", c)
	}
}
