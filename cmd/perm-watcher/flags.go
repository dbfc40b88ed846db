package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/hermes-s6/hermes-s6/logging"
	"github.com/hermes-s6/hermes-s6/mode"
	"github.com/hermes-s6/hermes-s6/perms"
	"github.com/hermes-s6/hermes-s6/permwatch"
)

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
longrun) and watches the scandir with one inotify watch. As soon as a slot
is renamed into place it makes what is missing of that slot's supervise/,
supervise/control and event/ (and its log/'s) itself, each appearing at
once with the policy's owner and mode; s6-supervise reuses them, so the
user's first s6-svc fails at most with "supervisor not listening". What
s6-supervise made first is handed over; a skeleton the slot came with (the
hermes CLI's) is kept as it is. A dot-named entry is someone's staging
directory: never touched. If inotify's per-user limits are exhausted by
others (/proc/sys/fs/inotify/max_user_watches, max_user_instances) it logs
one error naming the limit and the fix, keeps working by a full pass every
--degraded-interval, and goes back to inotify as soon as it can.

Policies (--policy):
  owner  (default) supervise/, supervise/control and event/ become owned by
         the user (uid:gid); modes stay. The user can also delete its slots.
  group  the model of 's6-svperms -G <group> -E <group>': root stays owner;
         supervise/ root:<gid> 0710, control root:<gid> 0620,
         event/ root:<gid> 03730.
  sealed as group, but supervise/ is root:<gid> 0750 (readable: s6-svc
         >= 2.12 opens it for reading when a control FIFO is missing, and
         would say "Permission denied" to a client racing a new slot), and
         event/ stays root's and is never touched (a writable event/ lets
         the user make root's s6-supervise write into any file): no
         s6-svwait, poll s6-svstat.

Threat model: the user can write the scandir and its own slots, so every
object is opened without following symlinks, relative to its parent's file
descriptor, and only root-owned objects of the expected type (a FIFO with one
link, directories) are changed, through that descriptor. The only symlinks
followed are root-owned scandir entries pointing into root-only trees
(s6-rc's servicedirs). Every ancestor of the scandir must be root's and
writable by root only. Excludes match the entry's name and an s6-rc
symlink's target name. One watch, rate-limited logs and a log writer that
never blocks: whatever the user creates costs root no inotify watch and
no stalled hand-over. Whoever can write the scandir can make s6-svscan run
a ./run as root (that is the hermes image's design, not something
perm-watcher adds or removes), and under the owner and group policies
whoever can write a service's event/ can make root's s6-supervise write
into any file: only sealed closes that.

Run as the user itself (a container started with -u hermes, Kubernetes
runAsUser): s6-svscan and every s6-supervise run as that user, so their
files are the user's already. perm-watcher then says so once, signals
readiness and waits for SIGTERM at zero CPU. Any other non-root UID is
refused (exit 100).

Flags:
`

const helpTail = `
Exit codes: 0 ok (or stopped by SIGTERM); 1 --check found a service the user
cannot fully use; 100 wrong usage (bad flag, unknown user, neither root nor the user);
111 system failure.

First aid when 's6-svc' says "Permission denied": perm-watcher --check
`

func envOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}

type stringList []string

func (s *stringList) String() string     { return strings.Join(*s, ",") }
func (s *stringList) Set(v string) error { *s = append(*s, v); return nil }

// printFlags lists the flags GNU-style (--name), as they are documented.
func printFlags(w io.Writer, fs *flag.FlagSet) {
	fs.VisitAll(func(f *flag.Flag) {
		typ, usage := flag.UnquoteUsage(f)
		line := "  --" + f.Name
		if typ != "" {
			line += " " + typ
		}
		def := ""
		switch f.DefValue {
		case "", "false", "-1", "[]":
		default:
			def = fmt.Sprintf(" (default %s)", f.DefValue)
		}
		fmt.Fprintf(w, "%s\n      %s%s\n", line, usage, def)
	})
}

// options is a parsed and validated command line.
type options struct {
	cfg   permwatch.Config // Log is set; Ready is not
	check bool
	// checkMode is the mode --check checks: from --mode or HERMES_S6_MODE
	// (docker exec sees the container's environment), else inferred.
	checkMode permwatch.CheckModeOf
	notifyFD  int // -1: none
	nice      int // 0: leave the priority as inherited
	// asUser: not root (and not --check): run permwatch.RunAsUser, which
	// idles when euid is the user's and refuses any other UID.
	asUser bool
	euid   int
}

// parseArgs parses and validates args for a process whose effective UID is
// euid. When the program must end here (--help, --version, wrong usage),
// exit is true and code is its status: help and version went to stdout,
// the reason for a usage error to stderr.
func parseArgs(args []string, euid int, stdout, stderr io.Writer) (opts options, code int, exit bool) {
	fs := flag.NewFlagSet("perm-watcher", flag.ContinueOnError)
	var (
		scandir   = fs.String("scandir", permwatch.DefaultScandir, "the s6 scandir to look after")
		user      = fs.String("user", permwatch.DefaultUser, "the unprivileged user (resolved by name at run time)")
		policy    = fs.String("policy", string(perms.PolicyOwner), "owner, group or sealed (see above); sealed mode implies sealed")
		modeFlag  = fs.String("mode", "", "open or sealed (env "+mode.Env+"; empty means open). Sealed: --policy sealed, and nothing else may be asked for")
		excludes  stringList
		noDefault = fs.Bool("no-default-excludes", false, "do not exclude "+strings.Join(permwatch.DefaultExcludes, ", ")+" by default")
		once      = fs.Bool("once", false, "one full pass, then exit (as root)")
		home      = fs.String("hermes-home", envOr("HERMES_HOME", "/opt/data"), "HERMES_HOME (env HERMES_HOME); --check, run as the user, reads its logs/container-boot.log: every slot the last boot announced must be there and usable")
		check     = fs.Bool("check", false, "change nothing: report, per service, whether the user can read its status, control it and wait on it, and why not (exit 1 if not); works as any user. "+
			"Open mode: the user must also be able to register a slot. Sealed mode (--mode, "+mode.Env+", or inferred from a root-only scandir whose slots have sealed's supervise/): the user must not be able to write the scandir, and s6-svwait is not checked")
		notifyFD = fs.Int("notify-fd", -1, "write a newline to this fd once the first full pass is done (s6 readiness: services that existed at start are usable by then), then close it")
		resync   = fs.Duration("resync", permwatch.DefaultResync,
			"period of the safety-net full pass (0: off). Long by default: inotify reports every new directory at once and a queue overflow triggers a full pass, so this only catches what nothing reported, and an idle watcher stays at zero CPU time")
		degraded    = fs.Duration("degraded-interval", permwatch.DefaultDegradedInterval, "period of full passes when inotify cannot be used (watch or instance limit reached)")
		nice        = fs.Int("nice", permwatch.DefaultNice, "scheduling priority as root (0: as inherited): perm-watcher must make a new slot's supervise/ before s6-supervise does, which a loaded machine can delay")
		logFormat   = fs.String("log-format", "json", "json or console")
		logLevel    = fs.String("log-level", os.Getenv(logging.LevelEnv), "trace, debug, info, warn, error (default: $"+logging.LevelEnv+", else info)")
		showVersion = fs.Bool("version", false, "print the version and exit")
	)
	fs.Var(&excludes, "exclude", "`glob` of scandir entries to leave alone (repeatable; added to the defaults "+strings.Join(permwatch.DefaultExcludes, ", ")+")")
	usage := func(w io.Writer) {
		fmt.Fprint(w, helpText)
		printFlags(w, fs)
		fmt.Fprint(w, helpTail)
	}
	// The flag package's own message and full usage on every mistake are
	// noise: report the one error and point at --help.
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	fail := func(format string, a ...any) (options, int, bool) {
		fmt.Fprintf(stderr, "perm-watcher: "+format+" (see --help)\n", a...)
		return options{}, exitUsage, true
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			usage(stdout)
			return options{}, exitOK, true
		}
		return fail("%v", err)
	}
	if fs.NArg() > 0 {
		return fail("unexpected argument %q", fs.Arg(0))
	}
	if *showVersion {
		fmt.Fprintln(stdout, "perm-watcher", version)
		return options{}, exitOK, true
	}
	log, err := logging.New(stderr, *logFormat, *logLevel)
	if err != nil {
		return fail("%v", err)
	}
	pol, err := perms.ParsePolicy(*policy)
	if err != nil {
		return fail("--policy: %v", err)
	}
	modeSet, policySet := false, false
	fs.Visit(func(f *flag.Flag) {
		modeSet = modeSet || f.Name == "mode"
		policySet = policySet || f.Name == "policy"
	})
	m, err := mode.FromFlagOrEnv(*modeFlag, modeSet, os.Getenv)
	if err != nil {
		return fail("%v", err)
	}
	if m == mode.Sealed {
		// Sealed mode: event/ stays root's and nothing is handed over.
		if policySet && pol != perms.PolicySealed {
			return fail("--policy %s contradicts sealed mode (%s=sealed or --mode sealed), which needs --policy sealed", pol, mode.Env)
		}
		pol = perms.PolicySealed
	}
	if *check && *once {
		return fail("--check changes nothing and --once changes permissions: give one of them")
	}
	notifySet := false
	fs.Visit(func(f *flag.Flag) { notifySet = notifySet || f.Name == "notify-fd" })
	if notifySet && *notifyFD < 0 {
		return fail("--notify-fd %d: not a file descriptor number", *notifyFD)
	}
	opts = options{
		cfg: permwatch.Config{
			Scandir:          *scandir,
			User:             *user,
			Policy:           pol,
			Once:             *once,
			Resync:           *resync,
			DegradedInterval: *degraded,
			HermesHome:       *home,
			Log:              log,
		},
		check:     *check,
		checkMode: permwatch.CheckModeOf{Mode: m, Explicit: modeSet || strings.TrimSpace(os.Getenv(mode.Env)) != ""},
		notifyFD:  *notifyFD,
		nice:      *nice,
	}
	if *nice < -20 || *nice > 19 {
		return fail("--nice %d: not between -20 and 19", *nice)
	}
	if !*noDefault {
		opts.cfg.Exclude = append(opts.cfg.Exclude, permwatch.DefaultExcludes...)
	}
	opts.cfg.Exclude = append(opts.cfg.Exclude, excludes...)
	if err := opts.cfg.Validate(); err != nil {
		return fail("%v", err)
	}
	// Not root and not --check: the container may have been started as the
	// user itself; permwatch.RunAsUser decides (it needs the user database).
	opts.asUser = !*check && euid != 0
	opts.euid = euid
	if !*check && opts.notifyFD >= 0 {
		if _, err := unix.FcntlInt(uintptr(opts.notifyFD), unix.F_GETFD, 0); err != nil {
			return fail("--notify-fd %d: not an open file descriptor (s6-rc opens the one named in the service's notification-fd file)", opts.notifyFD)
		}
	}
	return opts, exitOK, false
}
