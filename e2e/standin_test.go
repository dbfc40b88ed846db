package e2e

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/testcontainers/testcontainers-go"
	"github.com/testcontainers/testcontainers-go/wait"
)

// TestStandInExitCode: the container's command runs as the main program
// after the services, and its exit code is the container's.
func TestStandInExitCode(t *testing.T) {
	requireImage(t)
	t.Parallel()
	ctx := context.Background()
	// The command checks it runs after boot reconcile, as s6-overlay's CMD does.
	c, err := testcontainers.Run(ctx, testImage,
		testcontainers.WithCmd("sh", "-c", `grep -q ' profile=default ' /opt/data/logs/container-boot.log || exit 3; exit 42`),
		testcontainers.WithWaitStrategy(wait.ForExit().WithExitTimeout(60*time.Second)),
	)
	if c != nil {
		t.Cleanup(func() { _ = testcontainers.TerminateContainer(c) })
	}
	if err != nil {
		t.Fatal(err)
	}
	st, err := c.State(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.ExitCode != 42 {
		(&box{Container: c, name: t.Name()}).dump(t)
		t.Fatalf("container exit code %d, want 42 (3: the command ran before boot reconcile)", st.ExitCode)
	}
}

// TestStandInReapsZombies: an orphan is re-parented to PID 1 (s6-svscan),
// which reaps it when it dies.
func TestStandInReapsZombies(t *testing.T) {
	requireImage(t)
	t.Parallel()
	b := shared(t, asRoot)
	// The inner sh exits at once, orphaning its background sleep.
	out := b.MustSh(t, `sh -c 'sleep 1 >/dev/null 2>&1 & echo $!'`)
	pid, err := strconv.Atoi(strings.TrimSpace(out))
	if err != nil {
		t.Fatalf("pid: %q", out)
	}
	stat := "/proc/" + strconv.Itoa(pid) + "/stat"
	// While it runs, its parent is PID 1.
	code, st := b.ExecSh(t, `cat `+stat)
	if code == 0 {
		f := strings.Fields(st[strings.LastIndex(st, ")")+1:])
		if len(f) > 1 && f[1] != "1" {
			t.Errorf("orphan %d has parent %s, want 1", pid, f[1])
		}
	}
	// Once it exits it must disappear, not stay a zombie.
	waitFor(t, 10*time.Second, "the orphan to be reaped", func() (bool, string) {
		code, st := b.ExecSh(t, `cat `+stat+` 2>/dev/null`)
		return code != 0, st
	})
}

// TestStandInStopIsFast: docker stop ends the container in well under the
// engine's 10 s timeout (S6_KILL_GRACETIME is 100 ms in the test image).
func TestStandInStopIsFast(t *testing.T) {
	requireImage(t)
	t.Parallel()
	b := startBox(t, boxOpts{})
	start := time.Now()
	timeout := 10 * time.Second
	if err := b.Stop(context.Background(), &timeout); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("docker stop took %v", d)
	}
	st, err := b.State(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if st.ExitCode != 0 {
		t.Errorf("exit code after docker stop = %d, want 0", st.ExitCode)
	}
}
