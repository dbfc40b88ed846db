// Package perms is the only place in hermes-s6 that changes the owner or the
// mode of a file. It does so below directories that the unprivileged user can
// write (the scandir, a slot, a supervise/ directory the user already owns),
// so it resolves nothing by path as root:
//
//   - every path component is opened with O_PATH|O_NOFOLLOW|O_CLOEXEC relative
//     to its parent's file descriptor (openat2 with RESOLVE_NO_SYMLINKS|
//     RESOLVE_BENEATH|RESOLVE_NO_MAGICLINKS where the kernel allows it, plain
//     openat otherwise);
//   - the object is fstat'ed through that descriptor and must have the expected
//     type, owner and (for a FIFO or a regular file) a link count of 1;
//   - its owner and mode are changed through the same descriptor
//     (fchownat(fd, "", AT_EMPTY_PATH), fchmodat2(fd, "", AT_EMPTY_PATH) or
//     fchmodat on /proc/self/fd/N), so a rename or symlink swap between the
//     check and the change can only make the change miss, never redirect it.
//
// The only symlinks ever followed are scandir entries owned by root whose
// target resolves through root-owned directories that others cannot write
// (s6-rc's /run/service/<name> -> /run/s6-rc:s6-rc-init:XXXX/servicedirs/<name>).
//
// Objects are also created here (Scandir.Prepare): supervise/ and
// supervise/control are made before s6-supervise starts, with mkdirat/
// mknodat relative to the verified parent's descriptor, then opened
// O_PATH|O_NOFOLLOW, fstat'ed, and given their owner and mode through that
// descriptor only if they are still what was just made (root's, right type,
// one link, empty). s6-supervise reuses them and never re-chowns.
//
// Policies: owner (the user owns supervise/, control and event/), group
// (root keeps them; the user's group gets supervise/ 0710, control 0620,
// event/ 03730, as s6-svperms -G -E does) and sealed (as group, but
// supervise/ is 0750, see SealedSuperviseMode, and event/ stays root's: a
// writable fifodir is a root write for its writer). Under
// group and sealed a root object is only changed if its mode is the one s6
// gives that name, so swapping two of them by name changes neither.
//
// FIFOs are only ever opened with O_PATH: opening one for reading or writing
// would block or steal s6-supervise's commands.
package perms

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Owner is who gets the objects.
type Owner struct{ UID, GID int }

// Outcome reports what happened to one object.
type Outcome struct {
	Path   string
	Action string // "chowned", "chmodded", "chowned+chmodded", "unchanged", "missing"

	// UID, GID and Mode are the object's owner and permission bits after the
	// call (zero when missing).
	UID, GID int
	Mode     fs.FileMode
}

// Actions reported in Outcome.Action.
const (
	ActionChowned         = "chowned"
	ActionChmodded        = "chmodded"
	ActionChownedChmodded = "chowned+chmodded"
	ActionUnchanged       = "unchanged"
	ActionMissing         = "missing"
)

// Sentinel errors; every error this package returns is an *os.PathError whose
// Err wraps one of these (and the errno, when a system call failed), so
// errors.Is works with both.
var (
	// ErrSymlink: the object is a symbolic link that is not trusted.
	ErrSymlink = errors.New("is a symbolic link, which is never followed here")
	// ErrNotRootOwned: the object is owned by someone other than root (or the
	// target user, where that is allowed).
	ErrNotRootOwned = errors.New("is not owned by root")
	// ErrWrongType: the object is not of the expected type (FIFO, directory,
	// regular file).
	ErrWrongType = errors.New("is not of the expected type")
	// ErrHardLinked: a FIFO or regular file has more than one link, so it may
	// be someone else's file linked in.
	ErrHardLinked = errors.New("has more than one hard link")
	// ErrUntrustedPath: a root-owned symlink's target resolves through a
	// directory that is not root-owned or that others can write.
	ErrUntrustedPath = errors.New("resolves through a directory that is not root-owned or that others can write")
	// ErrUntrustedAncestor: a directory above the scandir is not root's or
	// can be written by group or others.
	ErrUntrustedAncestor = errors.New("is an ancestor of the scandir that is not root-owned or that group or others can write")
	// ErrNotS6Made: a root-owned object whose mode is not the one s6 gives
	// it under that name (for example supervise/ and event/ swapped).
	ErrNotS6Made = errors.New("does not look like what s6 created under this name")
	// ErrNotCreated: what Prepare just created is not what it finds (a
	// race with the user, who can write the service directory).
	ErrNotCreated = errors.New("is not the object just created here")
	// ErrBadName: a name that is not a single path component.
	ErrBadName = errors.New("is not a single path component")
)

// checkError carries a sentinel, an optional errno, what was found and what
// to do about it.
type checkError struct {
	sentinel error
	errno    error
	found    string
	fix      string
}

func (e *checkError) Error() string {
	var b strings.Builder
	b.WriteString(e.sentinel.Error())
	if e.found != "" {
		b.WriteString(" (found " + e.found + ")")
	}
	if e.errno != nil {
		b.WriteString(": " + e.errno.Error())
	}
	if e.fix != "" {
		b.WriteString("; " + e.fix)
	}
	return b.String()
}

func (e *checkError) Unwrap() []error {
	if e.errno != nil {
		return []error{e.sentinel, e.errno}
	}
	return []error{e.sentinel}
}

func refuse(op, path string, sentinel error, found, fix string) error {
	return &os.PathError{Op: op, Path: path, Err: &checkError{sentinel: sentinel, found: found, fix: fix}}
}

// Kind is the type an object must have.
type Kind int

// Kinds of objects.
const (
	KindDir Kind = iota
	KindFIFO
	KindRegular
)

func (k Kind) String() string {
	switch k {
	case KindDir:
		return "directory"
	case KindFIFO:
		return "FIFO"
	case KindRegular:
		return "regular file"
	}
	return "object"
}

func (k Kind) ifmt() uint32 {
	switch k {
	case KindDir:
		return unix.S_IFDIR
	case KindFIFO:
		return unix.S_IFIFO
	default:
		return unix.S_IFREG
	}
}

// Test hooks: force the fallbacks taken when the kernel (or a seccomp
// profile) refuses openat2 or fchmodat2.
var (
	forceOpenatFallback  atomic.Bool
	forceFchmodFallback  atomic.Bool
	openat2Unavailable   atomic.Bool
	fchmodat2Unavailable atomic.Bool
)

// node is an O_PATH descriptor and what fstat said about it.
type node struct {
	fd   int
	path string
	st   unix.Stat_t
}

func (n *node) close() {
	if n != nil && n.fd >= 0 {
		_ = unix.Close(n.fd)
		n.fd = -1
	}
}

func (n *node) isType(mask uint32) bool { return n.st.Mode&unix.S_IFMT == mask }
func (n *node) isSymlink() bool         { return n.isType(unix.S_IFLNK) }
func (n *node) isDir() bool             { return n.isType(unix.S_IFDIR) }
func (n *node) uid() int                { return int(n.st.Uid) }
func (n *node) gid() int                { return int(n.st.Gid) }
func (n *node) perm() uint32            { return n.st.Mode & 0o7777 }

// describe renders "prw------- root 0:0, 1 link" style facts for messages.
func (n *node) describe() string {
	return describeStat(&n.st)
}

func describeStat(st *unix.Stat_t) string {
	return fmt.Sprintf("%s %d:%d, %d link(s)", modeString(st.Mode), st.Uid, st.Gid, st.Nlink)
}

// FileMode converts a raw st_mode into an fs.FileMode.
func FileMode(m uint32) fs.FileMode {
	mode := fs.FileMode(m & 0o777)
	switch m & unix.S_IFMT {
	case unix.S_IFDIR:
		mode |= fs.ModeDir
	case unix.S_IFIFO:
		mode |= fs.ModeNamedPipe
	case unix.S_IFLNK:
		mode |= fs.ModeSymlink
	case unix.S_IFSOCK:
		mode |= fs.ModeSocket
	case unix.S_IFCHR:
		mode |= fs.ModeDevice | fs.ModeCharDevice
	case unix.S_IFBLK:
		mode |= fs.ModeDevice
	}
	if m&unix.S_ISUID != 0 {
		mode |= fs.ModeSetuid
	}
	if m&unix.S_ISGID != 0 {
		mode |= fs.ModeSetgid
	}
	if m&unix.S_ISVTX != 0 {
		mode |= fs.ModeSticky
	}
	return mode
}

func modeString(m uint32) string {
	return FileMode(m).String() + " (" + fmt.Sprintf("%04o", m&0o7777) + ")"
}

func validName(name string) bool {
	return name != "" && name != "." && name != ".." && !strings.ContainsRune(name, '/') && !strings.ContainsRune(name, 0)
}

// openNode opens the single component name below dirfd without following
// any symlink (a symlink is returned as itself, type S_IFLNK) and fstats it.
func openNode(dirfd int, dirpath, name string) (*node, error) {
	p := joinPath(dirpath, name)
	if !validName(name) {
		return nil, refuse("open", p, ErrBadName, "", "service and file names must not contain '/' or NUL, and must not be '.' or '..'")
	}
	fd, err := openComponent(dirfd, name)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: p, Err: err}
	}
	n := &node{fd: fd, path: p}
	if err := unix.Fstat(fd, &n.st); err != nil {
		n.close()
		return nil, &os.PathError{Op: "fstat", Path: p, Err: err}
	}
	return n, nil
}

const openFlags = unix.O_PATH | unix.O_NOFOLLOW | unix.O_CLOEXEC

// openComponent is openat2(RESOLVE_NO_SYMLINKS|RESOLVE_BENEATH|
// RESOLVE_NO_MAGICLINKS) with a fallback to openat(O_NOFOLLOW) when openat2
// is missing (ENOSYS), refused by seccomp (EPERM) or keeps racing (EAGAIN).
func openComponent(dirfd int, name string) (int, error) {
	if !forceOpenatFallback.Load() && !openat2Unavailable.Load() {
		how := unix.OpenHow{
			Flags:   openFlags,
			Resolve: unix.RESOLVE_NO_SYMLINKS | unix.RESOLVE_BENEATH | unix.RESOLVE_NO_MAGICLINKS,
		}
		for attempt := 0; attempt < 4; attempt++ {
			fd, err := unix.Openat2(dirfd, name, &how)
			if err == nil {
				return fd, nil
			}
			switch err {
			case unix.EAGAIN, unix.EINTR:
				continue
			case unix.ENOSYS, unix.EPERM, unix.E2BIG:
				openat2Unavailable.Store(true)
			case unix.ELOOP:
				// Only possible for a symlink in the middle, which a single
				// component has not; fall through to openat for a clear
				// answer.
			default:
				return -1, err
			}
			break
		}
	}
	for {
		fd, err := unix.Openat(dirfd, name, openFlags, 0)
		if err == unix.EINTR {
			continue
		}
		return fd, err
	}
}

func joinPath(dir, name string) string {
	if dir == "" {
		return name
	}
	if strings.HasSuffix(dir, "/") {
		return dir + name
	}
	return dir + "/" + name
}

// expect checks n's type, and for FIFOs and regular files its link count.
// what names the object for the fix hint.
func expect(n *node, kind Kind, fix string) error {
	if n.isSymlink() {
		target := ""
		if t, err := readlinkFD(n.fd); err == nil {
			target = " -> " + strconv.Quote(t)
		}
		return refuse("check", n.path, ErrSymlink, "a symlink"+target+", owned by "+strconv.Itoa(n.uid()), fix)
	}
	if !n.isType(kind.ifmt()) {
		return refuse("check", n.path, ErrWrongType, n.describe()+", want a "+kind.String(), fix)
	}
	if kind != KindDir && n.st.Nlink != 1 {
		return refuse("check", n.path, ErrHardLinked, n.describe(), fix)
	}
	return nil
}

func readlinkFD(fd int) (string, error) {
	buf := make([]byte, 4096)
	for {
		k, err := unix.Readlinkat(fd, "", buf)
		if err != nil {
			return "", err
		}
		if k < len(buf) {
			return string(buf[:k]), nil
		}
		if len(buf) >= 1<<16 {
			return "", unix.ENAMETOOLONG
		}
		buf = make([]byte, 2*len(buf))
	}
}

// chown changes n's owner through its descriptor and refreshes n.st. A mode
// the kernel dropped on the way (set-group-ID) is put back.
func chown(n *node, uid, gid int) error {
	before := n.perm()
	if err := unix.Fchownat(n.fd, "", uid, gid, unix.AT_EMPTY_PATH); err != nil {
		return &os.PathError{Op: "chown", Path: n.path, Err: err}
	}
	if err := unix.Fstat(n.fd, &n.st); err != nil {
		return &os.PathError{Op: "fstat", Path: n.path, Err: err}
	}
	if n.perm() != before {
		return chmod(n, before)
	}
	return nil
}

// chmod changes n's mode through its descriptor: fchmodat2(fd, "",
// AT_EMPTY_PATH) where the kernel has it, else fchmodat on /proc/self/fd/N.
func chmod(n *node, mode uint32) error {
	err := fchmodFD(n.fd, mode)
	if err != nil {
		return &os.PathError{Op: "chmod", Path: n.path, Err: err}
	}
	if err := unix.Fstat(n.fd, &n.st); err != nil {
		return &os.PathError{Op: "fstat", Path: n.path, Err: err}
	}
	if n.perm() != mode {
		return &os.PathError{Op: "chmod", Path: n.path, Err: fmt.Errorf("mode is %04o after setting %04o", n.perm(), mode)}
	}
	return nil
}

var emptyPath = []byte{0}

func fchmodFD(fd int, mode uint32) error {
	if !forceFchmodFallback.Load() && !fchmodat2Unavailable.Load() {
		_, _, e := unix.Syscall6(unix.SYS_FCHMODAT2, uintptr(fd), uintptr(unsafe.Pointer(&emptyPath[0])), uintptr(mode), unix.AT_EMPTY_PATH, 0, 0)
		switch e {
		case 0:
			return nil
		case unix.ENOSYS, unix.EPERM, unix.EINVAL, unix.EOPNOTSUPP, unix.EBADF:
			// Missing (kernel < 6.6), refused by seccomp, or no
			// AT_EMPTY_PATH support on this kernel: use /proc.
			fchmodat2Unavailable.Store(true)
		default:
			return e
		}
	}
	return unix.Fchmodat(unix.AT_FDCWD, "/proc/self/fd/"+strconv.Itoa(fd), mode, 0)
}

// openPathDir opens an absolute or relative directory path that the
// operator configured (the scandir's parent): the kernel resolves it, since
// the operator chose it.
func openPathDir(path string) (*node, error) {
	fd, err := unix.Open(path, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: path, Err: err}
	}
	n := &node{fd: fd, path: path}
	if err := unix.Fstat(fd, &n.st); err != nil {
		n.close()
		return nil, &os.PathError{Op: "fstat", Path: path, Err: err}
	}
	return n, nil
}

// listDir returns the names in the directory n (an O_PATH descriptor) by
// opening "." below it for reading.
func listDir(n *node) ([]string, error) {
	fd, err := unix.Openat(n.fd, ".", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC|unix.O_NOFOLLOW, 0)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: n.path, Err: err}
	}
	f := os.NewFile(uintptr(fd), n.path)
	defer f.Close()
	names, err := f.Readdirnames(-1)
	if err != nil {
		return names, &os.PathError{Op: "readdir", Path: n.path, Err: err}
	}
	return names, nil
}
