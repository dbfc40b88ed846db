package follow

import (
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"time"

	"golang.org/x/sys/unix"
)

// s6-supervise's supervise/status (s6 2.11: 35 bytes): a tai64n stamp, the
// ready stamp, then the service's pid as a big-endian uint64 (0: down).
const (
	statusFile   = "supervise/status"
	statusPidOff = 24
	statusMinLen = 32
)

// servicePid reads the pid s6-supervise recorded for the service in dir
// (0: down). ok is false when there is no readable status (no supervisor
// has run there yet). Root reads only its own slots here: the scandir and
// everything in it are root's in sealed mode.
func servicePid(dir string) (pid uint64, ok bool) {
	fd, err := unix.Open(filepath.Join(dir, statusFile), unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		return 0, false
	}
	defer unix.Close(fd)
	var buf [64]byte
	n, err := unix.Read(fd, buf[:])
	if err != nil || n < statusMinLen {
		return 0, false
	}
	return binary.BigEndian.Uint64(buf[statusPidOff : statusPidOff+8]), true
}

// control writes cmd to dir's supervise/control, as s6-svc does, without
// blocking: no supervisor listening (ENXIO) or no FIFO (ENOENT) is
// errNoSupervisor. An empty cmd only asks whether a supervisor listens.
func control(dir, cmd string) error {
	p := filepath.Join(dir, "supervise", "control")
	fd, err := unix.Open(p, unix.O_WRONLY|unix.O_NONBLOCK|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		if errors.Is(err, unix.ENXIO) || errors.Is(err, unix.ENOENT) {
			return errNoSupervisor
		}
		return &os.PathError{Op: "open", Path: p, Err: err}
	}
	defer unix.Close(fd)
	if cmd == "" {
		return nil // only asking whether a supervisor listens
	}
	if _, err := unix.Write(fd, []byte(cmd)); err != nil {
		return &os.PathError{Op: "write", Path: p, Err: err}
	}
	return nil
}

var errNoSupervisor = errors.New("no supervisor listening")

// awaitListeners polls dirs' control FIFOs every pollEvery until a
// supervisor listens on each, or deadline passes. It reports whether all
// do.
func awaitListeners(dirs []string, deadline time.Time, pollEvery time.Duration) bool {
	for {
		all := true
		for _, d := range dirs {
			if control(d, "") == errNoSupervisor {
				all = false
				break
			}
		}
		if all {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(pollEvery)
	}
}

// stopService asks dir's supervisor to bring the service down and waits,
// polling supervise/status every pollEvery, at most timeout, for it to be
// down. It reports whether the service is known to be down (or never had a
// supervisor).
func stopService(dir string, timeout, pollEvery time.Duration) bool {
	if err := control(dir, "d"); err != nil {
		return errors.Is(err, errNoSupervisor)
	}
	deadline := time.Now().Add(timeout)
	for {
		pid, ok := servicePid(dir)
		if !ok || pid == 0 {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(pollEvery)
	}
}
