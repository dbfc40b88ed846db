// Command reconcile-profiles is the boot-time oneshot that turns the
// profiles in HERMES_HOME into s6 gateway slots in the scandir. See
// `reconcile-profiles --help` and package reconcile.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/hermes-s6/hermes-s6/logging"
	"github.com/hermes-s6/hermes-s6/reconcile"
)

// version is set at build time: -ldflags "-X main.version=..."
var version = "dev"

// Exit codes (skarnet conventions).
const (
	exitOK     = 0
	exitUsage  = 100
	exitSystem = 111
)

const usageHead = `Usage: reconcile-profiles [flags]

Boot-time oneshot (run by s6-rc as root): registers one s6 gateway slot
<scandir>/gateway-<name> per profile in HERMES_HOME (the root profile is
"default", named profiles are HERMES_HOME/profiles/<name>/ with SOUL.md),
converging existing slots in place, then asks s6-svscan to rescan and appends
one line per slot to HERMES_HOME/logs/container-boot.log (default last).
As root it only hands the scandir (directory, .s6-svscan/control and lock)
to --user, then drops to that user for everything else. In a container
started as the user itself (docker run -u hermes) it runs as that user,
skips the hand-over and does the same pass; any other non-root UID is
refused (exit 100) unless --dry-run.

Environment: HERMES_HOME, S6_PROFILE_GATEWAY_SCANDIR, LOG_LEVEL (defaults of
the flags below); GATEWAY_MULTIPLEX_PROFILES, HERMES_GATEWAY_NO_SUPERVISE.

Flags:
`

const usageTail = `
Exit codes:
  0    the pass completed (profiles with problems are skipped and logged);
       also a dashboard container, where nothing is done
  100  wrong usage, or neither root nor --user itself
  111  a system call failed: the scandir cannot be prepared or listed,
       the user cannot be resolved, or privileges cannot be dropped.
       A failed scandir hand-over still runs the pass and writes the
       boot log first (the slots exist; the user may not rescan).
`

func main() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr)) }

func envOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}

func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("reconcile-profiles", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var cfg reconcile.Config
	var format, level string
	var showVersion bool
	fs.StringVar(&cfg.HermesHome, "hermes-home", envOr("HERMES_HOME", reconcile.DefaultHermesHome), "HERMES_HOME: the root profile, with named profiles under profiles/ (env HERMES_HOME)")
	fs.StringVar(&cfg.Scandir, "scandir", envOr("S6_PROFILE_GATEWAY_SCANDIR", reconcile.DefaultScandir), "s6-svscan's scan directory (env S6_PROFILE_GATEWAY_SCANDIR)")
	fs.StringVar(&cfg.User, "user", reconcile.DefaultUser, "unprivileged user, resolved by name at run time; baked by name into the slot scripts")
	fs.StringVar(&cfg.CommandDir, "command-dir", "/command", "directory of s6-overlay's programs (with-contenv, s6-setuidgid, s6-log) used in the slot scripts")
	fs.StringVar(&cfg.GatewayHome, "gateway-home", "/opt/data", "HOME and working directory of the gateway in the slot run scripts")
	fs.StringVar(&cfg.Proc, "proc", reconcile.DefaultProc, "proc file system: the container command (legacy migration, dashboard) and /proc/1/comm (s6 detection)")
	fs.StringVar(&cfg.S6Basedir, "s6-basedir", reconcile.DefaultS6Basedir, "s6-overlay's basedir: s6 is detected only if it is a directory")
	fs.BoolVar(&cfg.DryRun, "dry-run", false, "print one line per slot saying what would be done, and change nothing (no chown either)")
	fs.IntVar(&cfg.Workers, "workers", 0, "profiles reconciled at once (0: twice the number of CPUs)")
	fs.StringVar(&format, "log-format", "json", "log format on stderr: json or console")
	fs.StringVar(&level, "log-level", os.Getenv(logging.LevelEnv), "log level: trace, debug, info, warn, error (env LOG_LEVEL; empty means info)")
	fs.BoolVar(&showVersion, "version", false, "print the version and exit")
	usage := func(w io.Writer) {
		fs.SetOutput(w)
		fmt.Fprint(w, usageHead)
		fs.VisitAll(func(f *flag.Flag) {
			name, usage := flag.UnquoteUsage(f)
			fmt.Fprintf(w, "  %s\n    \t%s", strings.TrimSpace("--"+f.Name+" "+name), usage)
			if f.DefValue != "" && f.DefValue != "false" && f.DefValue != "0" {
				fmt.Fprintf(w, " (default %q)", f.DefValue)
			}
			fmt.Fprintln(w)
		})
		fmt.Fprint(w, usageTail)
	}
	fs.Usage = func() {} // printed below, once, on the right stream
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			usage(stdout)
			return exitOK
		}
		usage(stderr)
		return exitUsage
	}
	if showVersion {
		fmt.Fprintln(stdout, "reconcile-profiles", version)
		return exitOK
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "reconcile-profiles: unexpected arguments: %q\n", fs.Args())
		return exitUsage
	}
	log, err := logging.New(stderr, format, level)
	if err != nil {
		fmt.Fprintln(stderr, "reconcile-profiles:", err)
		return exitUsage
	}
	cfg.Log = log
	cfg.Out = stdout

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	err = reconcile.Run(ctx, cfg)
	switch {
	case err == nil:
		return exitOK
	case errors.Is(err, reconcile.ErrUsage):
		log.Error().Err(err).Msg("wrong usage")
		return exitUsage
	default:
		log.Error().Err(err).Msg("reconcile failed")
		return exitSystem
	}
}
