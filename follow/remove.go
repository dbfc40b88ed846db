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
	// exitAfter is how long after a removed slot is renamed out (and the
	// rescan asked for) root tells its supervisors to exit: time for
	// s6-svscan to have rescanned, so that it does not restart them. When
	// it has not, it restarts a supervisor that cannot chdir into the
	// renamed slot ("unable to chdir to gateway-<name>"), which exits at
	// once: harmless, the name stays reserved. Measured on s6 2.13.1 with
	// 300 create/delete churns of one name and 60 deletions: 50 ms, 3
	// such lines, deletion p50 150-165 ms; 100 ms, 3 lines, 190-200 ms;
	// 200 ms, none, 300 ms.
	exitAfter = 100 * time.Millisecond
	// reapGrace is how long a removed slot's directory is kept after its
	// supervisors stopped listening: until s6-svscan has reaped them and
	// forgotten the service's device and inode (see reap).
	reapGrace = time.Second
	// reapRetry is how often a removed slot whose supervisors still run
	// is looked at again, until they are gone.
	reapRetry = 5 * time.Second
)

// A slot is removed without s6-svscanctl -n (prune): s6-svscan 2.13.1
// prunes every service its last scan did not reach, and a scan can stop
// early (a service renamed away between readdir and stat, a name whose
// old supervisor still runs: "old service ... still exists, waiting").
// In the container attack suite a prune after such a scan killed the
// supervisors of perm-watcher, profile-follower and a static service.
// So root does what a prune would do, for its own slot only:
//
//  1. `d` to the slot's supervisor; wait until supervise/status says down;
//  2. rename the slot out of the scandir (to a dot name, which s6-svscan
//     ignores) and ask for a rescan (`a`), after which s6-svscan no
//     longer restarts the slot's supervisors when they exit;
//  3. after exitAfter, `dx` to each supervisor still listening (the
//     logger's s6-log goes down, then both s6-supervise exit);
//  4. once none listens, wait reapGrace and delete the directory;
//  5. only then may a slot of the same name be made again, and only then
//     does the removed slot stop counting against the cap.
//
// Keeping the directory (and so its inode) until then matters because
// s6-svscan knows services by device and inode: a new slot that got the
// inode of one it still remembers would be taken for the old one (seen
// with a create/delete churn: a new slot without a supervisor).

// startRemoval runs steps 1 and 2 of a removal in a goroutine, and the
// rest (collect) once the loop has asked for the rescan.
func (r *root) startRemoval(name string) {
	r.removing[name] = true
	delete(r.applied, name)
	dir := filepath.Join(r.cfg.Scandir, slot.DirName(name))
	go func() {
		r.remSem <- struct{}{}
		start := time.Now()
		down := stopService(dir, r.cfg.StopTimeout, 5*time.Millisecond)
		gone := filepath.Join(r.cfg.Scandir, GonePrefix+strconv.FormatUint(goneSeq.Add(1), 10))
		err := os.Rename(dir, gone)
		ev := r.log.Info()
		if err != nil {
			ev = r.log.Error().Err(err)
		} else {
			r.gone.Add(1)
		}
		ev.Str("profile", name).Str("path", dir).Bool("was_down", down).Dur("duration_ms", time.Since(start)).Msg("slot removed")
		<-r.remSem
		r.removed <- name // the loop asks for the rescan
		if err != nil {
			r.reaped <- name // nothing more to wait for
			return
		}
		r.collect(name, gone)
	}()
}

// collect reaps the removed slot directory gone (counted in r.gone) until
// it is deleted, then frees the name and makes room for a new slot. name
// is empty for a directory left by a previous run of this longrun.
func (r *root) collect(name, gone string) {
	time.Sleep(exitAfter)
	for !r.reap(gone, time.Now().Add(r.cfg.StopTimeout)) {
		time.Sleep(reapRetry)
	}
	r.gone.Add(-1)
	r.reaped <- name
}

// reap tells the supervisors still listening on the control FIFOs of the
// removed slot directory gone to exit ("dx", as s6-svc -dx), waits until
// none listens, then reapGrace, then deletes gone. It reports false when a
// supervisor still listened at deadline: the directory is kept (a
// supervisor whose directory is gone can no longer be told anything, and
// it still counts against s6-svscan's service limit).
func (r *root) reap(gone string, deadline time.Time) bool {
	dirs := []string{gone, filepath.Join(gone, slot.LogDir)}
	told := false
	for {
		var listening []string
		for _, d := range dirs {
			if control(d, "") != errNoSupervisor {
				listening = append(listening, d)
			}
		}
		if len(listening) == 0 {
			break
		}
		if !told {
			for _, d := range listening {
				if err := control(d, "dx"); err != nil && err != errNoSupervisor {
					r.log.Warn().Err(err).Str("path", d).Msg("cannot tell a removed slot's supervisor to exit")
				}
			}
			told = true
		}
		if time.Now().After(deadline) {
			r.log.Warn().Strs("paths", listening).Dur("retry_in", reapRetry).
				Msg("a removed slot's supervisor still runs: its directory is kept (a dot name: s6-svscan ignores it) and looked at again")
			return false
		}
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(reapGrace)
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

// finishRemovals collects the slots just renamed out of the scandir and
// asks s6-svscan to rescan, once for all of them: from then on it does not
// restart their supervisors, which collect tells to exit.
func (r *root) finishRemovals() {
	n := 1 // the one the loop received
	for more := true; more; {
		select {
		case <-r.removed:
			n++
		default:
			more = false
		}
	}
	r.count(func(s *Stats) { s.Removed += n })
	if err := r.cfg.Rescan(r.cfg.Scandir); err != nil {
		r.log.Error().Err(err).Str("path", r.cfg.Scandir).Msg("rescan failed: s6-svscan may restart a removed slot's supervisors until its next scan")
	}
}

// finishReap frees a removed slot's name (it may be made again) and picks
// up the latest snapshot if none is pending.
func (r *root) finishReap(name string) {
	if name != "" {
		delete(r.removing, name)
	}
	if r.pending == nil {
		// A profile removed and re-created meanwhile waits for this.
		if d := r.box.take(); d != nil {
			r.pending = d
		}
	}
}
