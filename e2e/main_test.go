// Package e2e boots the hermes-s6 image (by default its hermetic-test target:
// Debian's s6-svscan as PID 1 under hermetic/init, a fake hermes CLI; or any
// image given with HERMES_S6_E2E_IMAGE and HERMES_S6_E2E_NO_BUILD=1) with
// testcontainers-go and checks, as the unprivileged user hermes, what the
// hermes CLI and an operator rely on, with the container started as root and
// as hermes (`docker run -u hermes`). See README.md in this directory.
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
	// envSuite is the Debian suite of the local base images (default
	// trixie); scripts/base-image.sh makes them when missing.
	envSuite = "HERMES_S6_SUITE"
	// envBaseImage names the plain base image, without Debian's s6 (default
	// hermes-s6-base:<suite>): `common` and production.
	envBaseImage = "HERMES_S6_BASE_IMAGE"
	// envHermeticBaseImage names the base of the hermetic stages, with
	// Debian's s6 and execline (default hermes-s6-base:<suite>-s6).
	envHermeticBaseImage = "HERMES_S6_HERMETIC_BASE_IMAGE"
	// envS6OverlayVersion is the s6-overlay version the stand-in emulates
	// (build argument HERMETIC_S6_OVERLAY_VERSION; default: the Dockerfile's).
	envS6OverlayVersion = "HERMES_S6_E2E_S6_OVERLAY_VERSION"
	// envImage names the test image to build and run (default hermes-s6:e2e).
	envImage = "HERMES_S6_E2E_IMAGE"
	// envNoBuild=1 uses the existing bin/ binaries and test image as they are
	// (any image: a production one too, see README.md).
	envNoBuild = "HERMES_S6_E2E_NO_BUILD"
)

var (
	repoRoot          string
	suite             = envOr(envSuite, "trixie")
	baseImage         = envOr(envBaseImage, "hermes-s6-base:"+suite)
	hermeticBaseImage = envOr(envHermeticBaseImage, "hermes-s6-base:"+suite+"-s6")
	testImage         = envOr(envImage, "hermes-s6:e2e")
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
	if cliRegisterBin != "" {
		_ = os.RemoveAll(filepath.Dir(cliRegisterBin)) // cliRegisterBinary's temp dir
	}
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
		{"make the base images", exec.CommandContext(ctx, filepath.Join(repoRoot, "scripts", "base-image.sh"), suite)},
		{"build the test image", dockerBuild(ctx, repoRoot, "hermetic-test", testImage, testImageArgs())},
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

// testImageArgs are the build arguments of the test image.
func testImageArgs() map[string]string {
	if v := os.Getenv(envS6OverlayVersion); v != "" {
		return map[string]string{"HERMETIC_S6_OVERLAY_VERSION": v}
	}
	return nil
}

// goBuild builds the two programs and the stand-in's setuid helper
// statically into bin/, as the Dockerfile expects.
func goBuild(ctx context.Context) *exec.Cmd {
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-o", "bin/", "./cmd/reconcile-profiles", "./cmd/perm-watcher", "./hermetic/fix-run-owner")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	return cmd
}

// dockerBuild runs the classic builder (no BuildKit) on the context dir.
func dockerBuild(ctx context.Context, dir, target, tag string, args map[string]string) *exec.Cmd {
	argv := []string{"build", "--force-rm", "--target", target, "-t", tag,
		"--build-arg", "BASE_IMAGE=" + baseImage, "--build-arg", "HERMETIC_BASE_IMAGE=" + hermeticBaseImage}
	for k, v := range args {
		argv = append(argv, "--build-arg", k+"="+v)
	}
	argv = append(argv, dir)
	cmd := exec.CommandContext(ctx, "docker", argv...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "DOCKER_BUILDKIT=0")
	return cmd
}

// derivedTag names an image a test derives from the test image: the test
// image's own tag with suffix appended (hermes-s6:e2e -> hermes-s6:e2e-SUFFIX),
// so that runs on different test images, side by side or one after another
// (CI runs the suite on four), never build into or remove each other's.
func derivedTag(suffix string) string { return tagPlus(testImage, suffix) }

func tagPlus(image, suffix string) string {
	repo, tag := image, "latest"
	if i := strings.LastIndex(image, ":"); i > strings.LastIndex(image, "/") {
		repo, tag = image[:i], image[i+1:]
	}
	return repo + ":" + tag + "-" + suffix
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

func TestDerivedTag(t *testing.T) {
	for _, tc := range []struct{ image, want string }{
		{"hermes-s6:e2e", "hermes-s6:e2e-x"},
		{"hermes-s6:real-3.2.3.0-test", "hermes-s6:real-3.2.3.0-test-x"},
		{"hermes-s6", "hermes-s6:latest-x"},
		{"localhost:5000/hermes-s6", "localhost:5000/hermes-s6:latest-x"},
		{"localhost:5000/hermes-s6:e2e-sid", "localhost:5000/hermes-s6:e2e-sid-x"},
	} {
		if got := tagPlus(tc.image, "x"); got != tc.want {
			t.Errorf("derivedTag on %s = %s, want %s", tc.image, got, tc.want)
		}
	}
}
