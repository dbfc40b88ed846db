package permwatch

import (
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"unicode"
	"unicode/utf8"

	"github.com/hermes-s6/hermes-s6/perms"
)

// who is the user whose access --check evaluates.
type who struct {
	name   string
	uid    int
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

// evaluate turns an Inspect view into a verdict for w.
func evaluate(scandir perms.Object, v perms.ServiceView, w who, selfUID int) ServiceCheck {
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
	check := func(needs []need, purpose string) bool {
		ok := true
		for _, n := range needs {
			switch {
			case n.obj.Err != nil:
				ok = false
				msg := fmt.Sprintf("cannot look at %s: %v", n.obj.Path, n.obj.Err)
				if errors.Is(n.obj.Err, syscall.EACCES) && selfUID != 0 {
					msg += fmt.Sprintf(" (checked as uid %d: it cannot reach it either; run --check as root to see owners and modes)", selfUID)
				}
				add(msg)
			case !n.obj.Exists:
				ok = false
				switch n.what {
				case "supervise/", "event/":
					add(fmt.Sprintf("%s does not exist: s6-supervise has not started on this service yet (is s6-svscan running on this scandir? ask it to rescan: s6-svscanctl -a <scandir>)", n.obj.Path))
				case "control":
					add(fmt.Sprintf("%s does not exist: no s6-supervise is running for this service (s6-svscanctl -a <scandir> starts one)", n.obj.Path))
				default:
					add(fmt.Sprintf("%s does not exist yet: s6-supervise writes it when it starts", n.obj.Path))
				}
			case !w.may(n.obj, n.bits):
				ok = false
				msg := fmt.Sprintf("%s is %s: %s needs %s on it to %s", n.obj.Path, n.obj.Describe(), w.name, bitsName(n.bits), purpose)
				if n.obj.UID != 0 && n.obj.UID != w.uid {
					msg += fmt.Sprintf("; it is owned by uid %d, and perm-watcher only hands over root-owned objects: remove it so s6-supervise re-creates it", n.obj.UID)
				}
				add(msg)
			}
		}
		return ok
	}
	dirX := need{v.Dir, 1, "service directory"}
	supX := need{v.Supervise, 1, "supervise/"}
	status := []need{{scandir, 1, "scandir"}, dirX, supX, {v.Status, 4, "status"}, {v.Lock, 4, "lock"}}
	c.Status = check(status, "read the status (s6-svstat)")
	c.Control = check([]need{{scandir, 1, "scandir"}, dirX, supX, {v.Control, 2, "control"}}, "control it (s6-svc)")
	c.Wait = check(append([]need{{v.Event, 3, "event/"}}, status...), "wait on its events (s6-svwait)")
	if v.Control.Exists && v.Control.Mode&syscall.S_IFMT != syscall.S_IFIFO {
		add(fmt.Sprintf("%s is %s, not a FIFO: remove it and restart the service's s6-supervise", v.Control.Path, v.Control.Describe()))
		c.Control = false
	}
	c.Problems = problems
	return c
}

// displayName quotes names that would garble a terminal (newlines,
// non-UTF-8 bytes, spaces).
func displayName(s string) string {
	if !utf8.ValidString(s) || strings.IndexFunc(s, func(r rune) bool { return !unicode.IsPrint(r) || unicode.IsSpace(r) }) >= 0 {
		return strconv.Quote(s)
	}
	return s
}

// Check reports, for every included service of cfg.Scandir (and its log/
// sub-service), whether cfg.User can read its status, control it and wait on
// its events, and why not. It changes nothing and works as any user. usable
// is false when some included service is not fully usable.
func Check(cfg Config, out io.Writer) (usable bool, err error) {
	if err := cfg.Validate(); err != nil {
		return false, err
	}
	id, _, err := resolveOwner(&cfg)
	if err != nil {
		return false, err
	}
	w := who{name: id.Name, uid: id.UID, groups: id.Groups}
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

	fmt.Fprintf(out, "perm-watcher --check: scandir %s, user %s, policy %s\n", sd.Path(), w, cfg.Policy)
	fixHint := fmt.Sprintf("fix: as root, run `perm-watcher --once --scandir %s --user %s --policy %s`, and make sure the perm-watcher service is up (s6-svstat %s/%s)",
		sd.Path(), cfg.User, cfg.Policy, sd.Path(), ServiceName)
	if !w.may(scandirObj, 1) {
		fmt.Fprintf(out, "warning: %s is %s: %s cannot even enter the scandir\n", scandirObj.Path, scandirObj.Describe(), w.name)
	}
	if ctl := sd.InspectPath(".s6-svscan", "control"); ctl.Exists && !w.may(ctl, 2) {
		fmt.Fprintf(out, "note: %s is %s: %s cannot run `s6-svscanctl -a` (register a slot); reconcile-profiles hands it over at boot\n",
			ctl.Path, ctl.Describe(), w.name)
	}

	usable = true
	total, bad := 0, 0
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
			c := evaluate(scandirObj, sv, w, self)
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
	fmt.Fprintf(out, "%d service(s) checked, %d not usable by %s\n", total, bad, w.name)
	return usable, nil
}
