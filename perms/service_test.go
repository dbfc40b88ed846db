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

// supervised makes what root's s6-supervise leaves in a service dir.
func supervised(t *testing.T, svc string) {
	t.Helper()
	mkdir(t, svc+"/supervise", 0o700)
	mkfifo(t, svc+"/supervise/control", 0o600)
	mkfile(t, svc+"/supervise/lock", 0o644)
	mkfile(t, svc+"/supervise/status", 0o644)
	mkdir(t, svc+"/event", 0o3730)
}

func service(t *testing.T, svc string, uid, gid int) {
	t.Helper()
	mkdir(t, svc, 0o755)
	mkfile(t, svc+"/run", 0o755)
	lchown(t, svc, uid, gid)
	lchown(t, svc+"/run", uid, gid)
}

func TestFixService(t *testing.T) {
	uid, gid := testenv.EnsureUser(t)
	owner := Owner{uid, gid}
	other := uid + 1

	type want struct {
		uid, gid int
		perm     uint32
	}
	ownerWant := func(perm uint32) want { return want{uid, gid, perm} }
	groupWant := func(perm uint32) want { return want{0, gid, perm} }

	cases := []struct {
		name string
		// setup builds the service "svc" in the scandir sd; returns victims.
		setup   func(t *testing.T, root, sd string) []string
		wantErr []error
		// per policy: scandir-relative path -> expected owner and mode
		owner, group map[string]want
		missing      []string
	}{
		{
			name: "fresh supervised service with log",
			setup: func(t *testing.T, root, sd string) []string {
				service(t, sd+"/svc", uid, gid)
				supervised(t, sd+"/svc")
				service(t, sd+"/svc/log", uid, gid)
				supervised(t, sd+"/svc/log")
				return []string{sd + "/svc/supervise/lock", sd + "/svc/supervise/status", sd + "/svc/run"}
			},
			owner: map[string]want{"svc/supervise": ownerWant(0o700), "svc/supervise/control": ownerWant(0o600), "svc/event": ownerWant(0o3730),
				"svc/log/supervise": ownerWant(0o700), "svc/log/supervise/control": ownerWant(0o600), "svc/log/event": ownerWant(0o3730)},
			group: map[string]want{"svc/supervise": groupWant(0o710), "svc/supervise/control": groupWant(0o620), "svc/event": groupWant(0o3730),
				"svc/log/supervise": groupWant(0o710), "svc/log/supervise/control": groupWant(0o620), "svc/log/event": groupWant(0o3730)},
		},
		{
			name:    "not supervised yet",
			setup:   func(t *testing.T, root, sd string) []string { service(t, sd+"/svc", uid, gid); return nil },
			missing: []string{"svc/supervise", "svc/supervise/control", "svc/event"},
		},
		{
			name: "user-owned supervise with a new root control (s6-supervise restarted)",
			setup: func(t *testing.T, root, sd string) []string {
				service(t, sd+"/svc", uid, gid)
				supervised(t, sd+"/svc")
				lchown(t, sd+"/svc/supervise", uid, gid)
				lchown(t, sd+"/svc/event", uid, gid)
				return []string{sd + "/svc/supervise/status"}
			},
			owner: map[string]want{"svc/supervise": ownerWant(0o700), "svc/supervise/control": ownerWant(0o600)},
			group: map[string]want{"svc/supervise": ownerWant(0o700), "svc/supervise/control": groupWant(0o620)},
		},
		{
			name: "supervise is a symlink to a root directory",
			setup: func(t *testing.T, root, sd string) []string {
				service(t, sd+"/svc", uid, gid)
				mkdir(t, root+"/victim", 0o755)
				supervised(t, root+"/victim")
				symlink(t, root+"/victim/supervise", sd+"/svc/supervise")
				lchown(t, sd+"/svc/supervise", uid, gid)
				return []string{root + "/victim/supervise", root + "/victim/supervise/control"}
			},
			wantErr: []error{ErrSymlink},
		},
		{
			name: "control is a symlink to a root FIFO",
			setup: func(t *testing.T, root, sd string) []string {
				service(t, sd+"/svc", uid, gid)
				supervised(t, sd+"/svc")
				os.Remove(sd + "/svc/supervise/control")
				mkfifo(t, root+"/victim", 0o600)
				symlink(t, root+"/victim", sd+"/svc/supervise/control")
				return []string{root + "/victim"}
			},
			wantErr: []error{ErrSymlink},
		},
		{
			name: "control is a regular file",
			setup: func(t *testing.T, root, sd string) []string {
				service(t, sd+"/svc", uid, gid)
				supervised(t, sd+"/svc")
				os.Remove(sd + "/svc/supervise/control")
				mkfile(t, sd+"/svc/supervise/control", 0o600)
				return []string{sd + "/svc/supervise/control"}
			},
			wantErr: []error{ErrWrongType},
		},
		{
			name: "control is a hard link to a root FIFO",
			setup: func(t *testing.T, root, sd string) []string {
				service(t, sd+"/svc", uid, gid)
				supervised(t, sd+"/svc")
				os.Remove(sd + "/svc/supervise/control")
				mkfifo(t, root+"/victim", 0o600)
				if err := os.Link(root+"/victim", sd+"/svc/supervise/control"); err != nil {
					t.Fatal(err)
				}
				return []string{root + "/victim"}
			},
			wantErr: []error{ErrHardLinked},
		},
		{
			name: "control owned by another user inside a user-owned supervise",
			setup: func(t *testing.T, root, sd string) []string {
				service(t, sd+"/svc", uid, gid)
				supervised(t, sd+"/svc")
				lchown(t, sd+"/svc/supervise", uid, gid)
				lchown(t, sd+"/svc/supervise/control", other, other)
				return []string{sd + "/svc/supervise/control"}
			},
			wantErr: []error{ErrNotRootOwned},
		},
		{
			name: "event is a symlink to a root directory",
			setup: func(t *testing.T, root, sd string) []string {
				service(t, sd+"/svc", uid, gid)
				supervised(t, sd+"/svc")
				os.Remove(sd + "/svc/event")
				mkdir(t, root+"/victim", 0o700)
				symlink(t, root+"/victim", sd+"/svc/event")
				return []string{root + "/victim"}
			},
			wantErr: []error{ErrSymlink},
		},
		{
			name: "service dir is a user-owned symlink to a root service",
			setup: func(t *testing.T, root, sd string) []string {
				mkdir(t, root+"/rootsvc", 0o755)
				supervised(t, root+"/rootsvc")
				symlink(t, root+"/rootsvc", sd+"/svc")
				lchown(t, sd+"/svc", uid, gid)
				return []string{root + "/rootsvc/supervise", root + "/rootsvc/supervise/control", root + "/rootsvc/event"}
			},
			wantErr: []error{ErrSymlink},
		},
		{
			name: "log is a symlink",
			setup: func(t *testing.T, root, sd string) []string {
				service(t, sd+"/svc", uid, gid)
				mkdir(t, root+"/rootsvc", 0o755)
				supervised(t, root+"/rootsvc")
				symlink(t, root+"/rootsvc", sd+"/svc/log")
				return []string{root + "/rootsvc/supervise", root + "/rootsvc/supervise/control", root + "/rootsvc/event"}
			},
			wantErr: []error{ErrSymlink},
		},
		{
			name: "s6-rc style root symlink into a root tree",
			setup: func(t *testing.T, root, sd string) []string {
				mkdir(t, root+"/s6-rc:init:X", 0o755)
				mkdir(t, root+"/s6-rc:init:X/servicedirs", 0o755)
				mkdir(t, root+"/s6-rc:init:X/servicedirs/svc", 0o755)
				supervised(t, root+"/s6-rc:init:X/servicedirs/svc")
				symlink(t, "s6-rc:init:X", root+"/s6-rc")
				symlink(t, root+"/s6-rc/servicedirs/svc", sd+"/svc")
				return nil
			},
			owner: map[string]want{"svc/supervise": ownerWant(0o700), "svc/supervise/control": ownerWant(0o600), "svc/event": ownerWant(0o3730)},
			group: map[string]want{"svc/supervise": groupWant(0o710), "svc/supervise/control": groupWant(0o620), "svc/event": groupWant(0o3730)},
		},
		{
			name: "root symlink through a user-writable directory",
			setup: func(t *testing.T, root, sd string) []string {
				mkdir(t, root+"/userdir", 0o755)
				lchown(t, root+"/userdir", uid, gid)
				mkdir(t, root+"/userdir/svc", 0o755)
				supervised(t, root+"/userdir/svc")
				symlink(t, root+"/userdir/svc", sd+"/svc")
				return []string{root + "/userdir/svc/supervise", root + "/userdir/svc/supervise/control", root + "/userdir/svc/event"}
			},
			wantErr: []error{ErrUntrustedPath},
		},
		{
			name: "root symlink through a user-owned symlink",
			setup: func(t *testing.T, root, sd string) []string {
				mkdir(t, root+"/rootsvc", 0o755)
				supervised(t, root+"/rootsvc")
				symlink(t, root+"/rootsvc", root+"/hop")
				lchown(t, root+"/hop", uid, gid)
				symlink(t, root+"/hop", sd+"/svc")
				return []string{root + "/rootsvc/supervise", root + "/rootsvc/supervise/control", root + "/rootsvc/event"}
			},
			wantErr: []error{ErrSymlink},
		},
		{
			name: "root symlink to a group-writable service dir",
			setup: func(t *testing.T, root, sd string) []string {
				mkdir(t, root+"/rootsvc", 0o775)
				supervised(t, root+"/rootsvc")
				symlink(t, root+"/rootsvc", sd+"/svc")
				return []string{root + "/rootsvc/supervise", root + "/rootsvc/supervise/control", root + "/rootsvc/event"}
			},
			wantErr: []error{ErrUntrustedPath},
		},
		{
			name: "entry is a regular file",
			setup: func(t *testing.T, root, sd string) []string {
				mkfile(t, sd+"/svc", 0o644)
				return []string{sd + "/svc"}
			},
			wantErr: []error{ErrWrongType},
		},
	}
	for _, c := range cases {
		for _, pol := range []Policy{PolicyOwner, PolicyGroup} {
			t.Run(c.name+"/"+string(pol), func(t *testing.T) {
				bothPaths(t, func(t *testing.T) {
					root := testenv.TempDir(t)
					testenv.DumpTreeOnFailure(t, root)
					sd := root + "/scandir"
					mkdir(t, sd, 0o755)
					lchown(t, sd, uid, gid)
					victims := c.setup(t, root, sd)
					before := lfacts(t, victims...)
					s, err := OpenScandir(sd)
					if err != nil {
						t.Fatal(err)
					}
					defer s.Close()
					res, err := s.FixService("svc", owner, pol)
					if c.wantErr == nil && err != nil {
						t.Fatalf("unexpected error: %v", err)
					}
					for _, w := range c.wantErr {
						if !errors.Is(err, w) {
							t.Errorf("error %v does not wrap %v", err, w)
						}
					}
					if err != nil {
						var pe *os.PathError
						if !errors.As(err, &pe) {
							t.Errorf("error is not an *os.PathError: %#v", err)
						}
						t.Logf("error (as an operator reads it): %v", err)
					}
					exp := c.owner
					if pol == PolicyGroup {
						exp = c.group
					}
					for rel, w := range exp {
						var st syscall.Stat_t
						if err := syscall.Stat(filepath.Join(sd, rel), &st); err != nil {
							t.Fatal(err)
						}
						if int(st.Uid) != w.uid || int(st.Gid) != w.gid || st.Mode&0o7777 != w.perm {
							t.Errorf("%s: %d:%d %04o, want %d:%d %04o", rel, st.Uid, st.Gid, st.Mode&0o7777, w.uid, w.gid, w.perm)
						}
					}
					acts := map[string]string{}
					for _, o := range res.Outcomes {
						acts[strings.TrimPrefix(o.Path, sd+"/")] = o.Action
					}
					for _, m := range c.missing {
						if acts[m] != ActionMissing {
							t.Errorf("%s: action %q, want missing", m, acts[m])
						}
					}
					after := lfacts(t, victims...)
					for p, f := range before {
						if after[p] != f {
							t.Errorf("victim %s changed: %+v -> %+v", p, f, after[p])
						}
					}
					// A second pass changes nothing.
					res2, err2 := s.FixService("svc", owner, pol)
					if err == nil && err2 == nil {
						for _, o := range res2.Outcomes {
							if o.Action != ActionUnchanged && o.Action != ActionMissing {
								t.Errorf("second pass: %s %s", o.Path, o.Action)
							}
						}
					}
				})
			})
		}
	}
}

func TestInspectAsSeenByRoot(t *testing.T) {
	uid, gid := testenv.EnsureUser(t)
	root := testenv.TempDir(t)
	sd := root + "/scandir"
	mkdir(t, sd, 0o755)
	service(t, sd+"/svc", uid, gid)
	supervised(t, sd+"/svc")
	s, err := OpenScandir(sd)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	v := s.Inspect("svc")
	if v.Err != nil || !v.Control.Exists || v.Control.FileMode()&os.ModeNamedPipe == 0 || v.Control.UID != 0 {
		t.Fatalf("inspect: %+v", v)
	}
	if !v.Event.Exists || v.Log != nil {
		t.Fatalf("inspect: %+v", v)
	}
	if o := s.InspectPath(".s6-svscan", "control"); o.Exists || o.Err != nil {
		t.Fatalf("InspectPath of a missing control: %+v", o)
	}
}
