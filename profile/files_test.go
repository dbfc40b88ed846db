package profile

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"
)

func TestRemoveStale(t *testing.T) {
	dir := t.TempDir()
	for _, f := range []string{"gateway.pid", "processes.json", "SOUL.md", "gateway_state.json"} {
		os.WriteFile(filepath.Join(dir, f), []byte("x"), 0o644)
	}
	removed, err := RemoveStale(dir)
	if err != nil || !reflect.DeepEqual(removed, []string{"gateway.pid", "processes.json"}) {
		t.Fatalf("RemoveStale = %q, %v", removed, err)
	}
	for f, want := range map[string]bool{"gateway.pid": false, "processes.json": false, "SOUL.md": true, "gateway_state.json": true} {
		if _, err := os.Lstat(filepath.Join(dir, f)); (err == nil) != want {
			t.Errorf("%s exists = %v, want %v", f, err == nil, want)
		}
	}
	// Again: nothing to do, no error.
	if removed, err := RemoveStale(dir); err != nil || len(removed) != 0 {
		t.Fatalf("second RemoveStale = %q, %v", removed, err)
	}
	// A symlink is removed, never its target.
	target := filepath.Join(dir, "target")
	os.WriteFile(target, []byte("keep"), 0o644)
	os.Symlink(target, filepath.Join(dir, "gateway.pid"))
	if removed, err := RemoveStale(dir); err != nil || len(removed) != 1 {
		t.Fatalf("RemoveStale(symlink) = %q, %v", removed, err)
	}
	if _, err := os.Stat(target); err != nil {
		t.Fatalf("symlink target removed: %v", err)
	}
	// A directory cannot be unlinked: reported, not fatal.
	os.Mkdir(filepath.Join(dir, "processes.json"), 0o755)
	if _, err := RemoveStale(dir); err == nil {
		t.Fatal("want an error for a directory named processes.json")
	}
}

func TestWriteMigratedState(t *testing.T) {
	dir := t.TempDir()
	now := time.Unix(1700000000, 0)
	if !StateMissing(dir) {
		t.Fatal("StateMissing on an empty dir = false")
	}
	if err := WriteMigratedState(dir, now); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(filepath.Join(dir, StateFile))
	if err != nil {
		t.Fatal(err)
	}
	var obj map[string]any
	if err := json.Unmarshal(data, &obj); err != nil {
		t.Fatalf("not JSON: %v: %s", err, data)
	}
	want := map[string]any{"gateway_state": "running", "desired_state": "running", "timestamp": float64(1700000000), "migrated_from": "legacy-container-cmd"}
	if !reflect.DeepEqual(obj, want) {
		t.Fatalf("state = %v, want %v", obj, want)
	}
	if st := ReadState(dir); !st.Running() {
		t.Fatalf("ReadState after migration = %+v", st)
	}
	if StateMissing(dir) {
		t.Fatal("StateMissing after writing = true")
	}
	// Never replaces an existing file.
	os.WriteFile(filepath.Join(dir, StateFile), []byte(`{"gateway_state":"stopped"}`), 0o644)
	if err := WriteMigratedState(dir, now); !errors.Is(err, os.ErrExist) {
		t.Fatalf("second WriteMigratedState: %v, want EEXIST", err)
	}
	if st := ReadState(dir); st.Raw != "stopped" {
		t.Fatalf("existing state replaced: %+v", st)
	}
	ents, _ := os.ReadDir(dir)
	if len(ents) != 1 {
		t.Fatalf("temporary file left: %v", ents)
	}
	// A dangling symlink exists: no migration over it.
	d2 := t.TempDir()
	os.Symlink("nowhere", filepath.Join(d2, StateFile))
	if StateMissing(d2) {
		t.Fatal("StateMissing(dangling symlink) = true")
	}
}

func TestCandidates(t *testing.T) {
	home := t.TempDir()
	p := filepath.Join(home, ProfilesDir)
	mk := func(name string, soul bool) {
		os.MkdirAll(filepath.Join(p, name), 0o755)
		if soul {
			os.WriteFile(filepath.Join(p, name, SoulFile), nil, 0o644)
		}
	}
	mk("work", true)
	mk("nosoul", false)
	mk("Bad Name", true)
	mk("default", true)
	os.WriteFile(filepath.Join(p, "file"), nil, 0o644)
	other := t.TempDir()
	os.WriteFile(filepath.Join(other, SoulFile), nil, 0o644)
	os.Symlink(other, filepath.Join(p, "linked"))
	os.Symlink("nowhere", filepath.Join(p, "dangling"))
	os.Symlink(filepath.Join(p, "file"), filepath.Join(p, "tofile"))

	got, err := Candidates(home)
	if err != nil {
		t.Fatal(err)
	}
	var summary []string
	for _, c := range got {
		s := c.Name
		if ok, err := IsProfile(c.Dir); err != nil {
			s += ":err"
		} else if ok {
			s += ":profile"
		}
		summary = append(summary, s)
	}
	// Plain files are not even candidates; symlinks are, whatever they
	// point to (IsProfile decides).
	want := []string{"Bad Name:profile", "dangling", "default:profile", "linked:profile", "nosoul", "tofile", "work:profile"}
	if !reflect.DeepEqual(summary, want) {
		t.Fatalf("candidates = %q, want %q", summary, want)
	}
	if got, err := Candidates(t.TempDir()); err != nil || len(got) != 0 {
		t.Fatalf("no profiles dir: %v, %v", got, err)
	}
	// profiles is a file: an error, not a panic.
	h2 := t.TempDir()
	os.WriteFile(filepath.Join(h2, ProfilesDir), nil, 0o644)
	if _, err := Candidates(h2); err == nil {
		t.Fatal("want an error when profiles is a file")
	}
}
