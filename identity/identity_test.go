package identity

import (
	"errors"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"

	"github.com/hermes-s6/hermes-s6/internal/testenv"
)

func TestLookupUnknown(t *testing.T) {
	_, err := Lookup("no-such-user-hermes-s6")
	if !errors.Is(err, ErrNoSuchUser) {
		t.Fatalf("want ErrNoSuchUser, got %v", err)
	}
	if !strings.Contains(err.Error(), "--user") {
		t.Errorf("error should say how to fix it: %v", err)
	}
}

func TestLookupRoot(t *testing.T) {
	id, err := Lookup("root")
	if err != nil {
		t.Fatal(err)
	}
	if id.UID != 0 || id.GID != 0 || len(id.Groups) == 0 || id.Groups[0] != 0 {
		t.Fatalf("root resolved to %+v", id)
	}
}

func TestDropRefusesRoot(t *testing.T) {
	if err := Drop(Identity{Name: "root"}); err == nil {
		t.Fatal("Drop to uid 0 must fail")
	}
}

// TestDrop runs a child test process that drops to the test user and
// reports its credentials: dropping in this process would end the test
// binary's root.
func TestDrop(t *testing.T) {
	if os.Getenv("HERMES_S6_DROP_CHILD") == "1" {
		id, err := Lookup(testenv.TestUser)
		if err != nil {
			t.Fatal(err)
		}
		if err := Drop(id); err != nil {
			t.Fatal(err)
		}
		status, _ := os.ReadFile("/proc/self/status")
		for _, l := range strings.Split(string(status), "\n") {
			if strings.HasPrefix(l, "Uid:") || strings.HasPrefix(l, "Gid:") || strings.HasPrefix(l, "Groups:") {
				os.Stdout.WriteString(l + "\n")
			}
		}
		return
	}
	uid, gid := testenv.EnsureUser(t)
	cmd := exec.Command(os.Args[0], "-test.run=^TestDrop$", "-test.v")
	cmd.Env = append(os.Environ(), "HERMES_S6_DROP_CHILD=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("child: %v\n%s", err, out)
	}
	u, g := strconv.Itoa(uid), strconv.Itoa(gid)
	for _, want := range []string{"Uid:\t" + u + "\t" + u + "\t" + u + "\t" + u, "Gid:\t" + g + "\t" + g + "\t" + g + "\t" + g, "Groups:\t" + g} {
		if !strings.Contains(string(out), want) {
			t.Errorf("child credentials lack %q:\n%s", want, out)
		}
	}
}
