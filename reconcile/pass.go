package reconcile

import (
	"context"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"
	"golang.org/x/sys/unix"

	"github.com/hermes-s6/hermes-s6/bootlog"
	"github.com/hermes-s6/hermes-s6/profile"
	"github.com/hermes-s6/hermes-s6/s6"
	"github.com/hermes-s6/hermes-s6/slot"
)

// Boot log reasons of the pass itself (profile.Skip* are the others).
const (
	ReasonPublishFailed = "publish-failed"
	ReasonNoScandir     = "scandir-unusable"
	ReasonCancelled     = "cancelled"
)

// SlotOutcome is what the pass did for one profile.
type SlotOutcome struct {
	Entry     bootlog.Entry
	Result    slot.Result // zero when no slot was published
	Published bool
	Migrated  bool // default only: the legacy migration applied
}

// Summary is what a pass did.
type Summary struct {
	// Slots has one outcome per boot-log line, in boot-log order: named
	// profiles by name, the default profile last.
	Slots     []SlotOutcome
	Rescanned bool
	// RescanSkipped says why no rescan was asked for ("" if one was).
	RescanSkipped string
}

// Pass is everything after the privilege drop, as the unprivileged user:
// profiles, states, legacy migration, stale files, slot convergence,
// rescan, boot log. argv is the container's stripped argv (nil when
// unknown). Per-profile problems are logged and skipped; the only error
// (wrapping ErrSystem) is a scandir that cannot be listed, and then the
// boot log still gets an error line for every slot.
//
// The boot log is written last, in one append, with the default profile's
// line last: its appearance means the whole pass is done (slots published
// and rescan asked for), which is what operators and tests wait for.
func Pass(ctx context.Context, cfg Config, argv []string) (Summary, error) {
	var sum Summary
	if err := cfg.Validate(); err != nil {
		return sum, err
	}
	log := cfg.Log
	// File modes below must not depend on an inherited umask.
	unix.Umask(0o022)
	now := cfg.Now()

	var pub publisher
	var pubErr error
	if cfg.Sink != nil {
		pub = cfg.Sink
	} else {
		pub, pubErr = slot.NewPublisher(cfg.Scandir, cfg.DryRun)
	}
	if pubErr != nil {
		log.Error().Str("path", cfg.Scandir).Err(pubErr).Msg("scandir cannot be listed: no slot can be published")
	}

	if cfg.NameLimit == (slot.NameLimit{}) {
		lim, err := slot.ScandirNameLimit(cfg.Scandir, cfg.Proc)
		if err != nil {
			log.Warn().Err(err).Str("path", cfg.Scandir).Msg("cannot read the scandir's file name limit: assuming 255 bytes")
		}
		cfg.NameLimit = lim
	}

	// Every decision first (reading only), then the writing.
	dec := profile.Decide(profile.Options{Home: cfg.HermesHome, Getenv: cfg.Getenv, Argv: argv, Workers: cfg.Workers,
		MaxSlotName: cfg.NameLimit.MaxName()})
	if dec.Dashboard {
		log.Info().Str("action", "skipped").Str("reason", "dashboard").Strs("argv", argv).
			Msg("dashboard container: no gateway to reconcile")
		return sum, nil
	}
	if dec.ListErr != nil {
		log.Error().Str("path", cfg.HermesHome+"/"+profile.ProfilesDir).Err(dec.ListErr).
			Msg("profiles directory unreadable: only the default profile is reconciled")
	}
	logMultiplex(log, dec.Multiplex)

	// Named profiles, in parallel: they are independent. Each worker
	// writes only its own index.
	named := make([]namedOutcome, len(dec.Named))
	workers := cfg.Workers
	if workers == 0 {
		workers = 2 * runtime.GOMAXPROCS(0)
	}
	workers = max(1, min(workers, len(dec.Named)))
	var next atomic.Int64
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= len(dec.Named) {
					return
				}
				named[i] = reconcileNamed(ctx, &cfg, log, pub, pubErr, dec.Named[i], now)
			}
		}()
	}
	wg.Wait()

	for _, n := range named {
		if n.include {
			sum.Slots = append(sum.Slots, n.SlotOutcome)
		}
	}
	def := reconcileDefault(ctx, &cfg, log, pub, pubErr, argv, dec, now)
	sum.Slots = append(sum.Slots, def)
	if pubErr == nil {
		if err := pub.Close(); err != nil {
			log.Warn().Str("path", cfg.Scandir+"/"+slot.SharedName).Err(err).Msg("could not remove the shared slot files (a dot directory: s6-svscan ignores it)")
		}
	}

	// Rescan: once, after every slot is published.
	switch {
	case cfg.Sink != nil:
		// Sealed mode's reader: the slots go to root now, as one
		// snapshot; root publishes them and rescans.
		failed, err := cfg.Sink.Commit(ctx)
		if err != nil {
			sum.RescanSkipped = err.Error()
			log.Error().Err(err).Msg("the slots could not be handed to root")
		}
		for i := range sum.Slots {
			o := &sum.Slots[i]
			if !o.Published {
				continue
			}
			if reason, bad := failed[o.Entry.Profile]; bad || err != nil {
				if reason == "" {
					reason = ReasonPublishFailed
				}
				o.Published, o.Entry.Action, o.Entry.Reason = false, bootlog.Error, reason
			}
		}
		sum.Rescanned = err == nil
	case cfg.DryRun:
		sum.RescanSkipped = "dry-run"
	case pubErr != nil:
		sum.RescanSkipped = ReasonNoScandir
	default:
		det := s6.Detect(detectFS{proc: cfg.Proc, basedir: cfg.S6Basedir})
		if !det.Running {
			sum.RescanSkipped = det.Reason
			log.Info().Str("path", cfg.Scandir).Str("action", "skipped").Str("reason", det.Reason).
				Msg("s6-svscan not detected: not asking for a rescan")
			break
		}
		if err := s6.Rescan(cfg.Scandir); err != nil {
			sum.RescanSkipped = err.Error()
			log.Error().Str("path", cfg.Scandir).Str("action", "error").Err(err).Msg("s6-svscan detected but the rescan failed")
			break
		}
		sum.Rescanned = true
		log.Info().Str("path", cfg.Scandir).Str("action", "rescanned").Msg("asked s6-svscan to rescan")
	}

	entries := make([]bootlog.Entry, len(sum.Slots))
	for i, s := range sum.Slots {
		entries[i] = s.Entry
	}
	if cfg.DryRun {
		var b strings.Builder
		for _, s := range sum.Slots {
			b.WriteString(dryRunLine(s))
		}
		_, _ = fmt.Fprint(cfg.Out, b.String())
	} else if err := bootlog.Append(cfg.HermesHome, entries); err != nil {
		// Not fatal: the slots are in place and the gateways will run.
		log.Error().Str("path", cfg.HermesHome+"/"+bootlog.File).Err(err).Msg("boot log not written")
	}
	if pubErr != nil {
		return sum, fmt.Errorf("%w: scandir %s: %w", ErrSystem, cfg.Scandir, pubErr)
	}
	return sum, nil
}

type namedOutcome struct {
	SlotOutcome
	include bool // gets a boot-log line
}

// publisher is where the pass's slots go: the scandir (*slot.Publisher),
// or a Sink.
type publisher interface {
	Publish(slot.Spec) (slot.Result, error)
	Close() error
}

func reconcileNamed(ctx context.Context, cfg *Config, log zerolog.Logger, pub publisher, pubErr error,
	d profile.Decision, now time.Time) namedOutcome {
	o := namedOutcome{include: true}
	o.Entry = bootlog.Entry{Time: now, Profile: d.Name, PriorState: d.State.Raw, PriorExit: profile.ExitUnknown}
	ev := func(e *zerolog.Event) *zerolog.Event { return e.Str("profile", d.Name).Str("path", d.Dir) }
	if d.Skip != "" {
		o.Entry.Action, o.Entry.Reason = bootlog.Skipped, d.Skip
	}
	switch d.Skip {
	case "":
	case profile.SkipReserved:
		ev(log.Warn()).Str("action", "skipped").Str("reason", d.Skip).
			Msg("profiles/default is ignored: the name is reserved for the root profile (HERMES_HOME itself)")
		return namedOutcome{}
	case profile.SkipInvalidName:
		ev(log.Warn()).Str("action", "skipped").Str("reason", d.Skip).
			Msgf("invalid profile name: must match ^[a-z0-9][a-z0-9_-]*$ and be at most %d bytes", profile.MaxNameLen)
		return o
	case profile.SkipTooLong:
		ev(log.Warn()).Str("action", "skipped").Str("reason", d.Skip).Int("bytes", len(d.Name)).Int("max_bytes", cfg.NameLimit.MaxName()).
			Msgf("profile name too long for a slot (%s); rename the profile", cfg.NameLimit)
		return o
	default: // profile.SkipUnreadable
		ev(log.Error()).Str("action", "skipped").Str("reason", d.Skip).Err(d.Err).Msg("profile directory unreadable")
		return o
	}
	o.Entry.PriorExit = profile.PriorExit(d.Dir)
	if !cfg.DryRun {
		removeStale(log, d.Name, d.Dir)
	}
	spec := slot.Spec{Name: d.Name, User: cfg.User, CommandDir: cfg.CommandDir, Home: cfg.GatewayHome, Down: !d.Autostart}
	publish(ctx, cfg, log, pub, pubErr, &o.SlotOutcome, spec, d.State)
	return o
}

func reconcileDefault(ctx context.Context, cfg *Config, log zerolog.Logger, pub publisher, pubErr error,
	argv []string, dec profile.Decisions, now time.Time) SlotOutcome {
	home := cfg.HermesHome
	d := dec.Default
	o := SlotOutcome{Entry: bootlog.Entry{Time: now, Profile: profile.DefaultName, PriorState: d.State.Raw}}
	if dec.Migrate {
		o.Migrated = true
		ev := log.Info().Str("profile", profile.DefaultName).Str("path", home+"/"+profile.StateFile).
			Str("action", "migrated").Str("reason", "legacy-container-cmd").Strs("argv", argv)
		if cfg.DryRun {
			ev.Msg("would write the legacy migration's state: the container command is a supervised gateway run")
		} else if err := profile.WriteMigratedState(home, now); err != nil {
			log.Error().Str("profile", profile.DefaultName).Str("path", home+"/"+profile.StateFile).Err(err).
				Msg("legacy migration: state not written; the default gateway starts anyway for this boot")
		} else {
			ev.Msg("legacy migration: the container command is a supervised gateway run, state written as running")
		}
	}
	if dec.Folded {
		log.Info().Str("profile", profile.DefaultName).Str("reason", "multiplex").
			Msg("a named profile wants its gateway running: folded into the default gateway")
	}
	o.Entry.PriorExit = profile.PriorExit(home)
	if !cfg.DryRun {
		removeStale(log, profile.DefaultName, home)
	}
	spec := slot.Spec{Name: profile.DefaultName, User: cfg.User, CommandDir: cfg.CommandDir, Home: cfg.GatewayHome, Down: !d.Autostart}
	publish(ctx, cfg, log, pub, pubErr, &o, spec, d.State)
	return o
}

// logMultiplex says how multiplexing was decided: a warning when
// config.yaml could not be used, once.
func logMultiplex(log zerolog.Logger, m profile.Multiplex) {
	if m.Warning != nil {
		log.Warn().Str("source", m.Source).Bool("multiplex", false).Err(m.Warning).Msg("gateway config not usable: multiplexing off")
		return
	}
	ev := log.Debug()
	if m.On {
		ev = log.Info()
	}
	ev.Str("source", m.Source).Bool("multiplex", m.On).Msg("gateway multiplexing decided")
}

func publish(ctx context.Context, cfg *Config, log zerolog.Logger, pub publisher, pubErr error,
	o *SlotOutcome, spec slot.Spec, st profile.State) {
	ev := func(e *zerolog.Event) *zerolog.Event {
		return e.Str("profile", spec.Name).Str("path", cfg.Scandir+"/"+slot.DirName(spec.Name))
	}
	if pubErr != nil {
		o.Entry.Action, o.Entry.Reason = bootlog.Error, ReasonNoScandir
		return
	}
	if ctx.Err() != nil {
		o.Entry.Action, o.Entry.Reason = bootlog.Error, ReasonCancelled
		ev(log.Error()).Str("action", "error").Str("reason", ReasonCancelled).Msg("not published: cancelled")
		return
	}
	res, err := pub.Publish(spec)
	o.Result = res
	if err != nil {
		o.Entry.Action, o.Entry.Reason = bootlog.Error, ReasonPublishFailed
		ev(log.Error()).Str("action", "error").Str("reason", ReasonPublishFailed).Err(err).Msg("slot not published")
		return
	}
	o.Published = true
	o.Entry.Action = bootlog.Started
	if spec.Down {
		o.Entry.Action = bootlog.Registered
	}
	e := ev(log.Info()).Str("action", o.Entry.Action).Str("change", res.Summary()).Bool("down", spec.Down)
	if st.Present() {
		e = e.Str("state", st.Raw)
	} else {
		e = e.Str("state_reason", st.Reason)
	}
	if cfg.DryRun {
		e.Msg("dry run: slot would be published")
	} else {
		e.Msg("slot published")
	}
}

func removeStale(log zerolog.Logger, name, dir string) {
	removed, err := profile.RemoveStale(dir)
	for _, f := range removed {
		log.Debug().Str("profile", name).Str("path", dir+"/"+f).Str("action", "removed").Msg("stale runtime file removed")
	}
	if err != nil {
		log.Warn().Str("profile", name).Str("path", dir).Err(err).Msg("stale runtime file not removed")
	}
}

// dryRunLine is one line of --dry-run output per slot.
func dryRunLine(s SlotOutcome) string {
	var b strings.Builder
	b.WriteString("profile=" + bootlog.Value(s.Entry.Profile))
	ps := s.Entry.PriorState
	if ps == "" {
		ps = "none"
	}
	b.WriteString(" prior_state=" + bootlog.Value(ps))
	b.WriteString(" action=" + s.Entry.Action)
	if s.Published {
		b.WriteString(" slot=" + bootlog.Value(s.Result.Path) + " change=" + bootlog.Value(s.Result.Summary()))
	}
	if s.Entry.Reason != "" {
		b.WriteString(" reason=" + bootlog.Value(s.Entry.Reason))
	}
	if s.Migrated {
		b.WriteString(" migrate=legacy-container-cmd")
	}
	b.WriteByte('\n')
	return b.String()
}
