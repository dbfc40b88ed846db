// Command perm-watcher keeps every service of an s6 scandir usable by one
// unprivileged user: it hands supervise/, supervise/control and event/ to
// that user as root's s6-supervise creates them. See --help.
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
	"time"

	"golang.org/x/sys/unix"

	"github.com/hermes-s6/hermes-s6/logging"
	"github.com/hermes-s6/hermes-s6/perms"
	"github.com/hermes-s6/hermes-s6/permwatch"
)

// version is set at build time (-ldflags "-X main.version=...").
var version = "dev"

// Exit codes (skarnet conventions).
const (
	exitOK        = 0
	exitNotUsable = 1
	exitUsage     = 100
	exitSystem    = 111
)

const helpText = `perm-watcher: let one unprivileged user control every s6 service.

Usage: perm-watcher [flags]

s6-supervise runs as root and creates supervise/ (0700), supervise/control
(a FIFO, 0600) and event/ as root, so s6-svc, s6-svstat and s6-svwait fail
with "Permission denied" for anyone else. perm-watcher runs as root (an s6-rc
longrun), watches the scandir with inotify, and hands those objects to the
user the moment they appear, for every service and its log/ sub-service.

Policies (--policy):
  owner  (default) supervise/, supervise/control and event/ become owned by
         the user (uid:gid); modes stay. The user can also delete its slots.
  group  the model of 's6-svperms -G <group> -E <group>': root stays owner;
         supervise/ root:<gid> 0710, control root:<gid> 0620,
         event/ root:<gid> 03730.

Threat model: the user can write the scandir and its own slots, so every
object is opened without following symlinks, relative to its parent's file
descriptor, and only root-owned objects of the expected type (a FIFO with one
link, directories) are changed, through that descriptor. The only symlinks
followed are root-owned scandir entries pointing into root-only trees
(s6-rc's servicedirs).

Flags:
`

const helpTail = `
Exit codes: 0 ok (or stopped by SIGTERM); 1 --check found a service the user
cannot fully use; 100 wrong usage (bad flag, unknown user, not root);
111 system failure.

First aid when 's6-svc' says "Permission denied": perm-watcher --check
`

type stringList []string

func (s *stringList) String() string     { return strings.Join(*s, ",") }
func (s *stringList) Set(v string) error { *s = append(*s, v); return nil }

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("perm-watcher", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var (
		scandir     = fs.String("scandir", permwatch.DefaultScandir, "the s6 scandir to look after")
		user        = fs.String("user", permwatch.DefaultUser, "the unprivileged user (resolved by name at run time)")
		policy      = fs.String("policy", string(perms.PolicyOwner), "owner or group (see above)")
		excludes    stringList
		noDefaults  = fs.Bool("no-default-excludes", false, "do not exclude "+strings.Join(permwatch.DefaultExcludes, ", ")+" by default")
		once        = fs.Bool("once", false, "one full pass, then exit")
		check       = fs.Bool("check", false, "change nothing: report, per service, whether the user can read its status, control it and wait on it, and why not (exit 1 if not); works as any user")
		notifyFD    = fs.Int("notify-fd", -1, "write a newline to this fd after the first full pass (s6 readiness), then close it")
		resync      = fs.Duration("resync", permwatch.DefaultResync, "period of the safety-net full pass (0: off)")
		degraded    = fs.Duration("degraded-interval", permwatch.DefaultDegradedInterval, "period of full passes when inotify watches cannot be added")
		logFormat   = fs.String("log-format", "json", "json or console")
		logLevel    = fs.String("log-level", os.Getenv(logging.LevelEnv), "trace, debug, info, warn, error (default: $"+logging.LevelEnv+", else info)")
		showVersion = fs.Bool("version", false, "print the version and exit")
	)
	fs.Var(&excludes, "exclude", "glob of scandir entries to leave alone (repeatable; added to the defaults "+strings.Join(permwatch.DefaultExcludes, ", ")+")")
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), helpText)
		fs.PrintDefaults()
		fmt.Fprint(fs.Output(), helpTail)
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fs.SetOutput(stdout)
			fs.Usage()
			return exitOK
		}
		return exitUsage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "perm-watcher: unexpected argument %q (see --help)\n", fs.Arg(0))
		return exitUsage
	}
	if *showVersion {
		fmt.Fprintln(stdout, "perm-watcher", version)
		return exitOK
	}
	log, err := logging.New(stderr, *logFormat, *logLevel)
	if err != nil {
		fmt.Fprintf(stderr, "perm-watcher: %v\n", err)
		return exitUsage
	}
	pol, err := perms.ParsePolicy(*policy)
	if err != nil {
		fmt.Fprintf(stderr, "perm-watcher: --policy: %v\n", err)
		return exitUsage
	}
	cfg := permwatch.Config{
		Scandir:          *scandir,
		User:             *user,
		Policy:           pol,
		Once:             *once,
		Resync:           *resync,
		DegradedInterval: *degraded,
		Log:              log,
	}
	if !*noDefaults {
		cfg.Exclude = append(cfg.Exclude, permwatch.DefaultExcludes...)
	}
	cfg.Exclude = append(cfg.Exclude, excludes...)

	if *check {
		ok, err := permwatch.Check(cfg, stdout)
		if err != nil {
			return report(stderr, err)
		}
		if !ok {
			return exitNotUsable
		}
		return exitOK
	}
	if os.Geteuid() != 0 {
		fmt.Fprintf(stderr, "perm-watcher: must run as root (it changes the owner of root's s6 files; euid is %d). Only --check works as another user.\n", os.Geteuid())
		return exitUsage
	}
	if *notifyFD >= 0 {
		if _, err := unix.FcntlInt(uintptr(*notifyFD), unix.F_GETFD, 0); err != nil {
			fmt.Fprintf(stderr, "perm-watcher: --notify-fd %d: not an open file descriptor (s6-rc opens the one named in notification-fd)\n", *notifyFD)
			return exitUsage
		}
		f := os.NewFile(uintptr(*notifyFD), "notify-fd")
		cfg.Ready = func() {
			if _, err := f.Write([]byte("\n")); err != nil {
				log.Warn().Err(err).Int("fd", *notifyFD).Msg("cannot signal readiness")
			}
			f.Close()
		}
	}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	start := time.Now()
	if err := permwatch.Run(ctx, cfg); err != nil {
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
