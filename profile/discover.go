package profile

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"sort"

	"golang.org/x/sys/unix"
)

// ProfilesDir is the directory of named profiles inside HERMES_HOME.
const ProfilesDir = "profiles"

// SoulFile marks a directory as a profile.
const SoulFile = "SOUL.md"

// Reasons a profile gets no slot (boot log reason= values: no spaces).
const (
	SkipInvalidName = "invalid-name"
	SkipTooLong     = "name-too-long" // valid, but gateway-<name> cannot make a working slot (Options.MaxSlotName)
	SkipReserved    = "reserved-name" // profiles/default: warned, no boot-log line
	SkipUnreadable  = "unreadable"    // cannot tell whether it holds SOUL.md
)

// Candidate is an entry of HERMES_HOME/profiles/ that may be a profile.
type Candidate struct {
	Name string // the entry's name, exactly as read (may be anything)
	Dir  string // HERMES_HOME/profiles/<name>
}

// Candidates lists the entries of home/profiles that may be profiles,
// sorted by name: everything but those the directory itself says are not
// directories or symlinks (regular files, FIFOs...), which could not hold
// SOUL.md. A missing profiles directory means none; an unreadable one is an
// error (the default profile is still reconciled by the caller).
func Candidates(home string) ([]Candidate, error) {
	pdir := filepath.Join(home, ProfilesDir)
	f, err := os.Open(pdir)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, nil
		}
		return nil, err
	}
	defer f.Close()
	ents, err := f.ReadDir(-1)
	if err != nil {
		return nil, err
	}
	out := make([]Candidate, 0, len(ents))
	for _, e := range ents {
		// os.File.ReadDir lstat()s entries whose d_type is unknown.
		if t := e.Type(); !t.IsDir() && t&fs.ModeSymlink == 0 {
			continue
		}
		out = append(out, Candidate{Name: e.Name(), Dir: filepath.Join(pdir, e.Name())})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// IsProfile reports whether dir/SOUL.md exists as hermes sees it: looked up
// following symlinks (a dangling or looping link does not count; neither
// does a dir that is not a directory). A directory that cannot be searched
// is an error: the caller cannot tell, and logs it rather than guessing.
func IsProfile(dir string) (bool, error) {
	var st unix.Stat_t
	err := unix.Stat(filepath.Join(dir, SoulFile), &st)
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, unix.ENOENT), errors.Is(err, unix.ENOTDIR), errors.Is(err, unix.ELOOP):
		return false, nil
	}
	return false, &os.PathError{Op: "stat", Path: filepath.Join(dir, SoulFile), Err: err}
}
