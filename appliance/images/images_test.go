package images

import (
	"archive/tar"
	"bytes"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/validate"

	"github.com/cameleer/cameleer/internal/testkit/testutil"
)

func writeTree(t *testing.T, dir string, mtime time.Time) {
	t.Helper()
	files := map[string]string{"bin/app": "#!/bin/sh\necho hi\n", "etc/app.conf": "a=1\n", "z/deep/file": "z"}
	for p, content := range files {
		full := filepath.Join(dir, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(content), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink("app", filepath.Join(dir, "bin/sh")); err != nil {
		t.Fatal(err)
	}
	err := filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err != nil || fi.Mode()&os.ModeSymlink != 0 {
			return err
		}
		return os.Chtimes(p, mtime, mtime)
	})
	if err != nil {
		t.Fatal(err)
	}
}

func buildArchive(t *testing.T, dir string) (string, []byte) {
	t.Helper()
	l, err := LayerFromDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	img, err := Build(nil, nil, Config{Entrypoint: []string{"/bin/app"}, User: "65535", ExposedPorts: []string{"53/udp"}})
	if err != nil {
		t.Fatal(err)
	}
	img, err = Build(img, []v1.Layer{l}, Config{Entrypoint: []string{"/bin/app"}})
	if err != nil {
		t.Fatal(err)
	}
	d, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := WriteArchive(&buf, img, "cameleer.local/test:1"); err != nil {
		t.Fatal(err)
	}
	return d.String(), buf.Bytes()
}

// The same files, written at different times into different directories, must
// give the same image digest and the same archive bytes.
func TestBuildIsReproducible(t *testing.T) {
	a, b := t.TempDir(), t.TempDir()
	writeTree(t, a, time.Now())
	writeTree(t, b, time.Now().Add(-48*time.Hour))
	da, arA := buildArchive(t, a)
	db, arB := buildArchive(t, b)
	if da != db {
		t.Fatalf("digests differ: %s vs %s", da, db)
	}
	if !bytes.Equal(arA, arB) {
		t.Fatal("archives differ")
	}
}

func TestArchiveIsAnOCILayout(t *testing.T) {
	src := t.TempDir()
	writeTree(t, src, time.Now())
	digest, ar := buildArchive(t, src)

	dst := t.TempDir()
	testutil.Untar(t, bytes.NewReader(ar), dst)
	idx, err := layout.ImageIndexFromPath(dst)
	if err != nil {
		t.Fatal(err)
	}
	im, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	if len(im.Manifests) != 1 || im.Manifests[0].Digest.String() != digest {
		t.Fatalf("index does not point at the image %s: %+v", digest, im.Manifests)
	}
	if got := im.Manifests[0].Annotations[annotationContainerdName]; got != "cameleer.local/test:1" {
		t.Fatalf("image name annotation = %q", got)
	}
	img, err := idx.Image(im.Manifests[0].Digest)
	if err != nil {
		t.Fatal(err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if cf.Config.User != "" || cf.Config.Entrypoint[0] != "/bin/app" || !cf.Created.Time.Equal(Epoch) {
		t.Fatalf("unexpected config: %+v created %v", cf.Config, cf.Created)
	}
	if _, ok := cf.Config.ExposedPorts["53/udp"]; !ok {
		t.Fatal("exposed port from the base config was lost")
	}
	layers, err := img.Layers()
	if err != nil || len(layers) != 1 {
		t.Fatalf("layers: %v %d", err, len(layers))
	}
	rc, err := layers[0].Uncompressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	tr := tar.NewReader(rc)
	var names []string
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if h.Uid != 0 || !h.ModTime.Equal(Epoch) {
			t.Fatalf("%s: uid %d mtime %v", h.Name, h.Uid, h.ModTime)
		}
		names = append(names, h.Name)
	}
	want := []string{"bin/", "bin/app", "bin/sh", "etc/", "etc/app.conf", "z/", "z/deep/", "z/deep/file"}
	if len(names) != len(want) {
		t.Fatalf("entries = %v, want %v", names, want)
	}
	for i := range want {
		if names[i] != want[i] {
			t.Fatalf("entries = %v, want %v", names, want)
		}
	}
}

func TestReadArchive(t *testing.T) {
	src := t.TempDir()
	writeTree(t, src, time.Now())
	digest, ar := buildArchive(t, src)
	p := filepath.Join(t.TempDir(), "img.tar")
	os.WriteFile(p, ar, 0o644)
	info, err := ReadArchive(p)
	if err != nil {
		t.Fatal(err)
	}
	if info.Ref != "cameleer.local/test:1" || info.Digest.String() != digest || info.Config.Config.Entrypoint[0] != "/bin/app" {
		t.Fatalf("info = %+v", info)
	}
	os.WriteFile(p, []byte("not a tar"), 0o644)
	if _, err := ReadArchive(p); err == nil {
		t.Fatal("garbage read as an archive")
	}
}

// An archive opened with OpenArchive is the image that was written: same
// digest, same layers, and it pushes to a registry whole.
func TestOpenArchive(t *testing.T) {
	dir := t.TempDir()
	writeTree(t, dir, time.Now())
	digest, b := buildArchive(t, dir)
	path := filepath.Join(t.TempDir(), "img.tar")
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	img, info, err := OpenArchive(path)
	if err != nil {
		t.Fatal(err)
	}
	d, err := img.Digest()
	if err != nil || d.String() != digest || info.Digest.String() != digest {
		t.Fatalf("digest %v (%v), info %v, want %s", d, err, info.Digest, digest)
	}
	if err := validate.Image(img); err != nil {
		t.Fatalf("opened image does not validate: %v", err)
	}
	if _, _, err := OpenArchive(filepath.Join(t.TempDir(), "missing.tar")); err == nil {
		t.Error("a missing archive opened")
	}
	trunc := filepath.Join(t.TempDir(), "trunc.tar")
	if err := os.WriteFile(trunc, b[:len(b)/2], 0o644); err != nil {
		t.Fatal(err)
	}
	if _, _, err := OpenArchive(trunc); err == nil {
		t.Error("a truncated archive opened")
	}
}
