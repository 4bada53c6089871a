package api

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"regexp"
	"time"
)

// EnrollPath is where a runner redeems its one-time token.
const EnrollPath = "/api/v1/enroll"

// RenewPath is where a connected runner renews its certificate, through the
// tunnel.
const RenewPath = "/api/v1/runner/renew"

// HeartbeatPath is where a connected runner posts heartbeats, through the
// tunnel.
const HeartbeatPath = "/api/v1/runner/heartbeat"

// MaxEnrollRequest bounds the size of an enrollment request.
const MaxEnrollRequest = 16 << 10

// EnrollRequest redeems a one-time token for a client certificate.
type EnrollRequest struct {
	// Token is the whole one-time token as the user pasted it.
	Token string `json:"token"`
	// Name names the runner; empty: the control plane picks one.
	Name string `json:"name,omitempty"`
	// CSR is a PEM certificate request for an ECDSA key made on the runner.
	CSR string `json:"csr"`
}

// EnrollResponse is the runner's identity.
type EnrollResponse struct {
	RunnerID string `json:"runnerId"`
	Tenant   string `json:"tenant"`
	Name     string `json:"name"`
	// Certificate and CA are PEM.
	Certificate string    `json:"certificate"`
	CA          string    `json:"ca"`
	NotAfter    time.Time `json:"notAfter"`
}

var nameRE = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)

// ValidName tells whether s is a valid name for a tenant or runner: DNS label
// rules, lower case.
func ValidName(s string) error {
	if !nameRE.MatchString(s) {
		return fmt.Errorf("name %q must be 1-63 lower-case letters, digits and '-', starting and ending with a letter or digit", s)
	}
	return nil
}

// ParseEnrollRequest reads and checks an enrollment request: the token
// parses, the name is valid, and the CSR is a PEM ECDSA request whose
// signature holds.
func ParseEnrollRequest(r io.Reader) (EnrollRequest, Token, *x509.CertificateRequest, error) {
	var req EnrollRequest
	b, err := io.ReadAll(io.LimitReader(r, MaxEnrollRequest+1))
	if err != nil {
		return req, Token{}, nil, fmt.Errorf("read enrollment request: %w", err)
	}
	if len(b) > MaxEnrollRequest {
		return req, Token{}, nil, errors.New("enrollment request too large")
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		return req, Token{}, nil, fmt.Errorf("enrollment request: %w", err)
	}
	tok, err := ParseToken(req.Token)
	if err != nil {
		return req, tok, nil, err
	}
	if req.Name != "" {
		if err := ValidName(req.Name); err != nil {
			return req, tok, nil, err
		}
	}
	csr, err := ParseCSR([]byte(req.CSR))
	if err != nil {
		return req, tok, nil, err
	}
	return req, tok, csr, nil
}

// ParseCSR reads a PEM ECDSA certificate request for a P-256 or P-384 key
// and checks its signature.
func ParseCSR(b []byte) (*x509.CertificateRequest, error) {
	block, _ := pem.Decode(b)
	if block == nil || block.Type != "CERTIFICATE REQUEST" {
		return nil, errors.New("csr: not a PEM certificate request")
	}
	csr, err := x509.ParseCertificateRequest(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("csr: %w", err)
	}
	if err := csr.CheckSignature(); err != nil {
		return nil, fmt.Errorf("csr: %w", err)
	}
	pub, ok := csr.PublicKey.(*ecdsa.PublicKey)
	if !ok {
		return nil, errors.New("csr: the key must be ECDSA")
	}
	// The curves the CA and TLS 1.3 both take; anything else would be
	// signed into a certificate no handshake accepts.
	if pub.Curve != elliptic.P256() && pub.Curve != elliptic.P384() {
		return nil, fmt.Errorf("csr: the key's curve %s is not P-256 or P-384", pub.Curve.Params().Name)
	}
	return csr, nil
}
