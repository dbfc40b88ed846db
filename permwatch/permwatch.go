// Package permwatch is perm-watcher's engine: it keeps every service of an
// s6 scandir usable by one unprivileged user, as s6-supervise creates
// supervise/, supervise/control and event/ as root.
//
// It is level-triggered. inotify events (one fsnotify instance; watches on
// the scandir, each service directory, each log/ directory and each
// supervise/ directory) only wake the loop and name a service and the part
// of it (its own objects, or log/'s); once per batch of queued events the
// loop re-reads that part from the filesystem through package perms (which
// never follows a symlink the user could have made and only touches
// root-owned objects of the expected type) and fixes what is wrong. A full
// pass runs at start, after an inotify queue overflow or any watcher error,
// and every Resync (DefaultResync, 5 minutes).
//
// The periodic resync is only a safety net, so its default is long: inotify
// reports every directory s6-supervise creates, a lost event shows up as an
// overflow (which triggers a full pass at once), and a watch that could not
// be added switches to degraded mode. A 5-minute resync keeps an idle
// perm-watcher at zero CPU time over any 60-second window, which is the
// target; with no resync and no degraded mode nothing but inotify and
// SIGTERM wakes the loop.
//
// Degraded mode: when inotify cannot be used (the instance cannot be
// created, or a watch cannot be added: ENOSPC/EMFILE, per-user limits shared
// with the host), perm-watcher logs one error naming the limit and the fix,
// and keeps working by a full pass every DegradedInterval.
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
// s6-linux-init's own services and perm-watcher itself.
var DefaultExcludes = []string{"s6rc-*", "s6-linux-*", ServiceName, FollowerServiceName}

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

// eventBuffer is the length of the Events channel. fsnotify's reader
// goroutine can then pass one read(2)'s worth of events without a
// goroutine switch per event, and the loop drains them as one batch in
// which each service is read once (a burst of registrations makes ~20
// events per slot, most of them s6-supervise's status writes). It adds no
// delay: the loop still wakes at the first event.
const eventBuffer = 1024

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

// Excluded reports whether the scandir entry name is left alone: dot names
// (s6-svscan ignores them: .s6-svscan, slots being staged) and the
// configured globs.
func (c *Config) Excluded(name string) bool {
	if name == "" || strings.HasPrefix(name, ".") {
		return true
	}
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

// watcher state, owned by the loop goroutine.
type engine struct {
	cfg     *Config
	log     zerolog.Logger
	owner   perms.Owner
	scandir string // cleaned

	// sd stays open between full passes (each full pass opens it anew;
	// an event on the scandir itself triggers one): the scandir path is
	// the operator's, everything below it is opened relative to this fd.
	sd       *perms.Scandir
	w        *fsnotify.Watcher // nil when inotify is unavailable
	watched  map[string]bool   // paths with an inotify watch
	services map[string]bool   // scandir entries being looked after
	lastErr  map[string]string // last refusal per service, to log changes only
	degraded bool              // watches could not all be added: poll
	warned   bool
	stats    stats
}

// stats count the loop's work; logged when perm-watcher stops (the
// benchmark reads them to report the work per registered slot).
type stats struct {
	Events     int // inotify events received
	Queued     int // events that named a service
	Handles    int // handle calls
	Reads      int // perms.Fix calls
	FullPasses int // full passes
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
	e := &engine{
		cfg:      &cfg,
		log:      cfg.Log.With().Str("policy", string(cfg.Policy)).Logger(),
		owner:    owner,
		scandir:  filepath.Clean(cfg.Scandir),
		watched:  map[string]bool{},
		services: map[string]bool{},
		lastErr:  map[string]string{},
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

	w, err := newWatcher()
	if err != nil {
		limit := limitNone
		if errors.Is(err, syscall.EMFILE) {
			limit = limitInstances
		}
		e.setDegraded(err, limit)
	} else {
		e.w = w
		defer w.Close()
	}

	// The scandir watch comes before the first listing.
	e.addWatch(e.scandir)
	if err := e.fullPass(); err != nil {
		return err
	}
	if cfg.Ready != nil {
		cfg.Ready()
	}
	e.log.Info().Int("services", len(e.services)).Int("watches", len(e.watched)).Msg("first pass done")
	return e.loop(ctx)
}

func (e *engine) loop(ctx context.Context) error {
	var resync <-chan time.Time
	if e.cfg.Resync > 0 {
		t := time.NewTicker(e.cfg.Resync)
		defer t.Stop()
		resync = t.C
	}
	// The degraded-mode ticker exists only once degraded: in normal mode
	// nothing but inotify, the resync and ctx wakes the loop.
	var degradedTick *time.Ticker
	defer func() {
		if degradedTick != nil {
			degradedTick.Stop()
		}
	}()

	var events chan fsnotify.Event
	var errs chan error
	if e.w != nil {
		events, errs = e.w.Events, e.w.Errors
	}
	// What to re-read, per service; an event names a service and the part
	// of it (its own objects or log/'s), each service is read at most once
	// per drained batch.
	pending := map[string]perms.Scope{}
	for {
		full := false
		var degradedC <-chan time.Time
		if e.degraded {
			if degradedTick == nil {
				degradedTick = time.NewTicker(e.cfg.DegradedInterval)
			}
			degradedC = degradedTick.C
		}
		select {
		case <-ctx.Done():
			e.log.Info().Int("events", e.stats.Events).Int("queued", e.stats.Queued).
				Int("handles", e.stats.Handles).Int("reads", e.stats.Reads).Int("full_passes", e.stats.FullPasses).
				Msg("perm-watcher stopping")
			return nil
		case ev, ok := <-events:
			if !ok {
				events = nil
				e.setDegraded(errors.New("inotify event channel closed"), limitNone)
				continue
			}
			full = e.route(ev, pending)
		case err, ok := <-errs:
			if !ok {
				errs = nil
				continue
			}
			full = e.watchError(err)
		case <-resync:
			full = true
		case <-degradedC:
			full = true
		}
		// Merge whatever else is already queued before doing the work.
	drain:
		for i := 0; i < 4096; i++ {
			select {
			case ev, ok := <-events:
				if !ok {
					events = nil
					break drain
				}
				full = e.route(ev, pending) || full
			case err, ok := <-errs:
				if !ok {
					errs = nil
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
		if full {
			clear(pending)
			if err := e.fullPass(); err != nil {
				e.log.Error().Err(err).Str("path", e.scandir).Msg("full pass failed; retrying at the next wake-up")
				e.setDegraded(err, limitNone)
			}
			continue
		}
		for name, scope := range pending {
			delete(pending, name)
			if ctx.Err() != nil {
				break
			}
			e.handle(name, scope)
		}
	}
}

func (e *engine) watchError(err error) bool {
	if errors.Is(err, fsnotify.ErrEventOverflow) {
		e.log.Warn().Err(err).Msg("inotify queue overflowed: events were lost, doing a full pass (raise /proc/sys/fs/inotify/max_queued_events if it recurs)")
	} else {
		e.log.Warn().Err(err).Msg("inotify error: doing a full pass")
	}
	return true
}

// route maps an event to the service it concerns and queues it. It returns
// true when a full pass is needed.
func (e *engine) route(ev fsnotify.Event, pending map[string]perms.Scope) bool {
	e.stats.Events++
	if ev.Name == e.scandir {
		return true // the scandir itself was removed, renamed or chmodded
	}
	rel, ok := strings.CutPrefix(ev.Name, e.scandir+"/")
	if !ok {
		return false
	}
	if ev.Has(fsnotify.Remove) || ev.Has(fsnotify.Rename) {
		// A watched directory that went away (or was renamed away, taking
		// its watch along) releases its watches and those below it.
		for _, p := range []string{ev.Name, ev.Name + "/supervise", ev.Name + "/log", ev.Name + "/log/supervise"} {
			if e.watched[p] {
				delete(e.watched, p)
				if e.w != nil {
					_ = e.w.Remove(p)
				}
			}
		}
	}
	parts := strings.Split(rel, "/")
	name := parts[0]
	if e.cfg.Excluded(name) {
		return false
	}
	// Writes change contents, never an owner, a mode, a type or a link
	// (the user's own s6-svc writes to control land here).
	if !ev.Has(fsnotify.Create | fsnotify.Remove | fsnotify.Rename | fsnotify.Chmod) {
		return false
	}
	// Only names s6 creates matter below the service; status.new and
	// friends churn on every state change. An event below log/ re-reads
	// log/ only, one on the service's own objects leaves log/ alone.
	var scope perms.Scope
	switch len(parts) {
	case 1:
		scope = perms.ScopeAll
	case 2:
		switch parts[1] {
		case "supervise", "event":
			scope = perms.ScopeMain
		case "log":
			scope = perms.ScopeLog
		}
	case 3:
		if parts[1] == "supervise" && parts[2] == "control" {
			scope = perms.ScopeMain
		} else if parts[1] == "log" && (parts[2] == "supervise" || parts[2] == "event") {
			scope = perms.ScopeLog
		}
	case 4:
		if parts[1] == "log" && parts[2] == "supervise" && parts[3] == "control" {
			scope = perms.ScopeLog
		}
	}
	if scope != 0 {
		e.stats.Queued++
		pending[name] |= scope
	}
	return false
}

// Which inotify limit a failure points at.
const (
	limitNone      = ""
	limitWatches   = "max_user_watches"
	limitInstances = "max_user_instances"
)

// setDegraded switches to periodic full passes (for the rest of the
// process's life) and logs one error, the first time only, that names the
// limit and the fix.
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
			"(it is the kernel's, shared by every container and host process of this UID). "+
			"perm-watcher keeps working by a full pass every %s instead of reacting at once. "+
			"Fix: on the host, raise it, e.g. `sysctl -w fs.inotify.%s=%d` (persist it in /etc/sysctl.d/), "+
			"then restart perm-watcher",
			what, err, limit, every, limit, map[string]int{limitWatches: 524288, limitInstances: 1024}[limit])
	default:
		msg = fmt.Sprintf("degraded mode: inotify failed (%v); perm-watcher keeps working by a full pass every %s; restart it to react at once again", err, every)
	}
	e.log.Error().Err(err).Str("interval", every).Str("limit", limit).Msg(msg)
}

// addWatch adds an inotify watch on p; it reports whether a new watch was
// added. Missing paths are fine (the parent's watch will tell).
func (e *engine) addWatch(p string) bool {
	if e.w == nil || e.watched[p] {
		return false
	}
	if err := addWatchFn(e.w, p); err != nil {
		switch {
		case errors.Is(err, syscall.ENOSPC):
			e.setDegraded(err, limitWatches)
		case errors.Is(err, syscall.EMFILE):
			e.setDegraded(err, limitInstances)
		case errors.Is(err, syscall.ENOMEM):
			e.setDegraded(err, limitNone)
		case errors.Is(err, fs.ErrNotExist), errors.Is(err, syscall.ENOTDIR):
		default:
			e.log.Debug().Err(err).Str("path", p).Msg("cannot watch")
		}
		return false
	}
	e.watched[p] = true
	return true
}

func (e *engine) dropWatches(name string) {
	base := filepath.Join(e.scandir, name)
	for _, p := range []string{base + "/log/supervise", base + "/log", base + "/supervise", base} {
		if e.watched[p] {
			delete(e.watched, p)
			if e.w != nil {
				_ = e.w.Remove(p)
			}
		}
	}
}

// fullPass lists the scandir and handles every entry; entries gone since
// the last pass release their watches.
func (e *engine) fullPass() error {
	start := time.Now()
	e.stats.FullPasses++
	if e.w != nil {
		// Resynchronise the watch set with fsnotify's (watches vanish with
		// their directories).
		clear(e.watched)
		for _, p := range e.w.WatchList() {
			e.watched[p] = true
		}
		e.addWatch(e.scandir)
	}
	// Opened anew at every full pass: the scandir may have been replaced.
	sd, err := perms.OpenScandir(e.scandir)
	if err != nil {
		return err
	}
	if e.sd != nil {
		e.sd.Close()
	}
	e.sd = sd
	names, err := sd.Names()
	if err != nil {
		return err
	}
	seen := map[string]bool{}
	for _, name := range names {
		if e.cfg.Excluded(name) {
			continue
		}
		seen[name] = true
		e.handle(name, perms.ScopeAll)
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
	e.dropWatches(name)
	delete(e.services, name)
	delete(e.lastErr, name)
	delete(e.lastErr, name+"/log")
}

// watchFn is perms.FixOptions.Watch: a watch on every real directory met.
func (e *engine) watchFn(p string) { e.addWatch(p) }

// handle re-reads the scope of one service and fixes it. Every directory
// found to be real gets its inotify watch before anything below it is read
// (perms.FixOptions.Watch), so that nothing created after the listing is
// missed and one read is enough.
func (e *engine) handle(name string, scope perms.Scope) {
	e.stats.Handles++
	base := filepath.Join(e.scandir, name)
	if e.sd == nil {
		sd, err := perms.OpenScandir(e.scandir)
		if err != nil {
			e.log.Error().Err(err).Str("path", e.scandir).Msg("cannot open the scandir")
			return
		}
		e.sd = sd
	}
	e.stats.Reads++
	res, mainErr, logErr := e.sd.Fix(name, e.owner, e.cfg.Policy, perms.FixOptions{Scope: scope, Watch: e.watchFn})
	if !res.Resolved {
		if errors.Is(mainErr, fs.ErrNotExist) {
			if e.services[name] {
				e.log.Info().Str("service", name).Str("path", base).Msg("service removed")
			}
			e.forget(name)
			return
		}
	}
	if !e.services[name] {
		e.services[name] = true
		e.log.Debug().Str("service", name).Str("path", base).Str("target", res.Target).Msg("looking after service")
	}
	e.report(name, res, mainErr, logErr, scope)
}

// report logs what changed and, per part (the service, its log/), refusals
// when they appear or change and when they go away; a part not in scope
// keeps its last state.
func (e *engine) report(name string, res perms.ServiceResult, mainErr, logErr error, scope perms.Scope) {
	for _, o := range res.Outcomes {
		switch o.Action {
		case perms.ActionUnchanged, perms.ActionMissing:
			continue
		}
		e.log.Info().Str("service", name).Str("path", o.Path).Str("action", o.Action).
			Int("uid", o.UID).Int("gid", o.GID).Str("mode", fmt.Sprintf("%04o", uint32(o.Mode.Perm())|specialBits(o.Mode))).
			Msg("handed over")
	}
	if scope&perms.ScopeMain != 0 || mainErr != nil {
		e.refusal(name, name, res.Path, mainErr)
	}
	if scope&perms.ScopeLog != 0 && res.Resolved {
		e.refusal(name, name+"/log", res.Path+"/log", logErr)
	}
}

func (e *engine) refusal(service, key, path string, err error) {
	if err != nil {
		msg := err.Error()
		if e.lastErr[key] != msg {
			e.lastErr[key] = msg
			e.log.Warn().Str("service", service).Str("path", path).Err(err).Msg("refused to touch (left as is)")
		}
	} else if e.lastErr[key] != "" {
		delete(e.lastErr, key)
		e.log.Info().Str("service", service).Str("path", path).Msg("no longer refused")
	}
}

func specialBits(m fs.FileMode) uint32 {
	var b uint32
	if m&fs.ModeSetuid != 0 {
		b |= 0o4000
	}
	if m&fs.ModeSetgid != 0 {
		b |= 0o2000
	}
	if m&fs.ModeSticky != 0 {
		b |= 0o1000
	}
	return b
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
