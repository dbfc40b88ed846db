package follow

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"

	"github.com/hermes-s6/hermes-s6/profile"
	"github.com/hermes-s6/hermes-s6/slot"
)

// The wire format from the reader (running as hermes) to root, on the
// reader's standard output. Text, one record a line, so that a forged
// stream is easy to write in a test and easy to bound:
//
//	snapshot
//	p <name> <0|1>        (0..MaxRecords lines; 1 = autostart)
//	end
//
// A snapshot is complete: it lists every slot that must exist (the default
// profile included; a dashboard container sends an empty one). Slots it
// does not list are removed. Root answers on the reader's standard input,
// without ever blocking (see Root):
//
//	fail <name>           (a slot of the snapshot could not be published)
//	done <n>              (snapshot number n, counted from 1, is applied)
//
// Everything root reads is hostile input (a compromised hermes can ptrace or
// replace the reader): a line longer than MaxLine, more than MaxRecords
// records, a name that fails the rules, a duplicate, anything unexpected,
// ends the stream as a protocol violation.

// MaxLine is the longest line root accepts, newline excluded: "p ", a name
// of at most profile.MaxNameLen bytes, " 0".
const MaxLine = 2 + profile.MaxNameLen + 2

// DefaultMaxRecords caps the slots one snapshot may ask for: 400 named
// profiles and the default one. Each slot costs root two s6-supervise
// processes, so the cap is what bounds the root processes hermes can cause.
// It also keeps the scandir inside s6-svscan's own limit: without -c/-C,
// s6-svscan supervises at most 1,000 services (a slot and its log/ are
// two), and past that a scan stops at the first service it cannot take and
// starts none of the others (measured on the test images: with 6 static
// services, 496 slots ran 1,000 supervisors on s6 2.13.1; 500 slots ran
// 206 on 2.13.1 and 408 on 2.15.1, and 2.13.1 did not get every slot back
// after the extra profiles were deleted). 401 slots leave room for about 190
// static services.
const DefaultMaxRecords = 401

// MaxProfilesEnv sets --max-profiles from the container's environment
// (through with-contenv, like HERMES_S6_MODE).
const MaxProfilesEnv = "HERMES_S6_MAX_PROFILES"

// ErrProtocol is wrapped by every violation of the wire format.
var ErrProtocol = errors.New("protocol violation")

// Record is one slot root is asked to keep: a profile name and whether its
// gateway autostarts.
type Record struct {
	Name      string
	Autostart bool
}

// Snapshot is a complete desired set of slots, sorted by name.
type Snapshot []Record

// SlotName reports whether name may become a slot: "default", or a valid
// profile name whose slot directory name (gateway-<name>) fits a file name.
// It is root's check, applied to every record whatever the reader did.
func SlotName(name string) bool {
	if name == profile.DefaultName {
		return true
	}
	return profile.ValidName(name) && len(slot.DirName(name)) <= 255
}

// slotNameWithin is SlotName with the scandir's limit on top (maxName <= 0:
// none but SlotName's): a longer name cannot make a working slot there
// (slot.NameLimit), and the reader, which knows the same limit, never
// sends one.
func slotNameWithin(name string, maxName int) bool {
	return SlotName(name) && (maxName <= 0 || name == profile.DefaultName || len(name) <= maxName)
}

// Encode writes s in the wire format.
func Encode(w io.Writer, s Snapshot) error {
	var b strings.Builder
	b.Grow(16 + 32*len(s))
	b.WriteString("snapshot\n")
	for _, r := range s {
		b.WriteString("p ")
		b.WriteString(r.Name)
		if r.Autostart {
			b.WriteString(" 1\n")
		} else {
			b.WriteString(" 0\n")
		}
	}
	b.WriteString("end\n")
	_, err := io.WriteString(w, b.String())
	return err
}

// Decoder reads snapshots from an untrusted stream.
type Decoder struct {
	r          *bufio.Reader
	maxRecords int
	maxName    int // 0: SlotName's 247 bytes
	line       []byte
}

// WithMaxName makes a name longer than n bytes (the scandir's
// slot.NameLimit.MaxName) a violation, as an invalid one is.
func (d *Decoder) WithMaxName(n int) *Decoder {
	d.maxName = n
	return d
}

// NewDecoder reads from r; maxRecords <= 0 means DefaultMaxRecords.
func NewDecoder(r io.Reader, maxRecords int) *Decoder {
	if maxRecords <= 0 {
		maxRecords = DefaultMaxRecords
	}
	return &Decoder{r: bufio.NewReaderSize(r, 4096), maxRecords: maxRecords, line: make([]byte, 0, MaxLine+1)}
}

// readLine returns the next line without its newline; longer than MaxLine
// is a violation (the rest is not read into memory).
func (d *Decoder) readLine() (string, error) {
	d.line = d.line[:0]
	for {
		frag, err := d.r.ReadSlice('\n')
		if len(d.line)+len(frag) > MaxLine+1 {
			return "", fmt.Errorf("%w: line longer than %d bytes", ErrProtocol, MaxLine)
		}
		d.line = append(d.line, frag...)
		switch {
		case err == nil:
			return string(d.line[:len(d.line)-1]), nil
		case errors.Is(err, bufio.ErrBufferFull):
			continue
		case errors.Is(err, io.EOF) && len(d.line) > 0:
			return "", fmt.Errorf("%w: stream ends inside a line", ErrProtocol)
		default:
			return "", err
		}
	}
}

// Next reads one snapshot. io.EOF means the stream ended cleanly between
// snapshots; any other error ends the stream (ErrProtocol for violations).
func (d *Decoder) Next() (Snapshot, error) {
	l, err := d.readLine()
	if err != nil {
		return nil, err
	}
	if l != "snapshot" {
		return nil, fmt.Errorf("%w: want \"snapshot\", got %q", ErrProtocol, l)
	}
	var s Snapshot
	seen := map[string]bool{}
	for {
		l, err := d.readLine()
		if err != nil {
			if errors.Is(err, io.EOF) {
				return nil, fmt.Errorf("%w: stream ends inside a snapshot", ErrProtocol)
			}
			return nil, err
		}
		if l == "end" {
			sort.Slice(s, func(i, j int) bool { return s[i].Name < s[j].Name })
			return s, nil
		}
		r, err := parseRecord(l, d.maxName)
		if err != nil {
			return nil, err
		}
		if seen[r.Name] {
			return nil, fmt.Errorf("%w: profile %q listed twice", ErrProtocol, r.Name)
		}
		if len(s) >= d.maxRecords {
			return nil, fmt.Errorf("%w: more than %d records in one snapshot", ErrProtocol, d.maxRecords)
		}
		seen[r.Name] = true
		s = append(s, r)
	}
}

func parseRecord(l string, maxName int) (Record, error) {
	rest, ok := strings.CutPrefix(l, "p ")
	if !ok {
		return Record{}, fmt.Errorf("%w: want a record \"p <name> <0|1>\" or \"end\", got %q", ErrProtocol, l)
	}
	name, flag, ok := strings.Cut(rest, " ")
	if !ok || (flag != "0" && flag != "1") {
		return Record{}, fmt.Errorf("%w: record %q: want \"p <name> <0|1>\"", ErrProtocol, l)
	}
	if !SlotName(name) {
		return Record{}, fmt.Errorf("%w: record %q: not a valid slot name", ErrProtocol, strconv.Quote(name))
	}
	if !slotNameWithin(name, maxName) {
		return Record{}, fmt.Errorf("%w: record %q: longer than the %d bytes a slot name may have on this scandir", ErrProtocol, strconv.Quote(name), maxName)
	}
	return Record{Name: name, Autostart: flag == "1"}, nil
}
