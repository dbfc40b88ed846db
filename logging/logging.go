// Package logging builds the zerolog logger both programs use: JSON on
// stderr, one event per line, with stable field names, or a console format
// for a human at a terminal.
//
// Field names used across the project (keep them stable, operators grep
// them): "path", "profile", "service", "action", "reason", "error", "uid",
// "gid", "policy", "duration_ms".
package logging

import (
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/rs/zerolog"
)

// LevelEnv is the environment variable read when --log-level is not given.
const LevelEnv = "LOG_LEVEL"

// Formats lists the accepted --log-format values.
var Formats = []string{"json", "console"}

// New returns a logger writing to w. format is "json" (or empty) or
// "console"; level is a zerolog level name, where empty means info (zerolog
// itself would read "" as NoLevel, which logs everything).
func New(w io.Writer, format, level string) (zerolog.Logger, error) {
	lvl, err := ParseLevel(level)
	if err != nil {
		return zerolog.Nop(), err
	}
	switch strings.ToLower(format) {
	case "", "json":
	case "console":
		w = zerolog.ConsoleWriter{Out: w, TimeFormat: time.RFC3339, NoColor: !isTerminal(w)}
	default:
		return zerolog.Nop(), fmt.Errorf("unknown log format %q: use one of %s", format, strings.Join(Formats, ", "))
	}
	zerolog.TimeFieldFormat = time.RFC3339Nano
	return zerolog.New(w).Level(lvl).With().Timestamp().Logger(), nil
}

// ParseLevel maps a level name to a zerolog level; empty means info.
func ParseLevel(level string) (zerolog.Level, error) {
	if strings.TrimSpace(level) == "" {
		return zerolog.InfoLevel, nil
	}
	lvl, err := zerolog.ParseLevel(strings.ToLower(strings.TrimSpace(level)))
	if err != nil {
		return zerolog.InfoLevel, fmt.Errorf("unknown log level %q: use trace, debug, info, warn, error, fatal, panic or disabled", level)
	}
	return lvl, nil
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}
