package follow

import (
	"github.com/hermes-s6/hermes-s6/profile"
)

// Decision is what the reader decided for one entry of HERMES_HOME: a slot
// (Skip empty) with its autostart, or a skipped profile (Skip is the boot
// log reason). PriorState and PriorExit are for the boot log only.
type Decision struct {
	Name       string
	Autostart  bool
	Skip       string
	PriorState string
	PriorExit  string
	Dir        string // the profile's directory (HERMES_HOME for default)
}

// SkipNotProfile marks a directory of profiles/ without SOUL.md: ignored
// silently (no slot, no boot log line), but watched.
const SkipNotProfile = "not-a-profile"

// DecideInput is what a decision depends on besides HERMES_HOME.
type DecideInput struct {
	HermesHome string
	Getenv     func(string) string
	// Argv is the container's stripped argv (nil when unknown).
	Argv []string
	// Migrated: the legacy migration applied at boot (the default profile
	// runs even though its state file is missing).
	Migrated bool
}

// Decide runs the contract's decisions on HERMES_HOME, as the user: which
// profiles exist, their autostart, multiplex folding, the dashboard. The
// default profile comes last. A dashboard container gets no decision at
// all (no slot, not even default).
//
// It is the same profile package the boot pass (package reconcile) uses.
func Decide(in DecideInput) []Decision {
	if profile.IsDashboard(in.Argv) {
		return nil
	}
	multiplex := profile.Truthy(in.Getenv("GATEWAY_MULTIPLEX_PROFILES"))
	cands, _ := profile.Candidates(in.HermesHome)
	out := make([]Decision, 0, len(cands)+1)
	anyRunning := false
	for _, c := range cands {
		d := Decision{Name: c.Name, Dir: c.Dir, PriorExit: profile.ExitUnknown}
		switch c.Skip {
		case profile.SkipReserved:
			continue
		case profile.SkipInvalidName:
			d.Skip = c.Skip
			out = append(out, d)
			continue
		}
		ok, err := profile.IsProfile(c.Dir)
		if err != nil {
			d.Skip = profile.SkipUnreadable
			out = append(out, d)
			continue
		}
		if !ok {
			// Not (yet) a profile: no slot, no boot log line, but the
			// reader watches it for SOUL.md.
			d.Skip = SkipNotProfile
			out = append(out, d)
			continue
		}
		if !SlotName(c.Name) {
			d.Skip = "name-too-long"
			out = append(out, d)
			continue
		}
		st := profile.ReadState(c.Dir)
		d.PriorState = st.Raw
		d.Autostart = st.Running() && !multiplex
		anyRunning = anyRunning || st.Running()
		out = append(out, d)
	}
	st := profile.ReadState(in.HermesHome)
	def := Decision{Name: profile.DefaultName, Dir: in.HermesHome, PriorState: st.Raw,
		Autostart: st.Running() || in.Migrated || (multiplex && anyRunning)}
	return append(out, def)
}
