package follow

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"time"

	"github.com/fsnotify/fsnotify"
	"github.com/rs/zerolog"

	"github.com/hermes-s6/hermes-s6/profile"
)

// DefaultResync is the reader's safety-net re-read: inotify reports every
// change the decisions depend on, so this only catches what nothing
// reported (a profile directory on another file system, a lost event), and
// it is long so that an idle reader stays at zero CPU time over a minute.
const DefaultResync = 5 * time.Minute

// ReaderConfig is the reader's side (running as the user).
type ReaderConfig struct {
	HermesHome string
	Getenv     func(string) string
	Argv       []string // the container's stripped argv (nil when unknown)
	Migrated   bool     // see DecideInput
	MaxRecords int      // sends at most this many records (root's cap)
	Resync     time.Duration
	Out        io.Writer // to root
	In         io.Reader // root's answers; EOF means root is gone
	// OnApplied, if set, is called once, after root answered "done" to the
	// first snapshot, with the decisions of that snapshot and the names
	// root could not publish (the boot log is written there).
	OnApplied func(ds []Decision, failed map[string]bool)
	Log       zerolog.Logger
}

// Reader watches HERMES_HOME and sends root a snapshot whenever the
// decisions change. It returns when ctx ends or root closes its end.
func Reader(ctx context.Context, cfg ReaderConfig) error {
	if cfg.MaxRecords <= 0 {
		cfg.MaxRecords = DefaultMaxRecords
	}
	if cfg.Resync == 0 {
		cfg.Resync = DefaultResync
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	answers := make(chan string, 64)
	go func() {
		// Root's answers; its end closing means root is gone: stop.
		defer cancel()
		sc := bufio.NewScanner(cfg.In)
		for sc.Scan() {
			select {
			case answers <- sc.Text():
			default:
			}
		}
	}()

	w, err := fsnotify.NewBufferedWatcher(1024)
	if err != nil {
		cfg.Log.Error().Err(err).Msg("inotify unavailable: re-reading HERMES_HOME every second instead")
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

	var last string
	first := true
	var firstDecisions []Decision
	failed := map[string]bool{}
	pass := func() error {
		// Watches before reading: nothing created after the listing is
		// missed.
		watch(home)
		watch(pdir)
		ds := Decide(DecideInput{HermesHome: home, Getenv: cfg.Getenv, Argv: cfg.Argv, Migrated: cfg.Migrated})
		live := map[string]bool{home: true, pdir: true}
		var snap Snapshot
		for _, d := range ds {
			if d.Name != profile.DefaultName {
				if d.Skip != profile.SkipInvalidName {
					live[d.Dir] = true
					watch(d.Dir)
				}
			}
			if d.Skip != "" {
				continue
			}
			if len(snap) >= cfg.MaxRecords-1 && d.Name != profile.DefaultName {
				continue
			}
			snap = append(snap, Record{Name: d.Name, Autostart: d.Autostart})
		}
		if n := countSlots(ds); n > len(snap) {
			cfg.Log.Warn().Int("profiles", n).Int("max", cfg.MaxRecords).
				Msg("more profiles than sealed mode's cap: only the first ones (by name) get a slot")
		}
		// Directories that are no longer profiles lose their watch.
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
		if first {
			firstDecisions = ds
		}
		if b.String() == last && !first {
			return nil
		}
		last = b.String()
		first = false
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
		case a := <-answers:
			if name, ok := strings.CutPrefix(a, "fail "); ok {
				failed[name] = true
			}
			if a == "done 1" && cfg.OnApplied != nil && firstDecisions != nil {
				cfg.OnApplied(firstDecisions, failed)
				firstDecisions = nil
			}
			continue
		case ev, ok := <-events:
			if !ok {
				return errors.New("inotify event channel closed")
			}
			again = relevant(ev, home, pdir)
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

func countSlots(ds []Decision) int {
	n := 0
	for _, d := range ds {
		if d.Skip == "" {
			n++
		}
	}
	return n
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
