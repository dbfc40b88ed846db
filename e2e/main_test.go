// Package e2e boots the hermes-s6 image (its hermetic-test target: Debian's
// s6-svscan as PID 1 under hermetic/init, a fake hermes CLI) with
// testcontainers-go and checks, as the unprivileged user hermes, what the
// hermes CLI and an operator rely on. See README.md in this directory.
//
// Needs a Docker engine (no registry: the base image is made locally with
// mmdebstrap, see scripts/base-image.sh). Without one the tests skip, unless
// HERMES_S6_REQUIRE_ALL=1 (CI), where they fail. `go test -short` skips them.
package e2e

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hermes-s6/hermes-s6/internal/testenv"
)

// Environment knobs (all optional).
const (
	// envBaseImage names the base image (default hermes-s6-base:bookworm);
	// it is made with scripts/base-image.sh when missing.
	envBaseImage = "HERMES_S6_BASE_IMAGE"
	// envImage names the test image to build and run (default hermes-s6:e2e).
	envImage = "HERMES_S6_E2E_IMAGE"
	// envNoBuild=1 uses the existing bin/ binaries and test image as they are.
	envNoBuild = "HERMES_S6_E2E_NO_BUILD"
)

var (
	repoRoot  string
	baseImage = envOr(envBaseImage, "hermes-s6-base:bookworm")
	testImage = envOr(envImage, "hermes-s6:e2e")
	// setupErr is why the image could not be prepared; every test fails with it.
	setupErr error
)

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

func TestMain(m *testing.M) {
	flag.Parse()
	// The tests mostly wait on the Docker engine, not the CPU: unless -parallel
	// was given, run more of them at once than GOMAXPROCS (2 on CI).
	parallelSet := false
	flag.Visit(func(f *flag.Flag) { parallelSet = parallelSet || f.Name == "test.parallel" })
	if !parallelSet {
		_ = flag.Set("test.parallel", "4")
	}
	// Ryuk (testcontainers' reaper) is an image pull: no registry here.
	// Every test terminates its own containers instead.
	os.Setenv("TESTCONTAINERS_RYUK_DISABLED", "true")
	if !testing.Short() {
		setup()
	}
	code := m.Run()
	stopShared()
	os.Exit(code)
}

func setup() {
	wd, err := os.Getwd()
	if err != nil {
		setupErr = err
		return
	}
	repoRoot = filepath.Dir(wd)
	if err := exec.Command("docker", "info", "--format", "{{.ServerVersion}}").Run(); err != nil {
		return // every test skips (or fails in CI) in requireImage
	}
	if os.Getenv(envNoBuild) == "1" {
		return
	}
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	steps := []struct {
		what string
		cmd  *exec.Cmd
	}{
		{"build the binaries", goBuild(ctx)},
		{"make the base image", exec.CommandContext(ctx, filepath.Join(repoRoot, "scripts", "base-image.sh"), baseImage)},
		{"build the test image", dockerBuild(ctx, repoRoot, "hermetic-test", testImage, nil)},
	}
	for _, s := range steps {
		s.cmd.Dir = repoRoot
		if out, err := s.cmd.CombinedOutput(); err != nil {
			setupErr = fmt.Errorf("e2e setup: %s: %v\n%s", s.what, err, tail(string(out), 4000))
			return
		}
	}
	fmt.Fprintf(os.Stderr, "e2e setup: binaries, base image and %s ready in %v\n", testImage, time.Since(start).Round(time.Millisecond))
}

// goBuild builds the two programs statically into bin/, as the Dockerfile expects.
func goBuild(ctx context.Context) *exec.Cmd {
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-o", "bin/", "./cmd/reconcile-profiles", "./cmd/perm-watcher")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	return cmd
}

// dockerBuild runs the classic builder (no BuildKit) on the context dir.
func dockerBuild(ctx context.Context, dir, target, tag string, args map[string]string) *exec.Cmd {
	argv := []string{"build", "--force-rm", "--target", target, "-t", tag, "--build-arg", "BASE_IMAGE=" + baseImage}
	for k, v := range args {
		argv = append(argv, "--build-arg", k+"="+v)
	}
	argv = append(argv, dir)
	cmd := exec.CommandContext(ctx, "docker", argv...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "DOCKER_BUILDKIT=0")
	return cmd
}

// requireImage is the first call of every e2e test.
func requireImage(t *testing.T) {
	t.Helper()
	testenv.RequireDocker(t) // skips under -short or without Docker; fails under HERMES_S6_REQUIRE_ALL=1
	if setupErr != nil {
		t.Fatal(setupErr)
	}
}

func tail(s string, n int) string {
	s = strings.TrimSpace(s)
	if len(s) > n {
		return "..." + s[len(s)-n:]
	}
	return s
}
