package registry

import (
	"context"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/cameleer/cameleer/appliance/images"
)

// Push an image built by the images package to a real registry on loopback,
// pull it back by digest, and find its blobs on disk.
func TestPushPull(t *testing.T) {
	root := t.TempDir()
	addr := serve(t, Options{Root: root})

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
	ref, err := name.ParseReference(addr+"/apps/hello:1", name.Insecure)
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

// serve runs a registry of o on loopback until the test ends, and returns
// its address.
func serve(t *testing.T, o Options) string {
	ctx, cancel := context.WithCancel(context.Background())
	reg, err := New(ctx, o)
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
	return l.Addr().String()
}

// The registry logs through slog, in its format; a blob that is not there
// yet is a normal answer to a HEAD, logged at debug, and an error stays
// one.
func TestLogsThroughSlog(t *testing.T) {
	lines := make(lineWriter, 100)
	addr := serve(t, Options{Root: t.TempDir(), Log: slog.New(slog.NewTextHandler(lines, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	resp, err := http.Head("http://" + addr + "/v2/apps/hello/blobs/sha256:" + strings.Repeat("0", 64))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Fatalf("HEAD of an unknown blob: %s", resp.Status)
	}
	req, _ := http.NewRequest(http.MethodPut, "http://"+addr+"/v2/apps/hello/manifests/1", strings.NewReader("not a manifest"))
	req.Header.Set("Content-Type", "application/vnd.oci.image.manifest.v1+json")
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("PUT of a broken manifest: %s", resp.Status)
	}

	// The registry logs a request after it answered it.
	var head, put bool
	for !head || !put {
		var l string
		select {
		case l = <-lines:
		case <-time.After(10 * time.Second):
			t.Fatalf("logged the HEAD: %v, the PUT: %v", head, put)
		}
		if strings.Contains(l, "level=WARN") {
			t.Errorf("a warning: %s", l)
		}
		if !strings.HasPrefix(l, "time=") || strings.Contains(l, "level=error") || strings.Contains(l, "go.version") {
			t.Errorf("not slog's format: %s", l)
		}
		switch {
		case strings.Contains(l, "http.request.method=HEAD"):
			head = true
			if !strings.Contains(l, "level=DEBUG") || !strings.Contains(l, "err.code=BLOB_UNKNOWN") {
				t.Errorf("the unknown blob: %s", l)
			}
		case strings.Contains(l, "http.request.method=PUT"):
			put = true
			if !strings.Contains(l, "level=ERROR") {
				t.Errorf("the broken manifest: %s", l)
			}
		}
	}
}

// lineWriter hands on each line a slog handler writes.
type lineWriter chan string

func (w lineWriter) Write(p []byte) (int, error) {
	w <- string(p)
	return len(p), nil
}
