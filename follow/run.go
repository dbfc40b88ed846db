package follow

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"time"

	"github.com/rs/zerolog"
	"golang.org/x/sys/unix"

	"github.com/hermes-s6/hermes-s6/identity"
	"github.com/hermes-s6/hermes-s6/mode"
	"github.com/hermes-s6/hermes-s6/perms"
	"github.com/hermes-s6/hermes-s6/profile"
	"github.com/hermes-s6/hermes-s6/reconcile"
	"github.com/hermes-s6/hermes-s6/s6"
	"github.com/hermes-s6/hermes-s6/slot"
)

// ErrUsage is wrapped by configuration errors (exit 100); other errors are
// system failures (exit 111).
var ErrUsage = errors.New("wrong usage")

// FollowerConfig is reconcile-profiles --follow.
type FollowerConfig struct {
	Mode        mode.Mode
	HermesHome  string
	Scandir     string
	User        string
	CommandDir  string
	GatewayHome string
	Proc        string
	MaxRecords  int
	LogLevel    string // passed to the reader
	Exe         string // the binary re-executed as the reader (/proc/self/exe)
	Ready       func()
	Log         zerolog.Logger
	Stderr      io.Writer
}

// RunFollower is the longrun. In open mode, or in a container that does
// not run as root (docker run -u hermes: everything is the user's already,
// there is nothing to seal), it signals readiness and waits for ctx at zero
// CPU: the boot oneshot does the work, as before. In sealed mode, as root,
// it is Root with the production reader.
func RunFollower(ctx context.Context, cfg FollowerConfig) error {
	log := cfg.Log
	ready := func() {
		if cfg.Ready != nil {
			cfg.Ready()
		}
	}
	euid := os.Geteuid()
	switch {
	case cfg.Mode != mode.Sealed:
		log.Debug().Str("mode", string(cfg.Mode)).Msg("open mode: the boot oneshot publishes the slots; nothing to follow")
		ready()
		<-ctx.Done()
		return nil
	case euid != 0:
		log.Warn().Int("uid", euid).Str("mode", string(cfg.Mode)).Str("action", "skipped").Str("reason", "not-root").
			Msg("sealed mode is meaningless in a container that does not run as root (every s6 process is the user's already): ignored; the boot oneshot publishes the slots as in open mode")
		ready()
		<-ctx.Done()
		return nil
	}
	id, err := identity.Lookup(cfg.User)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrUsage, err)
	}
	if id.UID == 0 {
		return fmt.Errorf("%w: --user %s is root", ErrUsage, cfg.User)
	}
	if err := checkSealedScandir(cfg.Scandir); err != nil {
		return err
	}
	sd, err := perms.OpenScandir(cfg.Scandir)
	if err != nil {
		return err
	}
	defer sd.Close()
	owner := perms.Owner{UID: id.UID, GID: id.GID}
	exe := cfg.Exe
	if exe == "" {
		exe = "/proc/self/exe"
	}
	if cfg.MaxRecords <= 0 {
		cfg.MaxRecords = DefaultMaxRecords
	}
	// Once, at start: a name that cannot make a working slot is refused by
	// the reader (one log line, a boot-log skipped entry), never published
	// and retried.
	lim, err := slot.ScandirNameLimit(cfg.Scandir, cfg.Proc)
	if err != nil {
		return fmt.Errorf("sealed mode: the scandir's file name limit: %w", err)
	}
	log.Info().Str("path", cfg.Scandir).Int("max_name_bytes", lim.MaxName()).Int("fs_name_max", lim.FS).Int("svscan_name_max", lim.Svscan).
		Msgf("profile names get a slot up to %d bytes (%s)", lim.MaxName(), lim)
	args := []string{"--internal-reader", "--hermes-home", cfg.HermesHome, "--proc", cfg.Proc,
		"--scandir", cfg.Scandir, "--user", id.Name, "--mode", string(mode.Sealed),
		"--max-profiles", strconv.Itoa(cfg.MaxRecords - 1),
		"--internal-name-limit", strconv.Itoa(lim.FS) + "," + strconv.Itoa(lim.Svscan)}
	if cfg.LogLevel != "" {
		args = append(args, "--log-level", cfg.LogLevel)
	}
	stderr := cfg.Stderr
	if stderr == nil {
		stderr = os.Stderr
	}
	return Root(ctx, RootConfig{
		Scandir:     cfg.Scandir,
		User:        id.Name,
		CommandDir:  cfg.CommandDir,
		GatewayHome: cfg.GatewayHome,
		Drop:        &slot.IDs{UID: id.UID, GID: id.GID, Groups: id.Groups},
		MaxName:     lim.MaxName(),
		MaxRecords:  cfg.MaxRecords,
		Start: ExecStarter{Path: exe, Args: args, Env: os.Environ(), UID: id.UID, GID: id.GID,
			Groups: id.Groups, Stderr: stderr}.Start,
		Prepare: func(staging string) error {
			_, err := sd.Prepare(staging, owner, perms.PolicySealed, perms.ScopeAll)
			return err
		},
		Proc:  cfg.Proc,
		Ready: ready,
		Log:   log,
	})
}

// checkSealedScandir refuses to run sealed on a scandir that the user could
// already write: the scandir itself and .s6-svscan/{control,lock} must be
// root's and not writable by group or others (sealed mode never hands them
// over; something else did, and the seal would be a pretence).
func checkSealedScandir(scandir string) error {
	for _, p := range []string{scandir, scandir + "/" + s6.ControlDir, scandir + "/" + s6.ControlFIFO, scandir + "/" + s6.LockFile} {
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			if errors.Is(err, unix.ENOENT) && p != scandir {
				continue // s6-svscan has not made it yet; it makes it root's
			}
			return fmt.Errorf("sealed mode: %s: %w", p, err)
		}
		if st.Uid != 0 || st.Mode&0o022 != 0 {
			return fmt.Errorf("%w: sealed mode needs %s to be root's and writable by root only, but it is uid %d mode %04o: "+
				"something handed it over (was open mode's reconcile-profiles run in this container?); restart the container with %s=sealed",
				ErrUsage, p, st.Uid, st.Mode&0o7777, mode.Env)
		}
	}
	return nil
}

// ReaderMainConfig is the hidden reader process (reconcile-profiles
// --internal-reader), started by RunFollower as the user.
type ReaderMainConfig struct {
	// Pass is the boot pass's configuration (HermesHome, Scandir, User,
	// CommandDir, GatewayHome, Proc, Getenv, Log...): the reader runs that
	// same pass on its boot run, with a Sink instead of the scandir.
	Pass       reconcile.Config
	MaxRecords int // named profiles; the default one comes on top
	Boot       bool
	In         io.Reader // root's answers; EOF: root is gone
	Out        io.Writer // snapshots to root
}

// RunReader is the reader process. It refuses to run as root: it reads
// HERMES_HOME, which root never does. On the boot run it is the boot pass
// (reconcile.Pass: decisions, legacy migration, stale runtime files, boot
// log) whose slots go to root as the first snapshot; the boot log is
// appended once root has applied it, so that its profile=default line
// still means "boot is done". Then it follows HERMES_HOME (Reader).
func RunReader(ctx context.Context, cfg ReaderMainConfig) error {
	if os.Geteuid() == 0 {
		return fmt.Errorf("%w: the reader reads HERMES_HOME and must not run as root", ErrUsage)
	}
	pc := cfg.Pass
	err := pc.Validate()
	if err != nil {
		return err
	}
	log := pc.Log
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	answers := make(chan string, 64)
	go func() {
		// Root's end closing means root is gone: stop.
		defer cancel()
		defer close(answers)
		sc := bufio.NewScanner(cfg.In)
		for sc.Scan() {
			select {
			case answers <- sc.Text():
			default: // only the boot pass waits for answers
			}
		}
	}()
	argv, found := profile.StripArgv(profile.ContainerArgv(pc.Proc))
	if !found {
		argv = nil
	}
	max := cfg.MaxRecords + 1
	if pc.NameLimit == (slot.NameLimit{}) {
		// Started by hand: the same computation as root's.
		if pc.NameLimit, err = slot.ScandirNameLimit(pc.Scandir, pc.Proc); err != nil {
			log.Warn().Err(err).Msg("cannot read the scandir's file name limit: assuming 255 bytes")
		}
	}
	sent := ""
	// reported: too-long names already logged (by the boot pass, or
	// silently taken as known by a restarted reader), so that each is
	// refused once, not at every snapshot.
	var reported map[string]bool
	if cfg.Boot {
		sink := &rootSink{scandir: pc.Scandir, out: cfg.Out, answers: answers, timeout: 5 * time.Minute, max: max}
		pc.Sink = sink
		sum, err := reconcile.Pass(ctx, pc, argv)
		if err != nil {
			log.Error().Err(err).Msg("boot pass")
		}
		sent = sink.sent
		reported = map[string]bool{}
		for _, o := range sum.Slots {
			if o.Entry.Reason == profile.SkipTooLong {
				reported[o.Entry.Profile] = true
			}
		}
	}
	return Reader(ctx, ReaderConfig{HermesHome: pc.HermesHome, Getenv: pc.Getenv, Argv: argv,
		MaxRecords: max, Out: cfg.Out, Sent: sent, Log: log, NameLimit: pc.NameLimit, Reported: reported})
}
