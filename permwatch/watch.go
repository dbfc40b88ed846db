package permwatch

import (
	"errors"
	"syscall"

	"github.com/fsnotify/fsnotify"

	"github.com/hermes-s6/hermes-s6/perms"
)

// Injection seams, replaced only by tests to simulate exhausted inotify
// limits (the machine-wide sysctls cannot be lowered while other tests run):
// newWatcher creates the inotify instance (fails with EMFILE at
// max_user_instances), addWatchFn adds one watch (fails with ENOSPC at
// max_user_watches).
var (
	newWatcher = func() (*fsnotify.Watcher, error) { return fsnotify.NewBufferedWatcher(eventBuffer) }
	addWatchFn = func(w *fsnotify.Watcher, path string) error { return w.Add(path) }
)

// watchCount is the number of inotify watches held (0 or 1).
func (e *engine) watchCount() int {
	if e.w == nil {
		return 0
	}
	return len(e.w.WatchList())
}

func (e *engine) watchError(err error) bool {
	if errors.Is(err, fsnotify.ErrEventOverflow) {
		e.log.Warn().Err(err).Msg("inotify queue overflowed: events were lost, doing a full pass (raise /proc/sys/fs/inotify/max_queued_events if it recurs)")
	} else {
		e.log.Warn().Err(err).Msg("inotify error: doing a full pass")
	}
	return true
}

// dropWatcher gives up the inotify instance (its channels closed).
func (e *engine) dropWatcher(err error) {
	if e.w != nil {
		e.w.Close()
		e.w = nil
	}
	e.watchPath = ""
	e.setDegraded(err, limitNone)
}

// ensureWatch makes sure the one watch is on the open scandir, creating
// the inotify instance if needed; in degraded mode it is called at every
// tick, and leaves degraded mode when it succeeds.
func (e *engine) ensureWatch() {
	if e.sd == nil {
		return
	}
	if e.w == nil {
		w, err := newWatcher()
		if err != nil {
			limit := limitNone
			if errors.Is(err, syscall.EMFILE) {
				limit = limitInstances
			}
			e.setDegraded(err, limit)
			return
		}
		e.w = w
	}
	p := e.sd.ProcPath()
	if e.watchPath == p {
		return
	}
	if err := addWatchFn(e.w, p); err != nil {
		switch {
		case errors.Is(err, syscall.ENOSPC):
			e.setDegraded(err, limitWatches)
		case errors.Is(err, syscall.EMFILE):
			e.setDegraded(err, limitInstances)
		default:
			e.setDegraded(err, limitNone)
		}
		return
	}
	e.watchPath = p
	if e.degraded {
		e.degraded, e.warned = false, false
		e.log.Info().Str("path", e.scandir).Msg("inotify watch added: leaving degraded mode")
	}
}

// openScandir opens the scandir by path; an already open one is kept if
// it is the same directory, so that its watch stays.
func (e *engine) openScandir() error {
	sd, err := perms.OpenScandir(e.scandir)
	if err != nil {
		return err
	}
	if e.sd != nil && e.sd.SameDir(sd) && e.watchPath != "" {
		sd.Close()
		return nil
	}
	if e.sd != nil {
		if e.w != nil && e.watchPath != "" {
			_ = e.w.Remove(e.watchPath)
		}
		e.watchPath = ""
		e.sd.Close()
	}
	e.sd = sd
	return nil
}
