package permwatch

import (
	"errors"
	"io/fs"
	"path/filepath"
	"slices"
	"time"

	"github.com/hermes-s6/hermes-s6/perms"
)

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
		if staging(name) {
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
	if e.cfg.matchExclude(id.Name) || (id.Target != "" && e.cfg.matchExclude(filepath.Base(id.Target))) {
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
	if staging(name) {
		// Never written into, whatever the policy (see staging). In sealed
		// mode the dot entries are root's follower's (reconcile-profiles
		// --follow), which prepares its slot itself (perms.Prepare) before
		// the rename.
		e.forget(name)
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
	busy := false
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
