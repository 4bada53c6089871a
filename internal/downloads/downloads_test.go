package downloads

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// build compiles testdata/fakebinary, a stand-in that answers `version -o
// json` like cameleer, with version as its version.
func build(t *testing.T, dir, version string) string {
	t.Helper()
	out := filepath.Join(dir, "cameleer-"+version)
	cmd := exec.Command("go", "build", "-o", out, "-ldflags", "-X main.version="+version, "./testdata/fakebinary")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, b)
	}
	return out
}

func sum(t *testing.T, path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}

func TestDescribesWhatThePathHolds(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a binary")
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "cameleer")
	if err := os.Rename(build(t, dir, "1.0.0"), path); err != nil {
		t.Fatal(err)
	}
	s, err := New(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	f, bin, err := s.Open(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	served, _ := io.ReadAll(f)
	f.Close()
	if bin.Version != "1.0.0" || bin.Commit != "abc" || bin.Arch != runtime.GOARCH || bin.SHA256 != sum(t, path) || bin.Size != int64(len(served)) {
		t.Errorf("described %+v", bin)
	}

	// A new version put in place (renamed over it) is what is served next,
	// described anew; the stamp, not a timer, says it changed.
	two := build(t, dir, "2.0.0")
	if err := os.Rename(two, path); err != nil {
		t.Fatal(err)
	}
	f, bin2, err := s.Open(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	f.Close()
	if bin2.Version != "2.0.0" || bin2.SHA256 != sum(t, path) || bin2.SHA256 == bin.SHA256 {
		t.Errorf("after the swap: %+v, before %+v", bin2, bin)
	}
}

func TestRefusesWhatIsNoBinary(t *testing.T) {
	dir := t.TempDir()
	script := filepath.Join(dir, "cameleer")
	os.WriteFile(script, []byte("#!/bin/sh\necho '{\"version\":\"1\"}'\n"), 0o755)
	for name, c := range map[string]struct{ path, want string }{
		"a script":   {script, "not an executable"},
		"missing":    {filepath.Join(dir, "nothing"), "no such file"},
		"no version": {"/bin/true", "version -o json"},
	} {
		if _, err := New(context.Background(), c.path); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want %q", name, err, c.want)
		}
	}
	s, err := New(context.Background(), "")
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.Open(context.Background()); !errors.Is(err, ErrNone) {
		t.Errorf("no binary: %v", err)
	}
}
