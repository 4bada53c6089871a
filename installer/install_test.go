package installer

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"

	"github.com/cameleer/cameleer/api"
	"github.com/cameleer/cameleer/appliance/bundle"
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

// TestBundleIsCheckedFirst runs install.sh --bundle on bundles made as
// `make bundle` makes them: a genuine one passes its checks (and its
// stand-in binary, no cameleer, is refused after them); a changed one, one
// signed by another key, or one that is no tar is refused with one line
// before anything is installed.
func TestBundleIsCheckedFirst(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("install.sh runs as root")
	}
	for _, tool := range []string{"sh", "tar", "openssl", "sha256sum"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("needs %s", tool)
		}
	}
	dir := t.TempDir()
	var paths []string
	for _, name := range bundle.Files {
		src := map[string]string{"cameleer": "/bin/true"}[name]
		b := []byte("{}\n")
		if src != "" {
			b, _ = os.ReadFile(src)
		}
		p := filepath.Join(dir, name)
		os.WriteFile(p, b, 0o755)
		paths = append(paths, p)
	}
	make := func(priv ed25519.PrivateKey, tamper bool) string {
		var b bytes.Buffer
		if err := bundle.Write(&b, "cameleer-v9", priv, paths); err != nil {
			t.Fatal(err)
		}
		raw := b.Bytes()
		if tamper {
			elf := bytes.Index(raw, []byte("\x7fELF"))
			raw[elf+100] ^= 1
		}
		f := filepath.Join(t.TempDir(), "bundle.tar")
		os.WriteFile(f, raw, 0o644)
		return f
	}
	_, priv, _ := ed25519.GenerateKey(nil)
	_, other, _ := ed25519.GenerateKey(nil)
	key := bundle.FormatPublicKey(priv.Public().(ed25519.PublicKey))
	notTar := filepath.Join(dir, "notatar")
	os.WriteFile(notTar, []byte("hello"), 0o644)
	for _, c := range []struct {
		name   string
		script []byte
		args   []string
		want   string
	}{
		{"genuine, the key given", Script(), []string{"--bundle", make(priv, false), "--signing-key", key}, "carries no engine"},
		{"genuine, the key written in", WithSigningKey(key), []string{"--bundle", make(priv, false)}, "carries no engine"},
		{"a byte of the binary changed", WithSigningKey(key), []string{"--bundle", make(priv, true)}, "a file does not match its signed SHA-256: nothing installed"},
		{"signed by another key", WithSigningKey(key), []string{"--bundle", make(other, false)}, "SHA256SUMS does not match its signature (signed by another key, or changed): nothing installed"},
		{"no key to check it with", Script(), []string{"--bundle", make(priv, false)}, "no key to check the bundle with"},
		{"not a tar", WithSigningKey(key), []string{"--bundle", notTar}, "is not a whole tar: nothing installed"},
	} {
		t.Run(c.name, func(t *testing.T) {
			bin := t.TempDir()
			cmd := exec.Command("sh", append([]string{"-s", "-", "--bin-dir", bin}, c.args...)...)
			cmd.Stdin = bytes.NewReader(c.script)
			var stdout, stderr bytes.Buffer
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			if err := cmd.Run(); err == nil {
				t.Fatalf("install.sh succeeded")
			}
			lines := strings.Split(strings.TrimSpace(stderr.String()), "\n")
			if len(lines) != 1 || !strings.HasPrefix(lines[0], "install.sh: ") || !strings.Contains(lines[0], c.want) {
				t.Errorf("stderr:\n%s\nwant one line with %q", stderr.String(), c.want)
			}
			if c.want == "carries no engine" && !strings.Contains(stdout.String(), "signature and checksums hold") {
				t.Errorf("a genuine bundle's checks not said: %s", stdout.String())
			}
			if left, _ := os.ReadDir(bin); len(left) != 0 {
				t.Errorf("left in the bin dir: %v", left)
			}
		})
	}
}
