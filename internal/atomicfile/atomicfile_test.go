package atomicfile

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
)

func TestWriteFileReplacesWhole(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "admin.token")
	if wrote, err := WriteFile(p, []byte("one"), 0o600); err != nil || !wrote {
		t.Fatalf("first write: %v %v", wrote, err)
	}
	if wrote, err := WriteFile(p, []byte("one"), 0o600); err != nil || wrote {
		t.Fatalf("the same bytes again: wrote %v, %v", wrote, err)
	}
	if wrote, err := WriteFile(p, []byte("two"), 0o600); err != nil || !wrote {
		t.Fatalf("new bytes: %v %v", wrote, err)
	}
	b, _ := os.ReadFile(p)
	fi, _ := os.Stat(p)
	if string(b) != "two" || fi.Mode().Perm() != 0o600 {
		t.Errorf("file holds %q, mode %v", b, fi.Mode().Perm())
	}
	if n, _ := RemoveTemps(dir); n != 0 {
		t.Errorf("a finished write left %d temporary files", n)
	}
}

// TestRemoveTemps: what a process killed mid-write leaves is removed at the
// next start, and nothing else is.
func TestRemoveTemps(t *testing.T) {
	dir := t.TempDir()
	keep := []string{"state.db", "admin.token", ".hidden", "notes.tmp-1"}
	for _, name := range keep {
		os.WriteFile(filepath.Join(dir, name), []byte("x"), 0o600)
	}
	for _, name := range []string{"secrets.key", "upload", "nested"} {
		f, err := os.CreateTemp(dir, TempPattern(name))
		if err != nil {
			t.Fatal(err)
		}
		f.Close()
	}
	os.Mkdir(filepath.Join(dir, ".dir.tmp-1"), 0o700) // not a file: not ours
	n, err := RemoveTemps(dir)
	if err != nil || n != 3 {
		t.Fatalf("removed %d: %v, want 3", n, err)
	}
	ents, _ := os.ReadDir(dir)
	var left []string
	for _, e := range ents {
		left = append(left, e.Name())
	}
	want := append(keep, ".dir.tmp-1")
	slices.Sort(want)
	if !slices.Equal(left, want) {
		t.Errorf("left %v, want %v", left, want)
	}
	if n, err := RemoveTemps(filepath.Join(dir, "missing")); n != 0 || err != nil {
		t.Errorf("a missing dir: %d %v", n, err)
	}
}
