package certs

import (
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"testing"
	"time"
)

func TestPEMSum(t *testing.T) {
	key, err := NewKey()
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{Subject: pkix.Name{CommonName: "ca"}, NotBefore: time.Now(), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	ca, err := Sign(tmpl, key.Public(), tmpl, key)
	if err != nil {
		t.Fatal(err)
	}
	if got := PEMSum(append(CertPEM(ca), "trailing"...)); got != sha256.Sum256(ca.Raw) {
		t.Errorf("PEMSum = %x, want the DER's %x", got, sha256.Sum256(ca.Raw))
	}
	if got := PEMSum([]byte("no PEM here")); got != ([sha256.Size]byte{}) {
		t.Errorf("PEMSum of no PEM = %x, want zero", got)
	}
}
