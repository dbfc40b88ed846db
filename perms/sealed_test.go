package perms

import (
	"errors"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/hermes-s6/hermes-s6/internal/testenv"
)

// TestFixSealed: the sealed policy grants supervise/ and control like the
// group policy and never touches event/; an object the user owns is
// refused, not accepted as usable.
func TestFixSealed(t *testing.T) {
	uid, gid := testenv.EnsureUser(t)
	owner := Owner{uid, gid}
	root := testenv.TempDir(t)
	sd := root + "/scandir"
	mkdir(t, sd, 0o755)
	service(t, sd+"/svc", uid, gid)
	supervised(t, sd+"/svc")
	service(t, sd+"/svc/log", uid, gid)
	supervised(t, sd+"/svc/log")
	lchown(t, sd+"/svc/log/supervise", uid, gid)
	s, err := OpenScandir(sd)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	_, mainErr, logErr := s.Fix("svc", owner, PolicySealed, FixOptions{})
	if mainErr != nil {
		t.Fatalf("main: %v", mainErr)
	}
	if !errors.Is(logErr, ErrNotRootOwned) {
		t.Errorf("log/supervise owned by the user: %v, want ErrNotRootOwned", logErr)
	}
	f := lfacts(t, sd+"/svc/supervise", sd+"/svc/supervise/control", sd+"/svc/event", sd+"/svc/log/event")
	for p, w := range map[string]fact{
		sd + "/svc/supervise":         {0, uint32(gid), syscall.S_IFDIR | 0o750, 0},
		sd + "/svc/supervise/control": {0, uint32(gid), syscall.S_IFIFO | 0o620, 0},
		sd + "/svc/event":             {0, 0, syscall.S_IFDIR | 0o3730, 0},
		sd + "/svc/log/event":         {0, 0, syscall.S_IFDIR | 0o3730, 0},
	} {
		if g := f[p]; g.uid != w.uid || g.gid != w.gid || g.mode != w.mode {
			t.Errorf("%s: %d:%d %o, want %d:%d %o", p, g.uid, g.gid, g.mode, w.uid, w.gid, w.mode)
		}
	}
}

// TestGroupSwapRefused (F6): the user owns the slot, so it can exchange
// root's supervise/ and event/ by name (RENAME_EXCHANGE); under the group
// and sealed policies neither is then changed.
func TestGroupSwapRefused(t *testing.T) {
	uid, gid := testenv.EnsureUser(t)
	owner := Owner{uid, gid}
	for _, pol := range []Policy{PolicyGroup, PolicySealed} {
		t.Run(string(pol), func(t *testing.T) {
			root := testenv.TempDir(t)
			sd := root + "/scandir"
			mkdir(t, sd, 0o755)
			service(t, sd+"/svc", uid, gid)
			supervised(t, sd+"/svc")
			if err := unix.Renameat2(unix.AT_FDCWD, sd+"/svc/supervise", unix.AT_FDCWD, sd+"/svc/event", unix.RENAME_EXCHANGE); err != nil {
				t.Fatal(err)
			}
			paths := []string{sd + "/svc/supervise", sd + "/svc/event"}
			before := lfacts(t, paths...)
			s, err := OpenScandir(sd)
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			_, mainErr, _ := s.Fix("svc", owner, pol, FixOptions{})
			if !errors.Is(mainErr, ErrNotS6Made) {
				t.Errorf("Fix after the swap: %v, want ErrNotS6Made", mainErr)
			}
			if after := lfacts(t, paths...); !equalFacts(before, after) {
				t.Errorf("swapped objects changed:\n%v\n->\n%v", before, after)
			}
		})
	}
}
