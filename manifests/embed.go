// Package manifests holds the Kubernetes objects the appliance applies to its
// own cluster, as templates. Bootstrap objects are applied as soon as the
// apiserver answers; add-ons once the node can run pods.
package manifests

import (
	"bytes"
	"embed"
	"fmt"
	"text/template"
)

//go:embed *.yaml
var files embed.FS

// Values fill the templates.
type Values struct {
	// Images maps a system image's name to its reference.
	Images      map[string]string
	ClusterDNS  string
	Domain      string
	HTTPPort    int
	HTTPSPort   int
	StoragePath string
}

// Image is the reference of a system image; rendering fails for one the
// payload lacks.
func (v Values) Image(name string) (string, error) {
	ref, ok := v.Images[name]
	if !ok || ref == "" {
		return "", fmt.Errorf("no image %q in the payload", name)
	}
	return ref, nil
}

// Bootstrap are applied first: what the node's own components need.
var Bootstrap = []string{"rbac.yaml"}

// AddOns are the cluster's system services.
var AddOns = []string{"coredns.yaml", "local-path-provisioner.yaml", "traefik.yaml"}

// Render fills the named system template.
func Render(name string, v Values) ([]byte, error) { return RenderWith(name, v) }

// RenderWith fills the named template with any data: environment.yaml,
// egress.yaml and app.yaml take the orchestrator's.
func RenderWith(name string, data any) ([]byte, error) {
	t, err := template.New(name).Option("missingkey=error").ParseFS(files, name)
	if err != nil {
		return nil, fmt.Errorf("manifest %s: %w", name, err)
	}
	var b bytes.Buffer
	if err := t.Execute(&b, data); err != nil {
		return nil, fmt.Errorf("manifest %s: %w", name, err)
	}
	return b.Bytes(), nil
}
