package payload

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// makeExe writes a stand-in executable with a payload of the given files
// appended, and returns its path and manifest.
func makeExe(t *testing.T, files map[string]string) (string, Manifest) {
	t.Helper()
	root := t.TempDir()
	for p, c := range files {
		full := filepath.Join(root, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(c), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink("kube", filepath.Join(root, "bin", "kubectl")); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	buf.WriteString("\x7fELF not really an executable")
	m, err := Pack(&buf, root, []Part{
		{Name: "kubernetes", Version: "v1.34.3", Kind: KindBinary, Files: []string{"bin/kube"}},
		{Name: "pause", Version: "3.10.1", Kind: KindImage, Digest: "sha256:abc", Files: []string{"images/pause.tar"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	exe := filepath.Join(t.TempDir(), "cameleer")
	if err := os.WriteFile(exe, buf.Bytes(), 0o755); err != nil {
		t.Fatal(err)
	}
	return exe, m
}

var testFiles = map[string]string{
	"bin/kube":         strings.Repeat("kube", 1000),
	"images/pause.tar": "pause image",
}

func TestPackIsReproducible(t *testing.T) {
	a, _ := makeExe(t, testFiles)
	b, _ := makeExe(t, testFiles)
	ba, _ := os.ReadFile(a)
	bb, _ := os.ReadFile(b)
	if !bytes.Equal(ba, bb) {
		t.Fatal("packing the same files twice gave different bytes")
	}
}

func TestOpenReadsManifest(t *testing.T) {
	exe, m := makeExe(t, testFiles)
	p, err := Open(exe)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if p.Manifest.SHA256 != m.SHA256 || len(p.Manifest.Parts) != 2 || len(p.Manifest.Files) != 3 {
		t.Fatalf("manifest = %+v", p.Manifest)
	}
	kube := p.Manifest.Parts[0]
	if kube.Digest != "sha256:"+p.Manifest.Files[0].SHA256 {
		t.Fatalf("binary digest %q is not the hash of %s", kube.Digest, p.Manifest.Files[0].Path)
	}
}

func TestPackRejectsMissingPartFile(t *testing.T) {
	var buf bytes.Buffer
	_, err := Pack(&buf, t.TempDir(), []Part{{Name: "x", Kind: KindBinary, Files: []string{"bin/x"}}})
	if err == nil || !strings.Contains(err.Error(), "bin/x") {
		t.Fatalf("err = %v", err)
	}
}

func TestOpenWithoutPayload(t *testing.T) {
	exe := filepath.Join(t.TempDir(), "plain")
	os.WriteFile(exe, []byte("\x7fELF plain go build output, long enough for a trailer"), 0o755)
	if _, err := Open(exe); !errors.Is(err, ErrNoPayload) {
		t.Fatalf("err = %v, want ErrNoPayload", err)
	}
}

func TestExtract(t *testing.T) {
	exe, m := makeExe(t, testFiles)
	p, err := Open(exe)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	data := t.TempDir()
	dir, err := p.Extract(context.Background(), data)
	if err != nil {
		t.Fatal(err)
	}
	if dir != filepath.Join(data, "bin", m.SHA256) {
		t.Fatalf("dir = %s", dir)
	}
	for name, want := range testFiles {
		got, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil || string(got) != want {
			t.Fatalf("%s: %q, %v", name, got, err)
		}
	}
	if fi, err := os.Stat(filepath.Join(dir, "bin/kube")); err != nil || fi.Mode().Perm() != 0o755 {
		t.Fatalf("bin/kube mode: %v %v", fi.Mode(), err)
	}
	if l, _ := os.Readlink(filepath.Join(dir, "bin/kubectl")); l != "kube" {
		t.Fatalf("symlink kubectl -> %q", l)
	}
	if l, _ := os.Readlink(filepath.Join(data, "bin", "current")); l != m.SHA256 {
		t.Fatalf("current -> %q", l)
	}

	// A second extraction leaves the files alone.
	before, _ := os.Stat(filepath.Join(dir, "bin/kube"))
	if _, err := p.Extract(context.Background(), data); err != nil {
		t.Fatal(err)
	}
	after, _ := os.Stat(filepath.Join(dir, "bin/kube"))
	if !os.SameFile(before, after) {
		t.Fatal("unchanged payload was extracted again")
	}

	// A damaged file is noticed and the payload extracted again.
	if err := os.Truncate(filepath.Join(dir, "bin/kube"), 10); err != nil {
		t.Fatal(err)
	}
	if _, err := p.Extract(context.Background(), data); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(filepath.Join(dir, "bin/kube")); string(got) != testFiles["bin/kube"] {
		t.Fatal("damaged file was not restored")
	}
}

func TestExtractKeepsPrevious(t *testing.T) {
	data := t.TempDir()
	exeA, a := makeExe(t, testFiles)
	exeB, b := makeExe(t, map[string]string{"bin/kube": "new", "images/pause.tar": "new pause"})
	for _, exe := range []string{exeA, exeB} {
		p, err := Open(exe)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := p.Extract(context.Background(), data); err != nil {
			t.Fatal(err)
		}
		p.Close()
	}
	if l, _ := os.Readlink(filepath.Join(data, "bin", "current")); l != b.SHA256 {
		t.Fatalf("current -> %q, want %s", l, b.SHA256)
	}
	if l, _ := os.Readlink(filepath.Join(data, "bin", "previous")); l != a.SHA256 {
		t.Fatalf("previous -> %q, want %s", l, a.SHA256)
	}
}

// A corrupted binary is refused, and leaves neither the final directory nor a
// temporary one behind.
func TestExtractCorruptData(t *testing.T) {
	exe, m := makeExe(t, testFiles)
	b, _ := os.ReadFile(exe)
	i := bytes.Index(b, []byte("ELF not really an executable")) + len("ELF not really an executable") + 40
	b[i] ^= 0xff
	os.WriteFile(exe, b, 0o755)
	p, err := Open(exe)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	data := t.TempDir()
	if _, err := p.Extract(context.Background(), data); err == nil {
		t.Fatal("corrupt payload extracted without error")
	}
	entries, _ := os.ReadDir(filepath.Join(data, "bin"))
	for _, e := range entries {
		if e.Name() != ".lock" {
			t.Fatalf("left behind %s (payload %s)", e.Name(), m.SHA256)
		}
	}
}

func TestOpenTruncated(t *testing.T) {
	exe, _ := makeExe(t, testFiles)
	b, _ := os.ReadFile(exe)
	// A download cut short loses the trailer: no payload is found.
	os.WriteFile(exe, b[:len(b)-100], 0o755)
	if _, err := Open(exe); !errors.Is(err, ErrNoPayload) {
		t.Fatalf("err = %v", err)
	}
}

// An extraction killed half-way leaves a temporary directory; the next one
// removes it and succeeds.
func TestExtractAfterKilledExtraction(t *testing.T) {
	exe, m := makeExe(t, testFiles)
	data := t.TempDir()
	stale := filepath.Join(data, "bin", ".extract-1234")
	os.MkdirAll(filepath.Join(stale, "bin"), 0o755)
	os.WriteFile(filepath.Join(stale, "bin", "kube"), []byte("half"), 0o755)
	p, err := Open(exe)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if _, err := p.Extract(context.Background(), data); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(stale); !os.IsNotExist(err) {
		t.Fatal("stale extraction directory was not removed")
	}
	if _, err := os.Stat(filepath.Join(data, "bin", m.SHA256, "bin", "kube")); err != nil {
		t.Fatal(err)
	}
}

func TestExtractNeedsAbsoluteDir(t *testing.T) {
	exe, _ := makeExe(t, testFiles)
	p, _ := Open(exe)
	defer p.Close()
	if _, err := p.Extract(context.Background(), "relative/dir"); err == nil {
		t.Fatal("relative data dir accepted")
	}
}

// One file comes out alone, through its symlink, under the name asked for;
// what the payload does not have is an error.
func TestExtractFile(t *testing.T) {
	exe, _ := makeExe(t, testFiles)
	p, err := Open(exe)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	dst := filepath.Join(t.TempDir(), "kubectl")
	if err := p.ExtractFile(context.Background(), "bin/kubectl", dst); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(dst)
	if err != nil || string(got) != testFiles["bin/kube"] {
		t.Fatalf("extracted %d bytes (%v), want bin/kube's", len(got), err)
	}
	if fi, _ := os.Stat(dst); fi.Mode().Perm() != 0o755 {
		t.Errorf("mode %v, want bin/kube's 0755", fi.Mode())
	}
	if err := p.ExtractFile(context.Background(), "bin/ctr", filepath.Join(t.TempDir(), "ctr")); err == nil || !strings.Contains(err.Error(), "no bin/ctr") {
		t.Errorf("a file the payload lacks: %v", err)
	}
}

// Prune keeps what current and previous name and what runs, and removes
// the other payloads, nothing else.
func TestPrune(t *testing.T) {
	data := t.TempDir()
	bin := filepath.Join(data, "bin")
	sha := func(c string) string { return strings.Repeat(c, 64) }
	for _, d := range []string{sha("a"), sha("b"), sha("c"), sha("d"), "not-a-payload"} {
		if err := os.MkdirAll(filepath.Join(bin, d, "bin"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	os.Symlink(sha("a"), filepath.Join(bin, "current"))
	os.Symlink(sha("b"), filepath.Join(bin, "previous"))
	running := filepath.Join(bin, sha("c"))
	removed, err := Prune(data, func(dir string) bool { return dir == running })
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{filepath.Join(bin, sha("d"))}; !slices.Equal(removed, want) {
		t.Fatalf("removed %v, want %v", removed, want)
	}
	for _, d := range []string{sha("a"), sha("b"), sha("c"), "not-a-payload"} {
		if _, err := os.Stat(filepath.Join(bin, d)); err != nil {
			t.Errorf("%s: %v", d, err)
		}
	}
	if RunningFrom(filepath.Join(bin, sha("a"))) {
		t.Error("a process runs from a directory nothing was ever run from")
	}
}
