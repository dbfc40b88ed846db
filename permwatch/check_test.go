package permwatch

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hermes-s6/hermes-s6/bootlog"
	"github.com/hermes-s6/hermes-s6/mode"
	"github.com/hermes-s6/hermes-s6/perms"
	"github.com/hermes-s6/hermes-s6/s6"
)

// TestEvaluateMissingSupervise: a service s6-supervise has not started yet
// gets one line for supervise/ and one for event/, with the rescan command
// on the real scandir, and no follow-up lines for what lives inside
// supervise/.
func TestEvaluateMissingSupervise(t *testing.T) {
	dir := func(p string, mode uint32) perms.Object {
		return perms.Object{Path: p, Exists: true, Mode: syscall.S_IFDIR | mode, Nlink: 2}
	}
	v := perms.ServiceView{
		Name: "gw", Path: "/sd/gw", Dir: dir("/sd/gw", 0o755),
		Supervise: perms.Object{Path: "/sd/gw/supervise"},
		Control:   perms.Object{Path: "/sd/gw/supervise/control"},
		Status:    perms.Object{Path: "/sd/gw/supervise/status"},
		Lock:      perms.Object{Path: "/sd/gw/supervise/lock"},
		Event:     perms.Object{Path: "/sd/gw/event"},
	}
	w := who{name: "hermes", uid: 10000, gid: 10000, groups: []int{10000}}
	c := evaluate(dir("/sd", 0o755), v, w, perms.PolicyOwner, 0)
	if c.Usable() {
		t.Fatal("usable without supervise/")
	}
	all := strings.Join(c.Problems, "\n")
	if len(c.Problems) != 2 || !strings.Contains(all, "/sd/gw/supervise does not exist") ||
		!strings.Contains(all, "/sd/gw/event does not exist") || !strings.Contains(all, "s6-svscanctl -a /sd") {
		t.Errorf("problems:\n%s", all)
	}
}

// TestEvaluateGroupPolicy: under --policy group the wanted owner and mode
// are s6-svperms's.
func TestEvaluateGroupPolicy(t *testing.T) {
	obj := func(p string, typ, mode uint32) perms.Object {
		return perms.Object{Path: p, Exists: true, Mode: typ | mode, Nlink: 1}
	}
	v := perms.ServiceView{
		Name: "gw", Path: "/sd/gw", Dir: obj("/sd/gw", syscall.S_IFDIR, 0o755),
		Supervise: obj("/sd/gw/supervise", syscall.S_IFDIR, 0o700),
		Control:   obj("/sd/gw/supervise/control", syscall.S_IFIFO, 0o600),
		Status:    obj("/sd/gw/supervise/status", syscall.S_IFREG, 0o644),
		Lock:      obj("/sd/gw/supervise/lock", syscall.S_IFREG, 0o644),
		Event:     obj("/sd/gw/event", syscall.S_IFDIR, 0o3730),
	}
	w := who{name: "hermes", uid: 10000, gid: 10000, groups: []int{10000}}
	c := evaluate(obj("/sd", syscall.S_IFDIR, 0o755), v, w, perms.PolicyGroup, 0)
	all := strings.Join(c.Problems, "\n")
	for _, want := range []string{"policy group wants 0:10000 (root, gid 10000 = hermes's group) 0710", "0620", "03730"} {
		if !strings.Contains(all, want) {
			t.Errorf("problems lack %q:\n%s", want, all)
		}
	}
}

// TestCheckBrokenContainer: --check must never report success on a broken
// container. The two states production showed: nothing handed over at all
// (s6-overlay 3.2.3.0 reading the user bundle elsewhere: no perm-watcher,
// no reconcile-profiles, the scandir and its control FIFO root's, and not
// one service to count), and a slot the last boot announced that is gone.
func TestCheckBrokenContainer(t *testing.T) {
	f := newFixture(t)
	f.startSvscan()
	f.waitFor(5*time.Second, ".s6-svscan/control", func() (bool, string) {
		_, err := os.Lstat(filepath.Join(f.scandir, ".s6-svscan/control"))
		return err == nil, fmt.Sprint(err)
	})
	bin := buildBinary(t)
	home := filepath.Join(f.root, "home")
	must(t, os.MkdirAll(filepath.Join(home, "logs"), 0o755))
	args := []string{"--check", "--scandir", f.scandir, "--hermes-home", home}

	code, out := runBin(t, bin, true, args...)
	if code != 1 {
		t.Fatalf("--check on a never-handed-over scandir: exit %d, want 1\n%s", code, out)
	}
	for _, want := range []string{"cannot register a slot", ".s6-svscan/control is prw------- (0600) 0:0", "s6-rc -a list", "install-user-bundle",
		"needs write and search on it", "0 service(s) checked, 1 not usable"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}

	// Handed over, but the last boot announced slots that are not there.
	f.handOver()
	f.register("gateway-alpha")
	f.waitFor(10*time.Second, "gateway-alpha supervised", func() (bool, string) {
		_, err := os.Lstat(filepath.Join(f.scandir, "gateway-alpha/log/supervise/control"))
		return err == nil, fmt.Sprint(err)
	})
	stop := f.startWatcher(perms.PolicyOwner)
	defer stop()
	f.waitFor(10*time.Second, "gateway-alpha usable", func() (bool, string) { return f.usable(f.svc("gateway-alpha", "gateway-alpha/log")...) })
	line := func(p, a string) string {
		return bootlog.Format(bootlog.Entry{Time: time.Now().UTC(), Profile: p, Action: a, PriorExit: "unknown"})
	}
	must(t, os.WriteFile(filepath.Join(home, bootlog.File),
		[]byte(line("ghost", bootlog.Started)+line("default", bootlog.Started)+ // an older boot
			line("alpha", bootlog.Started)+line("bad name", bootlog.Skipped)+line("default", bootlog.Registered)), 0o644))
	code, out = runBin(t, bin, true, args...)
	if code != 1 || !strings.Contains(out, "FAIL  gateway-default: the last boot registered it") || strings.Contains(out, "ghost") ||
		strings.Contains(out, "FAIL  gateway-alpha") {
		t.Fatalf("--check with a missing announced slot: exit %d, want 1 naming gateway-default only\n%s", code, out)
	}
	// As root, the boot log is not read (root never opens HERMES_HOME).
	if code, out := runBin(t, bin, false, args...); !strings.Contains(out, "not reading "+filepath.Join(home, bootlog.File)+" as root") {
		t.Errorf("--check as root: exit %d\n%s", code, out)
	}
	f.register("gateway-default")
	f.waitFor(10*time.Second, "gateway-default usable", func() (bool, string) { return f.usable(f.svc("gateway-default", "gateway-default/log")...) })
	if code, out := runBin(t, bin, true, args...); code != 0 {
		t.Fatalf("--check on a healthy scandir: exit %d, want 0\n%s", code, out)
	}
}

// TestCheckAsUserFollowsOwnSymlinks: in a -u hermes container s6-rc runs as
// hermes, so its longruns are hermes's symlinks into hermes's live
// directory, below a /run that is hermes's too. --check run as hermes
// follows them as s6-svc does, whatever the ancestors (it holds no
// privilege to abuse); root still refuses them.
func TestCheckAsUserFollowsOwnSymlinks(t *testing.T) {
	f := newFixture(t)
	live := filepath.Join(f.root, "s6-rc:s6-rc-init:abc", "servicedirs", "static")
	rootSupervised(t, live)
	must(t, os.WriteFile(live+"/supervise/lock", nil, 0o644))
	must(t, os.Symlink(live, filepath.Join(f.scandir, "static")))
	must(t, syscall.Mkfifo(filepath.Join(f.scandir, ".s6-svscan/control"), 0o600))
	// Everything the user's s6-svscan and s6-rc would have made is theirs.
	for _, p := range []string{filepath.Dir(filepath.Dir(live)), filepath.Dir(live), live, live + "/supervise", live + "/supervise/control",
		live + "/supervise/status", live + "/supervise/lock", live + "/event", f.scandir, f.scandir + "/.s6-svscan",
		f.scandir + "/.s6-svscan/control", filepath.Join(f.scandir, "static")} {
		must(t, os.Lchown(p, f.uid, f.gid))
	}
	bin := buildBinary(t)
	if code, out := runBin(t, bin, false, "--check", "--scandir", f.scandir, "--hermes-home", ""); code != 1 || !strings.Contains(out, "FAIL  static") {
		t.Errorf("--check as root on a user's symlink: exit %d, want 1 (root never follows it)\n%s", code, out)
	}
	// s6-overlay's preinit makes /run the user's in a -u container: an
	// ancestor root would refuse, and the user's own --check must not.
	must(t, os.Lchown(f.root, f.uid, f.gid))
	code, out := runBin(t, bin, true, "--check", "--scandir", f.scandir, "--hermes-home", "")
	if code != 0 || !strings.Contains(out, "ok    static:") {
		t.Fatalf("--check as the user on its own s6-rc symlink below its own /run: exit %d, want 0 and static ok\n%s", code, out)
	}
}

// TestCheckSealed: in a sealed container (the scandir and s6-svscan's
// control root's; slots prepared by root under policy sealed; perm-watcher
// --policy sealed for the rest) --check as the user exits 0, whether the
// mode comes from --mode, from HERMES_S6_MODE (docker exec -u hermes sees
// the container's environment) or is inferred from the scandir; told open
// mode, it says the user cannot register a slot and that this is by
// design in sealed mode. A scandir handed over to the user breaks sealed
// mode's promise: exit 1.
func TestCheckSealed(t *testing.T) {
	f := newFixture(t)
	t.Setenv(mode.Env, "")
	f.startSvscan()
	static := filepath.Join(f.scandir, "static")
	must(t, os.Mkdir(static, 0o755))
	must(t, os.WriteFile(static+"/run", []byte("#!/bin/sh\nexec sleep 100000\n"), 0o755))
	// A slot made as the sealed follower makes it: staged, supervise/ and
	// control pre-created by root for the user's group, renamed in.
	stage := filepath.Join(f.scandir, ".gw-alpha.tmp")
	must(t, os.MkdirAll(stage+"/log", 0o755))
	must(t, os.WriteFile(stage+"/run", []byte("#!/bin/sh\nexec sleep 100000\n"), 0o755))
	must(t, os.WriteFile(stage+"/log/run", []byte("#!/bin/sh\nexec cat >/dev/null\n"), 0o755))
	sd, err := perms.OpenScandir(f.scandir)
	must(t, err)
	defer sd.Close()
	_, err = sd.Prepare(".gw-alpha.tmp", perms.Owner{UID: f.uid, GID: f.gid}, perms.PolicySealed, perms.ScopeAll)
	must(t, err)
	must(t, os.Rename(stage, filepath.Join(f.scandir, "gateway-alpha")))
	stop := f.startWatcher(perms.PolicySealed)
	defer stop()
	must(t, s6.Rescan(f.scandir))
	script := `set -e; for d in "$@"; do s6-svstat "$d" >/dev/null; s6-svc -u "$d"; done`
	f.waitFor(10*time.Second, "every service controllable by the user", func() (bool, string) {
		out, err := f.asUser(script, f.svc("static", "gateway-alpha", "gateway-alpha/log")...)
		return err == nil, fmt.Sprint(err, out)
	})
	bin := buildBinary(t)
	args := []string{"--check", "--scandir", f.scandir, "--hermes-home", ""}

	for _, tc := range []struct {
		name, env string
		args      []string
		want      []string
	}{
		{"--mode sealed", "", []string{"--mode", "sealed"}, []string{"mode sealed, policy sealed"}},
		{"HERMES_S6_MODE=sealed", "sealed", nil, []string{"mode sealed, policy sealed"}},
		{"inferred", "", nil, []string{"note: mode sealed inferred", "gateway-alpha/supervise is"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv(mode.Env, tc.env)
			code, out := runBin(t, bin, true, append(args, tc.args...)...)
			if code != 0 {
				t.Fatalf("exit %d, want 0\n%s", code, out)
			}
			for _, w := range append(tc.want, "ok    "+f.scandir+": sealed", "ok    gateway-alpha/log:", "ok    static:", "3 service(s) checked, 0 not usable") {
				if !strings.Contains(out, w) {
					t.Errorf("output lacks %q:\n%s", w, out)
				}
			}
		})
	}
	code, out := runBin(t, bin, true, append(args, "--mode", "open")...)
	if code != 1 || !strings.Contains(out, "cannot register a slot") || !strings.Contains(out, "In sealed mode this is by design") {
		t.Errorf("--mode open in a sealed container: exit %d, want 1 saying it cannot register, by design in sealed mode\n%s", code, out)
	}

	f.handOver()
	code, out = runBin(t, bin, true, append(args, "--mode", "sealed")...)
	if code != 1 || !strings.Contains(out, "sealed mode promises that hermes cannot write the scandir") ||
		!strings.Contains(out, ".s6-svscan/control is") {
		t.Errorf("--mode sealed on a handed-over scandir: exit %d, want 1 naming the scandir and its control FIFO\n%s", code, out)
	}
}
