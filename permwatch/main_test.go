package permwatch

import (
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hermes-s6/hermes-s6/internal/cliregister"
	"github.com/hermes-s6/hermes-s6/internal/testenv"
	"github.com/hermes-s6/hermes-s6/s6"
)

// helperEnv switches the test binary into a helper that runs as the test
// user: registering many slots in one process (forking sh per file is slow
// on a loaded machine, and the hermes CLI does not fork either).
const helperEnv = "PERMWATCH_TEST_HELPER"

func TestMain(m *testing.M) {
	if os.Getenv(helperEnv) == "register" {
		if err := registerNative(os.Args[1], os.Args[2:]); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	if os.Getenv(helperEnv) == "cli-register" {
		os.Exit(cliregister.Main(os.Args[1:], os.Stdout))
	}
	if os.Getenv(helperEnv) == "churn" {
		d, err := time.ParseDuration(os.Args[2])
		if err == nil {
			err = churn(os.Args[1], d, os.Args[3])
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	code := m.Run()
	if binPath != "" {
		_ = os.RemoveAll(filepath.Dir(binPath)) // buildBinary's temp dir
	}
	os.Exit(code)
}

// registerNative stages each slot under .<name>.tmp, renames it into place,
// then asks s6-svscan to rescan (what s6-svscanctl -a does).
func registerNative(scandir string, names []string) error {
	for _, n := range names {
		tmp := filepath.Join(scandir, "."+n+".tmp")
		if err := os.Mkdir(tmp, 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(tmp+"/run", []byte("#!/bin/sh\nexec sleep 100000\n"), 0o755); err != nil {
			return err
		}
		if err := os.Rename(tmp, filepath.Join(scandir, n)); err != nil {
			return err
		}
	}
	return s6.Rescan(scandir)
}

// selfCopy is the test binary copied where the test user can run it.
func selfCopy(t *testing.T) string {
	t.Helper()
	dir := testenv.TempDir(t)
	dst := filepath.Join(dir, "permwatch.test")
	src, err := os.Open(os.Args[0])
	must(t, err)
	defer src.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY, 0o755)
	must(t, err)
	_, err = io.Copy(out, src)
	must(t, err)
	must(t, out.Close())
	return dst
}

func (f *fixture) registerFast(names ...string) {
	f.t.Helper()
	cmd := exec.Command(selfCopy(f.t), append([]string{f.scandir}, names...)...)
	cmd.Env = []string{helperEnv + "=register"}
	cmd.Dir = "/"
	testenv.AsUser(cmd, f.uid, f.gid)
	if out, err := cmd.CombinedOutput(); err != nil {
		f.t.Fatalf("registering as the user: %v\n%s", err, strings.TrimSpace(string(out)))
	}
}
