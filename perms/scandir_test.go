package perms

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/hermes-s6/hermes-s6/internal/testenv"
)

// owners records (uid, gid, mode) of paths without following symlinks.
type fact struct {
	uid, gid uint32
	mode     uint32
	nlink    uint64
}

func lfacts(t *testing.T, paths ...string) map[string]fact {
	t.Helper()
	m := map[string]fact{}
	for _, p := range paths {
		var st syscall.Stat_t
		if err := syscall.Lstat(p, &st); err != nil {
			t.Fatalf("lstat %s: %v", p, err)
		}
		m[p] = fact{st.Uid, st.Gid, st.Mode, uint64(st.Nlink)}
	}
	return m
}

func mkfifo(t *testing.T, p string, mode uint32) {
	t.Helper()
	if err := syscall.Mkfifo(p, mode); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Chmod(p, mode); err != nil {
		t.Fatal(err)
	}
}

func mkdir(t *testing.T, p string, mode os.FileMode) {
	t.Helper()
	if err := os.Mkdir(p, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Chmod(p, uint32(mode)); err != nil {
		t.Fatal(err)
	}
}

func mkfile(t *testing.T, p string, mode os.FileMode) {
	t.Helper()
	if err := os.WriteFile(p, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Chmod(p, uint32(mode)); err != nil {
		t.Fatal(err)
	}
}

func symlink(t *testing.T, target, p string) {
	t.Helper()
	if err := os.Symlink(target, p); err != nil {
		t.Fatal(err)
	}
}

func lchown(t *testing.T, p string, uid, gid int) {
	t.Helper()
	if err := os.Lchown(p, uid, gid); err != nil {
		t.Fatal(err)
	}
}

// s6svscanLayout makes what s6-linux-init and s6-svscan leave in a fresh
// scandir: .s6-svscan 0755, control FIFO 0600, lock 0600, all root's.
func s6svscanLayout(t *testing.T, scandir string) {
	mkdir(t, scandir, 0o755)
	mkdir(t, filepath.Join(scandir, ".s6-svscan"), 0o755)
	mkfifo(t, filepath.Join(scandir, ".s6-svscan/control"), 0o600)
	mkfile(t, filepath.Join(scandir, ".s6-svscan/lock"), 0o600)
}

// bothPaths runs f as a subtest with openat2/fchmodat2 and again with the
// fallbacks forced (as under a seccomp profile that refuses them).
func bothPaths(t *testing.T, f func(t *testing.T)) {
	for _, mode := range []struct {
		name     string
		fallback bool
	}{{"openat2", false}, {"fallback", true}} {
		t.Run(mode.name, func(t *testing.T) {
			defer forceFallbacks(mode.fallback)()
			f(t)
		})
	}
}

func TestHandOverScandir(t *testing.T) {
	uid, gid := testenv.EnsureUser(t)
	owner := Owner{uid, gid}
	other := uid + 1

	type tc struct {
		name string
		// setup builds <root>/scandir and returns the paths whose facts
		// must not change (victims).
		setup func(t *testing.T, root, scandir string) []string
		// want maps path suffix (relative to scandir) to action.
		want map[string]string
		// wantErr are the sentinels the error must wrap (nil: no error).
		wantErr []error
		// owned are scandir-relative paths that must end owned by owner.
		owned []string
	}
	cases := []tc{
		{
			name:  "fresh s6-svscan layout",
			setup: func(t *testing.T, root, sd string) []string { s6svscanLayout(t, sd); return nil },
			want:  map[string]string{"": ActionChowned, ".s6-svscan/control": ActionChowned, ".s6-svscan/lock": ActionChowned},
			owned: []string{"", ".s6-svscan/control", ".s6-svscan/lock"},
		},
		{
			name: "already handed over",
			setup: func(t *testing.T, root, sd string) []string {
				s6svscanLayout(t, sd)
				for _, p := range []string{sd, sd + "/.s6-svscan/control", sd + "/.s6-svscan/lock"} {
					lchown(t, p, uid, gid)
				}
				return nil
			},
			want:  map[string]string{"": ActionUnchanged, ".s6-svscan/control": ActionUnchanged, ".s6-svscan/lock": ActionUnchanged},
			owned: []string{"", ".s6-svscan/control", ".s6-svscan/lock"},
		},
		{
			name:  "s6-svscan not started yet",
			setup: func(t *testing.T, root, sd string) []string { mkdir(t, sd, 0o755); return nil },
			want:  map[string]string{"": ActionChowned, ".s6-svscan/control": ActionMissing, ".s6-svscan/lock": ActionMissing},
			owned: []string{""},
		},
		{
			name: "control and lock not there yet",
			setup: func(t *testing.T, root, sd string) []string {
				mkdir(t, sd, 0o755)
				mkdir(t, sd+"/.s6-svscan", 0o755)
				return []string{sd + "/.s6-svscan"}
			},
			want: map[string]string{"": ActionChowned, ".s6-svscan/control": ActionMissing, ".s6-svscan/lock": ActionMissing},
		},
		{
			name: "scandir is a symlink",
			setup: func(t *testing.T, root, sd string) []string {
				s6svscanLayout(t, root+"/real")
				symlink(t, root+"/real", sd)
				return []string{root + "/real", root + "/real/.s6-svscan/control", root + "/real/.s6-svscan/lock", sd}
			},
			wantErr: []error{ErrSymlink},
		},
		{
			name: "scandir owned by another user",
			setup: func(t *testing.T, root, sd string) []string {
				s6svscanLayout(t, sd)
				lchown(t, sd, other, other)
				return []string{sd, sd + "/.s6-svscan/control", sd + "/.s6-svscan/lock"}
			},
			wantErr: []error{ErrNotRootOwned},
		},
		{
			name: "scandir is a regular file",
			setup: func(t *testing.T, root, sd string) []string {
				mkfile(t, sd, 0o644)
				return []string{sd}
			},
			wantErr: []error{ErrWrongType},
		},
		{
			name: "control is a symlink to a root FIFO",
			setup: func(t *testing.T, root, sd string) []string {
				s6svscanLayout(t, sd)
				os.Remove(sd + "/.s6-svscan/control")
				mkfifo(t, root+"/victim", 0o600)
				symlink(t, root+"/victim", sd+"/.s6-svscan/control")
				return []string{root + "/victim", sd + "/.s6-svscan/control"}
			},
			want:    map[string]string{"": ActionChowned, ".s6-svscan/lock": ActionChowned},
			wantErr: []error{ErrSymlink},
		},
		{
			name: "control is a regular file",
			setup: func(t *testing.T, root, sd string) []string {
				s6svscanLayout(t, sd)
				os.Remove(sd + "/.s6-svscan/control")
				mkfile(t, sd+"/.s6-svscan/control", 0o600)
				return []string{sd + "/.s6-svscan/control"}
			},
			wantErr: []error{ErrWrongType},
		},
		{
			name: "control is a hard link to a root FIFO",
			setup: func(t *testing.T, root, sd string) []string {
				s6svscanLayout(t, sd)
				os.Remove(sd + "/.s6-svscan/control")
				mkfifo(t, root+"/victim", 0o600)
				if err := os.Link(root+"/victim", sd+"/.s6-svscan/control"); err != nil {
					t.Fatal(err)
				}
				return []string{root + "/victim"}
			},
			wantErr: []error{ErrHardLinked},
		},
		{
			name: "control owned by another user",
			setup: func(t *testing.T, root, sd string) []string {
				s6svscanLayout(t, sd)
				lchown(t, sd+"/.s6-svscan/control", other, other)
				return []string{sd + "/.s6-svscan/control"}
			},
			wantErr: []error{ErrNotRootOwned},
		},
		{
			name: "lock is a symlink to a root file",
			setup: func(t *testing.T, root, sd string) []string {
				s6svscanLayout(t, sd)
				os.Remove(sd + "/.s6-svscan/lock")
				mkfile(t, root+"/shadow", 0o600)
				symlink(t, root+"/shadow", sd+"/.s6-svscan/lock")
				return []string{root + "/shadow"}
			},
			want:    map[string]string{".s6-svscan/control": ActionChowned},
			wantErr: []error{ErrSymlink},
		},
		{
			name: "lock is a hard link",
			setup: func(t *testing.T, root, sd string) []string {
				s6svscanLayout(t, sd)
				os.Remove(sd + "/.s6-svscan/lock")
				mkfile(t, root+"/shadow", 0o600)
				if err := os.Link(root+"/shadow", sd+"/.s6-svscan/lock"); err != nil {
					t.Fatal(err)
				}
				return []string{root + "/shadow"}
			},
			wantErr: []error{ErrHardLinked},
		},
		{
			name: ".s6-svscan is a symlink",
			setup: func(t *testing.T, root, sd string) []string {
				mkdir(t, sd, 0o755)
				s6svscanLayout(t, root+"/other")
				symlink(t, root+"/other/.s6-svscan", sd+"/.s6-svscan")
				return []string{root + "/other/.s6-svscan", root + "/other/.s6-svscan/control", root + "/other/.s6-svscan/lock"}
			},
			wantErr: []error{ErrSymlink},
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			bothPaths(t, func(t *testing.T) {
				root := testenv.TempDir(t)
				testenv.DumpTreeOnFailure(t, root)
				sd := filepath.Join(root, "scandir")
				victims := c.setup(t, root, sd)
				before := lfacts(t, victims...)
				// modes of everything that exists, to prove HandOverScandir never chmods
				modes := map[string]uint32{}
				for _, rel := range []string{"", ".s6-svscan/control", ".s6-svscan/lock"} {
					var st syscall.Stat_t
					if syscall.Lstat(filepath.Join(sd, rel), &st) == nil {
						modes[rel] = st.Mode
					}
				}

				out, err := HandOverScandir(sd, owner)

				if c.wantErr == nil && err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				for _, want := range c.wantErr {
					if !errors.Is(err, want) {
						t.Errorf("error %v does not wrap %v", err, want)
					}
				}
				if err != nil {
					var pe *os.PathError
					if !errors.As(err, &pe) {
						t.Errorf("error %#v is not an *os.PathError", err)
					}
					if !strings.Contains(err.Error(), sd) && !strings.Contains(err.Error(), root) {
						t.Errorf("error %q does not name the path", err)
					}
				}
				got := map[string]string{}
				for _, o := range out {
					rel := strings.TrimPrefix(strings.TrimPrefix(o.Path, sd), "/")
					got[rel] = o.Action
				}
				for rel, action := range c.want {
					if got[rel] != action {
						t.Errorf("%q: action %q, want %q (all: %v)", rel, got[rel], action, got)
					}
				}
				for _, rel := range c.owned {
					var st syscall.Stat_t
					if err := syscall.Lstat(filepath.Join(sd, rel), &st); err != nil {
						t.Fatal(err)
					}
					if int(st.Uid) != uid || int(st.Gid) != gid {
						t.Errorf("%q owned by %d:%d, want %d:%d", rel, st.Uid, st.Gid, uid, gid)
					}
				}
				for rel, m := range modes {
					var st syscall.Stat_t
					if syscall.Lstat(filepath.Join(sd, rel), &st) == nil && st.Mode != m {
						t.Errorf("%q mode changed from %o to %o", rel, m, st.Mode)
					}
				}
				after := lfacts(t, victims...)
				for p, f := range before {
					if after[p] != f {
						t.Errorf("victim %s changed: %+v -> %+v", p, f, after[p])
					}
				}
			})
		})
	}
}
