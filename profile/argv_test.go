package profile

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// Rule: everything up to the main-wrapper.sh token, then a leading
// entrypoint-dispatch.sh and a leading hermes, is stripped.
func TestRule_ContainerArgvStripped(t *testing.T) {
	tests := []struct {
		name      string
		argv      []string
		stripped  []string
		ok        bool
		dashboard bool
		legacy    bool
	}{
		{"bare token", []string{"main-wrapper.sh", "gateway", "run"}, []string{"gateway", "run"}, true, false, true},
		{"path token (basename match)", []string{"/init", "/opt/hermes/docker/main-wrapper.sh", "hermes", "gateway", "run", "--verbose"},
			[]string{"gateway", "run", "--verbose"}, true, false, true},
		{"dispatch and hermes stripped", []string{"/init", "main-wrapper.sh", "/opt/hermes/docker/entrypoint-dispatch.sh", "/usr/local/bin/hermes", "gateway", "run"},
			[]string{"gateway", "run"}, true, false, true},
		{"only one leading hermes", []string{"main-wrapper.sh", "hermes", "hermes", "gateway", "run"}, []string{"hermes", "gateway", "run"}, true, false, false},
		{"dispatch after hermes is not stripped", []string{"main-wrapper.sh", "hermes", "entrypoint-dispatch.sh", "gateway", "run"},
			[]string{"entrypoint-dispatch.sh", "gateway", "run"}, true, false, false},
		{"no-supervise", []string{"main-wrapper.sh", "gateway", "run", "--no-supervise"}, []string{"gateway", "run", "--no-supervise"}, true, false, false},
		{"gateway without run", []string{"main-wrapper.sh", "gateway", "start"}, []string{"gateway", "start"}, true, false, false},
		{"gateway alone", []string{"main-wrapper.sh", "gateway"}, []string{"gateway"}, true, false, false},
		{"dashboard", []string{"/init", "/opt/hermes/docker/main-wrapper.sh", "hermes", "dashboard", "--port", "9119"},
			[]string{"dashboard", "--port", "9119"}, true, true, false},
		{"nothing after the wrapper", []string{"/init", "main-wrapper.sh"}, []string{}, true, false, false},
		{"similar name is not the token", []string{"main-wrapper.sh.bak", "gateway", "run"}, nil, false, false, false},
		{"suffix is not the token", []string{"/x/my-main-wrapper.sh", "gateway", "run"}, nil, false, false, false},
		{"no wrapper", []string{"hermes", "gateway", "run"}, nil, false, false, false},
		{"first token wins", []string{"main-wrapper.sh", "dashboard", "main-wrapper.sh", "gateway", "run"},
			[]string{"dashboard", "main-wrapper.sh", "gateway", "run"}, true, true, false},
		{"empty", nil, nil, false, false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := StripArgv(tt.argv)
			if ok != tt.ok || (ok && !reflect.DeepEqual(got, tt.stripped)) && !(len(got) == 0 && len(tt.stripped) == 0) {
				t.Fatalf("StripArgv(%q) = %q, %v; want %q, %v", tt.argv, got, ok, tt.stripped, tt.ok)
			}
			if d := IsDashboard(got); d != tt.dashboard {
				t.Errorf("IsDashboard(%q) = %v", got, d)
			}
			if l := IsLegacyGateway(got); l != tt.legacy {
				t.Errorf("IsLegacyGateway(%q) = %v", got, l)
			}
		})
	}
}

func writeProc(t *testing.T, proc string, pid string, argv ...string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Join(proc, pid), 0o755); err != nil {
		t.Fatal(err)
	}
	data := ""
	if len(argv) > 0 {
		data = strings.Join(argv, "\x00") + "\x00"
	}
	if err := os.WriteFile(filepath.Join(proc, pid, "cmdline"), []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
}

// Rule: the container's argv is the first /proc/<pid>/cmdline (PID 1 first)
// that contains a main-wrapper.sh token.
func TestRule_ContainerArgvFirstWrapperProcess(t *testing.T) {
	t.Run("PID 1 first", func(t *testing.T) {
		proc := t.TempDir()
		writeProc(t, proc, "2", "main-wrapper.sh", "dashboard")
		writeProc(t, proc, "1", "/init", "main-wrapper.sh", "gateway", "run")
		if got := ContainerArgv(proc); !reflect.DeepEqual(got, []string{"/init", "main-wrapper.sh", "gateway", "run"}) {
			t.Fatalf("got %q", got)
		}
	})
	t.Run("then numeric order", func(t *testing.T) {
		proc := t.TempDir()
		writeProc(t, proc, "1", "s6-svscan", "-t0", "/run/service")
		writeProc(t, proc, "100", "sh", "main-wrapper.sh", "third")
		writeProc(t, proc, "9", "sh", "/opt/hermes/docker/main-wrapper.sh", "first")
		writeProc(t, proc, "20", "sh", "main-wrapper.sh", "second")
		writeProc(t, proc, "3") // a kernel thread: empty cmdline
		writeProc(t, proc, "self", "sh", "main-wrapper.sh", "not-a-pid")
		writeProc(t, proc, "007", "sh", "main-wrapper.sh", "not-canonical")
		if got := ContainerArgv(proc); !reflect.DeepEqual(got, []string{"sh", "/opt/hermes/docker/main-wrapper.sh", "first"}) {
			t.Fatalf("got %q", got)
		}
	})
	t.Run("none", func(t *testing.T) {
		proc := t.TempDir()
		writeProc(t, proc, "1", "tini", "--", "hermes", "gateway", "run")
		if got := ContainerArgv(proc); got != nil {
			t.Fatalf("got %q", got)
		}
	})
	t.Run("no proc", func(t *testing.T) {
		if got := ContainerArgv(filepath.Join(t.TempDir(), "nope")); got != nil {
			t.Fatalf("got %q", got)
		}
	})
	t.Run("empty arguments kept", func(t *testing.T) {
		proc := t.TempDir()
		writeProc(t, proc, "1", "main-wrapper.sh", "gateway", "", "run")
		if got := ContainerArgv(proc); !reflect.DeepEqual(got, []string{"main-wrapper.sh", "gateway", "", "run"}) {
			t.Fatalf("got %q", got)
		}
	})
}
