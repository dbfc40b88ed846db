package permwatch

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// RunAsUser is perm-watcher in a container started as the user itself
// (`docker run -u hermes`, Kubernetes `runAsUser: 10000`). s6-overlay then
// runs s6-svscan, every s6-supervise and s6-rc as that user, so every
// supervise/, control FIFO and event/ is the user's already: there is
// nothing to hand over, and nothing could be chowned anyway.
//
// It must still behave as a well-mannered longrun: s6-rc waits for its
// readiness, and s6-overlay holds the container's command back until the
// user bundle is up (by default for ever), so exiting or crash-looping would
// hang the boot. It says once that there is nothing to do, signals
// readiness, and blocks until ctx ends (SIGTERM) without waking up.
// With cfg.Once it returns at once.
//
// euid is the process's effective UID. Any non-root UID other than the
// user's is refused (ErrUsage), as the hermes image's own boot refuses it:
// such a container has services nobody can hand over.
func RunAsUser(ctx context.Context, cfg Config, euid int) error {
	if err := cfg.Validate(); err != nil {
		return err
	}
	id, _, err := resolveOwner(&cfg)
	if err != nil {
		return err
	}
	if euid != id.UID {
		return fmt.Errorf("%w: must run as root (it changes the owner of root's s6 files) or as --user %s itself (uid %d, a container started with -u %s); euid is %d",
			ErrUsage, cfg.User, id.UID, cfg.User, euid)
	}
	// The premise: s6-svscan itself runs as the user. s6-linux-init (or
	// s6-svscan) makes .s6-svscan as whoever runs it, and nothing hands that
	// directory over (reconcile-profiles hands over only its control and
	// lock), so its owner tells a -u container from a root one where
	// someone ran perm-watcher as the user by mistake.
	svscanDir := filepath.Join(cfg.Scandir, ".s6-svscan")
	var st unix.Stat_t
	if err := unix.Lstat(svscanDir, &st); err != nil {
		return fmt.Errorf("%w: running as %s (uid %d), but s6-svscan's %s cannot be read: %w; run perm-watcher as root, or as the user only in a container started with -u %s",
			ErrUsage, id.Name, euid, svscanDir, &os.PathError{Op: "lstat", Path: svscanDir, Err: err}, id.Name)
	}
	if int(st.Uid) != euid {
		return fmt.Errorf("%w: must run as root: s6-svscan runs as uid %d here (%s is owned by it), so its supervisors' files need root to hand them over; only in a container started with -u %s does perm-watcher run as the user",
			ErrUsage, st.Uid, svscanDir, id.Name)
	}
	cfg.Log.Info().Str("path", cfg.Scandir).Str("user", id.Name).Int("uid", euid).Str("action", "skipped").Str("reason", "running-as-user").
		Msg("running as the user itself: s6-svscan and every s6-supervise run as this user too, so their files are the user's already; nothing to hand over")
	if cfg.Ready != nil {
		cfg.Ready()
	}
	if cfg.Once {
		return nil
	}
	<-ctx.Done()
	return nil
}
