package testutil

import (
	"crypto/ecdsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/cameleer/cameleer/internal/certs"
)

// Issuer is a CA certificate and its key, for chains such as a company CA
// makes.
type Issuer struct {
	Cert *x509.Certificate
	Key  *ecdsa.PrivateKey
}

// NewIssuer makes a CA named name, signed by parent (nil: a root).
func NewIssuer(t testing.TB, name string, parent *Issuer) Issuer {
	t.Helper()
	key, err := certs.NewKey()
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		Subject: pkix.Name{CommonName: name}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageCertSign, BasicConstraintsValid: true, IsCA: true,
	}
	p := Issuer{tmpl, key}
	if parent != nil {
		p = *parent
	}
	c, err := certs.Sign(tmpl, key.Public(), p.Cert, p.Key)
	if err != nil {
		t.Fatal(err)
	}
	return Issuer{c, key}
}

// ServingFiles writes, in dir, a serving certificate for 127.0.0.1 signed
// by by, followed by chain, in serving.crt, and its key in serving.key.
func ServingFiles(t testing.TB, dir string, by Issuer, chain ...*x509.Certificate) (certFile, keyFile string) {
	t.Helper()
	key, err := certs.NewKey()
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := certs.Sign(&x509.Certificate{
		Subject: pkix.Name{CommonName: "cp"}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
	}, key.Public(), by.Cert, by.Key)
	if err != nil {
		t.Fatal(err)
	}
	pemChain := certs.CertPEM(leaf)
	for _, c := range chain {
		pemChain = append(pemChain, certs.CertPEM(c)...)
	}
	keyPEM, err := certs.KeyPEM(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, "serving.crt"), filepath.Join(dir, "serving.key")
	if err := os.WriteFile(certFile, pemChain, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, keyPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile
}
