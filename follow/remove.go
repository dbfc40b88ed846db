package follow

import (
	"context"
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
	// past StopTimeout is looked at again, until they are gone.
	reapRetry = 5 * time.Second
	// exitWait is how long a batch waits for its supervisors to exit once
	// told to: one slower than that is held back, looked at again a second
	// later, and does not hold up the others (their names, and room under
	// the cap).
	exitWait = 250 * time.Millisecond
	// heldRetry is how often a held-back removal is looked at again
	// within StopTimeout of being told to exit.
	heldRetry = time.Second
	// listenWait bounds how long a removal waits for the slot's
	// supervisors to listen before renaming it out (renameOut).
	listenWait = 3 * time.Second
)

// removal is one removed slot between its rename out of the scandir and
// the deletion of its directory.
type removal struct {
	name string // the profile; "" for a directory left by a previous run
	gone string // the directory it was renamed to (GonePrefix...)
	gen  uint64 // the scan generation it was renamed out at
	// told: when its supervisors were first told to exit (zero: not
	// yet); one that still runs StopTimeout later is logged.
	told time.Time
	// keep: a slot s6-svscan never supervised (verify.go), whose
	// directory is kept once nothing runs in it, and keeps counting
	// against the cap.
	keep bool
}

// A slot is removed without s6-svscanctl -n (prune): s6-svscan 2.13.1
// prunes every service its last scan did not reach, and a scan can stop
// early (a service renamed away between readdir and stat, a name whose
// old supervisor still runs: "old service ... still exists, waiting").
// In the container attack suite a prune after such a scan killed the
// supervisors of perm-watcher, profile-follower and a static service.
// So root does what a prune would do, for its own slots only, in batches
// (every slot queued while the previous batch was handled goes in the next
// one: a churn that deletes 400 profiles costs a few scans, not 400):
//
//  0. wait (at most listenWait) until the slots' supervisors listen: one
//     s6-svscan forked in the scan after the slot was made may not have
//     done its chdir yet (see renameOut);
//  1. `d` to each slot's supervisor; wait until supervise/status says down;
//  2. rename the slots out of the scandir (to dot names, which s6-svscan
//     ignores), all between the same two scans, and run a whole scan
//     (scan.go): once
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
//     in one walk of /proc that no root process runs in the directories any
//     more (one spawned just before the rename may not listen yet: that
//     slot is held back and goes through 3 again), and delete them;
//  5. only then may a slot of the same name be made again, and only then
//     does the removed slot stop counting against the cap.
//
// Keeping the directory (and so its inode) until then matters because
// s6-svscan knows services by device and inode: a new slot that got the
// inode of one it still remembers would be taken for the old one (seen
// with a create/delete churn: a new slot without a supervisor).

// startRemoval queues the slot of profile name for removal: the remover
// (renameOut, then reaper) takes it with the next batch.
func (r *root) startRemoval(name string) {
	r.unwatchExits(name)
	r.removing[name] = true
	delete(r.applied, name)
	r.remQ.put(name)
}

// remover runs steps 0 to 2 of a removal, a batch at a time, until ctx ends.
func (r *root) remover(ctx context.Context) {
	for {
		names, ok := r.remQ.take(ctx, 0)
		if !ok {
			return
		}
		r.renameOut(ctx, names)
	}
}

// renameOut stops the slots of names and renames them out of the scandir,
// all in one change between two scans, then hands them to the reaper.
func (r *root) renameOut(ctx context.Context, names []string) {
	start := time.Now()
	dirs := make([]string, len(names))
	var sups []string
	for i, n := range names {
		dirs[i] = filepath.Join(r.cfg.Scandir, slot.DirName(n))
		sups = append(sups, dirs[i], filepath.Join(dirs[i], slot.LogDir))
	}
	// Every slot present has been through a scan (apply publishes, then
	// scans, then removes), so its two supervisors are on their way:
	// forked during the scan, each chdirs into the slot and opens its
	// control FIFO afterwards, up to a second later on a loaded machine.
	// Renamed out before that, a supervisor fails ("unable to chdir to
	// gateway-<name>"), and s6-svscan restarts it a second later in a scan
	// of its own, which root's gate cannot keep apart from its renames
	// (scan.go). Under a create/delete churn those scans chained, and s6
	// 2.13.1 lost track of services: static ones got a second supervisor
	// ("another instance ... already running"). Slots whose supervisors
	// never come (s6-svscan refused them) cost this wait once per batch.
	quiet := awaitListeners(ctx, sups, time.Now().Add(listenWait), 10*time.Millisecond)
	down := stopServices(ctx, dirs, r.cfg.StopTimeout, 5*time.Millisecond)
	if ctx.Err() != nil {
		// Stopping: the slots stay in the scandir, and the next run's
		// first snapshot removes them again.
		return
	}
	if len(quiet) > 0 {
		r.log.Debug().Strs("paths", quiet).Dur("waited", time.Since(start)).
			Msg("removed slots' supervisors never listened: renaming them out anyway")
	}
	var out []removal
	var failed []string
	gen, _ := r.gate.change(func() error {
		for i, d := range dirs {
			gone := filepath.Join(r.cfg.Scandir, GonePrefix+strconv.FormatUint(goneSeq.Add(1), 10))
			if err := os.Rename(d, gone); err != nil {
				r.log.Error().Err(err).Str("profile", names[i]).Str("path", d).Msg("slot not removed: its name stays taken until the next snapshot asks again")
				failed = append(failed, names[i])
				continue
			}
			r.gone.Add(1)
			out = append(out, removal{name: names[i], gone: gone})
		}
		return nil
	})
	for i := range out {
		out[i].gen = gen
	}
	var notDown []string
	for i, ok := range down {
		if !ok {
			notDown = append(notDown, names[i])
		}
	}
	ev := r.log.Info()
	if len(notDown) > 0 {
		ev = r.log.Warn().Strs("not_down", notDown)
	}
	ev.Strs("profiles", names).Int("removed", len(out)).Dur("duration_ms", time.Since(start)).Msg("slots removed")
	r.reapQ.put(out...)
	tell(ctx, r.removed, len(names))
	if len(failed) > 0 {
		tell(ctx, r.reaped, failed) // nothing more to wait for
	}
}

// tell sends v to the loop on ch, unless ctx ends first (the loop is gone).
func tell[T any](ctx context.Context, ch chan<- T, v T) {
	select {
	case ch <- v:
	case <-ctx.Done():
	}
}

// reaper runs steps 3 to 5 of a removal, a batch at a time, until ctx
// ends. A removal whose supervisor still runs is held back and looked at
// again with the next batch, or after heldRetry (reapRetry once it has run
// StopTimeout past being told to exit).
func (r *root) reaper(ctx context.Context) {
	var held []removal
	for {
		wait := time.Duration(0)
		for i, rm := range held {
			w := heldRetry
			if time.Since(rm.told) > r.cfg.StopTimeout {
				w = reapRetry
			}
			if i == 0 || w < wait {
				wait = w
			}
		}
		got, ok := r.reapQ.take(ctx, wait)
		if !ok {
			return
		}
		batch := append(held, got...)
		var since uint64
		for _, rm := range got {
			since = max(since, rm.gen)
		}
		for len(got) > 0 {
			err := r.gate.scanSince(since)
			if err == nil {
				break
			}
			// Telling the supervisors to exit now could have s6-svscan
			// restart them (see above): wait for a scan that is over.
			r.log.Warn().Err(err).Int("slots", len(got)).Dur("retry_in", reapRetry).Msg("scan failed: removed slots' supervisors are told to exit once one is over")
			if !pause(ctx, reapRetry) {
				return
			}
		}
		var freed []string
		held, freed = r.reap(ctx, batch)
		if ctx.Err() != nil {
			return
		}
		if len(freed) > 0 {
			tell(ctx, r.reaped, freed)
		}
	}
}

// reap tells the supervisors still listening on the control FIFOs of the
// batch's removed slot directories to exit ("dx", as s6-svc -dx), waits
// (exitWait) until none listens and no root process runs in them any more,
// and deletes them. It returns the removals it could not finish (held:
// their directories are kept, for a supervisor whose directory is gone can
// no longer be told anything, and it still counts against s6-svscan's
// service limit), and the names of those it did (freed: their names may be
// used again). When ctx ends it returns early, deleting nothing more: the
// directories keep their dot names, and the next run deletes them (Root).
func (r *root) reap(ctx context.Context, batch []removal) (held []removal, freed []string) {
	dirsOf := func(rm removal) [2]string { return [2]string{rm.gone, filepath.Join(rm.gone, slot.LogDir)} }
	var dirs []string
	now := time.Now()
	for i, rm := range batch {
		d := dirsOf(rm)
		dirs = append(dirs, d[0], d[1])
		if rm.told.IsZero() {
			batch[i].told = now
		}
		if rm.keep && (listens(d[0]) || listens(d[1])) {
			// A slot made again only because its supervisors came late
			// (a very loaded machine): s6-svscan did take it, no entry
			// of its outlives it, and its directory can go.
			batch[i].keep = false
		}
	}
	listening := r.tellExit(ctx, dirs, now.Add(exitWait))
	if !pause(ctx, reapGrace) {
		return batch, nil
	}
	// Those slower than exitWait have had reapGrace more: look again,
	// before the scan, whose "z" reaps the ones gone by then.
	for d := range listening {
		if !listens(d) {
			delete(listening, d)
		}
	}
	checked := time.Now()
	// A scan of our own reaps the supervisors now ("z") if s6-svscan has
	// not yet: their entries go before their inodes can be reused.
	if err := r.gate.scanSince(r.gate.generation()); err != nil {
		r.log.Warn().Err(err).Int("slots", len(batch)).Msg("scan failed before removed slots' directories are deleted")
	}
	// A supervisor s6-svscan spawned just before the rename may be in the
	// directory without listening yet (s6.RootProcsIn): deleting the
	// directory then would leave it running there for ever.
	real := make([]string, 0, len(dirs))
	for _, d := range dirs {
		real = append(real, r.realPath(d))
	}
	procs, err := s6.RootProcsByDir(r.cfg.Proc, real)
	if err != nil {
		r.log.Warn().Err(err).Str("path", r.cfg.Proc).Msg("cannot look for supervisors still running in removed slots: deleting them on the control FIFOs' word")
		procs = nil
	}
	for _, rm := range batch {
		d := dirsOf(rm)
		pids := append(procs[r.realPath(d[0])], procs[r.realPath(d[1])]...)
		if listening[d[0]] || listening[d[1]] || len(pids) > 0 {
			held = append(held, rm)
			if checked.Sub(rm.told) > r.cfg.StopTimeout {
				var still []string
				for _, x := range d {
					if listening[x] {
						still = append(still, x)
					}
				}
				pid, _ := servicePid(d[0])
				logPid, _ := servicePid(d[1])
				r.log.Warn().Ints("pids", pids).Strs("listening", still).Uint64("service_pid", pid).Uint64("logger_pid", logPid).
					Str("path", rm.gone).Dur("retry_in", reapRetry).
					Msg("a supervisor still runs in a removed slot: its directory is kept (a dot name: s6-svscan ignores it) and looked at again")
			} else {
				r.log.Debug().Ints("pids", pids).Str("path", rm.gone).Msg("a supervisor still runs in a removed slot (exiting, or spawned and not listening yet): looked at again")
			}
			continue
		}
		if rm.keep {
			continue
		}
		var err error
		for i := 0; i < 5; i++ {
			// s6-supervise may still be writing supervise/status while
			// the tree goes: retry a directory that refilled.
			if err = os.RemoveAll(rm.gone); err == nil {
				break
			}
			time.Sleep(10 * time.Millisecond)
		}
		if err != nil {
			r.log.Warn().Err(err).Str("path", rm.gone).Msg("removed slot's directory not deleted (a dot name: s6-svscan ignores it)")
		}
		// Nothing runs there: it no longer counts against s6-svscan's
		// limit.
		r.gone.Add(-1)
		if rm.name != "" {
			freed = append(freed, rm.name)
		}
	}
	return held, freed
}

// tellExit sends "dx" to every supervisor listening on dirs' control FIFOs
// (again, every 200 ms, to one still listening, or that started listening
// since) until none listens, deadline, or ctx ends. It returns those that
// still listened then.
func (r *root) tellExit(ctx context.Context, dirs []string, deadline time.Time) map[string]bool {
	told := map[string]time.Time{}
	// Polling every FIFO of a big batch every 10 ms would cost root more
	// than the supervisors' exits it waits for.
	poll := min(10*time.Millisecond*time.Duration(1+len(dirs)/64), 100*time.Millisecond)
	for {
		listening := map[string]bool{}
		for _, d := range dirs {
			if listens(d) {
				listening[d] = true
			}
		}
		if len(listening) == 0 {
			return nil
		}
		for d := range listening {
			if t, ok := told[d]; ok && time.Since(t) < 200*time.Millisecond {
				continue
			}
			told[d] = time.Now()
			if err := control(d, "dx"); err != nil && err != errNoSupervisor {
				r.log.Warn().Err(err).Str("path", d).Msg("cannot tell a removed slot's supervisor to exit")
			}
		}
		if time.Now().After(deadline) || !pause(ctx, poll) {
			return listening
		}
	}
}

// finishRemovals counts n slots just taken out of the scandir (the reaper
// runs the scan that makes s6-svscan drop them).
func (r *root) finishRemovals(n int) {
	r.count(func(s *Stats) { s.Removed += n })
}

// finishReap frees removed slots' names (they may be made again) and picks
// up the latest snapshot if none is pending.
func (r *root) finishReap(names []string) {
	for _, n := range names {
		delete(r.removing, n)
	}
	if r.pending == nil {
		// A profile removed and re-created meanwhile waits for this.
		if d := r.box.take(); d != nil {
			r.pending = d
		}
	}
}
