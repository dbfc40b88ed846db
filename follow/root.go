// Package follow is sealed mode's following longrun (reconcile-profiles
// --follow): gateway slots follow the profiles continuously, while root
// never opens anything under HERMES_HOME.
//
// Two processes, one binary:
//
//   - root (Root): owns the scandir. It starts the reader as the
//     unprivileged user, reads complete snapshots of (name, autostart)
//     records from it (protocol.go), validates every record again as hostile
//     input, and makes the scandir's gateway-* slots equal to the last
//     snapshot: new slots from the fixed template (package slot), with
//     supervise/ and supervise/control pre-created by package perms before
//     s6-svscan can see them; removed slots stopped, renamed out, their
//     supervisors told to exit, then deleted (remove.go). If the reader
//     dies, root keeps the slots it has and restarts it with backoff.
//   - the reader (Reader), the same binary re-executed with a hidden flag
//     under the user's credentials: it watches HERMES_HOME with inotify
//     (level-triggered: an event only wakes it; it then re-reads and
//     re-decides everything, with a bounded safety-net resync) and writes a
//     snapshot whenever the decisions change.
//
// Root bounds what the reader can make it do: line length and record count
// per snapshot (protocol.go), one snapshot read per MinInterval (a faster
// reader blocks on its pipe), and a token bucket on slot changes (creates,
// removals, down flips). Root's answers to the reader never block root.
package follow

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"

	"github.com/hermes-s6/hermes-s6/s6"
	"github.com/hermes-s6/hermes-s6/slot"
)

// Defaults of RootConfig.
const (
	DefaultMinInterval  = 10 * time.Millisecond
	DefaultRate         = 100 // slot changes per second, sustained
	DefaultBurst        = 500 // slot changes at once (300 profiles created at once pass)
	DefaultStopTimeout  = 5 * time.Second
	DefaultReadyTimeout = 30 * time.Second
	DefaultBackoffMin   = 100 * time.Millisecond
	DefaultBackoffMax   = 30 * time.Second
)

// scanBatch bounds the new slots renamed in between two scans (a variable
// for tests). s6-svscan spawns two supervisors per new slot inside its scan,
// one fork and exec at a time: 20-30 ms each on a loaded 2-core machine
// under churn, so a scan that finds 220 new slots ran for over 10 s (strace
// of s6-svscan, TestSealedChurn). Root holds the scan gate for the whole
// scan, so removals waited behind it, and slots a churning hermes had
// already deleted were spawned first. In batches, each scan stays short and
// the next batch is taken from the latest snapshot.
var scanBatch = 32

// Stream is one running reader as root sees it.
type Stream struct {
	Out  io.Reader // the reader's snapshots
	Ack  AckWriter // root's answers (may be nil)
	Wait func() error
	Kill func()
}

// AckWriter receives root's answers; Write must never block for long
// (the production one has a short write deadline).
type AckWriter interface {
	Write(p []byte) (int, error)
}

// Starter starts a reader; boot is true for the first one of this root
// process (it may then do the boot pass's one-time work).
type Starter func(ctx context.Context, boot bool) (*Stream, error)

// RootConfig is root's side.
type RootConfig struct {
	Scandir     string
	User        string // baked by name into the slot scripts
	CommandDir  string
	GatewayHome string
	// Drop is the user's ids for the slot scripts (slot.Spec.Drop): root
	// runs every sealed slot's supervisors, so they drop without id(1).
	Drop *slot.IDs
	// MaxName is the longest profile name a slot can have on this scandir
	// (slot.NameLimit.MaxName; 0: 247): a longer record is a violation.
	MaxName int

	Start Starter
	// Prepare pre-creates supervise/ and supervise/control (and log/'s) in
	// the staging directory stagingName of the scandir (package perms). It
	// is required: without it the user's first s6-svc would meet root's
	// 0700 supervise/.
	Prepare func(stagingName string) error

	MaxRecords   int           // per snapshot (DefaultMaxRecords)
	MinInterval  time.Duration // between two snapshots read (DefaultMinInterval)
	Rate         float64       // slot changes per second (DefaultRate)
	Burst        int           // slot changes at once (DefaultBurst)
	StopTimeout  time.Duration // waiting for a removed gateway to be down
	ReadyTimeout time.Duration // readiness is signalled after this even without a snapshot
	BackoffMin   time.Duration
	BackoffMax   time.Duration

	// Scan asks s6-svscan to rescan and returns once that scan is over
	// (s6.Scan with DefaultScanTimeout when nil): after new slots are
	// made, and after removed ones are renamed out (remove.go: never a
	// prune). Root never changes the scandir during one (scan.go).
	Scan func(scandir string) error

	// Proc is the procfs root ("/proc" when empty): removal looks there
	// for supervisors still running in a removed slot (s6.RootProcsIn).
	Proc string

	Ready func() // called once: first snapshot applied, or ReadyTimeout
	Log   zerolog.Logger
}

func (c *RootConfig) defaults() {
	if c.Proc == "" {
		c.Proc = "/proc"
	}
	if c.MaxRecords <= 0 {
		c.MaxRecords = DefaultMaxRecords
	}
	if c.MinInterval <= 0 {
		c.MinInterval = DefaultMinInterval
	}
	if c.Rate <= 0 {
		c.Rate = DefaultRate
	}
	if c.Burst <= 0 {
		c.Burst = DefaultBurst
	}
	if c.StopTimeout <= 0 {
		c.StopTimeout = DefaultStopTimeout
	}
	if c.ReadyTimeout <= 0 {
		c.ReadyTimeout = DefaultReadyTimeout
	}
	if c.BackoffMin <= 0 {
		c.BackoffMin = DefaultBackoffMin
	}
	if c.BackoffMax <= 0 {
		c.BackoffMax = DefaultBackoffMax
	}
	if c.Scan == nil {
		c.Scan = func(scandir string) error { return s6.Scan(scandir, DefaultScanTimeout) }
	}
}

// delivery is the latest snapshot of one reader, with where to answer.
type delivery struct {
	snap Snapshot
	seq  int
	ack  AckWriter
}

// mailbox keeps only the latest snapshot: level-triggered, root never
// applies a stale one and never queues more than one.
type mailbox struct {
	mu     sync.Mutex
	latest *delivery
	wake   chan struct{}
}

func (m *mailbox) put(d *delivery) {
	m.mu.Lock()
	m.latest = d
	m.mu.Unlock()
	select {
	case m.wake <- struct{}{}:
	default:
	}
}

func (m *mailbox) take() *delivery {
	m.mu.Lock()
	defer m.mu.Unlock()
	d := m.latest
	m.latest = nil
	return d
}

// Stats count root's work (logged at stop, read by tests and benchmarks).
type Stats struct {
	Snapshots  int // snapshots read
	Violations int // streams ended by a protocol violation
	Readers    int // readers started
	Created    int
	Removed    int
	Flipped    int // down added or removed
	Failed     int
	Throttled  int // times the change budget ran out
	Remade     int // new slots s6-svscan never supervised, made again (verify.go)
	Suspended  int // slots taken out for a while: hermes kept telling their supervisors to exit (guard.go)
}

type root struct {
	cfg     *RootConfig
	log     zerolog.Logger
	box     mailbox
	applied map[string]bool // slot name -> autostart, as last published
	// removing: slots being stopped and removed; not touched meanwhile.
	removing map[string]bool
	remQ     *batches[string]  // to stop and rename out (remover)
	reapQ    *batches[removal] // renamed out, to reap and delete (reaper)
	removed  chan int          // so many slots were renamed out
	// gone counts removed slots renamed out of the scandir whose
	// directories are not deleted yet: s6-svscan may still count their
	// supervisors against its service limit (remove.go).
	gone   atomic.Int64
	reaped chan []string // gone directories were deleted (their names): room for new slots
	gate   *scanGate
	// scandirReal is the scandir's path with symlinks resolved, as
	// /proc/<pid>/cwd shows it (realPath).
	scandirReal string
	bucket      bucket
	pending     *delivery // applied partially (budget), to finish
	last        *delivery // the last one applied (verify.go makes slots again from it)
	// unverified: new slots whose supervisors have not both listened
	// yet, with when they were made (verify.go).
	unverified map[string]time.Time
	guard      *guard
	ready      bool
	// full: new slots wait for room under the cap (the slots plus the
	// removed ones s6-svscan may still hold); logged once when it starts
	// and once when it ends.
	full  bool
	mu    sync.Mutex
	stats Stats
}

// Root runs root's side until ctx ends. It returns nil on cancellation.
func Root(ctx context.Context, cfg RootConfig) error {
	cfg.defaults()
	if cfg.Start == nil || cfg.Prepare == nil {
		return errors.New("follow: RootConfig.Start and Prepare are required")
	}
	r := &root{
		cfg:        &cfg,
		log:        cfg.Log,
		box:        mailbox{wake: make(chan struct{}, 1)},
		applied:    map[string]bool{},
		removing:   map[string]bool{},
		unverified: map[string]time.Time{},
		guard:      newGuard(),
		remQ:       newBatches[string](),
		reapQ:      newBatches[removal](),
		removed:    make(chan int, 1),
		reaped:     make(chan []string, 1),
		bucket:     newBucket(cfg.Rate, cfg.Burst),
	}
	r.gate = newScanGate(func() error { return cfg.Scan(cfg.Scandir) })
	var err error
	if r.scandirReal, err = filepath.EvalSymlinks(cfg.Scandir); err == nil {
		r.scandirReal, err = filepath.Abs(r.scandirReal)
	}
	if err != nil {
		return fmt.Errorf("follow: the scandir %s: %w", cfg.Scandir, err)
	}
	// Slots already there (this longrun restarted within a container
	// run) are kept until the reader's first snapshot says otherwise, and
	// converged once then.
	if ents, err := os.ReadDir(cfg.Scandir); err == nil {
		for _, e := range ents {
			if strings.HasPrefix(e.Name(), GonePrefix) {
				// Left by a previous run of this longrun: deleted once
				// no supervisor runs in it (remove.go).
				r.gone.Add(1)
				r.reapQ.put(removal{gone: filepath.Join(cfg.Scandir, e.Name())})
			}
		}
	}
	existing, err := r.slots()
	if err != nil {
		return err
	}
	r.log.Info().Str("path", cfg.Scandir).Int("existing_slots", len(existing)).Int("max_records", cfg.MaxRecords).
		Float64("rate", cfg.Rate).Int("burst", cfg.Burst).Msg("sealed follower starting")

	// Root returns only once the readers, the remover and the reaper have
	// ended: each of their waits ends with ctx (pause), so a batch cut
	// short leaves slots in the scandir or dot-named directories beside
	// it, which the next run removes or deletes. Nothing of this run logs
	// or touches the scandir after Root returns.
	var wg sync.WaitGroup
	defer wg.Wait()
	defer r.closeExits()
	for _, f := range []func(context.Context){r.readers, r.remover, r.reaper} {
		wg.Add(1)
		go func() { defer wg.Done(); f(ctx) }()
	}

	readyTimer := time.NewTimer(cfg.ReadyTimeout)
	defer readyTimer.Stop()
	var budget <-chan time.Time
	var budgetTimer *time.Timer
	var verifyC <-chan time.Time
	var resumeTimer *time.Timer
	defer func() {
		if resumeTimer != nil {
			resumeTimer.Stop()
		}
	}()
	var resumeC <-chan time.Time
	var resumeAt time.Time
	for {
		if verifyC == nil && len(r.unverified) > 0 {
			verifyC = time.After(verifyEvery)
		}
		if at := r.nextResume(); !at.IsZero() && (resumeC == nil || at.Before(resumeAt)) {
			if resumeTimer != nil {
				resumeTimer.Stop()
			}
			resumeAt = at
			resumeTimer = time.NewTimer(time.Until(at))
			resumeC = resumeTimer.C
		}
		select {
		case <-ctx.Done():
			wg.Wait() // the stats are final once the remover and the reaper have ended
			r.mu.Lock()
			st := r.stats
			r.mu.Unlock()
			r.log.Info().Interface("stats", st).Msg("sealed follower stopping")
			return nil
		case <-readyTimer.C:
			if !r.ready {
				r.log.Error().Dur("after", cfg.ReadyTimeout).Msg("no snapshot from the reader yet: signalling readiness anyway so that the container's boot goes on; slots follow when the reader reports")
				r.signalReady()
			}
			continue
		case <-r.box.wake:
			if d := r.box.take(); d != nil {
				r.pending = d
			}
		case n := <-r.removed:
			r.finishRemovals(n)
		case names := <-r.reaped:
			r.finishReap(names)
		case <-budget:
			budget = nil
		case <-verifyC:
			verifyC = nil
			r.verify()
		case name := <-r.guard.events:
			r.noteExit(name)
		case <-resumeC:
			// A suspension ended (guard.go): the latest snapshot brings
			// the slot back.
			resumeC = nil
			r.resume(time.Now())
			if r.pending == nil {
				r.pending = r.last
			}
		}
		if r.pending == nil {
			continue
		}
		if wait := r.apply(r.pending); wait > 0 {
			if budgetTimer != nil {
				budgetTimer.Stop()
			}
			budgetTimer = time.NewTimer(wait)
			budget = budgetTimer.C
		}
	}
}

func (r *root) count(f func(*Stats)) {
	r.mu.Lock()
	f(&r.stats)
	r.mu.Unlock()
}

func (r *root) signalReady() {
	if r.ready {
		return
	}
	r.ready = true
	if r.cfg.Ready != nil {
		r.cfg.Ready()
	}
}

// realPath is path, a directory in the scandir, as /proc/<pid>/cwd shows
// it.
func (r *root) realPath(path string) string {
	rel, err := filepath.Rel(r.cfg.Scandir, path)
	if err != nil {
		return path
	}
	return filepath.Join(r.scandirReal, rel)
}

// slots lists the gateway slots in the scandir (real directories named
// gateway-<valid name>) and removes stale staging directories.
func (r *root) slots() (map[string]bool, error) {
	ents, err := os.ReadDir(r.cfg.Scandir)
	if err != nil {
		return nil, fmt.Errorf("listing the scandir %s: %w", r.cfg.Scandir, err)
	}
	out := map[string]bool{}
	for _, e := range ents {
		n := e.Name()
		if strings.HasPrefix(n, slot.TmpPrefix) && strings.HasSuffix(n, ".tmp") {
			// A staging directory left by a crash: ours (the scandir is
			// root's in sealed mode), never renamed in, so never scanned.
			_ = os.RemoveAll(filepath.Join(r.cfg.Scandir, n))
			continue
		}
		name, ok := strings.CutPrefix(n, slot.Prefix)
		if !ok || !e.IsDir() || !SlotName(name) {
			continue
		}
		out[name] = true
	}
	return out, nil
}

// apply makes the slots match d as far as the change budget, the cap and
// one batch of new slots allow. It returns 0 when d is fully applied (or
// abandoned, or waits for a removal to end), else how long to wait before
// going on: for the budget, or a moment before the next batch.
func (r *root) apply(d *delivery) time.Duration {
	r.last = d
	present, err := r.slots()
	if err != nil {
		r.log.Error().Err(err).Msg("cannot list the scandir: snapshot not applied; retrying at the next one")
		r.pending = nil
		return 0
	}
	pub, err := slot.NewPublisher(r.cfg.Scandir, false)
	if err != nil {
		r.log.Error().Err(err).Str("path", r.cfg.Scandir).Msg("scandir unusable: snapshot not applied")
		r.pending = nil
		return 0
	}
	pub.BeforeRename = r.cfg.Prepare
	want := make(map[string]bool, len(d.snap))
	for _, rec := range d.snap {
		want[rec.Name] = rec.Autostart
	}
	var fails []string
	// throttled: the change budget ran out (a timer resumes). waiting: a
	// slot must wait for a removal (its own name's, or room under the
	// cap); the end of a removal wakes the loop (r.removed, r.reaped).
	var created int
	var throttled, waiting, more bool
	// Slots in the scandir plus removed ones whose supervisors may still
	// run never exceed the cap: a snapshot that swaps names must not have
	// s6-svscan start the new slots' supervisors before the old ones are
	// gone (past its service limit s6-svscan starts none at all).
	room := r.cfg.MaxRecords - len(present) - int(r.gone.Load())
	// Every slot renamed in goes in between two scans (scan.go); the scan
	// after them is over before the loop goes on.
	gen, _ := r.gate.change(func() error {
		fails, created, throttled, waiting, more = r.publish(pub, d, present, &room)
		return nil
	})
	if err := pub.Close(); err != nil {
		r.log.Warn().Err(err).Str("path", r.cfg.Scandir+"/"+slot.SharedName).Msg("could not remove the shared slot files (a dot directory: s6-svscan ignores it)")
	}
	if created > 0 {
		if err := r.gate.scanSince(gen); err != nil {
			r.log.Error().Err(err).Str("path", r.cfg.Scandir).Msg("scan failed: new slots are picked up at s6-svscan's next scan")
		}
	}
	// Removals: present but not wanted (the default slot too: a dashboard
	// container wants none).
	var gone []string
	for name := range present {
		if _, ok := want[name]; !ok && !r.removing[name] {
			gone = append(gone, name)
		}
	}
	sort.Strings(gone)
	for _, name := range gone {
		if throttled || !r.bucket.take(time.Now()) {
			throttled = true
			break
		}
		r.startRemoval(name)
	}
	for name := range r.applied {
		if !present[name] && !r.removing[name] {
			if _, ok := want[name]; !ok {
				delete(r.applied, name)
			}
		}
	}
	r.answer(d, fails, throttled || waiting || more)
	if !r.ready && !throttled && !more {
		r.log.Info().Int("slots", len(d.snap)).Msg("first snapshot applied")
		r.signalReady()
	}
	switch {
	case throttled:
		r.count(func(s *Stats) { s.Throttled++ })
		wait := r.bucket.wait(time.Now())
		r.log.Debug().Dur("wait", wait).Msg("slot change budget exhausted: the rest of the snapshot follows")
		return max(wait, time.Millisecond)
	case more:
		// The next batch, once the loop has looked for a newer snapshot
		// (this batch's scan is over).
		return time.Millisecond
	case waiting:
		r.log.Debug().Int("gone", int(r.gone.Load())).Msg("slots wait for removals (their own name's, or room under the cap): they follow when those end")
		return 0
	case len(fails) > 0:
		// A slot that could not be made is tried again (each try costs
		// from the change budget), without waiting for the reader.
		r.count(func(s *Stats) { s.Throttled++ })
		return time.Second
	}
	r.pending = nil
	return 0
}

// publish makes or updates the slots of d's records (under the scan gate),
// room being how many new slots the cap still allows.
func (r *root) publish(pub *slot.Publisher, d *delivery, present map[string]bool, room *int) (fails []string, created int, throttled, waiting, more bool) {
	full := 0
	defer func() { r.logFull(full, len(present)) }()
	now := time.Now()
	for _, rec := range d.snap {
		if r.isSuspended(rec.Name, now) {
			continue
		}
		if r.removing[rec.Name] {
			waiting = true
			continue
		}
		last, known := r.applied[rec.Name]
		if present[rec.Name] && known && last == rec.Autostart {
			continue
		}
		if !present[rec.Name] && *room <= 0 {
			waiting = true
			full++
			continue
		}
		if !present[rec.Name] && created >= scanBatch {
			more = true
			continue
		}
		if !r.bucket.take(time.Now()) {
			throttled = true
			break
		}
		res, err := pub.Publish(slot.Spec{Name: rec.Name, User: r.cfg.User, CommandDir: r.cfg.CommandDir,
			Home: r.cfg.GatewayHome, Down: !rec.Autostart, Drop: r.cfg.Drop})
		ev := r.log.Info()
		if err != nil {
			ev = r.log.Error().Err(err)
			fails = append(fails, rec.Name)
			r.count(func(s *Stats) { s.Failed++ })
			delete(r.applied, rec.Name)
		} else {
			r.applied[rec.Name] = rec.Autostart
			switch {
			case res.Created:
				created++
				r.noteNew(rec.Name)
				*room--
				r.count(func(s *Stats) { s.Created++ })
			case len(res.Changed) > 0:
				r.count(func(s *Stats) { s.Flipped++ })
			}
			if _, ok := r.guard.subs[rec.Name]; !ok && !res.Created {
				// A slot this process did not make (it was there when
				// the follower started): verified like a new one, which
				// subscribes to its exits.
				r.noteNew(rec.Name)
			}
		}
		ev.Str("profile", rec.Name).Str("path", res.Path).Str("change", res.Summary()).Bool("autostart", rec.Autostart).Msg("slot published")
	}
	return fails, created, throttled, waiting, more
}

// logFull logs when new slots start waiting for room under the cap (held
// counts the slots present) and when they no longer do: one line each, not
// one per snapshot, whatever the churn.
func (r *root) logFull(waiting, held int) {
	switch {
	case waiting > 0 && !r.full:
		r.full = true
		r.log.Warn().Int("waiting", waiting).Int("slots", held).Int64("removed_held", r.gone.Load()).Int("max_records", r.cfg.MaxRecords).
			Msg("new slots wait: the slots and the removed ones s6-svscan may still hold reach the cap; they are published as removals end")
	case waiting == 0 && r.full:
		r.full = false
		r.log.Info().Int("slots", held).Msg("new slots no longer wait for room")
	}
}

// answer tells the reader which slots failed and, once the whole snapshot
// is applied, that it is done. Answers are best effort: the writer has a
// short deadline, and a reader that does not read them loses them.
func (r *root) answer(d *delivery, fails []string, partial bool) {
	if d.ack == nil {
		return
	}
	var b strings.Builder
	for _, n := range fails {
		b.WriteString("fail " + n + "\n")
	}
	if !partial {
		fmt.Fprintf(&b, "done %d\n", d.seq)
	}
	if b.Len() == 0 {
		return
	}
	if _, err := d.ack.Write([]byte(b.String())); err != nil {
		r.log.Debug().Err(err).Msg("answer to the reader not written")
	}
}

// readers runs the reader, restarting it with backoff, and delivers its
// snapshots to the mailbox.
func (r *root) readers(ctx context.Context) {
	backoff := r.cfg.BackoffMin
	boot := true
	var last *delivery
	for ctx.Err() == nil {
		st, err := r.cfg.Start(ctx, boot)
		r.count(func(s *Stats) { s.Readers++ })
		started := time.Now()
		if err != nil {
			r.log.Error().Err(err).Dur("retry_in", backoff).Msg("cannot start the reader; slots are kept as they are")
		} else {
			boot = false
			// Cancellation kills the reader, which ends the read below.
			stopKill := context.AfterFunc(ctx, st.Kill)
			err = r.consume(ctx, st, &last)
			stopKill()
			st.Kill()
			werr := st.Wait()
			if ctx.Err() != nil {
				return
			}
			if time.Since(started) > time.Minute {
				backoff = r.cfg.BackoffMin
			}
			r.log.Error().AnErr("stream", err).AnErr("exit", werr).Dur("retry_in", backoff).
				Msg("the reader stopped; slots are kept as they are until a new reader reports")
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, r.cfg.BackoffMax)
	}
}

// consume reads snapshots until the stream ends or violates the protocol.
// Identical consecutive snapshots are not delivered again.
func (r *root) consume(ctx context.Context, st *Stream, last **delivery) error {
	dec := NewDecoder(st.Out, r.cfg.MaxRecords).WithMaxName(r.cfg.MaxName)
	seq := 0
	for {
		snap, err := dec.Next()
		if err != nil {
			if errors.Is(err, ErrProtocol) {
				r.count(func(s *Stats) { s.Violations++ })
				r.log.Error().Err(err).Msg("reader broke the protocol: its stream is dropped and it is restarted; slots are kept")
			}
			return err
		}
		seq++
		r.count(func(s *Stats) { s.Snapshots++ })
		d := &delivery{snap: snap, seq: seq, ack: st.Ack}
		// The same snapshot again (from this reader or, after a restart,
		// from the previous one) changes nothing: not delivered, so a
		// reader repeating itself costs root one parse per MinInterval.
		// The first snapshot of a reader is always applied (and answered).
		if seq == 1 || *last == nil || !equal((*last).snap, snap) {
			r.box.put(d)
		}
		*last = d
		// A reader faster than this blocks on its pipe: this bounds the
		// root CPU a hostile stream can cost.
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(r.cfg.MinInterval):
		}
	}
}

func equal(a, b Snapshot) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// bucket is a token bucket on slot changes.
type bucket struct {
	rate   float64
	burst  float64
	tokens float64
	last   time.Time
}

func newBucket(rate float64, burst int) bucket {
	return bucket{rate: rate, burst: float64(burst), tokens: float64(burst)}
}

func (b *bucket) refill(now time.Time) {
	if !b.last.IsZero() {
		b.tokens = min(b.burst, b.tokens+now.Sub(b.last).Seconds()*b.rate)
	}
	b.last = now
}

func (b *bucket) take(now time.Time) bool {
	b.refill(now)
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}

// wait is how long until one token is there.
func (b *bucket) wait(now time.Time) time.Duration {
	b.refill(now)
	if b.tokens >= 1 {
		return 0
	}
	return time.Duration((1 - b.tokens) / b.rate * float64(time.Second))
}
