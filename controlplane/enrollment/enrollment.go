// Package enrollment gives runners their identity: one-time tokens made
// for a tenant, redeemed once (in one transaction) for a client certificate
// signed from the runner's CSR, and renewals of that certificate through
// the tunnel. The runner's key never leaves its host.
package enrollment

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/cameleer/cameleer/api"
	"github.com/cameleer/cameleer/controlplane/ca"
	"github.com/cameleer/cameleer/controlplane/store"
	"github.com/cameleer/cameleer/internal/certs"
	"github.com/cameleer/cameleer/internal/httpjson"
)

// Bounds of a one-time token's lifetime.
const (
	DefaultTokenTTL = 15 * time.Minute
	MaxTokenTTL     = 24 * time.Hour
)

// Options configure the service.
type Options struct {
	Store *store.Store
	CA    *ca.CA
	// Anchor is the root runners trust the control plane by: its CA, or
	// the root of a serving certificate of another CA. Its SHA-256 is what
	// one-time tokens pin.
	Anchor func() *x509.Certificate
	// URL goes into one-time tokens and install commands ("": the user
	// names the control plane when redeeming).
	URL string
	// Lifetime of runner certificates; MaxTokens is how many one-time
	// tokens a tenant may have waiting.
	Lifetime  time.Duration
	MaxTokens int
	Log       *slog.Logger
}

// Service makes and redeems one-time tokens and signs runner certificates.
type Service struct{ opts Options }

// New makes the service.
func New(opts Options) *Service { return &Service{opts: opts} }

// CAHash is the SHA-256 of the root runners pin.
func (s *Service) CAHash() [32]byte { return sha256.Sum256(s.opts.Anchor().Raw) }

// Token is a one-time token as its maker sees it, once.
type Token struct {
	Token   string    `json:"token"`
	Expires time.Time `json:"expires"`
	// Command registers a host that has cameleer with it.
	Command string `json:"command"`
	// Install makes a bare host a runner with it: install.sh, fetched
	// from the control plane, downloads cameleer, installs the node and
	// redeems the token (docs/install.md).
	Install string `json:"install"`
}

// CreateToken makes a one-time token for tenant, valid for ttl (0: the
// default). Over the tenant's quota is store.ErrQuota.
func (s *Service) CreateToken(tenant string, ttl time.Duration, now time.Time) (Token, error) {
	if ttl == 0 {
		ttl = DefaultTokenTTL
	}
	if ttl < 0 || ttl > MaxTokenTTL {
		return Token{}, httpjson.Errorf(http.StatusBadRequest, "ttl %s must be a duration up to %s", ttl, MaxTokenTTL)
	}
	tok, err := api.NewToken(s.CAHash(), s.opts.URL)
	if err != nil {
		return Token{}, fmt.Errorf("make a one-time token: %w", err)
	}
	expires := now.Add(ttl).UTC()
	if err := s.opts.Store.CreateRunnerToken(store.RunnerToken{Hash: tok.SecretHash(), Tenant: tenant, Expires: expires}, s.opts.MaxTokens, now); err != nil {
		return Token{}, err
	}
	cmd := "cameleer token redeem " + tok.String()
	install := "curl -sfL " + strings.TrimSuffix(s.opts.URL, "/") + "/install.sh | sh -s - --token " + tok.String()
	if s.opts.URL == "" {
		cmd += " --control-plane https://CONTROL-PLANE:PORT"
		install = "curl -sfL https://CONTROL-PLANE:PORT/install.sh | sh -s - --token " + tok.String() + " --url https://CONTROL-PLANE:PORT"
	}
	return Token{Token: tok.String(), Expires: expires, Command: cmd, Install: install}, nil
}

// Register redeems the one-time token of an enrollment request (body): the
// runner's CSR is signed and the runner registered, or the request is
// refused with a *httpjson.StatusError of one line.
func (s *Service) Register(body io.Reader, now time.Time) (api.EnrollResponse, error) {
	req, tok, csr, err := api.ParseEnrollRequest(body)
	if err != nil {
		return api.EnrollResponse{}, httpjson.Errorf(http.StatusBadRequest, "%v", err)
	}
	if tok.CAHash != s.CAHash() {
		return api.EnrollResponse{}, httpjson.Errorf(http.StatusUnauthorized, "the token was made by another control plane")
	}
	pub, err := x509.MarshalPKIXPublicKey(csr.PublicKey)
	if err != nil {
		return api.EnrollResponse{}, httpjson.Errorf(http.StatusBadRequest, "csr: %v", err)
	}
	key := sha256.Sum256(pub)
	var resp api.EnrollResponse
	_, err = s.opts.Store.Redeem(tok.SecretHash(), hex.EncodeToString(key[:]), now, func(tenant string, again *store.Runner) (store.Runner, error) {
		r := store.Runner{ID: NewID(), Tenant: tenant, Name: req.Name, Created: now.UTC()}
		if again != nil {
			// The same host again, its first answer lost: the same runner,
			// a new certificate (the first one's serial is refused).
			r = *again
		}
		if r.Name == "" {
			r.Name = "runner-" + r.ID[:8]
		}
		cert, err := s.opts.CA.SignRunner(csr.PublicKey, ca.Runner{ID: r.ID, Tenant: tenant}, now, s.opts.Lifetime)
		if err != nil {
			return store.Runner{}, err
		}
		r.Serial, r.NotAfter = cert.SerialNumber.String(), cert.NotAfter
		resp = s.answer(r, cert)
		return r, nil
	})
	switch {
	case errors.Is(err, store.ErrTokenUnknown), errors.Is(err, store.ErrTokenUsed), errors.Is(err, store.ErrTokenExpired):
		return resp, httpjson.Errorf(http.StatusUnauthorized, "%v", err)
	case errors.Is(err, store.ErrExists):
		return resp, httpjson.Errorf(http.StatusConflict, "%v", err)
	case err != nil:
		return resp, fmt.Errorf("register a runner: %w", err)
	}
	s.opts.Log.Info("runner registered", "runner", resp.RunnerID, "tenant", resp.Tenant, "name", resp.Name)
	return resp, nil
}

// Renew signs a connected runner a new certificate for the key of its CSR.
// tunnelSerial is the certificate its tunnel came with; held, if not
// empty, the one it says it holds (the tunnel may be older than a renewal
// it stored). The certificate it holds stays good until it shows it stored
// the new one: the answer may be lost.
func (s *Service) Renew(ctx context.Context, runnerID, tunnelSerial, held string, csrPEM []byte) (api.EnrollResponse, error) {
	csr, err := api.ParseCSR(csrPEM)
	if err != nil {
		return api.EnrollResponse{}, httpjson.Errorf(http.StatusBadRequest, "%v", err)
	}
	var resp api.EnrollResponse
	_, err = s.opts.Store.UpdateRunner(runnerID, func(rn *store.Runner) error {
		if rn.Revoked {
			return httpjson.Errorf(http.StatusForbidden, "revoked")
		}
		// One that names neither current certificate is a renewal
		// overtaken by a later one (the runner gave up on it): it must not
		// replace the later one.
		prev := tunnelSerial
		if held != "" {
			if held != rn.Serial && held != rn.PrevSerial {
				return httpjson.Errorf(http.StatusConflict, "certificate %s is not this runner's current one: a later renewal took its place", held)
			}
			prev = held
		}
		if err := ctx.Err(); err != nil {
			return httpjson.Errorf(http.StatusForbidden, "the runner gave up: %v", err)
		}
		cert, err := s.opts.CA.SignRunner(csr.PublicKey, ca.Runner{ID: rn.ID, Tenant: rn.Tenant}, time.Now(), s.opts.Lifetime)
		if err != nil {
			return err
		}
		rn.Serial, rn.NotAfter, rn.PrevSerial = cert.SerialNumber.String(), cert.NotAfter, prev
		resp = s.answer(*rn, cert)
		return nil
	})
	if err != nil {
		return resp, err
	}
	s.opts.Log.Info("runner certificate renewed", "runner", runnerID, "notAfter", resp.NotAfter)
	return resp, nil
}

// answer is what a runner gets with a new certificate, when it registers
// and when it renews: the certificate and the root it trusts the control
// plane by.
func (s *Service) answer(r store.Runner, cert *x509.Certificate) api.EnrollResponse {
	return api.EnrollResponse{RunnerID: r.ID, Tenant: r.Tenant, Name: r.Name, Certificate: string(certs.CertPEM(cert)),
		CA: string(certs.CertPEM(s.opts.Anchor())), NotAfter: cert.NotAfter}
}

// NewID is a random id: 32 hex digits.
func NewID() string {
	b := make([]byte, 16)
	rand.Read(b)
	return hex.EncodeToString(b)
}
