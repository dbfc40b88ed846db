package s6

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// ErrScanTimeout is returned (wrapped) by Scan when s6-svscan did not read
// its control FIFO in time: it is busy or stopped, and the scan asked for
// may not have happened yet.
var ErrScanTimeout = errors.New("s6-svscan did not read its control FIFO in time")

// Scan asks the s6-svscan watching scandir to rescan it, as Rescan does,
// and returns once that scan is over: every entry it found has been looked
// at, supervisors for new ones have been spawned, and removed ones are no
// longer active. Rescan only queues the request.
//
// s6 has no "scan done" answer, so Scan relies on how s6-svscan reads its
// control FIFO: one event loop, which reads every byte waiting in the FIFO,
// then runs the scan it was asked for, then reaps, then waits again.
// Bytes it has read are gone from the pipe (FIONREAD, which works on
// either end of a FIFO, says how many remain). So Scan writes "a" and
// waits until the pipe is empty: s6-svscan has read it, and the scan is
// about to start or running. It then writes "z" (reap: harmless) and
// waits until that is read too: s6-svscan has been back to its loop's
// wait, so the scan is over. "z" is written twice: a byte written just
// as s6-svscan drains the pipe can be read with "a", before the scan; two
// in a row cannot both be, short of two such coincidences at once.
//
// Scan holds the FIFO open for the whole exchange. It is for the one
// process that owns the control FIFO (root, in sealed mode): another
// writer's bytes in the pipe only make the wait longer.
func Scan(scandir string, timeout time.Duration) error {
	p := filepath.Join(scandir, ControlFIFO)
	fd, err := syscall.Open(p, syscall.O_WRONLY|syscall.O_NONBLOCK|syscall.O_NOFOLLOW|syscall.O_CLOEXEC, 0)
	if err != nil {
		if errors.Is(err, syscall.ENXIO) || errors.Is(err, syscall.ENOENT) {
			return &os.PathError{Op: "scan", Path: p, Err: fmt.Errorf("%w (%w)", ErrNotRunning, err)}
		}
		return &os.PathError{Op: "scan", Path: p, Err: err}
	}
	defer syscall.Close(fd)
	var st syscall.Stat_t
	if err := syscall.Fstat(fd, &st); err != nil {
		return &os.PathError{Op: "scan", Path: p, Err: err}
	}
	if st.Mode&syscall.S_IFMT != syscall.S_IFIFO {
		return &os.PathError{Op: "scan", Path: p, Err: errors.New("not a FIFO")}
	}
	deadline := time.Now().Add(timeout)
	for _, b := range []string{"a", "z", "z"} {
		if _, err := syscall.Write(fd, []byte(b)); err != nil {
			return &os.PathError{Op: "scan", Path: p, Err: err}
		}
		if err := drained(fd, deadline); err != nil {
			return &os.PathError{Op: "scan", Path: p, Err: err}
		}
	}
	return nil
}

// drained waits until the pipe fd has no unread byte, polling with a
// delay that grows from 50 µs to 5 ms (a scan of a thousand services takes
// tens of milliseconds; most are over in well under one).
func drained(fd int, deadline time.Time) error {
	wait := 50 * time.Microsecond
	for {
		n, err := unix.IoctlGetInt(fd, unix.TIOCINQ) // FIONREAD
		if err != nil {
			return fmt.Errorf("FIONREAD: %w", err)
		}
		if n == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%w (%d bytes unread)", ErrScanTimeout, n)
		}
		time.Sleep(wait)
		wait = min(2*wait, 5*time.Millisecond)
	}
}
