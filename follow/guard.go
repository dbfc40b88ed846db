package follow

import (
	"path/filepath"
	"sort"
	"time"

	"github.com/hermes-s6/hermes-s6/slot"
)

// Exit guard timing (variables for tests).
var (
	// guardWindow and guardExits: a slot whose supervisors (its own and
	// its log/'s) exited guardExits times within guardWindow is being
	// stormed. One `s6-svc -dx` on a slot and its log/ is two exits, and
	// so is a container stop; nothing else makes a supervisor exit (root's
	// own removals unsubscribe first), so a second dx within the window is
	// a storm.
	guardWindow = 30 * time.Second
	guardExits  = 3
	// guardBase is the first suspension; each one within guardForget of
	// the last one's end doubles it, up to guardMax. With 10 s, a 60-s
	// storm on 200 slots still cost half of what it did without the
	// guard (three storm phases, three removals and two re-creations of
	// every slot in the minute); with 30 s, one phase of each.
	guardBase   = 30 * time.Second
	guardMax    = 5 * time.Minute
	guardForget = 10 * time.Minute
)

// A dx storm: hermes may write `dx` into every control FIFO sealed mode
// gives it, as often as it likes. Each supervisor then exits, and s6-svscan
// starts it again a second later (its own fixed delay; it has no backoff),
// so a storm on N slots costs root about 2N supervisor starts a second for
// as long as hermes goes on: the whole container used 1.1 cores with 200
// slots on this 2-core machine (real s6-overlay 3.2.3.0; BENCHMARKS.md,
// "a dx storm"). So root keeps count of each
// slot's supervisor exits (exits.go), and takes a stormed slot out of the
// scandir, as if its profile were gone, for guardBase, then twice as long
// each time it is stormed again (up to guardMax): s6-svscan has nothing to
// restart meanwhile. hermes loses only the gateway it was killing; the
// slot comes back by itself, from the latest snapshot.
//
// An exit also puts the slot back under verification (verify.go): s6 2.15
// loses a service whose supervisor and logger are both told to exit twice
// within about a second (no restart, ever; e2e/README.md), and verify then
// makes the slot again in a new directory.

// guard is root's per-slot record of supervisor exits and suspensions.
type guard struct {
	exits     map[string][]time.Time // recent exits, within guardWindow
	suspended map[string]time.Time   // until when a slot stays out
	strikes   map[string]int         // suspensions in a row
	lastEnd   map[string]time.Time   // when the last suspension ended
	subs      map[string]*exitSub
	events    chan string // names whose supervisor exited (exits.go)
}

func newGuard() *guard {
	return &guard{
		exits:     map[string][]time.Time{},
		suspended: map[string]time.Time{},
		strikes:   map[string]int{},
		lastEnd:   map[string]time.Time{},
		subs:      map[string]*exitSub{},
		events:    make(chan string, 1024),
	}
}

// watchExits subscribes to the exits of name's slot once both of its
// supervisors have listened (verify.go): before that, s6-supervise may not
// have made event/ yet.
func (r *root) watchExits(name string) {
	if _, ok := r.guard.subs[name]; ok {
		return
	}
	dir := filepath.Join(r.cfg.Scandir, slot.DirName(name))
	s, err := subscribeExits(name, []string{dir, filepath.Join(dir, slot.LogDir)}, r.guard.events)
	if err != nil {
		r.log.Warn().Err(err).Str("profile", name).Str("path", dir).
			Msg("cannot subscribe to a slot's supervisor events: a dx storm on it is not bounded")
		return
	}
	r.guard.subs[name] = s
}

// unwatchExits ends the subscription of name's slot (it is being removed).
func (r *root) unwatchExits(name string) {
	r.guard.subs[name].close()
	delete(r.guard.subs, name)
	delete(r.guard.exits, name)
}

// noteExit records an exit of one of name's supervisors: the slot is
// verified again, and suspended if it is being stormed.
func (r *root) noteExit(name string) {
	if _, ok := r.applied[name]; !ok || r.removing[name] {
		return
	}
	now := time.Now()
	if _, ok := r.unverified[name]; !ok {
		r.unverified[name] = now
	}
	ex := r.guard.exits[name]
	for len(ex) > 0 && now.Sub(ex[0]) > guardWindow {
		ex = ex[1:]
	}
	ex = append(ex, now)
	r.guard.exits[name] = ex
	if len(ex) < guardExits {
		return
	}
	g := r.guard
	if now.Sub(g.lastEnd[name]) > guardForget {
		g.strikes[name] = 0
	}
	d := guardBase << min(g.strikes[name], 30)
	d = min(d, guardMax)
	g.strikes[name]++
	g.suspended[name] = now.Add(d)
	r.count(func(s *Stats) { s.Suspended++ })
	r.log.Warn().Str("profile", name).Int("exits", len(ex)).Dur("within", guardWindow).Dur("out_for", d).Int("strikes", g.strikes[name]).
		Msg("a slot's supervisors are told to exit again and again (a dx storm): taken out of the scandir, so that s6-svscan stops restarting them; it comes back by itself")
	r.startRemoval(name)
}

// isSuspended reports whether name's slot stays out for now.
func (r *root) isSuspended(name string, now time.Time) bool {
	until, ok := r.guard.suspended[name]
	return ok && now.Before(until)
}

// resume ends the suspensions that are over (their strikes are kept for
// guardForget), and forgets the strikes of slots left alone since then.
func (r *root) resume(now time.Time) {
	g := r.guard
	var back []string
	for name, until := range g.suspended {
		if !now.Before(until) {
			delete(g.suspended, name)
			g.lastEnd[name] = until
			back = append(back, name)
		}
	}
	for name, end := range g.lastEnd {
		if now.Sub(end) > guardForget {
			delete(g.lastEnd, name)
			delete(g.strikes, name)
		}
	}
	if len(back) > 0 {
		sort.Strings(back)
		r.log.Info().Strs("profiles", back).Msg("suspended slots come back (if their profiles still exist)")
	}
}

// nextResume is when the first suspension ends (zero: none).
func (r *root) nextResume() time.Time {
	var first time.Time
	for _, until := range r.guard.suspended {
		if first.IsZero() || until.Before(first) {
			first = until
		}
	}
	return first
}

// closeExits ends every subscription (Root is returning).
func (r *root) closeExits() {
	for name := range r.guard.subs {
		r.unwatchExits(name)
	}
}
