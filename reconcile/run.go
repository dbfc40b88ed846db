package reconcile

import (
	"context"
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
//     control and lock) to the user, then drop to the user for good;
//     not root: warn and skip both;
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
	if os.Geteuid() == 0 {
		if lookupErr != nil {
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
				return fmt.Errorf("%w: handing %s over to %s: %w", ErrSystem, cfg.Scandir, id.Name, err)
			}
		}
		if err := identity.Drop(id); err != nil {
			return fmt.Errorf("%w: %w", ErrSystem, err)
		}
		log.Debug().Int("uid", id.UID).Int("gid", id.GID).Msg("dropped privileges")
	} else {
		ev := log.Warn().Int("uid", os.Geteuid()).Str("action", "skipped").Str("reason", "not-root")
		if lookupErr != nil {
			ev = ev.AnErr("error", lookupErr)
		} else if id.UID != os.Geteuid() {
			ev = ev.Int("user_uid", id.UID)
		}
		ev.Msg("not running as root: the scandir is not handed over and privileges are not dropped; slots are written as the current user")
	}
	_, err := Pass(ctx, cfg, argv)
	return err
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
