package permwatch

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/hermes-s6/hermes-s6/perms"
)

// These tests need no s6-svscan: they build what s6-supervise would (root's
// supervise/, control FIFO, event/) next to what the user could plant, with
// perm-watcher running, and check that nothing outside the service's own
// supervise/ and event/ changes owner or mode.

type snap map[string][3]uint32

func snapshot(t *testing.T, paths ...string) snap {
	t.Helper()
	s := snap{}
	for _, p := range paths {
		var st syscall.Stat_t
		must(t, syscall.Lstat(p, &st))
		s[p] = [3]uint32{st.Uid, st.Gid, st.Mode}
	}
	return s
}

func (s snap) unchanged(t *testing.T) {
	t.Helper()
	for p, before := range s {
		var st syscall.Stat_t
		must(t, syscall.Lstat(p, &st))
		if after := [3]uint32{st.Uid, st.Gid, st.Mode}; after != before {
			t.Errorf("victim %s changed: uid:gid:mode %v -> %v", p, before, after)
		}
	}
}

// rootSupervised makes root's supervise/ + control and event/ in dir, as
// s6-supervise does: what exists already (perm-watcher may have made it
// first) is reused as it is.
func rootSupervised(t *testing.T, dir string) {
	t.Helper()
	must(t, os.MkdirAll(dir, 0o755))
	exist := func(err error) error {
		if os.IsExist(err) {
			return nil
		}
		return err
	}
	must(t, exist(os.Mkdir(dir+"/supervise", 0o700)))
	must(t, exist(syscall.Mkfifo(dir+"/supervise/control", 0o600)))
	must(t, os.WriteFile(dir+"/supervise/status", nil, 0o644))
	if err := os.Mkdir(dir+"/event", 0o700); err == nil {
		must(t, syscall.Chmod(dir+"/event", 0o3730))
	} else {
		must(t, exist(err))
	}
}

// userSlot makes a slot directory owned by the user (as the hermes CLI
// would), with a run file.
func (f *fixture) userSlot(name string) string {
	d := filepath.Join(f.scandir, name)
	must(f.t, os.Mkdir(d, 0o755))
	must(f.t, os.WriteFile(d+"/run", []byte("#!/bin/sh\n"), 0o755))
	must(f.t, os.Lchown(d, f.uid, f.gid))
	must(f.t, os.Lchown(d+"/run", f.uid, f.gid))
	return d
}

// stagedSlot builds a user's slot outside the scandir with build, then
// renames it into place.
func (f *fixture) stagedSlot(name string, build func(d string)) string {
	st := filepath.Join(f.root, ".stage-"+name)
	must(f.t, os.Mkdir(st, 0o755))
	must(f.t, os.WriteFile(st+"/run", []byte("#!/bin/sh\n"), 0o755))
	must(f.t, os.Lchown(st, f.uid, f.gid))
	must(f.t, os.Lchown(st+"/run", f.uid, f.gid))
	build(st)
	d := filepath.Join(f.scandir, name)
	must(f.t, os.Rename(st, d))
	return d
}

// userSymlink plants a user-owned symlink atomically (made outside the
// scandir, chowned, renamed into place), as the user would: a symlink that
// is root's for a moment is trusted by design, even under a dot name.
func (f *fixture) userSymlink(target, link string) {
	tmp := filepath.Join(f.root, ".link-"+filepath.Base(link)+".tmp")
	os.RemoveAll(link) // perm-watcher may have made a real one first
	must(f.t, os.Symlink(target, tmp))
	must(f.t, os.Lchown(tmp, f.uid, f.gid))
	must(f.t, os.Rename(tmp, link))
}

// legitFixed adds a legit service and waits until the watcher hands it over.
func (f *fixture) legitFixed(name string) {
	f.t.Helper()
	d := f.userSlot(name)
	rootSupervised(f.t, d)
	f.waitFor(5*time.Second, name+" handed over", func() (bool, string) {
		var a, b syscall.Stat_t
		if syscall.Lstat(d+"/supervise/control", &a) != nil || syscall.Lstat(d+"/event", &b) != nil {
			return false, "missing"
		}
		// owner policy: the user owns them; group policy: root:gid 0620 / 03730.
		mine := func(st syscall.Stat_t, grp uint32) bool {
			return st.Uid == uint32(f.uid) || st.Uid == 0 && st.Gid == uint32(f.gid) && st.Mode&grp == grp
		}
		return mine(a, 0o020) && mine(b, 0o030), "not yet"
	})
}

func TestAttacks(t *testing.T) {
	f := newFixture(t)
	// Victims: root's objects outside any slot.
	vdir := filepath.Join(f.root, "victim")
	rootSupervised(t, vdir)
	must(t, os.WriteFile(vdir+"/shadow", []byte("root:x"), 0o600))
	vfifo := vdir + "/supervise/control"
	victims := snapshot(t, vdir, vdir+"/supervise", vfifo, vdir+"/event", vdir+"/shadow", vdir+"/supervise/status")
	defer victims.unchanged(t)

	f.startWatcher(perms.PolicyOwner)

	// A service directory that is a user-owned symlink to a root service.
	f.userSymlink(vdir, filepath.Join(f.scandir, "svc-link"))
	// Each slot is built outside the scandir and renamed in (perm-watcher
	// makes supervise/ and friends in an empty slot as soon as it appears).
	// supervise/ that is a symlink to a root directory.
	f.stagedSlot("sup-link", func(d string) { f.userSymlink(vdir+"/supervise", d+"/supervise") })
	// supervise/control that is a symlink to a root FIFO.
	f.stagedSlot("ctl-link", func(d string) {
		must(t, os.Mkdir(d+"/supervise", 0o700))
		f.userSymlink(vfifo, d+"/supervise/control")
	})
	// control that is a regular root file.
	f.stagedSlot("ctl-file", func(d string) {
		must(t, os.Mkdir(d+"/supervise", 0o700))
		must(t, os.WriteFile(d+"/supervise/control", nil, 0o600))
	})
	regular := snapshot(t, f.scandir+"/ctl-file/supervise/control")
	defer regular.unchanged(t)
	// control that is a hard link to a root FIFO (made by root:
	// protected_hardlinks forbids the user).
	f.stagedSlot("ctl-hardlink", func(d string) {
		must(t, os.Mkdir(d+"/supervise", 0o700))
		must(t, os.Link(vfifo, d+"/supervise/control"))
	})
	// event/ that is a symlink to a root directory.
	f.stagedSlot("event-link", func(d string) { f.userSymlink(vdir+"/event", d+"/event") })
	// log/ that is a symlink to a root service.
	f.stagedSlot("log-link", func(d string) { f.userSymlink(vdir, d+"/log") })

	// The daemon keeps working: a legit service is still fixed.
	f.legitFixed("legit-after")
	// And a full pass (what resync does) over all of it changes nothing bad.
	if _, err := (&engineForTest{f}).once(perms.PolicyOwner); err != nil {
		t.Fatalf("--once over the attacks: %v", err)
	}
	f.legitFixed("legit-after-once")
	if !strings.Contains(f.logBuf.String(), "refused to touch") {
		t.Errorf("no refusal logged")
	}
}

type engineForTest struct{ f *fixture }

func (e *engineForTest) once(pol perms.Policy) (bool, error) {
	cfg := Config{Scandir: e.f.scandir, User: "hermes", Policy: pol, Exclude: DefaultExcludes, Once: true}
	return true, Run(t0ctx(), cfg)
}

// TestAttackSwapLoop swaps a real supervise/ and a symlink to root's
// directory in a tight loop while perm-watcher works on the service.
func TestAttackSwapLoop(t *testing.T) {
	for _, pol := range []perms.Policy{perms.PolicyOwner, perms.PolicyGroup} {
		t.Run(string(pol), func(t *testing.T) {
			f := newFixture(t)
			vdir := filepath.Join(f.root, "victim")
			rootSupervised(t, vdir)
			victims := snapshot(t, vdir, vdir+"/supervise", vdir+"/supervise/control", vdir+"/event", vdir+"/supervise/status")
			f.startWatcher(pol, func(c *Config) { c.Resync = 50 * time.Millisecond })

			d := f.userSlot("swap")
			rootSupervised(t, d)
			f.userSymlink(vdir+"/supervise", d+"/alt")
			stop := make(chan struct{})
			var wg sync.WaitGroup
			wg.Add(1)
			swaps := 0
			go func() {
				defer wg.Done()
				for {
					select {
					case <-stop:
						return
					default:
					}
					// Atomically exchange "supervise" and "alt".
					if err := unix.Renameat2(unix.AT_FDCWD, d+"/supervise", unix.AT_FDCWD, d+"/alt", unix.RENAME_EXCHANGE); err != nil {
						t.Errorf("renameat2: %v", err)
						return
					}
					swaps++
				}
			}()
			time.Sleep(3 * time.Second)
			close(stop)
			wg.Wait()
			t.Logf("%d swaps", swaps)
			victims.unchanged(t)
			f.legitFixed("legit-after")
		})
	}
}

// TestOddNames: service names with a newline and non-UTF-8 bytes are
// handled (they are valid to s6) and logs stay one JSON object per line.
func TestOddNames(t *testing.T) {
	f := newFixture(t)
	f.startWatcher(perms.PolicyOwner)
	for _, name := range []string{"new\nline", "bad\xff\xfeutf8", "sp ace"} {
		f.legitFixed(name)
	}
	for _, line := range strings.Split(strings.TrimSpace(f.logBuf.String()), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Errorf("log line is not JSON: %q: %v", line, err)
		}
	}
	var out strings.Builder
	if _, err := Check(Config{Scandir: f.scandir, User: "hermes", Policy: perms.PolicyOwner}, &out); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), `"new\nline"`) {
		t.Errorf("--check does not quote the odd name:\n%s", out.String())
	}
}
