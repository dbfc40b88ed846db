package perms

import (
	"errors"
	"os"
	"strings"
	"syscall"
	"testing"

	"github.com/hermes-s6/hermes-s6/internal/testenv"
)

// cliSkeleton seeds dir as the hermes CLI does before it renames its
// staging directory into place (CONTRACT.md, step 3): event/ 03730,
// supervise/ 0755, supervise/event/ 03730, FIFO supervise/control 0660, all
// the user's.
func cliSkeleton(t *testing.T, dir string, uid, gid int) []string {
	t.Helper()
	mkdir(t, dir+"/event", 0o3730)
	mkdir(t, dir+"/supervise", 0o755)
	mkdir(t, dir+"/supervise/event", 0o3730)
	mkfifo(t, dir+"/supervise/control", 0o660)
	paths := []string{dir + "/event", dir + "/supervise", dir + "/supervise/event", dir + "/supervise/control"}
	for _, p := range paths {
		lchown(t, p, uid, gid)
	}
	return paths
}

// noTemporaries fails if a TmpPrefix name is left below any of dirs.
func noTemporaries(t *testing.T, dirs ...string) {
	t.Helper()
	for _, d := range dirs {
		ents, err := os.ReadDir(d)
		if err != nil {
			continue
		}
		for _, e := range ents {
			if strings.HasPrefix(e.Name(), TmpPrefix) {
				t.Errorf("%s/%s left behind", d, e.Name())
			}
		}
	}
}

// TestPrepareKeepsSeededSkeleton: a slot that arrives with the hermes
// CLI's own skeleton (in it and in its log/) is accepted as it is by
// perm-watcher's pass (Fix with Prepare) under the owner and group
// policies: nothing is made, re-made, re-owned or re-moded.
func TestPrepareKeepsSeededSkeleton(t *testing.T) {
	uid, gid := testenv.EnsureUser(t)
	owner := Owner{uid, gid}
	for _, pol := range []Policy{PolicyOwner, PolicyGroup} {
		t.Run(string(pol), func(t *testing.T) {
			root := testenv.TempDir(t)
			sd := root + "/scandir"
			mkdir(t, sd, 0o755)
			svc := sd + "/gateway-p"
			service(t, svc, uid, gid)
			service(t, svc+"/log", uid, gid)
			paths := append(cliSkeleton(t, svc, uid, gid), cliSkeleton(t, svc+"/log", uid, gid)...)
			before := lfacts(t, paths...)
			s, err := OpenScandir(sd)
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			res, mainErr, logErr := s.Fix("gateway-p", owner, pol, FixOptions{Prepare: true})
			if mainErr != nil || logErr != nil {
				t.Fatalf("Fix: %v / %v", mainErr, logErr)
			}
			for _, o := range res.Outcomes {
				if o.Action != ActionUnchanged {
					t.Errorf("%s: %s, want unchanged", o.Path, o.Action)
				}
			}
			if after := lfacts(t, paths...); !equalFacts(before, after) {
				t.Errorf("the skeleton changed:\n%v\n->\n%v", before, after)
			}
			noTemporaries(t, svc, svc+"/supervise", svc+"/log", svc+"/log/supervise")
		})
	}
}

// TestPrepareNeverShowsRootObjects: what Prepare makes is never visible
// under its name before it has its final owner and mode. At every creation
// (the hook runs right after each mkdir/mkfifo) and just before the
// rename, the final name does not exist yet; the object renamed into place
// already has the policy's owner and mode.
func TestPrepareNeverShowsRootObjects(t *testing.T) {
	uid, gid := testenv.EnsureUser(t)
	owner := Owner{uid, gid}
	for _, pol := range []Policy{PolicyOwner, PolicyGroup, PolicySealed} {
		t.Run(string(pol), func(t *testing.T) {
			root := testenv.TempDir(t)
			sd := root + "/scandir"
			mkdir(t, sd, 0o755)
			svc := sd + "/svc"
			service(t, svc, uid, gid)
			service(t, svc+"/log", uid, gid)
			wantUID, supMode := uid, uint32(S6SuperviseMode)
			if pol.grantsGroup() {
				wantUID, supMode = 0, pol.superviseMode()
			}
			var renames int
			prepareRaceHook = func(dirPath, name string) {
				final := strings.TrimPrefix(name, TmpPrefix)
				if strings.HasPrefix(dirPath[strings.LastIndexByte(dirPath, '/')+1:], TmpPrefix) {
					// Inside our own temporary supervise/: it has its
					// final owner and mode already, never root's 0700.
					var st syscall.Stat_t
					must(t, syscall.Lstat(dirPath, &st))
					if int(st.Uid) != wantUID || int(st.Gid) != gid || st.Mode&0o7777 != supMode {
						t.Errorf("%s is %d:%d %04o while %s is made in it, want %d:%d %04o", dirPath, st.Uid, st.Gid, st.Mode&0o7777, name, wantUID, gid, supMode)
					}
					return
				}
				if _, err := os.Lstat(dirPath + "/" + final); !errors.Is(err, os.ErrNotExist) {
					t.Errorf("%s/%s exists while %s is being made (%v)", dirPath, final, name, err)
				}
				if final == name {
					t.Errorf("%s/%s made under its final name", dirPath, name)
				}
			}
			publishRaceHook = func(dirPath, tmp, name string) {
				renames++
				if _, err := os.Lstat(dirPath + "/" + name); !errors.Is(err, os.ErrNotExist) {
					t.Errorf("%s/%s exists before the rename (%v)", dirPath, name, err)
				}
				var st syscall.Stat_t
				must(t, syscall.Lstat(dirPath+"/"+tmp, &st))
				if int(st.Uid) != wantUID || int(st.Gid) != gid {
					t.Errorf("%s/%s is %d:%d just before the rename, want %d:%d", dirPath, tmp, st.Uid, st.Gid, wantUID, gid)
				}
			}
			defer func() { prepareRaceHook, publishRaceHook = nil, nil }()
			s, err := OpenScandir(sd)
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			if _, mainErr, logErr := s.Fix("svc", owner, pol, FixOptions{Prepare: true}); mainErr != nil || logErr != nil {
				t.Fatalf("Fix: %v / %v", mainErr, logErr)
			}
			wantRenames := 4 // supervise/ and event/, twice
			if pol == PolicySealed {
				wantRenames = 2
			}
			if renames != wantRenames {
				t.Errorf("%d renames into place, want %d", renames, wantRenames)
			}
			for _, d := range []string{svc, svc + "/log"} {
				f := lfacts(t, d+"/supervise")[d+"/supervise"]
				if int(f.uid) != wantUID || int(f.gid) != gid || f.mode&0o7777 != supMode {
					t.Errorf("%s/supervise: %d:%d %04o", d, f.uid, f.gid, f.mode&0o7777)
				}
			}
			noTemporaries(t, svc, svc+"/supervise", svc+"/log", svc+"/log/supervise")
		})
	}
}

// TestPublishTheirsWins: when the name appears while Prepare builds its
// own object (the user's skeleton, s6-supervise's mkdir), theirs is kept
// untouched and ours is removed, without an error.
func TestPublishTheirsWins(t *testing.T) {
	uid, gid := testenv.EnsureUser(t)
	owner := Owner{uid, gid}
	for _, tc := range []struct {
		name   string
		setup  func(t *testing.T, svc string) // before Prepare
		theirs func(t *testing.T, dirPath, name string)
		check  []string // relative to svc, must keep the facts they had right after theirs
	}{
		{name: "supervise", theirs: func(t *testing.T, dirPath, name string) {
			if name != "supervise" || !strings.HasSuffix(dirPath, "/svc") {
				return
			}
			cliSkeleton(t, dirPath, uid, gid)
		}, check: []string{"supervise", "supervise/control", "event"}},
		{name: "control in an existing supervise", setup: func(t *testing.T, svc string) {
			mkdir(t, svc+"/supervise", 0o755)
			lchown(t, svc+"/supervise", uid, gid)
		}, theirs: func(t *testing.T, dirPath, name string) {
			if name != "control" || !strings.HasSuffix(dirPath, "/svc/supervise") {
				return
			}
			mkfifo(t, dirPath+"/control", 0o660)
			lchown(t, dirPath+"/control", uid, gid)
		}, check: []string{"supervise", "supervise/control"}},
		{name: "event", theirs: func(t *testing.T, dirPath, name string) {
			if name != "event" || !strings.HasSuffix(dirPath, "/svc") {
				return
			}
			mkdir(t, dirPath+"/event", 0o3730)
			lchown(t, dirPath+"/event", uid, gid)
		}, check: []string{"event"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := testenv.TempDir(t)
			sd := root + "/scandir"
			mkdir(t, sd, 0o755)
			svc := sd + "/svc"
			service(t, svc, uid, gid)
			if tc.setup != nil {
				tc.setup(t, svc)
			}
			var theirs map[string]fact
			publishRaceHook = func(dirPath, tmp, name string) {
				tc.theirs(t, dirPath, name)
				if theirs == nil {
					if _, err := os.Lstat(svc + "/" + tc.check[len(tc.check)-1]); err == nil {
						var paths []string
						for _, c := range tc.check {
							paths = append(paths, svc+"/"+c)
						}
						theirs = lfacts(t, paths...)
					}
				}
			}
			defer func() { publishRaceHook = nil }()
			s, err := OpenScandir(sd)
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			if _, mainErr, _ := s.Fix("svc", owner, PolicyOwner, FixOptions{Prepare: true, Scope: ScopeMain}); mainErr != nil {
				t.Fatalf("Fix: %v", mainErr)
			}
			if theirs == nil {
				t.Fatal("the race never ran")
			}
			var paths []string
			for p := range theirs {
				paths = append(paths, p)
			}
			if after := lfacts(t, paths...); !equalFacts(theirs, after) {
				t.Errorf("theirs changed:\n%v\n->\n%v", theirs, after)
			}
			noTemporaries(t, svc, svc+"/supervise")
		})
	}
}

// TestPublishLeftover: a temporary supervise/ left by a perm-watcher killed
// half-way (root's 0700, with its control) is removed and the real one
// made; anything else under the temporary name is refused and kept.
func TestPublishLeftover(t *testing.T) {
	uid, gid := testenv.EnsureUser(t)
	owner := Owner{uid, gid}
	root := testenv.TempDir(t)
	sd := root + "/scandir"
	mkdir(t, sd, 0o755)
	for _, name := range []string{"crashed", "squatted"} {
		service(t, sd+"/"+name, uid, gid)
	}
	mkdir(t, sd+"/crashed/"+TmpPrefix+"supervise", 0o700)
	mkfifo(t, sd+"/crashed/"+TmpPrefix+"supervise/control", 0o600)
	mkfile(t, sd+"/squatted/"+TmpPrefix+"supervise", 0o644)
	lchown(t, sd+"/squatted/"+TmpPrefix+"supervise", uid, gid)
	s, err := OpenScandir(sd)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := s.Prepare("crashed", owner, PolicyOwner, ScopeMain); err != nil {
		t.Fatalf("Prepare(crashed): %v", err)
	}
	noTemporaries(t, sd+"/crashed", sd+"/crashed/supervise")
	if f := lfacts(t, sd+"/crashed/supervise/control")[sd+"/crashed/supervise/control"]; int(f.uid) != uid {
		t.Errorf("crashed/supervise/control owned by %d", f.uid)
	}
	squat := sd + "/squatted/" + TmpPrefix + "supervise"
	before := lfacts(t, squat)
	if _, err := s.Prepare("squatted", owner, PolicyOwner, ScopeMain); !errors.Is(err, ErrWrongType) {
		t.Errorf("Prepare(squatted): %v, want %v", err, ErrWrongType)
	}
	if after := lfacts(t, squat); !equalFacts(before, after) {
		t.Errorf("the squatter's file changed: %v -> %v", before, after)
	}
	if _, err := os.Lstat(sd + "/squatted/supervise"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("squatted/supervise made despite the refusal: %v", err)
	}
}
