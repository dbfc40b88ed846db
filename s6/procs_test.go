package s6

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"syscall"
	"testing"

	"github.com/hermes-s6/hermes-s6/internal/testenv"
)

// startIn starts a process with its working directory in dir (as uid, gid
// when uid >= 0) and stops it when the test ends.
func startIn(t *testing.T, dir string, uid, gid int) int {
	t.Helper()
	cmd := exec.Command("sleep", "60")
	cmd.Dir = dir
	if uid >= 0 {
		testenv.AsUser(cmd, uid, gid)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	return cmd.Process.Pid
}

// TestRootProcsIn: root's processes are found by working directory, also
// after their directory is renamed; the user's are not (they could pin a
// removed slot for ever), nor processes elsewhere.
func TestRootProcsIn(t *testing.T) {
	testenv.RequireRoot(t)
	uid, gid := testenv.EnsureUser(t)
	base := testenv.TempDir(t)
	slot, log, other := filepath.Join(base, "gateway-a"), filepath.Join(base, "gateway-a", "log"), filepath.Join(base, "other")
	for _, d := range []string{slot, log, other} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	// Start returns once the child has exec'd, so after its chdir.
	sup, logSup := startIn(t, slot, -1, 0), startIn(t, log, -1, 0)
	// A supervisor's service after its privileges were dropped.
	user := startIn(t, slot, uid, gid)
	elsewhere := startIn(t, other, -1, 0)

	got, err := RootProcsIn("/proc", slot, log)
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(got)
	want := []int{sup, logSup}
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("RootProcsIn = %v, want root's %v (not the user's %d, not %d elsewhere)", got, want, user, elsewhere)
	}

	gone := filepath.Join(base, ".gw-gone-1")
	if err := os.Rename(slot, gone); err != nil {
		t.Fatal(err)
	}
	got, _ = RootProcsIn("/proc", gone, filepath.Join(gone, "log"))
	slices.Sort(got)
	if !slices.Equal(got, want) {
		t.Errorf("after the rename: RootProcsIn = %v, want %v", got, want)
	}
	if got, _ := RootProcsIn("/proc", slot); len(got) != 0 {
		t.Errorf("the old name still matches %v", got)
	}
}

func TestRootProcsInNoProc(t *testing.T) {
	if _, err := RootProcsIn(filepath.Join(t.TempDir(), "proc"), "/"); err == nil {
		t.Error("a missing procfs gave no error")
	}
}

// TestRootSupervisorsOf: root's s6-supervise processes are found by the
// service name s6-svscan gave them (argv[1]), whatever their working
// directory; the user's, and other names, are not.
func TestRootSupervisorsOf(t *testing.T) {
	testenv.RequireRoot(t)
	uid, gid := testenv.EnsureUser(t)
	cat, err := exec.LookPath("cat")
	if err != nil {
		t.Fatal(err)
	}
	base := testenv.TempDir(t)
	start := func(name string, asUser bool) {
		// cat, called s6-supervise, opening a FIFO named like the
		// service: it blocks there until killed, with argv[1] the name.
		p := filepath.Join(base, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := syscall.Mkfifo(p, 0o666); err != nil {
			t.Fatal(err)
		}
		cmd := &exec.Cmd{Path: cat, Args: []string{"s6-supervise", name}, Dir: base}
		if asUser {
			testenv.AsUser(cmd, uid, gid)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	}
	start("gateway-a", false)
	start("gateway-b/log", true)
	start("gateway-c", false)
	got, err := RootSupervisorsOf("/proc", []string{"gateway-a", "gateway-a/log", "gateway-b", "gateway-b/log"})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || !got["gateway-a"] {
		t.Errorf("RootSupervisorsOf = %v, want only root's gateway-a (not the user's gateway-b/log, not gateway-c, not asked)", got)
	}
}
