// Package ca is the control plane's certificate authority: it serves the
// control plane's TLS port and signs runners' client certificates. The CA
// is made on first start in the data dir and never leaves it; runners pin
// it by its SHA-256.
package ca

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/cameleer/cameleer/internal/atomicfile"
	"github.com/cameleer/cameleer/internal/certs"
)

// Lifetimes.
const (
	caLifetime      = 10 * 365 * 24 * time.Hour
	servingLifetime = 365 * 24 * time.Hour
	// DefaultRunnerLifetime is short: runners renew over the tunnel at
	// half-life, and a certificate that leaks is worthless soon.
	DefaultRunnerLifetime = 7 * 24 * time.Hour
)

// CA signs certificates.
type CA struct {
	Cert *x509.Certificate
	key  crypto.Signer
}

// Load reads ca.crt and ca.key from dir; a missing one is an
// os.ErrNotExist.
func Load(dir string) (*CA, error) {
	cert, key, err := load(filepath.Join(dir, "ca.crt"), filepath.Join(dir, "ca.key"))
	if errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	if err != nil {
		return nil, fmt.Errorf("load CA: %w", err)
	}
	return &CA{cert, key}, nil
}

// Create makes a new CA in dir: the key, then the certificate, each synced,
// so a ca.crt on disk always has its key beside it.
func Create(dir string) (*CA, error) {
	k, err := certs.NewKey()
	if err != nil {
		return nil, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		Subject:               pkix.Name{CommonName: "cameleer-controlplane-ca"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(caLifetime),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	c := &CA{key: k}
	if c.Cert, err = c.sign(tmpl, k.Public(), tmpl); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	if err := writeKey(filepath.Join(dir, "ca.key"), k); err != nil {
		return nil, err
	}
	if _, err := atomicfile.WriteFile(filepath.Join(dir, "ca.crt"), c.PEM(), 0o644); err != nil {
		return nil, err
	}
	return c, nil
}

// Hash is the SHA-256 of the CA certificate: what tokens carry.
func (c *CA) Hash() [sha256.Size]byte { return sha256.Sum256(c.Cert.Raw) }

// PEM is the CA certificate.
func (c *CA) PEM() []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Cert.Raw})
}

// Pool holds just this CA.
func (c *CA) Pool() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(c.Cert)
	return p
}

// ServingRenewBefore is how long before its expiry a serving certificate is
// made again.
const ServingRenewBefore = 30 * 24 * time.Hour

// ServingCert returns the control plane's TLS certificate for names, from
// dir if one is there that names them all and is not near expiry, else a
// new one.
func (c *CA) ServingCert(dir string, names []string) (tls.Certificate, error) {
	certPath, keyPath := filepath.Join(dir, "serving.crt"), filepath.Join(dir, "serving.key")
	var dns []string
	var ips []net.IP
	for _, n := range names {
		if ip := net.ParseIP(n); ip != nil {
			ips = append(ips, ip)
		} else {
			dns = append(dns, n)
		}
	}
	if cert, key, err := load(certPath, keyPath); err == nil && cert.CheckSignatureFrom(c.Cert) == nil &&
		time.Until(cert.NotAfter) > ServingRenewBefore && covers(cert, dns, ips) {
		return tls.Certificate{Certificate: [][]byte{cert.Raw, c.Cert.Raw}, PrivateKey: key, Leaf: cert}, nil
	}
	k, err := certs.NewKey()
	if err != nil {
		return tls.Certificate{}, err
	}
	now := time.Now()
	cert, err := c.sign(&x509.Certificate{
		Subject:     pkix.Name{CommonName: "cameleer-controlplane"},
		NotBefore:   now.Add(-time.Hour),
		NotAfter:    now.Add(servingLifetime),
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames:    dns,
		IPAddresses: ips,
	}, k.Public(), c.Cert)
	if err != nil {
		return tls.Certificate{}, err
	}
	if err := writeKey(keyPath, k); err != nil {
		return tls.Certificate{}, err
	}
	if _, err := atomicfile.WriteFile(certPath, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Raw}), 0o644); err != nil {
		return tls.Certificate{}, err
	}
	// The chain carries the CA, so a runner holding only its hash (from a
	// one-time token) can verify the server.
	return tls.Certificate{Certificate: [][]byte{cert.Raw, c.Cert.Raw}, PrivateKey: k, Leaf: cert}, nil
}

func covers(cert *x509.Certificate, dns []string, ips []net.IP) bool {
	for _, d := range dns {
		if !slices.Contains(cert.DNSNames, d) {
			return false
		}
	}
	for _, ip := range ips {
		if !slices.ContainsFunc(cert.IPAddresses, ip.Equal) {
			return false
		}
	}
	return true
}

// Runner is whom a runner certificate names.
type Runner struct{ ID, Tenant string }

// SignRunner issues a runner's client certificate valid for lifetime: CN is
// the runner's id, O its tenant. It signs only what a runner can hold: an
// ECDSA key (the tunnel's TLS 1.3 handshakes take no other from a runner),
// for a lifetime that has one.
func (c *CA) SignRunner(pub crypto.PublicKey, r Runner, now time.Time, lifetime time.Duration) (*x509.Certificate, error) {
	if _, ok := pub.(*ecdsa.PublicKey); !ok {
		return nil, fmt.Errorf("sign runner %s: a %T key, not ECDSA", r.ID, pub)
	}
	if lifetime <= 0 {
		return nil, fmt.Errorf("sign runner %s: lifetime %s", r.ID, lifetime)
	}
	return c.sign(&x509.Certificate{
		Subject: pkix.Name{CommonName: r.ID, Organization: []string{r.Tenant}},
		// Backdated a little for clocks that run behind.
		NotBefore:   now.Add(-min(5*time.Minute, lifetime/10)),
		NotAfter:    now.Add(lifetime),
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}, pub, c.Cert)
}

func (c *CA) sign(tmpl *x509.Certificate, pub crypto.PublicKey, parent *x509.Certificate) (*x509.Certificate, error) {
	return certs.Sign(tmpl, pub, parent, c.key)
}

func load(certPath, keyPath string) (*x509.Certificate, crypto.Signer, error) {
	return certs.Load(certPath, keyPath)
}

func writeKey(path string, k crypto.Signer) error {
	b, err := certs.KeyPEM(k)
	if err != nil {
		return err
	}
	_, err = atomicfile.WriteFile(path, b, 0o600)
	return err
}
