// Command fix-run-owner is a detail of the hermetic stand-in (test images
// only, never production): the one privileged step of s6-overlay's preinit
// for a container started as a non-root user (`docker run -u hermes`).
// s6-overlay runs preinit through its setuid-root s6-overlay-suexec and, when
// /run does not belong to the container's user, says "/run belongs to uid 0
// instead of 10000 - fixing it" and chowns /run to that user. A non-root
// stand-in /init cannot chown, so the test image installs this program
// setuid root and hermetic/init calls it for that step.
//
// It does that and nothing else: no arguments, only /run, only to the
// caller's real UID and GID, only before the boot has made /run/service,
// and through one O_NOFOLLOW descriptor that is checked before it is
// changed. Exit codes: 0 done (or nothing to do), 100 refused, 111 failed.
package main

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

const run = "/run"

func main() {
	if err := fix(); err != nil {
		fmt.Fprintf(os.Stderr, "fix-run-owner: %v\n", err)
		if r, ok := err.(refusal); ok && r.refused {
			os.Exit(100)
		}
		os.Exit(111)
	}
}

type refusal struct {
	msg     string
	refused bool
}

func (r refusal) Error() string { return r.msg }

func refuse(format string, a ...any) error {
	return refusal{msg: "refused: " + fmt.Sprintf(format, a...), refused: true}
}

func fail(format string, a ...any) error { return refusal{msg: fmt.Sprintf(format, a...)} }

func fix() error {
	if len(os.Args) != 1 {
		return refuse("takes no arguments (it only ever gives %s to the caller)", run)
	}
	uid, gid := unix.Getuid(), unix.Getgid()
	if uid == 0 {
		return nil // root needs no fixing: s6-overlay leaves /run alone then
	}
	if unix.Geteuid() != 0 {
		return fail("not running as root: install it setuid root (chmod 4755, owner root) in the test image")
	}
	// O_RDONLY, not O_PATH: fchmod needs a real descriptor. O_NOFOLLOW: a
	// symlink at /run is refused, not followed.
	fd, err := unix.Open(run, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return fail("open %s: %v", run, err)
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return fail("fstat %s: %v", run, err)
	}
	if int(st.Uid) == uid {
		return nil // already the user's (a restart of a -u container)
	}
	if st.Uid != 0 {
		return refuse("%s belongs to uid %d, neither root nor the caller (%d)", run, st.Uid, uid)
	}
	// Once the boot has made the scandir, a process of the container (any
	// user's) must not be able to take /run: only the stand-in's init, which
	// calls this before it makes /run/service, may.
	var sst unix.Stat_t
	if err := unix.Fstatat(fd, "service", &sst, unix.AT_SYMLINK_NOFOLLOW); err == nil {
		return refuse("%s/service exists: the boot is past the point where /run may change owner", run)
	}
	if err := unix.Fchown(fd, uid, gid); err != nil {
		return fail("fchown %s to %d:%d: %v", run, uid, gid, err)
	}
	if err := unix.Fchmod(fd, 0o755); err != nil {
		return fail("fchmod %s 0755: %v", run, err)
	}
	return nil
}
