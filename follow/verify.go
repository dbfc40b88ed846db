package follow

import (
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"time"

	"github.com/hermes-s6/hermes-s6/s6"
	"github.com/hermes-s6/hermes-s6/slot"
)

// Verification timing (variables for tests).
var (
	// verifyEvery is how often new slots whose supervisors have not
	// listened yet are looked at. Only new slots are: once both of a slot's
	// supervisors have listened, root never polls it again, so an idle
	// container costs root nothing.
	verifyEvery = 500 * time.Millisecond
	// stuckAfter is how long after its publication a new slot may go
	// without both supervisors listening before root takes it for one
	// s6-svscan will never supervise, and makes it again.
	stuckAfter = 10 * time.Second
)

// A new slot is verified: root checks that both of its supervisors come
// up, because s6-svscan can take a new directory for a service it already
// holds, and then never supervises it. s6-svscan knows services by device
// and inode, not by name; an entry that outlives its directory (s6 2.13.1
// leaks the entries of services whose supervisors never started, and a
// scan that stops early leaves removed services active) is matched by the
// next directory that gets the freed inode, which the filesystem hands out
// again at once (ext4 and overlayfs reuse the lowest free inode). In CI
// under churn that left one slot without a supervisor 30 s after the churn
// (TestSealedChurn, s6 2.13.1). Waiting does not help: the entry is never
// freed. So a slot still without both supervisors stuckAfter after it was
// made, and without any root s6-supervise process for it either (one that
// runs but does not listen yet is only slow: a late one would chdir by
// name into the new directory), is renamed out and made again: the new
// directory gets a new inode
// while the old one still exists. The old one is never deleted while this
// process runs (deleting it would free that inode for the next slot), and
// it keeps counting against the cap, since s6-svscan may hold it for good.

// noteNew records the slot of name as just made: verified from now on.
func (r *root) noteNew(name string) {
	r.unverified[name] = time.Now()
}

// verify looks at the new slots not verified yet, forgets those whose
// supervisors both listen (or that went away), and makes again those that
// waited stuckAfter (the loop calls it every verifyEvery while any is left).
func (r *root) verify() {
	var stuck []string
	for name, since := range r.unverified {
		if _, ok := r.applied[name]; !ok || r.removing[name] {
			delete(r.unverified, name)
			continue
		}
		dir := filepath.Join(r.cfg.Scandir, slot.DirName(name))
		if listens(dir) && listens(filepath.Join(dir, slot.LogDir)) {
			delete(r.unverified, name)
			r.watchExits(name)
			continue
		}
		if time.Since(since) >= stuckAfter {
			stuck = append(stuck, name)
		}
	}
	if len(stuck) > 0 {
		stuck = r.withoutSupervisors(stuck)
	}
	if len(stuck) > 0 {
		r.remake(stuck)
	}
}

// withoutSupervisors returns those of names whose slot has no root
// s6-supervise at all (s6.RootSupervisorsOf); a slot whose supervisors run
// but do not listen yet is slow, not stuck, and is given stuckAfter more.
func (r *root) withoutSupervisors(names []string) []string {
	var svc []string
	for _, n := range names {
		svc = append(svc, slot.DirName(n), slot.DirName(n)+"/"+slot.LogDir)
	}
	running, err := s6.RootSupervisorsOf(r.cfg.Proc, svc)
	if err != nil {
		r.log.Warn().Err(err).Str("path", r.cfg.Proc).Msg("cannot look for the supervisors of new slots not supervised yet: taking them for stuck")
		return names
	}
	var out []string
	for _, n := range names {
		if running[slot.DirName(n)] || running[slot.DirName(n)+"/"+slot.LogDir] {
			r.unverified[n] = time.Now()
			continue
		}
		out = append(out, n)
	}
	return out
}

// remake renames the slots of names out of the scandir, to be made again
// by the next apply (with new directories, so new inodes), and hands the
// old directories to the reaper, which keeps them.
func (r *root) remake(names []string) {
	sort.Strings(names)
	var out []removal
	var remade []string
	gen, _ := r.gate.change(func() error {
		for _, name := range names {
			dir := filepath.Join(r.cfg.Scandir, slot.DirName(name))
			gone := filepath.Join(r.cfg.Scandir, GonePrefix+strconv.FormatUint(goneSeq.Add(1), 10))
			if err := os.Rename(dir, gone); err != nil {
				r.log.Error().Err(err).Str("profile", name).Str("path", dir).Dur("retry_in", stuckAfter).
					Msg("a slot s6-svscan does not supervise could not be renamed out: it stays as it is")
				r.unverified[name] = time.Now() // tried again in stuckAfter, not at every look
				continue
			}
			r.gone.Add(1)
			r.unwatchExits(name)
			delete(r.applied, name)
			delete(r.unverified, name)
			out = append(out, removal{gone: gone, keep: true})
			remade = append(remade, name)
		}
		return nil
	})
	if len(out) == 0 {
		return
	}
	for i := range out {
		out[i].gen = gen
	}
	r.count(func(s *Stats) { s.Remade += len(out) })
	r.log.Warn().Strs("profiles", remade).Dur("after", stuckAfter).Int64("removed_held", r.gone.Load()).
		Msg("new slots' supervisors never came up (s6-svscan took their directories for services it already holds): made again in new directories; the old ones are kept, as dot names, and count against the cap")
	r.reapQ.put(out...)
	if r.pending == nil {
		r.pending = r.last
	}
}
