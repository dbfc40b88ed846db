package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/hermes-s6/hermes-s6/internal/cliregister"
)

var (
	cliRegisterOnce sync.Once
	cliRegisterBin  string
	cliRegisterErr  error
)

// cliRegisterBinary builds cmd/cli-register (static, so it runs in any
// image) once per test binary run.
func cliRegisterBinary(t *testing.T) string {
	t.Helper()
	cliRegisterOnce.Do(func() {
		dir, err := os.MkdirTemp("", "hermes-s6-cli-register-")
		if err != nil {
			cliRegisterErr = err
			return
		}
		cliRegisterBin = filepath.Join(dir, "cli-register")
		cmd := exec.Command("go", "build", "-o", cliRegisterBin, "github.com/hermes-s6/hermes-s6/internal/cliregister/cmd/cli-register")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			cliRegisterErr = fmt.Errorf("go build cli-register: %v\n%s", err, out)
		}
	})
	if cliRegisterErr != nil {
		t.Fatal(cliRegisterErr)
	}
	return cliRegisterBin
}

// TestCLIRegistrationReplay (#15): the hermes CLI's registration replayed
// step by step (package cliregister's cli-register, static, copied into the
// container; the replayer the host integration test runs too: staging under .gateway-<p>.tmp with the CLI's own
// skeleton seeded check-then-create, rename, s6-svscanctl -a, then s6-svc
// -u retried on "supervisor not listening", s6-svstat, s6-svwait -u), as
// hermes, in open mode, in a container started as root (perm-watcher at
// work) and in one started as hermes. 100 registrations one after the
// other (HERMES_S6_E2E_REPLAY_N), 0 failures, no "Permission denied".
// Cost: one go build (cached after the first), one copy and one exec per
// mode in the shared containers (a few seconds each on the 2-core machine,
// the two modes in parallel), then the slots are unregistered.
func TestCLIRegistrationReplay(t *testing.T) {
	requireImage(t)
	t.Parallel()
	bin := cliRegisterBinary(t)
	n := 100
	if v := os.Getenv("HERMES_S6_E2E_REPLAY_N"); v != "" {
		var err error
		if n, err = strconv.Atoi(v); err != nil || n < 1 {
			t.Fatalf("HERMES_S6_E2E_REPLAY_N=%q: want a positive number", v)
		}
	}
	forEachMode(t, func(t *testing.T, m mode) {
		b := sharedIn(t, m)
		var names []string
		for i := 0; i < n; i++ {
			names = append(names, fmt.Sprintf("replay-%03d", i))
		}
		t.Cleanup(func() {
			// Unregistered as the CLI does, so the shared container keeps
			// no 200 extra supervisors for the tests that follow.
			b.Exec(t, append([]string{"sh", "-c", `for p in "$@"; do s=/run/service/gateway-$p; /command/s6-svc -d "$s"; rm -rf "$s"; done
/command/s6-svscanctl -an /run/service`, "sh"}, names...))
		})
		// Copied as root (the container's files are root's); run as hermes.
		const inBox = "/tmp/hermes-s6-cli-register"
		if err := b.CopyFileToContainer(context.Background(), bin, inBox, 0o755); err != nil {
			t.Fatalf("copying cli-register into the container: %v", err)
		}
		code, out := b.Exec(t, append([]string{inBox, "/run/service"}, names...))
		r := cliregister.Count(out)
		t.Logf("%s container: %d registrations, %d ok (first s6-svc: %d ok, %d \"supervisor not listening\"), %d failed, %d Permission denied",
			m, n, r.OK, r.FirstOK, r.FirstNotListening, r.Failed, r.Denied)
		if code != 0 || r.OK != n || r.Failed != 0 || r.Denied != 0 {
			t.Fatalf("exit %d; failures:\n%s\noutput tail:\n%s", code, strings.Join(r.Failures, "\n"), tail(out, 2000))
		}
	})
}
