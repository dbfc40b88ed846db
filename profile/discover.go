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

// Reasons a candidate is skipped (boot log reason= values: no spaces).
const (
	SkipInvalidName = "invalid-name"
	SkipReserved    = "reserved-name"
	SkipUnreadable  = "unreadable"
)

// Candidate is a directory under HERMES_HOME/profiles/.
type Candidate struct {
	Name string // the directory entry's name, exactly as read (may be anything if invalid)
	Dir  string // HERMES_HOME/profiles/<name>
	// Skip is set when the candidate must not get a slot: SkipInvalidName
	// or SkipReserved. Valid candidates still need IsProfile.
	Skip string
}

// Candidates lists the directories (or symlinks to directories, see the
// package comment) under home/profiles, sorted by name. A missing profiles
// directory means no candidates; an unreadable one is an error (the default
// profile is still reconciled by the caller). Plain files are ignored.
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
		name := e.Name()
		dir := filepath.Join(pdir, name)
		// os.File.ReadDir already lstat()s entries whose d_type is unknown.
		switch t := e.Type(); {
		case t.IsDir():
		case t&fs.ModeSymlink != 0:
			var st unix.Stat_t // follow it (see the package comment)
			if unix.Stat(dir, &st) != nil || st.Mode&unix.S_IFMT != unix.S_IFDIR {
				continue
			}
		default:
			continue
		}
		c := Candidate{Name: name, Dir: dir}
		switch {
		case name == DefaultName:
			c.Skip = SkipReserved
		case !ValidName(name):
			c.Skip = SkipInvalidName
		}
		out = append(out, c)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// IsProfile reports whether dir holds SOUL.md (any kind of entry: it is not
// opened). A directory that cannot be searched is an error: the caller
// cannot tell, and logs it rather than silently ignoring it.
func IsProfile(dir string) (bool, error) {
	var st unix.Stat_t
	err := unix.Lstat(filepath.Join(dir, SoulFile), &st)
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, unix.ENOENT), errors.Is(err, unix.ENOTDIR):
		return false, nil
	}
	return false, &os.PathError{Op: "lstat", Path: filepath.Join(dir, SoulFile), Err: err}
}
