package server

import (
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/cameleer/cameleer/installer"
)

func (c *testCP) get(path string) (int, []byte, http.Header) {
	c.t.Helper()
	resp, err := c.client.Get(c.url + path)
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b, resp.Header
}

// TestInstallRoutes: install.sh, the CA runners pin, and the runner binary
// with its description are served to anyone; without a binary the
// downloads say how to give one.
func TestInstallRoutes(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a binary")
	}
	bin := filepath.Join(t.TempDir(), "cameleer")
	build := exec.Command("go", "build", "-o", bin, "-ldflags", "-X main.version=1.2.3", "../../internal/downloads/testdata/fakebinary")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	raw, _ := os.ReadFile(bin)
	h := sha256.Sum256(raw)
	sum := hex.EncodeToString(h[:])

	c := startWith(t, Options{RunnerBinary: bin, URL: "https://cp.example:8443"})
	// The script knows the key the binary served checks bundles with.
	const key = "MCowBQYDK2VwAyEAhz92d9DLkVG2+S7IYKnAiL2hh7CJlU8b9HAzAXqbCto="
	if code, b, _ := c.get("/install.sh"); code != http.StatusOK || string(b) != string(installer.WithSigningKey(key)) || !strings.Contains(string(b), "\nsigning_key="+key+"\n") {
		t.Errorf("install.sh: %d, without the binary's signing key", code)
	}
	code, b, _ := c.get("/ca.crt")
	blk, _ := pem.Decode(b)
	if code != http.StatusOK || blk == nil || sha256.Sum256(blk.Bytes) != c.s.CAHash() {
		t.Errorf("ca.crt: %d, not the CA tokens pin", code)
	} else if ca, err := x509.ParseCertificate(blk.Bytes); err != nil || !ca.IsCA {
		t.Errorf("ca.crt: %v", err)
	}
	code, b, _ = c.get("/downloads/cameleer.json")
	want := `{"version":"1.2.3","commit":"abc","arch":"` + runtime.GOARCH + `","sha256":"` + sum + `","size":`
	if code != http.StatusOK || !strings.HasPrefix(string(b), want) {
		t.Errorf("cameleer.json: %d %s, want %s...", code, b, want)
	}
	if code, b, _ := c.get("/downloads/cameleer.sha256"); code != http.StatusOK || string(b) != sum+"  cameleer\n" {
		t.Errorf("cameleer.sha256: %d %q", code, b)
	}
	code, b, hdr := c.get("/downloads/cameleer")
	if code != http.StatusOK || string(b) != string(raw) || hdr.Get("ETag") != `"`+sum+`"` || hdr.Get("X-Cameleer-Version") != "1.2.3" {
		t.Errorf("the binary: %d, %d bytes, headers %v", code, len(b), hdr)
	}

	// The token's answer has the one command.
	var tok struct{ Token, Install string }
	c.do("POST", "/api/v1/tenants", c.admin, map[string]string{"name": "acme", "tier": "low"}, nil)
	if code := c.do("POST", "/api/v1/tenants/acme/runner-tokens", c.admin, nil, &tok); code != http.StatusCreated ||
		tok.Install != "curl -sfL https://cp.example:8443/install.sh | sh -s - --token "+tok.Token {
		t.Errorf("token: %d, install %q", code, tok.Install)
	}

	none := start(t)
	if code, b, _ := none.get("/install.sh"); code != http.StatusOK || string(b) != string(installer.Script()) {
		t.Errorf("install.sh without a binary: %d", code)
	}
	for _, p := range []string{"/downloads/cameleer", "/downloads/cameleer.json", "/downloads/cameleer.sha256"} {
		if code, b, _ := none.get(p); code != http.StatusNotFound || !strings.Contains(string(b), "start it with --runner-binary") {
			t.Errorf("%s without a binary: %d %s", p, code, b)
		}
	}
}
