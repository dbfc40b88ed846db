package profile

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

func TestParseMultiplexConfig(t *testing.T) {
	tests := []struct {
		name, data string
		on         bool
		malformed  bool
	}{
		{"bool true", "gateway:\n  multiplex_profiles: true\n", true, false},
		{"bool false", "gateway:\n  multiplex_profiles: false\n", false, false},
		{"tagged bool", "gateway:\n  multiplex_profiles: !!bool true\n", true, false},
		{"string on", "gateway: {multiplex_profiles: 'on'}", true, false},
		{"unquoted yes is a string", "gateway: {multiplex_profiles: yes}", true, false},
		{"unquoted no", "gateway: {multiplex_profiles: no}", false, false},
		{"string with blanks", "gateway: {multiplex_profiles: \" 1 \"}", true, false},
		{"string other", "gateway: {multiplex_profiles: enabled}", false, false},
		{"null", "gateway: {multiplex_profiles: ~}", false, false},
		{"absent", "gateway: {}", false, false},
		{"gateway null", "gateway:\n", false, false},
		{"empty", "", false, false},
		{"comment only", "# x\n", false, false},
		{"explicit document", "---\ngateway: {multiplex_profiles: true}\n...\n", true, false},
		{"other keys", "model: {default: x}\nplatforms: [a, b]\ngateway: {multiplex_profiles: true, port: 1}\n", true, false},
		{"int", "gateway: {multiplex_profiles: 1}", false, true},
		{"float", "gateway: {multiplex_profiles: 1.0}", false, true},
		{"list", "gateway: {multiplex_profiles: [true]}", false, true},
		{"map", "gateway: {multiplex_profiles: {on: true}}", false, true},
		{"gateway scalar", "gateway: on\n", false, true},
		{"gateway list", "gateway: [multiplex_profiles]\n", false, true},
		{"top-level scalar", "true\n", false, true},
		{"top-level list", "- a\n", false, true},
		{"syntax", "gateway: {\n", false, true},
		{"duplicate key", "gateway: {multiplex_profiles: true}\ngateway: {}\n", false, true},
		{"two documents", "gateway: {multiplex_profiles: true}\n---\n{}\n", false, true},
		{"tab indentation", "gateway:\n\tmultiplex_profiles: true\n", false, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			on, err := ParseMultiplexConfig([]byte(tt.data))
			if on != tt.on || (err != nil) != tt.malformed {
				t.Fatalf("ParseMultiplexConfig(%q) = %v, %v; want %v, malformed %v", tt.data, on, err, tt.on, tt.malformed)
			}
			if err != nil && !errors.Is(err, ErrConfigMalformed) {
				t.Fatalf("error %v does not wrap ErrConfigMalformed", err)
			}
		})
	}
}

func TestReadMultiplex(t *testing.T) {
	env := func(v string) func(string) string {
		return func(k string) string {
			if k == EnvMultiplex {
				return v
			}
			return ""
		}
	}
	home := t.TempDir()
	if m := ReadMultiplex(home, env("")); m.On || m.Source != MultiplexFromConfig || m.Warning == nil ||
		!strings.Contains(m.Warning.Error(), "config.yaml: missing") {
		t.Fatalf("no config: %+v", m)
	}
	if m := ReadMultiplex(home, env("On")); !m.On || m.Source != MultiplexFromEnv || m.Warning != nil {
		t.Fatalf("env On: %+v", m)
	}
	os.WriteFile(filepath.Join(home, ConfigFile), []byte("gateway: {multiplex_profiles: true}\n"), 0o644)
	if m := ReadMultiplex(home, env("")); !m.On || m.Warning != nil {
		t.Fatalf("config true: %+v", m)
	}
	if m := ReadMultiplex(home, env("no")); m.On || m.Source != MultiplexFromEnv {
		t.Fatalf("env no over config true: %+v", m)
	}
	os.WriteFile(filepath.Join(home, ConfigFile), []byte("gateway: ["), 0o644)
	if m := ReadMultiplex(home, env("")); m.On || m.Warning == nil || !errors.Is(m.Warning, ErrConfigMalformed) {
		t.Fatalf("malformed: %+v", m)
	}
}

// FuzzParseMultiplexConfig: any bytes give an answer without a panic, and
// "on" only without an error; and any string written as the value (YAML-
// encoded by the library, so quoted as needed) reads back as Truthy says.
func FuzzParseMultiplexConfig(f *testing.F) {
	for _, s := range []string{
		"gateway:\n  multiplex_profiles: true\n", "gateway: {multiplex_profiles: 'on'}", "", "---\n...\n",
		"gateway: [", "a: &a [*a]", "gateway: !!binary aGk=", "\ufeffgateway: {multiplex_profiles: yes}",
		"gateway: {multiplex_profiles: 1}\n---\n", "x: &x {a: *x}\ngateway: *x",
	} {
		f.Add([]byte(s), "on")
	}
	f.Add([]byte("gateway: {}"), " TRUE\n")
	f.Add([]byte("{"), "0")
	f.Fuzz(func(t *testing.T, data []byte, value string) {
		on, err := ParseMultiplexConfig(data)
		if on && err != nil {
			t.Fatalf("on with an error: %v", err)
		}
		if err != nil && !errors.Is(err, ErrConfigMalformed) {
			t.Fatalf("error %v does not wrap ErrConfigMalformed", err)
		}
		doc, err := yaml.Marshal(map[string]any{"gateway": map[string]any{"multiplex_profiles": value}})
		if err != nil {
			t.Skip() // a string the encoder refuses (invalid UTF-8)
		}
		got, err := ParseMultiplexConfig(doc)
		if err != nil || got != Truthy(value) {
			t.Fatalf("value %q as %q: %v, %v; want %v", value, doc, got, err, Truthy(value))
		}
	})
}
