// Package permwatch is perm-watcher's engine: it keeps every service of an
// s6 scandir usable by one unprivileged user, as s6-supervise creates
// supervise/, supervise/control and event/ as root.
//
// One inotify watch, whatever the user does. The watch is on the scandir
// alone, added through /proc/self/fd/N of the O_PATH descriptor that was
// opened without following symlinks and checked (so it is on that very
// directory, never on what a path or a symlink names later). When an entry
// appears (a slot being staged under a dot name, a slot renamed into place,
// an s6-rc symlink), perm-watcher makes what s6-supervise would make in it
// and in its log/ (supervise/, supervise/control, event/) with the policy's
// owner and modes, through package perms (fd-based, refusing anything it
// did not make). s6-supervise reuses them and never re-chowns, so there is
// nothing to hand over after it starts, no watch inside a service is
// needed, and the user's first s6-svc fails at most with "supervisor not
// listening". When s6-supervise was first (it created an object that had to
// be handed over, or is half-way through making event/), the service is
// looked at again a few times over the next seconds (followUpDelays):
// polling a handful of services costs no watch.
//
// It is level-triggered: an event only names a scandir entry; the entry is
// then re-read from the filesystem and fixed. A full pass runs at start,
// after an inotify queue overflow or error, and every Resync (DefaultResync,
// 5 minutes: it also catches what the user undid in its own slot, such as a
// deleted supervise/ that s6-supervise re-created as root). An attribute
// change of the scandir itself re-reads nothing.
//
// Degraded mode: when the one watch cannot be had (the inotify instance or
// watch limit, shared with the host, is exhausted by others), perm-watcher
// logs one error naming the limit and the fix, does a full pass every
// DegradedInterval, tries again to add the watch each time, and leaves
// degraded mode as soon as it can.
//
// Logging is bounded (report.go): per-service lines go through a token
// bucket, refusals are counted per service and summarised every
// SummaryInterval.
package permwatch

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/fsnotify/fsnotify"
	"github.com/rs/zerolog"

	"github.com/hermes-s6/hermes-s6/identity"
	"github.com/hermes-s6/hermes-s6/perms"
)

// ErrUsage is wrapped by errors that come from the configuration (exit 100).
var ErrUsage = errors.New("wrong usage")

// ServiceName is perm-watcher's own s6-rc service name, excluded by default.
const ServiceName = "perm-watcher"

// DefaultExcludes are the scandir entries never touched: s6-rc's and
// s6-linux-init's own services (s6-svscan-log is the catch-all logger
// s6-linux-init may create), perm-watcher itself and sealed mode's
// follower. They are matched against the entry's name and, for a
// root-owned symlink, the name of the directory it resolves to; a
// root-owned excluded directory is also remembered by device and inode, so
// renaming it changes nothing.
var DefaultExcludes = []string{"s6rc-*", "s6-linux-*", "s6-svscan-log", ServiceName, FollowerServiceName}

// FollowerServiceName is the s6-rc longrun of reconcile-profiles --follow
// (sealed mode's slot publisher): like perm-watcher, root's alone.
const FollowerServiceName = "profile-follower"

// Defaults.
const (
	DefaultScandir = "/run/service"
	DefaultUser    = "hermes"
	// DefaultResync is long on purpose (see the package doc): inotify and
	// overflow-triggered full passes cover the normal cases, and an idle
	// watcher must not wake up within a 60 s window.
	DefaultResync           = 5 * time.Minute
	DefaultDegradedInterval = time.Second
)

// eventBuffer is the length of the Events channel. With the one watch on
// the scandir a registration makes about three events (the staged slot's
// creation, its rename out and in), so a short buffer still lets a burst
// pass without a goroutine switch per event; and it is short so that while
// the loop pauses reading (quietDelay) fsnotify's reader soon blocks and
// the kernel merges the user's repeated events instead of handing them all
// over.
const eventBuffer = 32

// Injection seams, replaced only by tests to simulate exhausted inotify
// limits (the machine-wide sysctls cannot be lowered while other tests run):
// newWatcher creates the inotify instance (fails with EMFILE at
// max_user_instances), addWatchFn adds one watch (fails with ENOSPC at
// max_user_watches).
var (
	newWatcher = func() (*fsnotify.Watcher, error) { return fsnotify.NewBufferedWatcher(eventBuffer) }
	addWatchFn = func(w *fsnotify.Watcher, path string) error { return w.Add(path) }
)

// Config is what Run and Check need.
type Config struct {
	Scandir string
	User    string
	Policy  perms.Policy
	Exclude []string // globs (filepath.Match) on scandir entry names
	Once    bool
	// Resync is the period of the safety-net full pass; 0 turns it off.
	Resync time.Duration
	// DegradedInterval is the period of full passes when inotify watches
	// cannot be added (ENOSPC/EMFILE); 0 means DefaultDegradedInterval.
	DegradedInterval time.Duration
	// HermesHome is read only by Check, as a non-root user: the slots its
	// boot log announced must be there and usable ("" skips that check).
	HermesHome string
	// Ready is called once, after the first full pass (s6 readiness).
	Ready func()
	Log   zerolog.Logger
}

// Validate checks the configuration; its errors wrap ErrUsage.
func (c *Config) Validate() error {
	if c.Scandir == "" {
		return fmt.Errorf("%w: --scandir must not be empty", ErrUsage)
	}
	if c.User == "" {
		return fmt.Errorf("%w: --user must not be empty", ErrUsage)
	}
	if c.Policy == "" {
		c.Policy = perms.PolicyOwner
	}
	if _, err := perms.ParsePolicy(string(c.Policy)); err != nil {
		return fmt.Errorf("%w: --policy: %v", ErrUsage, err)
	}
	for _, g := range c.Exclude {
		if _, err := filepath.Match(g, ""); err != nil {
			return fmt.Errorf("%w: --exclude %q: %v", ErrUsage, g, err)
		}
	}
	if c.Resync < 0 {
		return fmt.Errorf("%w: --resync must not be negative", ErrUsage)
	}
	if c.DegradedInterval < 0 {
		return fmt.Errorf("%w: --degraded-interval must not be negative", ErrUsage)
	}
	if c.DegradedInterval == 0 {
		c.DegradedInterval = DefaultDegradedInterval
	}
	return nil
}

// Excluded reports whether the scandir entry name is left alone by
// --check: dot names (s6-svscan ignores them: .s6-svscan, slots being
// staged) and the configured globs.
func (c *Config) Excluded(name string) bool {
	if name == "" || strings.HasPrefix(name, ".") {
		return true
	}
	return c.matchExclude(name)
}

func (c *Config) matchExclude(name string) bool {
	for _, g := range c.Exclude {
		if ok, _ := filepath.Match(g, name); ok {
			return true
		}
	}
	return false
}

func resolveOwner(c *Config) (identity.Identity, perms.Owner, error) {
	id, err := identity.Lookup(c.User)
	if err != nil {
		if errors.Is(err, identity.ErrNoSuchUser) {
			return id, perms.Owner{}, fmt.Errorf("%w: %v", ErrUsage, err)
		}
		return id, perms.Owner{}, err
	}
	if id.UID == 0 {
		return id, perms.Owner{}, fmt.Errorf("%w: --user %s is root: there is nothing to hand over", ErrUsage, c.User)
	}
	return id, perms.Owner{UID: id.UID, GID: id.GID}, nil
}

// followUpDelays are when a service is looked at again after a look that
// found s6-supervise at work in it (it had created an object that had to be
// handed over, or was half-way through making event/). s6-supervise makes
// supervise/, control and event/ within milliseconds of its start; the
// later looks only cover a loaded machine. A look that finds everything
// as the policy wants ends the series.
var followUpDelays = []time.Duration{2 * time.Millisecond, 10 * time.Millisecond, 50 * time.Millisecond,
	250 * time.Millisecond, time.Second, 4 * time.Second}

// quietDelay: see loop.
const quietDelay = 10 * time.Millisecond

type followUp struct {
	due  time.Time
	step int
}

type devIno struct{ dev, ino uint64 }

// watcher state, owned by the loop goroutine.
type engine struct {
	cfg     *Config
	log     zerolog.Logger
	rep     *reporter
	owner   perms.Owner
	scandir string // cleaned

	// sd stays open: the one watch is added through its descriptor
	// (watchPath is its /proc/self/fd/N), and everything below the scandir
	// is opened relative to it. A full pass reopens it by path and keeps
	// the new one only if the directory was replaced.
	sd        *perms.Scandir
	w         *fsnotify.Watcher // nil when inotify is unavailable
	watchPath string            // "" when there is no watch
	services  map[string]bool   // scandir entries being looked after
	// excluded are root-owned service directories that matched an
	// exclude glob, by identity: renaming one does not un-exclude it.
	// Only root's are kept, so the user cannot grow this set.
	excluded  map[devIno]bool
	followUps map[string]followUp
	degraded  bool // no watch: poll
	warned    bool
	stats     stats
}

// stats count the loop's work; logged when perm-watcher stops (the
// benchmark reads them to report the work per registered slot).
type stats struct {
	Events      int // inotify events received
	Queued      int // events that named a service
	Handles     int // handle calls
	FollowUps   int // handle calls that were follow-ups
	FullPasses  int // full passes
	ScandirAttr int // attribute changes of the scandir itself (nothing re-read)
}

// Run looks after cfg.Scandir until ctx ends (or one pass with cfg.Once).
// It returns nil when ctx is cancelled (SIGTERM), an error wrapping ErrUsage
// for configuration problems, and other errors for system failures.
func Run(ctx context.Context, cfg Config) error {
	if err := cfg.Validate(); err != nil {
		return err
	}
	_, owner, err := resolveOwner(&cfg)
	if err != nil {
		return err
	}
	log := cfg.Log.With().Str("policy", string(cfg.Policy)).Logger()
	e := &engine{
		cfg:       &cfg,
		log:       log,
		rep:       newReporter(log),
		owner:     owner,
		scandir:   filepath.Clean(cfg.Scandir),
		services:  map[string]bool{},
		excluded:  map[devIno]bool{},
		followUps: map[string]followUp{},
	}
	e.log.Info().Str("path", e.scandir).Str("user", cfg.User).Int("uid", owner.UID).Int("gid", owner.GID).
		Bool("once", cfg.Once).Dur("resync", cfg.Resync).Msg("perm-watcher starting")
	defer func() {
		if e.sd != nil {
			e.sd.Close()
		}
	}()

	if cfg.Once {
		if err := e.fullPass(); err != nil {
			return err
		}
		if cfg.Ready != nil {
			cfg.Ready()
		}
		return nil
	}
	defer func() {
		if e.w != nil {
			e.w.Close()
		}
	}()
	// The watch comes before the first listing, so nothing created in
	// between is missed.
	if err := e.openScandir(); err != nil {
		return err
	}
	e.ensureWatch()
	if err := e.fullPass(); err != nil {
		return err
	}
	if cfg.Ready != nil {
		cfg.Ready()
	}
	e.log.Info().Int("services", len(e.services)).Int("watches", e.watchCount()).Msg("first pass done")
	return e.loop(ctx)
}

// watchCount is the number of inotify watches held (0 or 1).
func (e *engine) watchCount() int {
	if e.w == nil {
		return 0
	}
	return len(e.w.WatchList())
}

func (e *engine) loop(ctx context.Context) error {
	var resync <-chan time.Time
	if e.cfg.Resync > 0 {
		t := time.NewTicker(e.cfg.Resync)
		defer t.Stop()
		resync = t.C
	}
	// Timers exist only while needed: an idle watcher is woken by nothing
	// but inotify, the resync and ctx.
	var degradedTick *time.Ticker
	followTimer := time.NewTimer(time.Hour)
	followTimer.Stop()
	followArmed := time.Time{}
	summaryTimer := time.NewTimer(time.Hour)
	summaryTimer.Stop()
	summaryArmed := false
	defer func() {
		if degradedTick != nil {
			degradedTick.Stop()
		}
		followTimer.Stop()
		summaryTimer.Stop()
	}()

	// After a batch of events that asked for nothing (the user's chmod or
	// write loop on the scandir or its entries: fsnotify always subscribes
	// to IN_ATTRIB and IN_MODIFY, v1.10 has no public way to leave them
	// out), the loop stops reading events for quietDelay: the kernel then
	// merges the identical events queued meanwhile, so such a loop costs
	// one wake-up per quietDelay instead of one per system call. A real
	// event waits at most that long.
	var quiet <-chan time.Time
	pending := map[string]bool{}
	for {
		var events chan fsnotify.Event
		var errs chan error
		if e.w != nil && quiet == nil {
			events, errs = e.w.Events, e.w.Errors
		}
		var degradedC <-chan time.Time
		if e.degraded {
			if degradedTick == nil {
				degradedTick = time.NewTicker(e.cfg.DegradedInterval)
			}
			degradedC = degradedTick.C
		} else if degradedTick != nil {
			degradedTick.Stop()
			degradedTick = nil
		}
		// The follow-up timer is armed for the earliest one due.
		if next, ok := e.nextFollowUp(); ok && (followArmed.IsZero() || next.Before(followArmed)) {
			followTimer.Reset(time.Until(next))
			followArmed = next
		}
		if !summaryArmed && e.rep.dirty() {
			summaryTimer.Reset(SummaryInterval)
			summaryArmed = true
		}

		full, followDue := false, false
		select {
		case <-ctx.Done():
			e.rep.summary()
			e.log.Info().Int("events", e.stats.Events).Int("queued", e.stats.Queued).
				Int("handles", e.stats.Handles).Int("follow_ups", e.stats.FollowUps).Int("full_passes", e.stats.FullPasses).
				Int("scandir_attr", e.stats.ScandirAttr).Int("watches", e.watchCount()).
				Msg("perm-watcher stopping")
			return nil
		case ev, ok := <-events:
			if !ok {
				e.dropWatcher(errors.New("inotify event channel closed"))
				continue
			}
			full = e.route(ev, pending)
		case err, ok := <-errs:
			if !ok {
				e.dropWatcher(errors.New("inotify error channel closed"))
				continue
			}
			full = e.watchError(err)
		case <-resync:
			full = true
		case <-degradedC:
			e.ensureWatch()
			full = true
		case <-followTimer.C:
			followArmed = time.Time{}
			followDue = true
		case <-summaryTimer.C:
			summaryArmed = false
			e.rep.summary()
			continue
		case <-quiet:
			quiet = nil
			continue
		}
		queuedBefore, eventsBefore := e.stats.Queued, e.stats.Events
		// Merge whatever else is already queued before doing the work.
	drain:
		for i := 0; i < 4096 && events != nil; i++ {
			select {
			case ev, ok := <-events:
				if !ok {
					break drain
				}
				full = e.route(ev, pending) || full
			case err, ok := <-errs:
				if !ok {
					break drain
				}
				full = e.watchError(err) || full
			default:
				break drain
			}
		}
		if ctx.Err() != nil {
			continue
		}
		if !full && !followDue && e.stats.Queued == queuedBefore && e.stats.Events > eventsBefore {
			quiet = time.After(quietDelay)
		}
		if full {
			clear(pending)
			if err := e.fullPass(); err != nil {
				e.log.Error().Err(err).Str("path", e.scandir).Msg("full pass failed; retrying at the next wake-up")
				e.setDegraded(err, limitNone)
			}
			continue
		}
		for name := range pending {
			delete(pending, name)
			if ctx.Err() != nil {
				break
			}
			e.handle(name)
		}
		if followDue {
			now := time.Now()
			for name, f := range e.followUps {
				if ctx.Err() != nil {
					break
				}
				if !f.due.After(now) {
					e.stats.FollowUps++
					e.handle(name)
				}
			}
		}
	}
}

func (e *engine) nextFollowUp() (time.Time, bool) {
	var next time.Time
	for _, f := range e.followUps {
		if next.IsZero() || f.due.Before(next) {
			next = f.due
		}
	}
	return next, !next.IsZero()
}

// followUp schedules the next look at name if s6-supervise was found at
// work in it, and ends the series otherwise.
func (e *engine) followUp(name string, busy bool) {
	f, had := e.followUps[name]
	if !busy {
		delete(e.followUps, name)
		return
	}
	step := 0
	if had {
		step = f.step + 1
	}
	if step >= len(followUpDelays) {
		delete(e.followUps, name)
		return
	}
	e.followUps[name] = followUp{due: time.Now().Add(followUpDelays[step]), step: step}
}

func (e *engine) watchError(err error) bool {
	if errors.Is(err, fsnotify.ErrEventOverflow) {
		e.log.Warn().Err(err).Msg("inotify queue overflowed: events were lost, doing a full pass (raise /proc/sys/fs/inotify/max_queued_events if it recurs)")
	} else {
		e.log.Warn().Err(err).Msg("inotify error: doing a full pass")
	}
	return true
}

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
	if !ok || name == "" || strings.Contains(name, "/") || name == ".s6-svscan" {
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

// fullPass lists the scandir and handles every entry; entries gone since
// the last pass are forgotten.
func (e *engine) fullPass() error {
	start := time.Now()
	e.stats.FullPasses++
	if err := e.openScandir(); err != nil {
		return err
	}
	if !e.cfg.Once && !e.degraded {
		e.ensureWatch()
	}
	names, err := e.sd.Names()
	if err != nil {
		return err
	}
	seen := map[string]bool{}
	for _, name := range names {
		if name == ".s6-svscan" {
			continue
		}
		seen[name] = true
		e.handle(name)
	}
	for name := range e.services {
		if !seen[name] {
			e.forget(name)
		}
	}
	e.log.Debug().Int("services", len(e.services)).Dur("duration_ms", time.Since(start)).Msg("full pass")
	return nil
}

func (e *engine) forget(name string) {
	delete(e.services, name)
	delete(e.followUps, name)
	e.rep.forget(name)
	e.rep.forget(name + "/log")
}

// exclude is perms.FixOptions.Exclude: the entry's name or, for a root
// symlink, its target's name matches an exclude glob, or the directory is
// a root-owned one seen excluded before under another name.
func (e *engine) exclude(id perms.ServiceID) bool {
	key := devIno{id.Dev, id.Ino}
	if e.excluded[key] {
		return true
	}
	name := strings.TrimPrefix(id.Name, ".")
	if e.cfg.matchExclude(name) || (id.Target != "" && e.cfg.matchExclude(filepath.Base(id.Target))) {
		if id.UID == 0 {
			e.excluded[key] = true
		}
		return true
	}
	return false
}

// handle re-reads one scandir entry: makes what s6-supervise would make
// and is missing, and hands over what s6-supervise made.
func (e *engine) handle(name string) {
	if e.cfg.Policy == perms.PolicySealed && strings.HasPrefix(name, ".") {
		// Sealed mode: a dot entry is a slot being staged by root's
		// follower (reconcile-profiles --follow), which prepares it
		// itself before the rename; preparing it here too would race it
		// (each refuses what the other just made). The user cannot make
		// dot entries there: the scandir is root's.
		return
	}
	e.stats.Handles++
	base := filepath.Join(e.scandir, name)
	if e.sd == nil {
		if err := e.openScandir(); err != nil {
			e.log.Error().Err(err).Str("path", e.scandir).Msg("cannot open the scandir")
			return
		}
	}
	res, mainErr, logErr := e.sd.Fix(name, e.owner, e.cfg.Policy, perms.FixOptions{Scope: perms.ScopeAll, Prepare: true, Exclude: e.exclude})
	if res.Excluded {
		e.forget(name)
		return
	}
	if !res.Resolved && errors.Is(mainErr, fs.ErrNotExist) {
		if e.services[name] && e.rep.allow() {
			e.log.Info().Str("service", name).Str("path", base).Msg("service removed")
		}
		e.forget(name)
		return
	}
	if !e.services[name] {
		e.services[name] = true
		e.log.Debug().Str("service", name).Str("path", base).Str("target", res.Target).Msg("looking after service")
	}
	// A slot being staged (a dot name) usually gets its log/ a moment after
	// it appears, and the rename into place is the last event before
	// s6-svscan may start log/'s supervisor: look again a few times, so
	// that log/ is prepared while the slot is still staged.
	busy := strings.HasPrefix(name, ".") && res.Resolved && !res.HasLog
	for _, o := range res.Outcomes {
		switch o.Action {
		case perms.ActionUnchanged, perms.ActionCreated:
		case perms.ActionMissing:
			busy = true
		default:
			busy = true // s6-supervise made it: it may still be at work
		}
	}
	e.followUp(name, busy)
	e.report(name, res, mainErr, logErr)
}

// report logs what changed and refusals (aggregated, see reporter).
func (e *engine) report(name string, res perms.ServiceResult, mainErr, logErr error) {
	for _, o := range res.Outcomes {
		switch o.Action {
		case perms.ActionUnchanged, perms.ActionMissing:
			continue
		}
		e.rep.handedOver(name, o)
	}
	e.rep.refusal(name, name, res.Path, mainErr)
	if res.Resolved {
		e.rep.refusal(name, name+"/log", res.Path+"/log", logErr)
	}
}

// sortedKeys is for deterministic output.
func sortedKeys(m map[string]bool) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
