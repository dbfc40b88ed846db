package profile

import (
	"regexp"
	"strings"
	"testing"
)

func TestValidName(t *testing.T) {
	tests := []struct {
		name string
		ok   bool
	}{
		{"a", true},
		{"0", true},
		{"work", true},
		{"my-profile_2", true},
		{"a-", true},
		{"a_", true},
		{strings.Repeat("a", 251), true},
		{strings.Repeat("a", 252), false},
		{"", false},
		{"-a", false},
		{"_a", false},
		{"Work", false},
		{"wörk", false},
		{"a b", false},
		{"a.b", false},
		{"a/b", false},
		{".hidden", false},
		{"a\n", false}, // the regexp-$ trap: no trailing newline
		{"a\x00", false},
		{"\na", false},
	}
	for _, tt := range tests {
		if got := ValidName(tt.name); got != tt.ok {
			t.Errorf("ValidName(%q) = %v, want %v", tt.name, got, tt.ok)
		}
	}
}

// Rule: truthiness is hermes's, decided in one place (Truthy).
func TestRule_TruthinessIsHermes(t *testing.T) {
	for v, want := range map[string]bool{
		"1": true, "true": true, "TRUE": true, "Yes": true, " yes ": true,
		"on": true, "ON": true, "\ton\n": true,
		"": false, "0": false, "false": false, "no": false, "off": false, "y": false, "2": false, "o n": false,
	} {
		if got := Truthy(v); got != want {
			t.Errorf("Truthy(%q) = %v, want %v", v, got, want)
		}
	}
}

// validRef is the contract's rule written as a regexp, with \z (not $,
// which in Go's regexp also only matches at the end without (?m), but the
// point is to be unambiguous).
var validRef = regexp.MustCompile(`\A[a-z0-9][a-z0-9_-]*\z`)

func FuzzValidName(f *testing.F) {
	for _, s := range []string{"a", "work", "my-profile_2", "", "-a", "A", "a\n", "a b", "défaut",
		strings.Repeat("z", 251), strings.Repeat("z", 252), "default", ".gateway-x.tmp"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		want := len(s) <= MaxNameLen && validRef.MatchString(s)
		if got := ValidName(s); got != want {
			t.Fatalf("ValidName(%q) = %v, reference says %v", s, got, want)
		}
	})
}
