// Package testenv holds the switches and fixtures shared by tests that need
// root, Debian's s6 or a Docker engine.
//
// On a laptop such a test skips and says why; with -short (make unit) it
// always skips. In CI the environment variable
// HERMES_S6_REQUIRE_ALL=1 turns every such skip into a failure, so a CI
// machine that silently lacks root, s6 or Docker cannot pass.
package testenv

import (
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
)

// RequireAllEnv is the switch that turns skips into failures (set by .ci/run).
const RequireAllEnv = "HERMES_S6_REQUIRE_ALL"

// TestUser and TestUID name the unprivileged account integration tests act
// as; it mirrors the hermes image (hermes, 10000:10000).
const (
	TestUser = "hermes"
	TestUID  = 10000
)

// Strict reports whether skips must become failures.
func Strict() bool {
	v := strings.ToLower(os.Getenv(RequireAllEnv))
	return v == "1" || v == "true" || v == "yes"
}

// skipShort skips under -short, an explicit request for the fast subset
// (make unit), even where the requirement is met.
func skipShort(t testing.TB, what string) {
	t.Helper()
	if testing.Short() {
		t.Skipf("-short: skipping a test that needs %s", what)
	}
}

func skipOrFail(t testing.TB, format string, args ...any) {
	t.Helper()
	msg := fmt.Sprintf(format, args...)
	if Strict() {
		t.Fatalf("%s (required because %s is set)", msg, RequireAllEnv)
	}
	t.Skip(msg)
}

// RequireRoot skips (or fails, in CI) unless the test runs as root: it
// chowns to another user, runs s6-svscan as PID owner root, or drops
// privileges.
func RequireRoot(t testing.TB) {
	t.Helper()
	skipShort(t, "root")
	if os.Geteuid() != 0 {
		skipOrFail(t, "needs root: it changes file owners and runs processes as UID %d", TestUID)
	}
}

// RequireS6 skips (or fails) unless Debian's s6 programs are on PATH, and
// returns the directory that holds them.
func RequireS6(t testing.TB) string {
	t.Helper()
	skipShort(t, "s6")
	p, err := exec.LookPath("s6-svscan")
	if err != nil {
		skipOrFail(t, "needs s6-svscan on PATH (apt-get install s6 execline): %v", err)
		return ""
	}
	for _, prog := range []string{"s6-supervise", "s6-svc", "s6-svstat", "s6-svwait", "s6-svscanctl"} {
		if _, err := exec.LookPath(prog); err != nil {
			skipOrFail(t, "needs %s on PATH (apt-get install s6): %v", prog, err)
		}
	}
	return filepath.Dir(p)
}

// RequireDocker skips (or fails) unless a Docker engine answers.
func RequireDocker(t testing.TB) {
	t.Helper()
	skipShort(t, "Docker")
	if _, err := exec.LookPath("docker"); err != nil {
		skipOrFail(t, "needs the docker CLI and a running engine: %v", err)
		return
	}
	if out, err := exec.Command("docker", "info", "--format", "{{.ServerVersion}}").CombinedOutput(); err != nil {
		skipOrFail(t, "needs a running Docker engine: docker info: %v: %s", err, strings.TrimSpace(string(out)))
	}
}

var userOnce sync.Once
var userErr error

// EnsureUser makes sure the unprivileged account TestUser with UID and GID
// TestUID exists on this machine, creating it (and its group) if missing, and
// returns its numeric ids. It needs root.
func EnsureUser(t testing.TB) (uid, gid int) {
	t.Helper()
	RequireRoot(t)
	userOnce.Do(func() { userErr = ensureUser() })
	if userErr != nil {
		t.Fatalf("test user %s (UID %d): %v", TestUser, TestUID, userErr)
	}
	u, err := user.Lookup(TestUser)
	if err != nil {
		t.Fatalf("lookup %s: %v", TestUser, err)
	}
	uid, _ = strconv.Atoi(u.Uid)
	gid, _ = strconv.Atoi(u.Gid)
	return uid, gid
}

func ensureUser() error {
	if u, err := user.Lookup(TestUser); err == nil {
		if u.Uid != strconv.Itoa(TestUID) {
			return fmt.Errorf("user %s exists with UID %s, tests need %d", TestUser, u.Uid, TestUID)
		}
		return nil
	}
	if _, err := user.LookupGroupId(strconv.Itoa(TestUID)); err != nil {
		if out, err := exec.Command("groupadd", "-g", strconv.Itoa(TestUID), TestUser).CombinedOutput(); err != nil {
			return fmt.Errorf("groupadd: %v: %s", err, out)
		}
	}
	out, err := exec.Command("useradd", "-u", strconv.Itoa(TestUID), "-g", strconv.Itoa(TestUID),
		"-M", "-d", "/nonexistent", "-s", "/usr/sbin/nologin", TestUser).CombinedOutput()
	if err != nil {
		return fmt.Errorf("useradd: %v: %s", err, out)
	}
	return nil
}

// AsUser makes cmd run with the given credentials and no supplementary
// groups, the way s6-setuidgid would.
func AsUser(cmd *exec.Cmd, uid, gid int) *exec.Cmd {
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Credential = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), Groups: []uint32{}}
	return cmd
}

// TrustedBase is where TempDir makes directories when the tests run as
// root: a root-owned 0755 directory with only root-owned, non-writable
// ancestors. perm-watcher and reconcile-profiles refuse a scandir below a
// directory that others can write, and /tmp (sticky, 1777) is one.
const TrustedBase = "/run/hermes-s6-test"

// TempDir returns a test directory that the unprivileged test user can reach
// (t.TempDir's parents are 0700 root's when tests run as root). As root it is
// below TrustedBase, so a scandir made in it passes the ancestor check.
func TempDir(t testing.TB) string {
	t.Helper()
	base := ""
	if os.Geteuid() == 0 {
		base = TrustedBase
		if err := os.MkdirAll(base, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(base, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	d, err := os.MkdirTemp(base, "hermes-s6-test-")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(d, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(d) })
	return d
}

// DumpTreeOnFailure registers a cleanup that, if the test failed, logs every
// entry under dir with its type, mode, owner and link count: the facts a
// permissions test failure is about.
func DumpTreeOnFailure(t testing.TB, dir string) {
	t.Helper()
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("tree of %s:\n%s", dir, DumpTree(dir))
		}
	})
}

// DumpTree renders dir as lines "mode uid:gid nlink path [-> target]",
// never following symlinks.
func DumpTree(dir string) string {
	var b strings.Builder
	_ = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			fmt.Fprintf(&b, "? %s: %v\n", p, err)
			if d != nil && d.IsDir() {
				return fs.SkipDir
			}
			return nil
		}
		var st syscall.Stat_t
		if err := syscall.Lstat(p, &st); err != nil {
			fmt.Fprintf(&b, "? %s: %v\n", p, err)
			return nil
		}
		info, _ := d.Info()
		line := fmt.Sprintf("%-12v %5d:%-5d %d %s", info.Mode(), st.Uid, st.Gid, st.Nlink, p)
		if d.Type()&fs.ModeSymlink != 0 {
			if target, err := os.Readlink(p); err == nil {
				line += " -> " + target
			}
		}
		b.WriteString(line + "\n")
		return nil
	})
	return b.String()
}

// FirstLine is s's first line, at most 120 bytes, or "no output": what an
// attack printed, in one log line.
func FirstLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	if len(s) > 120 {
		s = s[:120]
	}
	if s == "" {
		return "no output"
	}
	return s
}
