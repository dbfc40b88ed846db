package follow

import (
	"os"
	"path/filepath"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/hermes-s6/hermes-s6/slot"
)

// goneSeq numbers the directories removed slots are renamed to.
var goneSeq atomic.Uint64

// GonePrefix names a removed slot's directory between its removal from the
// scandir and its deletion (a dot name: s6-svscan ignores it).
const GonePrefix = slot.TmpPrefix + "gone-"

// Removal timing (variables for tests).
var (
	// nudgeAfter is how long the supervisors of a removed slot get to
	// exit after the prune before root tells them to itself.
	nudgeAfter = time.Second
	// reapRetry is how often a removed slot whose supervisors still run
	// is looked at again, until they are gone.
	reapRetry = 5 * time.Second
)

// startRemoval stops the slot name and takes it out of the scandir, in a
// goroutine: `d`, wait for down, rename out (the loop then prunes), wait
// for its supervisors to exit, delete.
func (r *root) startRemoval(name string) {
	r.removing[name] = true
	delete(r.applied, name)
	dir := filepath.Join(r.cfg.Scandir, slot.DirName(name))
	go func() {
		r.remSem <- struct{}{}
		start := time.Now()
		down := stopService(dir, r.cfg.StopTimeout, 5*time.Millisecond)
		// The slot leaves the scandir by a rename, not a delete: its
		// directory (and so its inode) lives on under a dot name until
		// its supervisors are gone. Deleted at once, its inode number
		// could be reused by the same profile's next slot, and s6-svscan,
		// which knows services by device and inode, would take the new
		// slot for the old one whose supervisors it is pruning: the new
		// slot would get no supervisor (seen with a create/delete churn).
		gone := filepath.Join(r.cfg.Scandir, GonePrefix+strconv.FormatUint(goneSeq.Add(1), 10))
		err := os.Rename(dir, gone)
		ev := r.log.Info()
		if err != nil {
			ev = r.log.Error().Err(err)
		} else {
			r.gone.Add(1)
		}
		ev.Str("profile", name).Str("path", dir).Bool("was_down", down).Dur("duration_ms", time.Since(start)).Msg("slot removed")
		r.removed <- name // the loop prunes now: the name is gone
		<-r.remSem
		if err == nil {
			r.collect(gone)
		}
	}()
}

// collect reaps the removed slot directory gone (counted in r.gone) until
// it is deleted, then makes room for a new slot.
func (r *root) collect(gone string) {
	for !r.reap(gone, time.Now().Add(r.cfg.StopTimeout)) {
		time.Sleep(reapRetry)
	}
	r.gone.Add(-1)
	select {
	case r.reaped <- struct{}{}:
	default:
	}
}

// reap deletes the removed slot directory gone once no supervisor listens
// on its control FIFOs, and reports whether it did. A supervisor still
// listening nudgeAfter after the prune is told to bring its service down
// and exit ("dx", as s6-svc -dx): s6-svscan 2.13.1 sometimes leaves a
// pruned slot's log/ supervisor running for ever when the same profile
// is deleted and re-created quickly (seen in the container attack suite's
// churn; 2.15.1 did not). The directory is never deleted while one
// listens: a supervisor whose directory is gone can no longer be told
// anything, and it still counts against s6-svscan's service limit.
func (r *root) reap(gone string, deadline time.Time) bool {
	dirs := []string{gone, filepath.Join(gone, slot.LogDir)}
	listening := func() []string {
		var l []string
		for _, d := range dirs {
			if control(d, "") != errNoSupervisor {
				l = append(l, d)
			}
		}
		return l
	}
	nudge := time.Now().Add(nudgeAfter)
	nudged := false
	for {
		l := listening()
		if len(l) == 0 {
			break
		}
		now := time.Now()
		if !nudged && now.After(nudge) {
			for _, d := range l {
				if err := control(d, "dx"); err != nil && err != errNoSupervisor {
					r.log.Warn().Err(err).Str("path", d).Msg("cannot tell a removed slot's supervisor to exit")
				}
			}
			r.log.Info().Strs("paths", l).Msg("a removed slot's supervisor outlived the prune: told it to exit (dx)")
			nudged = true
		}
		if now.After(deadline) {
			r.log.Warn().Strs("paths", l).Dur("retry_in", reapRetry).
				Msg("a removed slot's supervisor still runs: its directory is kept (a dot name: s6-svscan ignores it) and looked at again")
			return false
		}
		time.Sleep(10 * time.Millisecond)
	}
	var err error
	for i := 0; i < 5; i++ {
		// s6-supervise may still be writing supervise/status while the
		// tree goes: retry a directory that refilled.
		if err = os.RemoveAll(gone); err == nil {
			return true
		}
		time.Sleep(10 * time.Millisecond)
	}
	r.log.Warn().Err(err).Str("path", gone).Msg("removed slot's directory not deleted (a dot name: s6-svscan ignores it)")
	return true // nothing listens: it no longer counts against s6-svscan's limit
}

// finishRemovals collects finished removals and asks s6-svscan to prune
// their supervisors: after the directories are gone, which is the order in
// which s6 2.11 really prunes them.
func (r *root) finishRemovals(first string) {
	names := []string{first}
	for more := true; more; {
		select {
		case n := <-r.removed:
			names = append(names, n)
		default:
			more = false
		}
	}
	for _, n := range names {
		delete(r.removing, n)
		r.count(func(s *Stats) { s.Removed++ })
	}
	if err := r.cfg.Prune(r.cfg.Scandir); err != nil {
		r.log.Error().Err(err).Str("path", r.cfg.Scandir).Msg("prune failed: the removed slots' supervisors stay until the next one")
	}
	if r.pending == nil {
		// A profile removed and re-created meanwhile waits for this.
		if d := r.box.take(); d != nil {
			r.pending = d
		}
	}
}
