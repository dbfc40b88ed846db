package follow

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hermes-s6/hermes-s6/internal/testenv"
	"github.com/hermes-s6/hermes-s6/s6"
)

func TestFtrigName(t *testing.T) {
	for i := 0; i < 100; i++ {
		n, err := ftrigName(time.Now())
		if err != nil {
			t.Fatal(err)
		}
		// s6-supervise writes only to names that pass this check
		// (ftrigw_notifyb_nosig, s6 2.11 to 2.15).
		if !strings.HasPrefix(n, "ftrig1:@") || len(n) != len("ftrig1")+33 || n[32] != ':' {
			t.Fatalf("%q is not an s6 subscriber name", n)
		}
	}
}

// supervisorPids is testenv.SupervisorsBelow(dir) as a set.
func supervisorPids(dir string) map[int]bool {
	out := map[int]bool{}
	for _, pid := range testenv.SupervisorsBelow(dir) {
		out[pid] = true
	}
	return out
}

// TestRootSuspendsAStormedSlot: hermes writes `dx` into a gateway's and its
// logger's control FIFOs again and again (a real s6-svscan, which restarts
// each supervisor a second after it exits). Root hears the exits on the
// slot's event fifodirs, takes the slot out of the scandir for a while, so
// that s6-svscan has nothing to restart, and brings it back by itself once
// the suspension ends; a slot nobody touches keeps its supervisors all
// along.
func TestRootSuspendsAStormedSlot(t *testing.T) {
	testenv.RequireRoot(t)
	testenv.RequireS6(t)
	oldWindow, oldExits, oldBase, oldMax := guardWindow, guardExits, guardBase, guardMax
	guardWindow, guardExits, guardBase, guardMax = 10*time.Second, 3, 8*time.Second, 16*time.Second
	t.Cleanup(func() { guardWindow, guardExits, guardBase, guardMax = oldWindow, oldExits, oldBase, oldMax })
	h := newHarness(t, func(c *RootConfig) {
		testenv.StartSvscan(t, c.Scandir, testenv.Svscan{})
		c.Scan = func(s string) error { return s6.Scan(s, DefaultScanTimeout) }
		c.StopTimeout = time.Second
	})
	verifyEvery = 20 * time.Millisecond // newHarness restores it
	reapGrace = 100 * time.Millisecond
	f := h.reader()
	f.send(t, "snapshot\np a 0\np b 0\nend\n")
	a := filepath.Join(h.scandir, "gateway-a")
	b := filepath.Join(h.scandir, "gateway-b")
	subscribed := func(dir string) bool {
		for _, d := range []string{dir, filepath.Join(dir, "log")} {
			ents, _ := os.ReadDir(filepath.Join(d, "event"))
			found := false
			for _, e := range ents {
				found = found || strings.HasPrefix(e.Name(), "ftrig1:@")
			}
			if !found {
				return false
			}
		}
		return true
	}
	deadline := time.Now().Add(10 * time.Second)
	for !subscribed(a) || !subscribed(b) {
		if time.Now().After(deadline) {
			t.Fatalf("root never subscribed to both slots' events: %v", h.slots())
		}
		time.Sleep(10 * time.Millisecond)
	}
	bPids := supervisorPids(b)
	if len(bPids) != 2 {
		t.Fatalf("gateway-b has supervisors %v, want 2", bPids)
	}

	// The storm: dx every 300 ms for 6 s, as hermes would (s6-svc).
	seen := map[int]time.Duration{} // supervisor pid -> first seen
	var suspendedAt time.Duration
	start := time.Now()
	for time.Since(start) < 6*time.Second {
		_ = exec.Command("s6-svc", "-dx", a, filepath.Join(a, "log")).Run()
		for i := 0; i < 6; i++ {
			for pid := range supervisorPids(a) {
				if _, ok := seen[pid]; !ok {
					seen[pid] = time.Since(start)
				}
			}
			if _, err := os.Stat(a); err != nil && suspendedAt == 0 {
				suspendedAt = time.Since(start)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	if suspendedAt == 0 {
		t.Fatalf("gateway-a never left the scandir during 6 s of dx every 300 ms (%d supervisors started)", len(seen))
	}
	// Once the slot is out, s6-svscan starts no supervisor of it (one
	// restarted while root was removing it is seen up to its 1 s delay
	// later), for as long as the suspension (8 s) lasts.
	for pid, at := range seen {
		if at > suspendedAt+1500*time.Millisecond {
			t.Errorf("a supervisor of gateway-a (pid %d) started %v into the storm, after the slot left the scandir at %v", pid, at.Round(time.Millisecond), suspendedAt.Round(time.Millisecond))
		}
	}
	for pid := range bPids {
		if _, err := os.Stat(filepath.Join("/proc", strconv.Itoa(pid))); err != nil {
			t.Errorf("gateway-b's supervisor %d is gone: the storm on gateway-a touched another slot", pid)
		}
	}
	t.Logf("gateway-a out of the scandir %v into the storm (%d exits); %d supervisors of it seen in the storm's 6 s", suspendedAt.Round(time.Millisecond), guardExits, len(seen))

	// After the storm the slot comes back by itself, and hermes controls
	// it again.
	deadline = time.Now().Add(15 * time.Second)
	for exec.Command("s6-svc", "-u", a).Run() != nil {
		if time.Now().After(deadline) {
			t.Fatalf("gateway-a not back 15 s after the storm (a suspension of 8 s): %v", h.slots())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestGuardSuspensions: the policy alone. guardExits exits within
// guardWindow suspend a slot for guardBase, twice as long at each repeat
// (at most guardMax), back to guardBase once guardForget has passed since
// the last one ended; fewer exits, or exits spread wider, suspend nothing.
func TestGuardSuspensions(t *testing.T) {
	oldWindow, oldExits, oldBase, oldMax, oldForget := guardWindow, guardExits, guardBase, guardMax, guardForget
	guardWindow, guardExits, guardBase, guardMax, guardForget = time.Hour, 3, time.Minute, 3*time.Minute, 10*time.Hour
	t.Cleanup(func() {
		guardWindow, guardExits, guardBase, guardMax, guardForget = oldWindow, oldExits, oldBase, oldMax, oldForget
	})
	r := &root{cfg: &RootConfig{Scandir: t.TempDir()}, applied: map[string]bool{}, removing: map[string]bool{},
		unverified: map[string]time.Time{}, guard: newGuard(), remQ: newBatches[string]()}
	// storm exits the slot n times, as the loop would, and returns how long
	// it is suspended for (0: not suspended).
	storm := func(n int) time.Duration {
		r.applied["a"] = true
		delete(r.removing, "a")
		for i := 0; i < n; i++ {
			r.noteExit("a")
		}
		until, ok := r.guard.suspended["a"]
		if !ok {
			return 0
		}
		// The suspension ends: as the loop's resume timer would see it.
		r.resume(until)
		return time.Until(until).Round(time.Minute)
	}
	for i, want := range []time.Duration{0, time.Minute, 2 * time.Minute, 3 * time.Minute, 3 * time.Minute} {
		n := 3
		if i == 0 {
			n = 2 // one dx on a slot and its log/: no storm
		}
		if got := storm(n); got != want {
			t.Fatalf("storm %d (%d exits): suspended for %v, want %v", i, n, got, want)
		}
		if i > 0 && !r.removing["a"] {
			t.Fatalf("storm %d: the slot is not being removed", i)
		}
	}
	if r.stats.Suspended != 4 {
		t.Errorf("Stats.Suspended = %d, want 4", r.stats.Suspended)
	}
	// Forgotten after guardForget: back to guardBase.
	r.guard.lastEnd["a"] = time.Now().Add(-guardForget - time.Minute)
	if got := storm(3); got != time.Minute {
		t.Errorf("a storm long after the last one: suspended for %v, want %v", got, time.Minute)
	}
	// Exits of a slot that is not applied (removed, or never made) count
	// for nothing.
	delete(r.applied, "b")
	for i := 0; i < 5; i++ {
		r.noteExit("b")
	}
	if _, ok := r.guard.suspended["b"]; ok {
		t.Error("a slot root does not hold was suspended")
	}
}
