package perms

import (
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/hermes-s6/hermes-s6/internal/testenv"
)

// TestScandirAncestors (F7): a scandir any of whose ancestors is not
// root-owned, or is writable by group or others (sticky or not), is
// refused by OpenScandir and HandOverScandir (and so by both programs),
// with an error naming that directory and the fix; root-owned symlinks on
// the way are followed.
func TestScandirAncestors(t *testing.T) {
	uid, gid := testenv.EnsureUser(t)
	cases := []struct {
		name  string
		setup func(t *testing.T, root string) (scandir, bad string)
	}{
		{"user-owned grandparent", func(t *testing.T, root string) (string, string) {
			mkdir(t, root+"/gp", 0o755)
			lchown(t, root+"/gp", uid, gid)
			mkdir(t, root+"/gp/p", 0o755)
			s6svscanLayout(t, root+"/gp/p/sd")
			return root + "/gp/p/sd", root + "/gp"
		}},
		{"group-writable parent", func(t *testing.T, root string) (string, string) {
			mkdir(t, root+"/p", 0o775)
			s6svscanLayout(t, root+"/p/sd")
			return root + "/p/sd", root + "/p"
		}},
		{"sticky world-writable parent", func(t *testing.T, root string) (string, string) {
			mkdir(t, root+"/p", 0o1777)
			s6svscanLayout(t, root+"/p/sd")
			return root + "/p/sd", root + "/p"
		}},
		{"through a user-owned symlink", func(t *testing.T, root string) (string, string) {
			mkdir(t, root+"/real", 0o755)
			s6svscanLayout(t, root+"/real/sd")
			symlink(t, root+"/real", root+"/link")
			lchown(t, root+"/link", uid, gid)
			return root + "/link/sd", root + "/link"
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			root := testenv.TempDir(t)
			sd, bad := tc.setup(t, root)
			if s, err := OpenScandir(sd); err == nil {
				s.Close()
				t.Fatalf("OpenScandir(%s) accepted", sd)
			} else if !strings.Contains(err.Error(), bad) {
				t.Errorf("error does not name %s: %v", bad, err)
			}
			before := lfacts(t, sd, sd+"/.s6-svscan/control", sd+"/.s6-svscan/lock")
			_, err := HandOverScandir(sd, Owner{uid, gid})
			if err == nil {
				t.Fatal("HandOverScandir accepted")
			}
			if tc.name != "through a user-owned symlink" && !errors.Is(err, ErrUntrustedAncestor) {
				t.Errorf("HandOverScandir: %v, want ErrUntrustedAncestor", err)
			}
			if !strings.Contains(err.Error(), "chmod go-w") && !errors.Is(err, ErrSymlink) {
				t.Errorf("no fix in %v", err)
			}
			if after := lfacts(t, sd, sd+"/.s6-svscan/control", sd+"/.s6-svscan/lock"); !equalFacts(before, after) {
				t.Errorf("changed despite the refusal")
			}
		})
	}
	t.Run("root-owned symlink and relative path accepted", func(t *testing.T) {
		root := testenv.TempDir(t)
		mkdir(t, root+"/real", 0o755)
		s6svscanLayout(t, root+"/real/sd")
		symlink(t, "real", root+"/link")
		s, err := OpenScandir(root + "/link/../link/sd")
		if err != nil {
			t.Fatal(err)
		}
		s.Close()
		must(t, os.Chdir(root+"/real"))
		defer os.Chdir("/")
		s, err = OpenScandir("sd")
		if err != nil {
			t.Fatal(err)
		}
		s.Close()
	})
}
