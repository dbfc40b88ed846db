package slot

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"syscall"
	"testing"
)

// snapshot describes every entry under dir: type, mode, inode, content.
func snapshot(t *testing.T, dir string) map[string]string {
	t.Helper()
	m := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		var st syscall.Stat_t
		if err := syscall.Lstat(p, &st); err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		v := fmt.Sprintf("mode=%o ino=%d", st.Mode, st.Ino)
		if d.Type().IsRegular() {
			data, _ := os.ReadFile(p)
			v += " data=" + string(data)
		}
		m[rel] = v
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func publish(t *testing.T, scandir string, s Spec) Result {
	t.Helper()
	p, err := NewPublisher(scandir, false)
	if err != nil {
		t.Fatal(err)
	}
	r, err := p.Publish(s)
	if err != nil {
		t.Fatalf("Publish(%+v): %v", s, err)
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	return r
}

func ino(t *testing.T, p string) uint64 {
	t.Helper()
	var st syscall.Stat_t
	if err := syscall.Lstat(p, &st); err != nil {
		t.Fatal(err)
	}
	return st.Ino
}

func TestPublishNew(t *testing.T) {
	scandir := t.TempDir()
	s := Spec{Name: "work", User: "hermes", Down: true}
	r := publish(t, scandir, s)
	if !r.Created || r.Summary() != "created" {
		t.Fatalf("result %+v", r)
	}
	dir := filepath.Join(scandir, "gateway-work")
	var names []string
	for rel, v := range snapshot(t, dir) {
		names = append(names, rel+" "+v[:len("mode=100755")])
	}
	sort.Strings(names)
	want := []string{". mode=40755 ", "down mode=100644", "finish mode=100755", "log mode=40755 ", "log/run mode=100755", "run mode=100755", "type mode=100644"}
	if !reflect.DeepEqual(names, want) {
		t.Fatalf("slot:\n%q\nwant\n%q", names, want)
	}
	for _, f := range Render(s) {
		data, _ := os.ReadFile(filepath.Join(dir, f.Path))
		if string(data) != string(f.Data) {
			t.Errorf("%s content differs", f.Path)
		}
	}
	if ents, _ := os.ReadDir(scandir); len(ents) != 1 {
		t.Fatalf("scandir holds %v, want only the slot", ents)
	}
}

func TestPublishIdempotent(t *testing.T) {
	scandir := t.TempDir()
	for _, down := range []bool{true, false} {
		s := Spec{Name: fmt.Sprint("p", down), User: "hermes", Down: down}
		publish(t, scandir, s)
		before := snapshot(t, scandir)
		if r := publish(t, scandir, s); r.Created || r.Summary() != "unchanged" {
			t.Fatalf("second publish: %+v", r)
		}
		if after := snapshot(t, scandir); !reflect.DeepEqual(before, after) {
			t.Fatalf("second publish changed the tree:\n%v\n%v", before, after)
		}
	}
}

func TestConvergeDownFlip(t *testing.T) {
	scandir := t.TempDir()
	dir := filepath.Join(scandir, "gateway-work")
	s := Spec{Name: "work", User: "hermes", Down: true}
	publish(t, scandir, s)
	// A live supervisor's files: must never be touched.
	for _, d := range []string{"supervise", "event", "log/supervise", "log/event"} {
		os.MkdirAll(filepath.Join(dir, d), 0o700)
		os.WriteFile(filepath.Join(dir, d, "status"), []byte("live"), 0o600)
	}
	syscall.Mkfifo(filepath.Join(dir, "supervise", "control"), 0o600)
	os.WriteFile(filepath.Join(dir, "notification-fd"), []byte("3\n"), 0o644)
	keep := map[string]uint64{}
	for _, f := range []string{"run", "finish", "type", "log/run", "log", ".", "supervise", "supervise/control", "supervise/status", "event", "log/supervise", "log/event", "notification-fd"} {
		keep[f] = ino(t, filepath.Join(dir, f))
	}
	sup := snapshot(t, filepath.Join(dir, "supervise"))

	s.Down = false
	if r := publish(t, scandir, s); !reflect.DeepEqual(r.Changed, []string{"-down"}) {
		t.Fatalf("flip up: %+v", r)
	}
	if _, err := os.Lstat(filepath.Join(dir, "down")); !os.IsNotExist(err) {
		t.Fatalf("down still there: %v", err)
	}
	s.Down = true
	if r := publish(t, scandir, s); !reflect.DeepEqual(r.Changed, []string{"+down"}) {
		t.Fatalf("flip down: %+v", r)
	}
	for f, i := range keep {
		if got := ino(t, filepath.Join(dir, f)); got != i {
			t.Errorf("%s replaced (inode %d -> %d)", f, i, got)
		}
	}
	if !reflect.DeepEqual(sup, snapshot(t, filepath.Join(dir, "supervise"))) {
		t.Error("supervise/ changed")
	}
}

func TestConvergeChangedFiles(t *testing.T) {
	scandir := t.TempDir()
	dir := filepath.Join(scandir, "gateway-work")
	s := Spec{Name: "work", User: "hermes"}
	publish(t, scandir, s)
	os.WriteFile(filepath.Join(dir, "run"), []byte("#!/bin/sh\nexec old\n"), 0o755) // edited
	os.Chmod(filepath.Join(dir, "finish"), 0o644)                                   // mode lost
	os.Remove(filepath.Join(dir, "type"))                                           // missing
	os.Remove(filepath.Join(dir, "log", "run"))
	typeIno := ino(t, filepath.Join(dir, "log"))
	r := publish(t, scandir, s)
	if !reflect.DeepEqual(r.Changed, []string{"type", "run", "finish", "log/run"}) {
		t.Fatalf("changed %q", r.Changed)
	}
	if ino(t, filepath.Join(dir, "log")) != typeIno {
		t.Error("log/ replaced")
	}
	before := snapshot(t, scandir)
	publish(t, scandir, s)
	if !reflect.DeepEqual(before, snapshot(t, scandir)) {
		t.Fatal("not converged after one pass")
	}
	for _, f := range Render(s) {
		fi, _ := os.Stat(filepath.Join(dir, f.Path))
		if fi.Mode().Perm() != f.Mode {
			t.Errorf("%s mode %v", f.Path, fi.Mode())
		}
	}
	// A symlinked run is replaced by a real file, its target untouched.
	target := filepath.Join(t.TempDir(), "target")
	os.WriteFile(target, []byte("keep"), 0o644)
	os.Remove(filepath.Join(dir, "run"))
	os.Symlink(target, filepath.Join(dir, "run"))
	publish(t, scandir, s)
	if fi, _ := os.Lstat(filepath.Join(dir, "run")); !fi.Mode().IsRegular() {
		t.Error("run still a symlink")
	}
	if data, _ := os.ReadFile(target); string(data) != "keep" {
		t.Error("symlink target written")
	}
	// The log/ directory missing: made again.
	os.RemoveAll(filepath.Join(dir, "log"))
	if r := publish(t, scandir, s); !reflect.DeepEqual(r.Changed, []string{"log/", "log/run"}) {
		t.Fatalf("changed %q", r.Changed)
	}
}

func TestPublishStaleTmpAndNotDir(t *testing.T) {
	scandir := t.TempDir()
	tmp := filepath.Join(scandir, ".gw-work.tmp")
	os.MkdirAll(filepath.Join(tmp, "junk", "deeper"), 0o755)
	os.WriteFile(filepath.Join(tmp, "run"), []byte("half"), 0o644)
	if r := publish(t, scandir, Spec{Name: "work", User: "hermes"}); !r.Created {
		t.Fatalf("%+v", r)
	}
	if _, err := os.Lstat(tmp); !os.IsNotExist(err) {
		t.Fatal("stale tmp left")
	}
	if _, err := os.Lstat(filepath.Join(scandir, "gateway-work", "junk")); !os.IsNotExist(err) {
		t.Fatal("stale tmp content published")
	}
	// A symlink or file in the slot's place: left alone, an error.
	other := t.TempDir()
	os.Symlink(other, filepath.Join(scandir, "gateway-link"))
	os.WriteFile(filepath.Join(scandir, "gateway-file"), nil, 0o644)
	p, _ := NewPublisher(scandir, false)
	for _, n := range []string{"link", "file"} {
		if _, err := p.Publish(Spec{Name: n, User: "hermes"}); !errors.Is(err, ErrNotDir) {
			t.Errorf("%s: err %v, want ErrNotDir", n, err)
		}
	}
	if ents, _ := os.ReadDir(other); len(ents) != 0 {
		t.Error("wrote through the symlink")
	}
}

func TestPublishRace(t *testing.T) {
	// The slot appears between the listing and the publish (the hermes CLI
	// registered it): converged in place, not an error.
	scandir := t.TempDir()
	p, _ := NewPublisher(scandir, false)
	os.MkdirAll(filepath.Join(scandir, "gateway-work", "supervise"), 0o700)
	r, err := p.Publish(Spec{Name: "work", User: "hermes", Down: true})
	if err != nil || r.Created {
		t.Fatalf("%+v %v", r, err)
	}
	if _, err := os.Lstat(filepath.Join(scandir, "gateway-work", "supervise")); err != nil {
		t.Fatal("supervise/ lost")
	}
	if _, err := os.Lstat(filepath.Join(scandir, TmpName("work"))); !os.IsNotExist(err) {
		t.Fatal("tmp left")
	}
}

func TestDryRun(t *testing.T) {
	scandir := t.TempDir()
	publish(t, scandir, Spec{Name: "old", User: "hermes"})
	os.Remove(filepath.Join(scandir, "gateway-old", "finish"))
	before := snapshot(t, scandir)
	p, _ := NewPublisher(scandir, true)
	r1, err1 := p.Publish(Spec{Name: "new", User: "hermes"})
	r2, err2 := p.Publish(Spec{Name: "old", User: "hermes", Down: true})
	if err1 != nil || err2 != nil || !r1.Created || r2.Summary() != "updated:finish,+down" {
		t.Fatalf("%+v %v %+v %v", r1, err1, r2, err2)
	}
	if !reflect.DeepEqual(before, snapshot(t, scandir)) {
		t.Fatal("dry run changed the tree")
	}
}

func TestUmaskIgnored(t *testing.T) {
	old := syscall.Umask(0o077)
	defer syscall.Umask(old)
	scandir := t.TempDir()
	publish(t, scandir, Spec{Name: "work", User: "hermes", Down: true})
	for f, want := range map[string]fs.FileMode{"": 0o755, "run": 0o755, "type": 0o644, "down": 0o644, "log": 0o755, "log/run": 0o755} {
		fi, err := os.Lstat(filepath.Join(scandir, "gateway-work", f))
		if err != nil || fi.Mode().Perm() != want {
			t.Errorf("%s: %v %v, want %v", f, fi.Mode(), err, want)
		}
	}
}

// TestPublishSharedFiles: the files that are the same in every slot (type,
// finish, down) are hard links to one inode while publishing; Close leaves
// only the slots; a stale shared directory is replaced; and without one
// (it cannot be made) every file is written.
func TestPublishSharedFiles(t *testing.T) {
	scandir := t.TempDir()
	stale := filepath.Join(scandir, SharedName)
	os.MkdirAll(stale, 0o755)
	os.WriteFile(filepath.Join(stale, TypeFile), []byte("oneshot\n"), 0o644) // a crash left it, with junk
	p, err := NewPublisher(scandir, false)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{"a", "b"} {
		if _, err := p.Publish(Spec{Name: n, User: "hermes", Down: true}); err != nil {
			t.Fatal(err)
		}
	}
	for _, f := range []string{TypeFile, FinishFile, DownFile} {
		a, b := filepath.Join(scandir, "gateway-a", f), filepath.Join(scandir, "gateway-b", f)
		if ino(t, a) != ino(t, b) {
			t.Errorf("%s: not one shared inode", f)
		}
	}
	if data, _ := os.ReadFile(filepath.Join(scandir, "gateway-a", TypeFile)); string(data) != TypeData {
		t.Errorf("type = %q: the stale shared file was used", data)
	}
	for _, f := range []string{RunFile, LogRunFile} {
		if ino(t, filepath.Join(scandir, "gateway-a", f)) == ino(t, filepath.Join(scandir, "gateway-b", f)) {
			t.Errorf("%s shared, but it differs per slot", f)
		}
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	if ents, _ := os.ReadDir(scandir); len(ents) != 2 {
		t.Fatalf("scandir holds %v after Close, want the two slots", ents)
	}
	// A change made in place (chmod) shows in every slot sharing the
	// inode; the next pass converges each of them, by rename.
	os.Chmod(filepath.Join(scandir, "gateway-a", FinishFile), 0o700)
	for _, n := range []string{"a", "b"} {
		if r := publish(t, scandir, Spec{Name: n, User: "hermes", Down: true}); !reflect.DeepEqual(r.Changed, []string{FinishFile}) {
			t.Fatalf("converge %s: %+v", n, r)
		}
		if st := snapshot(t, filepath.Join(scandir, "gateway-"+n)); !strings.HasPrefix(st[FinishFile], "mode=100755") {
			t.Fatalf("%s's finish: %s", n, st[FinishFile])
		}
	}

	// The shared directory cannot be made (something took its name after
	// the listing): nothing shared, every file written, nothing removed.
	scandir = t.TempDir()
	p, _ = NewPublisher(scandir, false)
	os.Symlink("nowhere", filepath.Join(scandir, SharedName))
	if _, err := p.Publish(Spec{Name: "c", User: "hermes", Down: true}); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{TypeFile, FinishFile, DownFile} {
		var st syscall.Stat_t
		if err := syscall.Lstat(filepath.Join(scandir, "gateway-c", f), &st); err != nil || st.Nlink != 1 {
			t.Fatalf("%s: %v, %d links", f, err, st.Nlink)
		}
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(filepath.Join(scandir, SharedName)); err != nil {
		t.Fatal("Close removed what it did not make")
	}
}
