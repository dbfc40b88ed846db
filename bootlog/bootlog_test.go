package bootlog

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

var t0 = time.Date(2026, 5, 7, 10, 11, 12, 0, time.UTC)

func TestFormat(t *testing.T) {
	tests := []struct {
		e    Entry
		want string
	}{
		{Entry{Time: t0, Profile: "default", PriorState: "running", Action: Started, PriorExit: "unclean"},
			"2026-05-07T10:11:12Z profile=default prior_state=running action=started prior_exit=unclean\n"},
		{Entry{Time: t0, Profile: "work", Action: Registered, PriorExit: "clean", Reason: "ignored"},
			"2026-05-07T10:11:12Z profile=work prior_state=none action=registered prior_exit=clean\n"},
		{Entry{Time: t0, Profile: "Bad Name\nx=1", Action: Skipped, PriorExit: "unknown", Reason: "invalid-name"},
			"2026-05-07T10:11:12Z profile=Bad%20Name%0Ax%3D1 prior_state=none action=skipped prior_exit=unknown reason=invalid-name\n"},
		{Entry{Time: t0, Profile: "w", PriorState: "weird state", Action: Error, PriorExit: "unknown"},
			"2026-05-07T10:11:12Z profile=w prior_state=weird%20state action=error prior_exit=unknown reason=unknown\n"},
	}
	for _, tt := range tests {
		if got := Format(tt.e); got != tt.want {
			t.Errorf("Format(%+v)\n got %q\nwant %q", tt.e, got, tt.want)
		}
	}
}

func TestValue(t *testing.T) {
	for in, want := range map[string]string{
		"":          "-",
		"work":      "work",
		"a b":       "a%20b",
		"é":         "%C3%A9",
		"%":         "%25",
		"\"q\"":     "%22q%22",
		"/x/y.z:1+": "/x/y.z:1+",
		"\x00\t\r":  "%00%09%0D",
	} {
		if got := Value(in); got != want {
			t.Errorf("Value(%q) = %q, want %q", in, got, want)
		}
	}
}

func FuzzValue(f *testing.F) {
	for _, s := range []string{"", "work", "a b\nc", "é=%"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		v := Value(s)
		if v == "" || strings.ContainsAny(v, " \n\r\t=\"") {
			t.Fatalf("Value(%q) = %q breaks the line format", s, v)
		}
		line := Format(Entry{Time: t0, Profile: s, PriorState: s, Action: Skipped, PriorExit: "unknown", Reason: s})
		if strings.Count(line, "\n") != 1 || len(strings.Fields(line)) != 6 {
			t.Fatalf("line %q does not split into 6 fields", line)
		}
	})
}

func TestAppendAndRotate(t *testing.T) {
	home := t.TempDir()
	e := []Entry{
		{Time: t0, Profile: "a", Action: Started, PriorExit: "unknown"},
		{Time: t0, Profile: "default", Action: Registered, PriorExit: "unknown"},
	}
	if err := Append(home, e); err != nil { // logs/ is made
		t.Fatal(err)
	}
	if err := Append(home, e); err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(filepath.Join(home, File))
	lines := strings.Split(strings.TrimSuffix(string(data), "\n"), "\n")
	if len(lines) != 4 || !strings.Contains(lines[3], "profile=default") {
		t.Fatalf("log:\n%s", data)
	}
	// Just below the threshold: appended, not rotated.
	big := strings.Repeat("x", RotateSize-1) + "\n"
	os.WriteFile(filepath.Join(home, File), []byte(big[:RotateSize-1]), 0o644)
	Append(home, e)
	if _, err := os.Stat(filepath.Join(home, Rotated)); !os.IsNotExist(err) {
		t.Fatal("rotated below the threshold")
	}
	// At or over it: renamed to .1 (replacing the old one), new file started.
	os.WriteFile(filepath.Join(home, Rotated), []byte("old rotated"), 0o644)
	os.WriteFile(filepath.Join(home, File), []byte(big), 0o644)
	if err := Append(home, e); err != nil {
		t.Fatal(err)
	}
	if r, _ := os.ReadFile(filepath.Join(home, Rotated)); string(r) != big {
		t.Fatalf("rotated file holds %d bytes", len(r))
	}
	if cur, _ := os.ReadFile(filepath.Join(home, File)); string(cur) != Format(e[0])+Format(e[1]) {
		t.Fatalf("new log: %q", cur)
	}
}

func TestAppendRefusesSymlink(t *testing.T) {
	home := t.TempDir()
	os.MkdirAll(filepath.Join(home, Dir), 0o755)
	target := filepath.Join(t.TempDir(), "target")
	os.WriteFile(target, nil, 0o644)
	os.Symlink(target, filepath.Join(home, File))
	if err := Append(home, []Entry{{Time: t0, Profile: "default"}}); err == nil {
		t.Fatal("appended through a symlink")
	}
	if data, _ := os.ReadFile(target); len(data) != 0 {
		t.Fatal("target written")
	}
}
