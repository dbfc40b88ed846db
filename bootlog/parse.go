package bootlog

import (
	"strings"
	"time"
)

// Parse reads one line written by Format. ok is false for anything else
// (a truncated line, another program's text). Values are returned as
// written: sanitised names stay sanitised, which is what a valid profile
// name already is.
func Parse(line string) (e Entry, ok bool) {
	fields := strings.Fields(line)
	if len(fields) < 5 {
		return Entry{}, false
	}
	t, err := time.Parse(time.RFC3339, fields[0])
	if err != nil {
		return Entry{}, false
	}
	e.Time = t
	seen := 0
	for _, f := range fields[1:] {
		k, v, found := strings.Cut(f, "=")
		if !found || v == "" {
			// Format never writes an empty value (Value makes it "-"):
			// such a line is not one of ours.
			return Entry{}, false
		}
		switch k {
		case "profile":
			e.Profile, seen = v, seen|1
		case "prior_state":
			if v != "none" {
				e.PriorState = v
			}
			seen |= 2
		case "action":
			e.Action, seen = v, seen|4
		case "prior_exit":
			e.PriorExit, seen = v, seen|8
		case "reason":
			e.Reason = v
		}
	}
	return e, seen == 15
}

// LastBoot returns the entries of the last complete boot in a log's
// contents: the lines after the previous profile=default line, up to and
// including the last one (reconcile-profiles writes default last, in the
// same append as the others). ok is false when the log holds no
// profile=default line at all.
func LastBoot(data string) (entries []Entry, ok bool) {
	lines := strings.Split(data, "\n")
	end := -1
	for i := len(lines) - 1; i >= 0; i-- {
		if e, good := Parse(lines[i]); good && e.Profile == "default" {
			end = i
			break
		}
	}
	if end < 0 {
		return nil, false
	}
	start := 0
	for i := end - 1; i >= 0; i-- {
		if e, good := Parse(lines[i]); good && e.Profile == "default" {
			start = i + 1
			break
		}
	}
	for _, l := range lines[start : end+1] {
		if e, good := Parse(l); good {
			entries = append(entries, e)
		}
	}
	return entries, true
}
