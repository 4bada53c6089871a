package manifests

import (
	"bytes"
	"strings"
	"testing"

	"go.yaml.in/yaml/v2"
)

func values() Values {
	return Values{
		Images: map[string]string{
			"coredns": "cameleer.local/coredns:v1", "traefik": "cameleer.local/traefik:v3",
			"local-path-provisioner": "cameleer.local/lpp:v0", "busybox": "cameleer.local/busybox:1",
		},
		ClusterDNS: "10.43.0.10", Domain: "cluster.local", HTTPPort: 8080, HTTPSPort: 8443, StoragePath: "/data/storage",
	}
}

// Every manifest renders to YAML documents that each name a kind and an
// object, and carries the values it was given.
func TestRender(t *testing.T) {
	for _, name := range append(append([]string{}, Bootstrap...), AddOns...) {
		b, err := Render(name, values())
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if strings.Contains(string(b), "<no value>") {
			t.Errorf("%s: a value is missing", name)
		}
		dec := yaml.NewDecoder(bytes.NewReader(b))
		docs := 0
		for {
			var doc map[string]any
			if err := dec.Decode(&doc); err != nil {
				if err.Error() == "EOF" {
					break
				}
				t.Fatalf("%s: document %d: %v", name, docs+1, err)
			}
			if doc == nil {
				continue
			}
			docs++
			meta, _ := doc["metadata"].(map[any]any)
			if doc["kind"] == nil || doc["apiVersion"] == nil || meta["name"] == nil {
				t.Errorf("%s: document %d lacks kind, apiVersion or name", name, docs)
			}
		}
		if docs == 0 {
			t.Errorf("%s: no documents", name)
		}
	}
	traefik, _ := Render("traefik.yaml", values())
	for _, want := range []string{"hostPort: 8080", "hostPort: 8443", "cameleer.local/traefik:v3"} {
		if !strings.Contains(string(traefik), want) {
			t.Errorf("traefik.yaml lacks %q", want)
		}
	}
	if _, err := Render("traefik.yaml", Values{}); err == nil {
		t.Error("rendering without images succeeded")
	}
}
