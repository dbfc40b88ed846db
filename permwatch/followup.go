package permwatch

import (
	"time"
)

// followUpDelays are when a service is looked at again after a look that
// found s6-supervise at work in it (it had created an object that had to be
// handed over, or was half-way through making event/). s6-supervise makes
// supervise/, control and event/ within milliseconds of its start; the
// later looks only cover a loaded machine. A look that finds everything
// as the policy wants ends the series.
var followUpDelays = []time.Duration{2 * time.Millisecond, 10 * time.Millisecond, 50 * time.Millisecond,
	250 * time.Millisecond, time.Second, 4 * time.Second}

type followUp struct {
	due  time.Time
	step int
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
