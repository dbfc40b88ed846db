package follow

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"time"

	"github.com/fsnotify/fsnotify"
	"github.com/rs/zerolog"

	"github.com/hermes-s6/hermes-s6/bootlog"
	"github.com/hermes-s6/hermes-s6/profile"
	"github.com/hermes-s6/hermes-s6/slot"
)

// DefaultResync is the reader's safety-net re-read: inotify reports every
// change the decisions depend on, so this only catches what nothing
// reported (a profile directory on another file system, a lost event), and
// it is long so that an idle reader stays at zero CPU time over a minute.
const DefaultResync = 5 * time.Minute

// ReaderConfig is the reader's follow loop (running as the user).
type ReaderConfig struct {
	HermesHome string
	Getenv     func(string) string
	Argv       []string // the container's stripped argv (nil when unknown)
	MaxRecords int      // sends at most this many records (root's cap)
	Resync     time.Duration
	Out        io.Writer // to root
	// Sent is the last snapshot already sent (by the boot pass), encoded.
	Sent string
	Log  zerolog.Logger
	// NameLimit is root's (slot.ScandirNameLimit, computed once at its
	// start): a profile whose name is longer than its MaxName gets no slot,
	// one log line naming the limit and one boot-log skipped entry
	// (reason=name-too-long), once; the others are not held up by it.
	NameLimit slot.NameLimit
	// Reported holds the too-long names already reported (by the boot
	// pass); nil: the first pass takes those it finds as reported, without
	// a line (a restarted reader must not repeat them).
	Reported map[string]bool
}

// Reader watches HERMES_HOME and sends root a snapshot whenever the
// decisions change. It returns when ctx ends.
//
// The decisions are profile.Decide's, the same as the boot pass's; the
// watches are on HERMES_HOME, profiles/ and every entry of profiles/ (so
// that SOUL.md appearing in an existing directory is seen).
func Reader(ctx context.Context, cfg ReaderConfig) error {
	if cfg.MaxRecords <= 0 {
		cfg.MaxRecords = DefaultMaxRecords
	}
	if cfg.Resync == 0 {
		cfg.Resync = DefaultResync
	}
	w, err := fsnotify.NewBufferedWatcher(1024)
	if err != nil {
		cfg.Log.Error().Err(err).Msg("inotify unavailable: re-reading HERMES_HOME every second instead")
		w = nil
	}
	var events chan fsnotify.Event
	var errs chan error
	if w != nil {
		defer w.Close()
		events, errs = w.Events, w.Errors
	}
	watched := map[string]bool{}
	watch := func(p string) {
		if w == nil || watched[p] {
			return
		}
		if err := w.Add(p); err == nil {
			watched[p] = true
		}
	}
	home := filepath.Clean(cfg.HermesHome)
	pdir := filepath.Join(home, profile.ProfilesDir)

	last := cfg.Sent
	warned := false
	pass := func() error {
		if w != nil {
			// fsnotify drops the watches of directories that went away:
			// start from its list, so that they are added again.
			clear(watched)
			for _, p := range w.WatchList() {
				watched[p] = true
			}
		}
		// Watches before reading: nothing created after the listing is
		// missed.
		watch(home)
		watch(pdir)
		live := map[string]bool{home: true, pdir: true}
		cands, _ := profile.Candidates(home)
		for _, c := range cands {
			if len(watched) > 4*cfg.MaxRecords {
				break // the rest is found by the events on profiles/ and the resync
			}
			live[c.Dir] = true
			watch(c.Dir)
		}
		dec := profile.Decide(profile.Options{Home: home, Getenv: cfg.Getenv, Argv: cfg.Argv, MaxSlotName: cfg.NameLimit.MaxName()})
		reportTooLong(&cfg, dec)
		slots := dec.Slots()
		snap := make(Snapshot, 0, min(len(slots), cfg.MaxRecords))
		dropped := 0
		for _, sl := range slots {
			if sl.Name != profile.DefaultName && len(snap) >= cfg.MaxRecords-1 {
				dropped++
				continue
			}
			snap = append(snap, Record{Name: sl.Name, Autostart: sl.Autostart})
		}
		if dropped > 0 && !warned {
			warned = true
			cfg.Log.Warn().Int("profiles", len(slots)-1).Int("max", cfg.MaxRecords-1).Int("dropped", dropped).
				Msg("more profiles than sealed mode's cap: only the first ones (by name) get a slot (raise --max-profiles)")
		}
		for p := range watched {
			if !live[p] && w != nil {
				_ = w.Remove(p)
				delete(watched, p)
			}
		}
		var b strings.Builder
		if err := Encode(&b, snap); err != nil {
			return err
		}
		if b.String() == last {
			return nil
		}
		last = b.String()
		_, err := io.WriteString(cfg.Out, last)
		return err
	}
	if err := pass(); err != nil {
		return fmt.Errorf("writing to root: %w", err)
	}

	var tick <-chan time.Time
	if cfg.Resync > 0 {
		t := time.NewTicker(cfg.Resync)
		defer t.Stop()
		tick = t.C
	}
	if w == nil {
		t := time.NewTicker(time.Second)
		defer t.Stop()
		tick = t.C
	}
	for {
		again := false
		select {
		case <-ctx.Done():
			return nil
		case ev, ok := <-events:
			if !ok {
				return errors.New("inotify event channel closed")
			}
			again = relevant(ev, home, pdir)
			forgetMoved(w, watched, ev)
		case err := <-errs:
			cfg.Log.Warn().Err(err).Msg("inotify error: re-reading everything")
			again = true
		case <-tick:
			again = true
		}
		// Level-triggered: drain what is queued, then re-read once.
	drain:
		for {
			select {
			case ev := <-events:
				again = relevant(ev, home, pdir) || again
				forgetMoved(w, watched, ev)
			default:
				break drain
			}
		}
		if again {
			if err := pass(); err != nil {
				return fmt.Errorf("writing to root: %w", err)
			}
		}
	}
}

// forgetMoved drops the watch of a watched directory that was renamed or
// removed: inotify watches follow the inode, so a directory renamed away
// would still be watched under its old name, and whatever takes that name
// (another directory, a symlink) would not be. The next pass adds a watch
// on what the name is now.
func forgetMoved(w *fsnotify.Watcher, watched map[string]bool, ev fsnotify.Event) {
	if !ev.Has(fsnotify.Rename) && !ev.Has(fsnotify.Remove) {
		return
	}
	for _, p := range []string{ev.Name} {
		if watched[p] {
			_ = w.Remove(p)
			delete(watched, p)
		}
	}
}

// relevant reports whether an event can change a decision that matters at
// run time: an entry of profiles/ (created, removed, renamed), SOUL.md in a
// profile, profiles/ or config.yaml in HERMES_HOME. A gateway writing its
// own state file wakes the reader but is not re-read for: autostart only
// matters when a slot is made.
func relevant(ev fsnotify.Event, home, pdir string) bool {
	dir, base := filepath.Dir(ev.Name), filepath.Base(ev.Name)
	switch {
	case ev.Name == home, ev.Name == pdir:
		return true
	case dir == home:
		return base == profile.ProfilesDir || base == "config.yaml"
	case dir == pdir:
		return true
	case filepath.Dir(dir) == pdir:
		return base == profile.SoulFile
	}
	return false
}

// reportTooLong refuses, once each, the profiles whose names cannot make a
// working slot on root's scandir: one warning naming the limit and one
// boot-log skipped entry (reason=name-too-long), as the boot pass does.
// Names that went away are forgotten, so a profile created again is
// reported again; the set is bounded by profiles/'s entries.
func reportTooLong(cfg *ReaderConfig, dec profile.Decisions) {
	silent := cfg.Reported == nil
	if silent {
		cfg.Reported = map[string]bool{}
	}
	live := map[string]bool{}
	var entries []bootlog.Entry
	for _, d := range dec.Named {
		if d.Skip != profile.SkipTooLong {
			continue
		}
		live[d.Name] = true
		if cfg.Reported[d.Name] {
			continue
		}
		cfg.Reported[d.Name] = true
		if silent {
			continue
		}
		cfg.Log.Warn().Str("profile", d.Name).Str("path", d.Dir).Str("action", "skipped").Str("reason", d.Skip).
			Int("bytes", len(d.Name)).Int("max_bytes", cfg.NameLimit.MaxName()).
			Msgf("profile name too long for a slot (%s); rename the profile", cfg.NameLimit)
		entries = append(entries, bootlog.Entry{Time: time.Now(), Profile: d.Name, PriorState: d.State.Raw,
			Action: bootlog.Skipped, Reason: d.Skip, PriorExit: profile.ExitUnknown})
	}
	for n := range cfg.Reported {
		if !live[n] {
			delete(cfg.Reported, n)
		}
	}
	if len(entries) > 0 {
		if err := bootlog.Append(cfg.HermesHome, entries); err != nil {
			cfg.Log.Error().Err(err).Str("path", cfg.HermesHome+"/"+bootlog.File).Msg("boot log not written")
		}
	}
}
