// Package reconcile is the boot-time pass of reconcile-profiles: it reads
// HERMES_HOME's profiles and makes the scandir hold one gateway slot per
// profile, converged in place, then asks s6-svscan to rescan and appends
// the boot log.
//
// Run is the whole program (dashboard check, root hand-over of the
// scandir, privilege drop, then Pass). identity.Drop is process-wide and
// irreversible, so tests call Pass directly, and run the built binary when
// they need the root part.
package reconcile

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/rs/zerolog"

	"github.com/hermes-s6/hermes-s6/perms"
	"github.com/hermes-s6/hermes-s6/profile"
	"github.com/hermes-s6/hermes-s6/slot"
)

// Environment variables read by the pass (profile.Decide reads them).
const (
	EnvMultiplex   = profile.EnvMultiplex
	EnvNoSupervise = profile.EnvNoSupervise
)

// Defaults of the Config paths.
const (
	DefaultHermesHome = "/opt/data"
	DefaultScandir    = "/run/service"
	DefaultUser       = "hermes"
	DefaultProc       = "/proc"
	DefaultS6Basedir  = "/run/s6/basedir"
)

// ErrUsage is wrapped by errors the caller caused (exit 100); ErrSystem by
// errors of the system: the scandir cannot be prepared, privileges cannot
// be dropped (exit 111).
var (
	ErrUsage  = errors.New("wrong usage")
	ErrSystem = errors.New("system failure")
)

// HandOverFunc is the root part: make the scandir directory and its
// .s6-svscan/control and lock belong to owner.
type HandOverFunc func(scandir string, owner perms.Owner) ([]perms.Outcome, error)

// Sink receives the pass's slots instead of the scandir: sealed mode's
// reader (package follow), which runs this same pass as the user and hands
// the slots to root as records. Publish is called once per slot, from
// several goroutines; Commit once after the last, in place of the rescan,
// and returns the slots root could not make (name -> boot log reason).
type Sink interface {
	Publish(slot.Spec) (slot.Result, error)
	Close() error // after the last Publish, before Commit
	Commit(ctx context.Context) (failed map[string]string, err error)
}

// Config is one run.
type Config struct {
	HermesHome string // HERMES_HOME: the default profile, and profiles/
	Scandir    string // s6-svscan's scandir
	User       string // unprivileged user: resolved at run time, baked into the scripts by name
	CommandDir string // where s6-overlay's programs are (/command)
	// GatewayHome is HOME and the working directory of the gateway in the
	// run scripts: /opt/data, as the contract fixes it (tests change it).
	GatewayHome string
	Proc        string // /proc: container argv and s6 detection
	S6Basedir   string // /run/s6/basedir: s6 detection
	DryRun      bool   // print what would be done, change nothing

	// Getenv reads the environment (os.Getenv when nil).
	Getenv func(string) string
	// Now is the clock (time.Now when nil).
	Now func() time.Time
	// Log receives the structured events; its writer must be safe for
	// concurrent use (os.Stderr is; wrap others in zerolog.SyncWriter).
	Log zerolog.Logger
	// Out receives the dry-run lines (os.Stdout when nil).
	Out io.Writer
	// HandOver is the root part (perms.HandOverScandir when nil).
	HandOver HandOverFunc
	// Workers is the number of profiles reconciled at once (0: automatic).
	Workers int
	// Sink, if set, receives the slots instead of the scandir (see Sink).
	Sink Sink
	// NameLimit bounds the names that get a slot; zero: Pass computes it
	// once from the scandir (slot.ScandirNameLimit). Sealed mode's reader
	// gets root's.
	NameLimit slot.NameLimit
}

func (c *Config) defaults() {
	if c.HermesHome == "" {
		c.HermesHome = DefaultHermesHome
	}
	if c.Scandir == "" {
		c.Scandir = DefaultScandir
	}
	if c.User == "" {
		c.User = DefaultUser
	}
	if c.CommandDir == "" {
		c.CommandDir = slot.DefaultCommandDir
	}
	if c.GatewayHome == "" {
		c.GatewayHome = slot.HermesHomeDefault
	}
	if c.Proc == "" {
		c.Proc = DefaultProc
	}
	if c.S6Basedir == "" {
		c.S6Basedir = DefaultS6Basedir
	}
	if c.Getenv == nil {
		c.Getenv = os.Getenv
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Out == nil {
		c.Out = os.Stdout
	}
	if c.HandOver == nil {
		c.HandOver = perms.HandOverScandir
	}
}

// Validate checks the Config (after defaults) and returns an error
// wrapping ErrUsage.
func (c *Config) Validate() error {
	c.defaults()
	for _, p := range []struct{ flag, v string }{
		{"--hermes-home", c.HermesHome}, {"--scandir", c.Scandir}, {"--command-dir", c.CommandDir},
		{"--proc", c.Proc}, {"--s6-basedir", c.S6Basedir}, {"--gateway-home", c.GatewayHome},
	} {
		if !filepath.IsAbs(p.v) {
			return fmt.Errorf("%w: %s %q: must be an absolute path", ErrUsage, p.flag, p.v)
		}
	}
	// The command dir goes into a #! line and unquoted into scripts.
	if !plain(c.CommandDir, "/._+-") {
		return fmt.Errorf("%w: --command-dir %q: only letters, digits and /._+- are allowed (it goes into #! lines)", ErrUsage, c.CommandDir)
	}
	if !plain(c.GatewayHome, "/._+-") {
		return fmt.Errorf("%w: --gateway-home %q: only letters, digits and /._+- are allowed (it goes unquoted into scripts)", ErrUsage, c.GatewayHome)
	}
	if !plain(c.User, "._-") || strings.HasPrefix(c.User, "-") {
		return fmt.Errorf("%w: --user %q: not a portable user name ([A-Za-z0-9._-], not starting with -)", ErrUsage, c.User)
	}
	if c.Workers < 0 {
		return fmt.Errorf("%w: workers %d < 0", ErrUsage, c.Workers)
	}
	return nil
}

func plain(s, extra string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || strings.IndexByte(extra, c) >= 0 {
			continue
		}
		return false
	}
	return true
}
