package permwatch

import (
	"testing"

	"github.com/fsnotify/fsnotify"
)

// route names the scandir entry an event concerns (the one watch is on the
// scandir, through /proc/self/fd/N), ignores writes and attribute changes,
// asks for a full pass only when the scandir itself goes away, and re-reads
// nothing on an attribute change of the scandir (F5). Dot names are
// staging areas and never queued (#15).
func TestRoute(t *testing.T) {
	cfg := &Config{Exclude: DefaultExcludes}
	const w = "/proc/self/fd/7"
	e := &engine{cfg: cfg, scandir: "/sd", watchPath: w}
	cases := []struct {
		name  string
		op    fsnotify.Op
		queue bool
		full  bool
	}{
		{w + "/x", fsnotify.Create, true, false},
		{w + "/x", fsnotify.Rename, true, false},
		{w + "/x", fsnotify.Remove, true, false},
		{w + "/x", fsnotify.Chmod, false, false},
		{w + "/x", fsnotify.Write, false, false},
		{w + "/.x.tmp", fsnotify.Create, false, false}, // someone's staging area: never touched (#15)
		{w + "/.x.tmp", fsnotify.Rename, false, false}, // renamed out: its new name has its own event
		{w + "/.s6-svscan", fsnotify.Create, false, false},
		{w + "/x/supervise", fsnotify.Create, false, false}, // no such watch: never trusted
		{"/sd/x", fsnotify.Create, false, false},            // not the watch's name
		{w, fsnotify.Chmod, false, false},
		{w, fsnotify.Remove, false, true},
		{w, fsnotify.Rename, false, true},
	}
	for _, c := range cases {
		e.watchPath = w
		pending := map[string]bool{}
		full := e.route(fsnotify.Event{Name: c.name, Op: c.op}, pending)
		queued := len(pending) == 1
		if full != c.full || queued != c.queue || len(pending) > 1 {
			t.Errorf("%s %v: full %v, pending %v; want full %v, queued %v", c.name, c.op, full, pending, c.full, c.queue)
		}
	}
	if e.stats.ScandirAttr != 1 {
		t.Errorf("scandir attribute changes counted %d, want 1", e.stats.ScandirAttr)
	}
}
