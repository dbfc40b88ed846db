package s6

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"testing/fstest"
)

// denyFS answers like a /proc whose /proc/1/comm the caller may not read.
// It implements only Open, so fs.ReadFile and fs.Stat must go through it.
type denyFS struct{ m fstest.MapFS }

func (d denyFS) Open(name string) (fs.File, error) {
	if name == "proc/1/comm" {
		return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrPermission}
	}
	return d.m.Open(name)
}

func TestDetect(t *testing.T) {
	s6comm := &fstest.MapFile{Data: []byte("s6-svscan\n")}
	basedir := &fstest.MapFile{Mode: fs.ModeDir | 0o755}
	tests := []struct {
		name    string
		fsys    fs.FS
		running bool
		reason  string
	}{
		{"both signals", fstest.MapFS{"proc/1/comm": s6comm, "run/s6/basedir": basedir}, true, ""},
		{"comm is tini", fstest.MapFS{"proc/1/comm": {Data: []byte("tini\n")}, "run/s6/basedir": basedir}, false, `"tini"`},
		{"basedir missing", fstest.MapFS{"proc/1/comm": s6comm}, false, "/run/s6/basedir"},
		{"basedir is a file", fstest.MapFS{"proc/1/comm": s6comm, "run/s6/basedir": {Data: []byte("x")}}, false, "not a directory"},
		{"comm permission denied", denyFS{fstest.MapFS{"proc/1/comm": s6comm, "run/s6/basedir": basedir}}, false, "permission denied"},
		{"no /proc at all", fstest.MapFS{"run/s6/basedir": basedir}, false, "/proc/1/comm"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := Detect(tt.fsys)
			if d.Running != tt.running {
				t.Fatalf("Running = %v, want %v (reason %q)", d.Running, tt.running, d.Reason)
			}
			if !strings.Contains(d.Reason, tt.reason) {
				t.Errorf("Reason = %q, want it to mention %q", d.Reason, tt.reason)
			}
		})
	}
}

func TestRescanNoReader(t *testing.T) {
	dir := t.TempDir()
	if err := os.Mkdir(filepath.Join(dir, ControlDir), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mkfifo(filepath.Join(dir, ControlFIFO), 0o600); err != nil {
		t.Fatal(err)
	}
	err := Rescan(dir)
	if !errors.Is(err, ErrNotRunning) {
		t.Fatalf("want ErrNotRunning, got %v", err)
	}
	var pe *os.PathError
	if !errors.As(err, &pe) || !errors.Is(err, syscall.ENXIO) {
		t.Errorf("want *os.PathError keeping ENXIO, got %#v", err)
	}
}

func TestRescanMissing(t *testing.T) {
	if err := Rescan(t.TempDir()); !errors.Is(err, ErrNotRunning) {
		t.Fatalf("want ErrNotRunning, got %v", err)
	}
}

func TestRescanRefusesSymlink(t *testing.T) {
	dir := t.TempDir()
	os.Mkdir(filepath.Join(dir, ControlDir), 0o755)
	target := filepath.Join(dir, "elsewhere")
	if err := syscall.Mkfifo(target, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(target, filepath.Join(dir, ControlFIFO)); err != nil {
		t.Fatal(err)
	}
	if err := Rescan(dir); !errors.Is(err, syscall.ELOOP) {
		t.Fatalf("want ELOOP, got %v", err)
	}
}

func TestRescanWritesA(t *testing.T) {
	dir := t.TempDir()
	os.Mkdir(filepath.Join(dir, ControlDir), 0o755)
	p := filepath.Join(dir, ControlFIFO)
	if err := syscall.Mkfifo(p, 0o600); err != nil {
		t.Fatal(err)
	}
	r, err := os.OpenFile(p, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if err := Rescan(dir); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 8)
	n, _ := r.Read(buf)
	if string(buf[:n]) != "a" {
		t.Fatalf("read %q, want \"a\"", buf[:n])
	}
}
