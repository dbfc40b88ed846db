package reconcile

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/hermes-s6/hermes-s6/internal/testenv"
)

type fixture struct {
	cfg     Config
	home    string
	scandir string
	proc    string
	basedir string
	logs    *bytes.Buffer
	env     map[string]string
	out     *bytes.Buffer
}

func newFixture(t *testing.T, base string) *fixture {
	t.Helper()
	f := &fixture{
		home:    filepath.Join(base, "home"),
		scandir: filepath.Join(base, "service"),
		proc:    filepath.Join(base, "proc"),
		basedir: filepath.Join(base, "s6-basedir"), // absent: s6 not detected
		logs:    &bytes.Buffer{},
		out:     &bytes.Buffer{},
		env:     map[string]string{},
	}
	for _, d := range []string{f.home, f.scandir, f.proc} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	f.cfg = Config{
		HermesHome: f.home, Scandir: f.scandir, User: "hermes", CommandDir: "/command",
		Proc: f.proc, S6Basedir: f.basedir,
		Getenv: func(k string) string { return f.env[k] },
		Now:    func() time.Time { return time.Date(2026, 5, 7, 10, 0, 0, 0, time.UTC) },
		Log:    zerolog.New(zerolog.SyncWriter(f.logs)),
		Out:    f.out,
	}
	return f
}

// profile makes HERMES_HOME/profiles/<name> with SOUL.md and, if state is
// not "", a gateway_state.json holding it.
func (f *fixture) profile(t *testing.T, name, state string) string {
	t.Helper()
	dir := filepath.Join(f.home, "profiles", name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, "SOUL.md"), []byte("soul"), 0o644)
	if state != "" {
		os.WriteFile(filepath.Join(dir, "gateway_state.json"), []byte(state), 0o644)
	}
	return dir
}

func (f *fixture) pass(t *testing.T, argv []string) Summary {
	t.Helper()
	sum, err := Pass(context.Background(), f.cfg, argv)
	if err != nil {
		t.Fatalf("Pass: %v\nlogs:\n%s", err, f.logs)
	}
	return sum
}

// bootLines returns the boot log's lines without their timestamps.
func (f *fixture) bootLines(t *testing.T) []string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(f.home, "logs", "container-boot.log"))
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, l := range strings.Split(strings.TrimSuffix(string(data), "\n"), "\n") {
		ts, rest, _ := strings.Cut(l, " ")
		if _, err := time.Parse(time.RFC3339, ts); err != nil {
			t.Fatalf("line %q: time: %v", l, err)
		}
		out = append(out, rest)
	}
	return out
}

func (f *fixture) down(t *testing.T, name string) bool {
	t.Helper()
	dir := filepath.Join(f.scandir, "gateway-"+name)
	if _, err := os.Stat(filepath.Join(dir, "run")); err != nil {
		t.Fatalf("slot %s: %v", name, err)
	}
	_, err := os.Lstat(filepath.Join(dir, "down"))
	return err == nil
}

func TestPassProfiles(t *testing.T) {
	f := newFixture(t, t.TempDir())
	running := `{"gateway_state":"running"}`
	f.profile(t, "alpha", running)
	f.profile(t, "beta", `{"gateway_state":"stopped"}`)
	f.profile(t, "gamma", `{"gateway_state":"draining"}`)
	f.profile(t, "delta", `{"desired_state":null,"gateway_state":"degraded"}`)
	f.profile(t, "eps", `{"desired_state":"stopped","gateway_state":"running"}`)
	f.profile(t, "bom", "\ufeff"+running)
	f.profile(t, "empty", " ")
	f.profile(t, "malformed", `{"gateway_state":`)
	f.profile(t, "array", `["running"]`)
	f.profile(t, "huge", `{"gateway_state":"running","x":"`+strings.Repeat("y", 2<<20)+`"}`)
	f.profile(t, "nostate", "")
	d := f.profile(t, "symlinked", "")
	os.WriteFile(filepath.Join(d, "real.json"), []byte(running), 0o644)
	os.Symlink("real.json", filepath.Join(d, "gateway_state.json"))
	d = f.profile(t, "dirstate", "")
	os.Mkdir(filepath.Join(d, "gateway_state.json"), 0o755)
	f.profile(t, "Bad Name", running)
	f.profile(t, "-dash", running)
	f.profile(t, "default", running) // reserved: ignored, no line
	os.MkdirAll(filepath.Join(f.home, "profiles", "nosoul"), 0o755)
	os.WriteFile(filepath.Join(f.home, "profiles", "afile"), nil, 0o644)
	// Stale runtime files and a prior exit.
	d = f.profile(t, "stale", running)
	for _, n := range []string{"gateway.pid", "processes.json"} {
		os.WriteFile(filepath.Join(d, n), []byte("42"), 0o644)
		os.WriteFile(filepath.Join(f.home, n), []byte("42"), 0o644)
	}
	os.MkdirAll(filepath.Join(d, "state"), 0o755)
	os.WriteFile(filepath.Join(d, "state", "gateway.lifecycle.json"), []byte(`{"phase":"running"}`), 0o644)
	os.MkdirAll(filepath.Join(f.home, "state"), 0o755)
	os.WriteFile(filepath.Join(f.home, "state", "gateway.lifecycle.json"), []byte(`{"phase":"exited"}`), 0o644)
	os.WriteFile(filepath.Join(f.home, "gateway_state.json"), []byte(`{"gateway_state":"stopped"}`), 0o644)

	f.pass(t, nil)

	want := []string{
		"profile=-dash prior_state=none action=skipped prior_exit=unknown reason=invalid-name",
		"profile=Bad%20Name prior_state=none action=skipped prior_exit=unknown reason=invalid-name",
		"profile=alpha prior_state=running action=started prior_exit=unknown",
		"profile=array prior_state=none action=registered prior_exit=unknown",
		"profile=beta prior_state=stopped action=registered prior_exit=unknown",
		"profile=bom prior_state=running action=started prior_exit=unknown",
		"profile=delta prior_state=degraded action=started prior_exit=unknown",
		"profile=dirstate prior_state=none action=registered prior_exit=unknown",
		"profile=empty prior_state=none action=registered prior_exit=unknown",
		"profile=eps prior_state=stopped action=registered prior_exit=unknown",
		"profile=gamma prior_state=draining action=started prior_exit=unknown",
		"profile=huge prior_state=none action=registered prior_exit=unknown",
		"profile=malformed prior_state=none action=registered prior_exit=unknown",
		"profile=nostate prior_state=none action=registered prior_exit=unknown",
		"profile=stale prior_state=running action=started prior_exit=unclean",
		"profile=symlinked prior_state=running action=started prior_exit=unknown",
		"profile=default prior_state=stopped action=registered prior_exit=clean",
	}
	if got := f.bootLines(t); !reflect.DeepEqual(got, want) {
		t.Fatalf("boot log:\n%s\nwant:\n%s\nlogs:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"), f.logs)
	}
	for _, name := range []string{"alpha", "bom", "delta", "gamma", "stale", "symlinked"} {
		if f.down(t, name) {
			t.Errorf("%s is down", name)
		}
	}
	for _, name := range []string{"array", "beta", "dirstate", "empty", "eps", "huge", "malformed", "nostate", "default"} {
		if !f.down(t, name) {
			t.Errorf("%s is not down", name)
		}
	}
	ents, _ := os.ReadDir(f.scandir)
	if len(ents) != 15 {
		t.Errorf("scandir has %d entries, want 15 slots", len(ents))
	}
	for _, p := range []string{"profiles/stale/gateway.pid", "profiles/stale/processes.json", "gateway.pid", "processes.json"} {
		if _, err := os.Lstat(filepath.Join(f.home, p)); !os.IsNotExist(err) {
			t.Errorf("%s not removed", p)
		}
	}
	for _, want := range []string{`"reason":"reserved-name"`, `"reason":"invalid-name"`, `"profile":"Bad Name"`} {
		if !strings.Contains(f.logs.String(), want) {
			t.Errorf("logs lack %s", want)
		}
	}
}

func TestPassMultiplex(t *testing.T) {
	for _, tt := range []struct {
		env, defState, named string
		defaultUp            bool
	}{
		{"1", "", `{"gateway_state":"running"}`, true},
		{"TRUE", `{"gateway_state":"stopped"}`, `{"desired_state":"running"}`, true},
		{"yes", `{"gateway_state":"running"}`, `{"gateway_state":"stopped"}`, true},
		{"Yes", "", `{"gateway_state":"stopped"}`, false},
		{"0", "", `{"gateway_state":"running"}`, false},
	} {
		t.Run(tt.env+tt.named, func(t *testing.T) {
			f := newFixture(t, t.TempDir())
			f.env[EnvMultiplex] = tt.env
			f.profile(t, "named", tt.named)
			f.profile(t, "other", `{"gateway_state":"stopped"}`)
			if tt.defState != "" {
				os.WriteFile(filepath.Join(f.home, "gateway_state.json"), []byte(tt.defState), 0o644)
			}
			f.pass(t, nil)
			multiplex := tt.env != "0"
			namedUp := !multiplex && strings.Contains(tt.named, "running")
			if f.down(t, "named") == namedUp {
				t.Errorf("named down = %v, want %v", !namedUp, !namedUp)
			}
			if !f.down(t, "other") == true {
				t.Error("other up")
			}
			if f.down(t, "default") == tt.defaultUp {
				t.Errorf("default up = %v, want %v\n%s", !f.down(t, "default"), tt.defaultUp, f.logs)
			}
		})
	}
}

func TestPassLegacyMigration(t *testing.T) {
	gw := []string{"gateway", "run", "-v"}
	for _, tt := range []struct {
		name     string
		argv     []string
		env      string
		state    string // "" = no file; "symlink" = dangling symlink
		migrated bool
	}{
		{"gateway run", gw, "", "", true},
		{"no-supervise env", gw, "TRUE", "", false},
		{"no-supervise env false", gw, "0", "", true},
		{"no-supervise flag", []string{"gateway", "run", "--no-supervise"}, "", "", false},
		{"state exists", gw, "", `{"gateway_state":"stopped"}`, false},
		{"malformed state exists", gw, "", `{`, false},
		{"dangling symlink state exists", gw, "", "symlink", false},
		{"other command", []string{"chat"}, "", "", false},
		{"no container argv", nil, "", "", false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, t.TempDir())
			f.env[EnvNoSupervise] = tt.env
			sf := filepath.Join(f.home, "gateway_state.json")
			switch tt.state {
			case "":
			case "symlink":
				os.Symlink("nowhere", sf)
			default:
				os.WriteFile(sf, []byte(tt.state), 0o644)
			}
			sum := f.pass(t, tt.argv)
			def := sum.Slots[len(sum.Slots)-1]
			if def.Migrated != tt.migrated || f.down(t, "default") == tt.migrated {
				t.Fatalf("migrated=%v down=%v, want migrated %v\n%s", def.Migrated, f.down(t, "default"), tt.migrated, f.logs)
			}
			data, err := os.ReadFile(sf)
			if tt.migrated {
				if err != nil || !strings.Contains(string(data), `"migrated_from":"legacy-container-cmd"`) || !strings.Contains(string(data), `"timestamp":1778148000`) {
					t.Fatalf("state file: %s %v", data, err)
				}
				if again := f.pass(t, tt.argv); again.Slots[len(again.Slots)-1].Migrated {
					t.Error("migrated twice")
				}
			} else if tt.state == "" && err == nil {
				t.Fatalf("state file written: %s", data)
			}
		})
	}
}

func TestRunDashboard(t *testing.T) {
	f := newFixture(t, t.TempDir())
	os.MkdirAll(filepath.Join(f.proc, "1"), 0o755)
	os.WriteFile(filepath.Join(f.proc, "1", "cmdline"), []byte("/init\x00/opt/hermes/docker/main-wrapper.sh\x00hermes\x00dashboard\x00"), 0o644)
	f.profile(t, "alpha", `{"gateway_state":"running"}`)
	// Safety net: were the dashboard check broken, Run would fail at the
	// user lookup instead of dropping this test process's privileges.
	f.cfg.User = "no-such-user-hermes-s6"
	before := testenv.DumpTree(filepath.Dir(f.home))
	if err := Run(context.Background(), f.cfg); err != nil {
		t.Fatalf("Run: %v", err)
	}
	if after := testenv.DumpTree(filepath.Dir(f.home)); after != before {
		t.Fatalf("dashboard run changed files:\n%s\n%s", before, after)
	}
	if !strings.Contains(f.logs.String(), `"reason":"dashboard"`) {
		t.Errorf("logs: %s", f.logs)
	}
}

func snapshotTree(t *testing.T, dir string) map[string]string {
	t.Helper()
	m := map[string]string{}
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			t.Fatal(err)
		}
		var st syscall.Stat_t
		syscall.Lstat(p, &st)
		v := fmt.Sprintf("%o %d:%d ino=%d", st.Mode, st.Uid, st.Gid, st.Ino)
		if d.Type().IsRegular() {
			b, _ := os.ReadFile(p)
			v += " " + string(b)
		}
		m[p] = v
		return nil
	})
	return m
}

func TestPassIdempotentAndConverges(t *testing.T) {
	f := newFixture(t, t.TempDir())
	f.profile(t, "alpha", `{"gateway_state":"running"}`)
	beta := f.profile(t, "beta", `{"gateway_state":"stopped"}`)
	f.pass(t, nil)
	// A live supervisor in beta's slot.
	sup := filepath.Join(f.scandir, "gateway-beta", "supervise")
	os.Mkdir(sup, 0o700)
	syscall.Mkfifo(filepath.Join(sup, "control"), 0o600)
	os.WriteFile(filepath.Join(sup, "status"), []byte("x"), 0o644)
	before := snapshotTree(t, f.scandir)
	sum := f.pass(t, nil)
	if after := snapshotTree(t, f.scandir); !reflect.DeepEqual(before, after) {
		t.Fatalf("second pass changed the scandir")
	}
	for _, s := range sum.Slots {
		if s.Result.Summary() != "unchanged" {
			t.Errorf("%s: %s", s.Entry.Profile, s.Result.Summary())
		}
	}
	// beta wants to run now: only down goes.
	os.WriteFile(filepath.Join(beta, "gateway_state.json"), []byte(`{"gateway_state":"running"}`), 0o644)
	f.pass(t, nil)
	after := snapshotTree(t, f.scandir)
	for p, v := range before {
		if filepath.Base(p) == "down" && strings.Contains(p, "gateway-beta") {
			if _, ok := after[p]; ok {
				t.Error("beta still down")
			}
			continue
		}
		if after[p] != v && p != filepath.Join(f.scandir, "gateway-beta") { // the dir's mtime is not in v; its entry list is
			t.Errorf("%s changed: %s -> %s", p, v, after[p])
		}
	}
	if n := len(f.bootLines(t)); n != 9 {
		t.Errorf("boot log has %d lines after 3 passes, want 9", n)
	}
}

func TestPassDryRun(t *testing.T) {
	f := newFixture(t, t.TempDir())
	f.profile(t, "alpha", `{"gateway_state":"running"}`)
	d := f.profile(t, "beta", "")
	os.WriteFile(filepath.Join(d, "gateway.pid"), []byte("1"), 0o644)
	f.profile(t, "Bad", "")
	before := snapshotTree(t, filepath.Dir(f.home))
	f.pass(t, []string{"gateway", "run"})
	f.cfg.DryRun = true
	if after := snapshotTree(t, filepath.Dir(f.home)); reflect.DeepEqual(before, after) {
		t.Fatal("fixture: a real pass changed nothing?")
	}
	// Now a dry run on a fresh copy of the same input.
	g := newFixture(t, t.TempDir())
	g.profile(t, "alpha", `{"gateway_state":"running"}`)
	d = g.profile(t, "beta", "")
	os.WriteFile(filepath.Join(d, "gateway.pid"), []byte("1"), 0o644)
	g.profile(t, "Bad", "")
	g.cfg.DryRun = true
	before = snapshotTree(t, filepath.Dir(g.home))
	g.pass(t, []string{"gateway", "run"})
	if after := snapshotTree(t, filepath.Dir(g.home)); !reflect.DeepEqual(before, after) {
		t.Fatal("dry run changed files")
	}
	want := "profile=Bad prior_state=none action=skipped reason=invalid-name\n" +
		"profile=alpha prior_state=running action=started slot=" + g.scandir + "/gateway-alpha change=created\n" +
		"profile=beta prior_state=none action=registered slot=" + g.scandir + "/gateway-beta change=created\n" +
		"profile=default prior_state=none action=started slot=" + g.scandir + "/gateway-default change=created migrate=legacy-container-cmd\n"
	if g.out.String() != want {
		t.Fatalf("dry run printed:\n%s\nwant:\n%s", g.out, want)
	}
}

func TestPassRescan(t *testing.T) {
	setupS6 := func(f *fixture, comm string) {
		os.MkdirAll(filepath.Join(f.proc, "1"), 0o755)
		os.WriteFile(filepath.Join(f.proc, "1", "comm"), []byte(comm+"\n"), 0o644)
		os.MkdirAll(f.basedir, 0o755)
		os.MkdirAll(filepath.Join(f.scandir, ".s6-svscan"), 0o755)
	}
	t.Run("not detected", func(t *testing.T) {
		f := newFixture(t, t.TempDir())
		setupS6(f, "tini")
		sum := f.pass(t, nil)
		if sum.Rescanned || !strings.Contains(sum.RescanSkipped, `"tini"`) ||
			!strings.Contains(f.logs.String(), "s6-svscan not detected: not asking for a rescan") {
			t.Fatalf("%+v\n%s", sum, f.logs)
		}
	})
	t.Run("no basedir", func(t *testing.T) {
		f := newFixture(t, t.TempDir())
		setupS6(f, "s6-svscan")
		os.Remove(f.basedir)
		if sum := f.pass(t, nil); sum.Rescanned || !strings.Contains(sum.RescanSkipped, "basedir") {
			t.Fatalf("%+v", sum)
		}
	})
	t.Run("detected, reader present", func(t *testing.T) {
		f := newFixture(t, t.TempDir())
		setupS6(f, "s6-svscan")
		fifo := filepath.Join(f.scandir, ".s6-svscan", "control")
		if err := syscall.Mkfifo(fifo, 0o600); err != nil {
			t.Fatal(err)
		}
		rd, err := os.OpenFile(fifo, os.O_RDONLY|syscall.O_NONBLOCK, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer rd.Close()
		sum := f.pass(t, nil)
		buf := make([]byte, 8)
		n, _ := rd.Read(buf)
		if !sum.Rescanned || string(buf[:n]) != "a" {
			t.Fatalf("rescanned=%v read %q\n%s", sum.Rescanned, buf[:n], f.logs)
		}
		// The boot log is written after the rescan.
		if lines := f.bootLines(t); !strings.HasPrefix(lines[len(lines)-1], "profile=default ") {
			t.Fatal(lines)
		}
	})
	t.Run("detected, no reader", func(t *testing.T) {
		f := newFixture(t, t.TempDir())
		setupS6(f, "s6-svscan")
		syscall.Mkfifo(filepath.Join(f.scandir, ".s6-svscan", "control"), 0o600)
		sum := f.pass(t, nil) // not an error
		if sum.Rescanned || !strings.Contains(f.logs.String(), "s6-svscan detected but the rescan failed") {
			t.Fatalf("%+v\n%s", sum, f.logs)
		}
	})
}

func TestPassScandirUnusable(t *testing.T) {
	f := newFixture(t, t.TempDir())
	f.profile(t, "alpha", `{"gateway_state":"running"}`)
	os.Remove(f.scandir)
	_, err := Pass(context.Background(), f.cfg, nil)
	if !errors.Is(err, ErrSystem) {
		t.Fatalf("err %v, want ErrSystem", err)
	}
	want := []string{
		"profile=alpha prior_state=running action=error prior_exit=unknown reason=scandir-unusable",
		"profile=default prior_state=none action=error prior_exit=unknown reason=scandir-unusable",
	}
	if got := f.bootLines(t); !reflect.DeepEqual(got, want) {
		t.Fatalf("%q", got)
	}
}

func TestPassPublishError(t *testing.T) {
	f := newFixture(t, t.TempDir())
	f.profile(t, "alpha", `{"gateway_state":"running"}`)
	f.profile(t, "beta", `{"gateway_state":"running"}`)
	os.WriteFile(filepath.Join(f.scandir, "gateway-alpha"), []byte("not a dir"), 0o644)
	f.pass(t, nil)
	got := f.bootLines(t)
	if len(got) != 3 || got[0] != "profile=alpha prior_state=running action=error prior_exit=unknown reason=publish-failed" ||
		got[1] != "profile=beta prior_state=running action=started prior_exit=unknown" {
		t.Fatalf("%q", got)
	}
}

func TestValidate(t *testing.T) {
	for _, c := range []Config{
		{HermesHome: "relative"},
		{Scandir: "run/service"},
		{CommandDir: "/with space"},
		{CommandDir: "/x;rm"},
		{User: "-rf"},
		{User: "a b"},
		{User: "x'y"},
		{Workers: -1},
	} {
		if err := c.Validate(); !errors.Is(err, ErrUsage) {
			t.Errorf("Validate(%+v) = %v, want ErrUsage", c, err)
		}
	}
	c := Config{}
	if err := c.Validate(); err != nil || c.HermesHome != "/opt/data" || c.Scandir != "/run/service" || c.User != "hermes" || c.CommandDir != "/command" {
		t.Fatalf("defaults: %+v %v", c, err)
	}
}

// TestUnreadableProfileAsUser runs a pass as the unprivileged test user
// (root would read anything) in a child process: this test binary, re-run
// in helper mode, so that this process keeps its privileges.
func TestUnreadableProfileAsUser(t *testing.T) {
	uid, gid := testenv.EnsureUser(t)
	base := testenv.TempDir(t)
	testenv.DumpTreeOnFailure(t, base)
	f := newFixture(t, base)
	f.profile(t, "alpha", `{"gateway_state":"running"}`)
	f.profile(t, "locked", `{"gateway_state":"running"}`)
	f.profile(t, "zeta", `{"gateway_state":"running"}`)
	d := f.profile(t, "lockedstate", `{"gateway_state":"running"}`)
	filepath.WalkDir(base, func(p string, _ fs.DirEntry, _ error) error { return os.Lchown(p, uid, gid) })
	os.Chmod(filepath.Join(f.home, "profiles", "locked"), 0)
	os.Chmod(filepath.Join(d, "gateway_state.json"), 0)

	exe := filepath.Join(base, "reconcile.test")
	data, err := os.ReadFile(os.Args[0])
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(exe, data, 0o755)
	cmd := testenv.AsUser(exec.Command(exe, "-test.run=^$"), uid, gid)
	cmd.Env = append(os.Environ(), helperEnv+"="+base)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("helper: %v\n%s", err, out)
	}
	want := []string{
		"profile=alpha prior_state=running action=started prior_exit=unknown",
		"profile=locked prior_state=none action=skipped prior_exit=unknown reason=unreadable",
		"profile=lockedstate prior_state=none action=registered prior_exit=unknown",
		"profile=zeta prior_state=running action=started prior_exit=unknown",
		"profile=default prior_state=none action=registered prior_exit=unknown",
	}
	if got := f.bootLines(t); !reflect.DeepEqual(got, want) {
		t.Fatalf("boot log %q\nhelper output:\n%s", got, out)
	}
	if !strings.Contains(string(out), `"reason":"unreadable"`) || !strings.Contains(string(out), "permission denied") {
		t.Errorf("helper logs:\n%s", out)
	}
	var st syscall.Stat_t
	syscall.Lstat(filepath.Join(f.scandir, "gateway-alpha", "run"), &st)
	if int(st.Uid) != uid {
		t.Errorf("slot written by uid %d", st.Uid)
	}
	names, _ := os.ReadDir(f.scandir)
	var got []string
	for _, n := range names {
		got = append(got, n.Name())
	}
	sort.Strings(got)
	if !reflect.DeepEqual(got, []string{"gateway-alpha", "gateway-default", "gateway-lockedstate", "gateway-zeta"}) {
		t.Errorf("scandir: %q", got)
	}
}

const helperEnv = "RECONCILE_TEST_HELPER_BASE"

func TestMain(m *testing.M) {
	if base := os.Getenv(helperEnv); base != "" {
		cfg := Config{
			HermesHome: filepath.Join(base, "home"), Scandir: filepath.Join(base, "service"),
			Proc: filepath.Join(base, "proc"), S6Basedir: filepath.Join(base, "s6-basedir"),
			Log: zerolog.New(os.Stderr),
		}
		if _, err := Pass(context.Background(), cfg, nil); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}
