package registry

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/cameleer/cameleer/appliance/images"
)

// Push an image built by the images package to a real registry on loopback,
// pull it back by digest, and find its blobs on disk.
func TestPushPull(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	root := t.TempDir()
	reg, err := New(ctx, root)
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- reg.Serve(ctx, l) }()
	t.Cleanup(func() {
		cancel()
		if err := <-served; err != nil {
			t.Error(err)
		}
	})

	src := t.TempDir()
	os.WriteFile(filepath.Join(src, "hello"), []byte("hello"), 0o644)
	layer, err := images.LayerFromDir(src)
	if err != nil {
		t.Fatal(err)
	}
	img, err := images.Build(nil, []v1.Layer{layer}, images.Config{Entrypoint: []string{"/hello"}})
	if err != nil {
		t.Fatal(err)
	}
	ref, err := name.ParseReference(l.Addr().String()+"/apps/hello:1", name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(ref, img); err != nil {
		t.Fatal(err)
	}
	want, _ := img.Digest()
	got, err := remote.Get(ref.Context().Digest(want.String()))
	if err != nil {
		t.Fatal(err)
	}
	if got.Digest != want {
		t.Fatalf("pulled %s, pushed %s", got.Digest, want)
	}
	blobs, _ := filepath.Glob(filepath.Join(root, "docker/registry/v2/blobs/sha256/*/*"))
	if len(blobs) != 3 {
		t.Fatalf("want 3 blobs (manifest, config, layer) on disk, found %d", len(blobs))
	}
}
