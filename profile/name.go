// Package profile knows what HERMES_HOME says about gateway profiles: which
// names are valid, which directories are profiles, what state a profile
// wants, the legacy container command, and the stale runtime files a dead
// PID namespace leaves behind.
//
// Symlinks (decided once, for the whole package): reconcile reads
// HERMES_HOME only after dropping to the unprivileged user, so following a
// link that user made gives nobody anything new. Directories are therefore
// followed (a profile directory may be a symlink to another volume, as the
// hermes CLI allows). Files that reconcile reads or writes inside a profile
// (gateway_state.json, state/gateway.lifecycle.json) are never followed:
// hermes writes them itself through a rename, so a symlink there is not
// something hermes made, and it is treated as "no file".
package profile

import "strings"

// DefaultName is the slot name of the root profile (HERMES_HOME itself). It
// is reserved: a directory profiles/default/ is ignored.
const DefaultName = "default"

// MaxNameLen is the longest valid profile name in bytes: "gateway-" plus
// the name must fit a 255-byte file name with room for s6's needs.
const MaxNameLen = 251

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

// Truthy reports whether an environment value means "yes": 1, true or yes
// in any case, surrounding blanks ignored.
func Truthy(v string) bool {
	switch strings.ToLower(strings.TrimSpace(v)) {
	case "1", "true", "yes":
		return true
	}
	return false
}
