package permwatch

import (
	"testing"

	"github.com/fsnotify/fsnotify"

	"github.com/hermes-s6/hermes-s6/perms"
)

// route names the part of the service an event concerns, ignores writes
// and s6's status churn, and asks for a full pass on the scandir itself.
func TestRoute(t *testing.T) {
	cfg := &Config{Exclude: DefaultExcludes}
	e := &engine{cfg: cfg, scandir: "/sd", watched: map[string]bool{}}
	cases := []struct {
		name string
		op   fsnotify.Op
		want perms.Scope // for service "x"
		full bool
	}{
		{"/sd/x", fsnotify.Create, perms.ScopeAll, false},
		{"/sd/x", fsnotify.Rename, perms.ScopeAll, false},
		{"/sd/x/supervise", fsnotify.Create, perms.ScopeMain, false},
		{"/sd/x/supervise", fsnotify.Chmod, perms.ScopeMain, false},
		{"/sd/x/event", fsnotify.Chmod, perms.ScopeMain, false},
		{"/sd/x/supervise/control", fsnotify.Create, perms.ScopeMain, false},
		{"/sd/x/supervise/control", fsnotify.Write, 0, false},
		{"/sd/x/supervise/status.new", fsnotify.Create, 0, false},
		{"/sd/x/log", fsnotify.Create, perms.ScopeLog, false},
		{"/sd/x/log/supervise", fsnotify.Create, perms.ScopeLog, false},
		{"/sd/x/log/event", fsnotify.Chmod, perms.ScopeLog, false},
		{"/sd/x/log/supervise/control", fsnotify.Remove, perms.ScopeLog, false},
		{"/sd/x/log/supervise/control", fsnotify.Write, 0, false},
		{"/sd/x/run", fsnotify.Create, 0, false},
		{"/sd", fsnotify.Chmod, 0, true},
	}
	for _, c := range cases {
		pending := map[string]perms.Scope{}
		full := e.route(fsnotify.Event{Name: c.name, Op: c.op}, pending)
		if full != c.full || pending["x"] != c.want || len(pending) > 1 {
			t.Errorf("%s %v: full %v, pending %v; want full %v, x=%v", c.name, c.op, full, pending, c.full, c.want)
		}
	}
	// Scopes merge within a batch; excluded and dot names are dropped.
	pending := map[string]perms.Scope{}
	e.route(fsnotify.Event{Name: "/sd/x/supervise/control", Op: fsnotify.Create}, pending)
	e.route(fsnotify.Event{Name: "/sd/x/log/event", Op: fsnotify.Create}, pending)
	e.route(fsnotify.Event{Name: "/sd/s6rc-oneshot-runner/supervise", Op: fsnotify.Create}, pending)
	e.route(fsnotify.Event{Name: "/sd/.gateway-x.tmp/supervise", Op: fsnotify.Create}, pending)
	if len(pending) != 1 || pending["x"] != perms.ScopeAll {
		t.Errorf("merged pending %v, want x=ScopeAll only", pending)
	}
}
