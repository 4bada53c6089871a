//go:build node

package node_test

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cameleer/cameleer/internal/testkit/apptest"
)

// testSupportBundle takes the running node's support bundle, on the host
// and through the control plane, with apps deployed that hold a secret:
// each has the node's status, the cluster's pods and the engine's
// iptables chains, and neither holds the app's secret, a private key, or
// a token.
func (n *node) testSupportBundle(t *testing.T) {
	file := filepath.Join(t.TempDir(), "bundle.tar.gz")
	n.run("support-bundle", "--data-dir", dataDir, "-o", file)
	local, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var runners []struct{ ID string }
	n.cp.Must(t, http.StatusOK, "GET", "/api/v1/tenants/acme/runners", nil, &runners)
	resp, err := n.cp.Request(context.Background(), "GET", "/api/v1/tenants/acme/runners/"+runners[0].ID+"/support-bundle", nil)
	if err != nil {
		t.Fatal(err)
	}
	remote, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("through the control plane: %s %s", resp.Status, remote)
	}
	identity, _ := os.ReadFile(filepath.Join(dataDir, "controlplane", "client.key"))
	for name, b := range map[string][]byte{"on the host": local, "through the control plane": remote} {
		files, all := untarGz(t, b)
		for f, want := range map[string]string{"status.json": `"ready": true`, "kubectl/pods.txt": "coredns", "host/iptables-save.txt": "KUBE-",
			"logs/cameleer.log": "level=", "version.json": `"version"`} {
			if !strings.Contains(files[f], want) {
				t.Errorf("%s: %s does not have %q", name, f, want)
			}
		}
		for what, secret := range map[string]string{"the app's secret": apptest.Secret, "a private key": "PRIVATE KEY-----",
			"the admin token": n.cp.Admin, "the runner's key": strings.TrimSpace(string(identity))} {
			if secret != "" && bytes.Contains(all, []byte(secret)) {
				t.Errorf("%s: the bundle holds %s", name, what)
			}
		}
		t.Logf("support bundle %s: %d files, %d KiB", name, len(files), len(b)>>10)
	}
}

// untarGz returns a tar.gz's files by name (the bundle's directory taken
// off), and all its bytes uncompressed.
func untarGz(t *testing.T, b []byte) (map[string]string, []byte) {
	t.Helper()
	zr, err := gzip.NewReader(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	all, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	files := map[string]string{}
	tr := tar.NewReader(bytes.NewReader(all))
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return files, all
		}
		if err != nil {
			t.Fatal(err)
		}
		c, _ := io.ReadAll(tr)
		files[strings.TrimPrefix(h.Name, "support-bundle/")] = string(c)
	}
}
