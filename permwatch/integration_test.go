package permwatch

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hermes-s6/hermes-s6/perms"
)

// TestIntegration: a real s6-svscan, perm-watcher running, services
// registered as the hermes CLI does; UID 10000 controls them and their
// log/ sub-services, under both policies.
func TestIntegration(t *testing.T) {
	for _, pol := range []perms.Policy{perms.PolicyOwner, perms.PolicyGroup} {
		t.Run(string(pol), func(t *testing.T) {
			f := newFixture(t)
			// A service that exists before s6-svscan and perm-watcher.
			f.register0("pre")
			f.startSvscan()
			f.handOver()
			// s6-supervise makes supervise/control before it first writes
			// supervise/status: until both are there, s6-svstat fails with
			// ENOENT whoever runs it (seen in CI at cddaaba).
			f.waitFor(5*time.Second, "pre's supervise/control and status", func() (bool, string) {
				var errs []error
				for _, p := range []string{"pre/supervise/control", "pre/supervise/status", "pre/log/supervise/control", "pre/log/supervise/status"} {
					if _, err := os.Lstat(filepath.Join(f.scandir, p)); err != nil {
						errs = append(errs, err)
					}
				}
				return len(errs) == 0, fmt.Sprint(errs)
			})
			if ok, _ := f.usable(f.svc("pre")...); ok {
				t.Fatal("pre is usable before perm-watcher ran: the test proves nothing")
			}
			f.startWatcher(pol)
			// Fixed by the first pass: no waiting.
			if ok, detail := f.usable(f.svc("pre", "pre/log")...); !ok {
				t.Fatalf("pre not usable right after the first pass: %s", detail)
			}

			f.register("gw")
			f.waitFor(5*time.Second, "gw usable by the user", func() (bool, string) {
				return f.usable(f.svc("gw", "gw/log")...)
			})
			for _, d := range f.svc("pre", "pre/log", "gw", "gw/log") {
				f.exercise(d)
			}
			checkModes(t, f, pol, "gw")

			// Unregister and register again: the new supervise/ is fixed too.
			if out, err := f.asUser(`set -e; s6-svc -d "$1"; s6-svwait -t 10000 -D "$1"; s6-svc -d "$1/log"; s6-svwait -t 10000 -D "$1/log"`, filepath.Join(f.scandir, "gw")); err != nil {
				t.Fatalf("stopping gw: %v\n%s", err, out)
			}
			if pol == perms.PolicyOwner {
				// Owner policy: the user can delete its own slot entirely.
				if out, err := f.asUser(`set -e; mv "$1/gw" "$1/.gw.old"; s6-svscanctl -an "$1"; rm -rf "$1/.gw.old"`, f.scandir); err != nil {
					t.Fatalf("removing gw as the user: %v\n%s", err, out)
				}
			} else {
				must(t, os.Rename(filepath.Join(f.scandir, "gw"), filepath.Join(f.scandir, ".gw.old")))
				if out, err := f.asUser(`s6-svscanctl -an "$1"`, f.scandir); err != nil {
					t.Fatalf("%v %s", err, out)
				}
				f.waitFor(5*time.Second, "gw supervisor gone", func() (bool, string) {
					// s6-supervise exits once its dir leaves the scandir.
					_, err := os.Lstat(filepath.Join(f.scandir, ".gw.old/supervise/control"))
					return err == nil, ""
				})
				must(t, os.RemoveAll(filepath.Join(f.scandir, ".gw.old")))
			}
			time.Sleep(100 * time.Millisecond) // let s6-svscan reap the old supervisors
			f.register("gw")
			f.waitFor(5*time.Second, "re-registered gw usable", func() (bool, string) {
				return f.usable(f.svc("gw", "gw/log")...)
			})
			f.exercise(filepath.Join(f.scandir, "gw"))
		})
	}
}

// register0 makes a service as root before anything runs (a pre-existing
// slot restored at boot).
func (f *fixture) register0(name string) {
	d := filepath.Join(f.scandir, name)
	must(f.t, os.MkdirAll(d+"/log", 0o755))
	must(f.t, os.WriteFile(d+"/run", []byte("#!/bin/sh\nexec sleep 100000\n"), 0o755))
	must(f.t, os.WriteFile(d+"/log/run", []byte("#!/bin/sh\nexec cat >/dev/null\n"), 0o755))
}

func checkModes(t *testing.T, f *fixture, pol perms.Policy, name string) {
	t.Helper()
	type want struct {
		uid, gid int
		perm     uint32
	}
	var exp map[string]want
	if pol == perms.PolicyOwner {
		exp = map[string]want{"supervise": {f.uid, f.gid, 0o700}, "supervise/control": {f.uid, f.gid, 0o600}, "event": {f.uid, f.gid, 0o3730}}
	} else {
		exp = map[string]want{"supervise": {0, f.gid, 0o710}, "supervise/control": {0, f.gid, 0o620}, "event": {0, f.gid, 0o3730}}
	}
	for rel, w := range exp {
		var st syscall.Stat_t
		p := filepath.Join(f.scandir, name, rel)
		must(t, syscall.Lstat(p, &st))
		if int(st.Uid) != w.uid || int(st.Gid) != w.gid || st.Mode&0o7777 != w.perm {
			t.Errorf("%s: %d:%d %04o, want %d:%d %04o", p, st.Uid, st.Gid, st.Mode&0o7777, w.uid, w.gid, w.perm)
		}
	}
	// Files perm-watcher never touches stay root's.
	for _, rel := range []string{"supervise/status", "supervise/lock"} {
		var st syscall.Stat_t
		must(t, syscall.Lstat(filepath.Join(f.scandir, name, rel), &st))
		if st.Uid != 0 {
			t.Errorf("%s changed owner to %d", rel, st.Uid)
		}
	}
}

// TestBurst: 300 services registered at once all become usable (checked
// with the real s6-svstat and s6-svc as the user).
func TestBurst(t *testing.T) {
	f := newFixture(t)
	f.startSvscan()
	f.handOver()
	f.startWatcher(perms.PolicyOwner)
	var names []string
	for i := 0; i < 300; i++ {
		names = append(names, fmt.Sprintf("burst-%03d", i))
	}
	start := time.Now()
	f.registerFast(names...)
	t.Logf("registered in %v", time.Since(start))
	dirs := f.svc(names...)
	f.waitFor(60*time.Second, "300 services usable", func() (bool, string) {
		for _, d := range dirs {
			var st syscall.Stat_t
			if syscall.Lstat(d+"/supervise/control", &st) != nil || st.Uid != uint32(f.uid) {
				return false, d + " not handed over yet"
			}
			if syscall.Lstat(d+"/event", &st) != nil || st.Uid != uint32(f.uid) {
				return false, d + "/event not handed over yet"
			}
			// perm-watcher makes them before s6-supervise starts: wait for
			// s6-supervise too (it writes status).
			if syscall.Lstat(d+"/supervise/status", &st) != nil {
				return false, d + " not supervised yet"
			}
		}
		return true, ""
	})
	t.Logf("300 services handed over and supervised %v after the burst", time.Since(start))
	if ok, detail := f.usable(dirs...); !ok {
		t.Fatalf("not usable: %s", detail)
	}
}

// TestCheck: --check reports a broken service and exits 1, and 0 once fixed.
func TestCheck(t *testing.T) {
	f := newFixture(t)
	f.register0("broken")
	f.startSvscan()
	f.handOver()
	f.waitFor(10*time.Second, "broken and broken/log supervised", func() (bool, string) {
		for _, p := range []string{"broken/supervise/control", "broken/event", "broken/log/supervise/control", "broken/log/event"} {
			if _, err := os.Lstat(filepath.Join(f.scandir, p)); err != nil {
				return false, err.Error()
			}
		}
		return true, ""
	})
	cfg := Config{Scandir: f.scandir, User: "hermes", Policy: perms.PolicyOwner, Exclude: DefaultExcludes}

	var out bytes.Buffer
	ok, err := Check(cfg, &out)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("--check as root, before:\n%s", out.String())
	if ok {
		t.Fatal("Check says usable before any fix")
	}
	for _, want := range []string{"FAIL  broken:", "supervise/control", "needs write (w)", "perm-watcher --once", "FAIL  broken/log:",
		"is drwx------ (0700) 0:0", "policy owner wants 10000:10000", "control it (s6-svc) and wait on its events (s6-svwait)"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("--check output lacks %q", want)
		}
	}
	// One line per object, whatever it is needed for.
	if n := strings.Count(out.String(), "broken/supervise is "); n != 1 {
		t.Errorf("broken/supervise reported %d times, want once", n)
	}
	// The binary, as the user (non-root) and as root: exit 1.
	bin := buildBinary(t)
	if code, o := runBin(t, bin, true, "--check", "--scandir", f.scandir); code != 1 {
		t.Errorf("--check as the user: exit %d, want 1\n%s", code, o)
	} else {
		t.Logf("--check as the user:\n%s", o)
	}
	if code, o := runBin(t, bin, false, "--once", "--scandir", f.scandir); code != 0 {
		t.Fatalf("--once: exit %d\n%s", code, o)
	}
	if code, o := runBin(t, bin, true, "--check", "--scandir", f.scandir); code != 0 {
		t.Errorf("--check after the fix, as the user: exit %d, want 0\n%s", code, o)
	}
	if code, o := runBin(t, bin, false, "--check", "--scandir", f.scandir); code != 0 {
		t.Errorf("--check after the fix, as root: exit %d, want 0\n%s", code, o)
	}
	if code, o := runBin(t, bin, true, "--once", "--scandir", f.scandir); code != 100 || !strings.Contains(o, "root") {
		t.Errorf("--once as the user: exit %d, want 100 and a message about root\n%s", code, o)
	}
}

// TestS6RCSymlink: a root-owned symlink in the scandir into a root-owned
// servicedirs tree (s6-rc style, through a root symlink) gets fixed.
func TestS6RCSymlink(t *testing.T) {
	f := newFixture(t)
	live := filepath.Join(f.root, "s6-rc:s6-rc-init:abc")
	must(t, os.MkdirAll(live+"/servicedirs/static", 0o755))
	must(t, os.WriteFile(live+"/servicedirs/static/run", []byte("#!/bin/sh\nexec sleep 100000\n"), 0o755))
	must(t, os.Symlink(live, filepath.Join(f.root, "s6-rc")))
	must(t, os.Symlink(filepath.Join(f.root, "s6-rc/servicedirs/static"), filepath.Join(f.scandir, "static")))
	f.startSvscan()
	f.handOver()
	f.startWatcher(perms.PolicyOwner)
	f.waitFor(5*time.Second, "static usable", func() (bool, string) { return f.usable(f.svc("static")...) })
	f.exercise(filepath.Join(f.scandir, "static"))
}

// TestIntegrationSealed: under the sealed policy, with a real s6-svscan,
// the user controls and reads a registered slot and its log/ (s6-svc,
// s6-svstat) while every event/ stays root's 03730, untouched.
func TestIntegrationSealed(t *testing.T) {
	f := newFixture(t)
	f.startSvscan()
	f.handOver()
	f.startWatcher(perms.PolicySealed)
	f.register("gw")
	script := `set -e; for d in "$@"; do s6-svstat "$d" >/dev/null; s6-svc -u "$d"; done`
	f.waitFor(10*time.Second, "gw controllable by the user", func() (bool, string) {
		out, err := f.asUser(script, f.svc("gw", "gw/log")...)
		return err == nil, fmt.Sprint(err, out)
	})
	for _, d := range f.svc("gw", "gw/log") {
		f.waitFor(5*time.Second, d+"/event made by s6", func() (bool, string) {
			_, err := os.Lstat(d + "/event")
			return err == nil, fmt.Sprint(err)
		})
		var st syscall.Stat_t
		must(t, syscall.Lstat(d+"/event", &st))
		if st.Uid != 0 || st.Gid != 0 || st.Mode&0o7777 != 0o3730 {
			t.Errorf("%s/event: %d:%d %04o, want root's 0:0 03730", d, st.Uid, st.Gid, st.Mode&0o7777)
		}
		must(t, syscall.Lstat(d+"/supervise", &st))
		if st.Uid != 0 || int(st.Gid) != f.gid || st.Mode&0o7777 != 0o750 {
			t.Errorf("%s/supervise: %d:%d %04o, want 0:%d 0750", d, st.Uid, st.Gid, st.Mode&0o7777, f.gid)
		}
	}
}
