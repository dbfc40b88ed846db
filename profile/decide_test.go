package profile

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// TestDecide checks the API sealed mode reuses: plain (name, autostart)
// slots, the default last, and what decided them.
func TestDecide(t *testing.T) {
	home := t.TempDir()
	mk := func(name, state string) {
		d := filepath.Join(home, ProfilesDir, name)
		os.MkdirAll(d, 0o755)
		os.WriteFile(filepath.Join(d, SoulFile), nil, 0o644)
		if state != "" {
			os.WriteFile(filepath.Join(d, StateFile), []byte(state), 0o644)
		}
	}
	mk("a", `{"gateway_state":"running"}`)
	mk("b", `{"desired_state":"draining","gateway_state":"running"}`)
	mk("Bad", `{"gateway_state":"running"}`)
	mk(strings.Repeat("x", 249), `{"gateway_state":"running"}`)
	mk("default", `{"gateway_state":"running"}`)
	os.MkdirAll(filepath.Join(home, ProfilesDir, ".git"), 0o755)
	env := map[string]string{}
	getenv := func(k string) string { return env[k] }
	gw := []string{"gateway", "run"}

	d := Decide(Options{Home: home, Getenv: getenv, Argv: gw, Workers: 3})
	if want := []Slot{{"a", true}, {"b", false}, {"default", true}}; !reflect.DeepEqual(d.Slots(), want) {
		t.Fatalf("Slots() = %v, want %v", d.Slots(), want)
	}
	var skips []string
	for _, n := range d.Named {
		skips = append(skips, n.Name[:min(len(n.Name), 3)]+":"+n.Skip)
	}
	if want := []string{"Bad:invalid-name", "a:", "b:", "def:reserved-name", "xxx:name-too-long"}; !reflect.DeepEqual(skips, want) {
		t.Fatalf("Named = %q, want %q", skips, want)
	}
	if !d.Migrate || d.Folded || d.Multiplex.On || d.Multiplex.Warning == nil || d.Dashboard || d.ListErr != nil {
		t.Fatalf("decisions %+v", d)
	}
	// Decide only reads: the migration is the caller's to write.
	if _, err := os.Lstat(filepath.Join(home, StateFile)); !os.IsNotExist(err) {
		t.Fatal("Decide wrote the migrated state")
	}

	env[EnvMultiplex] = "on"
	d = Decide(Options{Home: home, Getenv: getenv})
	if want := []Slot{{"a", false}, {"b", false}, {"default", true}}; !reflect.DeepEqual(d.Slots(), want) {
		t.Fatalf("multiplex: Slots() = %v, want %v", d.Slots(), want)
	}
	if !d.Folded || d.Migrate || !d.Multiplex.On || d.Multiplex.Source != MultiplexFromEnv {
		t.Fatalf("multiplex: %+v", d)
	}

	if d := Decide(Options{Home: home, Getenv: getenv, Argv: []string{"dashboard"}}); !d.Dashboard || d.Slots() != nil {
		t.Fatalf("dashboard: %+v", d)
	}
	if d := Decide(Options{Home: filepath.Join(home, "nope"), Getenv: getenv}); !reflect.DeepEqual(d.Slots(), []Slot{{"default", false}}) {
		t.Fatalf("no HERMES_HOME: %v", d.Slots())
	}
}
