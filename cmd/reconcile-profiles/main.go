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
	"strconv"
	"strings"
	"syscall"

	"github.com/hermes-s6/hermes-s6/follow"
	"github.com/hermes-s6/hermes-s6/logging"
	"github.com/hermes-s6/hermes-s6/mode"
	"github.com/hermes-s6/hermes-s6/reconcile"
	"github.com/hermes-s6/hermes-s6/slot"
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
the flags below); GATEWAY_MULTIPLEX_PROFILES (when set and not empty, it
overrides gateway.multiplex_profiles in HERMES_HOME/config.yaml) and
HERMES_GATEWAY_NO_SUPERVISE, true if one of 1, true, yes, on (any case).

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
	var modeFlag string
	var followFlag, internalReader, internalBoot bool
	var notifyFD, maxProfiles int
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
	fs.StringVar(&modeFlag, "mode", "", "open or sealed (env "+mode.Env+"; empty means open). Sealed: the scandir and every slot stay root's and --follow publishes the slots; this boot pass then does nothing as root")
	fs.BoolVar(&followFlag, "follow", false, "the s6-rc longrun: in sealed mode (as root) keep the gateway slots equal to the profiles for the container's lifetime (a slot whose supervisors are told to exit 3 times in 30 s, an s6-svc -dx storm, is taken out for 30 s, doubling up to 5 min); in open mode signal readiness and wait for SIGTERM at zero CPU")
	fs.IntVar(&notifyFD, "notify-fd", -1, "with --follow: write a newline to this fd once the first snapshot of the profiles is applied (s6 readiness)")
	fs.IntVar(&maxProfiles, "max-profiles", follow.DefaultMaxRecords-1, "sealed mode: most named profiles that get a slot (env "+follow.MaxProfilesEnv+"); the others are logged and get none. "+
		"Each slot is two services for s6-svscan, which supervises at most 1000 without -C and past that starts no new supervisor at all: keep 2*(this+1) plus the static services below that limit")
	fs.BoolVar(&internalReader, "internal-reader", false, "internal: the sealed-mode reader, started by --follow as the user")
	fs.BoolVar(&internalBoot, "internal-boot", false, "internal: the reader's first start in this container")
	var internalNameLimit string
	fs.StringVar(&internalNameLimit, "internal-name-limit", "", "internal: root's name limit for the reader, FS,SVSCAN bytes")
	usage := func(w io.Writer) {
		fs.SetOutput(w)
		fmt.Fprint(w, usageHead)
		fs.VisitAll(func(f *flag.Flag) {
			if strings.HasPrefix(f.Name, "internal-") {
				return
			}
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
	modeSet := false
	fs.Visit(func(f *flag.Flag) { modeSet = modeSet || f.Name == "mode" })
	m, err := mode.FromFlagOrEnv(modeFlag, modeSet, os.Getenv)
	if err != nil {
		log.Error().Err(err).Msg("wrong usage")
		fmt.Fprintln(stderr, "reconcile-profiles:", err)
		return exitUsage
	}
	maxSet := false
	fs.Visit(func(f *flag.Flag) { maxSet = maxSet || f.Name == "max-profiles" })
	if v := os.Getenv(follow.MaxProfilesEnv); v != "" && !maxSet {
		n, err := strconv.Atoi(v)
		if err != nil {
			fmt.Fprintf(stderr, "reconcile-profiles: %s=%q: not a number of profiles; unset it for the default %d\n", follow.MaxProfilesEnv, v, follow.DefaultMaxRecords-1)
			return exitUsage
		}
		maxProfiles = n
	}
	if maxProfiles < 1 {
		fmt.Fprintf(stderr, "reconcile-profiles: --max-profiles %d: must be at least 1\n", maxProfiles)
		return exitUsage
	}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	if internalNameLimit != "" {
		fsMax, svMax, ok := strings.Cut(internalNameLimit, ",")
		a, err1 := strconv.Atoi(fsMax)
		b, err2 := strconv.Atoi(svMax)
		if !ok || err1 != nil || err2 != nil || a < 1 || b < 1 {
			fmt.Fprintf(stderr, "reconcile-profiles: --internal-name-limit %q: want FS,SVSCAN byte counts\n", internalNameLimit)
			return exitUsage
		}
		cfg.NameLimit = slot.NameLimit{FS: a, Svscan: b}
	}
	switch {
	case internalReader:
		cfg.Out = io.Discard
		err = follow.RunReader(ctx, follow.ReaderMainConfig{Pass: cfg, MaxRecords: maxProfiles, Boot: internalBoot,
			In: os.Stdin, Out: os.Stdout})
	case followFlag:
		fc := follow.FollowerConfig{Mode: m, HermesHome: cfg.HermesHome, Scandir: cfg.Scandir, User: cfg.User,
			CommandDir: cfg.CommandDir, GatewayHome: cfg.GatewayHome, Proc: cfg.Proc, MaxRecords: maxProfiles + 1,
			LogLevel: level, Log: log, Stderr: stderr}
		if notifyFD >= 0 {
			// s6-rc's readiness fd is inherited without close-on-exec;
			// no child of root (the reader runs as the user) may get it.
			syscall.CloseOnExec(notifyFD)
			f := os.NewFile(uintptr(notifyFD), "notify-fd")
			fc.Ready = func() {
				if _, err := f.Write([]byte("\n")); err != nil {
					log.Warn().Err(err).Int("fd", notifyFD).Msg("cannot signal readiness")
				}
				f.Close()
			}
		}
		err = follow.RunFollower(ctx, fc)
	case m == mode.Sealed && os.Geteuid() == 0 && !cfg.DryRun:
		// The --follow longrun (which this oneshot depends on) has
		// published the slots already; root here would only hand the
		// scandir over, which is what sealed mode forbids.
		log.Info().Str("mode", string(m)).Str("action", "skipped").Str("reason", "sealed").
			Msg("sealed mode: the reconcile-profiles --follow longrun publishes the slots; nothing to do in the boot oneshot")
		return exitOK
	default:
		if m == mode.Sealed && os.Geteuid() != 0 {
			log.Warn().Int("uid", os.Geteuid()).Str("mode", string(m)).Str("reason", "not-root").
				Msg("sealed mode is meaningless in a container that does not run as root: ignored, the boot pass runs as in open mode")
		}
		err = reconcile.Run(ctx, cfg)
	}
	switch {
	case err == nil:
		return exitOK
	case errors.Is(err, reconcile.ErrUsage), errors.Is(err, follow.ErrUsage):
		log.Error().Err(err).Msg("wrong usage")
		return exitUsage
	default:
		log.Error().Err(err).Msg("reconcile failed")
		return exitSystem
	}
}
