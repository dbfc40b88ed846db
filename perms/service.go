package perms

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strconv"

	"golang.org/x/sys/unix"
)

// Policy says how a service's supervise/, supervise/control and event/ are
// opened to the user.
type Policy string

// Policies.
const (
	// PolicyOwner: supervise/, event/ and supervise/control become owned by
	// the user (uid:gid); modes stay as s6-supervise made them.
	PolicyOwner Policy = "owner"
	// PolicyGroup: root stays the owner, the user's group gets access, as
	// `s6-svperms -G <group> -E <group>` does: supervise/ root:G 0710,
	// control root:G 0620, event/ root:G 03730.
	PolicyGroup Policy = "group"
	// PolicySealed: root keeps supervise/ (root:G 0750, see
	// SealedSuperviseMode) and supervise/control (root:G 0620), but event/
	// stays root's and is never touched: whoever can write a fifodir can
	// make root's s6-supervise write into any file (it opens every
	// event/ftrig1:@... entry for writing, following symlinks). The user
	// polls s6-svstat instead of s6-svwait.
	PolicySealed Policy = "sealed"
)

// grantsGroup reports whether pol keeps root the owner and grants the
// user's group (group and sealed).
func (p Policy) grantsGroup() bool { return p == PolicyGroup || p == PolicySealed }

// Modes of the group and sealed policies.
const (
	GroupSuperviseMode = 0o710
	GroupControlMode   = 0o620
	GroupEventMode     = 0o3730
	// SealedSuperviseMode is sealed mode's supervise/: readable by the
	// group, not only searchable as s6-svperms -G makes it. s6-svc from s6
	// 2.12 on investigates a control FIFO it could not open (ENOENT) by
	// opening the service directory and then supervise/ for reading; a
	// client whose first open ran just before the slot was renamed into
	// the scandir, and whose second ran just after, met a 0710 supervise/
	// and died with "something is wrong with the .../supervise directory:
	// Permission denied" (2 of 60 new profiles on s6 2.13.1, polled as the
	// hermes CLI polls). With the read bit it says "No such file or
	// directory" and the next try gets ENXIO or success. Reading
	// supervise/ lists control, lock, status and death_tally, which the
	// group can already stat by name: nothing is revealed and nothing
	// becomes writable. `s6-svperms -v` calls the mode incorrect; s6
	// itself does not check it.
	SealedSuperviseMode = 0o750
)

// superviseMode is the mode pol gives a root-owned supervise/ (group and
// sealed policies).
func (p Policy) superviseMode() uint32 {
	if p == PolicySealed {
		return SealedSuperviseMode
	}
	return GroupSuperviseMode
}

// Modes s6-supervise gives what it creates (s6 2.11: mkdir 0700,
// mkfifo 0600, ftrigw_fifodir_make ends with chmod 03730).
const (
	S6SuperviseMode = 0o700
	S6ControlMode   = 0o600
	S6EventMode     = 0o3730
)

// s6ModeFor maps a group-policy mode to s6's own mode for the same object.
func s6ModeFor(groupMode uint32) uint32 {
	switch groupMode {
	case GroupSuperviseMode, SealedSuperviseMode:
		return S6SuperviseMode
	case GroupControlMode:
		return S6ControlMode
	}
	return S6EventMode
}

// ParsePolicy accepts "owner", "group" or "sealed".
func ParsePolicy(s string) (Policy, error) {
	switch Policy(s) {
	case PolicyOwner, PolicyGroup, PolicySealed:
		return Policy(s), nil
	}
	return "", fmt.Errorf("unknown policy %q: use owner, group or sealed", s)
}

// ServiceResult is what FixService found and did for one scandir entry.
type ServiceResult struct {
	Name   string
	Path   string // <scandir>/<name>
	Target string // resolved directory when the entry is a root-owned symlink
	// Resolved: the entry is a real directory or a trusted symlink to one
	// (false when it was refused or is gone).
	Resolved bool
	// Excluded: FixOptions.Exclude said to leave it alone.
	Excluded bool
	ID       ServiceID
	// HasSupervise, HasLog, LogHasSupervise tell a watcher which
	// directories exist (and deserve a watch).
	HasSupervise    bool
	HasLog          bool
	LogHasSupervise bool
	Outcomes        []Outcome
}

// FixService makes the service name in the scandir (and its log/
// sub-service, if any) usable by owner under pol: it hands over supervise/,
// supervise/control and event/ when they are root-owned and of the expected
// type. Missing objects (s6-supervise not started yet) are reported as
// missing. Errors (refused objects) are joined; the other objects are still
// handled.
func (s *Scandir) FixService(name string, owner Owner, pol Policy) (ServiceResult, error) {
	res, mainErr, logErr := s.Fix(name, owner, pol, FixOptions{Scope: ScopeAll})
	return res, errors.Join(mainErr, logErr)
}

// Scope selects the parts of a service that Fix re-reads.
type Scope uint8

// Scopes; they combine with |.
const (
	// ScopeMain: the service's own supervise/, supervise/control, event/.
	ScopeMain Scope = 1 << iota
	// ScopeLog: log/ and its supervise/, supervise/control, event/.
	ScopeLog
	// ScopeAll: both.
	ScopeAll = ScopeMain | ScopeLog
)

// FixOptions tune Fix.
type FixOptions struct {
	// Scope is what to re-read; 0 means ScopeAll.
	Scope Scope
	// Watch, if set, is called with the logical path of every directory
	// found to be real (the service, its supervise/, log/, log/supervise/)
	// before anything below it is read, so that a watcher can add an
	// inotify watch first and miss nothing created after the listing.
	Watch func(path string)
	// Prepare: first make what s6-supervise would make and is missing, as
	// Scandir.Prepare does, and event/ as well (owner and group policies
	// only: the policy hands it to the user anyway; never under sealed).
	// s6-supervise then reuses all of it, so nothing is left to hand over
	// after it starts and no watch inside the service is needed.
	Prepare bool
	// Exclude, if set, is asked about the resolved service (after the
	// scandir entry was opened, before anything in it is read or made):
	// true leaves it alone (ServiceResult.Excluded). It sees the
	// identity, so an excluded service stays excluded under any name.
	Exclude func(ServiceID) bool
}

// ServiceID identifies a resolved service directory whatever its scandir
// entry is called.
type ServiceID struct {
	Name   string // the scandir entry
	Target string // the resolved directory of a root-owned symlink ("" for a real directory)
	Dev    uint64
	Ino    uint64
	UID    int // the directory's owner
}

// Fix is FixService restricted to opt.Scope, with errors split: mainErr
// for the scandir entry itself and the service's own objects, logErr for
// log/ and below. Objects not in the scope are neither read nor reported.
func (s *Scandir) Fix(name string, owner Owner, pol Policy, opt FixOptions) (res ServiceResult, mainErr, logErr error) {
	if opt.Scope == 0 {
		opt.Scope = ScopeAll
	}
	res = ServiceResult{Name: name, Path: joinPath(s.n.path, name)}
	svc, target, err := s.openService(name)
	if err != nil {
		return res, err, nil
	}
	defer svc.close()
	res.Target = target
	res.Resolved = true
	res.ID = ServiceID{Name: name, Target: target, Dev: uint64(svc.st.Dev), Ino: svc.st.Ino, UID: svc.uid()}
	if opt.Exclude != nil && opt.Exclude(res.ID) {
		res.Excluded = true
		return res, nil, nil
	}
	if opt.Watch != nil {
		opt.Watch(svc.path)
	}
	if opt.Scope&ScopeMain != 0 {
		var errs []error
		if opt.Prepare {
			var o []Outcome
			o, mainErr = prepareDir(svc, owner, pol, true)
			res.Outcomes = append(res.Outcomes, o...)
			if mainErr != nil {
				errs = append(errs, mainErr)
			}
		}
		res.Outcomes, res.HasSupervise, errs = fixServiceDir(svc, owner, pol, res.Outcomes, errs, opt.Watch)
		mainErr = errors.Join(errs...)
	}
	if opt.Scope&ScopeLog == 0 {
		return res, mainErr, nil
	}
	logn, err := openNode(svc.fd, svc.path, "log")
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		logErr = err
	default:
		defer logn.close()
		if err := checkKind(logn, KindDir); err != nil {
			logErr = err
			break
		}
		res.HasLog = true
		if opt.Watch != nil {
			opt.Watch(logn.path)
		}
		var errs []error
		if opt.Prepare {
			o, err := prepareDir(logn, owner, pol, true)
			res.Outcomes = append(res.Outcomes, o...)
			if err != nil {
				errs = append(errs, err)
			}
		}
		res.Outcomes, res.LogHasSupervise, errs = fixServiceDir(logn, owner, pol, res.Outcomes, errs, opt.Watch)
		logErr = errors.Join(errs...)
	}
	return res, mainErr, logErr
}

// alreadyDone looks at dir/name with one fstatat(AT_SYMLINK_NOFOLLOW) and
// reports whether the object is already exactly as fixObject would leave
// it unchanged (expected type, one link for a FIFO, the owner or mode the
// policy wants). It only ever decides to skip: anything else, including
// any error, goes through the descriptor-based path (open O_PATH, fstat,
// check, change through the fd), which decides again on its own fstat.
func alreadyDone(dir *node, name string, kind Kind, owner Owner, pol Policy, groupMode uint32) (unix.Stat_t, bool) {
	var st unix.Stat_t
	if err := unix.Fstatat(dir.fd, name, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return st, false
	}
	if st.Mode&unix.S_IFMT != kind.ifmt() || (kind != KindDir && st.Nlink != 1) {
		return st, false
	}
	return st, satisfied(&st, owner, pol, groupMode)
}

// fixChild hands over the object name below dir (a control FIFO or an
// event/ directory) that is not needed as a parent.
func fixChild(dir *node, name string, kind Kind, owner Owner, pol Policy, groupMode uint32, out []Outcome, errs []error) ([]Outcome, []error) {
	if st, ok := alreadyDone(dir, name, kind, owner, pol, groupMode); ok {
		return append(out, Outcome{Path: joinPath(dir.path, name), Action: ActionUnchanged,
			UID: int(st.Uid), GID: int(st.Gid), Mode: FileMode(st.Mode)}), errs
	}
	n, err := openNode(dir.fd, dir.path, name)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return append(out, missing(joinPath(dir.path, name))), errs
	case err != nil:
		return out, append(errs, err)
	}
	if pol.grantsGroup() && kind == KindDir && groupMode == GroupEventMode &&
		n.isDir() && n.uid() == 0 && n.perm() == S6SuperviseMode {
		// s6's ftrigw_fifodir_make does mkdir 0700, then chown, then
		// chmod 03730: event/ is still being made (the chmod's IN_ATTRIB
		// comes next). Not touched, not refused.
		n.close()
		return append(out, missing(joinPath(dir.path, name))), errs
	}
	o, err := fixObject(n, kind, owner, pol, groupMode)
	n.close()
	if err != nil {
		return out, append(errs, err)
	}
	return append(out, o), errs
}

func fixObject(n *node, kind Kind, owner Owner, pol Policy, groupMode uint32) (Outcome, error) {
	if pol.grantsGroup() {
		return grantGroup(n, kind, owner, pol, groupMode, s6ModeFor(groupMode))
	}
	return handOver(n, kind, owner, "")
}

func fixServiceDir(svc *node, owner Owner, pol Policy, out []Outcome, errs []error, watch func(string)) ([]Outcome, bool, []error) {
	hasSup := false
	sup, err := openNode(svc.fd, svc.path, "supervise")
	switch {
	case errors.Is(err, fs.ErrNotExist):
		out = append(out, missing(joinPath(svc.path, "supervise")), missing(joinPath(svc.path, "supervise/control")))
	case err != nil:
		errs = append(errs, err)
	default:
		o, err := fixObject(sup, KindDir, owner, pol, pol.superviseMode())
		if err != nil {
			errs = append(errs, err)
			break
		}
		hasSup = true
		out = append(out, o)
		if watch != nil {
			watch(sup.path)
		}
		out, errs = fixChild(sup, "control", KindFIFO, owner, pol, GroupControlMode, out, errs)
	}
	sup.close()
	if pol != PolicySealed {
		out, errs = fixChild(svc, "event", KindDir, owner, pol, GroupEventMode, out, errs)
	}
	return out, hasSup, errs
}

// Object is what Inspect saw of one path (never following symlinks below
// the service directory).
type Object struct {
	Path   string
	Exists bool
	Err    error // why it could not be looked at (EACCES, a refused symlink...)
	UID    int
	GID    int
	Mode   uint32 // raw st_mode, type included
	Nlink  uint64
}

// FileMode is the object's mode as an fs.FileMode.
func (o Object) FileMode() fs.FileMode { return FileMode(o.Mode) }

// Describe renders "prw------- (0600) 0:0, 1 link(s)".
func (o Object) Describe() string {
	// Not through unix.Stat_t: its Nlink is uint64 on amd64 but uint32 on
	// arm64, and the arm64 build (make dist GOARCH=arm64) must compile.
	return fmt.Sprintf("%s %d:%d, %d link(s)", modeString(o.Mode), o.UID, o.GID, o.Nlink)
}

// ServiceView is what Inspect saw of one service.
type ServiceView struct {
	Name                                         string
	Path                                         string
	Target                                       string
	Err                                          error // the entry could not be resolved (refused symlink...)
	Dir, Supervise, Control, Status, Lock, Event Object
	Log                                          *ServiceView
}

func objectOf(n *node) Object {
	return Object{Path: n.path, Exists: true, UID: n.uid(), GID: n.gid(), Mode: n.st.Mode, Nlink: uint64(n.st.Nlink)}
}

func look(dir *node, dirObj Object, name string) (Object, *node) {
	p := joinPath(dirObj.Path, name)
	if dir == nil {
		return Object{Path: p, Err: dirObj.Err}, nil
	}
	n, err := openNode(dir.fd, dir.path, name)
	if errors.Is(err, fs.ErrNotExist) {
		return Object{Path: p}, nil
	}
	if err != nil {
		return Object{Path: p, Err: err}, nil
	}
	return objectOf(n), n
}

// Inspect looks at the service name without changing anything: the same
// resolution as FixService (symlinks below the service refused), works as
// any user (objects it cannot reach carry the EACCES in Err).
func (s *Scandir) Inspect(name string) ServiceView {
	v := ServiceView{Name: name, Path: joinPath(s.n.path, name)}
	svc, target, err := s.openService(name)
	if err != nil && errors.Is(err, ErrSymlink) && unix.Geteuid() != 0 {
		// Not root: this process holds no privilege the link's owner lacks,
		// so following any scandir symlink, as s6-svc itself does, gains an
		// attacker nothing. In a -u hermes container s6-rc's longruns are
		// hermes's symlinks into hermes's live directory, and --check must
		// see them as the user does.
		svc, target, err = s.followAsUser(name)
	}
	if err != nil {
		v.Err = err
		return v
	}
	defer svc.close()
	v.Target = target
	inspectDir(svc, &v)
	logObj, logn := look(svc, v.Dir, "log")
	if logn != nil {
		defer logn.close()
		if logn.isDir() {
			lv := ServiceView{Name: name + "/log", Path: logn.path}
			inspectDir(logn, &lv)
			v.Log = &lv
		} else if logn.isSymlink() {
			v.Log = &ServiceView{Name: name + "/log", Path: logn.path, Err: refuse("check", logn.path, ErrSymlink, "a symlink", fixInsideSymlink)}
		}
	} else if logObj.Err != nil {
		v.Log = &ServiceView{Name: name + "/log", Path: logObj.Path, Err: logObj.Err}
	}
	return v
}

func inspectDir(svc *node, v *ServiceView) {
	v.Dir = objectOf(svc)
	var sup *node
	v.Supervise, sup = look(svc, v.Dir, "supervise")
	if sup != nil {
		defer sup.close()
		if !sup.isDir() {
			sup.close()
			sup = nil
		}
	}
	var n *node
	v.Control, n = look(sup, v.Supervise, "control")
	n.close()
	v.Status, n = look(sup, v.Supervise, "status")
	n.close()
	v.Lock, n = look(sup, v.Supervise, "lock")
	n.close()
	v.Event, n = look(svc, v.Dir, "event")
	n.close()
}

// InspectPath looks at one scandir-relative object (e.g. ".s6-svscan/control")
// without following symlinks.
func (s *Scandir) InspectPath(rel ...string) Object {
	cur, err := reopenDir(s.n)
	if err != nil {
		return Object{Path: s.n.path, Err: err}
	}
	obj := objectOf(cur)
	for i, c := range rel {
		o, n := look(cur, obj, c)
		cur.close()
		obj = o
		if n == nil {
			return obj
		}
		cur = n
		if i < len(rel)-1 && !n.isDir() {
			cur.close()
			return Object{Path: joinPath(obj.Path, rel[i+1]), Err: refuse("check", n.path, ErrWrongType, n.describe(), "")}
		}
	}
	cur.close()
	return obj
}

// followAsUser opens the scandir entry name following symlinks, with the
// kernel checking the caller's own rights. Never call it as root: Inspect
// does so only when the effective UID is not 0.
func (s *Scandir) followAsUser(name string) (*node, string, error) {
	p := joinPath(s.n.path, name)
	fd, err := unix.Openat(s.n.fd, name, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, "", &os.PathError{Op: "open", Path: p, Err: err}
	}
	n := &node{fd: fd, path: p}
	if err := unix.Fstat(fd, &n.st); err != nil {
		n.close()
		return nil, "", &os.PathError{Op: "fstat", Path: p, Err: err}
	}
	target, err := os.Readlink("/proc/self/fd/" + strconv.Itoa(fd))
	if err != nil {
		target = ""
	}
	return n, target, nil
}
