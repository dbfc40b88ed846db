package permwatch

import (
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"time"

	"github.com/rs/zerolog"

	"github.com/hermes-s6/hermes-s6/identity"
	"github.com/hermes-s6/hermes-s6/perms"
)

// ErrUsage is wrapped by errors that come from the configuration (exit 100).
var ErrUsage = errors.New("wrong usage")

// ServiceName is perm-watcher's own s6-rc service name, excluded by default.
const ServiceName = "perm-watcher"

// DefaultExcludes are the scandir entries never touched: s6-rc's and
// s6-linux-init's own services (s6-svscan-log is the catch-all logger
// s6-linux-init may create), perm-watcher itself and sealed mode's
// follower. They are matched against the entry's name and, for a
// root-owned symlink, the name of the directory it resolves to; a
// root-owned excluded directory is also remembered by device and inode, so
// renaming it changes nothing.
var DefaultExcludes = []string{"s6rc-*", "s6-linux-*", "s6-svscan-log", ServiceName, FollowerServiceName}

// FollowerServiceName is the s6-rc longrun of reconcile-profiles --follow
// (sealed mode's slot publisher): like perm-watcher, root's alone.
const FollowerServiceName = "profile-follower"

// Defaults.
const (
	DefaultScandir = "/run/service"
	DefaultUser    = "hermes"
	// DefaultResync is long on purpose (see the package doc): inotify and
	// overflow-triggered full passes cover the normal cases, and an idle
	// watcher must not wake up within a 60 s window.
	DefaultResync           = 5 * time.Minute
	DefaultDegradedInterval = time.Second
)

// Config is what Run and Check need.
type Config struct {
	Scandir string
	User    string
	Policy  perms.Policy
	Exclude []string // globs (filepath.Match) on scandir entry names
	Once    bool
	// Resync is the period of the safety-net full pass; 0 turns it off.
	Resync time.Duration
	// DegradedInterval is the period of full passes when inotify watches
	// cannot be added (ENOSPC/EMFILE); 0 means DefaultDegradedInterval.
	DegradedInterval time.Duration
	// HermesHome is read only by Check, as a non-root user: the slots its
	// boot log announced must be there and usable ("" skips that check).
	HermesHome string
	// Ready is called once, after the first full pass (s6 readiness).
	Ready func()
	Log   zerolog.Logger
}

// Validate checks the configuration; its errors wrap ErrUsage.
func (c *Config) Validate() error {
	if c.Scandir == "" {
		return fmt.Errorf("%w: --scandir must not be empty", ErrUsage)
	}
	if c.User == "" {
		return fmt.Errorf("%w: --user must not be empty", ErrUsage)
	}
	if c.Policy == "" {
		c.Policy = perms.PolicyOwner
	}
	if _, err := perms.ParsePolicy(string(c.Policy)); err != nil {
		return fmt.Errorf("%w: --policy: %v", ErrUsage, err)
	}
	for _, g := range c.Exclude {
		if _, err := filepath.Match(g, ""); err != nil {
			return fmt.Errorf("%w: --exclude %q: %v", ErrUsage, g, err)
		}
	}
	if c.Resync < 0 {
		return fmt.Errorf("%w: --resync must not be negative", ErrUsage)
	}
	if c.DegradedInterval < 0 {
		return fmt.Errorf("%w: --degraded-interval must not be negative", ErrUsage)
	}
	if c.DegradedInterval == 0 {
		c.DegradedInterval = DefaultDegradedInterval
	}
	return nil
}

// Excluded reports whether the scandir entry name is left alone by
// --check: dot names (s6-svscan ignores them: .s6-svscan, slots being
// staged) and the configured globs.
func (c *Config) Excluded(name string) bool {
	if name == "" || strings.HasPrefix(name, ".") {
		return true
	}
	return c.matchExclude(name)
}

func (c *Config) matchExclude(name string) bool {
	for _, g := range c.Exclude {
		if ok, _ := filepath.Match(g, name); ok {
			return true
		}
	}
	return false
}

func resolveOwner(c *Config) (identity.Identity, perms.Owner, error) {
	id, err := identity.Lookup(c.User)
	if err != nil {
		if errors.Is(err, identity.ErrNoSuchUser) {
			return id, perms.Owner{}, fmt.Errorf("%w: %v", ErrUsage, err)
		}
		return id, perms.Owner{}, err
	}
	if id.UID == 0 {
		return id, perms.Owner{}, fmt.Errorf("%w: --user %s is root: there is nothing to hand over", ErrUsage, c.User)
	}
	return id, perms.Owner{UID: id.UID, GID: id.GID}, nil
}
