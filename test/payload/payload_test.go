//go:build payload

// Package payload_test checks the engine payload that `make` appends to
// bin/cameleer: every part is listed with its version and digest, every
// binary starts from the extracted payload and reports its pinned version,
// every image's entrypoint runs inside its own root filesystem, and the
// images build reproducibly. Run with `make test` (needs the built binary;
// the image checks chroot, so they need root).
package payload_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"

	"github.com/cameleer/cameleer/appliance/payload"
	"github.com/cameleer/cameleer/internal/testkit/testutil"
	"github.com/cameleer/cameleer/version"
)

func env(t *testing.T, name string) string {
	t.Helper()
	v := os.Getenv(name)
	if v == "" {
		t.Fatalf("%s is not set: run these tests with `make test`", name)
	}
	return v
}

func pins(t *testing.T) map[string]string {
	t.Helper()
	p, err := version.ReadPins("../../embed/versions")
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestVersionListsEveryPart(t *testing.T) {
	out, err := exec.Command(env(t, "CAMELEER_BIN"), "version", "-o", "json").Output()
	if err != nil {
		t.Fatal(err)
	}
	var info struct {
		Version string
		Payload struct {
			SHA256 string
			Parts  []payload.Part
		}
	}
	if err := json.Unmarshal(out, &info); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	p := pins(t)
	want := map[string]string{
		"kubernetes":             p["KUBERNETES_VERSION"],
		"containerd":             p["CONTAINERD_VERSION"],
		"runc":                   p["RUNC_VERSION"],
		"kine":                   p["KINE_VERSION"],
		"flannel":                p["FLANNEL_VERSION"],
		"kube-router-netpol":     p["KUBE_ROUTER_VERSION"],
		"cni-plugins":            p["CNI_PLUGINS_VERSION"],
		"coredns":                p["COREDNS_VERSION"],
		"traefik":                p["TRAEFIK_VERSION"],
		"local-path-provisioner": p["LOCAL_PATH_PROVISIONER_VERSION"],
		"pause":                  p["PAUSE_VERSION"],
		"busybox":                "",
		"jre":                    "",
		"traefik-crds":           p["TRAEFIK_VERSION"],
		"cameleer-agent":         "",
		"registry":               "",
		"image-builder":          "",
	}
	for _, part := range info.Payload.Parts {
		v, ok := want[part.Name]
		if !ok {
			t.Errorf("unexpected part %s", part.Name)
			continue
		}
		delete(want, part.Name)
		if part.Version == "" || (v != "" && part.Version != v) {
			t.Errorf("%s: version %q, want %q", part.Name, part.Version, v)
		}
		prefix := "sha256:"
		if part.Kind == payload.KindLibrary {
			prefix = "h1:"
		}
		if !strings.HasPrefix(part.Digest, prefix) || len(part.Digest) < len(prefix)+40 {
			t.Errorf("%s: digest %q", part.Name, part.Digest)
		}
	}
	for name := range want {
		t.Errorf("part %s is missing from `cameleer version`", name)
	}
}

// extract unpacks the payload of bin/cameleer into a fresh data dir.
func extract(t *testing.T) (string, payload.Manifest) {
	t.Helper()
	p, err := payload.Open(env(t, "CAMELEER_BIN"))
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	dir, err := p.Extract(context.Background(), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return dir, p.Manifest
}

func TestEngineBinariesRun(t *testing.T) {
	dir, _ := extract(t)
	p := pins(t)
	k8s := p["KUBERNETES_VERSION"]
	tests := []struct {
		bin  string
		args []string
		want string
	}{
		{"bin/kube-apiserver", []string{"--version"}, "Kubernetes " + k8s},
		{"bin/kube-controller-manager", []string{"--version"}, "Kubernetes " + k8s},
		{"bin/kube-scheduler", []string{"--version"}, "Kubernetes " + k8s},
		{"bin/kubelet", []string{"--version"}, "Kubernetes " + k8s},
		{"bin/kube-proxy", []string{"--version"}, "Kubernetes " + k8s},
		{"bin/kubectl", []string{"version", "--client"}, "Client Version: " + k8s},
		{"bin/kine", []string{"--version"}, p["KINE_VERSION"]},
		{"bin/containerd", []string{"--version"}, p["CONTAINERD_VERSION"]},
		{"bin/ctr", []string{"--version"}, p["CONTAINERD_VERSION"]},
		{"bin/containerd-shim-runc-v2", []string{"-v"}, p["CONTAINERD_VERSION"]},
		{"bin/runc", []string{"--version"}, strings.TrimPrefix(p["RUNC_VERSION"], "v")},
		{"bin/cameleer-net", []string{"--version"}, p["FLANNEL_VERSION"]},
		{"bin/cameleer-net", []string{"--version"}, p["KUBE_ROUTER_VERSION"]},
	}
	for _, plugin := range []string{"bridge", "host-local", "loopback", "portmap", "flannel"} {
		tests = append(tests, struct {
			bin  string
			args []string
			want string
		}{"cni/" + plugin, nil, p["CNI_PLUGINS_VERSION"]})
	}
	for _, tt := range tests {
		out, err := exec.Command(filepath.Join(dir, tt.bin), tt.args...).CombinedOutput()
		if err != nil && !strings.HasPrefix(tt.bin, "cni/") {
			t.Errorf("%s %v: %v: %s", tt.bin, tt.args, err, out)
			continue
		}
		if !strings.Contains(string(out), tt.want) {
			t.Errorf("%s %v printed %q, want it to contain %q", tt.bin, tt.args, out, tt.want)
		}
	}
}

// Each image's entrypoint runs inside the image's own root filesystem: the
// image holds everything it needs.
func TestImagesRun(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to chroot into the image root filesystems")
	}
	dir, m := extract(t)
	p := pins(t)
	tests := map[string]struct {
		args []string
		want string
	}{
		"pause":                  {[]string{"/pause", "-v"}, p["PAUSE_VERSION"]},
		"coredns":                {[]string{"/coredns", "-version"}, strings.TrimPrefix(p["COREDNS_VERSION"], "v")},
		"traefik":                {[]string{"/usr/local/bin/traefik", "version"}, strings.TrimPrefix(p["TRAEFIK_VERSION"], "v")},
		"local-path-provisioner": {[]string{"/usr/bin/local-path-provisioner", "--version"}, p["LOCAL_PATH_PROVISIONER_VERSION"]},
		"busybox":                {[]string{"/bin/sh", "-c", "mkdir -p /tmp/x && echo ok-$((40+2))"}, "ok-42"},
		"jre":                    {[]string{"/opt/java/bin/java", "-version"}, "17."},
	}
	for _, part := range m.Parts {
		if part.Kind != payload.KindImage {
			continue
		}
		tt, ok := tests[part.Name]
		if !ok {
			t.Errorf("no run test for image %s", part.Name)
			continue
		}
		delete(tests, part.Name)
		rootfs := unpackImage(t, filepath.Join(dir, part.Files[0]))
		// A container runtime mounts /proc; glibc needs it to resolve
		// $ORIGIN (the JRE finds libjli.so that way). A private mount
		// namespace drops the mount when the command ends.
		if err := os.MkdirAll(filepath.Join(rootfs, "proc"), 0o555); err != nil {
			t.Fatal(err)
		}
		script := `mount -t proc proc "$0/proc" && exec chroot "$0" "$@"`
		out, err := exec.Command("unshare", append([]string{"--mount", "--propagation", "private", "sh", "-c", script, rootfs}, tt.args...)...).CombinedOutput()
		if err != nil || !strings.Contains(string(out), tt.want) {
			t.Errorf("image %s: %v: %v printed %q, want %q", part.Name, tt.args, err, out, tt.want)
		}
	}
	for name := range tests {
		t.Errorf("image %s is not in the payload", name)
	}
}

// unpackImage flattens the image in an OCI archive into a directory.
func unpackImage(t *testing.T, archive string) string {
	t.Helper()
	layoutDir := t.TempDir()
	f, err := os.Open(archive)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	testutil.Untar(t, f, layoutDir)
	idx, err := layout.ImageIndexFromPath(layoutDir)
	if err != nil {
		t.Fatal(err)
	}
	im, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	img, err := idx.Image(im.Manifests[0].Digest)
	if err != nil {
		t.Fatal(err)
	}
	rootfs := t.TempDir()
	rc := mutate.Extract(img)
	defer rc.Close()
	testutil.Untar(t, rc, rootfs)
	return rootfs
}

// Building the images again from a clean build directory gives the same
// archives, byte for byte, as the ones in the payload.
func TestImagesAreReproducible(t *testing.T) {
	build := env(t, "CAMELEER_BUILD")
	for round := 0; round < 2; round++ {
		fresh := t.TempDir()
		for _, d := range []string{"imgbin", "tools"} {
			if err := os.Symlink(filepath.Join(build, d), filepath.Join(fresh, d)); err != nil {
				t.Fatal(err)
			}
		}
		cmd := exec.Command("../../scripts/build-images.sh", fresh)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("build images: %v: %s", err, out)
		}
		archives, _ := filepath.Glob(filepath.Join(build, "payload/images/*.tar"))
		if len(archives) == 0 {
			t.Fatal("no images in the build")
		}
		for _, a := range archives {
			again := filepath.Join(fresh, "payload/images", filepath.Base(a))
			if sum(t, a) != sum(t, again) {
				t.Errorf("round %d: %s differs from the archive in the payload", round, filepath.Base(a))
			}
		}
	}
}

func sum(t *testing.T, path string) string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(h.Sum(nil))
}
