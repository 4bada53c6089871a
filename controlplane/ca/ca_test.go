package ca

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/cameleer/cameleer/internal/certs"
)

func newCA(t *testing.T) (*CA, string) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "ca")
	c, err := Create(dir)
	if err != nil {
		t.Fatal(err)
	}
	return c, dir
}

func newKey(t *testing.T) *ecdsa.PrivateKey {
	t.Helper()
	k, err := certs.NewKey()
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// signRunner signs a certificate for runner id of tenant.
func signRunner(t *testing.T, c *CA, pub any, id, tenant string, now time.Time, lifetime time.Duration) *x509.Certificate {
	t.Helper()
	cert, err := c.SignRunner(pub, Runner{ID: id, Tenant: tenant}, now, lifetime)
	if err != nil {
		t.Fatal(err)
	}
	return cert
}

// The CA is a P-256 key and a self-signed CA certificate for ten years,
// which can sign certificates and nothing else of note; only the
// certificate may be read by others.
func TestCreate(t *testing.T) {
	before := time.Now().Truncate(time.Second)
	c, dir := newCA(t)
	cert := c.Cert
	if !cert.IsCA || !cert.BasicConstraintsValid || cert.KeyUsage&x509.KeyUsageCertSign == 0 {
		t.Errorf("CA certificate: IsCA %v, basic constraints %v, key usage %b", cert.IsCA, cert.BasicConstraintsValid, cert.KeyUsage)
	}
	if err := cert.CheckSignatureFrom(cert); err != nil {
		t.Errorf("not self-signed: %v", err)
	}
	if pub, ok := cert.PublicKey.(*ecdsa.PublicKey); !ok || pub.Curve != elliptic.P256() {
		t.Errorf("CA key %T, want ECDSA P-256", cert.PublicKey)
	}
	if years := cert.NotAfter.Sub(before) / (365 * 24 * time.Hour); years != 10 {
		t.Errorf("CA valid until %s, %d years", cert.NotAfter, years)
	}
	if cert.NotBefore.After(before) {
		t.Errorf("CA valid from %s, after it was made (%s)", cert.NotBefore, before)
	}
	for name, want := range map[string]os.FileMode{".": 0o700 | os.ModeDir, "ca.key": 0o600, "ca.crt": 0o644} {
		if fi, err := os.Stat(filepath.Join(dir, name)); err != nil || fi.Mode() != want {
			t.Errorf("%s: %v (%v), want mode %v", name, fi.Mode(), err, want)
		}
	}
	b, err := os.ReadFile(filepath.Join(dir, "ca.crt"))
	if err != nil || !bytes.Equal(b, c.PEM()) {
		t.Errorf("ca.crt holds %q (%v), want the CA's PEM", b, err)
	}
}

// A loaded CA is the one created, key and all: what it signs verifies
// against the certificate runners pinned.
func TestLoad(t *testing.T) {
	made, dir := newCA(t)
	c, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	if c.Hash() != made.Hash() || !bytes.Equal(c.Cert.Raw, made.Cert.Raw) {
		t.Fatal("the loaded CA is not the one created")
	}
	cert := signRunner(t, c, newKey(t).Public(), "r1", "acme", time.Now(), time.Hour)
	if _, err := cert.Verify(x509.VerifyOptions{Roots: made.Pool(), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Errorf("signed by the loaded CA, refused by the created one: %v", err)
	}
}

// A missing file is os.ErrNotExist, which the control plane tells from a
// damaged one: only a CA never made may be made anew, one that cannot be
// read must be restored, never replaced (runners pin it).
func TestLoadRefuses(t *testing.T) {
	_, other := newCA(t)
	otherKey, err := os.ReadFile(filepath.Join(other, "ca.key"))
	if err != nil {
		t.Fatal(err)
	}
	remove := func(name string) func(string) error {
		return func(dir string) error { return os.Remove(filepath.Join(dir, name)) }
	}
	write := func(name string, b []byte) func(string) error {
		return func(dir string) error { return os.WriteFile(filepath.Join(dir, name), b, 0o600) }
	}
	for _, tc := range []struct {
		name    string
		damage  func(dir string) error
		missing bool
		want    string
	}{
		{"no ca.crt", remove("ca.crt"), true, ""},
		{"no ca.key", remove("ca.key"), true, ""},
		{"ca.crt damaged", write("ca.crt", []byte("-----BEGIN CERT")), false, "ca.crt: tls: failed to find any PEM data in certificate input"},
		{"ca.key damaged", write("ca.key", nil), false, "tls: failed to find any PEM data in key input"},
		{"another CA's key", write("ca.key", otherKey), false, "private key does not match public key"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, dir := newCA(t)
			if err := tc.damage(dir); err != nil {
				t.Fatal(err)
			}
			c, err := Load(dir)
			switch {
			case c != nil || err == nil:
				t.Fatalf("loaded: %v", err)
			case errors.Is(err, os.ErrNotExist) != tc.missing:
				t.Errorf("%v: os.ErrNotExist %v, want %v", err, !tc.missing, tc.missing)
			case !tc.missing && (!strings.HasPrefix(err.Error(), "load CA: ") || !strings.Contains(err.Error(), tc.want)):
				t.Errorf("%v, want load CA: ...%s", err, tc.want)
			}
		})
	}
}

// A runner's certificate names the runner (CN) and its tenant (O), serves
// as a TLS client certificate for its lifetime, and for nothing else: not
// as a server's, not to sign.
func TestSignRunner(t *testing.T) {
	c, _ := newCA(t)
	key := newKey(t)
	now := time.Now().Truncate(time.Second)
	const lifetime = DefaultRunnerLifetime
	cert := signRunner(t, c, key.Public(), "3f2a9c", "acme", now, lifetime)

	if want := (pkix.Name{CommonName: "3f2a9c", Organization: []string{"acme"}}); cert.Subject.String() != want.String() {
		t.Errorf("subject %q, want %q", cert.Subject, want)
	}
	if cert.KeyUsage != x509.KeyUsageDigitalSignature || !reflect.DeepEqual(cert.ExtKeyUsage, []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}) ||
		cert.IsCA || len(cert.UnknownExtKeyUsage) > 0 {
		t.Errorf("key usage %b, ext key usage %v, CA %v: want a digital signature for client auth only", cert.KeyUsage, cert.ExtKeyUsage, cert.IsCA)
	}
	if !key.PublicKey.Equal(cert.PublicKey) {
		t.Error("the certificate is not for the runner's key")
	}
	if !cert.NotBefore.Equal(now.Add(-5*time.Minute)) || !cert.NotAfter.Equal(now.Add(lifetime)) {
		t.Errorf("valid %s to %s, want 5 minutes before %s for %s", cert.NotBefore, cert.NotAfter, now, lifetime)
	}
	if err := cert.CheckSignatureFrom(c.Cert); err != nil {
		t.Errorf("not signed by the CA: %v", err)
	}

	verify := func(at time.Time, usage x509.ExtKeyUsage) error {
		_, err := cert.Verify(x509.VerifyOptions{Roots: c.Pool(), CurrentTime: at, KeyUsages: []x509.ExtKeyUsage{usage}})
		return err
	}
	if err := verify(now, x509.ExtKeyUsageClientAuth); err != nil {
		t.Errorf("as a client certificate: %v", err)
	}
	if err := verify(now, x509.ExtKeyUsageServerAuth); err == nil {
		t.Error("a runner's certificate serves as a server's")
	}
	if err := verify(now.Add(lifetime+time.Second), x509.ExtKeyUsageClientAuth); err == nil {
		t.Error("valid past its lifetime")
	}
	// A short lifetime is backdated by a tenth of it, not 5 minutes.
	short := signRunner(t, c, key.Public(), "3f2a9c", "acme", now, 10*time.Minute)
	if !short.NotBefore.Equal(now.Add(-time.Minute)) {
		t.Errorf("a 10-minute certificate is valid from %s, want a minute before %s", short.NotBefore, now)
	}
}

// Every certificate has a serial of its own, a runner's renewals and the
// CA's included: the control plane tells a runner's current certificate
// from its earlier ones by serial.
func TestSignRunnerSerials(t *testing.T) {
	c, _ := newCA(t)
	key := newKey(t)
	seen := map[string]bool{c.Cert.SerialNumber.String(): true}
	for range 64 {
		cert := signRunner(t, c, key.Public(), "3f2a9c", "acme", time.Now(), time.Hour)
		s := cert.SerialNumber
		if s.Sign() <= 0 || s.BitLen() > 127 || seen[s.String()] {
			t.Fatalf("serial %v: not positive, longer than 127 bits, or seen before", s)
		}
		seen[s.String()] = true
	}
}

// Only an ECDSA public key is signed, and only for a lifetime that has
// one. (api.ParseCSR refuses other keys before; the CA does not count on
// it.)
func TestSignRunnerRefusesKeys(t *testing.T) {
	c, _ := newCA(t)
	_, edPub, _ := ed25519.GenerateKey(rand.Reader)
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	for _, pub := range []any{nil, []byte("not a key"), newKey(t), edPub, &rsaKey.PublicKey} { // a private key is not a public one
		if cert, err := c.SignRunner(pub, Runner{ID: "3f2a9c", Tenant: "acme"}, time.Now(), time.Hour); err == nil || cert != nil {
			t.Errorf("signed a %T", pub)
		}
	}
	for _, lifetime := range []time.Duration{0, -time.Hour} {
		if _, err := c.SignRunner(newKey(t).Public(), Runner{ID: "3f2a9c", Tenant: "acme"}, time.Now(), lifetime); err == nil {
			t.Errorf("signed for a lifetime of %s", lifetime)
		}
	}
}

// The serving certificate is kept while it is the CA's, names every name
// asked for and is not near its end; otherwise it is made again.
func TestServingCert(t *testing.T) {
	c, dir := newCA(t)
	names := []string{"cp.example", "192.0.2.1"}
	first, err := c.ServingCert(dir, names)
	if err != nil {
		t.Fatal(err)
	}
	leaf := first.Leaf
	if !reflect.DeepEqual(leaf.DNSNames, []string{"cp.example"}) || len(leaf.IPAddresses) != 1 || !leaf.IPAddresses[0].Equal(net.ParseIP("192.0.2.1")) {
		t.Errorf("names %v %v, want cp.example and 192.0.2.1", leaf.DNSNames, leaf.IPAddresses)
	}
	if !reflect.DeepEqual(leaf.ExtKeyUsage, []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}) || leaf.IsCA {
		t.Errorf("ext key usage %v, CA %v: want server auth only", leaf.ExtKeyUsage, leaf.IsCA)
	}
	// A runner holds only the CA's hash: the chain carries the CA.
	if len(first.Certificate) != 2 || !bytes.Equal(first.Certificate[1], c.Cert.Raw) {
		t.Error("the chain does not end in the CA")
	}
	for _, host := range names {
		if _, err := leaf.Verify(x509.VerifyOptions{Roots: c.Pool(), DNSName: host}); err != nil {
			t.Errorf("%s: %v", host, err)
		}
	}
	if fi, err := os.Stat(filepath.Join(dir, "serving.key")); err != nil || fi.Mode() != 0o600 {
		t.Errorf("serving.key: %v", err)
	}

	same := func(names ...string) bool {
		t.Helper()
		again, err := c.ServingCert(dir, names)
		if err != nil {
			t.Fatal(err)
		}
		return bytes.Equal(again.Leaf.Raw, leaf.Raw)
	}
	if !same(names...) || !same("192.0.2.1") {
		t.Error("made again for names it has")
	}
	if same("cp.example", "cp2.example") {
		t.Error("kept without a name asked for")
	}

	// Another CA's, or one near its end, is made again.
	other, _ := newCA(t)
	if _, err := other.ServingCert(dir, names); err != nil {
		t.Fatal(err)
	}
	if again, err := c.ServingCert(dir, names); err != nil || again.Leaf.CheckSignatureFrom(c.Cert) != nil {
		t.Errorf("another CA's serving certificate kept (%v)", err)
	}
	k := newKey(t)
	old, err := c.sign(&x509.Certificate{NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(ServingRenewBefore - time.Hour),
		DNSNames: []string{"cp.example"}, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}, k.Public(), c.Cert)
	if err != nil {
		t.Fatal(err)
	}
	kb, _ := certs.KeyPEM(k)
	os.WriteFile(filepath.Join(dir, "serving.crt"), certs.CertPEM(old), 0o644)
	os.WriteFile(filepath.Join(dir, "serving.key"), kb, 0o600)
	renewed, err := c.ServingCert(dir, []string{"cp.example"})
	if err != nil {
		t.Fatal(err)
	}
	if time.Until(renewed.Leaf.NotAfter) <= ServingRenewBefore {
		t.Errorf("one that ends %s kept", renewed.Leaf.NotAfter)
	}
}
