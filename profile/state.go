package profile

import (
	"bytes"
	"encoding/json"
	"errors"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// StateFile is the name of a profile's state file, inside the profile
// directory (HERMES_HOME itself for the default profile).
const StateFile = "gateway_state.json"

// LifecycleFile is where the gateway records its lifecycle phase, relative
// to the profile directory.
const LifecycleFile = "state/gateway.lifecycle.json"

// MaxStateSize caps what is read from a state file: a larger file is not
// something hermes wrote, and it is treated as "no state".
const MaxStateSize = 1 << 20

// Running is the only desired state that makes a slot autostart.
const Running = "running"

// Reasons a state file yields no state (also used in logs).
const (
	NoStateMissing   = "missing" // no file, or a dangling symlink
	NoStateNotFile   = "not-a-regular-file"
	NoStateTooLarge  = "too-large"
	NoStateUnread    = "unreadable" // includes a symlink loop
	NoStateMalformed = "malformed"
	NoStateNotObject = "not-an-object"
	NoStateNoKey     = "no-state-key"
)

// State keys of gateway_state.json.
const (
	KeyDesired = "desired_state"
	KeyGateway = "gateway_state"
)

// State is what a profile's gateway_state.json says.
type State struct {
	// Raw is the state string that decided, as written (desired_state if
	// present and not null, else gateway_state); empty when there is none.
	Raw string
	// Key is the key Raw came from (KeyDesired or KeyGateway).
	Key string
	// Reason says why there is no state (one of the NoState* values); empty
	// when Raw is set.
	Reason string
}

// Present reports whether the file gave a state.
func (s State) Present() bool { return s.Raw != "" }

// Running reports whether the slot must autostart, as hermes decides: a
// desired_state autostarts iff it is exactly "running" (draining included
// means down); a gateway_state autostarts if it is "running" or one of
// the transient "draining" and "degraded".
func (s State) Running() bool {
	if s.Key == KeyDesired {
		return s.Raw == Running
	}
	switch s.Raw {
	case Running, "draining", "degraded":
		return true
	}
	return false
}

// ParseState interprets the bytes of a state file. A UTF-8 BOM is
// tolerated. The file must be a JSON object; desired_state decides if it is
// present and not null, else gateway_state. A deciding value that is not a
// string (or is empty) makes the file malformed: no state, down, which is
// also what hermes decides for it. Keys are matched exactly (not with
// encoding/json's case-insensitive struct matching).
func ParseState(data []byte) State {
	data = bytes.TrimPrefix(data, []byte("\xef\xbb\xbf"))
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(data, &obj); err != nil {
		var ute *json.UnmarshalTypeError
		if errors.As(err, &ute) {
			return State{Reason: NoStateNotObject}
		}
		return State{Reason: NoStateMalformed}
	}
	if obj == nil { // the JSON literal null
		return State{Reason: NoStateNotObject}
	}
	for _, key := range []string{KeyDesired, KeyGateway} {
		raw, ok := obj[key]
		if !ok || bytes.Equal(bytes.TrimSpace(raw), []byte("null")) {
			continue
		}
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return State{Reason: NoStateMalformed}
		}
		if s == "" {
			return State{Reason: NoStateMalformed}
		}
		return State{Raw: s, Key: key}
	}
	return State{Reason: NoStateNoKey}
}

// ReadState reads dir/gateway_state.json, following symlinks as any hermes
// process does. Missing (a dangling symlink included), unreadable, not a
// regular file (a directory, a FIFO), larger than MaxStateSize, malformed
// or not an object: no state, with the reason.
func ReadState(dir string) State {
	data, reason := readSmallFile(filepath.Join(dir, StateFile))
	if reason != "" {
		return State{Reason: reason}
	}
	return ParseState(data)
}

// readSmallFile reads a regular file, following symlinks (see the package
// comment) but never blocking on a FIFO or a device, capped at
// MaxStateSize. It returns the bytes, or one of the NoState* reasons.
func readSmallFile(path string) ([]byte, string) {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_NONBLOCK|unix.O_CLOEXEC|unix.O_NOCTTY, 0)
	if err != nil {
		switch {
		case errors.Is(err, unix.ENOENT), errors.Is(err, unix.ENOTDIR):
			return nil, NoStateMissing
		case errors.Is(err, unix.ENXIO), errors.Is(err, unix.EISDIR):
			return nil, NoStateNotFile
		}
		return nil, NoStateUnread
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return nil, NoStateUnread
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		return nil, NoStateNotFile
	}
	if st.Size > MaxStateSize {
		return nil, NoStateTooLarge
	}
	// Size+1 so that a file that grew since fstat is noticed; capped anyway.
	buf := make([]byte, 0, st.Size+1)
	for {
		if len(buf) == cap(buf) {
			if len(buf) > MaxStateSize {
				return nil, NoStateTooLarge
			}
			buf = append(buf, 0)[:len(buf)]
		}
		n, err := unix.Read(fd, buf[len(buf):cap(buf)])
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return nil, NoStateUnread
		}
		if n == 0 {
			break
		}
		short := len(buf)+n < cap(buf)
		buf = buf[:len(buf)+n]
		if short && int64(len(buf)) == st.Size {
			// The whole file as fstat sized it, and a short read: that is
			// EOF for a regular file; spare the read(2) that returns 0.
			break
		}
	}
	if len(buf) > MaxStateSize {
		return nil, NoStateTooLarge
	}
	return buf, ""
}

// Prior exit values for the boot log.
const (
	ExitClean   = "clean"
	ExitUnclean = "unclean"
	ExitUnknown = "unknown"
)

// PriorExit reads dir/state/gateway.lifecycle.json: phase "exited" means
// the gateway stopped cleanly, "running" that it died with the container,
// anything else (or no readable file) is unknown.
func PriorExit(dir string) string {
	data, reason := readSmallFile(filepath.Join(dir, LifecycleFile))
	if reason != "" {
		return ExitUnknown
	}
	data = bytes.TrimPrefix(data, []byte("\xef\xbb\xbf"))
	var obj map[string]json.RawMessage
	if json.Unmarshal(data, &obj) != nil {
		return ExitUnknown
	}
	var phase string
	if raw, ok := obj["phase"]; !ok || json.Unmarshal(raw, &phase) != nil {
		return ExitUnknown
	}
	switch phase {
	case "exited":
		return ExitClean
	case "running":
		return ExitUnclean
	}
	return ExitUnknown
}
