package perms

import (
	"errors"
	"io/fs"
	"path/filepath"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

func TestOpenNode(t *testing.T) {
	dir := t.TempDir()
	mkdir(t, dir+"/d", 0o755)
	mkfifo(t, dir+"/fifo", 0o600)
	mkfile(t, dir+"/file", 0o644)
	symlink(t, dir+"/d", dir+"/link")
	symlink(t, "/proc/self/fd/0", dir+"/magic")
	cases := []struct {
		name    string
		ifmt    uint32
		wantErr error
	}{
		{"d", unix.S_IFDIR, nil},
		{"fifo", unix.S_IFIFO, nil},
		{"file", unix.S_IFREG, nil},
		{"link", unix.S_IFLNK, nil}, // returned as itself, never followed
		{"magic", unix.S_IFLNK, nil},
		{"absent", 0, fs.ErrNotExist},
		{"..", 0, ErrBadName},
		{".", 0, ErrBadName},
		{"", 0, ErrBadName},
		{"d/x", 0, ErrBadName},
	}
	bothPaths(t, func(t *testing.T) {
		openat2Unavailable.Store(false)
		base, err := openPathDir(dir)
		if err != nil {
			t.Fatal(err)
		}
		defer base.close()
		for _, c := range cases {
			n, err := openNode(base.fd, dir, c.name)
			if c.wantErr != nil {
				if !errors.Is(err, c.wantErr) {
					t.Errorf("%q: err %v, want %v", c.name, err, c.wantErr)
				}
				continue
			}
			if err != nil {
				t.Errorf("%q: %v", c.name, err)
				continue
			}
			if n.st.Mode&unix.S_IFMT != c.ifmt {
				t.Errorf("%q: type %o, want %o", c.name, n.st.Mode&unix.S_IFMT, c.ifmt)
			}
			if n.path != filepath.Join(dir, c.name) {
				t.Errorf("%q: path %q", c.name, n.path)
			}
			n.close()
		}
		if !forceOpenatFallback.Load() && openat2Unavailable.Load() {
			t.Errorf("openat2 was given up on this kernel (%s)", kernel())
		}
	})
}

func kernel() string {
	var u unix.Utsname
	_ = unix.Uname(&u)
	return unix.ByteSliceToString(u.Release[:])
}

func TestExpect(t *testing.T) {
	dir := t.TempDir()
	mkdir(t, dir+"/d", 0o755)
	mkfifo(t, dir+"/fifo", 0o600)
	mkfifo(t, dir+"/fifo2", 0o600)
	if err := syscall.Link(dir+"/fifo2", dir+"/fifo2b"); err != nil {
		t.Fatal(err)
	}
	mkfile(t, dir+"/file", 0o644)
	symlink(t, dir+"/fifo", dir+"/link")
	cases := []struct {
		name string
		kind Kind
		want error
	}{
		{"d", KindDir, nil},
		{"d", KindFIFO, ErrWrongType},
		{"fifo", KindFIFO, nil},
		{"fifo", KindDir, ErrWrongType},
		{"fifo2", KindFIFO, ErrHardLinked},
		{"file", KindRegular, nil},
		{"file", KindFIFO, ErrWrongType},
		{"link", KindFIFO, ErrSymlink},
		{"link", KindDir, ErrSymlink},
	}
	base, err := openPathDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer base.close()
	for _, c := range cases {
		n, err := openNode(base.fd, dir, c.name)
		if err != nil {
			t.Fatal(err)
		}
		err = checkKind(n, c.kind)
		n.close()
		if c.want == nil && err != nil || c.want != nil && !errors.Is(err, c.want) {
			t.Errorf("%s as %v: err %v, want %v", c.name, c.kind, err, c.want)
		}
	}
}

// TestChmodThroughFD changes the mode of a FIFO through an O_PATH
// descriptor, with fchmodat2 and with the /proc/self/fd fallback, and checks
// that a set-group-ID directory keeps its bits across chown.
func TestChmodThroughFD(t *testing.T) {
	bothPaths(t, func(t *testing.T) {
		fchmodat2Unavailable.Store(false)
		dir := t.TempDir()
		mkfifo(t, dir+"/control", 0o600)
		mkdir(t, dir+"/event", 0o3730)
		base, err := openPathDir(dir)
		if err != nil {
			t.Fatal(err)
		}
		defer base.close()
		n, err := openNode(base.fd, dir, "control")
		if err != nil {
			t.Fatal(err)
		}
		defer n.close()
		if err := chmod(n, 0o620); err != nil {
			t.Fatal(err)
		}
		var st syscall.Stat_t
		syscall.Lstat(dir+"/control", &st)
		if st.Mode&0o7777 != 0o620 {
			t.Errorf("mode %o, want 0620", st.Mode&0o7777)
		}
		if !forceFchmodFallback.Load() && fchmodat2Unavailable.Load() {
			t.Logf("fchmodat2 with AT_EMPTY_PATH is not usable on kernel %s; the fallback was used", kernel())
		}
		if geteuid() == 0 {
			e, err := openNode(base.fd, dir, "event")
			if err != nil {
				t.Fatal(err)
			}
			defer e.close()
			if err := chown(e, 10000, 10000); err != nil {
				t.Fatal(err)
			}
			syscall.Lstat(dir+"/event", &st)
			if st.Mode&0o7777 != 0o3730 || st.Uid != 10000 {
				t.Errorf("event after chown: %o %d", st.Mode&0o7777, st.Uid)
			}
		}
	})
}

func geteuid() int { return unix.Geteuid() }
