// Command mkpayload appends the engine payload to a cameleer executable and
// writes the payload's SBOM. The Makefile calls it as the last build step:
//
//	mkpayload -versions embed/versions -root build/payload -exe build/cameleer \
//	          -o bin/cameleer -sbom bin/cameleer.spdx.json [-created UNIXTIME]
//
// The parts table below says which payload files make up which part; image
// parts are every archive under images/, named and versioned by the image.
package main

import (
	"bufio"
	"debug/buildinfo"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/cameleer/cameleer/appliance/images"
	"github.com/cameleer/cameleer/appliance/payload"
	"github.com/cameleer/cameleer/scripts/mkpayload/sbom"
	"github.com/cameleer/cameleer/version"
)

// binaryParts are the host executables, by the variable in embed/versions
// that pins them.
var binaryParts = []struct {
	name, versionVar string
	files            []string
}{
	{"kubernetes", "KUBERNETES_VERSION", []string{"bin/kube"}},
	{"kine", "KINE_VERSION", []string{"bin/kine"}},
	{"containerd", "CONTAINERD_VERSION", []string{"bin/containerd", "bin/containerd-shim-runc-v2", "bin/ctr"}},
	{"runc", "RUNC_VERSION", []string{"bin/runc"}},
	{"flannel", "FLANNEL_VERSION", []string{"bin/cameleer-net"}},
	{"kube-router-netpol", "KUBE_ROUTER_VERSION", []string{"bin/cameleer-net"}},
	{"cni-plugins", "CNI_PLUGINS_VERSION", []string{"cni/bridge", "cni/host-local", "cni/loopback", "cni/portmap", "cni/flannel"}},
}

// manifestParts are files that are neither executables nor images: the
// Kubernetes objects copied from a part's pinned module, the Java agent.
var manifestParts = []struct {
	name, versionVar string
	files            []string
}{
	{"traefik-crds", "TRAEFIK_VERSION", []string{"manifests/traefik-crds.yaml"}},
	{"cameleer-agent", "AGENT_VERSION", []string{"agent/cameleer-agent.jar"}},
}

// libraryParts are compiled into cameleer itself.
var libraryParts = []struct{ name, module string }{
	{"registry", "github.com/distribution/distribution/v3"},
	{"image-builder", "github.com/google/go-containerregistry"},
}

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "mkpayload:", err)
		os.Exit(1)
	}
}

func run() error {
	versionsFile := flag.String("versions", "embed/versions", "the version pins")
	root := flag.String("root", "build/payload", "payload files")
	exe := flag.String("exe", "build/cameleer", "cameleer executable without payload")
	out := flag.String("o", "bin/cameleer", "output executable")
	sbomOut := flag.String("sbom", "bin/cameleer.spdx.json", "SPDX JSON output")
	created := flag.Int64("created", 0, "build time for the SBOM, in Unix seconds (the commit time)")
	agentVersion := flag.String("agent-version", "dev", "version of the Java agent (cameleer's own)")
	flag.Parse()

	versions, err := version.ReadPins(*versionsFile)
	if err != nil {
		return err
	}
	versions["AGENT_VERSION"] = *agentVersion
	parts, bill, err := describe(*root, *exe, versions)
	if err != nil {
		return err
	}

	tmp := *out + ".tmp"
	if err := copyFile(*exe, tmp); err != nil {
		return err
	}
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		return err
	}
	w := bufio.NewWriterSize(f, 1<<20)
	m, err := payload.Pack(w, *root, parts)
	if err == nil {
		err = w.Flush()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(tmp)
		return err
	}
	if err := os.Rename(tmp, *out); err != nil {
		return err
	}

	for i, p := range m.Parts {
		if p.Kind == payload.KindBinary || p.Kind == payload.KindFile {
			bill[i].SHA256 = strings.TrimPrefix(p.Digest, "sha256:")
		}
	}
	sf, err := os.Create(*sbomOut)
	if err != nil {
		return err
	}
	defer sf.Close()
	return sbom.Write(sf, "cameleer-payload", m.SHA256, time.Unix(*created, 0), bill)
}

// describe lists the payload's parts and, in the same order, their SBOM
// entries.
func describe(root, exe string, versions map[string]string) ([]payload.Part, []sbom.Package, error) {
	var parts []payload.Part
	var bill []sbom.Package
	for _, b := range binaryParts {
		v, ok := versions[b.versionVar]
		if !ok {
			return nil, nil, fmt.Errorf("embed/versions has no %s", b.versionVar)
		}
		parts = append(parts, payload.Part{Name: b.name, Version: v, Kind: payload.KindBinary, Files: b.files})
		pkg := sbom.Package{Name: b.name, Version: v}
		for _, f := range b.files {
			mods, err := sbom.GoModules(filepath.Join(root, f))
			if err != nil {
				return nil, nil, err
			}
			pkg.Contains = append(pkg.Contains, mods...)
		}
		bill = append(bill, pkg)
	}

	for _, mp := range manifestParts {
		v, ok := versions[mp.versionVar]
		if !ok {
			return nil, nil, fmt.Errorf("embed/versions has no %s", mp.versionVar)
		}
		parts = append(parts, payload.Part{Name: mp.name, Version: v, Kind: payload.KindFile, Files: mp.files})
		bill = append(bill, sbom.Package{Name: mp.name, Version: v})
	}

	archives, err := filepath.Glob(filepath.Join(root, "images", "*.tar"))
	if err != nil {
		return nil, nil, err
	}
	sort.Strings(archives)
	for _, a := range archives {
		info, err := images.ReadArchive(a)
		if err != nil {
			return nil, nil, err
		}
		name := strings.TrimSuffix(filepath.Base(a), ".tar")
		v := info.Config.Config.Labels["org.opencontainers.image.version"]
		if v == "" {
			return nil, nil, fmt.Errorf("%s: image has no org.opencontainers.image.version label", a)
		}
		rel, _ := filepath.Rel(root, a)
		parts = append(parts, payload.Part{Name: name, Version: v, Kind: payload.KindImage, Digest: info.Digest.String(), Image: info.Ref, Files: []string{filepath.ToSlash(rel)}})
		bill = append(bill, sbom.Package{Name: name, Version: v, SHA256: info.Digest.Hex, PURL: "pkg:oci/" + name + "@" + info.Digest.String() + "?repository_url=" + strings.TrimSuffix(info.Ref, ":"+strings.ReplaceAll(v, "+", "_"))})
	}

	mods, err := sbom.GoModules(exe)
	if err != nil {
		return nil, nil, err
	}
	for _, l := range libraryParts {
		var found *sbom.Package
		for i := range mods {
			if mods[i].Name == l.module {
				found = &mods[i]
			}
		}
		if found == nil {
			return nil, nil, fmt.Errorf("%s is not compiled into %s", l.module, exe)
		}
		sum, err := moduleSum(exe, l.module)
		if err != nil {
			return nil, nil, err
		}
		parts = append(parts, payload.Part{Name: l.name, Version: found.Version, Kind: payload.KindLibrary, Digest: sum})
		bill = append(bill, *found)
	}
	return parts, bill, nil
}

// moduleSum is the go.sum hash of module as compiled into the Go binary exe.
func moduleSum(exe, module string) (string, error) {
	bi, err := buildinfo.ReadFile(exe)
	if err != nil {
		return "", fmt.Errorf("read build info of %s: %w", exe, err)
	}
	for _, d := range bi.Deps {
		if d.Path == module {
			return d.Sum, nil
		}
	}
	return "", fmt.Errorf("%s is not compiled into %s", module, exe)
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o755)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}
