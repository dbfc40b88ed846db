package reconcile

// One table test per rule of CONTRACT.md's "Profiles and desired state",
// named after the rule. Each case builds a HERMES_HOME, runs a whole pass
// into an empty scandir, and checks outcomes: the slots (and whether each
// autostarts), the boot log, what the structured log says or must not say,
// and files on disk. They use only the pass's entry point, so that they
// run unchanged against older code.

import (
	"github.com/hermes-s6/hermes-s6/slot"

	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/hermes-s6/hermes-s6/bootlog"
	"github.com/hermes-s6/hermes-s6/internal/testenv"
)

const (
	stRunning = `{"gateway_state":"running"}`
	stStopped = `{"gateway_state":"stopped"}`
)

type ruleCase struct {
	name  string
	setup func(t *testing.T, f *fixture)
	env   map[string]string
	argv  []string
	// slots: every slot the scandir must hold, name -> autostarts (up);
	// nil: only checked through boot.
	slots map[string]bool
	// boot: the boot log's lines without time; nil: not checked.
	boot []string
	// logHas / logLacks: substrings of the structured log.
	logHas, logLacks []string
	// logCount: substring -> exact number of log lines holding it.
	logCount map[string]int
	check    func(t *testing.T, f *fixture)
}

func runRules(t *testing.T, cases []ruleCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, t.TempDir())
			for k, v := range tc.env {
				f.env[k] = v
			}
			if tc.setup != nil {
				tc.setup(t, f)
			}
			f.pass(t, tc.argv)
			logs := f.logs.String()
			if tc.slots != nil {
				if got := f.slots(t); !reflect.DeepEqual(got, tc.slots) {
					t.Errorf("slots (name: up) = %v, want %v\nlogs:\n%s", got, tc.slots, logs)
				}
			}
			if tc.boot != nil {
				if got := f.bootLines(t); !reflect.DeepEqual(got, tc.boot) {
					t.Errorf("boot log:\n%s\nwant:\n%s\nlogs:\n%s", strings.Join(got, "\n"), strings.Join(tc.boot, "\n"), logs)
				}
			}
			for _, s := range tc.logHas {
				if !strings.Contains(logs, s) {
					t.Errorf("log lacks %s\nlogs:\n%s", s, logs)
				}
			}
			for _, s := range tc.logLacks {
				if strings.Contains(logs, s) {
					t.Errorf("log has %s\nlogs:\n%s", s, logs)
				}
			}
			for s, n := range tc.logCount {
				if got := strings.Count(logs, s); got != n {
					t.Errorf("log has %s %d times, want %d\nlogs:\n%s", s, got, n, logs)
				}
			}
			if tc.check != nil {
				tc.check(t, f)
			}
		})
	}
}

// slots lists the scandir: every entry must be a slot directory with run;
// the value says whether it autostarts (no down file).
func (f *fixture) slots(t *testing.T) map[string]bool {
	t.Helper()
	ents, err := os.ReadDir(f.scandir)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]bool{}
	for _, e := range ents {
		name, ok := strings.CutPrefix(e.Name(), "gateway-")
		if !ok {
			t.Errorf("scandir holds %q, not a slot", e.Name())
			continue
		}
		got[name] = !f.down(t, name)
	}
	return got
}

// dir makes HERMES_HOME/<rel> (a directory) and returns its path.
func (f *fixture) dir(t *testing.T, rel string) string {
	t.Helper()
	p := filepath.Join(f.home, rel)
	if err := os.MkdirAll(p, 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

// file writes HERMES_HOME/<rel>, making its directory.
func (f *fixture) file(t *testing.T, rel, data string) string {
	t.Helper()
	p := filepath.Join(f.home, rel)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func (f *fixture) symlink(t *testing.T, target, rel string) {
	t.Helper()
	p := filepath.Join(f.home, rel)
	os.MkdirAll(filepath.Dir(p), 0o755)
	if err := os.Symlink(target, p); err != nil {
		t.Fatal(err)
	}
}

func line(name, state, action, exit string, reason ...string) string {
	if state == "" {
		state = "none"
	}
	l := "profile=" + bootlog.Value(name) + " prior_state=" + state + " action=" + action + " prior_exit=" + exit
	if len(reason) > 0 {
		l += " reason=" + reason[0]
	}
	return l
}

var defaultDown = line("default", "", "registered", "unknown")

// Rule: the root profile is HERMES_HOME itself, slot "default"; its slot
// always exists.
func TestRule_DefaultSlotAlwaysExists(t *testing.T) {
	runRules(t, []ruleCase{
		{name: "empty HERMES_HOME", slots: map[string]bool{"default": false}, boot: []string{defaultDown}},
		{name: "profiles is a file", setup: func(t *testing.T, f *fixture) { f.file(t, "profiles", "x") },
			slots: map[string]bool{"default": false}, boot: []string{defaultDown},
			logHas: []string{"profiles directory unreadable"}},
		{name: "only non-profiles", setup: func(t *testing.T, f *fixture) {
			f.dir(t, "profiles/.git/objects")
			f.dir(t, "profiles/backup")
		}, slots: map[string]bool{"default": false}, boot: []string{defaultDown}},
		{name: "own state running", setup: func(t *testing.T, f *fixture) { f.file(t, "gateway_state.json", stRunning) },
			slots: map[string]bool{"default": true}, boot: []string{line("default", "running", "started", "unknown")}},
		{name: "beside named profiles, last", setup: func(t *testing.T, f *fixture) { f.profile(t, "a", stRunning) },
			slots: map[string]bool{"a": true, "default": false},
			boot:  []string{line("a", "running", "started", "unknown"), defaultDown}},
	})
}

// Rule: a named profile is profiles/<name>/ holding SOUL.md; every other
// entry of profiles/ is ignored silently (no slot, no log line), and only a
// real profile's name is validated.
func TestRule_NonProfileEntriesIgnoredSilently(t *testing.T) {
	ignored := []string{".git", "Backup", "old-work", "Bad Name", "lost+found", "linked-nosoul", "dangling", "notes.txt"}
	var lacks []string
	for _, n := range ignored {
		lacks = append(lacks, `"profile":"`+n+`"`)
	}
	runRules(t, []ruleCase{
		{name: "backups, .git, a manual mkdir, files, links", setup: func(t *testing.T, f *fixture) {
			f.profile(t, "work", stRunning)
			f.file(t, "profiles/.git/HEAD", "ref: refs/heads/main\n")
			f.file(t, "profiles/Backup/config.yaml", "x: 1\n")
			f.file(t, "profiles/old-work/gateway_state.json", stRunning) // a state but no SOUL.md
			f.dir(t, "profiles/Bad Name")
			f.dir(t, "profiles/lost+found")
			f.dir(t, "profiles/default")
			f.symlink(t, t.TempDir(), "profiles/linked-nosoul")
			f.symlink(t, "nowhere", "profiles/dangling")
			f.file(t, "profiles/notes.txt", "SOUL.md\n")
		},
			slots:    map[string]bool{"work": true, "default": false},
			boot:     []string{line("work", "running", "started", "unknown"), defaultDown},
			logLacks: append(lacks, "invalid-name", "reserved-name", "not a profile"),
		},
		{name: "a real profile with a dot name is reported", setup: func(t *testing.T, f *fixture) {
			f.profile(t, ".hidden", stRunning)
			f.dir(t, "profiles/.git")
		},
			slots:    map[string]bool{"default": false},
			boot:     []string{line(".hidden", "", "skipped", "unknown", "invalid-name"), defaultDown},
			logLacks: []string{`"profile":".git"`},
		},
	})
}

// Rule: SOUL.md counts when it exists as hermes sees it, following
// symlinks: a dangling (or looping) link does not count.
func TestRule_SoulMdFollowsSymlinks(t *testing.T) {
	up := map[string]bool{"p": true, "default": false}
	none := map[string]bool{"default": false}
	state := func(f *fixture, t *testing.T) { f.file(t, "profiles/p/gateway_state.json", stRunning) }
	runRules(t, []ruleCase{
		{name: "regular file", setup: func(t *testing.T, f *fixture) { f.profile(t, "p", stRunning) }, slots: up},
		{name: "empty file", setup: func(t *testing.T, f *fixture) {
			state(f, t)
			f.file(t, "profiles/p/SOUL.md", "")
		}, slots: up},
		{name: "symlink to a file", setup: func(t *testing.T, f *fixture) {
			state(f, t)
			f.file(t, "souls/p.md", "soul")
			f.symlink(t, "../../souls/p.md", "profiles/p/SOUL.md")
		}, slots: up},
		{name: "a directory named SOUL.md exists too", setup: func(t *testing.T, f *fixture) {
			state(f, t)
			f.dir(t, "profiles/p/SOUL.md")
		}, slots: up},
		{name: "dangling symlink", setup: func(t *testing.T, f *fixture) {
			state(f, t)
			f.symlink(t, "nowhere.md", "profiles/p/SOUL.md")
		}, slots: none, boot: []string{defaultDown}, logLacks: []string{`"profile":"p"`}},
		{name: "symlink loop", setup: func(t *testing.T, f *fixture) {
			state(f, t)
			f.symlink(t, "SOUL.md", "profiles/p/SOUL.md")
		}, slots: none, boot: []string{defaultDown}, logLacks: []string{`"profile":"p"`}},
		{name: "no SOUL.md", setup: func(t *testing.T, f *fixture) { state(f, t) },
			slots: none, boot: []string{defaultDown}, logLacks: []string{`"profile":"p"`}},
		{name: "profile directory is a symlink", setup: func(t *testing.T, f *fixture) {
			f.file(t, "elsewhere/p/SOUL.md", "soul")
			f.file(t, "elsewhere/p/gateway_state.json", stRunning)
			f.symlink(t, "../elsewhere/p", "profiles/p")
		}, slots: up},
		{name: "profile directory is a dangling symlink", setup: func(t *testing.T, f *fixture) {
			f.symlink(t, "../elsewhere/p", "profiles/p")
		}, slots: none, boot: []string{defaultDown}, logLacks: []string{`"profile":"p"`}},
	})
}

// Rule: profiles/default/ is ignored with a warning (the name is reserved);
// without SOUL.md it is not a profile, so ignored silently.
func TestRule_DefaultProfileDirIsReserved(t *testing.T) {
	runRules(t, []ruleCase{
		{name: "with SOUL.md: warned, not a slot, not folded", setup: func(t *testing.T, f *fixture) {
			f.profile(t, "default", stRunning)
		},
			env:      map[string]string{EnvMultiplex: "1"},
			slots:    map[string]bool{"default": false},
			boot:     []string{defaultDown},
			logCount: map[string]int{`"reason":"reserved-name"`: 1},
		},
		{name: "without SOUL.md: silent", setup: func(t *testing.T, f *fixture) {
			f.file(t, "profiles/default/gateway_state.json", stRunning)
		},
			slots:    map[string]bool{"default": false},
			boot:     []string{defaultDown},
			logLacks: []string{"reserved-name"},
		},
	})
}

// Rule: a valid name matches ^[a-z0-9][a-z0-9_-]*$ in full and is at most
// 251 bytes; an invalid one is skipped and logged (reason=invalid-name),
// never aborting the boot.
func TestRule_InvalidNameSkipped(t *testing.T) {
	var cases []ruleCase
	for _, n := range []string{"Work", "-a", "_a", "a.b", "wörk", "a b", "a\n", "\na", "a=b", ".hidden", strings.Repeat("a", 252)} {
		cases = append(cases, ruleCase{name: bootlog.Value(n), setup: func(t *testing.T, f *fixture) {
			f.profile(t, n, stRunning)
			f.profile(t, "ok", stRunning)
		},
			slots: map[string]bool{"ok": true, "default": false},
			boot: func() []string {
				l := []string{line(n, "", "skipped", "unknown", "invalid-name"), line("ok", "running", "started", "unknown"), defaultDown}
				if n > "ok" {
					l[0], l[1] = l[1], l[0]
				}
				return l
			}(),
			logCount: map[string]int{`"reason":"invalid-name"`: 1},
		})
	}
	for _, n := range []string{"a", "0", "a-", "a_", "my-profile_2", "9lives"} {
		cases = append(cases, ruleCase{name: "valid " + n, setup: func(t *testing.T, f *fixture) { f.profile(t, n, stStopped) },
			slots: map[string]bool{n: false, "default": false},
			boot:  []string{line(n, "stopped", "registered", "unknown"), defaultDown}})
	}
	runRules(t, cases)
}

// Rule: a slot is gateway-<name> and a file name has at most 255 bytes: a
// valid name of 248-251 bytes is skipped (reason=name-too-long); no name of
// 247 bytes or less may fail for lack of room.
func TestRule_LongNames(t *testing.T) {
	// The limit is computed from the scandir's filesystem and s6-svscan's
	// own (slot.ScandirNameLimit): a 255-byte file system under an s6-svscan
	// without a name limit (s6 2.11) gives every valid name up to 247 bytes
	// a slot, as the contract has it; s6-svscan 2.13 and later skip a
	// service name over 251 bytes ("name too long - not spawning service"),
	// so there gateway-<name> stops at 243; a 251-byte file system (Docker's
	// fuse-overlayfs here) the same.
	for _, lim := range []struct {
		name   string
		limit  slot.NameLimit
		fit    []int
		toLong []int
	}{
		{"255-byte fs, no s6-svscan limit", slot.NameLimit{FS: 255, Svscan: 1019}, []int{1, 200, 242, 243, 246, 247}, []int{248, 250, 251}},
		{"255-byte fs, s6-svscan 2.13+", slot.NameLimit{FS: 255, Svscan: slot.SvscanNameMax}, []int{1, 242, 243}, []int{244, 245, 247, 248, 251}},
		{"251-byte fs", slot.NameLimit{FS: 251, Svscan: 1019}, []int{243}, []int{244, 247}},
		{"computed here", slot.NameLimit{}, []int{1, 243}, []int{248, 251}},
	} {
		t.Run(lim.name, func(t *testing.T) {
			var cases []ruleCase
			setLimit := func(f *fixture) { f.cfg.NameLimit = lim.limit }
			for _, n := range lim.fit {
				name := strings.Repeat("x", n)
				cases = append(cases, ruleCase{name: "slot at " + strconv.Itoa(n) + " bytes",
					setup: func(t *testing.T, f *fixture) { setLimit(f); f.profile(t, name, stRunning) },
					slots: map[string]bool{name: true, "default": false},
					boot:  []string{line(name, "running", "started", "unknown"), defaultDown}})
			}
			for _, n := range lim.toLong {
				name := strings.Repeat("y", n)
				cases = append(cases, ruleCase{name: "too long at " + strconv.Itoa(n) + " bytes",
					setup:    func(t *testing.T, f *fixture) { setLimit(f); f.profile(t, name, stRunning) },
					slots:    map[string]bool{"default": false},
					boot:     []string{line(name, "running", "skipped", "unknown", "name-too-long"), defaultDown},
					logCount: map[string]int{`"reason":"name-too-long"`: 1},
					logHas:   []string{"s6-svscan's name limit"},
					logLacks: []string{"publish-failed"}})
			}
			cases = append(cases, ruleCase{name: "252 bytes is invalid", setup: func(t *testing.T, f *fixture) { setLimit(f); f.profile(t, strings.Repeat("z", 252), stRunning) },
				slots: map[string]bool{"default": false},
				boot:  []string{line(strings.Repeat("z", 252), "", "skipped", "unknown", "invalid-name"), defaultDown}})
			runRules(t, cases)
		})
	}
}

// Rule: desired_state, when present and not null, decides: the slot
// autostarts iff it is exactly "running" (draining included means down).
// Otherwise gateway_state decides: running, draining and degraded
// autostart. The same for a named profile and the default one.
func TestRule_DesiredStateDecides(t *testing.T) {
	var cases []ruleCase
	for _, tt := range []struct {
		name, data, prior string
		up                bool
	}{
		{"desired running", `{"desired_state":"running"}`, "running", true},
		{"desired running over gateway stopped", `{"desired_state":"running","gateway_state":"stopped"}`, "running", true},
		{"desired stopped over gateway running", `{"desired_state":"stopped","gateway_state":"running"}`, "stopped", false},
		{"desired draining is down", `{"desired_state":"draining","gateway_state":"running"}`, "draining", false},
		{"desired degraded is down", `{"desired_state":"degraded"}`, "degraded", false},
		{"desired case matters", `{"desired_state":"Running","gateway_state":"running"}`, "Running", false},
		{"desired not a string is down", `{"desired_state":1,"gateway_state":"running"}`, "", false},
		{"desired empty is down", `{"desired_state":"","gateway_state":"running"}`, "", false},
		{"desired null: gateway running", `{"desired_state":null,"gateway_state":"running"}`, "running", true},
		{"desired null: gateway draining", `{"desired_state":null,"gateway_state":"draining"}`, "draining", true},
		{"gateway running", `{"gateway_state":"running","pid":7}`, "running", true},
		{"gateway draining", `{"gateway_state":"draining"}`, "draining", true},
		{"gateway degraded", `{"gateway_state":"degraded"}`, "degraded", true},
		{"gateway stopped", `{"gateway_state":"stopped"}`, "stopped", false},
		{"gateway starting", `{"gateway_state":"starting"}`, "starting", false},
		{"both null", `{"desired_state":null,"gateway_state":null}`, "", false},
		{"neither key", `{"state":"running"}`, "", false},
	} {
		action := "registered"
		if tt.up {
			action = "started"
		}
		cases = append(cases, ruleCase{name: tt.name, setup: func(t *testing.T, f *fixture) {
			f.profile(t, "p", tt.data)
			f.file(t, "gateway_state.json", tt.data)
		},
			slots: map[string]bool{"p": tt.up, "default": tt.up},
			boot:  []string{line("p", tt.prior, action, "unknown"), line("default", tt.prior, action, "unknown")}})
	}
	runRules(t, cases)
}

// Rule: the state file is read as hermes, following symlinks, at most
// 1 MiB (larger is no state), a UTF-8 BOM tolerated; missing, unreadable,
// malformed or non-object files mean no state (down).
func TestRule_StateFileReadAsHermes(t *testing.T) {
	const sf = "profiles/p/gateway_state.json"
	mk := func(data string) func(*testing.T, *fixture) {
		return func(t *testing.T, f *fixture) { f.profile(t, "p", data) }
	}
	linked := func(target string, setup func(*testing.T, *fixture)) func(*testing.T, *fixture) {
		return func(t *testing.T, f *fixture) {
			f.profile(t, "p", "")
			if setup != nil {
				setup(t, f)
			}
			f.symlink(t, target, sf)
		}
	}
	head := `{"gateway_state":"running","pad":"`
	var cases []ruleCase
	for _, tt := range []struct {
		name  string
		setup func(*testing.T, *fixture)
		prior string
		up    bool
	}{
		{"symlink to a running state", linked("../../states/p.json", func(t *testing.T, f *fixture) { f.file(t, "states/p.json", stRunning) }), "running", true},
		{"symlink chain", linked("link2", func(t *testing.T, f *fixture) {
			f.file(t, "profiles/p/real.json", stRunning)
			f.symlink(t, "real.json", "profiles/p/link2")
		}), "running", true},
		{"dangling symlink", linked("nowhere.json", nil), "", false},
		{"symlink loop", linked("gateway_state.json", nil), "", false},
		{"symlink to a directory", linked("..", nil), "", false},
		{"directory", func(t *testing.T, f *fixture) { f.profile(t, "p", ""); f.dir(t, sf) }, "", false},
		{"fifo does not block", func(t *testing.T, f *fixture) {
			f.profile(t, "p", "")
			if err := syscall.Mkfifo(filepath.Join(f.home, sf), 0o644); err != nil {
				t.Fatal(err)
			}
		}, "", false},
		{"symlink to a fifo", linked("../../fifo", func(t *testing.T, f *fixture) {
			syscall.Mkfifo(filepath.Join(f.home, "fifo"), 0o644)
		}), "", false},
		{"exactly 1 MiB", mk(head + strings.Repeat("x", 1<<20-len(head)-2) + `"}`), "running", true},
		{"1 MiB and one byte", mk(head + strings.Repeat("x", 1<<20-len(head)-1) + `"}`), "", false},
		{"BOM", mk("\ufeff" + stRunning), "running", true},
		{"UTF-16", mk("\xff\xfe{\x00\"\x00}\x00"), "", false},
		{"empty", mk(" "), "", false},
		{"malformed", mk(`{"gateway_state":"running"`), "", false},
		{"array", mk(`["running"]`), "", false},
		{"string", mk(`"running"`), "", false},
		{"null", mk(`null`), "", false},
		{"missing", mk(""), "", false},
	} {
		action := "registered"
		if tt.up {
			action = "started"
		}
		cases = append(cases, ruleCase{name: tt.name, setup: tt.setup,
			slots: map[string]bool{"p": tt.up, "default": false},
			boot:  []string{line("p", tt.prior, action, "unknown"), defaultDown}})
	}
	runRules(t, cases)
}

// Rule: multiplexing is on when hermes's gateway config says so:
// gateway.multiplex_profiles in HERMES_HOME/config.yaml (a YAML bool, or a
// truthy string), overridden by env GATEWAY_MULTIPLEX_PROFILES when set and
// not empty. Truthy: stripped, lower-cased, one of 1, true, yes, on. A
// missing or malformed config.yaml means off plus a warning.
func TestRule_MultiplexFromConfigAndEnv(t *testing.T) {
	const warn = `"message":"gateway config not usable: multiplexing off"`
	on := map[string]bool{"a": false, "default": true}
	off := map[string]bool{"a": true, "default": false}
	cfg := func(v string) string { return "model:\n  default: x\ngateway:\n  multiplex_profiles: " + v + "\n" }
	var cases []ruleCase
	for _, tt := range []struct {
		name   string
		config string // "-": no file
		env    string
		on     bool
		warned int // -1: not checked
	}{
		{"no config, no env", "-", "", false, 1},
		{"config true", cfg("true"), "", true, 0},
		{"config True", cfg("True"), "", true, 0},
		{"config false", cfg("false"), "", false, 0},
		{"config string on", cfg(`"on"`), "", true, 0},
		{"config unquoted yes", cfg("yes"), "", true, 0},
		{"config unquoted on", cfg("on"), "", true, 0},
		{"config string 1", cfg(`"1"`), "", true, 0},
		{"config string stripped", cfg(`" TRUE "`), "", true, 0},
		{"config unquoted off", cfg("off"), "", false, 0},
		{"config string no", cfg(`"no"`), "", false, 0},
		{"config null", cfg("null"), "", false, 0},
		{"config key absent", "gateway:\n  other: true\n", "", false, 0},
		{"config gateway absent", "multiplex_profiles: true\n", "", false, 0},
		{"config empty", "", "", false, 0},
		{"config only a comment", "# nothing\n", "", false, 0},
		{"config flow style", "{gateway: {multiplex_profiles: true}}", "", true, 0},
		{"config with a BOM", "\ufeff" + cfg("true"), "", true, 0},
		{"config anchors", "base: &b {multiplex_profiles: true}\ngateway: *b\n", "", true, 0},
		{"config number is not a bool", cfg("1"), "", false, 1},
		{"config list is not a bool", cfg("[true]"), "", false, 1},
		{"config gateway a scalar", "gateway: true\n", "", false, 1},
		{"config top level a list", "- gateway\n", "", false, 1},
		{"config malformed", "gateway: [\n", "", false, 1},
		{"config tabs", "gateway:\n\tmultiplex_profiles: true\n", "", false, 1},
		{"config two documents", cfg("true") + "---\nx: 1\n", "", false, 1},
		{"config too large", cfg("true") + "#" + strings.Repeat("x", 1<<20) + "\n", "", false, 1},
		{"env on", "-", "on", true, 0},
		{"env ON padded", "-", " ON\n", true, 0},
		{"env yes", "-", "yes", true, 0},
		{"env 1 over config false", cfg("false"), "1", true, 0},
		{"env 0 over config true", cfg("true"), "0", false, 0},
		{"env off over config true", cfg("true"), "off", false, 0},
		{"env blank is set: not truthy", cfg("true"), " ", false, 0},
		{"env y is not truthy", "-", "y", false, 0},
		{"env on over malformed config: no warning", "gateway: [\n", "on", true, 0},
	} {
		want := off
		if tt.on {
			want = on
		}
		cases = append(cases, ruleCase{name: tt.name, env: map[string]string{EnvMultiplex: tt.env},
			setup: func(t *testing.T, f *fixture) {
				f.profile(t, "a", stRunning)
				if tt.config != "-" {
					f.file(t, "config.yaml", tt.config)
				}
			},
			slots: want, logCount: map[string]int{warn: tt.warned}})
	}
	cases = append(cases,
		ruleCase{name: "config is a symlink (followed)", setup: func(t *testing.T, f *fixture) {
			f.profile(t, "a", stRunning)
			f.file(t, "etc/hermes.yaml", cfg("true"))
			f.symlink(t, "etc/hermes.yaml", "config.yaml")
		}, slots: on, logCount: map[string]int{warn: 0}},
		ruleCase{name: "config is a directory", setup: func(t *testing.T, f *fixture) {
			f.profile(t, "a", stRunning)
			f.dir(t, "config.yaml")
		}, slots: off, logCount: map[string]int{warn: 1}},
	)
	runRules(t, cases)
}

// Rule: when multiplexing, named slots are always registered down, and the
// default slot starts if its own state or any named profile's says
// autostart (their intent is folded into the root gateway).
func TestRule_MultiplexFoldsIntoDefault(t *testing.T) {
	mux := map[string]string{EnvMultiplex: "true"}
	long := strings.Repeat("l", 250)
	runRules(t, []ruleCase{
		{name: "a running named profile starts the default", env: mux, setup: func(t *testing.T, f *fixture) {
			f.profile(t, "a", stRunning)
			f.profile(t, "b", stStopped)
			f.file(t, "gateway_state.json", stStopped)
		}, slots: map[string]bool{"a": false, "b": false, "default": true},
			boot: []string{line("a", "running", "registered", "unknown"), line("b", "stopped", "registered", "unknown"),
				line("default", "stopped", "started", "unknown")}},
		{name: "a draining gateway_state folds", env: mux, setup: func(t *testing.T, f *fixture) {
			f.profile(t, "a", `{"gateway_state":"draining"}`)
		}, slots: map[string]bool{"a": false, "default": true}},
		{name: "a desired draining does not fold", env: mux, setup: func(t *testing.T, f *fixture) {
			f.profile(t, "a", `{"desired_state":"draining","gateway_state":"running"}`)
		}, slots: map[string]bool{"a": false, "default": false}},
		{name: "nothing wants: default down", env: mux, setup: func(t *testing.T, f *fixture) {
			f.profile(t, "a", stStopped)
		}, slots: map[string]bool{"a": false, "default": false}},
		{name: "default's own state", env: mux, setup: func(t *testing.T, f *fixture) {
			f.profile(t, "a", stStopped)
			f.file(t, "gateway_state.json", stRunning)
		}, slots: map[string]bool{"a": false, "default": true}},
		{name: "a profile too long for a slot still folds", env: mux, setup: func(t *testing.T, f *fixture) {
			f.profile(t, long, stRunning)
		}, slots: map[string]bool{"default": true}},
		{name: "an invalid name does not fold", env: mux, setup: func(t *testing.T, f *fixture) {
			f.profile(t, "Bad", stRunning)
		}, slots: map[string]bool{"default": false}},
		{name: "a directory without SOUL.md does not fold", env: mux, setup: func(t *testing.T, f *fixture) {
			f.file(t, "profiles/ghost/gateway_state.json", stRunning)
		}, slots: map[string]bool{"default": false}},
		{name: "off: each profile its own", env: map[string]string{EnvMultiplex: "false"}, setup: func(t *testing.T, f *fixture) {
			f.profile(t, "a", stRunning)
		}, slots: map[string]bool{"a": true, "default": false}},
	})
}

// Rule: the legacy migration: no gateway_state.json entry at all, env
// HERMES_GATEWAY_NO_SUPERVISE not truthy, and a supervised "gateway run"
// container command: write the migrated state and start the default.
func TestRule_LegacyMigration(t *testing.T) {
	gw := []string{"gateway", "run", "-v"}
	migrated := func(t *testing.T, f *fixture) {
		data, err := os.ReadFile(filepath.Join(f.home, "gateway_state.json"))
		if err != nil || !strings.HasPrefix(string(data), `{"gateway_state":"running","desired_state":"running","timestamp":1778148000,"migrated_from":"legacy-container-cmd"}`) {
			t.Errorf("state file %q %v", data, err)
		}
	}
	notWritten := func(t *testing.T, f *fixture) {
		if _, err := os.Lstat(filepath.Join(f.home, "gateway_state.json")); !os.IsNotExist(err) {
			t.Errorf("state file written: %v", err)
		}
	}
	up := map[string]bool{"default": true}
	down := map[string]bool{"default": false}
	var cases []ruleCase
	for _, tt := range []struct {
		name string
		argv []string
		env  string
		up   bool
	}{
		{"supervised gateway run", gw, "", true},
		{"no-supervise flag", []string{"gateway", "run", "--no-supervise"}, "", false},
		{"env 1", gw, "1", false},
		{"env on", gw, "on", false},
		{"env Yes padded", gw, " Yes ", false},
		{"env TRUE", gw, "TRUE", false},
		{"env 0", gw, "0", true},
		{"env off", gw, "off", true},
		{"env empty", gw, "", true},
		{"gateway start", []string{"gateway", "start"}, "", false},
		{"chat", []string{"chat"}, "", false},
		{"no container argv", nil, "", false},
	} {
		c := ruleCase{name: tt.name, argv: tt.argv, env: map[string]string{EnvNoSupervise: tt.env}, slots: down, check: notWritten}
		if tt.up {
			c.slots, c.check = up, migrated
		}
		cases = append(cases, c)
	}
	cases = append(cases,
		ruleCase{name: "state exists", argv: gw, setup: func(t *testing.T, f *fixture) { f.file(t, "gateway_state.json", stStopped) }, slots: down},
		ruleCase{name: "malformed state exists", argv: gw, setup: func(t *testing.T, f *fixture) { f.file(t, "gateway_state.json", "{") }, slots: down},
		ruleCase{name: "named profiles do not matter", argv: gw, setup: func(t *testing.T, f *fixture) { f.profile(t, "a", stStopped) },
			slots: map[string]bool{"a": false, "default": true}, check: migrated},
	)
	runRules(t, cases)
}

// Rule: the legacy migration never writes through a symlink: a dangling
// symlink is an entry (no migration), and a link to a state is followed for
// reading like any state file.
func TestRule_LegacyMigrationNeverWritesThroughSymlink(t *testing.T) {
	gw := []string{"gateway", "run"}
	unchanged := func(rel, want string) func(*testing.T, *fixture) {
		return func(t *testing.T, f *fixture) {
			data, err := os.ReadFile(filepath.Join(f.home, rel))
			if err != nil || string(data) != want {
				t.Errorf("%s = %q %v, want %q", rel, data, err, want)
			}
			ents, _ := os.ReadDir(f.home)
			for _, e := range ents {
				if strings.Contains(e.Name(), ".tmp") {
					t.Errorf("temporary file left: %s", e.Name())
				}
			}
		}
	}
	runRules(t, []ruleCase{
		{name: "dangling symlink: no migration, target not created", argv: gw, setup: func(t *testing.T, f *fixture) {
			f.dir(t, "target")
			f.symlink(t, "target/state.json", "gateway_state.json")
		}, slots: map[string]bool{"default": false}, check: func(t *testing.T, f *fixture) {
			if ents, _ := os.ReadDir(filepath.Join(f.home, "target")); len(ents) != 0 {
				t.Errorf("written through the symlink: %v", ents)
			}
			if fi, err := os.Lstat(filepath.Join(f.home, "gateway_state.json")); err != nil || fi.Mode()&os.ModeSymlink == 0 {
				t.Errorf("symlink replaced: %v %v", fi, err)
			}
		}},
		{name: "symlink to a stopped state: read, kept", argv: gw, setup: func(t *testing.T, f *fixture) {
			f.file(t, "real.json", stStopped)
			f.symlink(t, "real.json", "gateway_state.json")
		}, slots: map[string]bool{"default": false}, check: unchanged("real.json", stStopped)},
		{name: "symlink to a running state: read, kept", argv: gw, setup: func(t *testing.T, f *fixture) {
			f.file(t, "real.json", stRunning)
			f.symlink(t, "real.json", "gateway_state.json")
		}, slots: map[string]bool{"default": true}, check: unchanged("real.json", stRunning)},
		{name: "symlink to a directory", argv: gw, setup: func(t *testing.T, f *fixture) {
			f.dir(t, "d")
			f.symlink(t, "d", "gateway_state.json")
		}, slots: map[string]bool{"default": false}, check: func(t *testing.T, f *fixture) {
			if ents, _ := os.ReadDir(filepath.Join(f.home, "d")); len(ents) != 0 {
				t.Errorf("written into the directory: %v", ents)
			}
		}},
	})
}

// Rule: stale runtime files gateway.pid and processes.json are removed
// from each profile directory (a symlink is removed, never its target);
// nothing is removed where there is no profile.
func TestRule_StaleRuntimeFilesRemoved(t *testing.T) {
	gone := func(rels ...string) func(*testing.T, *fixture) {
		return func(t *testing.T, f *fixture) {
			for _, r := range rels {
				if _, err := os.Lstat(filepath.Join(f.home, r)); !os.IsNotExist(err) {
					t.Errorf("%s not removed (%v)", r, err)
				}
			}
		}
	}
	kept := func(rels ...string) func(*testing.T, *fixture) {
		return func(t *testing.T, f *fixture) {
			for _, r := range rels {
				if _, err := os.Lstat(filepath.Join(f.home, r)); err != nil {
					t.Errorf("%s removed (%v)", r, err)
				}
			}
		}
	}
	both := func(a, b func(*testing.T, *fixture)) func(*testing.T, *fixture) {
		return func(t *testing.T, f *fixture) { a(t, f); b(t, f) }
	}
	runRules(t, []ruleCase{
		{name: "default and named", setup: func(t *testing.T, f *fixture) {
			f.profile(t, "a", stRunning)
			for _, n := range []string{"gateway.pid", "processes.json"} {
				f.file(t, n, "1")
				f.file(t, "profiles/a/"+n, "1")
			}
		}, slots: map[string]bool{"a": true, "default": false},
			check: gone("gateway.pid", "processes.json", "profiles/a/gateway.pid", "profiles/a/processes.json")},
		{name: "a symlink is removed, not its target", setup: func(t *testing.T, f *fixture) {
			f.file(t, "keep.pid", "1")
			f.symlink(t, "keep.pid", "gateway.pid")
		}, check: both(gone("gateway.pid"), kept("keep.pid"))},
		{name: "a directory is left, warned, not fatal", setup: func(t *testing.T, f *fixture) {
			f.dir(t, "gateway.pid")
			f.file(t, "processes.json", "[]")
		}, slots: map[string]bool{"default": false}, logHas: []string{"stale runtime file not removed"},
			check: both(kept("gateway.pid"), gone("processes.json"))},
		{name: "not a profile: untouched", setup: func(t *testing.T, f *fixture) {
			f.file(t, "profiles/nosoul/gateway.pid", "1")
			f.profile(t, "Bad", "")
			f.file(t, "profiles/Bad/gateway.pid", "1")
		}, check: kept("profiles/nosoul/gateway.pid", "profiles/Bad/gateway.pid")},
	})
}

// Rule: prior exit, for the log only: state/gateway.lifecycle.json phase
// exited = clean, running = unclean, anything else or missing = unknown
// (read as hermes, following symlinks).
func TestRule_PriorExit(t *testing.T) {
	var cases []ruleCase
	for _, tt := range []struct {
		name, data, want string // data "": no file
	}{
		{"exited", `{"phase":"exited"}`, "clean"},
		{"running", `{"phase":"running","pid":3}`, "unclean"},
		{"starting", `{"phase":"starting"}`, "unknown"},
		{"missing", "", "unknown"},
		{"malformed", `{"phase":`, "unknown"},
		{"not a string", `{"phase":1}`, "unknown"},
		{"symlink to exited", "->" + `{"phase":"exited"}`, "clean"},
	} {
		cases = append(cases, ruleCase{name: tt.name, setup: func(t *testing.T, f *fixture) {
			f.profile(t, "a", stStopped)
			for _, base := range []string{"", "profiles/a/"} {
				switch {
				case tt.data == "":
				case strings.HasPrefix(tt.data, "->"):
					f.file(t, base+"state/real.json", tt.data[2:])
					f.symlink(t, "real.json", base+"state/gateway.lifecycle.json")
				default:
					f.file(t, base+"state/gateway.lifecycle.json", tt.data)
				}
			}
		}, boot: []string{line("a", "stopped", "registered", tt.want), line("default", "", "registered", tt.want)}})
	}
	runRules(t, cases)
}

// Rule: a dashboard container (the stripped argv starts with "dashboard")
// registers nothing, writes nothing and exits 0. Run, not Pass: the check
// comes before anything else.
func TestRule_DashboardDoesNothing(t *testing.T) {
	for _, tt := range []struct {
		name  string
		procs map[string][]string // pid -> argv
	}{
		{"PID 1", map[string][]string{"1": {"/init", "/opt/hermes/docker/main-wrapper.sh", "hermes", "dashboard", "--port", "9119"}}},
		{"dispatch then hermes", map[string][]string{"1": {"main-wrapper.sh", "/opt/hermes/docker/entrypoint-dispatch.sh", "/usr/local/bin/hermes", "dashboard"}}},
		{"no hermes", map[string][]string{"1": {"/init", "main-wrapper.sh", "dashboard"}}},
		{"a later PID", map[string][]string{"1": {"s6-svscan", "/run/service"}, "57": {"sh", "/opt/hermes/docker/main-wrapper.sh", "dashboard"}}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, t.TempDir())
			for pid, argv := range tt.procs {
				os.MkdirAll(filepath.Join(f.proc, pid), 0o755)
				os.WriteFile(filepath.Join(f.proc, pid, "cmdline"), []byte(strings.Join(argv, "\x00")+"\x00"), 0o644)
			}
			f.profile(t, "alpha", stRunning)
			f.file(t, "gateway.pid", "1")
			// Were the check broken, Run would fail at the user lookup
			// instead of dropping this test process's privileges.
			f.cfg.User = "no-such-user-hermes-s6"
			before := testenv.DumpTree(filepath.Dir(f.home))
			if err := Run(t.Context(), f.cfg); err != nil {
				t.Fatalf("Run: %v", err)
			}
			if after := testenv.DumpTree(filepath.Dir(f.home)); after != before {
				t.Fatalf("dashboard run changed files:\n%s\n%s", before, after)
			}
		})
	}
}
