package permwatch

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"unicode"
	"unicode/utf8"

	"github.com/hermes-s6/hermes-s6/bootlog"
	"github.com/hermes-s6/hermes-s6/mode"
	"github.com/hermes-s6/hermes-s6/perms"
)

// who is the user whose access --check evaluates.
type who struct {
	name   string
	uid    int
	gid    int // primary group
	groups []int
}

func (w who) String() string {
	g := make([]string, len(w.groups))
	for i, n := range w.groups {
		g[i] = strconv.Itoa(n)
	}
	return fmt.Sprintf("%s (uid %d, groups %s)", w.name, w.uid, strings.Join(g, ","))
}

// may reports whether w has the permission bits want (4 r, 2 w, 1 x) on o,
// by the classic owner/group/other rule (no ACLs: s6 sets none).
func (w who) may(o perms.Object, want uint32) bool {
	if w.uid == 0 {
		return true
	}
	mode := o.Mode & 0o777
	var bits uint32
	switch {
	case o.UID == w.uid:
		bits = mode >> 6 & 7
	case slices.Contains(w.groups, o.GID):
		bits = mode >> 3 & 7
	default:
		bits = mode & 7
	}
	return bits&want == want
}

func bitsName(b uint32) string {
	var parts []string
	if b&4 != 0 {
		parts = append(parts, "read (r)")
	}
	if b&2 != 0 {
		parts = append(parts, "write (w)")
	}
	if b&1 != 0 {
		parts = append(parts, "search (x)")
	}
	return strings.Join(parts, " and ")
}

// need is one permission a capability requires.
type need struct {
	obj  perms.Object
	bits uint32
	what string // "supervise/", "control"...
}

// ServiceCheck is the verdict for one service (or log/ sub-service).
type ServiceCheck struct {
	Name                  string
	Status, Control, Wait bool
	Problems              []string
}

// Usable reports whether the user can do all three.
func (c ServiceCheck) Usable() bool { return c.Status && c.Control && c.Wait }

// wanted says what policy pol makes of the object s6-supervise creates
// (what), for w; empty for objects perm-watcher does not manage.
func wanted(what string, pol perms.Policy, w who) string {
	own := fmt.Sprintf("%d:%d (%s and its group)", w.uid, w.gid, w.name)
	grp := fmt.Sprintf("0:%d (root, gid %d = %s's group)", w.gid, w.gid, w.name)
	switch {
	case what == "supervise/" && pol == perms.PolicySealed:
		return "policy sealed wants " + grp + " 0750"
	case what == "supervise/" && pol != perms.PolicyOwner:
		return "policy " + string(pol) + " wants " + grp + " 0710"
	case what == "control" && pol != perms.PolicyOwner:
		return "policy " + string(pol) + " wants " + grp + " 0620"
	case what == "event/" && pol == perms.PolicySealed:
		return "policy sealed leaves it root's (a writable event/ lets its writer make root's s6-supervise write into any file): use s6-svstat instead of s6-svwait"
	case what == "event/" && pol == perms.PolicyGroup:
		return "policy group wants " + grp + " 03730"
	case what == "supervise/":
		return "policy owner wants " + own + ", mode kept (0700)"
	case what == "control":
		return "policy owner wants " + own + ", mode kept (0600)"
	case what == "event/":
		return "policy owner wants " + own + ", mode kept (03730)"
	}
	return ""
}

// errText is err without the path a PathError repeats.
func errText(err error) string {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err.Error()
	}
	return err.Error()
}

// evaluate turns an Inspect view into a verdict for w under policy pol.
// Each object with missing permissions is reported once, with everything
// the user needs it for, what the policy wants it to be, and no follow-up
// noise for objects below a directory already reported as closed.
func evaluate(scandir perms.Object, v perms.ServiceView, w who, pol perms.Policy, selfUID int) ServiceCheck {
	c := ServiceCheck{Name: v.Name}
	if v.Err != nil {
		c.Problems = append(c.Problems, v.Err.Error())
		return c
	}
	var problems []string
	seen := map[string]bool{}
	add := func(p string) {
		if !seen[p] {
			seen[p] = true
			problems = append(problems, p)
		}
	}
	// Permission shortfalls, merged per object.
	type shortfall struct {
		n        need
		bits     uint32
		purposes []string
	}
	var short []*shortfall
	byPath := map[string]*shortfall{}
	closed := map[string]bool{} // directories the user cannot search, or missing
	check := func(needs []need, purpose string) bool {
		ok := true
		for _, n := range needs {
			switch {
			case n.obj.Err != nil:
				ok = false
				if errors.Is(n.obj.Err, syscall.EACCES) && closed[filepath.Dir(n.obj.Path)] {
					continue // a consequence of the closed directory above
				}
				msg := fmt.Sprintf("cannot look at %s: %s", n.obj.Path, errText(n.obj.Err))
				if errors.Is(n.obj.Err, syscall.EACCES) && selfUID != 0 {
					msg += fmt.Sprintf(" (checked as uid %d: it cannot reach it either; run --check as root to see owners and modes)", selfUID)
				}
				add(msg)
			case !n.obj.Exists:
				ok = false
				closed[n.obj.Path] = true
				if closed[filepath.Dir(n.obj.Path)] {
					continue // its directory is already reported missing
				}
				switch n.what {
				case "supervise/", "event/":
					add(fmt.Sprintf("%s does not exist: s6-supervise has not started on this service yet (is s6-svscan running on this scandir? ask it to rescan: s6-svscanctl -a %s)", n.obj.Path, scandir.Path))
				case "control":
					add(fmt.Sprintf("%s does not exist: no s6-supervise is running for this service (s6-svscanctl -a %s starts one)", n.obj.Path, scandir.Path))
				default:
					add(fmt.Sprintf("%s does not exist yet: s6-supervise writes it when it starts", n.obj.Path))
				}
			case !w.may(n.obj, n.bits):
				ok = false
				if n.bits&1 != 0 && n.obj.Mode&syscall.S_IFMT == syscall.S_IFDIR && !w.may(n.obj, 1) {
					closed[n.obj.Path] = true
				}
				sf := byPath[n.obj.Path]
				if sf == nil {
					sf = &shortfall{n: n}
					byPath[n.obj.Path] = sf
					short = append(short, sf)
					add("\x00" + n.obj.Path) // placeholder keeps the order
				}
				sf.bits |= n.bits
				if !slices.Contains(sf.purposes, purpose) {
					sf.purposes = append(sf.purposes, purpose)
				}
			}
		}
		return ok
	}
	dirX := need{v.Dir, 1, "service directory"}
	supX := need{v.Supervise, 1, "supervise/"}
	status := []need{{scandir, 1, "scandir"}, dirX, supX, {v.Status, 4, "status"}, {v.Lock, 4, "lock"}}
	c.Status = check(status, "read the status (s6-svstat)")
	c.Control = check([]need{{scandir, 1, "scandir"}, dirX, supX, {v.Control, 2, "control"}}, "control it (s6-svc)")
	if pol == perms.PolicySealed {
		// event/ stays root's by design: the user polls s6-svstat.
		c.Wait = true
	} else {
		c.Wait = check(append([]need{{v.Event, 3, "event/"}}, status...), "wait on its events (s6-svwait)")
	}
	if v.Control.Exists && v.Control.Mode&syscall.S_IFMT != syscall.S_IFIFO {
		add(fmt.Sprintf("%s is %s, not a FIFO: remove it and restart the service's s6-supervise", v.Control.Path, v.Control.Describe()))
		c.Control = false
	}
	for i, p := range problems {
		sf := byPath[strings.TrimPrefix(p, "\x00")]
		if !strings.HasPrefix(p, "\x00") || sf == nil {
			continue
		}
		o := sf.n.obj
		msg := fmt.Sprintf("%s is %s: %s needs %s on it to %s", o.Path, o.Describe(), w.name, bitsName(sf.bits), joinAnd(sf.purposes))
		if o.UID != 0 && o.UID != w.uid {
			msg += fmt.Sprintf("; it is owned by uid %d, and perm-watcher only hands over root-owned objects: remove it so s6-supervise re-creates it", o.UID)
		} else if want := wanted(sf.n.what, pol, w); want != "" {
			msg += "; " + want
		}
		problems[i] = msg
	}
	c.Problems = problems
	return c
}

// joinAnd renders "a", "a and b", "a, b and c".
func joinAnd(s []string) string {
	if len(s) <= 1 {
		return strings.Join(s, "")
	}
	return strings.Join(s[:len(s)-1], ", ") + " and " + s[len(s)-1]
}

// displayName quotes names that would garble a terminal (newlines,
// non-UTF-8 bytes, spaces).
func displayName(s string) string {
	if !utf8.ValidString(s) || strings.IndexFunc(s, func(r rune) bool { return !unicode.IsPrint(r) || unicode.IsSpace(r) }) >= 0 {
		return strconv.Quote(s)
	}
	return s
}

// Check is CheckMode in open mode, given explicitly.
func Check(cfg Config, out io.Writer) (usable bool, err error) {
	return CheckMode(cfg, CheckModeOf{Mode: mode.Open, Explicit: true}, out)
}

// CheckModeOf is the container's mode as --check knows it.
type CheckModeOf struct {
	Mode mode.Mode
	// Explicit: given by --mode or HERMES_S6_MODE. When not, and the
	// scandir looks sealed (see looksSealed), --check checks sealed mode's
	// promises and says it inferred the mode.
	Explicit bool
}

// CheckMode reports, for every included service of cfg.Scandir (and its
// log/ sub-service), whether cfg.User can read its status, control it and
// wait on its events, and why not. It changes nothing and works as any
// user. usable is false when some included service is not fully usable.
//
// The mode decides what else must hold. Open mode: the user can register
// a slot (write the scandir and s6-svscan's control FIFO: handed over at
// boot). Sealed mode promises the opposite: the user can control every
// gateway, its log/ and the static services (under policy sealed: status
// and control, no event/), and cannot write the scandir, .s6-svscan/ or
// its control FIFO and lock.
func CheckMode(cfg Config, m CheckModeOf, out io.Writer) (usable bool, err error) {
	if err := cfg.Validate(); err != nil {
		return false, err
	}
	id, _, err := resolveOwner(&cfg)
	if err != nil {
		return false, err
	}
	w := who{name: id.Name, uid: id.UID, gid: id.GID, groups: id.Groups}
	sd, err := perms.OpenScandir(cfg.Scandir)
	if err != nil {
		return false, err
	}
	defer sd.Close()
	names, err := sd.Names()
	if err != nil {
		return false, err
	}
	slices.Sort(names)
	self := os.Geteuid()
	scandirObj := sd.InspectPath()

	sealed, inferred := m.Mode == mode.Sealed, ""
	if !m.Explicit && !sealed {
		if inferred = looksSealed(sd, scandirObj, w, names); inferred != "" {
			sealed = true
		}
	}
	if sealed {
		// Sealed mode's policy, whatever --policy said (perm-watcher runs
		// with it there): event/ stays root's, s6-svwait is not promised.
		cfg.Policy = perms.PolicySealed
	}
	modeName := mode.Open
	if sealed {
		modeName = mode.Sealed
	}
	fmt.Fprintf(out, "perm-watcher --check: scandir %s, user %s, mode %s, policy %s\n", sd.Path(), w, modeName, cfg.Policy)
	if inferred != "" {
		fmt.Fprintf(out, "note: mode sealed inferred (%s unset): %s; give --mode to say otherwise\n", mode.Env, inferred)
	}
	fixHint := fmt.Sprintf("fix: as root, run `perm-watcher --once --scandir %s --user %s --policy %s`, and make sure the perm-watcher service is up (s6-svstat %s/%s)",
		sd.Path(), cfg.User, cfg.Policy, sd.Path(), ServiceName)
	if !w.may(scandirObj, 1) {
		fmt.Fprintf(out, "warning: %s is %s: %s cannot even enter the scandir\n", scandirObj.Path, scandirObj.Describe(), w.name)
	}
	usable = true
	total, bad := 0, 0
	if sealed {
		if problems := checkSealed(sd, scandirObj, w); len(problems) > 0 {
			usable = false
			bad++
			fmt.Fprintf(out, "FAIL  %s: sealed mode promises that %s cannot write the scandir or s6-svscan's control, but it can\n", sd.Path(), w.name)
			for _, p := range problems {
				fmt.Fprintf(out, "      - %s\n", p)
			}
		} else {
			fmt.Fprintf(out, "ok    %s: sealed: %s cannot write the scandir, .s6-svscan/, its control FIFO or lock (the profile-follower publishes the slots)\n", sd.Path(), w.name)
		}
	} else if problems := checkRegister(sd, scandirObj, w); len(problems) > 0 {
		usable = false
		bad++
		fmt.Fprintf(out, "FAIL  %s: %s cannot register a slot (s6-svscanctl -a %s)\n", sd.Path(), w.name, sd.Path())
		for _, p := range problems {
			fmt.Fprintf(out, "      - %s\n", p)
		}
	}
	slotUsable := map[string]bool{}
	for _, name := range names {
		if cfg.Excluded(name) {
			continue
		}
		v := sd.Inspect(name)
		views := []perms.ServiceView{v}
		if v.Log != nil {
			views = append(views, *v.Log)
		}
		for _, sv := range views {
			total++
			c := evaluate(scandirObj, sv, w, cfg.Policy, self)
			if sv.Name == name {
				slotUsable[name] = c.Usable()
			}
			if c.Usable() && sealed {
				fmt.Fprintf(out, "ok    %s: %s can read its status and control it (sealed: no s6-svwait, poll s6-svstat)\n", displayName(c.Name), w.name)
				continue
			}
			if c.Usable() {
				fmt.Fprintf(out, "ok    %s: %s can read its status, control it and wait on it\n", displayName(c.Name), w.name)
				continue
			}
			usable = false
			bad++
			var cannot []string
			if !c.Status {
				cannot = append(cannot, "read its status")
			}
			if !c.Control {
				cannot = append(cannot, "control it")
			}
			if !c.Wait {
				cannot = append(cannot, "wait on it")
			}
			fmt.Fprintf(out, "FAIL  %s: %s cannot %s\n", displayName(c.Name), w.name, strings.Join(cannot, ", "))
			for _, p := range c.Problems {
				fmt.Fprintf(out, "      - %s\n", strings.ReplaceAll(p, "\n", `\n`))
			}
			fmt.Fprintf(out, "      %s\n", fixHint)
		}
	}
	if problems, note := checkAnnounced(cfg.HermesHome, self, slotUsable); note != "" {
		fmt.Fprintf(out, "note: %s\n", note)
	} else {
		for _, p := range problems {
			usable = false
			bad++
			fmt.Fprintf(out, "FAIL  %s\n", p)
		}
	}
	fmt.Fprintf(out, "%d service(s) checked, %d not usable by %s\n", total, bad, w.name)
	return usable, nil
}

// checkRegister says why w cannot register a slot in open mode: write and
// search on the scandir (the slot is renamed into it) and write on
// s6-svscan's control FIFO (s6-svscanctl -a). Both are handed over by
// reconcile-profiles at boot, so either missing means it did not run or
// failed, the state in which an s6-overlay that reads the user bundle
// elsewhere leaves the container: every FIFO root's, no service counted.
func checkRegister(sd *perms.Scandir, scandir perms.Object, w who) []string {
	const didItRun = "reconcile-profiles hands it over at boot: did it run? `/command/s6-rc -a list` must list perm-watcher and reconcile-profiles; " +
		"if they are missing, the s6-rc user bundle is declared where this s6-overlay does not read it (run /usr/lib/hermes-s6/install-user-bundle at image build, see README). " +
		"In sealed mode this is by design: run --check --mode sealed (or with " + mode.Env + "=sealed)"
	var problems []string
	if scandir.Err == nil && !w.may(scandir, 3) {
		problems = append(problems, fmt.Sprintf("%s is %s: %s needs write and search on it to add a slot; %s", scandir.Path, scandir.Describe(), w.name, didItRun))
	}
	ctl := sd.InspectPath(".s6-svscan", "control")
	switch {
	case ctl.Err != nil:
		problems = append(problems, fmt.Sprintf("cannot look at %s: %s", ctl.Path, errText(ctl.Err)))
	case !ctl.Exists:
		problems = append(problems, fmt.Sprintf("%s does not exist: no s6-svscan is running on %s", ctl.Path, scandir.Path))
	case !w.may(ctl, 2):
		problems = append(problems, fmt.Sprintf("%s is %s: %s needs write on it to run s6-svscanctl; %s", ctl.Path, ctl.Describe(), w.name, didItRun))
	}
	return problems
}

// checkSealed says how w could write what sealed mode keeps root's: the
// scandir (w could put a directory in front of root's s6-svscan), the
// .s6-svscan/ directory, its control FIFO (s6-svscanctl) and lock. An
// object that cannot be looked at is not reported here: w cannot write
// what it cannot reach, and the services below say what it cannot use.
func checkSealed(sd *perms.Scandir, scandir perms.Object, w who) []string {
	var problems []string
	for _, o := range []perms.Object{scandir, sd.InspectPath(".s6-svscan"), sd.InspectPath(".s6-svscan", "control"), sd.InspectPath(".s6-svscan", "lock")} {
		if o.Err != nil || !o.Exists || !w.may(o, 2) {
			continue
		}
		problems = append(problems, fmt.Sprintf("%s is %s: %s can write it; sealed mode keeps it root's and writable by root only. "+
			"Something handed it over (open mode's reconcile-profiles?): restart the container with %s=sealed", o.Path, o.Describe(), w.name, mode.Env))
	}
	return problems
}

// looksSealed says why the scandir looks like sealed mode's ("" if not),
// for a --check that was not told the mode: w cannot write the scandir nor
// s6-svscan's control FIFO, and a gateway slot's supervise/ is root:<w's
// group> 0750, which only the sealed policy makes (owner: w's 0700; group:
// 0710; s6 alone: root's 0700).
func looksSealed(sd *perms.Scandir, scandir perms.Object, w who, names []string) string {
	ctl := sd.InspectPath(".s6-svscan", "control")
	if scandir.Err != nil || w.may(scandir, 2) || ctl.Err != nil || !ctl.Exists || w.may(ctl, 2) {
		return ""
	}
	for _, n := range names {
		if !strings.HasPrefix(n, "gateway-") {
			continue
		}
		o := sd.InspectPath(n, "supervise")
		if o.Err == nil && o.Exists && o.UID == 0 && o.GID == w.gid && o.Mode&0o7777 == 0o750 && o.Mode&syscall.S_IFMT == syscall.S_IFDIR {
			return fmt.Sprintf("%s and its control FIFO are root's and %s cannot write them, and %s is %s, as only the sealed policy makes it",
				scandir.Path, w.name, o.Path, o.Describe())
		}
	}
	return ""
}

// checkAnnounced compares the last boot of HERMES_HOME's boot log with the
// scandir: every slot it says was started or registered must be there and
// usable. It reads the log only when not root (self != 0): root never
// opens a path under HERMES_HOME, which the user can point anywhere. note
// is set, and problems empty, when the log was not read.
func checkAnnounced(home string, self int, slotUsable map[string]bool) (problems []string, note string) {
	if home == "" {
		return nil, ""
	}
	path := filepath.Join(home, bootlog.File)
	if self == 0 {
		return nil, fmt.Sprintf("not reading %s as root (run --check as the user to also check the slots the last boot announced)", path)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Sprintf("cannot read the boot log %s (%s): has reconcile-profiles run? (--hermes-home if HERMES_HOME is elsewhere)", path, errText(err))
	}
	entries, ok := bootlog.LastBoot(string(data))
	if !ok {
		return nil, fmt.Sprintf("%s has no profile=default line: reconcile-profiles has not finished a boot pass", path)
	}
	for _, e := range entries {
		if e.Action != bootlog.Started && e.Action != bootlog.Registered {
			continue
		}
		slot := "gateway-" + e.Profile
		usable, present := slotUsable[slot]
		switch {
		case !present:
			problems = append(problems, fmt.Sprintf("%s: the last boot %s it (%s), but it is not in the scandir (unregistered since, or the scandir was emptied: re-run reconcile-profiles as root or restart the container)",
				displayName(slot), e.Action, path))
		case !usable:
			problems = append(problems, fmt.Sprintf("%s: the last boot %s it, and it is not usable (see above)", displayName(slot), e.Action))
		}
	}
	return problems, ""
}
