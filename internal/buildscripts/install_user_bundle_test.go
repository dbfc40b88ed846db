package buildscripts

import (
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"testing"
)

// script is install-user-bundle in the repository.
func script(t *testing.T) string {
	t.Helper()
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..", "rootfs", "usr", "lib", "hermes-s6", "install-user-bundle")
}

// tree is a fake image: the s6-overlay version its link names ("" for no
// link), whether s6-rc.d/user/type exists, and the services defined.
type tree struct {
	version string
	legacy  bool
}

func (tr tree) make(t *testing.T) string {
	t.Helper()
	root := t.TempDir()
	etc := filepath.Join(root, "etc", "s6-overlay", "s6-rc.d")
	for _, svc := range []string{"perm-watcher", "reconcile-profiles"} {
		mkfile(t, filepath.Join(etc, svc, "type"), "longrun\n")
	}
	if tr.version != "" {
		pkg := filepath.Join(root, "package", "admin")
		if err := os.MkdirAll(filepath.Join(pkg, "s6-overlay-"+tr.version), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink("s6-overlay-"+tr.version, filepath.Join(pkg, "s6-overlay")); err != nil {
			t.Fatal(err)
		}
	}
	if tr.legacy {
		for _, b := range []string{"user", "user2"} {
			mkfile(t, filepath.Join(etc, b, "type"), "bundle\n")
			if err := os.MkdirAll(filepath.Join(etc, b, "contents.d"), 0o755); err != nil {
				t.Fatal(err)
			}
		}
	}
	return root
}

func mkfile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func run(t *testing.T, root string, args ...string) (int, string) {
	t.Helper()
	cmd := exec.Command("/bin/sh", append([]string{script(t)}, args...)...)
	cmd.Env = []string{"PATH=/usr/bin:/bin", "HERMES_S6_ROOT=" + root}
	out, err := cmd.CombinedOutput()
	if err == nil {
		return 0, string(out)
	}
	if ee, ok := err.(*exec.ExitError); ok {
		return ee.ExitCode(), string(out)
	}
	t.Fatalf("run %s: %v", script(t), err)
	return 0, ""
}

// members lists contents.d of dir below root ("" if it does not exist).
func members(t *testing.T, root, dir string) string {
	t.Helper()
	es, err := os.ReadDir(filepath.Join(root, dir, "contents.d"))
	if os.IsNotExist(err) {
		return ""
	}
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range es {
		names = append(names, e.Name())
	}
	sort.Strings(names)
	return strings.Join(names, " ")
}

const (
	legacyDir  = "etc/s6-overlay/s6-rc.d/user"
	bundlesDir = "etc/s6-overlay/user-bundles.d/user"
	both       = "perm-watcher reconcile-profiles"
)

func TestInstallUserBundle(t *testing.T) {
	for _, c := range []struct {
		name        string
		tree        tree
		wantCode    int
		wantLegacy  string // members of s6-rc.d/user after
		wantBundles string // members of user-bundles.d/user after
		wantOut     []string
	}{
		{name: "3.2.3.0 tarball: s6-rc.d/user", tree: tree{"3.2.3.0", true}, wantLegacy: both},
		{name: "3.2.1.0 tarball: s6-rc.d/user", tree: tree{"3.2.1.0", true}, wantLegacy: both},
		{name: "3.2.3.1: user-bundles.d", tree: tree{"3.2.3.1", false}, wantBundles: both},
		{name: "3.2.3.2: user-bundles.d", tree: tree{"3.2.3.2", false}, wantBundles: both},
		{name: "3.2.10.0 compares as a number", tree: tree{"3.2.10.0", false}, wantBundles: both},
		{name: "4.0.0.0", tree: tree{"4.0.0.0", false}, wantBundles: both},
		{
			name: "3.2.3.2 with a leftover s6-rc.d/user: the one place it reads, with a warning",
			tree: tree{"3.2.3.2", true}, wantLegacy: both,
			wantOut: []string{"warning", "docker run -u", "Remove"},
		},
		{
			name: "no s6-overlay at all", tree: tree{"", false}, wantCode: 111,
			wantOut: []string{"cannot tell", "s6-rc.d/user/type", "/package/admin/s6-overlay", "Fix: unpack s6-overlay's noarch tarball"},
		},
		{
			name: "3.2.1.0 without its s6-rc.d/user", tree: tree{"3.2.1.0", false}, wantCode: 111,
			wantOut: []string{"cannot tell", "s6-overlay 3.2.1.0", "unpacked completely"},
		},
		{name: "a link that names no version", tree: tree{"latest", false}, wantCode: 111, wantOut: []string{"not as a symlink to s6-overlay-X.Y.Z.W"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			root := c.tree.make(t)
			code, out := run(t, root, "perm-watcher", "reconcile-profiles")
			if code != c.wantCode {
				t.Fatalf("exit %d, want %d:\n%s", code, c.wantCode, out)
			}
			for _, w := range c.wantOut {
				if !strings.Contains(out, w) {
					t.Errorf("output lacks %q:\n%s", w, out)
				}
			}
			if got := members(t, root, legacyDir); got != c.wantLegacy {
				t.Errorf("%s/contents.d = %q, want %q", legacyDir, got, c.wantLegacy)
			}
			if got := members(t, root, bundlesDir); got != c.wantBundles {
				t.Errorf("%s/contents.d = %q, want %q", bundlesDir, got, c.wantBundles)
			}
		})
	}
}

func TestInstallUserBundleRefusesBadNames(t *testing.T) {
	root := tree{"3.2.3.0", true}.make(t)
	for _, args := range [][]string{
		{},
		{"no-such-service"},
		{"../perm-watcher"},
		{"user"},
		{"perm-watcher", ".hidden"},
	} {
		code, out := run(t, root, args...)
		if code != 100 {
			t.Errorf("%q: exit %d, want 100:\n%s", args, code, out)
		}
	}
	if got := members(t, root, legacyDir); got != "" {
		t.Errorf("a refused call still added %q", got)
	}
}
