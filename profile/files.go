package profile

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"golang.org/x/sys/unix"
)

// StaleFiles are runtime files that hold PIDs of a dead PID namespace.
var StaleFiles = []string{"gateway.pid", "processes.json"}

// RemoveStale removes the stale runtime files from a profile directory.
// It reports the names it removed; a missing file is not an error.
// unlink never follows a symlink: a link is removed, not its target.
func RemoveStale(dir string) (removed []string, err error) {
	var errs []error
	for _, name := range StaleFiles {
		p := filepath.Join(dir, name)
		switch e := unix.Unlink(p); {
		case e == nil:
			removed = append(removed, name)
		case errors.Is(e, unix.ENOENT):
		default:
			errs = append(errs, &os.PathError{Op: "unlink", Path: p, Err: e})
		}
	}
	return removed, errors.Join(errs...)
}

// StateMissing reports whether dir/gateway_state.json does not exist at all
// (a broken symlink or an unreadable file does exist).
func StateMissing(dir string) bool {
	var st unix.Stat_t
	err := unix.Lstat(filepath.Join(dir, StateFile), &st)
	return errors.Is(err, unix.ENOENT)
}

// MigratedState is the state written by the legacy migration.
func MigratedState(now time.Time) []byte {
	return []byte(`{"gateway_state":"running","desired_state":"running","timestamp":` +
		strconv.FormatInt(now.Unix(), 10) + `,"migrated_from":"legacy-container-cmd"}` + "\n")
}

// WriteMigratedState writes the legacy migration's state into
// dir/gateway_state.json atomically: a temporary file next to it, fsync,
// rename, fsync of the directory (HERMES_HOME is a persistent volume: a
// power cut must leave the old state or the new one, never an empty file).
// It refuses to replace a file that appeared meanwhile.
func WriteMigratedState(dir string, now time.Time) error {
	final := filepath.Join(dir, StateFile)
	tmp := filepath.Join(dir, "."+StateFile+".reconcile.tmp")
	_ = unix.Unlink(tmp)
	fd, err := unix.Open(tmp, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o644)
	if err != nil {
		return &os.PathError{Op: "create", Path: tmp, Err: err}
	}
	f := os.NewFile(uintptr(fd), tmp)
	_, werr := f.Write(MigratedState(now))
	if werr == nil {
		werr = f.Sync()
	}
	if cerr := f.Close(); werr == nil {
		werr = cerr
	}
	if werr != nil {
		_ = unix.Unlink(tmp)
		return fmt.Errorf("writing %s: %w", tmp, werr)
	}
	// renameat2(RENAME_NOREPLACE): the hermes CLI may have written a real
	// state meanwhile; never overwrite it with the migration's.
	err = unix.Renameat2(unix.AT_FDCWD, tmp, unix.AT_FDCWD, final, unix.RENAME_NOREPLACE)
	if errors.Is(err, unix.EINVAL) || errors.Is(err, unix.ENOSYS) {
		// A file system without RENAME_NOREPLACE: check, then rename.
		if !StateMissing(dir) {
			err = unix.EEXIST
		} else {
			err = unix.Rename(tmp, final)
		}
	}
	if err != nil {
		_ = unix.Unlink(tmp)
		return &os.PathError{Op: "rename", Path: final, Err: err}
	}
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		_ = d.Close()
	}
	return nil
}
