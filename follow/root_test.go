package follow

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/hermes-s6/hermes-s6/internal/testenv"
)

// harness runs Root in-process on a temporary scandir with forged readers:
// each Start hands out the next stream the test feeds.
type harness struct {
	t       *testing.T
	scandir string
	streams chan *fakeReader
	starts  atomic.Int32
	rescans atomic.Int32
	ready   chan struct{}
	cancel  context.CancelFunc
	done    chan struct{}
}

// fakeReader is what a compromised hermes controls: the bytes root reads.
type fakeReader struct {
	w       *os.File
	acks    *os.File // root's answers (read end)
	ackW    *os.File
	r       *os.File
	exited  chan struct{}
	once    sync.Once
	stopped atomic.Bool
}

func newFakeReader(t *testing.T) *fakeReader {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	ar, aw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	return &fakeReader{w: w, r: r, acks: ar, ackW: aw, exited: make(chan struct{})}
}

func (f *fakeReader) send(t *testing.T, s string) {
	t.Helper()
	if _, err := io.WriteString(f.w, s); err != nil {
		t.Fatalf("forged stream: %v", err)
	}
}

func (f *fakeReader) die() { f.once.Do(func() { f.w.Close(); close(f.exited) }) }

func newHarness(t *testing.T, mod func(*RootConfig)) *harness {
	t.Helper()
	oldGrace, oldRetry, oldListen, oldExit := reapGrace, reapRetry, listenWait, exitWait
	oldVerify, oldStuck, oldHeld := verifyEvery, stuckAfter, heldRetry
	// No supervisor ever listens on the harness's slots (its scans are
	// fakes) unless a test makes one: removals wait listenWait for it, and
	// slots are never taken for stuck unless a test says so.
	reapGrace, reapRetry, listenWait, exitWait = 10*time.Millisecond, 20*time.Millisecond, 20*time.Millisecond, 50*time.Millisecond
	verifyEvery, stuckAfter, heldRetry = 10*time.Millisecond, time.Hour, 20*time.Millisecond
	t.Cleanup(func() {
		reapGrace, reapRetry, listenWait, exitWait = oldGrace, oldRetry, oldListen, oldExit
		verifyEvery, stuckAfter, heldRetry = oldVerify, oldStuck, oldHeld
	})
	h := &harness{t: t, scandir: t.TempDir(), streams: make(chan *fakeReader, 16), ready: make(chan struct{}), done: make(chan struct{})}
	cfg := RootConfig{
		Scandir: h.scandir, User: "hermes",
		Start: func(ctx context.Context, boot bool) (*Stream, error) {
			h.starts.Add(1)
			select {
			case f := <-h.streams:
				return &Stream{Out: f.r, Ack: deadlineWriter{f.ackW},
					Kill: f.die, Wait: func() error { <-f.exited; f.r.Close(); return nil }}, nil
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		},
		Prepare: func(staging string) error {
			return os.Mkdir(filepath.Join(h.scandir, staging, "supervise"), 0o700)
		},
		Scan:       func(string) error { h.rescans.Add(1); return nil },
		Ready:      func() { close(h.ready) },
		BackoffMin: time.Millisecond, BackoffMax: 10 * time.Millisecond,
		MinInterval: time.Millisecond, StopTimeout: 100 * time.Millisecond,
		Log: zerolog.New(zerolog.NewTestWriter(t)),
	}
	if mod != nil {
		mod(&cfg)
	}
	ctx, cancel := context.WithCancel(context.Background())
	h.cancel = cancel
	go func() { defer close(h.done); _ = Root(ctx, cfg) }()
	t.Cleanup(func() {
		cancel()
		for {
			select {
			case f := <-h.streams:
				f.die()
				continue
			default:
			}
			break
		}
		select {
		case <-h.done:
		case <-time.After(5 * time.Second):
			t.Error("Root did not return within 5s of cancellation")
		}
	})
	return h
}

func (h *harness) reader() *fakeReader {
	f := newFakeReader(h.t)
	h.streams <- f
	return f
}

func (h *harness) slots() []string {
	ents, _ := os.ReadDir(h.scandir)
	var out []string
	for _, e := range ents {
		out = append(out, e.Name())
	}
	return out
}

func (h *harness) waitSlots(want ...string) {
	h.t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		got := h.slots()
		if equalStrings(got, want) {
			return
		}
		if time.Now().After(deadline) {
			h.t.Fatalf("scandir holds %v, want %v", got, want)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func equalStrings(a, b []string) bool {
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

func TestRootAppliesSnapshotsAndKeepsSlotsWhenTheReaderDies(t *testing.T) {
	h := newHarness(t, nil)
	f := h.reader()
	f.send(t, "snapshot\np default 1\np alpha 0\nend\n")
	h.waitSlots("gateway-alpha", "gateway-default")
	<-h.ready
	if _, err := os.Stat(filepath.Join(h.scandir, "gateway-alpha", "down")); err != nil {
		t.Error("alpha: autostart 0 but no down file")
	}
	if _, err := os.Stat(filepath.Join(h.scandir, "gateway-alpha", "supervise")); err != nil {
		t.Error("supervise/ not prepared before the rename")
	}
	// The reader dies: slots stay, a new reader is started.
	f.die()
	g := h.reader()
	time.Sleep(50 * time.Millisecond)
	h.waitSlots("gateway-alpha", "gateway-default")
	// The new reader's first snapshot is the truth: alpha goes.
	g.send(t, "snapshot\np default 1\nend\n")
	h.waitSlots("gateway-default")
	// One rescan for the slots made, one once alpha was renamed out (so
	// that s6-svscan does not restart its supervisors).
	for deadline := time.Now().Add(5 * time.Second); h.rescans.Load() < 2 && time.Now().Before(deadline); {
		time.Sleep(time.Millisecond)
	}
	if h.rescans.Load() < 2 {
		t.Error("slot removed without asking s6-svscan to rescan")
	}
	if h.starts.Load() < 2 {
		t.Errorf("%d readers started, want a restart", h.starts.Load())
	}
}

func TestRootDropsAViolatingStreamAndKeepsSlots(t *testing.T) {
	h := newHarness(t, nil)
	f := h.reader()
	f.send(t, "snapshot\np default 1\np alpha 1\nend\n")
	h.waitSlots("gateway-alpha", "gateway-default")
	g := h.reader()
	// A forged record: the stream is dropped before anything is applied.
	f.send(t, "snapshot\np ../../etc 1\nend\n")
	deadline := time.Now().Add(5 * time.Second)
	for h.starts.Load() < 2 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if h.starts.Load() < 2 {
		t.Fatal("violating reader not replaced")
	}
	h.waitSlots("gateway-alpha", "gateway-default")
	g.send(t, "snapshot\np default 1\np alpha 1\np beta 0\nend\n")
	h.waitSlots("gateway-alpha", "gateway-beta", "gateway-default")
}

func TestRootRateCap(t *testing.T) {
	h := newHarness(t, func(c *RootConfig) { c.Burst = 5; c.Rate = 20 })
	f := h.reader()
	s := "snapshot\n"
	for _, n := range []string{"a", "b", "c", "d", "e", "f", "g", "h", "i", "j"} {
		s += "p " + n + " 0\n"
	}
	f.send(t, s+"end\n")
	time.Sleep(20 * time.Millisecond)
	if n := len(h.slots()); n > 6 {
		t.Errorf("%d slots within 20 ms, the budget allows 5 at once", n)
	}
	h.waitSlots("gateway-a", "gateway-b", "gateway-c", "gateway-d", "gateway-e", "gateway-f", "gateway-g", "gateway-h", "gateway-i", "gateway-j")
}

// A reader that never reads root's answers cannot block root.
func TestRootNeverBlocksOnAnswers(t *testing.T) {
	h := newHarness(t, nil)
	f := h.reader()
	// Fill the answer pipe's buffer so that every write would block.
	_ = f.ackW.SetWriteDeadline(time.Now().Add(200 * time.Millisecond))
	junk := make([]byte, 1<<16)
	for {
		if _, err := f.ackW.Write(junk); err != nil {
			break
		}
	}
	for i := 0; i < 20; i++ {
		name := string(rune('a' + i))
		f.send(t, "snapshot\np "+name+" 0\nend\n")
		h.waitSlots("gateway-" + name)
	}
}

// The same snapshot repeated changes nothing (no rescan per repeat).
func TestRootIgnoresRepeats(t *testing.T) {
	h := newHarness(t, nil)
	f := h.reader()
	for i := 0; i < 50; i++ {
		f.send(t, "snapshot\np default 1\nend\n")
	}
	h.waitSlots("gateway-default")
	time.Sleep(50 * time.Millisecond)
	if n := h.rescans.Load(); n != 1 {
		t.Errorf("%d rescans for one new slot", n)
	}
}

// fakeSupervisor listens on dir's supervise/control like s6-supervise and
// records what it is told; it "exits" (closes the FIFO) lingerAfterExit
// after it is told x.
func fakeSupervisor(t *testing.T, dir string, lingerAfterExit time.Duration) (got func() string, exited chan struct{}) {
	t.Helper()
	p := filepath.Join(dir, "supervise", "control")
	if err := syscall.Mkfifo(p, 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(p, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var b strings.Builder
	exited = make(chan struct{})
	go func() {
		defer close(exited)
		defer f.Close()
		buf := make([]byte, 16)
		for {
			n, _ := f.Read(buf)
			mu.Lock()
			b.Write(buf[:n])
			told := strings.Contains(b.String(), "x")
			mu.Unlock()
			if told {
				time.Sleep(lingerAfterExit)
				return
			}
			time.Sleep(2 * time.Millisecond)
		}
	}()
	t.Cleanup(func() { f.Close() })
	return func() string { mu.Lock(); defer mu.Unlock(); return b.String() }, exited
}

// TestRootCapCountsSlotsStillGoing: a snapshot that swaps names gets no
// new slot past the cap while a removed slot's supervisor still runs
// (s6-svscan counts it against its service limit); root tells a supervisor
// that outlives the prune to exit (dx), never deletes its directory while
// it listens, and makes the waiting slot once it is gone.
func TestRootCapCountsSlotsStillGoing(t *testing.T) {
	logs := &testenv.Buffer{}
	h := newHarness(t, func(c *RootConfig) {
		c.MaxRecords = 2
		c.StopTimeout = 2 * time.Second
		c.Log = zerolog.New(io.MultiWriter(logs, zerolog.NewTestWriter(t)))
	})
	f := h.reader()
	f.send(t, "snapshot\np a 0\np b 0\nend\n")
	h.waitSlots("gateway-a", "gateway-b")
	told, exited := fakeSupervisor(t, filepath.Join(h.scandir, "gateway-a"), 300*time.Millisecond)

	f.send(t, "snapshot\np c 0\np d 0\nend\n")
	// b had no supervisor: gone at once, room for one new slot.
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(told(), "x") {
		if time.Now().After(deadline) {
			t.Fatalf("a's lingering supervisor was told %q, want d then dx", told())
		}
		select {
		case <-exited:
			t.Fatal("fake supervisor exited early")
		default:
		}
		time.Sleep(2 * time.Millisecond)
	}
	if !strings.HasPrefix(told(), "d") {
		t.Errorf("a's supervisor was told %q: want d (stop) before anything else", told())
	}
	var gone, made []string
	for deadline := time.Now().Add(time.Second); ; {
		gone, made = nil, nil
		for _, n := range h.slots() {
			switch {
			case strings.HasPrefix(n, GonePrefix):
				gone = append(gone, n)
			case strings.HasPrefix(n, "gateway-"):
				made = append(made, n)
			}
		}
		// b's directory goes (nothing listened there); a's must stay.
		if len(gone) <= 1 || time.Now().After(deadline) {
			break
		}
		time.Sleep(2 * time.Millisecond)
	}
	if len(gone) != 1 {
		t.Errorf("removed slot directories %v while a's supervisor listens, want a's kept", gone)
	}
	if len(made) > 1 {
		t.Errorf("slots %v while a's supervisor still runs: the cap is 2 in all", made)
	}
	<-exited
	h.waitSlots("gateway-c", "gateway-d")
	// One line when new slots start waiting for room, one when they stop,
	// however many snapshots and removals came between.
	for _, msg := range []string{"new slots wait: ", "new slots no longer wait for room"} {
		if n := strings.Count(logs.String(), msg); n != 1 {
			t.Errorf("%d log lines %q, want 1:\n%s", n, msg, logs.String())
		}
	}
}

// TestRootPublishesInBatchesBetweenScans: new slots go in at most scanBatch
// at a time, each batch followed by a whole scan, so that no scan has
// s6-svscan spawn hundreds of supervisors while root's removals wait for
// it; readiness waits for the last batch.
func TestRootPublishesInBatchesBetweenScans(t *testing.T) {
	old := scanBatch
	scanBatch = 3
	t.Cleanup(func() { scanBatch = old })
	var mu sync.Mutex
	var seen []int // new slots found by each scan
	last := 0
	var scandir string
	readyAt := -1
	h := newHarness(t, func(c *RootConfig) {
		scandir = c.Scandir
		c.Scan = func(string) error {
			ents, _ := os.ReadDir(scandir)
			n := 0
			for _, e := range ents {
				if strings.HasPrefix(e.Name(), "gateway-") {
					n++
				}
			}
			mu.Lock()
			seen = append(seen, n-last)
			last = n
			mu.Unlock()
			return nil
		}
		ready := c.Ready
		c.Ready = func() {
			mu.Lock()
			readyAt = last
			mu.Unlock()
			ready()
		}
	})
	var b strings.Builder
	b.WriteString("snapshot\np default 1\n")
	names := []string{"gateway-default"}
	for i := 0; i < 10; i++ {
		n := "p" + string(rune('a'+i))
		b.WriteString("p " + n + " 1\n")
		names = append(names, "gateway-"+n)
	}
	b.WriteString("end\n")
	h.reader().send(t, b.String())
	<-h.ready
	slices.Sort(names)
	h.waitSlots(names...)
	mu.Lock()
	defer mu.Unlock()
	for i, n := range seen {
		if n > 3 {
			t.Errorf("scan %d found %d new slots, want at most scanBatch (3); all scans: %v", i, n, seen)
		}
	}
	if len(seen) < 4 {
		t.Errorf("11 slots in %d scans (%v), want at least 4 batches of at most 3", len(seen), seen)
	}
	if readyAt != 11 {
		t.Errorf("readiness signalled with %d slots published, want all 11", readyAt)
	}
}

// TestRootKeepsARemovedSlotWhileARootProcessRunsInIt: a supervisor that
// s6-svscan spawned just before the slot was renamed out may be in the
// directory without listening on its control FIFO yet. Root must not
// delete the directory under it (it would run there for ever, out of
// anyone's reach), and deletes it once it is gone.
func TestRootKeepsARemovedSlotWhileARootProcessRunsInIt(t *testing.T) {
	testenv.RequireRoot(t)
	h := newHarness(t, nil)
	f := h.reader()
	f.send(t, "snapshot\np a 1\nend\n")
	h.waitSlots("gateway-a")
	sup := exec.Command("sleep", "60")
	sup.Dir = filepath.Join(h.scandir, "gateway-a")
	if err := sup.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sup.Process.Kill(); _ = sup.Wait() })

	f.send(t, "snapshot\nend\n")
	var gone string
	for deadline := time.Now().Add(5 * time.Second); gone == "" && time.Now().Before(deadline); time.Sleep(2 * time.Millisecond) {
		for _, n := range h.slots() {
			if strings.HasPrefix(n, GonePrefix) {
				gone = n
			}
		}
	}
	if gone == "" {
		t.Fatalf("gateway-a never renamed out: %v", h.slots())
	}
	// Many reap rounds (grace 10 ms, retry 20 ms in the harness).
	time.Sleep(500 * time.Millisecond)
	if _, err := os.Stat(filepath.Join(h.scandir, gone)); err != nil {
		t.Fatalf("the removed slot was deleted while a root process ran in it: %v", err)
	}
	_ = sup.Process.Kill()
	_ = sup.Wait()
	h.waitSlots()
}

// slowSvscan stands in for s6-svscan on a loaded machine: each scan
// "spawns" two supervisors for every new gateway slot, which "chdir" into
// it (open it) only after delay, then listen on their control FIFOs until
// told to exit. A slot gone by then is what s6-svscan logs as "unable to
// chdir": chdirFailed counts those.
type slowSvscan struct {
	scandir string
	delay   time.Duration
	mu      sync.Mutex
	seen    map[uint64]bool // by inode, as s6-svscan knows services
	// ignore: how many directories of a slot name to take for a service
	// already held (a leaked entry with the same inode): never supervised.
	ignore      map[string]int
	tried       atomic.Int32 // supervisors that got to their chdir
	chdirFailed atomic.Int32
	wg          sync.WaitGroup
	stop        chan struct{}
}

func (s *slowSvscan) scan(string) error {
	ents, err := os.ReadDir(s.scandir)
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, e := range ents {
		var st syscall.Stat_t
		if !strings.HasPrefix(e.Name(), "gateway-") || syscall.Stat(filepath.Join(s.scandir, e.Name()), &st) != nil || s.seen[st.Ino] {
			continue
		}
		s.seen[st.Ino] = true
		if s.ignore[e.Name()] > 0 {
			s.ignore[e.Name()]--
			continue
		}
		for _, sub := range []string{e.Name(), e.Name() + "/log"} {
			s.wg.Add(1)
			go s.supervise(sub)
		}
	}
	return nil
}

func (s *slowSvscan) supervise(name string) {
	defer s.wg.Done()
	time.Sleep(s.delay)
	dir, err := os.Open(filepath.Join(s.scandir, name)) // its chdir
	s.tried.Add(1)
	if err != nil {
		s.chdirFailed.Add(1)
		return
	}
	defer dir.Close()
	_ = os.Mkdir(filepath.Join(dir.Name(), "supervise"), 0o700)
	p := filepath.Join(dir.Name(), "supervise", "control")
	if err := syscall.Mkfifo(p, 0o600); err != nil && !os.IsExist(err) {
		return
	}
	f, err := os.OpenFile(p, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return
	}
	defer f.Close()
	buf := make([]byte, 16)
	for {
		n, _ := f.Read(buf)
		if strings.Contains(string(buf[:n]), "x") {
			return
		}
		select {
		case <-s.stop:
			return
		case <-time.After(2 * time.Millisecond):
		}
	}
}

// TestRootWaitsForTheSupervisorsBeforeRenamingOut: a profile deleted right
// after its slot was scanned, before the supervisors s6-svscan forked for it
// got to chdir into it. Renamed out then, they fail ("unable to chdir"), and
// s6-svscan restarts them in scans of its own that root's gate cannot keep
// apart from its renames (under churn, s6 2.13.1 then lost track of static
// services). Root waits until they listen, then removes the slot.
func TestRootWaitsForTheSupervisorsBeforeRenamingOut(t *testing.T) {
	sv := &slowSvscan{delay: 300 * time.Millisecond, seen: map[uint64]bool{}, stop: make(chan struct{})}
	h := newHarness(t, func(c *RootConfig) {
		sv.scandir = c.Scandir
		c.Scan = sv.scan
		c.StopTimeout = 2 * time.Second
	})
	t.Cleanup(func() { close(sv.stop); sv.wg.Wait() })
	listenWait = 3 * time.Second // newHarness restores it
	f := h.reader()
	f.send(t, "snapshot\np a 1\np b 1\nend\n")
	h.waitSlots("gateway-a", "gateway-b")
	f.send(t, "snapshot\np b 1\nend\n")
	h.waitSlots("gateway-b")
	for deadline := time.Now().Add(5 * time.Second); sv.tried.Load() < 4 && time.Now().Before(deadline); {
		time.Sleep(5 * time.Millisecond)
	}
	if n := sv.tried.Load(); n != 4 {
		t.Fatalf("%d supervisors got to their chdir, want 4", n)
	}
	if n := sv.chdirFailed.Load(); n != 0 {
		t.Errorf("%d supervisors found their slot gone (s6-svscan: unable to chdir)", n)
	}
}

// TestRootRemovesInBatches: a hostile hermes deletes hundreds of profiles at
// once. Root removes their slots in batches, so s6-svscan is asked for a
// handful of scans, not one or more per slot, and every supervisor is told
// to exit and every directory deleted.
func TestRootRemovesInBatches(t *testing.T) {
	const n = 200
	sv := &slowSvscan{delay: 0, seen: map[uint64]bool{}, stop: make(chan struct{})}
	var scans atomic.Int32
	h := newHarness(t, func(c *RootConfig) {
		sv.scandir = c.Scandir
		c.Scan = func(s string) error { scans.Add(1); return sv.scan(s) }
		c.StopTimeout = 2 * time.Second
		c.Rate, c.Burst = 10000, 1000
	})
	t.Cleanup(func() { close(sv.stop); sv.wg.Wait() })
	listenWait = 3 * time.Second // newHarness restores it
	var b strings.Builder
	b.WriteString("snapshot\n")
	var names []string
	for i := 0; i < n; i++ {
		fmt.Fprintf(&b, "p r%d 1\n", i)
		names = append(names, fmt.Sprintf("gateway-r%d", i))
	}
	b.WriteString("end\n")
	f := h.reader()
	f.send(t, b.String())
	slices.Sort(names)
	h.waitSlots(names...)
	for deadline := time.Now().Add(10 * time.Second); sv.tried.Load() < 2*n && time.Now().Before(deadline); {
		time.Sleep(5 * time.Millisecond)
	}
	before := scans.Load()
	start := time.Now()
	f.send(t, "snapshot\nend\n")
	h.waitSlots()
	// Every fake supervisor returns once told x: all 2n of them.
	done := make(chan struct{})
	go func() { sv.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatalf("supervisors still listening 5 s after their slots were deleted")
	}
	if used := scans.Load() - before; used > 10 {
		t.Errorf("removing %d slots took %d scans, want at most 10 (batches)", n, used)
	}
	t.Logf("%d slots removed in %v with %d scans", n, time.Since(start).Round(time.Millisecond), scans.Load()-before)
}

// TestRootRemakesASlotS6SvscanNeverSupervises: s6-svscan takes a new slot's
// directory for a service it already holds (a leaked entry whose inode the
// filesystem gave the new directory) and never supervises it. Root makes
// the slot again in a new directory, keeps the old one (its inode must not
// be handed out again), and counts it against the cap.
func TestRootRemakesASlotS6SvscanNeverSupervises(t *testing.T) {
	sv := &slowSvscan{seen: map[uint64]bool{}, ignore: map[string]int{"gateway-a": 1}, stop: make(chan struct{})}
	logs := &testenv.Buffer{}
	h := newHarness(t, func(c *RootConfig) {
		sv.scandir = c.Scandir
		c.Scan = sv.scan
		c.MaxRecords = 3
		c.Proc = t.TempDir() // no s6-supervise of the host's to count
		c.Log = zerolog.New(io.MultiWriter(logs, zerolog.NewTestWriter(t)))
	})
	t.Cleanup(func() { close(sv.stop); sv.wg.Wait() })
	stuckAfter = 300 * time.Millisecond // newHarness restores it
	f := h.reader()
	f.send(t, "snapshot\np a 1\np b 1\nend\n")
	h.waitSlots("gateway-a", "gateway-b")
	var first syscall.Stat_t
	if err := syscall.Stat(filepath.Join(h.scandir, "gateway-a"), &first); err != nil {
		t.Fatal(err)
	}
	a := filepath.Join(h.scandir, "gateway-a")
	deadline := time.Now().Add(5 * time.Second)
	for len(awaitListeners(context.Background(), []string{a, filepath.Join(a, "log")}, time.Time{}, 0)) > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("gateway-a has no supervisor 5 s after it was taken for stuck (300 ms): %v", h.slots())
		}
		time.Sleep(5 * time.Millisecond)
	}
	var now syscall.Stat_t
	if err := syscall.Stat(a, &now); err != nil {
		t.Fatal(err)
	}
	if now.Ino == first.Ino {
		t.Errorf("gateway-a was made again with the same inode %d", now.Ino)
	}
	var kept []string
	for _, n := range h.slots() {
		if strings.HasPrefix(n, GonePrefix) {
			kept = append(kept, n)
		}
	}
	time.Sleep(200 * time.Millisecond) // many reap rounds in the harness
	var st syscall.Stat_t
	if len(kept) != 1 || syscall.Stat(filepath.Join(h.scandir, kept[0]), &st) != nil || st.Ino != first.Ino {
		t.Errorf("the old directory of gateway-a (inode %d) is not kept: %v", first.Ino, h.slots())
	}
	// It counts against the cap (3): a, b and the kept one leave no room.
	f.send(t, "snapshot\np a 1\np b 1\np c 1\nend\n")
	time.Sleep(200 * time.Millisecond)
	if _, err := os.Stat(filepath.Join(h.scandir, "gateway-c")); err == nil {
		t.Errorf("gateway-c made although a, b and a's kept directory fill the cap of 3")
	}
	if n := strings.Count(logs.String(), "supervisors never came up"); n != 1 {
		t.Errorf("%d log lines about slots made again, want 1", n)
	}
}

// TestRootWaitsForASlowSupervisorBeforeMakingASlotAgain: on a machine so
// loaded that a new slot's supervisors take longer than stuckAfter to
// listen, root must not take the slot for stuck while a root s6-supervise
// for it runs (a late one would chdir by name into the new directory, next
// to the new slot's own); once there is none, it makes the slot again.
func TestRootWaitsForASlowSupervisorBeforeMakingASlotAgain(t *testing.T) {
	proc := t.TempDir()
	fakeSupervise := func(pid, name string) {
		d := filepath.Join(proc, pid)
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
		for f, b := range map[string]string{"cmdline": "s6-supervise\x00" + name + "\x00", "status": "Name:\ts6-supervise\nUid:\t0\t0\t0\t0\n"} {
			if err := os.WriteFile(filepath.Join(d, f), []byte(b), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	fakeSupervise("4242", "gateway-a/log")
	h := newHarness(t, func(c *RootConfig) { c.Proc = proc })
	stuckAfter = 100 * time.Millisecond // newHarness restores it
	f := h.reader()
	f.send(t, "snapshot\np a 1\nend\n")
	h.waitSlots("gateway-a")
	var first syscall.Stat_t
	if err := syscall.Stat(filepath.Join(h.scandir, "gateway-a"), &first); err != nil {
		t.Fatal(err)
	}
	time.Sleep(600 * time.Millisecond) // six times stuckAfter
	if names := h.slots(); len(names) != 1 {
		t.Fatalf("slot made again while a root s6-supervise for it runs: %v", names)
	}
	if err := os.RemoveAll(filepath.Join(proc, "4242")); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		var now syscall.Stat_t
		if syscall.Stat(filepath.Join(h.scandir, "gateway-a"), &now) == nil && now.Ino != first.Ino {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("gateway-a not made again 5 s after its supervisor went: %v", h.slots())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// lateLog records what is logged once closed is set: nothing of Root may
// log after it returned (a test's logger is gone by then: Go's testing
// panics on a t.Log after the test).
type lateLog struct {
	closed atomic.Bool
	late   testenv.Buffer
	w      io.Writer
}

func (l *lateLog) Write(p []byte) (int, error) {
	if l.closed.Load() {
		return l.late.Write(p)
	}
	return l.w.Write(p)
}

// TestRootEndsItsRemovalsWhenStopped: the longrun is stopped in the middle
// of a removal. Root returns promptly, and only once its remover and reaper
// have ended: nothing of it logs or changes the scandir afterwards, and
// what was cut short is left for the next run (a slot still in the
// scandir, or a dot-named directory it deletes).
func TestRootEndsItsRemovalsWhenStopped(t *testing.T) {
	for _, tc := range []struct {
		name string
		// while: what Root is doing when it is stopped.
		while string
		setup func(h *harness, dir string)
	}{
		{"stopping the service", "waiting for the service to be down", func(h *harness, dir string) {
			// A service that never goes down: supervise/status keeps a pid.
			st := make([]byte, 35)
			st[statusPidOff+7] = 42
			if err := os.WriteFile(filepath.Join(dir, statusFile), st, 0o644); err != nil {
				h.t.Fatal(err)
			}
			fakeSupervisor(h.t, dir, time.Hour)
		}},
		{"waiting out the reap grace", "after its supervisor exited", func(h *harness, dir string) {
			fakeSupervisor(h.t, dir, 0)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ll := &lateLog{w: zerolog.NewTestWriter(t)}
			h := newHarness(t, func(c *RootConfig) {
				c.StopTimeout = time.Second
				c.Log = zerolog.New(ll)
			})
			reapGrace = time.Second // newHarness restores it
			f := h.reader()
			f.send(t, "snapshot\np a 1\nend\n")
			h.waitSlots("gateway-a")
			tc.setup(h, filepath.Join(h.scandir, "gateway-a"))
			f.send(t, "snapshot\nend\n")
			time.Sleep(300 * time.Millisecond)
			before := h.slots()
			stopped := time.Now()
			h.cancel()
			select {
			case <-h.done:
			case <-time.After(2 * time.Second):
				t.Fatalf("Root did not return within 2 s of being stopped %s", tc.while)
			}
			ll.closed.Store(true)
			took := time.Since(stopped)
			// Longer than what the removal still had to wait (StopTimeout,
			// reapGrace: 1 s each).
			time.Sleep(1500 * time.Millisecond)
			if late := ll.late.String(); late != "" {
				t.Errorf("logged after Root returned:\n%s", late)
			}
			if after := h.slots(); !equalStrings(before, after) {
				t.Errorf("the scandir changed after Root returned: %v, then %v", before, after)
			}
			t.Logf("stopped %s: Root returned in %v; scandir left as %v", tc.while, took.Round(time.Millisecond), before)
		})
	}
}
