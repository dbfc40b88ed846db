package reconcile

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/hermes-s6/hermes-s6/identity"
	"github.com/hermes-s6/hermes-s6/perms"
	"github.com/hermes-s6/hermes-s6/profile"
)

// Run is the whole program, in the contract's order:
//
//  1. dashboard check: the container's stripped argv starts with
//     "dashboard" -> nothing registered, nothing written, nil;
//  2. resolve the user by name;
//  3. as root: hand the scandir (only the directory and its .s6-svscan
//     control and lock) to the user, then drop to the user for good (a
//     failed hand-over is logged and returned after the pass: the boot log
//     is still written); as the user itself (a -u container): skip both;
//     any other UID: wrong usage, unless --dry-run;
//  4. Pass, as the user.
//
// Errors wrap ErrUsage or ErrSystem. Root never reads or writes inside
// HERMES_HOME: everything that does is in Pass, after the drop.
func Run(ctx context.Context, cfg Config) error {
	if err := cfg.Validate(); err != nil {
		return err
	}
	log := cfg.Log
	argv, found := profile.StripArgv(profile.ContainerArgv(cfg.Proc))
	if found && profile.IsDashboard(argv) {
		log.Info().Str("action", "skipped").Str("reason", "dashboard").
			Strs("argv", argv).Msg("dashboard container: no gateway to reconcile")
		return nil
	}
	if !found {
		argv = nil
	}

	id, lookupErr := identity.Lookup(cfg.User)
	// handOverErr does not stop the boot: the pass still runs (as the
	// user) and writes the boot log, whose profile=default line operators
	// and s6-overlay's CMD wait for; the error is returned afterwards.
	var handOverErr error
	switch euid := os.Geteuid(); {
	case euid == 0:
		if lookupErr != nil {
			// Without the user there is nobody to drop to, and root never
			// reads HERMES_HOME: no pass.
			return fmt.Errorf("%w: %w", ErrSystem, lookupErr)
		}
		owner := perms.Owner{UID: id.UID, GID: id.GID}
		if cfg.DryRun {
			log.Info().Str("path", cfg.Scandir).Int("uid", id.UID).Int("gid", id.GID).
				Str("action", "skipped").Str("reason", "dry-run").Msg("would hand the scandir over to the user")
		} else {
			outcomes, err := cfg.HandOver(cfg.Scandir, owner)
			for _, o := range outcomes {
				log.Info().Str("path", o.Path).Str("action", o.Action).Int("uid", o.UID).Int("gid", o.GID).Msg("scandir hand-over")
			}
			if err != nil {
				handOverErr = fmt.Errorf("%w: handing %s over to %s: %w", ErrSystem, cfg.Scandir, id.Name, err)
				log.Error().Err(err).Str("path", cfg.Scandir).Str("action", "error").Str("reason", "hand-over-failed").
					Msgf("the scandir could not be handed over to %s: the slots are still written, but %s may get \"Permission denied\" from s6-svscanctl and cannot register slots until this is fixed (see the error; then restart the container or run reconcile-profiles again as root)", id.Name, id.Name)
			}
		}
		if err := identity.Drop(id); err != nil {
			return errors.Join(handOverErr, fmt.Errorf("%w: %w", ErrSystem, err))
		}
		log.Debug().Int("uid", id.UID).Int("gid", id.GID).Msg("dropped privileges")
	case lookupErr == nil && euid == id.UID:
		// docker run -u hermes: s6-svscan runs as the user, so the scandir
		// and its control FIFO are the user's already.
		log.Info().Int("uid", euid).Str("action", "skipped").Str("reason", "running-as-user").
			Msg("running as the user itself (container started with -u): nothing to hand over, no privileges to drop")
	case cfg.DryRun:
		ev := log.Warn().Int("uid", euid).Str("action", "skipped").Str("reason", "not-root")
		if lookupErr != nil {
			ev = ev.AnErr("error", lookupErr)
		}
		ev.Msg("dry run as another user: the scandir hand-over and the privilege drop are skipped")
	default:
		if lookupErr != nil {
			return fmt.Errorf("%w: not running as root (euid %d) and %w", ErrUsage, euid, lookupErr)
		}
		return fmt.Errorf("%w: must run as root (s6-rc runs it so) or as --user %s itself (uid %d, a container started with -u %s); euid is %d",
			ErrUsage, id.Name, id.UID, id.Name, euid)
	}
	_, err := Pass(ctx, cfg, argv)
	return errors.Join(handOverErr, err)
}

// detectFS presents /proc and /run/s6/basedir, wherever Config puts them,
// as the "/"-rooted file system that s6.Detect reads.
type detectFS struct{ proc, basedir string }

func (d detectFS) Open(name string) (fs.File, error) {
	switch {
	case name == "run/s6/basedir":
		return os.Open(d.basedir)
	case strings.HasPrefix(name, "proc/"):
		return os.Open(filepath.Join(d.proc, strings.TrimPrefix(name, "proc/")))
	}
	return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrNotExist}
}
