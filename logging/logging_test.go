package logging

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"github.com/rs/zerolog"
)

func TestParseLevel(t *testing.T) {
	tests := []struct {
		in      string
		want    zerolog.Level
		wantErr bool
	}{
		{"", zerolog.InfoLevel, false},
		{"  ", zerolog.InfoLevel, false},
		{"debug", zerolog.DebugLevel, false},
		{"WARN", zerolog.WarnLevel, false},
		{"disabled", zerolog.Disabled, false},
		{"loud", zerolog.InfoLevel, true},
	}
	for _, tt := range tests {
		got, err := ParseLevel(tt.in)
		if (err != nil) != tt.wantErr || got != tt.want {
			t.Errorf("ParseLevel(%q) = %v, %v; want %v, err=%v", tt.in, got, err, tt.want, tt.wantErr)
		}
	}
}

func TestNewJSONOneEventPerLine(t *testing.T) {
	var buf bytes.Buffer
	log, err := New(&buf, "json", "")
	if err != nil {
		t.Fatal(err)
	}
	log.Debug().Msg("hidden at info")
	log.Info().Str("path", "/run/service").Msg("first")
	log.Warn().Str("profile", "a\nb").Msg("second")
	lines := strings.Split(strings.TrimSuffix(buf.String(), "\n"), "\n")
	if len(lines) != 2 {
		t.Fatalf("want 2 lines, got %d: %q", len(lines), buf.String())
	}
	for _, l := range lines {
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("not JSON: %q: %v", l, err)
		}
		for _, k := range []string{"level", "time", "message"} {
			if _, ok := m[k]; !ok {
				t.Errorf("line %q lacks %q", l, k)
			}
		}
	}
}

func TestNewRejectsUnknownFormat(t *testing.T) {
	if _, err := New(&bytes.Buffer{}, "xml", ""); err == nil {
		t.Fatal("want error for format xml")
	}
}
