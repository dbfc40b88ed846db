package follow

import (
	"os"
	"path/filepath"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/hermes-s6/hermes-s6/s6"
	"github.com/hermes-s6/hermes-s6/slot"
)

// goneSeq numbers the directories removed slots are renamed to.
var goneSeq atomic.Uint64

// GonePrefix names a removed slot's directory between its removal from the
// scandir and its deletion (a dot name: s6-svscan ignores it).
const GonePrefix = slot.TmpPrefix + "gone-"

// Removal timing (variables for tests).
var (
	// reapGrace is how long a removed slot's directory is kept after its
	// supervisors stopped listening: until s6-svscan has reaped them and
	// forgotten the service's device and inode (see reap).
	reapGrace = time.Second
	// reapRetry is how often a removed slot whose supervisors still run
	// is looked at again, until they are gone.
	reapRetry = 5 * time.Second
	// listenWait bounds how long a removal waits for the slot's
	// supervisors to listen before renaming it out (startRemoval).
	listenWait = 3 * time.Second
)

// A slot is removed without s6-svscanctl -n (prune): s6-svscan 2.13.1
// prunes every service its last scan did not reach, and a scan can stop
// early (a service renamed away between readdir and stat, a name whose
// old supervisor still runs: "old service ... still exists, waiting").
// In the container attack suite a prune after such a scan killed the
// supervisors of perm-watcher, profile-follower and a static service.
// So root does what a prune would do, for its own slot only:
//
//  0. wait (at most listenWait) until the slot's supervisors listen: one
//     s6-svscan forked in the scan after the slot was made may not have
//     done its chdir yet (see startRemoval);
//  1. `d` to the slot's supervisor; wait until supervise/status says down;
//  2. rename the slot out of the scandir (to a dot name, which s6-svscan
//     ignores), between two scans, and run a whole scan (scan.go): once
//     it is over, s6-svscan holds the service as inactive and no longer
//     restarts its supervisors when they exit. Telling them to exit
//     before that had s6-svscan restart them in a directory that is gone
//     ("unable to chdir to gateway-<name>", in a loop under churn), and
//     s6 2.15 loses a service whose supervisor and logger both exit twice
//     within a second or so: no restart, no scan brings it back, its entry
//     is never freed;
//  3. `dx` to each supervisor still listening (the logger's s6-log goes
//     down, then both s6-supervise exit);
//  4. once none listens, wait reapGrace, run a scan (its "z" reaps), check
//     that no root process runs in the directory any more (one spawned
//     just before the rename may not listen yet: back to 3), and delete it;
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
		// Every slot present has been through a scan (apply publishes,
		// then scans, then removes), so its two supervisors are on their
		// way: forked during the scan, each chdirs into the slot and
		// opens its control FIFO afterwards, up to a second later on a
		// loaded machine. Renamed out before that, a supervisor fails
		// ("unable to chdir to gateway-<name>"), and s6-svscan restarts
		// it a second later in a scan of its own, which root's gate
		// cannot keep apart from its renames (scan.go). Under a
		// create/delete churn those scans chained, and s6 2.13.1 lost
		// track of services: static ones got a second supervisor
		// ("another instance ... already running"). A slot whose
		// supervisors never come (s6-svscan refused it) costs this wait
		// once.
		sups := []string{dir, filepath.Join(dir, slot.LogDir)}
		if !awaitListeners(sups, time.Now().Add(listenWait), 10*time.Millisecond) {
			r.log.Debug().Str("profile", name).Str("path", dir).Dur("waited", time.Since(start)).
				Msg("a removed slot's supervisors never listened: renaming it out anyway")
		}
		down := stopService(dir, r.cfg.StopTimeout, 5*time.Millisecond)
		gone := filepath.Join(r.cfg.Scandir, GonePrefix+strconv.FormatUint(goneSeq.Add(1), 10))
		gen, err := r.gate.change(func() error { return os.Rename(dir, gone) })
		ev := r.log.Info()
		if err != nil {
			ev = r.log.Error().Err(err)
		} else {
			r.gone.Add(1)
		}
		ev.Str("profile", name).Str("path", dir).Bool("was_down", down).Dur("duration_ms", time.Since(start)).Msg("slot removed")
		<-r.remSem
		r.removed <- name // counted by the loop
		if err != nil {
			r.reaped <- name // nothing more to wait for
			return
		}
		r.collect(name, gone, gen)
	}()
}

// collect reaps the removed slot directory gone (counted in r.gone),
// renamed out at scan generation gen, until it is deleted, then frees the
// name and makes room for a new slot. name is empty for a directory left
// by a previous run of this longrun.
func (r *root) collect(name, gone string, gen uint64) {
	for {
		err := r.gate.scanSince(gen)
		if err == nil {
			break
		}
		// Telling the supervisors to exit now could have s6-svscan
		// restart them (see above): wait for a scan that is over.
		r.log.Warn().Err(err).Str("path", gone).Dur("retry_in", reapRetry).Msg("scan failed: a removed slot's supervisors are told to exit once one is over")
		time.Sleep(reapRetry)
	}
	for !r.reap(gone, time.Now().Add(r.cfg.StopTimeout)) {
		time.Sleep(reapRetry)
	}
	r.gone.Add(-1)
	r.reaped <- name
}

// reap tells the supervisors still listening on the control FIFOs of the
// removed slot directory gone to exit ("dx", as s6-svc -dx), waits until
// none listens and no root process runs in it any more, then deletes gone.
// It reports false when one still ran at deadline: the directory is kept
// (a supervisor whose directory is gone can no longer be told anything,
// and it still counts against s6-svscan's service limit).
func (r *root) reap(gone string, deadline time.Time) bool {
	dirs := []string{gone, filepath.Join(gone, slot.LogDir)}
	for {
		if !r.tellExit(dirs, deadline) {
			return false
		}
		time.Sleep(reapGrace)
		// A scan of our own reaps the supervisors now ("z") if s6-svscan
		// has not yet: their entry goes before their inode can be reused.
		if err := r.gate.scanSince(r.gate.generation()); err != nil {
			r.log.Warn().Err(err).Str("path", gone).Msg("scan failed before a removed slot's directory is deleted")
		}
		// A supervisor s6-svscan spawned just before the rename may be in
		// the directory without listening yet (s6.RootProcsIn): deleting
		// the directory then would leave it running there for ever.
		pids, err := s6.RootProcsIn(r.cfg.Proc, r.realPath(dirs[0]), r.realPath(dirs[1]))
		if err != nil {
			r.log.Warn().Err(err).Str("path", r.cfg.Proc).Msg("cannot look for supervisors still running in a removed slot: deleting it on the control FIFOs' word")
			break
		}
		if len(pids) == 0 {
			break
		}
		if time.Now().After(deadline) {
			r.log.Warn().Ints("pids", pids).Str("path", gone).Dur("retry_in", reapRetry).
				Msg("root processes still run in a removed slot: its directory is kept (a dot name: s6-svscan ignores it) and looked at again")
			return false
		}
		r.log.Debug().Ints("pids", pids).Str("path", gone).Msg("a supervisor runs in a removed slot without listening yet: waiting for it")
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
	return true // nothing runs there: it no longer counts against s6-svscan's limit
}

// tellExit sends "dx" to every supervisor listening on dirs' control FIFOs
// (again to one that started listening since) until none listens. It
// reports false if one still listened at deadline.
func (r *root) tellExit(dirs []string, deadline time.Time) bool {
	told := map[string]time.Time{}
	for {
		var listening []string
		for _, d := range dirs {
			if control(d, "") != errNoSupervisor {
				listening = append(listening, d)
			}
		}
		if len(listening) == 0 {
			return true
		}
		for _, d := range listening {
			if t, ok := told[d]; ok && time.Since(t) < 200*time.Millisecond {
				continue
			}
			told[d] = time.Now()
			if err := control(d, "dx"); err != nil && err != errNoSupervisor {
				r.log.Warn().Err(err).Str("path", d).Msg("cannot tell a removed slot's supervisor to exit")
			}
		}
		if time.Now().After(deadline) {
			r.log.Warn().Strs("paths", listening).Dur("retry_in", reapRetry).
				Msg("a removed slot's supervisor still runs: its directory is kept (a dot name: s6-svscan ignores it) and looked at again")
			return false
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// finishRemovals counts the slots just renamed out of the scandir (their
// goroutines run the scan that makes s6-svscan drop them: collect).
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
