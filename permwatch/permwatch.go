// Package permwatch is perm-watcher's engine: it keeps every service of an
// s6 scandir usable by one unprivileged user, as s6-supervise creates
// supervise/, supervise/control and event/ as root.
//
// One inotify watch, whatever the user does. The watch is on the scandir
// alone, added through /proc/self/fd/N of the O_PATH descriptor that was
// opened without following symlinks and checked (so it is on that very
// directory, never on what a path or a symlink names later). When an entry
// appears under its real name (a slot renamed into place, an s6-rc
// symlink), perm-watcher makes what s6-supervise would make in it and in
// its log/ (supervise/, supervise/control, event/) and is missing, with the
// policy's owner and modes, through package perms (fd-based, refusing
// anything it did not make). Each object appears all at once: it is built
// under a temporary name inside the slot and renamed into place with
// RENAME_NOREPLACE (perms.Prepare), so nothing is ever visible as root's
// 0700 where the user may be writing, and if the name appeared meanwhile
// theirs is kept. s6-supervise reuses them and never re-chowns, so there is
// nothing to hand over after it starts, no watch inside a service is
// needed, and the user's first s6-svc fails at most with "supervisor not
// listening". When s6-supervise was first (it created an object that had to
// be handed over, or is half-way through making event/), the service is
// looked at again a few times over the next seconds (followUpDelays):
// polling a handful of services costs no watch.
//
// A dot-named entry is never read or written, whatever the policy: it is
// someone's staging area (s6-svscan ignores it too). The hermes CLI builds
// its slot under .gateway-<p>.tmp and seeds its own skeleton there,
// check-then-create; anything made in there by another process makes its
// registration fail (#15). A slot renamed in with that skeleton (the
// user's event/ 03730, supervise/ 0755, supervise/event/ 03730, control
// 0660, the same in log/) is kept as it is: the policy already accepts the
// user's own objects.
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
	"path/filepath"

	"github.com/fsnotify/fsnotify"
	"github.com/rs/zerolog"

	"github.com/hermes-s6/hermes-s6/perms"
)

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
