// Package pki makes the cluster's certificate authorities, the certificates
// of every engine component and the service-account signing key. Keys are
// ECDSA P-256. Everything is written once and reused; a leaf certificate is
// made again when it is close to expiry or no longer matches what it must
// name (a changed node IP, say), so `cameleer run` renews certificates on
// every start without a separate command.
package pki

import (
	"crypto"
	"crypto/ecdsa"
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

// Lifetimes of what the package makes. A leaf is renewed when less than
// RenewBefore of it is left.
const (
	CALifetime   = 10 * 365 * 24 * time.Hour
	LeafLifetime = 365 * 24 * time.Hour
	RenewBefore  = 90 * 24 * time.Hour
)

// Cert describes one certificate to make.
type Cert struct {
	// Name is the file stem: NAME.crt and NAME.key.
	Name string
	// CA is the file stem of the authority that signs it.
	CA           string
	CommonName   string
	Organization []string
	DNSNames     []string
	IPs          []net.IP
	Client       bool
	Server       bool
}

// Authority is a self-signed CA.
type Authority struct {
	Name       string
	CommonName string
}

// Set is everything one cluster needs.
type Set struct {
	Authorities []Authority
	Certs       []Cert
	// ServiceAccountKey is the file stem of the key pair that signs
	// service-account tokens (NAME.key, NAME.pub).
	ServiceAccountKey string
}

// Ensure writes what is missing or stale of set into dir and leaves the rest
// alone. It reports the names of the files it (re)wrote.
func Ensure(dir string, set Set, now time.Time) ([]string, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("make pki dir: %w", err)
	}
	var wrote []string
	cas := map[string]*issuer{}
	for _, a := range set.Authorities {
		ca, fresh, err := ensureCA(dir, a, now)
		if err != nil {
			return wrote, fmt.Errorf("authority %s: %w", a.Name, err)
		}
		if fresh {
			wrote = append(wrote, a.Name)
		}
		cas[a.Name] = ca
	}
	for _, c := range set.Certs {
		ca := cas[c.CA]
		if ca == nil {
			return wrote, fmt.Errorf("certificate %s: unknown authority %q", c.Name, c.CA)
		}
		fresh, err := ensureLeaf(dir, c, ca, now)
		if err != nil {
			return wrote, fmt.Errorf("certificate %s: %w", c.Name, err)
		}
		if fresh {
			wrote = append(wrote, c.Name)
		}
	}
	if set.ServiceAccountKey != "" {
		fresh, err := ensureKeyPair(dir, set.ServiceAccountKey)
		if err != nil {
			return wrote, fmt.Errorf("service-account key: %w", err)
		}
		if fresh {
			wrote = append(wrote, set.ServiceAccountKey)
		}
	}
	return wrote, nil
}

type issuer struct {
	cert *x509.Certificate
	key  crypto.Signer
}

func ensureCA(dir string, a Authority, now time.Time) (*issuer, bool, error) {
	cert, key, err := load(dir, a.Name)
	if err == nil && now.Before(cert.NotAfter) {
		return &issuer{cert, key}, false, nil
	}
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, false, err
	}
	key, err = newKey()
	if err != nil {
		return nil, false, err
	}
	tmpl := &x509.Certificate{
		Subject:               pkix.Name{CommonName: a.CommonName},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(CALifetime),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	cert, err = sign(tmpl, key.Public(), tmpl, key)
	if err != nil {
		return nil, false, err
	}
	if err := store(dir, a.Name, cert, key); err != nil {
		return nil, false, err
	}
	return &issuer{cert, key}, true, nil
}

func ensureLeaf(dir string, c Cert, ca *issuer, now time.Time) (bool, error) {
	cert, key, err := load(dir, c.Name)
	switch {
	case err == nil && current(cert, c, ca, now):
		return false, nil
	case err == nil:
		// Keep the key; only the certificate changes.
	case errors.Is(err, os.ErrNotExist):
		if key, err = newKey(); err != nil {
			return false, err
		}
	default:
		return false, err
	}
	cert, err = sign(leafTemplate(c, now), key.Public(), ca.cert, ca.key)
	if err != nil {
		return false, err
	}
	return true, store(dir, c.Name, cert, key)
}

func leafTemplate(c Cert, now time.Time) *x509.Certificate {
	tmpl := &x509.Certificate{
		Subject:               pkix.Name{CommonName: c.CommonName, Organization: c.Organization},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(LeafLifetime),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		BasicConstraintsValid: true,
		DNSNames:              c.DNSNames,
		IPAddresses:           c.IPs,
	}
	if c.Client {
		tmpl.ExtKeyUsage = append(tmpl.ExtKeyUsage, x509.ExtKeyUsageClientAuth)
	}
	if c.Server {
		tmpl.ExtKeyUsage = append(tmpl.ExtKeyUsage, x509.ExtKeyUsageServerAuth)
	}
	return tmpl
}

// Sign makes c for a key held elsewhere (another node's, sent in a
// request), signed by c.CA from dir: what c says, nothing the key's holder
// asked for.
func Sign(dir string, c Cert, pub crypto.PublicKey, now time.Time) (*x509.Certificate, error) {
	ca, key, err := load(dir, c.CA)
	if err != nil {
		return nil, fmt.Errorf("authority %s: %w", c.CA, err)
	}
	return sign(leafTemplate(c, now), pub, ca, key)
}

// current tells whether cert is still what c asks for, signed by ca, and
// far enough from expiry.
func current(cert *x509.Certificate, c Cert, ca *issuer, now time.Time) bool {
	if cert.CheckSignatureFrom(ca.cert) != nil || now.Add(RenewBefore).After(cert.NotAfter) {
		return false
	}
	if cert.Subject.CommonName != c.CommonName || !slices.Equal(cert.Subject.Organization, c.Organization) {
		return false
	}
	if !slices.Equal(cert.DNSNames, c.DNSNames) || len(cert.IPAddresses) != len(c.IPs) {
		return false
	}
	for i, ip := range cert.IPAddresses {
		if !ip.Equal(c.IPs[i]) {
			return false
		}
	}
	return true
}

func ensureKeyPair(dir, name string) (bool, error) {
	keyPath := filepath.Join(dir, name+".key")
	if _, err := readKey(keyPath); err == nil {
		if _, err := os.Stat(filepath.Join(dir, name+".pub")); err == nil {
			return false, nil
		}
	}
	key, err := newKey()
	if err != nil {
		return false, err
	}
	der, err := x509.MarshalPKIXPublicKey(key.Public())
	if err != nil {
		return false, err
	}
	if err := writeKey(keyPath, key); err != nil {
		return false, err
	}
	return true, writeAtomic(filepath.Join(dir, name+".pub"), pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), 0o644)
}

func newKey() (*ecdsa.PrivateKey, error) { return certs.NewKey() }

func sign(tmpl *x509.Certificate, pub crypto.PublicKey, parent *x509.Certificate, key crypto.Signer) (*x509.Certificate, error) {
	return certs.Sign(tmpl, pub, parent, key)
}

// load reads NAME.crt and NAME.key; a missing file is os.ErrNotExist.
func load(dir, name string) (*x509.Certificate, crypto.Signer, error) {
	return certs.Load(filepath.Join(dir, name+".crt"), filepath.Join(dir, name+".key"))
}

func readKey(path string) (crypto.Signer, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	block, _ := pem.Decode(b)
	if block == nil {
		return nil, fmt.Errorf("%s: not PEM", filepath.Base(path))
	}
	k, err := x509.ParseECPrivateKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", filepath.Base(path), err)
	}
	return k, nil
}

func store(dir, name string, cert *x509.Certificate, key crypto.Signer) error {
	if err := writeKey(filepath.Join(dir, name+".key"), key); err != nil {
		return err
	}
	return writeAtomic(filepath.Join(dir, name+".crt"), certs.CertPEM(cert), 0o644)
}

func writeKey(path string, key crypto.Signer) error {
	b, err := certs.KeyPEM(key)
	if err != nil {
		return err
	}
	return writeAtomic(path, b, 0o600)
}

func writeAtomic(path string, b []byte, mode os.FileMode) error {
	_, err := atomicfile.WriteFile(path, b, mode)
	return err
}
