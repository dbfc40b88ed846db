// Package s6 holds what this project knows about a running s6 tree: whether
// s6-overlay's s6-svscan is PID 1, and how to ask it to rescan its scandir.
package s6

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
)

// Names of s6-svscan's control directory and its files inside a scandir.
const (
	ControlDir  = ".s6-svscan"
	ControlFIFO = ".s6-svscan/control"
	LockFile    = ".s6-svscan/lock"
)

// ErrNotRunning is returned (wrapped) by Rescan when no s6-svscan reads the
// scandir's control FIFO.
var ErrNotRunning = errors.New("s6-svscan is not running on this scandir")

// Detection is the outcome of Detect: Running, and if not, why not.
type Detection struct {
	Running bool
	Reason  string
}

// Detect reports whether s6-overlay's s6-svscan is PID 1, reading fsys
// rooted at "/" (os.DirFS("/") in production, a fake in tests).
//
// Both signals are required: /proc/1/comm reads "s6-svscan" (world-readable,
// unlike /proc/1/exe, which an unprivileged user cannot resolve: that is the
// bug that started this project) and /run/s6/basedir is a directory (made by
// s6-overlay, so a bare s6-svscan elsewhere does not count). Any error while
// probing means "not running": fail closed.
func Detect(fsys fs.FS) Detection {
	comm, err := fs.ReadFile(fsys, "proc/1/comm")
	if err != nil {
		return Detection{Reason: fmt.Sprintf("cannot read /proc/1/comm: %v", err)}
	}
	if c := strings.TrimSpace(string(comm)); c != "s6-svscan" {
		return Detection{Reason: fmt.Sprintf("PID 1 is %q, not s6-svscan", c)}
	}
	st, err := fs.Stat(fsys, "run/s6/basedir")
	if err != nil {
		return Detection{Reason: fmt.Sprintf("cannot stat /run/s6/basedir: %v", err)}
	}
	if !st.IsDir() {
		return Detection{Reason: "/run/s6/basedir is not a directory"}
	}
	return Detection{Running: true}
}

// Rescan asks the s6-svscan watching scandir to rescan it now, as
// `s6-svscanctl -a` does: it writes "a" to <scandir>/.s6-svscan/control.
//
// The FIFO is opened write-only and non-blocking, so a scandir without a
// reader fails at once with ErrNotRunning instead of hanging, and with
// O_NOFOLLOW, so a planted symlink is refused.
func Rescan(scandir string) error { return Control(scandir, "a") }

// Control writes cmd (s6-svscanctl's letters) to scandir's control FIFO,
// with the same non-blocking, no-symlink open as Rescan.
func Control(scandir, cmd string) error {
	p := filepath.Join(scandir, ControlFIFO)
	fd, err := syscall.Open(p, syscall.O_WRONLY|syscall.O_NONBLOCK|syscall.O_NOFOLLOW|syscall.O_CLOEXEC, 0)
	if err != nil {
		if errors.Is(err, syscall.ENXIO) || errors.Is(err, syscall.ENOENT) {
			return &os.PathError{Op: "rescan", Path: p, Err: fmt.Errorf("%w (%w)", ErrNotRunning, err)}
		}
		return &os.PathError{Op: "rescan", Path: p, Err: err}
	}
	defer syscall.Close(fd)
	if _, err := syscall.Write(fd, []byte(cmd)); err != nil {
		return &os.PathError{Op: "rescan", Path: p, Err: err}
	}
	return nil
}
