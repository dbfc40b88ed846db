// Package slot renders a profile's gateway service directory
// (<scandir>/gateway-<name>/) and publishes it: a new slot is built under a
// dot name and renamed into place, an existing one is converged file by
// file, so that a running s6-supervise is never torn down.
package slot

import (
	"io/fs"
	"strconv"
	"strings"
)

// Prefix is the service-directory name prefix of gateway slots.
const Prefix = "gateway-"

// DirName is the slot directory name of profile name.
func DirName(name string) string { return Prefix + name }

// TmpPrefix starts the dot name under which a new slot is built (s6-svscan
// ignores dot names).
const TmpPrefix = ".gw-"

// TmpName is the name under which a new slot is built: .gw-<name>.tmp, as
// long as the slot's own name (gateway-<name>) and never longer, so that
// every name that fits a slot fits its staging directory too (the hermes
// CLI's .gateway-<name>.tmp is 5 bytes longer and would fail past 242
// bytes). Being different from the CLI's, it never clashes with a
// registration the CLI is making.
func TmpName(name string) string { return TmpPrefix + name + ".tmp" }

// HermesHomeDefault is the home the run script uses and the default of
// $HERMES_HOME in the logger script, as the contract fixes it.
const HermesHomeDefault = "/opt/data"

// DefaultCommandDir is where s6-overlay installs its programs.
const DefaultCommandDir = "/command"

// DownFile's presence keeps the slot from autostarting.
const DownFile = "down"

// Spec is what a slot is made of.
type Spec struct {
	Name       string // valid profile name; "default" for the root profile
	User       string // the unprivileged user baked into the scripts
	CommandDir string // s6-overlay's program directory, normally /command
	Home       string // HOME and working directory of the gateway, normally /opt/data
	Down       bool   // the slot must not autostart
	// Drop, when set, says that the slot's supervisors certainly run as
	// root (sealed mode: the follower is root and s6-svscan too) and gives
	// the user's ids, resolved when the slot is published. The scripts
	// then drop to the user without asking id(1) first, and log/run is an
	// execline script that drops before anything else runs (see
	// LogRunScript). Open mode leaves it nil: there a container started as
	// the user runs the same slot without root.
	Drop *IDs
}

// IDs are a user's numeric ids, as s6-applyuidgid takes them.
type IDs struct {
	UID, GID int
	Groups   []int // supplementary groups (the primary one included or not)
}

func (i IDs) groupList() string {
	gs := []string{strconv.Itoa(i.GID)}
	for _, g := range i.Groups {
		if g != i.GID {
			gs = append(gs, strconv.Itoa(g))
		}
	}
	return strings.Join(gs, ",")
}

// File is one file of a rendered slot.
type File struct {
	Path string      // relative to the slot directory, e.g. "log/run"
	Mode fs.FileMode // permission bits
	Data []byte
	// Shared: the same in every slot, whatever the Spec (see Publisher).
	Shared bool
}

// Files that Render produces, in the order they are written.
const (
	TypeFile   = "type"
	RunFile    = "run"
	FinishFile = "finish"
	LogDir     = "log"
	LogRunFile = "log/run"
)

// TypeData is the content of type.
const TypeData = "longrun\n"

// Render returns the slot's files (without down, which is Spec.Down).
func Render(s Spec) []File {
	return []File{
		{Path: TypeFile, Mode: 0o644, Data: []byte(TypeData), Shared: true},
		{Path: RunFile, Mode: 0o755, Data: []byte(RunScript(s))},
		{Path: FinishFile, Mode: 0o755, Data: []byte(FinishScript), Shared: true},
		{Path: LogRunFile, Mode: 0o755, Data: []byte(LogRunScript(s))},
	}
}

func home(s Spec) string {
	if s.Home == "" {
		return HermesHomeDefault
	}
	return s.Home
}

func cmdDir(s Spec) string {
	if s.CommandDir == "" {
		return DefaultCommandDir
	}
	return strings.TrimRight(s.CommandDir, "/")
}

// hermesArgs is the gateway command line: the default profile has no -p.
func hermesArgs(name string) string {
	if name == "default" {
		return "hermes gateway run --replace"
	}
	return "hermes -p " + name + " gateway run --replace"
}

// RunScript is the slot's ./run. It drops to the user through
// s6-setuidgid only when s6-supervise runs it as root (the normal case
// under s6-overlay); started by the user itself, it runs directly.
func RunScript(s Spec) string {
	c := cmdDir(s)
	args := hermesArgs(s.Name)
	head := "#!" + c + "/with-contenv sh\n" +
		"# " + DirName(s.Name) + ": written by reconcile-profiles at every boot; edits are lost.\n" +
		"set -e\n" +
		"exec 2>&1\n" +
		"export HOME=" + home(s) + "\n" +
		"cd " + home(s) + "\n" +
		"export HERMES_S6_SUPERVISED_CHILD=1\n" +
		"export HERMES_SUPERVISED_CHILD=1\n"
	if s.Drop != nil {
		// Sealed: root's s6-supervise runs it, always. No id(1): a fork
		// and an exec as root at every start that a dx storm multiplies.
		return head + "exec " + c + "/s6-setuidgid " + s.User + " " + args + "\n"
	}
	return head +
		"if [ \"$(id -u)\" -eq 0 ]; then\n" +
		"  exec " + c + "/s6-setuidgid " + s.User + " " + args + "\n" +
		"fi\n" +
		"exec " + args + "\n"
}

// FinishScript is the slot's ./finish.
const FinishScript = `#!/bin/sh
# s6-supervise runs ./finish with ./run's exit code as $1 (256, and the
# signal as $2, if it was killed). 0 (stopped on purpose) and 78 (EX_CONFIG:
# cannot run as configured) are final: exit 125 tells s6-supervise (s6 2.11
# and later) not to restart it. Anything else: let it restart.
case "$1" in
0|78) exit 125 ;;
esac
exit 0
`

// SealedLogPrograms are the execline and s6 programs a sealed log/run
// runs from the command directory, besides s6-overlay's with-contenv and
// s6-log. s6-overlay's /command has them all; a test that fakes /command
// links these (TestLogRunNamesOnlyKnownPrograms keeps the list true).
var SealedLogPrograms = []string{"execlineb", "s6-applyuidgid", "importas", "ifthenelse", "eltest", "define", "if"}

// LogRunScript is the slot's log/run: s6-log into
// $HERMES_HOME/logs/gateways/<name>, HERMES_HOME read at run time. The
// directory is made by the user itself (never chowned by root), and a
// stale lock left by a previous container is removed first.
//
// With Spec.Drop (sealed mode) it is an execline script whose first
// command is s6-applyuidgid with the ids resolved at publish time: a
// logger's start costs root one execlineb and one s6-applyuidgid, not
// with-contenv, sh, id and three s6-setuidgid (a user writing dx into
// every log/'s control FIFO restarts every logger's supervisor once a
// second, README "Sealed mode"). with-contenv, reading HERMES_HOME (unset
// or empty: /opt/data), the mkdir and the rm then run as the user.
func LogRunScript(s Spec) string {
	c := cmdDir(s)
	if s.Drop != nil {
		return "#!" + c + "/execlineb -P\n" +
			"# logger of " + DirName(s.Name) + ": written by reconcile-profiles --follow (sealed mode); edits are lost.\n" +
			"# Drops to " + s.User + " first: nothing else here runs as root.\n" +
			c + "/s6-applyuidgid -u " + strconv.Itoa(s.Drop.UID) + " -g " + strconv.Itoa(s.Drop.GID) + " -G " + s.Drop.groupList() + "\n" +
			c + "/with-contenv\n" +
			// importas -D covers an unset HERMES_HOME only; set but empty
			// it must mean the default too, as ${HERMES_HOME:-...} does in
			// open mode's sh (ifthenelse -s: the define is spliced in).
			c + "/importas -D " + HermesHomeDefault + " h0 HERMES_HOME\n" +
			c + "/ifthenelse -s { " + c + "/eltest -z ${h0} } { " + c + "/define h " + HermesHomeDefault + " } { " + c + "/define h ${h0} }\n" +
			c + "/define d ${h}/logs/gateways/" + s.Name + "\n" +
			c + "/if { mkdir -p ${d} }\n" +
			c + "/if { rm -f ${d}/lock }\n" +
			c + "/s6-log 1 n10 s1000000 T ${d}\n"
	}
	su := c + "/s6-setuidgid " + s.User + " "
	log := c + "/s6-log 1 n10 s1000000 T \"$dir\""
	return "#!" + c + "/with-contenv sh\n" +
		"# logger of " + DirName(s.Name) + ": written by reconcile-profiles at every boot; edits are lost.\n" +
		"set -e\n" +
		"dir=\"${HERMES_HOME:-" + HermesHomeDefault + "}/logs/gateways/" + s.Name + "\"\n" +
		"if [ \"$(id -u)\" -eq 0 ]; then\n" +
		"  " + su + "mkdir -p \"$dir\"\n" +
		"  " + su + "rm -f \"$dir/lock\"\n" +
		"  exec " + su + log + "\n" +
		"fi\n" +
		"mkdir -p \"$dir\"\n" +
		"rm -f \"$dir/lock\"\n" +
		"exec " + log + "\n"
}
