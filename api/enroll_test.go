package api

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"strings"
	"testing"
)

func csrPEM(t testing.TB) string { return csrOn(t, elliptic.P256()) }

func csrOn(t testing.TB, curve elliptic.Curve) string {
	t.Helper()
	key, err := ecdsa.GenerateKey(curve, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: "runner"}}, key)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}))
}

func enrollBody(t testing.TB, edit func(*EnrollRequest)) string {
	tok, _ := NewToken(sha256.Sum256([]byte("ca")), "")
	req := EnrollRequest{Token: tok.String(), Name: "edge-1", CSR: csrPEM(t)}
	if edit != nil {
		edit(&req)
	}
	b, _ := json.Marshal(req)
	return string(b)
}

func TestParseEnrollRequest(t *testing.T) {
	if _, _, csr, err := ParseEnrollRequest(strings.NewReader(enrollBody(t, nil))); err != nil || csr == nil {
		t.Fatalf("good request: %v", err)
	}
	for name, body := range map[string]string{
		"not json":      "{",
		"unknown field": `{"token":"x","extra":1}`,
		"bad token":     enrollBody(t, func(r *EnrollRequest) { r.Token = "nope" }),
		"bad name":      enrollBody(t, func(r *EnrollRequest) { r.Name = "Edge_1" }),
		"no csr":        enrollBody(t, func(r *EnrollRequest) { r.CSR = "" }),
		"tampered csr":  enrollBody(t, func(r *EnrollRequest) { r.CSR = strings.Replace(r.CSR, "A", "B", 3) }),
		"P-224 key":     enrollBody(t, func(r *EnrollRequest) { r.CSR = csrOn(t, elliptic.P224()) }),
		"P-521 key":     enrollBody(t, func(r *EnrollRequest) { r.CSR = csrOn(t, elliptic.P521()) }),
		"too large":     `{"name":"` + strings.Repeat("a", MaxEnrollRequest) + `"}`,
	} {
		if _, _, _, err := ParseEnrollRequest(strings.NewReader(body)); err == nil || strings.Contains(err.Error(), "\n") {
			t.Errorf("%s: %v, want a one-line error", name, err)
		}
	}
}

func TestParseCSRCurves(t *testing.T) {
	for _, c := range []elliptic.Curve{elliptic.P256(), elliptic.P384()} {
		if _, err := ParseCSR([]byte(csrOn(t, c))); err != nil {
			t.Errorf("%s: %v", c.Params().Name, err)
		}
	}
	if _, err := ParseCSR([]byte(csrOn(t, elliptic.P521()))); err == nil || !strings.Contains(err.Error(), "P-521 is not P-256 or P-384") {
		t.Errorf("P-521: %v", err)
	}
}

func FuzzParseEnrollRequest(f *testing.F) {
	f.Add(enrollBody(f, nil))
	f.Add(`{"token":"cmlr1.x.y","csr":"-----BEGIN CERTIFICATE REQUEST-----\n-----END CERTIFICATE REQUEST-----"}`)
	f.Fuzz(func(t *testing.T, body string) {
		_, tok, csr, err := ParseEnrollRequest(strings.NewReader(body))
		if err == nil && (csr == nil || len(tok.Secret) != secretLen) {
			t.Fatalf("accepted %q without a CSR or secret", body)
		}
	})
}
