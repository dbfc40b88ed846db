package bootlog

import (
	"strings"
	"testing"
	"time"
)

func TestParseRoundTrip(t *testing.T) {
	at := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	for _, e := range []Entry{
		{Time: at, Profile: "alpha", Action: Started, PriorExit: "clean", PriorState: "running"},
		{Time: at, Profile: "default", Action: Registered, PriorExit: "unknown"},
		{Time: at, Profile: "Bad Name", Action: Skipped, PriorExit: "unknown", Reason: "invalid-name"},
	} {
		got, ok := Parse(strings.TrimSuffix(Format(e), "\n"))
		want := e
		want.Profile = Value(e.Profile)
		if !ok || got != want {
			t.Errorf("Parse(Format(%+v)) = %+v, %v", e, got, ok)
		}
	}
	for _, bad := range []string{"", "hello", "2026-11-30T12:00:00Z profile=a", "yesterday profile=a prior_state=none action=started prior_exit=clean",
		"2026-11-30T12:00:00Z profile=a prior_state=none action=started oops"} {
		if _, ok := Parse(bad); ok {
			t.Errorf("Parse(%q) ok", bad)
		}
	}
}

// TestLastBoot: only the last boot's lines count, ending at its
// profile=default line; a boot cut off before its default line (a crash)
// does not count as the last boot.
func TestLastBoot(t *testing.T) {
	line := func(p, a string) string {
		return strings.TrimSuffix(Format(Entry{Time: time.Unix(0, 0).UTC(), Profile: p, Action: a, PriorExit: "unknown"}), "\n")
	}
	log := strings.Join([]string{
		line("old", Started), line("default", Started),
		line("a", Started), line("b", Registered), line("default", Registered),
		line("half", Started), "garbage",
	}, "\n") + "\n"
	got, ok := LastBoot(log)
	if !ok {
		t.Fatal("no boot found")
	}
	var names []string
	for _, e := range got {
		names = append(names, e.Profile+":"+e.Action)
	}
	if strings.Join(names, ",") != "a:started,b:registered,default:registered" {
		t.Errorf("last boot = %v", names)
	}
	if _, ok := LastBoot(line("a", Started) + "\n"); ok {
		t.Error("a log without profile=default has a boot")
	}
}

func FuzzParse(f *testing.F) {
	f.Add("2026-11-30T12:00:00Z profile=a prior_state=none action=started prior_exit=clean")
	f.Fuzz(func(t *testing.T, s string) {
		e, ok := Parse(s)
		if ok && (e.Profile == "" || e.Action == "") {
			t.Fatalf("Parse(%q) ok with empty fields: %+v", s, e)
		}
		LastBoot(s)
	})
}
