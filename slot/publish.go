package slot

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"golang.org/x/sys/unix"
)

// No fsync anywhere in this file, on purpose: the scandir lives on /run, a
// tmpfs that is wiped at every container start and re-created from the
// volume by this program. fsync on tmpfs is a no-op, and no crash can leave
// a slot that outlives the boot that rebuilds it. What crash safety needs
// here is ordering, which rename gives: a new slot is complete before it
// gets its real name, and each converged file is complete before it
// replaces the old one.

// ErrNotDir is returned (wrapped) when <scandir>/gateway-<name> exists but
// is not a directory (a symlink, a file): it is left alone.
var ErrNotDir = errors.New("slot exists and is not a directory")

// Publisher publishes slots into one scandir. It lists the scandir once;
// Publish may then be called from several goroutines for different names.
type Publisher struct {
	Scandir string
	DryRun  bool
	// BeforeRename, if set, is called with the staging directory's name
	// (a dot name in the scandir) once a new slot is complete and before it
	// is renamed into place, i.e. before s6-svscan can see it. Sealed mode
	// pre-creates supervise/ and supervise/control there (package perms),
	// so that the user's first s6-svc never meets root's 0700 supervise/.
	// An error abandons the new slot.
	BeforeRename func(stagingName string) error
	entries      map[string]fs.FileMode // type bits of the scandir's entries
	umask        uint32

	sharedOnce sync.Once
	sharedDir  string // SharedName's path once made, "" if not (or failed)
}

// SharedName is a dot directory of the scandir holding, while slots are
// published, the files that are the same in every slot (type, finish,
// down): a new slot gets them as hard links, one link(2) each instead of
// creating, writing and closing a file (inode creation is most of a new
// slot's cost). Close removes it; a stale one (a crash) is removed first.
// It is no staging name: those are .gw-<name>.tmp, and a name starts with
// [a-z0-9]. Nothing writes into a linked file in place: converging
// replaces a file by rename, and down is only created or unlinked.
const SharedName = TmpPrefix + ".shared"

// NewPublisher lists scandir. An error means the scandir is unusable.
func NewPublisher(scandir string, dryRun bool) (*Publisher, error) {
	f, err := os.Open(scandir)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	ents, err := f.ReadDir(-1)
	if err != nil {
		return nil, err
	}
	p := &Publisher{Scandir: scandir, DryRun: dryRun, entries: make(map[string]fs.FileMode, len(ents))}
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), Prefix) || strings.HasPrefix(e.Name(), TmpPrefix) {
			p.entries[e.Name()] = e.Type()
		}
	}
	// Read the umask (there is no way to read it without setting it): files
	// are created with their final mode and chmod'ed only if the umask
	// would have taken bits away.
	p.umask = uint32(unix.Umask(0o022))
	unix.Umask(int(p.umask))
	return p, nil
}

// Result says what Publish did (or, in a dry run, would do).
type Result struct {
	Path    string   // the slot directory
	Created bool     // a new slot was built and renamed into place
	Changed []string // converged in place: files written, "+down"/"-down", "log/" made
}

// Summary is a one-word-ish description: created, unchanged or
// updated:<files>.
func (r Result) Summary() string {
	switch {
	case r.Created:
		return "created"
	case len(r.Changed) == 0:
		return "unchanged"
	}
	return "updated:" + strings.Join(r.Changed, ",")
}

// Publish makes <scandir>/gateway-<name> match s.
func (p *Publisher) Publish(s Spec) (Result, error) {
	name := DirName(s.Name)
	dst := filepath.Join(p.Scandir, name)
	res := Result{Path: dst}
	t, exists := p.entries[name]
	switch {
	case !exists:
		if p.DryRun {
			res.Created = true
			return res, nil
		}
		err := p.create(s, dst)
		if err == nil {
			res.Created = true
			return res, nil
		}
		if !errors.Is(err, unix.EEXIST) && !errors.Is(err, unix.ENOTEMPTY) {
			return res, err
		}
		// Someone (the hermes CLI) published it meanwhile: converge it.
		var st unix.Stat_t
		if err := unix.Lstat(dst, &st); err != nil {
			return res, &os.PathError{Op: "lstat", Path: dst, Err: err}
		}
		if st.Mode&unix.S_IFMT != unix.S_IFDIR {
			return res, fmt.Errorf("%s: %w", dst, ErrNotDir)
		}
	case !t.IsDir():
		return res, fmt.Errorf("%s: %w", dst, ErrNotDir)
	}
	changed, err := p.converge(s, dst)
	res.Changed = changed
	return res, err
}

// create builds the slot under its dot name and renames it into place.
func (p *Publisher) create(s Spec, dst string) error {
	tmp := filepath.Join(p.Scandir, TmpName(s.Name))
	if _, stale := p.entries[TmpName(s.Name)]; stale {
		if err := os.RemoveAll(tmp); err != nil {
			return err
		}
	}
	if err := p.mkdir(tmp); err != nil {
		return err
	}
	err := p.fill(s, tmp)
	if err == nil && p.BeforeRename != nil {
		err = p.BeforeRename(TmpName(s.Name))
	}
	if err == nil {
		err = renameNoReplace(tmp, dst)
	}
	if err != nil {
		_ = os.RemoveAll(tmp)
	}
	return err
}

func (p *Publisher) fill(s Spec, dir string) error {
	shared := p.shared()
	for _, f := range append(Render(s), downFile) {
		if f.Path == DownFile && !s.Down {
			continue
		}
		if f.Path == LogRunFile {
			if err := p.mkdir(filepath.Join(dir, LogDir)); err != nil {
				return err
			}
		}
		path := filepath.Join(dir, f.Path)
		if f.Shared && shared != "" && unix.Link(filepath.Join(shared, f.Path), path) == nil {
			continue
		}
		if err := p.writeNew(path, f.Mode, f.Data); err != nil {
			return err
		}
	}
	return nil
}

// downFile is the down file, as a File.
var downFile = File{Path: DownFile, Mode: 0o644, Shared: true}

// shared makes SharedName once, and returns its path ("" if it could not
// be made: then every file is written, as without it).
func (p *Publisher) shared() string {
	p.sharedOnce.Do(func() {
		dir := filepath.Join(p.Scandir, SharedName)
		if _, stale := p.entries[SharedName]; stale {
			if os.RemoveAll(dir) != nil {
				return
			}
		}
		if p.mkdir(dir) != nil {
			return
		}
		for _, f := range append(Render(Spec{}), downFile) {
			if f.Shared && p.writeNew(filepath.Join(dir, f.Path), f.Mode, f.Data) != nil {
				_ = os.RemoveAll(dir)
				return
			}
		}
		p.sharedDir = dir
	})
	return p.sharedDir
}

// Close removes what the Publisher keeps in the scandir while it works
// (SharedName). Call it once every slot is published.
func (p *Publisher) Close() error {
	if p.sharedDir == "" {
		return nil
	}
	return os.RemoveAll(p.sharedDir)
}

// converge replaces, in an existing slot, only the files that differ, each
// atomically, and adds or removes down. It never looks at supervise/,
// event/, log/supervise or log/event, nor at files it does not own.
func (p *Publisher) converge(s Spec, dst string) ([]string, error) {
	var changed []string
	logDir := filepath.Join(dst, LogDir)
	var st unix.Stat_t
	switch err := unix.Lstat(logDir, &st); {
	case errors.Is(err, unix.ENOENT):
		changed = append(changed, LogDir+"/")
		if !p.DryRun {
			if err := p.mkdir(logDir); err != nil {
				return changed, err
			}
		}
	case err != nil:
		return changed, &os.PathError{Op: "lstat", Path: logDir, Err: err}
	case st.Mode&unix.S_IFMT != unix.S_IFDIR:
		return changed, fmt.Errorf("%s: exists and is not a directory", logDir)
	}
	for _, f := range Render(s) {
		path := filepath.Join(dst, f.Path)
		if same(path, f.Mode, f.Data) {
			continue
		}
		changed = append(changed, f.Path)
		if p.DryRun {
			continue
		}
		if err := p.replace(path, f.Mode, f.Data); err != nil {
			return changed, err
		}
	}
	down := filepath.Join(dst, DownFile)
	err := unix.Lstat(down, &st)
	switch present := err == nil; {
	case err != nil && !errors.Is(err, unix.ENOENT):
		return changed, &os.PathError{Op: "lstat", Path: down, Err: err}
	case s.Down && !present:
		changed = append(changed, "+"+DownFile)
		if !p.DryRun {
			if err := p.writeNew(down, 0o644, nil); err != nil && !errors.Is(err, unix.EEXIST) {
				return changed, err
			}
		}
	case !s.Down && present:
		changed = append(changed, "-"+DownFile)
		if !p.DryRun {
			if err := unix.Unlink(down); err != nil && !errors.Is(err, unix.ENOENT) {
				return changed, &os.PathError{Op: "unlink", Path: down, Err: err}
			}
		}
	}
	return changed, nil
}

// same reports whether path is a regular file (not a symlink) with exactly
// this permission mode and content.
func same(path string, mode fs.FileMode, data []byte) bool {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_CLOEXEC|unix.O_NOCTTY, 0)
	if err != nil {
		return false
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if unix.Fstat(fd, &st) != nil || st.Mode&unix.S_IFMT != unix.S_IFREG ||
		st.Mode&0o7777 != uint32(mode.Perm()) || st.Size != int64(len(data)) {
		return false
	}
	buf := make([]byte, len(data)+1)
	n := 0
	for n < len(buf) {
		m, err := unix.Read(fd, buf[n:])
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return false
		}
		if m == 0 {
			break
		}
		n += m
	}
	return bytes.Equal(buf[:n], data)
}

// replace writes .<base>.tmp next to path, then renames it over path.
func (p *Publisher) replace(path string, mode fs.FileMode, data []byte) error {
	tmp := filepath.Join(filepath.Dir(path), "."+filepath.Base(path)+".tmp")
	if err := unix.Unlink(tmp); err != nil && !errors.Is(err, unix.ENOENT) {
		return &os.PathError{Op: "unlink", Path: tmp, Err: err}
	}
	if err := p.writeNew(tmp, mode, data); err != nil {
		return err
	}
	if err := unix.Rename(tmp, path); err != nil {
		_ = unix.Unlink(tmp)
		return &os.PathError{Op: "rename", Path: path, Err: err}
	}
	return nil
}

func (p *Publisher) mkdir(path string) error {
	if err := unix.Mkdir(path, 0o755); err != nil {
		return &os.PathError{Op: "mkdir", Path: path, Err: err}
	}
	if p.umask&0o755 != 0 {
		if err := unix.Chmod(path, 0o755); err != nil {
			return &os.PathError{Op: "chmod", Path: path, Err: err}
		}
	}
	return nil
}

// writeNew creates path (it must not exist) with mode and data.
func (p *Publisher) writeNew(path string, mode fs.FileMode, data []byte) error {
	fd, err := unix.Open(path, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, uint32(mode.Perm()))
	if err != nil {
		return &os.PathError{Op: "create", Path: path, Err: err}
	}
	for len(data) > 0 && err == nil {
		var n int
		n, err = unix.Write(fd, data)
		if err == unix.EINTR {
			err = nil
			continue
		}
		data = data[n:]
	}
	if err == nil && p.umask&uint32(mode.Perm()) != 0 {
		err = unix.Fchmod(fd, uint32(mode.Perm()))
	}
	if cerr := unix.Close(fd); err == nil {
		err = cerr
	}
	if err != nil {
		return &os.PathError{Op: "write", Path: path, Err: err}
	}
	return nil
}

// renameNoReplace renames a new slot into place, refusing to replace
// anything (rename(2) would replace an empty directory).
func renameNoReplace(from, to string) error {
	err := unix.Renameat2(unix.AT_FDCWD, from, unix.AT_FDCWD, to, unix.RENAME_NOREPLACE)
	if errors.Is(err, unix.EINVAL) || errors.Is(err, unix.ENOSYS) {
		var st unix.Stat_t
		if unix.Lstat(to, &st) == nil {
			err = unix.EEXIST
		} else {
			err = unix.Rename(from, to)
		}
	}
	if err != nil {
		return &os.PathError{Op: "rename", Path: to, Err: err}
	}
	return nil
}
