// Package bootlog writes HERMES_HOME/logs/container-boot.log: one line per
// gateway slot and boot,
//
//	<RFC 3339 time> profile=<name> prior_state=<state|none> action=<action> prior_exit=<exit> [reason=<reason>]
//
// Every value is sanitised (see Value) so that a line always splits on
// spaces into key=value pairs, whatever a directory name contains.
package bootlog

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// Paths, relative to HERMES_HOME.
const (
	Dir     = "logs"
	File    = "logs/container-boot.log"
	Rotated = "logs/container-boot.log.1"
)

// RotateSize: a log this large or larger is renamed to Rotated before
// appending.
const RotateSize = 256 << 10

// Actions.
const (
	Started    = "started"    // registered and set to autostart
	Registered = "registered" // registered down
	Skipped    = "skipped"    // not registered, see reason
	Error      = "error"      // registering failed, see reason
)

// Entry is one line.
type Entry struct {
	Time       time.Time
	Profile    string // any bytes: sanitised when formatted
	PriorState string // "" means none
	Action     string
	PriorExit  string
	Reason     string // only written for skipped and error
}

// Format renders e as a line, with its newline.
func Format(e Entry) string {
	var b strings.Builder
	b.Grow(128)
	b.WriteString(e.Time.Format(time.RFC3339))
	b.WriteString(" profile=")
	b.WriteString(Value(e.Profile))
	b.WriteString(" prior_state=")
	if e.PriorState == "" {
		b.WriteString("none")
	} else {
		b.WriteString(Value(e.PriorState))
	}
	b.WriteString(" action=")
	b.WriteString(Value(e.Action))
	b.WriteString(" prior_exit=")
	b.WriteString(Value(e.PriorExit))
	if e.Action == Skipped || e.Action == Error {
		b.WriteString(" reason=")
		if e.Reason == "" {
			b.WriteString("unknown")
		} else {
			b.WriteString(Value(e.Reason))
		}
	}
	b.WriteByte('\n')
	return b.String()
}

// Value makes s safe as a key=value value: bytes outside [A-Za-z0-9._:/+-]
// (spaces, newlines, '=', '%', quotes, control and non-ASCII bytes) are
// percent-encoded as %XX, and an empty value becomes "-".
// Valid profile names and the fixed reasons pass unchanged.
func Value(s string) string {
	if s == "" {
		return "-"
	}
	safe := true
	for i := 0; i < len(s); i++ {
		if !safeByte(s[i]) {
			safe = false
			break
		}
	}
	if safe {
		return s
	}
	const hex = "0123456789ABCDEF"
	var b strings.Builder
	b.Grow(len(s) * 3)
	for i := 0; i < len(s); i++ {
		c := s[i]
		if safeByte(c) {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('%')
		b.WriteByte(hex[c>>4])
		b.WriteByte(hex[c&15])
	}
	return b.String()
}

func safeByte(c byte) bool {
	switch {
	case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		return true
	}
	return strings.IndexByte("._:/+-", c) >= 0
}

// Append writes all entries to home/logs/container-boot.log in one
// write(2) with O_APPEND, after creating the logs directory if missing and
// rotating a log of RotateSize bytes or more. The log file is never
// followed if it is a symlink.
func Append(home string, entries []Entry) error {
	dir := filepath.Join(home, Dir)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	path := filepath.Join(home, File)
	var st unix.Stat_t
	if err := unix.Lstat(path, &st); err == nil && st.Size >= RotateSize {
		if err := unix.Rename(path, filepath.Join(home, Rotated)); err != nil {
			return &os.PathError{Op: "rotate", Path: path, Err: err}
		}
	} else if err != nil && !errors.Is(err, unix.ENOENT) {
		return &os.PathError{Op: "lstat", Path: path, Err: err}
	}
	var b strings.Builder
	for _, e := range entries {
		b.WriteString(Format(e))
	}
	fd, err := unix.Open(path, unix.O_WRONLY|unix.O_APPEND|unix.O_CREAT|unix.O_NOFOLLOW|unix.O_CLOEXEC|unix.O_NONBLOCK|unix.O_NOCTTY, 0o644)
	if err != nil {
		return &os.PathError{Op: "open", Path: path, Err: err}
	}
	f := os.NewFile(uintptr(fd), path)
	if fi, err := f.Stat(); err == nil && !fi.Mode().IsRegular() {
		f.Close()
		return &os.PathError{Op: "open", Path: path, Err: errors.New("not a regular file")}
	}
	_, err = f.WriteString(b.String())
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}
