package engine

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"

	"github.com/cameleer/cameleer/appliance/config"
	"github.com/cameleer/cameleer/appliance/images"
	"github.com/cameleer/cameleer/appliance/kube"
	"github.com/cameleer/cameleer/appliance/registry"
	"github.com/cameleer/cameleer/manifests"
)

// RunRegistry serves the node's registry on RegistryAddr until ctx is done,
// logging to log.
func (p Paths) RunRegistry(ctx context.Context, log *slog.Logger) error {
	reg, err := registry.New(ctx, registry.Options{Root: p.Path("registry"), Log: log})
	if err != nil {
		return err
	}
	l, err := net.Listen("tcp", p.RegistryAddr())
	if err != nil {
		return fmt.Errorf("registry: %w", err)
	}
	return reg.Serve(ctx, l)
}

// PushImages copies the payload's system images into the node's registry,
// under the names the manifests use. Blobs already there are skipped, so
// this is cheap after the first start.
func (p Paths) PushImages(ctx context.Context, log *slog.Logger, archives []string) error {
	for _, a := range archives {
		img, info, err := images.OpenArchive(a)
		if err != nil {
			return err
		}
		ref, err := name.ParseReference(strings.Replace(info.Ref, config.RegistryHost, p.RegistryAddr(), 1), name.Insecure)
		if err != nil {
			return fmt.Errorf("image %s: %w", info.Ref, err)
		}
		if desc, err := remote.Head(ref, remote.WithContext(ctx)); err == nil && desc.Digest == info.Digest {
			continue
		} else if err != nil {
			var terr *transport.Error
			if !errors.As(err, &terr) || terr.StatusCode != http.StatusNotFound {
				return fmt.Errorf("image %s: %w", info.Ref, err)
			}
		}
		if err := remote.Write(ref, img, remote.WithContext(ctx)); err != nil {
			return fmt.Errorf("push %s: %w", info.Ref, err)
		}
		log.Info("pushed system image", "image", info.Ref, "digest", info.Digest)
	}
	return nil
}

func (p Paths) values() manifests.Values {
	return manifests.Values{
		Images:      p.Images,
		ClusterDNS:  p.ClusterDNS,
		Domain:      p.Domain(),
		HTTPPort:    p.HTTPPort,
		HTTPSPort:   p.HTTPSPort,
		StoragePath: p.Path("storage"),
	}
}

// apply server-side applies the named manifests, as field manager cameleer.
func (p Paths) apply(ctx context.Context, names ...string) error {
	var docs [][]byte
	for _, n := range names {
		b, err := manifests.Render(n, p.values())
		if err != nil {
			return err
		}
		docs = append(docs, b)
	}
	return p.Kubectl().Apply(ctx, bytes.Join(docs, []byte("\n---\n")))
}

// applyAddOns applies the CRDs that come with the payload, then the add-ons.
func (p Paths) applyAddOns(ctx context.Context) error {
	crds, err := filepath.Glob(filepath.Join(p.Payload, "manifests", "*.yaml"))
	if err != nil {
		return err
	}
	for _, f := range crds {
		doc, err := os.ReadFile(f)
		if err != nil {
			return err
		}
		if err := p.Kubectl().Apply(ctx, doc); err != nil {
			return fmt.Errorf("%s: %w", filepath.Base(f), err)
		}
	}
	// Traefik was a Deployment before nodes could join: it goes before
	// its DaemonSet takes its host ports.
	if _, err := p.Kubectl().Run(ctx, nil, "delete", "deployment", "traefik", "-n", "kube-system", "--ignore-not-found", "--wait=true"); err != nil {
		return err
	}
	return p.apply(ctx, manifests.AddOns...)
}

// Kubectl is the payload's kubectl as cluster admin.
func (p Paths) Kubectl() kube.Kubectl {
	return kube.Kubectl{Path: p.bin("kubectl"), Kubeconfig: p.AdminKubeconfig()}
}
