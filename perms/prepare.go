package perms

import (
	"errors"
	"io/fs"
	"os"

	"golang.org/x/sys/unix"
)

// prepareRaceHook, set only by tests, runs between the creation of an
// object and its verification: what a racing user could do there.
var prepareRaceHook func(dirPath, name string)

// ActionCreated: Prepare made the object (with the policy's owner and mode).
const ActionCreated = "created"

// Prepare creates, in the service directory name of the scandir (a real
// directory, or a root-owned symlink into a root-only tree; dot names such
// as a slot being staged are accepted) and, with ScopeLog, in its log/
// sub-service, what s6-supervise would create there if it is missing:
// supervise/ and the FIFO supervise/control, directly with pol's owner and
// modes. Owner policy: the user's, 0700 and 0600 (s6's own modes); group:
// root:<gid> 0710 and 0620; sealed: root:<gid> 0750 and 0620. event/ is not made here (see
// FixOptions.Prepare).
//
// s6-supervise reuses an existing supervise/ and control and never
// re-chowns them, so the user's first s6-svc after a slot appears fails at
// most with "supervisor not listening" (ENXIO: no reader yet) or "No such
// file or directory", never with "Permission denied" (under the group
// policy, s6-svc >= 2.12 can still meet one while the slot appears; see
// SealedSuperviseMode).
//
// It refuses everything it did not create itself: each object is made
// with mkdirat/mkfifoat relative to the verified parent's descriptor, then
// opened O_PATH|O_NOFOLLOW and fstat'ed, and only changed (through that
// descriptor) if it is still what was just made: root's, of the right
// type, with one link for the FIFO, empty for the directory, and no
// group/other bits. control is made inside a supervise/ that is still
// root's 0700, before supervise/ is given to the user, so the user cannot
// race it. An existing supervise/ is only used if it is a real directory
// owned by root or (owner policy) by the user; existing objects are never
// changed (that is Fix's job).
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
// sealed policy).
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
	ev, created, err := createOrOpen(svc, "event", KindDir)
	if err != nil {
		return out, err
	}
	defer ev.close()
	if created {
		if err := setOwnerMode(ev, uid, gid, GroupEventMode); err != nil {
			return out, err
		}
		out = append(out, outcome(ev, ActionCreated))
	}
	return out, nil
}

func prepareSupervise(svc *node, owner Owner, pol Policy) ([]Outcome, error) {
	supMode, ctlMode := uint32(S6SuperviseMode), uint32(S6ControlMode)
	uid, gid := owner.UID, owner.GID
	if pol.grantsGroup() {
		supMode, ctlMode = pol.superviseMode(), GroupControlMode
		uid = 0
	}
	var out []Outcome
	sup, created, err := createOrOpen(svc, "supervise", KindDir)
	if err != nil {
		return nil, err
	}
	defer sup.close()
	if !created {
		if err := checkKind(sup, KindDir); err != nil {
			return nil, err
		}
		if sup.uid() != 0 && !(pol == PolicyOwner && sup.uid() == owner.UID) {
			return nil, refuse("check", sup.path, ErrNotRootOwned, sup.describe(), fixNotRootOwned)
		}
		// A root-owned supervise/ must carry s6's mode or the policy's: a
		// renamed event/ (03730) is no place for a control FIFO.
		if p := sup.perm(); sup.uid() == 0 && p != S6SuperviseMode && p != supMode {
			return nil, refuse("check", sup.path, ErrNotS6Made, sup.describe(), fixNotS6Made)
		}
	}
	ctl, ctlCreated, err := createOrOpen(sup, "control", KindFIFO)
	switch {
	case err != nil:
		// supervise/ stays root's 0700 if it was made here: nothing of it
		// is given away half-made.
		return nil, err
	case ctlCreated:
		err := setOwnerMode(ctl, uid, gid, ctlMode)
		ctl.close()
		if err != nil {
			return nil, err
		}
		out = append(out, outcome(ctl, ActionCreated))
	default:
		ctl.close()
	}
	if created {
		if err := setOwnerMode(sup, uid, gid, supMode); err != nil {
			return nil, err
		}
		out = append([]Outcome{outcome(sup, ActionCreated)}, out...)
	}
	return out, nil
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
