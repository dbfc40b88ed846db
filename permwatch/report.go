package permwatch

import (
	"fmt"
	"io/fs"
	"slices"
	"time"

	"github.com/rs/zerolog"

	"github.com/hermes-s6/hermes-s6/perms"
)

// Log budget. Whatever the user does in the scandir (it can create,
// rename and delete entries as fast as it likes), perm-watcher writes at
// most about logRate lines a second about services, plus one summary line
// every SummaryInterval: a few KiB/s at most. Refusals are aggregated per
// service part (a count and the last reason); a repeat is never logged on
// its own, so alternating between two bad states does not defeat it.
const (
	logRate  = 4  // lines per second, sustained
	logBurst = 40 // lines at once (a boot with many services)
	// SummaryInterval is how often counted refusals and lines held back by
	// the budget are reported, in one line.
	SummaryInterval = 30 * time.Second
	summaryTop      = 5 // services named in a summary
)

type refusalState struct {
	service, path string
	count         int // since it started
	unreported    int // since the last summary
	last          string
}

// reporter is the loop's logger for per-service lines: a token bucket
// bounds their rate, and what it holds back is counted for the summary.
type reporter struct {
	log        zerolog.Logger
	now        func() time.Time
	tokens     float64
	last       time.Time
	suppressed int // lines held back since the last summary
	refusals   map[string]*refusalState
}

func newReporter(log zerolog.Logger) *reporter {
	return &reporter{log: log, now: time.Now, tokens: logBurst, refusals: map[string]*refusalState{}}
}

// allow takes a token if there is one.
func (r *reporter) allow() bool {
	now := r.now()
	if !r.last.IsZero() {
		r.tokens = min(logBurst, r.tokens+now.Sub(r.last).Seconds()*logRate)
	}
	r.last = now
	if r.tokens >= 1 {
		r.tokens--
		return true
	}
	r.suppressed++
	return false
}

// dirty reports whether a summary has something to say.
func (r *reporter) dirty() bool {
	if r.suppressed > 0 {
		return true
	}
	for _, s := range r.refusals {
		if s.unreported > 0 {
			return true
		}
	}
	return false
}

func (r *reporter) handedOver(service string, o perms.Outcome) {
	if !r.allow() {
		return
	}
	r.log.Info().Str("service", service).Str("path", o.Path).Str("action", o.Action).
		Int("uid", o.UID).Int("gid", o.GID).Str("mode", fmt.Sprintf("%04o", uint32(o.Mode.Perm())|specialBits(o.Mode))).
		Msg("handed over")
}

// refusal records the outcome of one look at a service part (key is the
// service name, or name+"/log"): err nil clears it.
func (r *reporter) refusal(service, key, path string, err error) {
	s := r.refusals[key]
	if err == nil {
		if s == nil {
			return
		}
		delete(r.refusals, key)
		if r.allow() {
			r.log.Info().Str("service", service).Str("path", path).Int("refusals", s.count).Msg("no longer refused")
		}
		return
	}
	if s == nil {
		s = &refusalState{service: service, path: path}
		r.refusals[key] = s
	}
	s.count++
	s.last = err.Error()
	if s.count == 1 && r.allow() {
		r.log.Warn().Str("service", service).Str("path", path).Err(err).
			Msg("refused to touch (left as is); repeats are counted and reported every " + SummaryInterval.String())
		return
	}
	s.unreported++
}

func (r *reporter) forget(key string) { delete(r.refusals, key) }

// summary writes one line with what was counted since the last one.
func (r *reporter) summary() {
	if !r.dirty() {
		return
	}
	var list []*refusalState
	total := 0
	for _, s := range r.refusals {
		if s.unreported > 0 {
			list = append(list, s)
			total += s.unreported
		}
	}
	slices.SortFunc(list, func(a, b *refusalState) int { return b.unreported - a.unreported })
	arr := zerolog.Arr()
	for i, s := range list {
		if i == summaryTop {
			break
		}
		arr = arr.Dict(zerolog.Dict().Str("service", s.service).Str("path", s.path).Int("count", s.unreported).Str("last", s.last))
	}
	r.log.Warn().Int("refusals", total).Int("services", len(list)).Int("lines_held_back", r.suppressed).
		Array("top", arr).Dur("period", SummaryInterval).
		Msg("since the last report: repeated refusals (counted, not logged one by one) and lines held back by the log budget")
	for _, s := range list {
		s.unreported = 0
	}
	r.suppressed = 0
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
