package follow

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"time"

	"github.com/rs/zerolog"
	"golang.org/x/sys/unix"

	"github.com/hermes-s6/hermes-s6/bootlog"
	"github.com/hermes-s6/hermes-s6/identity"
	"github.com/hermes-s6/hermes-s6/mode"
	"github.com/hermes-s6/hermes-s6/perms"
	"github.com/hermes-s6/hermes-s6/profile"
	"github.com/hermes-s6/hermes-s6/s6"
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
	args := []string{"--internal-reader", "--hermes-home", cfg.HermesHome, "--proc", cfg.Proc,
		"--max-profiles", strconv.Itoa(cfg.MaxRecords - 1)}
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
		MaxRecords:  cfg.MaxRecords,
		Start: ExecStarter{Path: exe, Args: args, Env: os.Environ(), UID: id.UID, GID: id.GID,
			Groups: id.Groups, Stderr: stderr}.Start,
		Prepare: func(staging string) error {
			_, err := sd.Prepare(staging, owner, perms.PolicySealed, perms.ScopeAll)
			return err
		},
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
	HermesHome string
	Proc       string
	MaxRecords int // named profiles; the default one comes on top
	Boot       bool
	Getenv     func(string) string
	Now        func() time.Time
	In         io.Reader
	Out        io.Writer
	Log        zerolog.Logger
}

// RunReader is the reader process. It refuses to run as root: it reads
// HERMES_HOME, which root never does. On the boot run it also does the
// boot pass's one-time work (legacy migration, stale runtime files) and,
// once root has applied the first snapshot, appends the boot log (whose
// profile=default line is the "boot is done" signal, as in open mode).
func RunReader(ctx context.Context, cfg ReaderMainConfig) error {
	if os.Geteuid() == 0 {
		return fmt.Errorf("%w: the reader reads HERMES_HOME and must not run as root", ErrUsage)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	unix.Umask(0o022)
	argv, found := profile.StripArgv(profile.ContainerArgv(cfg.Proc))
	if !found {
		argv = nil
	}
	migrated := false
	now := cfg.Now()
	if cfg.Boot && !profile.IsDashboard(argv) {
		home := cfg.HermesHome
		if profile.ReadState(home).Reason == profile.NoStateMissing && profile.StateMissing(home) &&
			!profile.Truthy(cfg.Getenv("HERMES_GATEWAY_NO_SUPERVISE")) && profile.IsLegacyGateway(argv) {
			migrated = true
			if err := profile.WriteMigratedState(home, now); err != nil {
				cfg.Log.Error().Str("profile", profile.DefaultName).Err(err).
					Msg("legacy migration: state not written; the default gateway starts anyway for this boot")
			} else {
				cfg.Log.Info().Str("profile", profile.DefaultName).Str("action", "migrated").Str("reason", "legacy-container-cmd").
					Msg("legacy migration: the container command is a supervised gateway run, state written as running")
			}
		}
	}
	if cfg.Boot && !profile.IsDashboard(argv) {
		// Before the first snapshot: a gateway that root starts must not
		// lose its fresh pid file to this clean-up.
		for _, d := range Decide(DecideInput{HermesHome: cfg.HermesHome, Getenv: cfg.Getenv, Argv: argv, Migrated: migrated}) {
			if d.Skip != "" {
				continue
			}
			if removed, err := profile.RemoveStale(d.Dir); err != nil {
				cfg.Log.Warn().Str("profile", d.Name).Err(err).Msg("stale runtime file not removed")
			} else if len(removed) > 0 {
				cfg.Log.Debug().Str("profile", d.Name).Strs("removed", removed).Msg("stale runtime files removed")
			}
		}
	}
	rc := ReaderConfig{
		HermesHome: cfg.HermesHome,
		Getenv:     cfg.Getenv,
		Argv:       argv,
		Migrated:   migrated,
		MaxRecords: cfg.MaxRecords + 1,
		Out:        cfg.Out,
		In:         cfg.In,
		Log:        cfg.Log,
	}
	if cfg.Boot && !profile.IsDashboard(argv) {
		rc.OnApplied = func(ds []Decision, failed map[string]bool) {
			entries := make([]bootlog.Entry, 0, len(ds))
			for _, d := range ds {
				if d.Skip == SkipNotProfile {
					continue
				}
				e := bootlog.Entry{Time: now, Profile: d.Name, PriorState: d.PriorState, PriorExit: profile.ExitUnknown}
				switch {
				case d.Skip != "":
					e.Action, e.Reason = bootlog.Skipped, d.Skip
				case failed[d.Name]:
					e.Action, e.Reason = bootlog.Error, "publish-failed"
				case d.Autostart:
					e.Action = bootlog.Started
				default:
					e.Action = bootlog.Registered
				}
				if d.Skip == "" {
					e.PriorExit = profile.PriorExit(d.Dir)
				}
				entries = append(entries, e)
			}
			if err := bootlog.Append(cfg.HermesHome, entries); err != nil {
				cfg.Log.Error().Err(err).Msg("boot log not written")
			}
		}
	}
	return Reader(ctx, rc)
}
