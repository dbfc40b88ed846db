package permwatch

import (
	"fmt"
)

// Which inotify limit a failure points at.
const (
	limitNone      = ""
	limitWatches   = "max_user_watches"
	limitInstances = "max_user_instances"
)

// setDegraded switches to periodic full passes until the watch can be
// added again, and logs one error per episode that names the limit and the
// fix.
func (e *engine) setDegraded(err error, limit string) {
	e.degraded = true
	if e.warned {
		return
	}
	e.warned = true
	every := e.cfg.DegradedInterval.String()
	var msg string
	switch limit {
	case limitWatches, limitInstances:
		what := "an inotify watch cannot be added"
		if limit == limitInstances {
			what = "an inotify instance cannot be created"
		}
		msg = fmt.Sprintf("degraded mode: %s (%v): the per-user limit /proc/sys/fs/inotify/%s is reached "+
			"(it is the kernel's, shared by every container and host process of this UID; perm-watcher itself needs "+
			"one instance and one watch). perm-watcher keeps working by a full pass every %s instead of reacting at once, "+
			"and leaves degraded mode as soon as the watch can be added. "+
			"Fix: on the host, raise it, e.g. `sysctl -w fs.inotify.%s=%d` (persist it in /etc/sysctl.d/)",
			what, err, limit, every, limit, map[string]int{limitWatches: 524288, limitInstances: 1024}[limit])
	default:
		msg = fmt.Sprintf("degraded mode: inotify failed (%v); perm-watcher keeps working by a full pass every %s and tries again each time", err, every)
	}
	e.log.Error().Err(err).Str("interval", every).Str("limit", limit).Msg(msg)
}
