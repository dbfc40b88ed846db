package follow

import (
	"context"
	"io"
	"os"
	"strings"
	"syscall"
	"testing"

	"github.com/hermes-s6/hermes-s6/internal/testenv"
)

// TestReaderGetsOnlyItsPipes starts a reader the production way
// (ExecStarter: new credentials, pipes) from a root process holding a
// descriptor inherited without close-on-exec, as s6-rc's readiness fd 3 is,
// and asserts that the reader's process has nothing but 0, 1 and 2. The
// "reader" is sh listing its own /proc/<pid>/fd (ls runs as its child, so
// ls's own descriptors are not in that list).
func TestReaderGetsOnlyItsPipes(t *testing.T) {
	testenv.RequireRoot(t)
	uid, gid := testenv.EnsureUser(t)
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	// syscall.Dup, unlike everything in package os, leaves the new
	// descriptor without close-on-exec: root's inherited readiness fd.
	leak, err := syscall.Dup(int(w.Fd()))
	if err != nil {
		t.Fatal(err)
	}
	defer syscall.Close(leak)
	if flags, _, _ := syscall.Syscall(syscall.SYS_FCNTL, uintptr(leak), syscall.F_GETFD, 0); flags&syscall.FD_CLOEXEC != 0 {
		t.Fatalf("setup: fd %d is close-on-exec already", leak)
	}
	st, err := ExecStarter{Path: "/bin/sh", Args: []string{"-c", "ls /proc/$$/fd"}, Env: []string{"PATH=/usr/bin:/bin"},
		UID: uid, GID: gid, Stderr: os.Stderr}.Start(context.Background(), false)
	if err != nil {
		t.Fatal(err)
	}
	out, err := io.ReadAll(st.Out)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Wait(); err != nil {
		t.Fatalf("reader: %v", err)
	}
	if got := strings.Fields(string(out)); strings.Join(got, " ") != "0 1 2" {
		t.Errorf("the reader's descriptors are %q, want only 0 1 2 (fd %d is root's, inherited without close-on-exec)", got, leak)
	}
	// Root keeps its own descriptor: only close-on-exec was set.
	if _, err := syscall.Write(leak, []byte("x")); err != nil {
		t.Errorf("root's fd %d after starting the reader: %v", leak, err)
	}
}
