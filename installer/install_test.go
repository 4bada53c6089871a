package installer

import (
	"bytes"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"testing"

	"github.com/cameleer/cameleer/api"
	"github.com/cameleer/cameleer/internal/certs"
	"github.com/cameleer/cameleer/internal/testkit/testutil"
)

// hostile is a control plane that lies, on 127.0.0.1 with TLS from its own
// CA: what it publishes of its binary, and how much of it it sends.
type hostile struct {
	binary    []byte
	published string // the SHA-256 it publishes
	arch      string
	truncate  bool
}

func (h *hostile) serve(t *testing.T, ca testutil.Issuer) string {
	t.Helper()
	certFile, keyFile := testutil.ServingFiles(t, t.TempDir(), ca)
	pair, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /install.sh", func(w http.ResponseWriter, _ *http.Request) { w.Write(Script()) })
	mux.HandleFunc("GET /ca.crt", func(w http.ResponseWriter, _ *http.Request) { w.Write(certs.CertPEM(ca.Cert)) })
	mux.HandleFunc("GET /downloads/cameleer.json", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintf(w, `{"version":"9.9.9","commit":"x","arch":%q,"sha256":%q,"size":%d}`, h.arch, h.published, len(h.binary))
	})
	mux.HandleFunc("GET /downloads/cameleer", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Length", strconv.Itoa(len(h.binary)))
		if h.truncate {
			w.Write(h.binary[:len(h.binary)/2])
			panic(http.ErrAbortHandler) // the connection is cut mid-body
		}
		w.Write(h.binary)
	})
	srv := httptest.NewUnstartedServer(mux)
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{pair}}
	srv.Config.ErrorLog = nil
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return "https://" + srv.Listener.Addr().(*net.TCPAddr).String()
}

func sha(b []byte) string {
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}

// TestRefusesWhatItCannotTrust runs install.sh, as `curl | sh` would, against
// control planes that lie, and with tokens it cannot use: each is refused
// with one line, and nothing is left in the bin dir.
func TestRefusesWhatItCannotTrust(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("install.sh runs as root")
	}
	for _, tool := range []string{"curl", "sh", "base64", "sha256sum"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("needs %s", tool)
		}
	}
	arch := runtime.GOARCH
	ca := testutil.NewIssuer(t, "cp-ca", nil)
	other := testutil.NewIssuer(t, "another-ca", nil)
	// An ELF that runs but is no cameleer: what is downloaded and checked
	// is then refused before it is installed.
	elf, err := os.ReadFile("/bin/true")
	if err != nil {
		t.Fatal(err)
	}
	good := &hostile{binary: elf, published: sha(elf), arch: arch}
	url := good.serve(t, ca)
	token := func(pin *testutil.Issuer, u string) string {
		tok, err := api.NewToken(sha256.Sum256(pin.Cert.Raw), u)
		if err != nil {
			t.Fatal(err)
		}
		return tok.String()
	}
	for _, c := range []struct {
		name string
		args []string
		want string
	}{
		{"not a token", []string{"--token", "cmlr1.nope"}, "not a Cameleer one-time token"},
		{"no URL", []string{"--token", token(&ca, "")}, "the token names no control plane: pass --url"},
		{"plain http", []string{"--token", token(&ca, ""), "--url", "http://127.0.0.1:1"}, "is not https://"},
		{"another CA pinned", []string{"--token", token(&other, url)}, "the token pins sha256:" + sha(other.Cert.Raw) + ": refusing it"},
		{"published SHA-256 is not the binary's", []string{"--token", token(&ca, (&hostile{binary: elf, published: sha([]byte("other")), arch: arch}).serve(t, ca))},
			"published " + sha([]byte("other")) + ": not installed"},
		{"cut mid-download", []string{"--token", token(&ca, (&hostile{binary: elf, published: sha(elf), arch: arch, truncate: true}).serve(t, ca))},
			"download cameleer from"},
		{"another architecture", []string{"--token", token(&ca, (&hostile{binary: elf, published: sha(elf), arch: "s390x"}).serve(t, ca))},
			"serves cameleer for s390x hosts, this one is " + arch},
		{"downloaded and checked, but no cameleer", []string{"--token", token(&ca, url)}, "carries no engine"},
		{"a flag without its value", []string{"--token"}, "--token needs a value"},
	} {
		t.Run(c.name, func(t *testing.T) {
			bin := t.TempDir()
			cmd := exec.Command("sh", append([]string{"-s", "-", "--bin-dir", bin}, c.args...)...)
			cmd.Stdin = bytes.NewReader(Script())
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			if err := cmd.Run(); err == nil {
				t.Fatalf("install.sh succeeded")
			}
			// curl says why before install.sh does: both are kept short.
			lines := strings.Split(strings.TrimSpace(stderr.String()), "\n")
			last := lines[len(lines)-1]
			if !strings.HasPrefix(last, "install.sh: ") || !strings.Contains(last, c.want) || len(lines) > 2 {
				t.Errorf("stderr:\n%s\nwant one line with %q", stderr.String(), c.want)
			}
			if left, _ := os.ReadDir(bin); len(left) != 0 {
				t.Errorf("left in the bin dir: %v", left)
			}
		})
	}
}
