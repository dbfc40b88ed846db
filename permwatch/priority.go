package permwatch

import (
	"fmt"
	"os"
	"strconv"

	"golang.org/x/sys/unix"
)

// DefaultNice is perm-watcher's scheduling priority as root. It sits on the
// path of every registration: it must make a new slot's supervise/ and
// control before the s6-supervise that s6-svscan starts for it makes them
// as root (the user's first s6-svc then gets "Permission denied"), and on a
// loaded machine a nice-0 perm-watcher sometimes wakes up too late
// (BENCHMARKS.md: the 1,000-registration table). Its CPU use stays small:
// one watch, bounded work per event.
const DefaultNice = -10

// SetNice gives every thread of this process the nice value n (Linux's
// setpriority(PRIO_PROCESS) changes one thread; threads started later
// inherit it from the thread that starts them).
func SetNice(n int) error {
	tasks, err := os.ReadDir("/proc/self/task")
	if err != nil {
		return fmt.Errorf("cannot list this process's threads to set nice %d: %w", n, err)
	}
	for _, t := range tasks {
		tid, err := strconv.Atoi(t.Name())
		if err != nil {
			continue
		}
		if err := unix.Setpriority(unix.PRIO_PROCESS, tid, n); err != nil && err != unix.ESRCH {
			return fmt.Errorf("setpriority(thread %d, nice %d): %w", tid, n, err)
		}
	}
	return nil
}
