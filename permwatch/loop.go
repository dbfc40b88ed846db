package permwatch

import (
	"context"
	"errors"
	"time"

	"github.com/fsnotify/fsnotify"
)

// eventBuffer is the length of the Events channel. With the one watch on
// the scandir a registration makes about three events (the staged slot's
// creation, its rename out and in), so a short buffer still lets a burst
// pass without a goroutine switch per event; and it is short so that while
// the loop pauses reading (quietDelay) fsnotify's reader soon blocks and
// the kernel merges the user's repeated events instead of handing them all
// over.
const eventBuffer = 32

// quietDelay: see loop.
const quietDelay = 10 * time.Millisecond

func (e *engine) loop(ctx context.Context) error {
	var resync <-chan time.Time
	if e.cfg.Resync > 0 {
		t := time.NewTicker(e.cfg.Resync)
		defer t.Stop()
		resync = t.C
	}
	// Timers exist only while needed: an idle watcher is woken by nothing
	// but inotify, the resync and ctx.
	var degradedTick *time.Ticker
	followTimer := time.NewTimer(time.Hour)
	followTimer.Stop()
	followArmed := time.Time{}
	summaryTimer := time.NewTimer(time.Hour)
	summaryTimer.Stop()
	summaryArmed := false
	defer func() {
		if degradedTick != nil {
			degradedTick.Stop()
		}
		followTimer.Stop()
		summaryTimer.Stop()
	}()

	// After a batch of events that asked for nothing (the user's chmod or
	// write loop on the scandir or its entries: fsnotify always subscribes
	// to IN_ATTRIB and IN_MODIFY, v1.10 has no public way to leave them
	// out), the loop stops reading events for quietDelay: the kernel then
	// merges the identical events queued meanwhile, so such a loop costs
	// one wake-up per quietDelay instead of one per system call. A real
	// event waits at most that long.
	var quiet <-chan time.Time
	pending := map[string]bool{}
	for {
		var events chan fsnotify.Event
		var errs chan error
		if e.w != nil && quiet == nil {
			events, errs = e.w.Events, e.w.Errors
		}
		var degradedC <-chan time.Time
		if e.degraded {
			if degradedTick == nil {
				degradedTick = time.NewTicker(e.cfg.DegradedInterval)
			}
			degradedC = degradedTick.C
		} else if degradedTick != nil {
			degradedTick.Stop()
			degradedTick = nil
		}
		// The follow-up timer is armed for the earliest one due.
		if next, ok := e.nextFollowUp(); ok && (followArmed.IsZero() || next.Before(followArmed)) {
			followTimer.Reset(time.Until(next))
			followArmed = next
		}
		if !summaryArmed && e.rep.dirty() {
			summaryTimer.Reset(SummaryInterval)
			summaryArmed = true
		}

		full, followDue := false, false
		select {
		case <-ctx.Done():
			e.rep.summary()
			e.log.Info().Int("events", e.stats.Events).Int("queued", e.stats.Queued).
				Int("handles", e.stats.Handles).Int("follow_ups", e.stats.FollowUps).Int("full_passes", e.stats.FullPasses).
				Int("scandir_attr", e.stats.ScandirAttr).Int("watches", e.watchCount()).
				Msg("perm-watcher stopping")
			return nil
		case ev, ok := <-events:
			if !ok {
				e.dropWatcher(errors.New("inotify event channel closed"))
				continue
			}
			full = e.route(ev, pending)
		case err, ok := <-errs:
			if !ok {
				e.dropWatcher(errors.New("inotify error channel closed"))
				continue
			}
			full = e.watchError(err)
		case <-resync:
			full = true
		case <-degradedC:
			e.ensureWatch()
			full = true
		case <-followTimer.C:
			followArmed = time.Time{}
			followDue = true
		case <-summaryTimer.C:
			summaryArmed = false
			e.rep.summary()
			continue
		case <-quiet:
			quiet = nil
			continue
		}
		queuedBefore, eventsBefore := e.stats.Queued, e.stats.Events
		// Merge whatever else is already queued before doing the work.
	drain:
		for i := 0; i < 4096 && events != nil; i++ {
			select {
			case ev, ok := <-events:
				if !ok {
					break drain
				}
				full = e.route(ev, pending) || full
			case err, ok := <-errs:
				if !ok {
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
		if !full && !followDue && e.stats.Queued == queuedBefore && e.stats.Events > eventsBefore {
			quiet = time.After(quietDelay)
		}
		if full {
			clear(pending)
			if err := e.fullPass(); err != nil {
				e.log.Error().Err(err).Str("path", e.scandir).Msg("full pass failed; retrying at the next wake-up")
				e.setDegraded(err, limitNone)
			}
			continue
		}
		for name := range pending {
			delete(pending, name)
			if ctx.Err() != nil {
				break
			}
			e.handle(name)
		}
		if followDue {
			now := time.Now()
			for name, f := range e.followUps {
				if ctx.Err() != nil {
					break
				}
				if !f.due.After(now) {
					e.stats.FollowUps++
					e.handle(name)
				}
			}
		}
	}
}
