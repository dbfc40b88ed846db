package perms

import (
	"errors"
	"io/fs"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// prepareRaceHook, set only by tests, runs between the creation of an
// object and its verification: what a racing user could do there.
var prepareRaceHook func(dirPath, name string)

// ActionCreated: Prepare made the object (with the policy's owner and mode).
const ActionCreated = "created"

// Prepare creates, in the service directory name of the scandir (a real
// directory, or a root-owned symlink into a root-only tree; dot names are
// accepted: the sealed follower prepares its own root-owned staging
// directory with it, but perm-watcher never calls it on a dot name) and,
// with ScopeLog, in its log/ sub-service, what s6-supervise would create
// there if it is missing: supervise/ and the FIFO supervise/control,
// directly with pol's owner and modes. Owner policy: the user's, 0700 and
// 0600 (s6's own modes); group: root:<gid> 0710 and 0620; sealed:
// root:<gid> 0750 and 0620. event/ is not made here (see
// FixOptions.Prepare).
//
// s6-supervise reuses an existing supervise/ and control and never
// re-chowns them, so the user's first s6-svc after a slot appears fails at
// most with "supervisor not listening" (ENXIO: no reader yet) or "No such
// file or directory", never with "Permission denied" (under the group
// policy, s6-svc >= 2.12 can still meet one while the slot appears; see
// SealedSuperviseMode).
//
// What it makes appears all at once (publish): supervise/ is built, with
// control inside, under a temporary name (TmpPrefix), given its final
// owner and mode, and renamed into place with RENAME_NOREPLACE; if the
// name appeared meanwhile, theirs is kept and ours removed. A registrar
// that seeds its own skeleton check-then-create (the hermes CLI) thus
// never meets a root 0700 directory, nor an EEXIST on a name it had just
// seen free, because of Prepare.
//
// It refuses everything it did not create itself: each object is made
// with mkdirat/mkfifoat relative to the verified parent's descriptor, then
// opened O_PATH|O_NOFOLLOW and fstat'ed, and only changed (through that
// descriptor) if it is still what was just made: root's, of the right
// type, with one link for the FIFO, empty for the directory, and no
// group/other bits; the temporary supervise/ already has its final owner
// and mode when control is made in it. An existing supervise/
// with its control (the hermes CLI's skeleton: the user's 0755 and 0660)
// is kept as it is; control is added to an existing supervise/ only if it
// is a real directory owned by root or (owner policy) by the user;
// existing objects are never changed (that is Fix's job).
func (s *Scandir) Prepare(name string, owner Owner, pol Policy, scope Scope) ([]Outcome, error) {
	if scope == 0 {
		scope = ScopeAll
	}
	svc, _, err := s.openService(name)
	if err != nil {
		return nil, err
	}
	defer svc.close()
	var out []Outcome
	var errs []error
	if scope&ScopeMain != 0 {
		o, err := prepareDir(svc, owner, pol, false)
		out = append(out, o...)
		errs = append(errs, err)
	}
	if scope&ScopeLog != 0 {
		logn, err := openNode(svc.fd, svc.path, "log")
		switch {
		case errors.Is(err, fs.ErrNotExist):
		case err != nil:
			errs = append(errs, err)
		default:
			defer logn.close()
			if err := checkKind(logn, KindDir); err != nil {
				errs = append(errs, err)
				break
			}
			o, err := prepareDir(logn, owner, pol, false)
			out = append(out, o...)
			errs = append(errs, err)
		}
	}
	return out, errors.Join(errs...)
}

// prepareDir makes supervise/ and supervise/control in the service
// directory svc where missing, and event/ when withEvent (never under the
// sealed policy). Each object appears under its name at once, with its
// final owner and mode (see publish); one that is already there, made by
// the user (the hermes CLI's skeleton) or by s6-supervise, is kept as it is.
func prepareDir(svc *node, owner Owner, pol Policy, withEvent bool) ([]Outcome, error) {
	out, err := prepareSupervise(svc, owner, pol)
	if err != nil || !withEvent || pol == PolicySealed {
		return out, err
	}
	// s6's ftrigw_fifodir_make reuses an existing event/ as it is (checked
	// with s6 2.11: a user-owned 03730 event/ stays the user's).
	uid, gid := owner.UID, owner.GID
	if pol.grantsGroup() {
		uid = 0
	}
	if exists(svc, "event") {
		return out, nil
	}
	o, err := publish(svc, "event", KindDir, uid, gid, GroupEventMode, nil)
	return append(out, o...), err
}

func prepareSupervise(svc *node, owner Owner, pol Policy) ([]Outcome, error) {
	supMode, ctlMode := uint32(S6SuperviseMode), uint32(S6ControlMode)
	uid, gid := owner.UID, owner.GID
	if pol.grantsGroup() {
		supMode, ctlMode = pol.superviseMode(), GroupControlMode
		uid = 0
	}
	if !exists(svc, "supervise") {
		// Built whole under a temporary name, then published: whoever
		// looks at supervise/ sees nothing, or this with its final owner
		// and mode and its control; never a root 0700 directory that is
		// handed over a moment later.
		out, err := publish(svc, "supervise", KindDir, uid, gid, supMode, func(tmp *node) ([]Outcome, error) {
			ctl, _, err := createOrOpen(tmp, "control", KindFIFO)
			if err != nil {
				return nil, err
			}
			defer ctl.close()
			if err := setOwnerMode(ctl, uid, gid, ctlMode); err != nil {
				return nil, err
			}
			return []Outcome{outcome(ctl, ActionCreated)}, nil
		})
		if err != nil || len(out) > 0 {
			return out, err
		}
		// Someone else's supervise/ appeared meanwhile: it is checked
		// below like any existing one.
	}
	sup, err := openNode(svc.fd, svc.path, "supervise")
	if err != nil {
		return nil, err
	}
	defer sup.close()
	if err := checkKind(sup, KindDir); err != nil {
		return nil, err
	}
	notRootOwned := func() error { return refuse("check", sup.path, ErrNotRootOwned, sup.describe(), fixNotRootOwned) }
	if sup.uid() != 0 && pol == PolicySealed {
		return nil, notRootOwned()
	}
	// A root-owned supervise/ must carry s6's mode or the policy's: a
	// renamed event/ (03730) is no place for a control FIFO.
	if p := sup.perm(); sup.uid() == 0 && p != S6SuperviseMode && p != supMode {
		return nil, refuse("check", sup.path, ErrNotS6Made, sup.describe(), fixNotS6Made)
	}
	if exists(sup, "control") {
		// Complete (the hermes CLI's skeleton, or s6's): kept as it is.
		return nil, nil
	}
	// Root makes control in the user's own supervise/ only under the owner
	// policy, whose control is the user's anyway.
	if sup.uid() != 0 && !(pol == PolicyOwner && sup.uid() == owner.UID) {
		return nil, notRootOwned()
	}
	// An existing supervise/ without control: s6-supervise (or the user)
	// is making it. A FIFO published with its final owner and mode is
	// reused by s6-supervise; if theirs comes first, ours is dropped.
	return publish(sup, "control", KindFIFO, uid, gid, ctlMode, nil)
}

// exists reports whether dir/name exists (not following a symlink); an
// error other than ENOENT counts as existing, so that the caller's open
// reports it.
func exists(dir *node, name string) bool {
	var st unix.Stat_t
	err := unix.Fstatat(dir.fd, name, &st, unix.AT_SYMLINK_NOFOLLOW)
	return !errors.Is(err, unix.ENOENT)
}

// TmpPrefix starts the temporary names under which Prepare builds an
// object before publishing it (".perm-watcher.supervise" in a service
// directory, ".perm-watcher.control" in a supervise/). s6 gives no meaning
// to such names below a service directory.
const TmpPrefix = ".perm-watcher."

// publishRaceHook, set only by tests, runs once the object is complete
// under its temporary name, just before it is renamed into place.
var publishRaceHook func(dirPath, tmp, name string)

// publish makes name (a directory or a FIFO) below dir appear all at once
// with owner uid:gid and mode: it is made under a temporary name
// (TmpPrefix+name, root's, verified as createOrOpen verifies), given its
// owner and mode through its descriptor, filled by fill (a directory's
// content), and only then renamed to name with renameat2
// RENAME_NOREPLACE. If name appeared meanwhile (the user's skeleton,
// s6-supervise's own), ours is removed and theirs is kept: publish then
// returns no outcome and no error. Nothing is ever visible under name as a
// root 0700 directory or 0600 FIFO that is handed over a moment later, so
// a registrar writing into it meets only its own objects or final ones.
//
// A leftover temporary object (perm-watcher was killed while building it)
// is removed first if it is of the kind made here; anything else under
// that name is refused.
func publish(dir *node, name string, kind Kind, uid, gid int, mode uint32, fill func(tmp *node) ([]Outcome, error)) ([]Outcome, error) {
	tmpName := TmpPrefix + name
	tmp, created, err := createOrOpen(dir, tmpName, kind)
	if err == nil && !created {
		tmp.close()
		if err := discard(dir, tmpName, kind); err != nil {
			return nil, err
		}
		tmp, created, err = createOrOpen(dir, tmpName, kind)
		if err == nil && !created {
			tmp.close()
			return nil, refuse("check", joinPath(dir.path, tmpName), ErrNotCreated, "it came back after being removed",
				"something keeps making perm-watcher's temporary name; remove it")
		}
	}
	if err != nil {
		return nil, err
	}
	defer tmp.close()
	// The final owner and mode come first, so that even the temporary
	// object is never a root 0700 directory in the user's slot (a
	// `rm -rf` of the slot by the user at that moment would fail on it).
	// Under the owner policy the user may then write into it while it is
	// filled: createOrOpen refuses whatever it did not make, and every
	// change goes through the descriptor of what it made.
	if err := setOwnerMode(tmp, uid, gid, mode); err != nil {
		_ = discard(dir, tmpName, kind)
		return nil, err
	}
	var out []Outcome
	if fill != nil {
		if out, err = fill(tmp); err != nil {
			_ = discard(dir, tmpName, kind)
			return nil, err
		}
	}
	if publishRaceHook != nil {
		publishRaceHook(dir.path, tmpName, name)
	}
	err = unix.Renameat2(dir.fd, tmpName, dir.fd, name, unix.RENAME_NOREPLACE)
	switch {
	case err == nil:
	case errors.Is(err, unix.EEXIST):
		// Theirs came first: it wins.
		return nil, discard(dir, tmpName, kind)
	default:
		_ = discard(dir, tmpName, kind)
		return nil, &os.PathError{Op: "rename", Path: joinPath(dir.path, tmpName) + " to " + name, Err: err}
	}
	tmp.path = joinPath(dir.path, name)
	for i := range out {
		out[i].Path = joinPath(tmp.path, filepathBase(out[i].Path))
	}
	return append([]Outcome{outcome(tmp, ActionCreated)}, out...), nil
}

func filepathBase(p string) string {
	if i := strings.LastIndexByte(p, '/'); i >= 0 {
		return p[i+1:]
	}
	return p
}

// discard removes the temporary object dir/tmpName if it is of kind and
// holds nothing but what publish puts there (a FIFO named control). Only
// names below dir are removed, relative to descriptors opened without
// following symlinks: if the user swapped something in, what goes is a
// name in the user's own directory, never what it points at.
func discard(dir *node, tmpName string, kind Kind) error {
	n, err := openNode(dir.fd, dir.path, tmpName)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	defer n.close()
	if !n.isType(kind.ifmt()) {
		return refuse("check", n.path, ErrWrongType, n.describe()+", want a "+kind.String()+" (perm-watcher's temporary name)",
			"remove it: perm-watcher builds supervise/ and control under this name")
	}
	if kind == KindFIFO {
		if err := unix.Unlinkat(dir.fd, tmpName, 0); err != nil && !errors.Is(err, unix.ENOENT) {
			return &os.PathError{Op: "unlink", Path: n.path, Err: err}
		}
		return nil
	}
	names, err := listDir(n)
	if err != nil {
		return err
	}
	for _, c := range names {
		var st unix.Stat_t
		if c != "control" || unix.Fstatat(n.fd, c, &st, unix.AT_SYMLINK_NOFOLLOW) != nil || st.Mode&unix.S_IFMT != unix.S_IFIFO {
			return refuse("check", n.path, ErrNotCreated, "it holds "+strconv.Quote(c),
				"remove it: perm-watcher builds supervise/ under this name and puts only control into it")
		}
		if err := unix.Unlinkat(n.fd, c, 0); err != nil && !errors.Is(err, unix.ENOENT) {
			return &os.PathError{Op: "unlink", Path: joinPath(n.path, c), Err: err}
		}
	}
	if err := unix.Unlinkat(dir.fd, tmpName, unix.AT_REMOVEDIR); err != nil && !errors.Is(err, unix.ENOENT) {
		return &os.PathError{Op: "rmdir", Path: n.path, Err: err}
	}
	return nil
}

// createOrOpen makes name (a directory 0700 or a FIFO 0600, root's) below
// dir unless it exists, and opens it without following symlinks. created
// reports whether this call made it; a made object is verified to be the
// one just made (see Prepare), otherwise ErrNotCreated.
func createOrOpen(dir *node, name string, kind Kind) (n *node, created bool, err error) {
	p := joinPath(dir.path, name)
	switch kind {
	case KindDir:
		err = unix.Mkdirat(dir.fd, name, S6SuperviseMode)
	default:
		err = unix.Mknodat(dir.fd, name, unix.S_IFIFO|S6ControlMode, 0)
	}
	switch {
	case err == nil:
		created = true
	case errors.Is(err, unix.EEXIST):
	default:
		op := "mkdir"
		if kind == KindFIFO {
			op = "mkfifo"
		}
		return nil, false, &os.PathError{Op: op, Path: p, Err: err}
	}
	if created && prepareRaceHook != nil {
		prepareRaceHook(dir.path, name)
	}
	n, err = openNode(dir.fd, dir.path, name)
	if err != nil {
		return nil, false, err
	}
	if !created {
		return n, false, nil
	}
	// The user can write dir (a slot, or a supervise/ it owns) and may have
	// replaced what was just made. What it cannot make is a root-owned
	// object, and the only root-owned ones it could move in are refused
	// here: a non-empty or differently-moded directory (another service's
	// supervise/ or event/), a FIFO with another link.
	ok := n.isType(kind.ifmt()) && n.uid() == 0 && n.perm()&0o077 == 0 && n.perm()&^0o2000 <= 0o700
	if ok && kind == KindDir {
		ok = n.st.Nlink == 2 && emptyDir(n)
	}
	if ok && kind == KindFIFO {
		ok = n.st.Nlink == 1
	}
	if !ok {
		desc := n.describe()
		n.close()
		return nil, false, refuse("check", p, ErrNotCreated, desc, "something replaced it while it was being made; remove it and let s6-supervise make it")
	}
	return n, true, nil
}

func emptyDir(n *node) bool {
	names, err := listDir(n)
	return err == nil && len(names) == 0
}

// setOwnerMode gives n (just made, root's) its owner and mode through its
// descriptor. The mode is set after the owner: chown clears set-ID bits.
func setOwnerMode(n *node, uid, gid int, mode uint32) error {
	if n.uid() != uid || n.gid() != gid {
		if err := unix.Fchownat(n.fd, "", uid, gid, unix.AT_EMPTY_PATH); err != nil {
			return &os.PathError{Op: "chown", Path: n.path, Err: err}
		}
	}
	return chmod(n, mode)
}
