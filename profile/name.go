// Package profile knows what HERMES_HOME says about gateway profiles: which
// names are valid, which directories are profiles, what state a profile
// wants, whether hermes multiplexes them (config.yaml, environment), the
// legacy container command, and the stale runtime files a dead PID
// namespace leaves behind. Decide is the one place that turns all of it
// into decisions, (name, autostart) per slot, as hermes's own boot
// reconcile decides; it only reads, so that whoever writes slots (the boot
// pass, sealed mode's root side) applies the same decisions.
//
// Symlinks (decided once, for the whole package): HERMES_HOME is read only
// by the unprivileged user (reconcile drops to it first), so following a
// link that user made gives nobody anything new, and the package sees what
// any hermes process sees: profile directories, SOUL.md,
// gateway_state.json, state/gateway.lifecycle.json and config.yaml are
// followed (a dangling link is "missing"). Writing is another matter: the
// legacy migration never writes through a symlink (a link there, even a
// dangling one, is an existing state file), and stale runtime files are
// unlinked, which removes a link, never its target.
package profile

import "strings"

// DefaultName is the slot name of the root profile (HERMES_HOME itself). It
// is reserved: a directory profiles/default/ is ignored.
const DefaultName = "default"

// MaxNameLen is the longest valid profile name in bytes: hermes's own limit.
const MaxNameLen = 251

// MaxSlotNameLen is the longest profile name that can have a slot:
// "gateway-<name>" must fit a 255-byte file name (NAME_MAX). A valid name
// of MaxSlotNameLen+1 to MaxNameLen bytes is skipped (SkipTooLong).
const MaxSlotNameLen = 255 - len("gateway-")

// ValidName reports whether name matches ^[a-z0-9][a-z0-9_-]*$ in full
// (no trailing newline accepted) and is at most MaxNameLen bytes long.
// It is a byte loop on purpose: no regexp "$" subtleties.
func ValidName(name string) bool {
	if len(name) == 0 || len(name) > MaxNameLen {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		switch {
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9':
		case (c == '_' || c == '-') && i > 0:
		default:
			return false
		}
	}
	return true
}

// Truthy is hermes's truthiness of a string, the one place that decides
// it here: stripped of surrounding blanks and lower-cased, one of 1, true,
// yes, on. It decides the environment variables the contract reads
// (GATEWAY_MULTIPLEX_PROFILES, HERMES_GATEWAY_NO_SUPERVISE) and a string
// gateway.multiplex_profiles in config.yaml.
func Truthy(v string) bool {
	switch strings.ToLower(strings.TrimSpace(v)) {
	case "1", "true", "yes", "on":
		return true
	}
	return false
}
