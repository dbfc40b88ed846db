package permwatch

import (
	"strings"

	"github.com/fsnotify/fsnotify"
)

// route maps an event to the scandir entry it names and queues it. It
// returns true when a full pass is needed.
func (e *engine) route(ev fsnotify.Event, pending map[string]bool) bool {
	e.stats.Events++
	if e.watchPath == "" {
		return false
	}
	if ev.Name == e.watchPath {
		if ev.Has(fsnotify.Remove) || ev.Has(fsnotify.Rename) {
			// The scandir itself went away or was moved: the full pass
			// opens the path again and watches what is there.
			e.watchPath = ""
			return true
		}
		// An attribute change of the scandir itself (a chmod or touch
		// loop): nothing below it changed, so nothing is re-read.
		e.stats.ScandirAttr++
		return false
	}
	name, ok := strings.CutPrefix(ev.Name, e.watchPath+"/")
	if !ok || name == "" || strings.Contains(name, "/") || staging(name) {
		return false
	}
	// A write or an attribute change of an entry changes nothing that
	// s6-supervise made inside it.
	if !ev.Has(fsnotify.Create | fsnotify.Remove | fsnotify.Rename) {
		return false
	}
	e.stats.Queued++
	pending[name] = true
	return false
}

// staging reports whether the scandir entry name is someone's staging area
// (or s6-svscan's own .s6-svscan): s6-svscan ignores dot names, and so does
// perm-watcher. The hermes CLI builds its slot under .gateway-<p>.tmp,
// seeding its own skeleton check-then-create (a plain mkdir that fails on
// EEXIST); anything made in there by someone else, even for a moment, makes
// its registration fail (#15: EEXIST on event/, EACCES in a root 0700
// supervise/), and a user's `mkdir .x && rm -rf .x` fails with "Directory
// not empty". The slot is looked at when it is renamed to its real name.
func staging(name string) bool { return strings.HasPrefix(name, ".") }
