package perms

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hermes-s6/hermes-s6/internal/testenv"
)

// TestPrepare: in a fresh slot (and its log/), Prepare makes supervise/ and
// supervise/control with the policy's owner and modes, leaves event/ to s6,
// and creates nothing the second time.
func TestPrepare(t *testing.T) {
	uid, gid := testenv.EnsureUser(t)
	owner := Owner{uid, gid}
	type want struct {
		uid, gid int
		mode     uint32 // with type bits
	}
	for _, tc := range []struct {
		pol      Policy
		sup, ctl want
	}{
		{PolicyOwner, want{uid, gid, syscall.S_IFDIR | 0o700}, want{uid, gid, syscall.S_IFIFO | 0o600}},
		{PolicyGroup, want{0, gid, syscall.S_IFDIR | 0o710}, want{0, gid, syscall.S_IFIFO | 0o620}},
		{PolicySealed, want{0, gid, syscall.S_IFDIR | 0o750}, want{0, gid, syscall.S_IFIFO | 0o620}},
	} {
		t.Run(string(tc.pol), func(t *testing.T) {
			bothPaths(t, func(t *testing.T) {
				root := testenv.TempDir(t)
				sd := root + "/scandir"
				mkdir(t, sd, 0o755)
				for _, name := range []string{"svc", ".svc.tmp"} {
					service(t, sd+"/"+name, uid, gid)
					service(t, sd+"/"+name+"/log", uid, gid)
					// A user-writable service dir with the set-group-ID bit:
					// what is made there inherits its group and the bit.
					if err := os.Chmod(sd+"/"+name, 0o2775); err != nil {
						t.Fatal(err)
					}
				}
				s, err := OpenScandir(sd)
				if err != nil {
					t.Fatal(err)
				}
				defer s.Close()
				for _, name := range []string{"svc", ".svc.tmp"} {
					out, err := s.Prepare(name, owner, tc.pol, ScopeAll)
					if err != nil {
						t.Fatalf("Prepare(%s): %v", name, err)
					}
					if len(out) != 4 {
						t.Errorf("Prepare(%s): %d outcomes, want 4: %+v", name, len(out), out)
					}
					for _, o := range out {
						if o.Action != ActionCreated {
							t.Errorf("%s: action %s", o.Path, o.Action)
						}
					}
					for _, d := range []string{sd + "/" + name, sd + "/" + name + "/log"} {
						f := lfacts(t, d+"/supervise", d+"/supervise/control")
						for p, w := range map[string]want{d + "/supervise": tc.sup, d + "/supervise/control": tc.ctl} {
							if got := f[p]; int(got.uid) != w.uid || int(got.gid) != w.gid || got.mode != w.mode {
								t.Errorf("%s: %d:%d %o, want %d:%d %o", p, got.uid, got.gid, got.mode, w.uid, w.gid, w.mode)
							}
						}
						if _, err := os.Lstat(d + "/event"); !errors.Is(err, os.ErrNotExist) {
							t.Errorf("%s/event: made by Prepare (%v); it is s6's", d, err)
						}
					}
					out, err = s.Prepare(name, owner, tc.pol, ScopeAll)
					if err != nil || len(out) != 0 {
						t.Errorf("second Prepare(%s): %+v, %v; want nothing done", name, out, err)
					}
				}
			})
		})
	}
}

// TestPrepareRefuses: Prepare changes nothing it did not make, follows no
// user symlink, and refuses what a racing user put in place of what it
// had just made.
func TestPrepareRefuses(t *testing.T) {
	uid, gid := testenv.EnsureUser(t)
	owner := Owner{uid, gid}
	cases := []struct {
		name  string
		pol   Policy
		setup func(t *testing.T, root, svc string)
		race  func(t *testing.T, root, dirPath, name string)
		want  error
		// victims must keep their facts
		victims []string
	}{
		{name: "supervise is a user symlink", pol: PolicyOwner,
			setup: func(t *testing.T, root, svc string) {
				mkdir(t, root+"/victim", 0o700)
				symlink(t, root+"/victim", svc+"/supervise")
				lchown(t, svc+"/supervise", uid, gid)
			}, want: ErrSymlink, victims: []string{"victim"}},
		{name: "log is a user symlink", pol: PolicyGroup,
			setup: func(t *testing.T, root, svc string) {
				mkdir(t, root+"/victim", 0o700)
				os.RemoveAll(svc + "/log")
				symlink(t, root+"/victim", svc+"/log")
				lchown(t, svc+"/log", uid, gid)
			}, want: ErrSymlink, victims: []string{"victim"}},
		{name: "user-owned supervise under sealed", pol: PolicySealed,
			setup: func(t *testing.T, root, svc string) {
				mkdir(t, svc+"/supervise", 0o700)
				lchown(t, svc+"/supervise", uid, gid)
			}, want: ErrNotRootOwned},
		{name: "root event/ renamed to supervise", pol: PolicyGroup,
			setup: func(t *testing.T, root, svc string) { mkdir(t, svc+"/supervise", 0o3730) },
			want:  ErrNotS6Made},
		// supervise/ is built under TmpPrefix+"supervise" and renamed
		// into place once complete: the races are on that name.
		{name: "supervise swapped for a user dir after mkdir", pol: PolicyGroup,
			race: func(t *testing.T, root, dirPath, name string) {
				if name != TmpPrefix+"supervise" || !strings.HasSuffix(dirPath, "/svc") {
					return
				}
				must(t, os.Remove(dirPath+"/"+name))
				mkdir(t, dirPath+"/"+name, 0o700)
				lchown(t, dirPath+"/"+name, uid, gid)
			}, want: ErrNotCreated},
		{name: "supervise swapped for root's non-empty dir after mkdir", pol: PolicyOwner,
			setup: func(t *testing.T, root, svc string) {
				mkdir(t, svc+"/other", 0o700)
				mkfile(t, svc+"/other/status", 0o644)
			},
			race: func(t *testing.T, root, dirPath, name string) {
				if name != TmpPrefix+"supervise" || !strings.HasSuffix(dirPath, "/svc") {
					return
				}
				must(t, os.Remove(dirPath+"/"+name))
				must(t, os.Rename(dirPath+"/other", dirPath+"/"+name))
			}, want: ErrNotCreated},
		{name: "control swapped for a hard link after mknod", pol: PolicyOwner,
			setup: func(t *testing.T, root, svc string) { mkfifo(t, root+"/rootfifo", 0o600) },
			race: func(t *testing.T, root, dirPath, name string) {
				if name != "control" || !strings.HasSuffix(dirPath, "/svc/"+TmpPrefix+"supervise") {
					return
				}
				must(t, os.Remove(dirPath+"/"+name))
				must(t, os.Link(root+"/rootfifo", dirPath+"/"+name))
			}, want: ErrNotCreated, victims: []string{"rootfifo"}},
		{name: "control swapped for a symlink after mknod", pol: PolicySealed,
			setup: func(t *testing.T, root, svc string) { mkfifo(t, root+"/rootfifo", 0o600) },
			race: func(t *testing.T, root, dirPath, name string) {
				if name != "control" || !strings.HasSuffix(dirPath, "/svc/"+TmpPrefix+"supervise") {
					return
				}
				must(t, os.Remove(dirPath+"/"+name))
				symlink(t, root+"/rootfifo", dirPath+"/"+name)
			}, want: ErrNotCreated, victims: []string{"rootfifo"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			root := testenv.TempDir(t)
			sd := root + "/scandir"
			mkdir(t, sd, 0o755)
			svc := sd + "/svc"
			service(t, svc, uid, gid)
			service(t, svc+"/log", uid, gid)
			if tc.setup != nil {
				tc.setup(t, root, svc)
			}
			var victims []string
			for _, v := range tc.victims {
				victims = append(victims, root+"/"+v)
			}
			before := lfacts(t, victims...)
			if tc.race != nil {
				prepareRaceHook = func(d, n string) { tc.race(t, root, d, n) }
				defer func() { prepareRaceHook = nil }()
			}
			s, err := OpenScandir(sd)
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			_, err = s.Prepare("svc", owner, tc.pol, ScopeAll)
			if !errors.Is(err, tc.want) {
				t.Fatalf("Prepare: %v, want %v", err, tc.want)
			}
			if after := lfacts(t, victims...); len(victims) > 0 && !equalFacts(before, after) {
				t.Errorf("victims changed: %v -> %v", before, after)
			}
			// A half-made supervise/ is never given away: whatever is
			// there is root's or the user's own.
			if f, err := os.Lstat(svc + "/supervise"); err == nil && f.IsDir() {
				st := f.Sys().(*syscall.Stat_t)
				if st.Uid == uint32(uid) && tc.race == nil && tc.setup == nil {
					t.Errorf("supervise/ handed over despite the error")
				}
			}
		})
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func equalFacts(a, b map[string]fact) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		w := b[k]
		if w.uid != v.uid || w.gid != v.gid || w.mode != v.mode {
			return false
		}
	}
	return true
}

// TestPrepareWithS6: a real s6-supervise reuses what Prepare made (and
// keeps its owner and mode), and the user's s6-svc on it works as soon as
// the supervisor listens; before that it fails with "supervisor not
// listening", never with "Permission denied".
func TestPrepareWithS6(t *testing.T) {
	testenv.RequireS6(t)
	uid, gid := testenv.EnsureUser(t)
	owner := Owner{uid, gid}
	for _, pol := range []Policy{PolicyOwner, PolicyGroup, PolicySealed} {
		t.Run(string(pol), func(t *testing.T) {
			root := testenv.TempDir(t)
			sd := root + "/scandir"
			mkdir(t, sd, 0o755)
			s6svscanLayout2(t, sd)
			stage := sd + "/.svc.tmp"
			service(t, stage, uid, gid)
			must(t, os.WriteFile(stage+"/run", []byte("#!/bin/sh\nexec sleep 100000\n"), 0o755))
			service(t, stage+"/log", uid, gid)
			must(t, os.WriteFile(stage+"/log/run", []byte("#!/bin/sh\nexec cat >/dev/null\n"), 0o755))
			s, err := OpenScandir(sd)
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			if _, err := s.Prepare(".svc.tmp", owner, pol, ScopeAll); err != nil {
				t.Fatal(err)
			}
			must(t, os.Rename(stage, sd+"/svc"))
			want := lfacts(t, sd+"/svc/supervise", sd+"/svc/supervise/control", sd+"/svc/log/supervise", sd+"/svc/log/supervise/control")

			svcAs := func(dir string) (string, error) {
				cmd := testenv.AsUser(exec.Command("s6-svc", "-u", dir), uid, gid)
				cmd.Dir = "/"
				out, err := cmd.CombinedOutput()
				return string(out), err
			}
			// No supervisor yet: not listening, not denied.
			for _, d := range []string{sd + "/svc", sd + "/svc/log"} {
				out, err := svcAs(d)
				if err == nil || !strings.Contains(out, "supervisor not listening") {
					t.Errorf("s6-svc -u %s before s6-supervise: %v %q, want \"supervisor not listening\"", d, err, out)
				}
			}
			testenv.StartSvscan(t, sd, testenv.Svscan{Root: root})
			for _, d := range []string{sd + "/svc", sd + "/svc/log"} {
				deadline := time.Now().Add(10 * time.Second)
				for {
					out, err := svcAs(d)
					if err == nil {
						break
					}
					if !strings.Contains(out, "supervisor not listening") || time.Now().After(deadline) {
						t.Fatalf("s6-svc -u %s as uid %d: %v %q", d, uid, err, out)
					}
					time.Sleep(5 * time.Millisecond)
				}
			}
			if got := lfacts(t, sd+"/svc/supervise", sd+"/svc/supervise/control", sd+"/svc/log/supervise", sd+"/svc/log/supervise/control"); !equalFacts(want, got) {
				t.Errorf("s6-supervise changed what Prepare made:\n%v\n->\n%v", want, got)
			}
			cmd := testenv.AsUser(exec.Command("s6-svstat", sd+"/svc"), uid, gid)
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Errorf("s6-svstat as uid %d: %v %s", uid, err, out)
			}
		})
	}
}

// s6svscanLayout2 is the part of s6svscanLayout a real s6-svscan does not
// make itself.
func s6svscanLayout2(t *testing.T, scandir string) {
	mkdir(t, filepath.Join(scandir, ".s6-svscan"), 0o755)
}
