// Command perm-watcher keeps every service of an s6 scandir usable by one
// unprivileged user: it hands supervise/, supervise/control and event/ to
// that user as root's s6-supervise creates them. See --help.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime"
	"syscall"
	"time"

	"github.com/hermes-s6/hermes-s6/logging"
	"github.com/hermes-s6/hermes-s6/permwatch"
)

// version is set at build time (-ldflags "-X main.version=...").
var version = "dev"

func main() {
	// perm-watcher's work is one loop: a second P only adds thread
	// hand-offs (futex wake-ups, spinning Ms) between fsnotify's reader
	// goroutine and the loop, which halved its CPU time in a 300-slot
	// burst (BENCHMARKS.md), CPU that s6-supervise needs at that moment.
	// An explicit GOMAXPROCS in the environment wins.
	if os.Getenv("GOMAXPROCS") == "" {
		runtime.GOMAXPROCS(1)
	}
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// logQueue is how many log lines may wait for a slow stderr reader before
// lines are dropped (and counted) rather than waited for.
const logQueue = 1024

func run(args []string, stdout, rawStderr io.Writer) int {
	// Nothing perm-watcher logs is worth delaying a hand-over for: a
	// stalled log reader costs dropped lines, never a blocked loop.
	stderr := logging.NewDropWriter(rawStderr, logQueue)
	defer stderr.Close(time.Second)
	opts, code, exit := parseArgs(args, os.Geteuid(), stdout, stderr)
	if exit {
		return code
	}
	cfg, log := opts.cfg, opts.cfg.Log
	if opts.check {
		ok, err := permwatch.CheckMode(cfg, opts.checkMode, stdout)
		if err != nil {
			return report(stderr, err)
		}
		if !ok {
			return exitNotUsable
		}
		return exitOK
	}
	if opts.notifyFD >= 0 {
		f := os.NewFile(uintptr(opts.notifyFD), "notify-fd")
		cfg.Ready = func() {
			if _, err := f.Write([]byte("\n")); err != nil {
				log.Warn().Err(err).Int("fd", opts.notifyFD).Msg("cannot signal readiness")
			}
			f.Close()
		}
	}
	if opts.nice != 0 && !opts.asUser && !cfg.Once {
		if err := permwatch.SetNice(opts.nice); errors.Is(err, syscall.EPERM) || errors.Is(err, syscall.EACCES) {
			// No CAP_SYS_NICE (Docker's default capability set has none):
			// it works the same, it may only lose a race with s6-supervise
			// more often on a loaded machine.
			log.Info().Int("nice", opts.nice).Msg("running at the inherited scheduling priority (no CAP_SYS_NICE; --cap-add SYS_NICE lets perm-watcher prepare new slots ahead of s6-supervise more reliably on a loaded host)")
		} else if err != nil {
			log.Warn().Err(err).Int("nice", opts.nice).Msg("cannot set perm-watcher's scheduling priority; keeping it")
		}
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	start := time.Now()
	runFn := permwatch.Run
	if opts.asUser {
		runFn = func(ctx context.Context, cfg permwatch.Config) error { return permwatch.RunAsUser(ctx, cfg, opts.euid) }
	}
	if err := runFn(ctx, cfg); err != nil {
		log.Error().Err(err).Dur("duration_ms", time.Since(start)).Msg("perm-watcher failed")
		return report(stderr, err)
	}
	return exitOK
}

func report(stderr io.Writer, err error) int {
	fmt.Fprintf(stderr, "perm-watcher: %v\n", err)
	if errors.Is(err, permwatch.ErrUsage) {
		return exitUsage
	}
	return exitSystem
}
