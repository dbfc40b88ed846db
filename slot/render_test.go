package slot

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"syscall"
	"testing"

	"github.com/hermes-s6/hermes-s6/internal/testenv"
)

func TestRenderGolden(t *testing.T) {
	s := Spec{Name: "work", User: "hermes", CommandDir: "/command"}
	wantRun := `#!/command/with-contenv sh
# gateway-work: written by reconcile-profiles at every boot; edits are lost.
set -e
exec 2>&1
export HOME=/opt/data
cd /opt/data
export HERMES_S6_SUPERVISED_CHILD=1
export HERMES_SUPERVISED_CHILD=1
if [ "$(id -u)" -eq 0 ]; then
  exec /command/s6-setuidgid hermes hermes -p work gateway run --replace
fi
exec hermes -p work gateway run --replace
`
	wantLogRun := `#!/command/with-contenv sh
# logger of gateway-work: written by reconcile-profiles at every boot; edits are lost.
set -e
dir="${HERMES_HOME:-/opt/data}/logs/gateways/work"
if [ "$(id -u)" -eq 0 ]; then
  /command/s6-setuidgid hermes mkdir -p "$dir"
  /command/s6-setuidgid hermes rm -f "$dir/lock"
  exec /command/s6-setuidgid hermes /command/s6-log 1 n10 s1000000 T "$dir"
fi
mkdir -p "$dir"
rm -f "$dir/lock"
exec /command/s6-log 1 n10 s1000000 T "$dir"
`
	files := Render(s)
	want := []File{
		{TypeFile, 0o644, []byte("longrun\n"), true},
		{RunFile, 0o755, []byte(wantRun), false},
		{FinishFile, 0o755, []byte(FinishScript), true},
		{LogRunFile, 0o755, []byte(wantLogRun), false},
	}
	if len(files) != len(want) {
		t.Fatalf("%d files, want %d", len(files), len(want))
	}
	for i := range want {
		if files[i].Path != want[i].Path || files[i].Mode != want[i].Mode || string(files[i].Data) != string(want[i].Data) || files[i].Shared != want[i].Shared {
			t.Errorf("file %d:\n got %s %v\n%s\nwant %s %v\n%s", i, files[i].Path, files[i].Mode, files[i].Data, want[i].Path, want[i].Mode, want[i].Data)
		}
	}
}

func TestRunScriptDefaultAndUser(t *testing.T) {
	def := RunScript(Spec{Name: "default", User: "app", CommandDir: "/opt/s6/command/"})
	for _, want := range []string{
		"#!/opt/s6/command/with-contenv sh\n",
		"  exec /opt/s6/command/s6-setuidgid app hermes gateway run --replace\n",
		"\nexec hermes gateway run --replace\n",
	} {
		if !contains(def, want) {
			t.Errorf("default run script lacks %q:\n%s", want, def)
		}
	}
	if contains(def, " -p ") {
		t.Errorf("default profile must not pass -p:\n%s", def)
	}
	if lr := LogRunScript(Spec{Name: "x", User: "app"}); !contains(lr, "/command/s6-setuidgid app /command/s6-log") {
		t.Errorf("empty CommandDir must mean /command:\n%s", lr)
	}
}

func contains(s, sub string) bool {
	return len(sub) == 0 || (len(s) >= len(sub) && indexOf(s, sub) >= 0)
}

func indexOf(s, sub string) int {
	for i := 0; i+len(sub) <= len(s); i++ {
		if s[i:i+len(sub)] == sub {
			return i
		}
	}
	return -1
}

// TestScriptsParse runs sh -n on every generated script.
func TestScriptsParse(t *testing.T) {
	dir := t.TempDir()
	for _, name := range []string{"default", "work", "a-b_c", "0"} {
		for _, f := range Render(Spec{Name: name, User: "hermes", CommandDir: "/command"}) {
			if f.Path == TypeFile {
				continue
			}
			p := filepath.Join(dir, filepath.Base(f.Path))
			if err := os.WriteFile(p, f.Data, 0o755); err != nil {
				t.Fatal(err)
			}
			if out, err := exec.Command("sh", "-n", p).CombinedOutput(); err != nil {
				t.Errorf("sh -n %s of %s: %v: %s", f.Path, name, err, out)
			}
		}
	}
}

// TestFinishExitCodes executes ./finish the way s6-supervise does.
func TestFinishExitCodes(t *testing.T) {
	p := filepath.Join(t.TempDir(), "finish")
	if err := os.WriteFile(p, []byte(FinishScript), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		args []string
		want int
	}{
		{[]string{"0", "0"}, 125},
		{[]string{"78", "0"}, 125},
		{[]string{"1", "0"}, 0},
		{[]string{"111", "0"}, 0},
		{[]string{"256", "15"}, 0}, // killed by SIGTERM
		{[]string{"780", "0"}, 0},
		{nil, 0},
	} {
		cmd := exec.Command(p, tt.args...)
		err := cmd.Run()
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		if code != tt.want {
			t.Errorf("finish %v exited %d, want %d", tt.args, code, tt.want)
		}
	}
}

// TestScriptsExecute runs ./run and log/run through shims, in both
// branches: as root (through s6-setuidgid) and not (directly, by dropping
// to the test user when the test runs as root).
func TestScriptsExecute(t *testing.T) {
	base := t.TempDir()
	cmd := filepath.Join(base, "command")
	bin := filepath.Join(base, "bin")
	home := filepath.Join(base, "home")
	for _, d := range []string{cmd, bin, home} {
		os.MkdirAll(d, 0o755)
	}
	shims := map[string]string{
		filepath.Join(cmd, "with-contenv"): "#!/bin/sh\nexec \"$@\"\n",
		filepath.Join(cmd, "s6-setuidgid"): "#!/bin/sh\nu=$1; shift; echo \"setuidgid $u\"; exec \"$@\"\n",
		filepath.Join(cmd, "s6-log"):       "#!/bin/sh\necho \"s6-log $*\"\n",
		filepath.Join(bin, "hermes"):       "#!/bin/sh\necho \"hermes $* HOME=$HOME PWD=$(pwd) $HERMES_S6_SUPERVISED_CHILD$HERMES_SUPERVISED_CHILD\"; echo to-stderr >&2\n",
	}
	for p, data := range shims {
		if err := os.WriteFile(p, []byte(data), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	s := Spec{Name: "work", User: "someone", CommandDir: cmd, Home: home}
	dir := filepath.Join(base, "slot")
	os.MkdirAll(filepath.Join(dir, "log"), 0o755)
	for _, f := range Render(s) {
		os.WriteFile(filepath.Join(dir, f.Path), f.Data, f.Mode)
	}
	env := []string{"PATH=" + bin + ":/usr/bin:/bin", "HERMES_HOME=" + home}
	run := func(script string) string {
		c := exec.Command(filepath.Join(dir, script))
		c.Env = env
		c.Dir = dir
		out, err := c.CombinedOutput()
		if err != nil {
			t.Fatalf("%s: %v: %s", script, err, out)
		}
		return string(out)
	}
	out := run("run")
	wantHermes := "hermes -p work gateway run --replace HOME=" + home + " PWD=" + home + " 11\nto-stderr\n"
	if os.Geteuid() == 0 {
		wantHermes = "setuidgid someone\n" + wantHermes
	}
	if out != wantHermes {
		t.Errorf("run printed %q, want %q", out, wantHermes)
	}
	logDir := filepath.Join(home, "logs", "gateways", "work")
	if os.Geteuid() != 0 {
		os.MkdirAll(logDir, 0o755)
		os.WriteFile(filepath.Join(logDir, "lock"), nil, 0o644)
		if out := run("log/run"); out != "s6-log 1 n10 s1000000 T "+logDir+"\n" {
			t.Errorf("log/run printed %q", out)
		}
	} else {
		// The shim s6-setuidgid does not change users: mkdir and rm run as root.
		os.MkdirAll(logDir, 0o755)
		os.WriteFile(filepath.Join(logDir, "lock"), nil, 0o644)
		want := "setuidgid someone\nsetuidgid someone\nsetuidgid someone\ns6-log 1 n10 s1000000 T " + logDir + "\n"
		if out := run("log/run"); out != want {
			t.Errorf("log/run printed %q, want %q", out, want)
		}
	}
	if _, err := os.Stat(filepath.Join(logDir, "lock")); !os.IsNotExist(err) {
		t.Errorf("stale lock not removed: %v", err)
	}
}

// TestRenderSealedGolden: with Drop (sealed mode) ./run drops without
// asking id(1), and log/run is execline whose first command drops to the
// user's resolved ids: a logger restart costs root execlineb and
// s6-applyuidgid, nothing else.
func TestRenderSealedGolden(t *testing.T) {
	s := Spec{Name: "work", User: "hermes", CommandDir: "/command", Drop: &IDs{UID: 10000, GID: 10000, Groups: []int{10000, 27}}}
	wantRun := `#!/command/with-contenv sh
# gateway-work: written by reconcile-profiles at every boot; edits are lost.
set -e
exec 2>&1
export HOME=/opt/data
cd /opt/data
export HERMES_S6_SUPERVISED_CHILD=1
export HERMES_SUPERVISED_CHILD=1
exec /command/s6-setuidgid hermes hermes -p work gateway run --replace
`
	wantLogRun := `#!/command/execlineb -P
# logger of gateway-work: written by reconcile-profiles --follow (sealed mode); edits are lost.
# Drops to hermes first: nothing else here runs as root.
/command/s6-applyuidgid -u 10000 -g 10000 -G 10000,27
/command/with-contenv
/command/importas -D /opt/data h0 HERMES_HOME
/command/ifthenelse -s { /command/eltest -z ${h0} } { /command/define h /opt/data } { /command/define h ${h0} }
/command/define d ${h}/logs/gateways/work
/command/if { mkdir -p ${d} }
/command/if { rm -f ${d}/lock }
/command/s6-log 1 n10 s1000000 T ${d}
`
	if got := RunScript(s); got != wantRun {
		t.Errorf("run:\n%s\nwant:\n%s", got, wantRun)
	}
	if got := LogRunScript(s); got != wantLogRun {
		t.Errorf("log/run:\n%s\nwant:\n%s", got, wantLogRun)
	}
}

// TestLogRunNamesOnlyKnownPrograms: every program the sealed log/run takes
// from the command directory is s6-overlay's with-contenv or s6-log or in
// SealedLogPrograms, which the tests that fake /command link. A program
// added to the script and not to the list broke only the real-s6 test.
func TestLogRunNamesOnlyKnownPrograms(t *testing.T) {
	s := Spec{Name: "work", User: "hermes", CommandDir: "/command", Drop: &IDs{UID: 10000, GID: 10000}}
	known := map[string]bool{"with-contenv": true, "s6-log": true}
	for _, p := range SealedLogPrograms {
		known[p] = true
	}
	used := map[string]bool{}
	for _, m := range regexp.MustCompile(`/command/([a-z0-9-]+)`).FindAllStringSubmatch(LogRunScript(s), -1) {
		used[m[1]] = true
		if !known[m[1]] {
			t.Errorf("log/run runs /command/%s, which is not in SealedLogPrograms", m[1])
		}
	}
	for _, p := range SealedLogPrograms {
		if !used[p] {
			t.Errorf("SealedLogPrograms lists %s, which log/run does not run", p)
		}
	}
}

// TestSealedLogRunExecutes runs the sealed log/run with the real execline
// and s6-applyuidgid, as root, as s6-supervise would: it must create the
// log directory as the user (never root's), remove a stale lock, and exec
// s6-log as the user with HERMES_HOME read at run time.
func TestSealedLogRunExecutes(t *testing.T) {
	testenv.RequireRoot(t)
	testenv.RequireS6(t)
	uid, gid := testenv.EnsureUser(t)
	base := testenv.TempDir(t)
	cmd := filepath.Join(base, "command")
	home := filepath.Join(base, "home")
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.MkdirAll(cmd, 0o755))
	must(os.MkdirAll(filepath.Join(home, "logs"), 0o755))
	must(os.Chown(home, uid, gid))
	must(os.Chown(filepath.Join(home, "logs"), uid, gid))
	for _, prog := range SealedLogPrograms {
		p, err := exec.LookPath(prog)
		if err != nil {
			p = filepath.Join("/usr/lib/execline/bin", prog)
		}
		if _, err := os.Stat(p); err != nil {
			t.Fatalf("%s not found (apt-get install execline s6): %v", prog, err)
		}
		must(os.Symlink(p, filepath.Join(cmd, prog)))
	}
	must(os.WriteFile(filepath.Join(cmd, "with-contenv"), []byte("#!/bin/sh\nexec \"$@\"\n"), 0o755))
	must(os.WriteFile(filepath.Join(cmd, "s6-log"), []byte("#!/bin/sh\necho \"s6-log as $(id -u):$(id -g) $*\"\n"), 0o755))
	s := Spec{Name: "work", User: testenv.TestUser, CommandDir: cmd, Drop: &IDs{UID: uid, GID: gid}}
	dir := filepath.Join(base, "slot")
	must(os.MkdirAll(filepath.Join(dir, "log"), 0o755))
	for _, f := range Render(s) {
		must(os.WriteFile(filepath.Join(dir, f.Path), f.Data, f.Mode))
	}
	logDir := filepath.Join(home, "logs", "gateways", "work")
	for _, stale := range []bool{false, true} {
		if stale {
			must(os.WriteFile(filepath.Join(logDir, "lock"), nil, 0o644))
		}
		c := exec.Command(filepath.Join(dir, "log", "run"))
		c.Dir = filepath.Join(dir, "log")
		c.Env = []string{"PATH=" + cmd + ":/usr/bin:/bin", "HERMES_HOME=" + home}
		out, err := c.CombinedOutput()
		if err != nil {
			t.Fatalf("log/run: %v: %s", err, out)
		}
		if want := fmt.Sprintf("s6-log as %d:%d 1 n10 s1000000 T %s\n", uid, gid, logDir); string(out) != want {
			t.Errorf("log/run printed %q, want %q", out, want)
		}
		var st syscall.Stat_t
		must(syscall.Stat(logDir, &st))
		if int(st.Uid) != uid {
			t.Errorf("%s made by uid %d, want the user's %d (root never makes it)", logDir, st.Uid, uid)
		}
		if _, err := os.Stat(filepath.Join(logDir, "lock")); !os.IsNotExist(err) {
			t.Errorf("stale lock not removed: %v", err)
		}
	}
	// HERMES_HOME set but empty means the default, as in open mode's sh
	// (${HERMES_HOME:-/opt/data}); mkdir and rm are stand-ins here, the
	// test machine's /opt/data being none of the test's business.
	fake := filepath.Join(base, "fake")
	must(os.MkdirAll(fake, 0o755))
	for _, prog := range []string{"mkdir", "rm"} {
		must(os.WriteFile(filepath.Join(fake, prog), []byte("#!/bin/sh\n"), 0o755))
	}
	c := exec.Command(filepath.Join(dir, "log", "run"))
	c.Dir = filepath.Join(dir, "log")
	c.Env = []string{"PATH=" + cmd + ":" + fake + ":/usr/bin:/bin", "HERMES_HOME="}
	out, err := c.CombinedOutput()
	if err != nil {
		t.Fatalf("log/run with HERMES_HOME empty: %v: %s", err, out)
	}
	if want := fmt.Sprintf("s6-log as %d:%d 1 n10 s1000000 T /opt/data/logs/gateways/work\n", uid, gid); string(out) != want {
		t.Errorf("log/run with HERMES_HOME empty printed %q, want %q", out, want)
	}
}
