package permwatch

import (
	"strings"
	"syscall"
	"testing"

	"github.com/hermes-s6/hermes-s6/perms"
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
