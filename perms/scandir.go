package perms

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// Fix hints, shared by messages.
const (
	fixScandirSymlink = "only scandir entries owned by root are followed as symlinks; remove it, or let root create it"
	fixInsideSymlink  = "s6 creates a real object here; remove the symlink (s6-supervise re-creates the object on its next start)"
	fixWrongType      = "s6 creates this object itself; remove it and restart the service's s6-supervise (s6-svc -x, s6-svscanctl -a)"
	fixHardLinked     = "a hard link may be someone else's file; remove this name and restart the service's s6-supervise"
	fixNotRootOwned   = "only objects created by root's s6-supervise/s6-svscan are handed over; remove it and restart the supervisor"
	fixNotS6Made      = "only objects whose mode is the one s6-supervise gives them are changed (a renamed or swapped object is not); remove it and restart the service's s6-supervise"
)

// HandOverScandir makes the scandir directory itself (not recursively), and its
// .s6-svscan/control (FIFO, nlink 1) and .s6-svscan/lock (regular file, nlink 1),
// belong to owner, with no symlink followed and only root-owned objects of the
// expected type touched (objects already owned by owner are left alone and reported
// unchanged). A missing .s6-svscan or missing control/lock (s6-svscan not started
// yet) is reported as missing, not an error. The scandir itself must be a real
// directory owned by root or already by owner; anything else is an error
// (wrapping the sentinel errors). Changes nothing else, never modes.
//
// The scandir's parent directories are resolved by the kernel (the operator
// chose that path); the scandir's own name and everything below it are opened
// without following symlinks.
func HandOverScandir(scandir string, owner Owner) ([]Outcome, error) {
	s, err := OpenScandir(scandir)
	if err != nil {
		return nil, err
	}
	defer s.Close()

	var outcomes []Outcome
	o, err := handOver(s.n, KindDir, owner, "the scandir must be a real directory made by root")
	if err != nil {
		return nil, err
	}
	outcomes = append(outcomes, o)

	ctl := joinPath(s.n.path, ".s6-svscan")
	dir, err := openNode(s.n.fd, s.n.path, ".s6-svscan")
	if errors.Is(err, fs.ErrNotExist) {
		return append(outcomes, missing(ctl+"/control"), missing(ctl+"/lock")), nil
	}
	if err != nil {
		return outcomes, err
	}
	defer dir.close()
	if err := expect(dir, KindDir, "s6-svscan creates .s6-svscan as a real directory; remove it and restart s6-svscan"); err != nil {
		return outcomes, err
	}
	if dir.uid() != 0 && dir.uid() != owner.UID {
		return outcomes, refuse("check", dir.path, ErrNotRootOwned, dir.describe(), fixNotRootOwned)
	}

	var errs []error
	for _, f := range []struct {
		name string
		kind Kind
	}{{"control", KindFIFO}, {"lock", KindRegular}} {
		n, err := openNode(dir.fd, dir.path, f.name)
		if errors.Is(err, fs.ErrNotExist) {
			outcomes = append(outcomes, missing(joinPath(dir.path, f.name)))
			continue
		}
		if err != nil {
			errs = append(errs, err)
			continue
		}
		o, err := handOver(n, f.kind, owner, "")
		n.close()
		if err != nil {
			errs = append(errs, err)
			continue
		}
		outcomes = append(outcomes, o)
	}
	return outcomes, errors.Join(errs...)
}

func missing(p string) Outcome { return Outcome{Path: p, Action: ActionMissing} }

func outcome(n *node, action string) Outcome {
	return Outcome{Path: n.path, Action: action, UID: n.uid(), GID: n.gid(), Mode: FileMode(n.st.Mode)}
}

// checkKind runs expect with the standard hints.
func checkKind(n *node, kind Kind) error {
	err := expect(n, kind, "")
	if err == nil {
		return nil
	}
	var ce *checkError
	if errors.As(err, &ce) {
		switch ce.sentinel {
		case ErrSymlink:
			ce.fix = fixInsideSymlink
		case ErrWrongType:
			ce.fix = fixWrongType
		case ErrHardLinked:
			ce.fix = fixHardLinked
		}
	}
	return err
}

// handOver gives the root-owned object n to owner (owner policy). An object
// already owned by owner.UID is left alone; any other owner is refused.
func handOver(n *node, kind Kind, owner Owner, fix string) (Outcome, error) {
	if err := checkKind(n, kind); err != nil {
		if fix != "" {
			var ce *checkError
			if errors.As(err, &ce) {
				ce.fix = fix
			}
		}
		return Outcome{}, err
	}
	if satisfied(&n.st, owner, PolicyOwner, 0) {
		return outcome(n, ActionUnchanged), nil
	}
	if n.uid() != 0 && n.uid() != owner.UID {
		return Outcome{}, refuse("check", n.path, ErrNotRootOwned, n.describe(), fixNotRootOwned)
	}
	// Root's object, or the user's own still in group root (see satisfied).
	if err := chown(n, owner.UID, owner.GID); err != nil {
		return Outcome{}, err
	}
	return outcome(n, ActionChowned), nil
}

// grantGroup keeps root the owner of n and makes it group owner.GID with
// mode (group and sealed policies). Under the group policy an object the
// user already owns is left alone (it is usable as is); any other non-root
// owner is refused.
//
// A root-owned object is only changed if it looks like what s6 created
// under that name: its mode is s6's (s6Mode) or already the policy's. The
// user owns the service directory, so it can swap two root objects by
// name (rename(2) with RENAME_EXCHANGE of supervise and event); the modes
// tell them apart (0700 supervise/, 0600 control, 03730 event/).
func grantGroup(n *node, kind Kind, owner Owner, pol Policy, mode, s6Mode uint32) (Outcome, error) {
	if err := checkKind(n, kind); err != nil {
		return Outcome{}, err
	}
	if satisfied(&n.st, owner, pol, mode) {
		return outcome(n, ActionUnchanged), nil
	}
	if n.uid() != 0 {
		return Outcome{}, refuse("check", n.path, ErrNotRootOwned, n.describe(), fixNotRootOwned)
	}
	if p := n.perm(); p != mode && p != s6Mode {
		return Outcome{}, refuse("check", n.path, ErrNotS6Made, n.describe()+fmt.Sprintf(", want mode %04o (as s6 makes it) or %04o", s6Mode, mode), fixNotS6Made)
	}
	action := ""
	if n.gid() != owner.GID {
		if err := chown(n, 0, owner.GID); err != nil {
			return Outcome{}, err
		}
		action = ActionChowned
	}
	if n.perm() != mode {
		if err := chmod(n, mode); err != nil {
			return Outcome{}, err
		}
		if action == "" {
			action = ActionChmodded
		} else {
			action = ActionChownedChmodded
		}
	}
	return outcome(n, action), nil
}

// Scandir is an open scandir: an O_PATH descriptor on a real directory.
type Scandir struct {
	n *node
}

// OpenScandir opens path, which must be a real directory (its last
// component is not followed if it is a symlink). Any owner is accepted for
// the scandir itself; HandOverScandir is stricter.
//
// Every ancestor of the scandir must be a directory owned by root that
// neither group nor others can write, sticky or not (ErrUntrustedAncestor):
// whoever can write an ancestor can swap the scandir's parent for a symlink
// to another tree between two system calls, and root would then hand over
// that tree's objects. The ancestors are resolved one component at a time
// from /; a symlink on the way is followed only if root owns it (it then
// sits in a directory only root can write).
func OpenScandir(path string) (*Scandir, error) {
	clean := filepath.Clean(path)
	if !filepath.IsAbs(clean) {
		abs, err := filepath.Abs(clean)
		if err != nil {
			return nil, &os.PathError{Op: "open", Path: path, Err: err}
		}
		clean = abs
	}
	parent, base := filepath.Split(clean)
	if base == "" || base == "." || base == ".." || clean == "/" {
		return nil, refuse("open", path, ErrBadName, "", "name the scandir by a path such as /run/service")
	}
	p, err := openTrustedDir(filepath.Clean(parent), clean)
	if err != nil {
		return nil, err
	}
	defer p.close()
	n, err := openNode(p.fd, strings.TrimSuffix(p.path, "/"), base)
	if err != nil {
		return nil, err
	}
	n.path = clean
	if err := expect(n, KindDir, "the scandir must be a real directory; point --scandir at the directory itself"); err != nil {
		n.close()
		return nil, err
	}
	return &Scandir{n: n}, nil
}

// ancestorTrusted: root-owned directory that neither group nor others can
// write. Unlike trustedDir, a sticky directory (/tmp) is not enough: its
// other users can create the scandir's parent's name before root does.
func ancestorTrusted(n *node) bool {
	return n.isDir() && n.uid() == 0 && n.perm()&0o022 == 0
}

func untrustedAncestor(n *node, scandir string) error {
	return refuse("open", n.path, ErrUntrustedAncestor,
		n.describe()+", an ancestor of the scandir "+scandir,
		"every parent directory of the scandir must be owned by root and writable by root only (sticky /tmp-like directories are not enough): "+
			"run `chown root "+n.path+" && chmod go-w "+n.path+"`, or put the scandir elsewhere (such as /run/service)")
}

// openTrustedDir opens the absolute directory path, checking that it and
// every directory on the way is ancestorTrusted and following only
// root-owned symlinks.
func openTrustedDir(path, scandir string) (*node, error) {
	cur, err := openPathDir("/")
	if err != nil {
		return nil, err
	}
	if !ancestorTrusted(cur) {
		defer cur.close()
		return nil, untrustedAncestor(cur, scandir)
	}
	queue := strings.Split(path, "/")
	hops := 0
	for len(queue) > 0 {
		c := queue[0]
		queue = queue[1:]
		if c == "" || c == "." {
			continue
		}
		var next *node
		if c == ".." {
			fd, err := unix.Openat(cur.fd, "..", unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC|unix.O_NOFOLLOW, 0)
			if err != nil {
				cur.close()
				return nil, &os.PathError{Op: "open", Path: cur.path + "/..", Err: err}
			}
			next = &node{fd: fd, path: filepath.Dir(cur.path)}
			if err := unix.Fstat(fd, &next.st); err != nil {
				next.close()
				cur.close()
				return nil, &os.PathError{Op: "fstat", Path: next.path, Err: err}
			}
		} else {
			next, err = openNode(cur.fd, cur.path, c)
			if err != nil {
				cur.close()
				return nil, err
			}
		}
		if next.isSymlink() {
			if next.uid() != 0 {
				defer next.close()
				cur.close()
				return nil, refuse("open", next.path, ErrSymlink, "a symlink owned by uid "+strconv.Itoa(next.uid())+" on the way to the scandir "+scandir, "point --scandir at a path whose directories are all root's")
			}
			hops++
			t, err := readlinkFD(next.fd)
			next.close()
			if err != nil || hops > maxSymlinkHops {
				cur.close()
				if err == nil {
					err = unix.ELOOP
				}
				return nil, &os.PathError{Op: "readlink", Path: next.path, Err: err}
			}
			if strings.HasPrefix(t, "/") {
				cur.close()
				if cur, err = openPathDir("/"); err != nil {
					return nil, err
				}
			}
			queue = append(strings.Split(t, "/"), queue...)
			continue
		}
		cur.close()
		cur = next
		if !ancestorTrusted(cur) {
			defer cur.close()
			if !cur.isDir() {
				return nil, refuse("open", cur.path, ErrWrongType, cur.describe()+", want a directory (an ancestor of the scandir "+scandir+")", "")
			}
			return nil, untrustedAncestor(cur, scandir)
		}
	}
	cur.path = path
	return cur, nil
}

// Path is the scandir's path as given (cleaned).
func (s *Scandir) Path() string { return s.n.path }

// ProcPath is /proc/self/fd/N for the scandir's O_PATH descriptor: a path
// that the kernel resolves to exactly the directory that was opened and
// checked, whatever happens to its name afterwards (for inotify_add_watch,
// which otherwise follows symlinks by path). Valid until Close.
func (s *Scandir) ProcPath() string { return "/proc/self/fd/" + strconv.Itoa(s.n.fd) }

// SameDir reports whether o is open on the same directory (device and
// inode) as s.
func (s *Scandir) SameDir(o *Scandir) bool {
	return o != nil && s.n.st.Dev == o.n.st.Dev && s.n.st.Ino == o.n.st.Ino
}

// Close releases the descriptor.
func (s *Scandir) Close() error { s.n.close(); return nil }

// Names lists the scandir's entries (all of them, dot names included).
func (s *Scandir) Names() ([]string, error) { return listDir(s.n) }

// satisfied reports whether an object, already checked to be of the
// expected type, is as pol wants it for owner, so that nothing is to be
// changed. It is the one place that decides this, for the descriptor path
// (handOver, grantGroup) and the fstatat shortcut (alreadyDone) alike.
//
// Under the owner policy the user's own object still in group root counts
// as not done: s6-supervise creates event/ with mkdir, then chown -1:0,
// then chmod 03730, which races a fast hand-over; giving the user's own
// object to the user's own group grants nothing the user could not do.
// Under the group policy an object the user owns is usable as is.
func satisfied(st *unix.Stat_t, owner Owner, pol Policy, groupMode uint32) bool {
	uid, gid := int(st.Uid), int(st.Gid)
	switch pol {
	case PolicyGroup:
		return (owner.UID != 0 && uid == owner.UID) ||
			(uid == 0 && gid == owner.GID && st.Mode&0o7777 == groupMode)
	case PolicySealed:
		// Nothing the user owns is acceptable: a user-writable supervise/
		// is a root write for the user.
		return uid == 0 && gid == owner.GID && st.Mode&0o7777 == groupMode
	}
	return uid == owner.UID && !(gid == 0 && owner.GID != 0 && owner.UID != 0)
}

// trustedDir: root-owned directory that neither group nor others can write,
// or a root-owned sticky directory (/tmp), where others may add entries but
// never replace root's (each component is then checked to be root's).
func trustedDir(n *node) bool {
	if !n.isDir() || n.uid() != 0 {
		return false
	}
	return n.perm()&0o022 == 0 || n.perm()&unix.S_ISVTX != 0
}

const maxSymlinkHops = 40

// openService opens the service directory named name in the scandir: a
// real directory, or a root-owned symlink resolved through trusted
// directories only. The returned node's path is the logical
// <scandir>/<name>; target is the resolved path for symlinks.
func (s *Scandir) openService(name string) (svc *node, target string, err error) {
	n, err := openNode(s.n.fd, s.n.path, name)
	if err != nil {
		return nil, "", err
	}
	switch {
	case n.isDir():
		return n, "", nil
	case n.isSymlink():
		defer n.close()
		if n.uid() != 0 {
			t, _ := readlinkFD(n.fd)
			return nil, "", refuse("check", n.path, ErrSymlink, "a symlink -> "+strconv.Quote(t)+" owned by uid "+strconv.Itoa(n.uid()), fixScandirSymlink)
		}
		d, tpath, err := resolveTrusted(s.n, n)
		if err != nil {
			return nil, "", err
		}
		d.path = n.path
		return d, tpath, nil
	default:
		defer n.close()
		return nil, "", refuse("check", n.path, ErrWrongType, n.describe()+", want a directory or a root-owned symlink to one", "remove it: s6-svscan only supervises directories")
	}
}

func reopenDir(n *node) (*node, error) {
	fd, err := unix.Openat(n.fd, ".", unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: n.path, Err: err}
	}
	c := &node{fd: fd, path: n.path}
	if err := unix.Fstat(fd, &c.st); err != nil {
		c.close()
		return nil, &os.PathError{Op: "fstat", Path: n.path, Err: err}
	}
	return c, nil
}

// resolveTrusted follows the root-owned symlink link (found in dir parent)
// one component at a time: every directory passed through must be
// trustedDir, every symlink on the way root-owned, and the end a trusted
// directory.
func resolveTrusted(parent, link *node) (*node, string, error) {
	target, err := readlinkFD(link.fd)
	if err != nil {
		return nil, "", &os.PathError{Op: "readlink", Path: link.path, Err: err}
	}
	var cur *node
	defer func() { cur.close() }()
	start := func(t string) error {
		var err error
		cur.close()
		if strings.HasPrefix(t, "/") {
			cur, err = openPathDir("/")
		} else {
			cur, err = reopenDir(parent)
		}
		return err
	}
	if err := start(target); err != nil {
		return nil, "", err
	}
	queue := strings.Split(target, "/")
	hops := 0
	for len(queue) > 0 {
		c := queue[0]
		queue = queue[1:]
		if c == "" || c == "." {
			continue
		}
		if c == ".." {
			fd, err := unix.Openat(cur.fd, "..", unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC|unix.O_NOFOLLOW, 0)
			if err != nil {
				return nil, "", &os.PathError{Op: "open", Path: cur.path + "/..", Err: err}
			}
			up := &node{fd: fd, path: filepath.Dir(cur.path)}
			if err := unix.Fstat(fd, &up.st); err != nil {
				up.close()
				return nil, "", &os.PathError{Op: "fstat", Path: up.path, Err: err}
			}
			cur.close()
			cur = up
			continue
		}
		if !trustedDir(cur) {
			return nil, "", refuse("resolve", link.path, ErrUntrustedPath,
				"symlink -> "+strconv.Quote(target)+" passes through "+cur.path+" ("+cur.describe()+")",
				"a root-owned scandir symlink must point into a tree only root can write, such as /run/s6-rc/servicedirs")
		}
		n, err := openNode(cur.fd, cur.path, c)
		if err != nil {
			return nil, "", err
		}
		if n.isSymlink() {
			if n.uid() != 0 {
				n.close()
				return nil, "", refuse("resolve", n.path, ErrSymlink, "a symlink owned by uid "+strconv.Itoa(n.uid())+" on the way from "+link.path, fixScandirSymlink)
			}
			hops++
			if hops > maxSymlinkHops {
				n.close()
				return nil, "", &os.PathError{Op: "resolve", Path: link.path, Err: unix.ELOOP}
			}
			t, err := readlinkFD(n.fd)
			n.close()
			if err != nil {
				return nil, "", &os.PathError{Op: "readlink", Path: n.path, Err: err}
			}
			if strings.HasPrefix(t, "/") {
				if err := start(t); err != nil {
					return nil, "", err
				}
			}
			queue = append(strings.Split(t, "/"), queue...)
			continue
		}
		if !n.isDir() {
			defer n.close()
			return nil, "", refuse("resolve", link.path, ErrWrongType, n.path+" is "+n.describe()+", want a directory", "point the symlink at a service directory")
		}
		cur.close()
		cur = n
	}
	if !trustedDir(cur) || cur.perm()&0o022 != 0 {
		return nil, "", refuse("resolve", link.path, ErrUntrustedPath,
			"target "+cur.path+" is "+cur.describe(),
			"a root-owned scandir symlink must point at a root-owned service directory only root can write")
	}
	d := cur
	cur = nil
	return d, d.path, nil
}
