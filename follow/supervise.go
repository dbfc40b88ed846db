package follow

import (
	"context"
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"slices"
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

// listens reports whether a supervisor listens on dir's control FIFO (an
// error other than "none" counts as one: root does not delete or remake
// what it cannot rule out).
func listens(dir string) bool { return control(dir, "") != errNoSupervisor }

// pause waits d, or until ctx ends; it reports whether ctx is still live.
// Every wait of the remover and the reaper goes through it, so that Root
// returns promptly once ctx ends, and nothing of it logs or touches the
// scandir after that.
func pause(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// awaitListeners polls dirs' control FIFOs every pollEvery until a
// supervisor has listened on each, deadline passes, or ctx ends. It returns
// those where none did.
func awaitListeners(ctx context.Context, dirs []string, deadline time.Time, pollEvery time.Duration) []string {
	quiet := slices.Clone(dirs)
	for {
		quiet = slices.DeleteFunc(quiet, func(d string) bool { return listens(d) })
		if len(quiet) == 0 || time.Now().After(deadline) || !pause(ctx, pollEvery) {
			return quiet
		}
	}
}

// stopServices asks each of dirs' supervisors to bring its service down and
// waits, polling supervise/status every pollEvery, at most timeout in all,
// for them to be down. down[i] reports whether dirs[i]'s service is known to
// be down (or never had a supervisor). It stops waiting when ctx ends.
func stopServices(ctx context.Context, dirs []string, timeout, pollEvery time.Duration) (down []bool) {
	down = make([]bool, len(dirs))
	var pending []int
	for i, d := range dirs {
		if err := control(d, "d"); err != nil {
			down[i] = errors.Is(err, errNoSupervisor)
			continue
		}
		pending = append(pending, i)
	}
	deadline := time.Now().Add(timeout)
	for {
		pending = slices.DeleteFunc(pending, func(i int) bool {
			pid, ok := servicePid(dirs[i])
			down[i] = !ok || pid == 0
			return down[i]
		})
		if len(pending) == 0 || time.Now().After(deadline) || !pause(ctx, pollEvery) {
			return down
		}
	}
}
