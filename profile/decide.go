package profile

import (
	"os"
	"runtime"
	"sync"
	"sync/atomic"
)

// Options is what Decide reads besides HERMES_HOME's files.
type Options struct {
	Home string // HERMES_HOME
	// Getenv reads GATEWAY_MULTIPLEX_PROFILES and HERMES_GATEWAY_NO_SUPERVISE
	// (os.Getenv when nil).
	Getenv func(string) string
	// Argv is the container's stripped main command (StripArgv), nil when
	// unknown: it decides the dashboard case and the legacy migration.
	Argv []string
	// Workers is the number of profiles read at once (0: twice GOMAXPROCS).
	Workers int
	// MaxSlotName is the longest name that gets a slot (0: MaxSlotNameLen,
	// a 255-byte file name): the scandir's filesystem and s6-svscan may
	// allow less (slot.ScandirNameLimit). Longer valid names are
	// SkipTooLong.
	MaxSlotName int
}

// Decision is what HERMES_HOME says about one gateway slot.
type Decision struct {
	Name string // the profile's name (DefaultName for HERMES_HOME itself)
	Dir  string // the profile directory
	// Skip, when set, says why the profile gets no slot: SkipInvalidName,
	// SkipTooLong, SkipUnreadable (Err says why) or SkipReserved.
	Skip string
	Err  error
	// State is what its gateway_state.json says; Wants is its own intent
	// (State.Running(), or the legacy migration for the default profile).
	State State
	Wants bool
	// Autostart is the decision: the slot starts (no down file). A named
	// profile's is Wants, except when multiplexing, where it is false and
	// its intent is folded into the default's.
	Autostart bool
}

// Decisions is everything Decide decided: one Decision per slot to publish
// or profile to report, and the inputs that decided them.
type Decisions struct {
	// Dashboard: the container runs the dashboard; nothing is read and
	// nothing must be registered or written.
	Dashboard bool
	// Named holds every real profile of profiles/ (SOUL.md present), sorted
	// by name, skipped ones included (Skip set), and the entries that could
	// not be looked at (SkipUnreadable). Entries without SOUL.md are not
	// there at all: hermes ignores them, silently.
	Named []Decision
	// ListErr: profiles/ exists but cannot be listed (Named is then empty).
	ListErr error
	// Default is HERMES_HOME's own slot; it always exists.
	Default Decision
	// Migrate: the legacy migration applies (no gateway_state.json entry at
	// all, a supervised "gateway run" container command, env
	// HERMES_GATEWAY_NO_SUPERVISE not truthy). Default.Wants is then true;
	// writing the state (MigratedState) is the caller's.
	Migrate bool
	// Folded: multiplexing is on and the default slot autostarts only
	// because a named profile wants its gateway.
	Folded    bool
	Multiplex Multiplex
}

// Slot is a plain decision: a slot name and whether it autostarts.
type Slot struct {
	Name      string
	Autostart bool
}

// Slots returns the slots to publish: the named profiles that get one, by
// name, then the default profile.
func (d Decisions) Slots() []Slot {
	if d.Dashboard {
		return nil
	}
	out := make([]Slot, 0, len(d.Named)+1)
	for _, n := range d.Named {
		if n.Skip == "" {
			out = append(out, Slot{Name: n.Name, Autostart: n.Autostart})
		}
	}
	return append(out, Slot{Name: d.Default.Name, Autostart: d.Default.Autostart})
}

// Decide reads HERMES_HOME as hermes's own boot reconcile does and decides
// which slots exist and which autostart. It only reads (no stale file is
// removed, no migration written) and never fails: every problem is in the
// Decisions (Skip and Err, ListErr, Multiplex.Warning). Run it as the
// unprivileged user: it follows symlinks.
func Decide(o Options) Decisions {
	if o.Getenv == nil {
		o.Getenv = os.Getenv
	}
	if IsDashboard(o.Argv) {
		return Decisions{Dashboard: true}
	}
	var d Decisions
	d.Multiplex = ReadMultiplex(o.Home, o.Getenv)
	cands, err := Candidates(o.Home)
	d.ListErr = err

	named := make([]Decision, len(cands))
	maxSlot := o.MaxSlotName
	if maxSlot <= 0 {
		maxSlot = MaxSlotNameLen
	}
	forEach(len(cands), o.Workers, func(i int) { named[i] = decideNamed(cands[i], maxSlot) })
	d.Named = make([]Decision, 0, len(named))
	anyWants := false
	for _, n := range named {
		if n.Name == "" { // no SOUL.md: not a profile
			continue
		}
		if d.Multiplex.On {
			n.Autostart = false
		}
		anyWants = anyWants || n.Wants
		d.Named = append(d.Named, n)
	}

	def := Decision{Name: DefaultName, Dir: o.Home, State: ReadState(o.Home)}
	def.Wants = def.State.Running()
	if def.State.Reason == NoStateMissing && StateMissing(o.Home) &&
		!Truthy(o.Getenv(EnvNoSupervise)) && IsLegacyGateway(o.Argv) {
		d.Migrate, def.Wants = true, true
	}
	def.Autostart = def.Wants
	if d.Multiplex.On && anyWants && !def.Wants {
		d.Folded, def.Autostart = true, true
	}
	d.Default = def
	return d
}

// decideNamed looks at one entry of profiles/. It returns the zero
// Decision for an entry without SOUL.md. SOUL.md is looked at before the
// name: only a real profile's name is validated (and reported).
func decideNamed(c Candidate, maxSlot int) Decision {
	ok, err := IsProfile(c.Dir)
	d := Decision{Name: c.Name, Dir: c.Dir}
	switch {
	case err != nil:
		d.Skip, d.Err = SkipUnreadable, err
		return d
	case !ok:
		return Decision{}
	case c.Name == DefaultName:
		d.Skip = SkipReserved
	case !ValidName(c.Name):
		d.Skip = SkipInvalidName
	default:
		d.State = ReadState(c.Dir)
		d.Wants = d.State.Running()
		d.Autostart = d.Wants
		if len(c.Name) > maxSlot {
			// No slot, but a real profile: when multiplexing, the root
			// gateway serves it, so its intent is still folded.
			d.Skip, d.Autostart = SkipTooLong, false
		}
	}
	return d
}

// forEach calls fn(0..n-1) on up to workers goroutines (0: twice
// GOMAXPROCS): the work is system calls, so a few more workers than CPUs
// keep both busy while some wait. Each fn writes only its own index.
func forEach(n, workers int, fn func(i int)) {
	if workers <= 0 {
		workers = 2 * runtime.GOMAXPROCS(0)
	}
	workers = max(1, min(workers, n))
	var next atomic.Int64
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				fn(i)
			}
		}()
	}
	wg.Wait()
}
