package server

import (
	"context"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"log/slog"
	"net/http"
	"testing"
	"time"

	"github.com/cameleer/cameleer/controlplane/store"
	"github.com/cameleer/cameleer/internal/certs"
	"github.com/cameleer/cameleer/internal/httpjson"
)

// TestRenewAndRetire drives what the runner's renewal and heartbeat calls
// come to (the services behind the tunnel's routes): the certificate the runner
// holds stays good until a heartbeat shows the new one; a heartbeat that
// shows an older one retires nothing; a renewal overtaken by a later one
// (the runner gave up on it) is refused, not taken.
func TestRenewAndRetire(t *testing.T) {
	s, _, err := New(Options{DataDir: t.TempDir(), Log: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.store.CreateTenant(store.Tenant{Name: "acme", Tier: "low"}); err != nil {
		t.Fatal(err)
	}
	if err := s.store.CreateRunnerToken(store.RunnerToken{Hash: "tok", Tenant: "acme", Expires: time.Now().Add(time.Minute)}, 10, time.Now()); err != nil {
		t.Fatal(err)
	}
	if _, err := s.store.Redeem("tok", "k", time.Now(), func(tenant string, _ *store.Runner) (store.Runner, error) {
		return store.Runner{ID: "r1", Tenant: tenant, Name: "edge", Serial: "S0"}, nil
	}); err != nil {
		t.Fatal(err)
	}
	key, err := certs.NewKey()
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: "r"}}, key)
	if err != nil {
		t.Fatal(err)
	}
	csr := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der})
	// The tunnel these calls come through was opened with S0.
	renew := func(held string) (int, string) {
		t.Helper()
		er, err := s.enrollment.Renew(context.Background(), "r1", "S0", held, csr)
		var se *httpjson.StatusError
		if errors.As(err, &se) {
			return se.Status, ""
		}
		if err != nil {
			t.Fatal(err)
		}
		blk, _ := pem.Decode([]byte(er.Certificate))
		c, err := x509.ParseCertificate(blk.Bytes)
		if err != nil {
			t.Fatal(err)
		}
		return http.StatusOK, c.SerialNumber.String()
	}
	beat := func(held string) { s.runners.RetirePrevious("r1", held) }
	want := func(serial, prev string) {
		t.Helper()
		r, err := s.store.Runner("r1")
		if err != nil || r.Serial != serial || r.PrevSerial != prev {
			t.Fatalf("runner holds serial %q, previous %q (%v); want %q, %q", r.Serial, r.PrevSerial, err, serial, prev)
		}
	}

	// A renewal whose answer is lost: S0 stays good; a retry replaces S1.
	_, s1 := renew("S0")
	want(s1, "S0")
	beat("S0")
	want(s1, "S0")
	code, s2 := renew("S0")
	if code != http.StatusOK {
		t.Fatalf("retry: %d", code)
	}
	want(s2, "S0")
	// Stored this time: the heartbeat that says so retires S0.
	beat(s2)
	want(s2, "")
	// A second renewal over the same tunnel (still on S0): S2 is what the
	// runner holds, and stays good.
	_, s3 := renew(s2)
	want(s3, s2)
	// The first renewal, given up on by the runner, completes late: it
	// names a certificate that is no longer current and is refused.
	if code, _ := renew("S0"); code != http.StatusConflict {
		t.Errorf("a renewal naming a retired certificate: %d, want 409", code)
	}
	want(s3, s2)
}
