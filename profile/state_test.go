package profile

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"unicode/utf8"
)

func TestParseState(t *testing.T) {
	tests := []struct {
		name, data string
		raw        string // "" = no state
		reason     string
		running    bool
	}{
		{"gateway_state running", `{"gateway_state":"running"}`, "running", "", true},
		{"desired wins", `{"desired_state":"stopped","gateway_state":"running"}`, "stopped", "", false},
		{"desired running wins", `{"desired_state":"running","gateway_state":"stopped"}`, "running", "", true},
		{"desired null falls back", `{"desired_state":null,"gateway_state":"running"}`, "running", "", true},
		{"draining counts as running", `{"gateway_state":"draining"}`, "draining", "", true},
		{"degraded gateway_state counts as running", `{"gateway_state":"degraded"}`, "degraded", "", true},
		{"desired degraded is down", `{"desired_state":"degraded"}`, "degraded", "", false},
		{"desired draining is down", `{"desired_state":"draining","gateway_state":"running"}`, "draining", "", false},
		{"stopped", `{"gateway_state":"stopped"}`, "stopped", "", false},
		{"case matters", `{"gateway_state":"Running"}`, "Running", "", false},
		{"key case matters", `{"Gateway_State":"running"}`, "", NoStateNoKey, false},
		{"spaces matter", `{"gateway_state":" running"}`, " running", "", false},
		{"BOM tolerated", "\xef\xbb\xbf" + `{"gateway_state":"running"}`, "running", "", true},
		{"whitespace around", " \n{\"gateway_state\":\"running\"}\n\n", "running", "", true},
		{"empty file", ``, "", NoStateMalformed, false},
		{"only BOM", "\xef\xbb\xbf", "", NoStateMalformed, false},
		{"malformed", `{"gateway_state":"running"`, "", NoStateMalformed, false},
		{"trailing garbage", `{"gateway_state":"running"} x`, "", NoStateMalformed, false},
		{"array", `["running"]`, "", NoStateNotObject, false},
		{"string", `"running"`, "", NoStateNotObject, false},
		{"number", `42`, "", NoStateNotObject, false},
		{"null", `null`, "", NoStateNotObject, false},
		{"empty object", `{}`, "", NoStateNoKey, false},
		{"both null", `{"desired_state":null,"gateway_state":null}`, "", NoStateNoKey, false},
		{"non-string desired", `{"desired_state":1,"gateway_state":"running"}`, "", NoStateMalformed, false},
		{"object desired", `{"desired_state":{"x":1}}`, "", NoStateMalformed, false},
		{"empty string", `{"gateway_state":""}`, "", NoStateMalformed, false},
		{"other keys ignored", `{"pid":12,"gateway_state":"running","platforms":{}}`, "running", "", true},
		{"duplicate key: last wins", `{"gateway_state":"stopped","gateway_state":"running"}`, "running", "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st := ParseState([]byte(tt.data))
			if st.Raw != tt.raw || st.Reason != tt.reason || st.Running() != tt.running {
				t.Fatalf("ParseState(%q) = %+v running=%v, want raw %q reason %q running %v",
					tt.data, st, st.Running(), tt.raw, tt.reason, tt.running)
			}
			if st.Present() != (tt.raw != "") {
				t.Errorf("Present() = %v", st.Present())
			}
		})
	}
}

func TestReadState(t *testing.T) {
	write := func(dir, data string) {
		if err := os.WriteFile(filepath.Join(dir, StateFile), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		name    string
		setup   func(t *testing.T, dir string)
		raw     string
		reason  string
		running bool
	}{
		{"running", func(t *testing.T, d string) { write(d, `{"gateway_state":"running"}`) }, "running", "", true},
		{"missing", func(t *testing.T, d string) {}, "", NoStateMissing, false},
		{"directory", func(t *testing.T, d string) { os.Mkdir(filepath.Join(d, StateFile), 0o755) }, "", NoStateNotFile, false},
		{"symlink to a good file", func(t *testing.T, d string) {
			write(d, `{"gateway_state":"running"}`)
			os.Rename(filepath.Join(d, StateFile), filepath.Join(d, "real.json"))
			os.Symlink("real.json", filepath.Join(d, StateFile))
		}, "running", "", true},
		{"dangling symlink", func(t *testing.T, d string) { os.Symlink("nowhere", filepath.Join(d, StateFile)) }, "", NoStateMissing, false},
		{"symlink loop", func(t *testing.T, d string) { os.Symlink(StateFile, filepath.Join(d, StateFile)) }, "", NoStateUnread, false},
		{"fifo does not block", func(t *testing.T, d string) { syscall.Mkfifo(filepath.Join(d, StateFile), 0o644) }, "", NoStateNotFile, false},
		{"huge", func(t *testing.T, d string) {
			write(d, `{"gateway_state":"running","pad":"`+strings.Repeat("x", MaxStateSize)+`"}`)
		}, "", NoStateTooLarge, false},
		{"exactly the cap", func(t *testing.T, d string) {
			head := `{"gateway_state":"running","pad":"`
			write(d, head+strings.Repeat("x", MaxStateSize-len(head)-2)+`"}`)
		}, "running", "", true},
		{"empty", func(t *testing.T, d string) { write(d, "") }, "", NoStateMalformed, false},
		{"BOM", func(t *testing.T, d string) { write(d, "\ufeff{\"desired_state\":\"running\"}") }, "running", "", true},
		{"non-object", func(t *testing.T, d string) { write(d, `[1,2]`) }, "", NoStateNotObject, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			tt.setup(t, dir)
			st := ReadState(dir)
			if st.Raw != tt.raw || st.Reason != tt.reason || st.Running() != tt.running {
				t.Fatalf("ReadState = %+v, want raw %q reason %q running %v", st, tt.raw, tt.reason, tt.running)
			}
		})
	}
}

func TestPriorExit(t *testing.T) {
	tests := []struct {
		name, data string // data "" = no file
		want       string
	}{
		{"exited", `{"phase":"exited"}`, ExitClean},
		{"running", `{"phase":"running","pid":3}`, ExitUnclean},
		{"starting", `{"phase":"starting"}`, ExitUnknown},
		{"missing", "", ExitUnknown},
		{"malformed", `{"phase":`, ExitUnknown},
		{"non-string", `{"phase":1}`, ExitUnknown},
		{"BOM", "\ufeff{\"phase\":\"exited\"}", ExitClean},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			if tt.data != "" {
				os.MkdirAll(filepath.Join(dir, "state"), 0o755)
				if err := os.WriteFile(filepath.Join(dir, LifecycleFile), []byte(tt.data), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			if got := PriorExit(dir); got != tt.want {
				t.Fatalf("PriorExit = %q, want %q", got, tt.want)
			}
		})
	}
}

// FuzzParseState checks invariants on any input: no panic; a state is
// either present (with no reason) or absent (with a reason); a BOM never
// changes the answer; running iff the decided state is running, or, from
// gateway_state, draining or degraded.
func FuzzParseState(f *testing.F) {
	for _, s := range []string{
		`{"gateway_state":"running"}`, `{"desired_state":"stopped","gateway_state":"running"}`,
		`{"desired_state":null,"gateway_state":"draining"}`, `null`, `[]`, `"x"`, ``, `{`, "\ufeff{}",
		`{"desired_state":1}`, `{"gateway_state":"degraded","x":[1,{"y":null}]}`, "{\"gateway_state\":\"\xff\"}",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		st := ParseState(data)
		if st.Present() == (st.Reason != "") {
			t.Fatalf("state %+v: present and reason must exclude each other", st)
		}
		if st.Present() && !utf8.ValidString(st.Raw) {
			t.Fatalf("state %q is not valid UTF-8", st.Raw)
		}
		wantRunning := st.Raw == "running" || st.Key == KeyGateway && (st.Raw == "draining" || st.Raw == "degraded")
		if st.Running() != wantRunning {
			t.Fatalf("state %+v: Running() = %v", st, st.Running())
		}
		if bom := ParseState(append([]byte("\xef\xbb\xbf"), data...)); bom != st && !strings.HasPrefix(string(data), "\xef\xbb\xbf") {
			t.Fatalf("a BOM changed the answer: %+v vs %+v", bom, st)
		}
	})
}
