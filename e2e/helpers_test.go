package e2e

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os/exec"
	"sync"
	"testing"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/testcontainers/testcontainers-go"
	tcexec "github.com/testcontainers/testcontainers-go/exec"
	"github.com/testcontainers/testcontainers-go/wait"
)

// box is a running test container.
type box struct {
	testcontainers.Container
	name string
	mode mode
	// boots counts the boots waited for, so that waitReady after a restart
	// waits for a new boot-log line rather than the old one.
	boots int
}

// mode is who the whole container runs as: root (a plain `docker run`) or
// hermes (`docker run -u hermes`, Kubernetes runAsUser: 10000), where
// s6-svscan, every s6-supervise, s6-rc and both programs run as hermes.
type mode string

const (
	asRoot   mode = "root"
	asHermes mode = "hermes"
)

// modes are the modes that boot, lifecycle and restart tests run in.
var modes = []mode{asRoot, asHermes}

// forEachMode runs f as a parallel subtest per mode.
func forEachMode(t *testing.T, f func(t *testing.T, m mode)) {
	t.Helper()
	for _, m := range modes {
		t.Run(string(m), func(t *testing.T) {
			t.Parallel()
			f(t, m)
		})
	}
}

// withUser makes the container run as m (nothing for root: the image's default).
func withUser(m mode) testcontainers.ContainerCustomizer {
	return testcontainers.WithConfigModifier(func(cfg *container.Config) {
		if m == asHermes {
			cfg.User = "hermes"
		}
	})
}

// boxOpts configure startBox.
type boxOpts struct {
	mode   mode              // who the container runs as (empty: root)
	volume string            // named volume for /opt/data (empty: the image's anonymous volume)
	env    map[string]string // extra container environment
	cmd    []string          // the container's command (none by default: services only)
	noWait bool              // do not wait for readiness
	capAdd []string          // capabilities added to the container (docker run --cap-add)
}

// startBox starts a container of the test image, waits until it is ready
// and registers its removal (with a dump of its state if the test failed).
func startBox(t *testing.T, o boxOpts) *box {
	t.Helper()
	ctx := context.Background()
	opts := []testcontainers.ContainerCustomizer{withUser(o.mode)}
	if o.volume != "" {
		opts = append(opts, testcontainers.WithMounts(testcontainers.VolumeMount(o.volume, "/opt/data")))
	}
	if len(o.env) > 0 {
		opts = append(opts, testcontainers.WithEnv(o.env))
	}
	if len(o.cmd) > 0 {
		opts = append(opts, testcontainers.WithCmd(o.cmd...))
	}
	if len(o.capAdd) > 0 {
		opts = append(opts, testcontainers.WithHostConfigModifier(func(hc *container.HostConfig) {
			hc.CapAdd = append(hc.CapAdd, o.capAdd...)
		}))
	}
	c, err := testcontainers.Run(ctx, testImage, opts...)
	b := &box{Container: c, name: t.Name(), mode: o.mode}
	if b.mode == "" {
		b.mode = asRoot
	}
	if c != nil {
		t.Cleanup(func() {
			if t.Failed() {
				b.dump(t)
			}
			if err := testcontainers.TerminateContainer(c); err != nil {
				t.Logf("terminate: %v", err)
			}
		})
	}
	if err != nil {
		t.Fatalf("start container: %v", err)
	}
	if !o.noWait {
		b.waitReady(t)
	}
	return b
}

// execOpts are the options of one Exec.
type execOpts struct {
	root bool
}

// ExecOption changes how Exec runs a command.
type ExecOption func(*execOpts)

// AsRoot runs the command as root instead of hermes.
//
// It is almost never right: the hermes CLI and the gateways run as hermes, and
// a test that passes as root proves nothing about them (root bypasses every
// permission check that this project exists to get right). Use it only for
// what hermes cannot do by design, and say why at the call site: reading
// root's own 0700 directories, signalling a root process, looking at state
// that is deliberately kept from hermes.
func AsRoot() ExecOption { return func(o *execOpts) { o.root = true } }

// Exec runs argv in the container, as hermes unless AsRoot is given, and
// returns its exit code and its output (stdout then stderr).
func (b *box) Exec(t testing.TB, argv []string, opts ...ExecOption) (int, string) {
	t.Helper()
	var o execOpts
	for _, f := range opts {
		f(&o)
	}
	user := "hermes"
	if o.root {
		user = "root"
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	code, r, err := b.Container.Exec(ctx, argv, tcexec.WithUser(user), tcexec.Multiplexed())
	if err != nil {
		t.Fatalf("exec %q as %s: %v", argv, user, err)
	}
	out, _ := io.ReadAll(r)
	return code, string(out)
}

// ExecSh runs a sh script in the container (as hermes unless AsRoot).
func (b *box) ExecSh(t testing.TB, script string, opts ...ExecOption) (int, string) {
	t.Helper()
	return b.Exec(t, []string{"sh", "-c", script}, opts...)
}

// MustSh runs a sh script (with set -e) and fails the test unless it exits 0.
func (b *box) MustSh(t testing.TB, script string, opts ...ExecOption) string {
	t.Helper()
	code, out := b.ExecSh(t, "set -e\n"+script, opts...)
	if code != 0 {
		t.Fatalf("script exited %d:\n%s\noutput:\n%s", code, script, out)
	}
	return out
}

// waitFor polls cond every 50 ms until it holds or the timeout passes.
func waitFor(t testing.TB, timeout time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var last string
	for {
		ok, detail := cond()
		if ok {
			return
		}
		last = detail
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s; last: %s", timeout, what, last)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// waitReady waits until boot reconcile is done, i.e. one more boot than
// before has logged its profile=default line in container-boot.log, and
// perm-watcher is up and ready. Both are polled inside the container (one
// exec each: execs are slow on a loaded 2-core machine).
func (b *box) waitReady(t testing.TB) {
	t.Helper()
	b.boots++
	// As hermes: the boot log is hermes's and is what operators read.
	code, out := b.ExecSh(t, fmt.Sprintf(`i=0
until [ "$(grep -c ' profile=default ' /opt/data/logs/container-boot.log 2>/dev/null)" -ge %d ]; do
  i=$((i+1)); [ $i -le 1200 ] || { cat /opt/data/logs/container-boot.log; exit 1; }
  sleep 0.05
done`, b.boots))
	if code != 0 {
		t.Fatalf("boot #%d: no new profile=default line in container-boot.log after 60 s:\n%s", b.boots, out)
	}
	// As root: perm-watcher excludes its own service, so its supervise/
	// stays root's 0700 and hermes cannot read its status by design.
	code, out = b.ExecSh(t, `i=0
until [ "$(/command/s6-svstat -o up,ready /run/service/perm-watcher 2>&1)" = "true true" ]; do
  i=$((i+1)); [ $i -le 600 ] || { /command/s6-svstat /run/service/perm-watcher; exit 1; }
  sleep 0.05
done`, AsRoot())
	if code != 0 {
		t.Fatalf("boot #%d: perm-watcher not up and ready after 30 s: %s", b.boots, out)
	}
}

// restart is `docker restart`: stop (SIGTERM to PID 1), start, wait ready.
func (b *box) restart(t testing.TB) {
	t.Helper()
	ctx := context.Background()
	timeout := 10 * time.Second
	start := time.Now()
	if err := b.Stop(ctx, &timeout); err != nil {
		t.Fatalf("stop: %v", err)
	}
	// A stop that did not finish by itself within docker's 10 s timeout
	// ends in docker's SIGKILL: exit 137. How long a stop takes is measured
	// by scripts/boot-times.sh, not here: on a loaded 2-core machine it
	// varies by 5 to 10 times.
	if st, err := b.State(ctx); err != nil {
		t.Fatalf("state after stop: %v", err)
	} else if st.ExitCode != 0 {
		t.Errorf("exit code %d after docker stop (in %v), want 0: the container did not stop by itself", st.ExitCode, time.Since(start))
	}
	stopped := time.Now()
	if err := b.Start(ctx); err != nil {
		t.Fatalf("start: %v", err)
	}
	started := time.Now()
	b.waitReady(t)
	t.Logf("restart: stop %v, start %v, ready %v", stopped.Sub(start).Round(time.Millisecond),
		started.Sub(stopped).Round(time.Millisecond), time.Since(started).Round(time.Millisecond))
}

// dump logs what a failure is about: docker logs and the scandir.
func (b *box) dump(t testing.TB) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if r, err := b.Logs(ctx); err == nil {
		var buf bytes.Buffer
		_, _ = io.Copy(&buf, r)
		t.Logf("docker logs of %s:\n%s", b.name, tail(buf.String(), 20000))
	}
	if st, err := b.State(ctx); err == nil && st.Running {
		// As root: a dump must see what hermes cannot.
		_, out := b.ExecSh(t, `ls -laR /run/service/ 2>&1 | head -400; echo; for d in /run/service/*/; do printf '%s: ' "$d"; /command/s6-svstat "$d" 2>&1; done; echo; ps -eo pid,ppid,user,stat,args; echo; tail -n 50 /opt/data/logs/container-boot.log`, AsRoot())
		t.Logf("state of %s:\n%s", b.name, tail(out, 30000))
	}
}

// sharedOne is one container per mode for the tests that only read or that
// work on their own uniquely named slots.
type sharedOne struct {
	once   sync.Once
	ready  sync.Once
	box    *box
	err    error
	volume string
}

var sharedBoxes = map[mode]*sharedOne{asRoot: {}, asHermes: {}}

// shared returns the shared root container (see sharedIn).
func shared(t *testing.T) *box {
	t.Helper()
	return sharedIn(t, asRoot)
}

// sharedIn returns the shared container of mode m (started on first use,
// removed when the test binary exits: see stopShared).
func sharedIn(t *testing.T, m mode) *box {
	t.Helper()
	s := sharedBoxes[m]
	s.once.Do(func() {
		ctx := context.Background()
		s.volume = fmt.Sprintf("hermes-s6-e2e-shared-%s-%d", m, time.Now().UnixNano())
		if err := seed(ctx, s.volume, sharedSeed); err != nil {
			s.err = err
			return
		}
		c, err := testcontainers.Run(ctx, testImage, withUser(m),
			testcontainers.WithMounts(testcontainers.VolumeMount(s.volume, "/opt/data")))
		if err != nil {
			s.err = err
			if c != nil {
				_ = testcontainers.TerminateContainer(c)
			}
			return
		}
		s.box = &box{Container: c, name: "shared-" + string(m), mode: m}
	})
	if s.err != nil {
		t.Fatalf("shared container (%s): %v", m, s.err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			s.box.dump(t)
		}
	})
	s.ready.Do(func() { s.box.waitReady(t) })
	return s.box
}

// sharedSeed is the shared container's HERMES_HOME: the default profile and
// alpha want to run, beta is stopped.
const sharedSeed = `
cd /opt/data
printf '{"gateway_state":"running"}' > gateway_state.json
mkdir -p profiles/alpha profiles/beta
echo alpha > profiles/alpha/SOUL.md
printf '{"gateway_state":"running"}' > profiles/alpha/gateway_state.json
echo beta > profiles/beta/SOUL.md
printf '{"gateway_state":"stopped"}' > profiles/beta/gateway_state.json
`

// stopShared removes the shared containers and their volumes, if started.
func stopShared() {
	for _, s := range sharedBoxes {
		if s.box != nil {
			_ = testcontainers.TerminateContainer(s.box.Container)
		}
		if s.volume != "" {
			_, _ = dockerCLI("volume", "rm", "-f", s.volume)
		}
	}
}

// seed runs script as hermes in a throwaway container of the test image
// (no init: the entrypoint is sh) with volume on /opt/data. A new named
// volume is first filled from the image's /opt/data (owned by hermes).
func seed(ctx context.Context, volume, script string) error {
	c, err := testcontainers.Run(ctx, testImage,
		testcontainers.WithMounts(testcontainers.VolumeMount(volume, "/opt/data")),
		testcontainers.WithEntrypoint("sh", "-c", "set -e\n"+script),
		testcontainers.WithConfigModifier(func(cfg *container.Config) { cfg.User = "hermes" }),
		testcontainers.WithWaitStrategy(wait.ForExit().WithExitTimeout(time.Minute)),
	)
	if c != nil {
		defer func() { _ = testcontainers.TerminateContainer(c) }()
	}
	if err != nil {
		return fmt.Errorf("seed volume %s: %w", volume, err)
	}
	st, err := c.State(ctx)
	if err != nil {
		return err
	}
	if st.ExitCode != 0 {
		var buf bytes.Buffer
		if r, err := c.Logs(ctx); err == nil {
			_, _ = io.Copy(&buf, r)
		}
		return fmt.Errorf("seed volume %s: script exited %d: %s", volume, st.ExitCode, buf.String())
	}
	return nil
}

// newVolume names a fresh named volume and removes it after the test.
func newVolume(t *testing.T) string {
	t.Helper()
	v := fmt.Sprintf("hermes-s6-e2e-%d", time.Now().UnixNano())
	t.Cleanup(func() { _, _ = dockerCLI("volume", "rm", "-f", v) })
	return v
}

// dockerCLI runs the docker CLI (for what testcontainers does not cover:
// volumes, image removal).
func dockerCLI(args ...string) (string, error) {
	out, err := exec.Command("docker", args...).CombinedOutput()
	return string(out), err
}
