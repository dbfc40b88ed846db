package follow

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
)

func TestDecoderValid(t *testing.T) {
	var b bytes.Buffer
	in := Snapshot{{Name: "default", Autostart: true}, {Name: "alpha", Autostart: false}, {Name: strings.Repeat("a", 247), Autostart: true}}
	if err := Encode(&b, in); err != nil {
		t.Fatal(err)
	}
	if err := Encode(&b, nil); err != nil {
		t.Fatal(err)
	}
	d := NewDecoder(&b, 0)
	s, err := d.Next()
	if err != nil {
		t.Fatal(err)
	}
	if len(s) != 3 || s[0].Name != strings.Repeat("a", 247) || s[1].Name != "alpha" || s[1].Autostart || !s[2].Autostart {
		t.Errorf("decoded %+v", s)
	}
	if s, err := d.Next(); err != nil || len(s) != 0 {
		t.Errorf("empty snapshot: %v %v", s, err)
	}
	if _, err := d.Next(); !errors.Is(err, io.EOF) {
		t.Errorf("end of stream: %v", err)
	}
}

// Every forged stream a compromised reader could send is refused as a
// protocol violation, and never yields a snapshot.
func TestDecoderRefusesForgedStreams(t *testing.T) {
	long := strings.Repeat("a", 248)
	many := "snapshot\n"
	for i := 0; i < 6; i++ {
		many += "p n" + string(rune('a'+i)) + " 0\n"
	}
	many += "end\n"
	for name, stream := range map[string]string{
		"no header":                "p a 1\nend\n",
		"garbage":                  "\x00\x01\x02\n",
		"path traversal":           "snapshot\np ../../etc 1\nend\n",
		"slash":                    "snapshot\np a/b 1\nend\n",
		"dot name":                 "snapshot\np .hidden 1\nend\n",
		"upper case":               "snapshot\np Alpha 1\nend\n",
		"leading dash":             "snapshot\np -x 1\nend\n",
		"space in name":            "snapshot\np a b 1\nend\n",
		"newline games":            "snapshot\np a\n 1\nend\n",
		"name too long for a slot": "snapshot\np " + long + " 1\nend\n",
		"empty name":               "snapshot\np  1\nend\n",
		"bad flag":                 "snapshot\np a 2\nend\n",
		"trailing data":            "snapshot\np a 1 x\nend\n",
		"duplicate":                "snapshot\np a 1\np a 0\nend\n",
		"over the cap":             many,
		"line too long":            "snapshot\np " + strings.Repeat("a", 100000) + " 1\nend\n",
		"unterminated line":        "snapshot\np a 1",
		"unterminated snapshot":    "snapshot\np a 1\n",
		"CR":                       "snapshot\r\np a 1\nend\n",
		"NUL in name":              "snapshot\np a\x00b 1\nend\n",
		"utf-8 lookalike":          "snapshot\np \u0430lpha 1\nend\n",
		"trailing newline in name": "snapshot\np a\n\n1\nend\n",
	} {
		t.Run(name, func(t *testing.T) {
			d := NewDecoder(strings.NewReader(stream), 5)
			s, err := d.Next()
			if !errors.Is(err, ErrProtocol) {
				t.Errorf("got %v, %v; want a protocol violation", s, err)
			}
		})
	}
}

func TestSlotName(t *testing.T) {
	for name, want := range map[string]bool{
		"default": true, "a": true, "a-b_c9": true, strings.Repeat("x", 247): true,
		strings.Repeat("x", 248): false, "": false, "A": false, "_a": false, "a/b": false, "..": false, "a\n": false,
	} {
		if got := SlotName(name); got != want {
			t.Errorf("SlotName(%q) = %v, want %v", name, got, want)
		}
	}
}

// FuzzDecoder: whatever the stream, the decoder never panics, never returns
// a record root would refuse, and never holds more than the cap.
func FuzzDecoder(f *testing.F) {
	f.Add([]byte("snapshot\np a 1\nend\n"))
	f.Add([]byte("snapshot\nend\nsnapshot\np default 0\nend\n"))
	f.Add([]byte("snapshot\np a 1\np a 1\nend\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		d := NewDecoder(bytes.NewReader(data), 4)
		for i := 0; i < 100; i++ {
			s, err := d.Next()
			if err != nil {
				return
			}
			if len(s) > 4 {
				t.Fatalf("%d records over a cap of 4", len(s))
			}
			seen := map[string]bool{}
			for _, r := range s {
				if !SlotName(r.Name) || seen[r.Name] {
					t.Fatalf("accepted record %+v", r)
				}
				seen[r.Name] = true
			}
		}
	})
}

// TestDecoderMaxName: root's copy of the scandir's name limit. The reader
// never sends a longer name (it refuses the profile itself); a record that
// has one is a violation, like an invalid name, so it is never published
// and retried.
func TestDecoderMaxName(t *testing.T) {
	ok := "snapshot\np " + strings.Repeat("a", 243) + " 1\np default 0\nend\n"
	if s, err := NewDecoder(strings.NewReader(ok), 0).WithMaxName(243).Next(); err != nil || len(s) != 2 {
		t.Errorf("243 bytes under a 243-byte limit: %v %v", s, err)
	}
	long := "snapshot\np " + strings.Repeat("a", 244) + " 1\nend\n"
	if _, err := NewDecoder(strings.NewReader(long), 0).WithMaxName(243).Next(); !errors.Is(err, ErrProtocol) {
		t.Errorf("244 bytes under a 243-byte limit: %v, want a protocol violation", err)
	}
	if _, err := NewDecoder(strings.NewReader(long), 0).Next(); err != nil {
		t.Errorf("244 bytes without a limit: %v", err)
	}
}
