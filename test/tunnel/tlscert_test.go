package tunnel_test

import (
	"context"
	"fmt"
	"net/http"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cameleer/cameleer/internal/testkit/testutil"
)

// TestServingCertOfAnotherCA: with --tls-cert from a company CA (root,
// intermediate, leaf), runners pin the root, register, connect and are
// proxied to; a chain that does not reach its root, or a certificate that
// does not name the host of --url, is refused at start with one line.
func TestServingCertOfAnotherCA(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs both binaries")
	}
	dir := t.TempDir()
	root := testutil.NewIssuer(t, "company root", nil)
	inter := testutil.NewIssuer(t, "company issuing CA", &root)
	certFile, keyFile := testutil.ServingFiles(t, dir, inter, inter.Cert, root.Cert)

	addr := freeAddr(t)
	e := newEnvArgs(t, addr, nil, []string{"--tls-cert", certFile, "--tls-key", keyFile})
	e.tenant("acme", "low")
	runnerDir := filepath.Join(dir, "runner")
	e.register("acme", "edge", runnerDir) // against a company certificate
	if got := testutil.ReadCert(t, filepath.Join(runnerDir, "controlplane", "ca.crt")); !got.Equal(root.Cert) {
		t.Errorf("the runner trusts %q, want the company root", got.Subject.CommonName)
	}
	e.startRunner(runnerDir, nil)
	var id string
	testutil.Eventually(t, poll, 20*time.Second, "edge connected", func() error {
		var rs []runnerView
		e.call("GET", "/api/v1/tenants/acme/runners", e.admin, nil, &rs)
		if len(rs) == 1 && rs[0].Connected {
			id = rs[0].ID
			return nil
		}
		return fmt.Errorf("runners: %+v", rs)
	})
	var st struct{ RunnerID string }
	if code := e.call("GET", "/api/v1/tenants/acme/runners/"+id+"/proxy/status", e.admin, nil, &st); code != http.StatusOK || st.RunnerID != id {
		t.Errorf("proxied status: %d %+v", code, st)
	}
	e.stopCP()

	refused := func(what, want string, args ...string) {
		t.Helper()
		args = append([]string{"serve", "--data-dir", t.TempDir(), "--listen", freeAddr(t)}, args...)
		// One that starts by mistake is stopped, and fails the test.
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		out, err := exec.CommandContext(ctx, e.cpBin, args...).CombinedOutput()
		if err == nil || !strings.Contains(string(out), want) || strings.Count(strings.TrimSpace(string(out)), "\n") > 0 {
			t.Errorf("%s: %v, output %q; want one line with %q", what, err, out, want)
		}
	}
	other := testutil.NewIssuer(t, "someone else", nil)
	badChain, badKey := testutil.ServingFiles(t, t.TempDir(), inter, other.Cert)
	refused("a chain that does not end in its issuer", "--tls-cert", "--tls-cert", badChain, "--tls-key", badKey)
	refused("a certificate for another host", "--tls-cert", "--tls-cert", certFile, "--tls-key", keyFile, "--url", "https://cp.example.com:8443")
	noRoot, noRootKey := testutil.ServingFiles(t, t.TempDir(), inter, inter.Cert)
	refused("a chain that stops short of its root", "not a root", "--tls-cert", noRoot, "--tls-key", noRootKey)
	alone, aloneKey := testutil.ServingFiles(t, t.TempDir(), inter)
	refused("a leaf without its chain", "not a root", "--tls-cert", alone, "--tls-key", aloneKey)
}
