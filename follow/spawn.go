package follow

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// ExecStarter starts the reader as a separate process: this same binary
// (Path, normally /proc/self/exe) with Args, under the user's credentials
// (uid, gid, and the user's own groups: root's supplementary groups are
// not inherited), killed with SIGKILL if root dies. Its standard output is
// the snapshot stream, its standard input root's answers, its standard
// error root's (its log lines join root's log). It gets no other
// descriptor of root's: see cloexecAll.
type ExecStarter struct {
	Path   string
	Args   []string // after argv[0]; "--internal-boot" is added for the first reader
	Env    []string
	UID    int
	GID    int
	Groups []int
	Stderr io.Writer
}

// Start implements Starter.
func (e ExecStarter) Start(ctx context.Context, boot bool) (*Stream, error) {
	args := append([]string{"reconcile-profiles"}, e.Args...)
	if boot {
		args = append(args, "--internal-boot")
	}
	outR, outW, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("reader pipe: %w", err)
	}
	inR, inW, err := os.Pipe()
	if err != nil {
		outR.Close()
		outW.Close()
		return nil, fmt.Errorf("reader pipe: %w", err)
	}
	groups := make([]uint32, 0, len(e.Groups))
	for _, g := range e.Groups {
		groups = append(groups, uint32(g))
	}
	cmd := &exec.Cmd{
		Path:   e.Path,
		Args:   args,
		Env:    e.Env,
		Dir:    "/",
		Stdin:  inR,
		Stdout: outW,
		Stderr: e.Stderr,
		SysProcAttr: &syscall.SysProcAttr{
			Credential: &syscall.Credential{Uid: uint32(e.UID), Gid: uint32(e.GID), Groups: groups},
			Pdeathsig:  syscall.SIGKILL,
			Setpgid:    true,
		},
	}
	// Go's exec passes only Stdin, Stdout, Stderr and ExtraFiles on
	// purpose, but it does not close what root inherited without
	// close-on-exec: s6-rc's readiness fd (notification-fd 3, write-only)
	// would reach the reader, and the user can ptrace its reader, so it
	// could signal "profile-follower ready" before the first snapshot is
	// applied. Marked close-on-exec here, before every start, so that a
	// descriptor some library opened since is covered as well.
	if err := cloexecAll(); err != nil {
		outR.Close()
		outW.Close()
		inR.Close()
		inW.Close()
		return nil, fmt.Errorf("not starting the reader: it would inherit root's descriptors: %w", err)
	}
	if err := cmd.Start(); err != nil {
		outR.Close()
		outW.Close()
		inR.Close()
		inW.Close()
		return nil, fmt.Errorf("starting the reader %s as uid %d: %w", e.Path, e.UID, err)
	}
	outW.Close()
	inR.Close()
	return &Stream{
		Out: outR,
		Ack: deadlineWriter{inW},
		Kill: func() {
			_ = cmd.Process.Kill()
		},
		Wait: func() error {
			err := cmd.Wait()
			outR.Close()
			inW.Close()
			return err
		},
	}, nil
}

// deadlineWriter never blocks root for more than a moment: a reader that
// does not read its answers loses them.
type deadlineWriter struct{ f *os.File }

func (d deadlineWriter) Write(p []byte) (int, error) {
	_ = d.f.SetWriteDeadline(time.Now().Add(20 * time.Millisecond))
	return d.f.Write(p)
}

// cloexecAll marks every descriptor above 2 close-on-exec, keeping it open
// in root: close_range(2) with CLOSE_RANGE_CLOEXEC (Linux 5.11), else one
// fcntl per entry of /proc/self/fd.
func cloexecAll() error {
	if err := unix.CloseRange(3, ^uint(0), unix.CLOSE_RANGE_CLOEXEC); err == nil {
		return nil
	}
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return fmt.Errorf("listing /proc/self/fd: %w", err)
	}
	for _, e := range ents {
		fd, err := strconv.Atoi(e.Name())
		if err != nil || fd < 3 {
			continue
		}
		// The listing's own descriptor is gone by now: EBADF is expected.
		if _, err := unix.FcntlInt(uintptr(fd), unix.F_SETFD, unix.FD_CLOEXEC); err != nil && err != unix.EBADF {
			return &os.PathError{Op: "fcntl F_SETFD", Path: "/proc/self/fd/" + e.Name(), Err: err}
		}
	}
	return nil
}
