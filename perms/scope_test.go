package perms

import (
	"errors"
	"os"
	"slices"
	"syscall"
	"testing"

	"github.com/hermes-s6/hermes-s6/internal/testenv"
)

func ownerOf(t *testing.T, p string) (int, int) {
	t.Helper()
	var st syscall.Stat_t
	if err := syscall.Lstat(p, &st); err != nil {
		t.Fatal(err)
	}
	return int(st.Uid), int(st.Gid)
}

// Fix with a scope reads and changes only that part, calls Watch on each
// real directory before reading below it, and splits the errors.
func TestFixScopeAndWatch(t *testing.T) {
	uid, gid := testenv.EnsureUser(t)
	owner := Owner{uid, gid}
	bothPaths(t, func(t *testing.T) {
		root := testenv.TempDir(t)
		sd := root + "/scandir"
		mkdir(t, sd, 0o755)
		service(t, sd+"/svc", uid, gid)
		supervised(t, sd+"/svc")
		service(t, sd+"/svc/log", uid, gid)
		supervised(t, sd+"/svc/log")
		// A refusal in log/ only: its event/ is a user's symlink.
		os.Remove(sd + "/svc/log/event")
		symlink(t, root+"/elsewhere", sd+"/svc/log/event")
		lchown(t, sd+"/svc/log/event", uid, gid)

		s, err := OpenScandir(sd)
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		var watched []string
		watch := func(p string) {
			// Nothing below a directory is read (so nothing handed over)
			// before its watch.
			if p == sd+"/svc/supervise" || p == sd+"/svc/log/supervise" {
				if u, _ := ownerOf(t, p+"/control"); u != 0 {
					t.Errorf("%s/control handed over before the watch on %s", p, p)
				}
			}
			watched = append(watched, p)
		}

		_, mainErr, logErr := s.Fix("svc", owner, PolicyOwner, FixOptions{Scope: ScopeMain, Watch: watch})
		if mainErr != nil || logErr != nil {
			t.Fatalf("ScopeMain: mainErr %v, logErr %v", mainErr, logErr)
		}
		if want := []string{sd + "/svc", sd + "/svc/supervise"}; !slices.Equal(watched, want) {
			t.Errorf("ScopeMain watched %q, want %q", watched, want)
		}
		for _, p := range []string{"/svc/supervise", "/svc/supervise/control", "/svc/event"} {
			if u, _ := ownerOf(t, sd+p); u != uid {
				t.Errorf("%s: uid %d after ScopeMain, want %d", p, u, uid)
			}
		}
		for _, p := range []string{"/svc/log/supervise", "/svc/log/supervise/control"} {
			if u, _ := ownerOf(t, sd+p); u != 0 {
				t.Errorf("%s: uid %d after ScopeMain, want it left to root", p, u)
			}
		}

		watched = nil
		_, mainErr, logErr = s.Fix("svc", owner, PolicyOwner, FixOptions{Scope: ScopeLog, Watch: watch})
		if mainErr != nil || !errors.Is(logErr, ErrSymlink) {
			t.Fatalf("ScopeLog: mainErr %v, logErr %v (want the log/event symlink refused)", mainErr, logErr)
		}
		if want := []string{sd + "/svc", sd + "/svc/log", sd + "/svc/log/supervise"}; !slices.Equal(watched, want) {
			t.Errorf("ScopeLog watched %q, want %q", watched, want)
		}
		for _, p := range []string{"/svc/log/supervise", "/svc/log/supervise/control"} {
			if u, _ := ownerOf(t, sd+p); u != uid {
				t.Errorf("%s: uid %d after ScopeLog, want %d", p, u, uid)
			}
		}

		// Everything done: a full read changes nothing and still refuses.
		res, err := s.FixService("svc", owner, PolicyOwner)
		if !errors.Is(err, ErrSymlink) {
			t.Errorf("second read: %v, want the symlink refused again", err)
		}
		for _, o := range res.Outcomes {
			if o.Action != ActionUnchanged {
				t.Errorf("second read: %s %s", o.Path, o.Action)
			}
		}
	})
}

// The fstatat shortcut only skips objects exactly as the policy leaves
// them: a user-owned FIFO with two links, a user's symlink, or an event/
// the user owns with group root still go through the descriptor path.
func TestAlreadyDoneIsNotFooled(t *testing.T) {
	uid, gid := testenv.EnsureUser(t)
	owner := Owner{uid, gid}
	bothPaths(t, func(t *testing.T) {
		root := testenv.TempDir(t)
		sd := root + "/scandir"
		mkdir(t, sd, 0o755)

		// control: the user's FIFO, hard-linked.
		service(t, sd+"/a", uid, gid)
		supervised(t, sd+"/a")
		lchown(t, sd+"/a/supervise", uid, gid)
		lchown(t, sd+"/a/supervise/control", uid, gid)
		lchown(t, sd+"/a/event", uid, gid)
		if err := os.Link(sd+"/a/supervise/control", root+"/second-link"); err != nil {
			t.Fatal(err)
		}
		// control: the user's symlink to the user's FIFO.
		service(t, sd+"/b", uid, gid)
		supervised(t, sd+"/b")
		lchown(t, sd+"/b/supervise", uid, gid)
		os.Remove(sd + "/b/supervise/control")
		mkfifo(t, root+"/fifo", 0o600)
		lchown(t, root+"/fifo", uid, gid)
		symlink(t, root+"/fifo", sd+"/b/supervise/control")
		lchown(t, sd+"/b/supervise/control", uid, gid)
		lchown(t, sd+"/b/event", uid, gid)
		// event/: the user's, group still root (s6's chown raced ours).
		service(t, sd+"/c", uid, gid)
		supervised(t, sd+"/c")
		lchown(t, sd+"/c/event", uid, 0)

		s, err := OpenScandir(sd)
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		if _, err := s.FixService("a", owner, PolicyOwner); !errors.Is(err, ErrHardLinked) {
			t.Errorf("hard-linked user FIFO: %v, want ErrHardLinked", err)
		}
		if _, err := s.FixService("b", owner, PolicyOwner); !errors.Is(err, ErrSymlink) {
			t.Errorf("user's symlink as control: %v, want ErrSymlink", err)
		}
		if _, err := s.FixService("c", owner, PolicyOwner); err != nil {
			t.Fatal(err)
		}
		if u, g := ownerOf(t, sd+"/c/event"); u != uid || g != gid {
			t.Errorf("c/event: %d:%d, want %d:%d", u, g, uid, gid)
		}
	})
}
