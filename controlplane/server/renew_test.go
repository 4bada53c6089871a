package server

import (
	"bytes"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/cameleer/cameleer/api"
	"github.com/cameleer/cameleer/controlplane/store"
	"github.com/cameleer/cameleer/internal/certs"
)

// TestRenewAndRetire drives the runner's renewal and heartbeat calls (the
// tunnel's routes, served here without one): the certificate the runner
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
	if err := s.store.CreateRunnerToken(store.RunnerToken{Hash: "tok", Tenant: "acme", Expires: time.Now().Add(time.Minute)}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.store.Redeem("tok", "k", time.Now(), func(tenant string, _ *store.Runner) (store.Runner, error) {
		return store.Runner{ID: "r1", Tenant: tenant, Name: "edge", Serial: "S0"}, nil
	}); err != nil {
		t.Fatal(err)
	}
	rc := &runnerConn{id: "r1", serial: "S0"}
	routes := s.runnerRoutes(rc)
	key, err := certs.NewKey()
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: "r"}}, key)
	if err != nil {
		t.Fatal(err)
	}
	csr := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der})
	renew := func(held string) (int, string) {
		t.Helper()
		rec := httptest.NewRecorder()
		routes.ServeHTTP(rec, httptest.NewRequest("POST", api.RenewPath+"?held="+held, bytes.NewReader(csr)))
		var er api.EnrollResponse
		json.Unmarshal(rec.Body.Bytes(), &er)
		if rec.Code != http.StatusOK {
			return rec.Code, ""
		}
		blk, _ := pem.Decode([]byte(er.Certificate))
		c, err := x509.ParseCertificate(blk.Bytes)
		if err != nil {
			t.Fatal(err)
		}
		return rec.Code, c.SerialNumber.String()
	}
	beat := func(held string) {
		t.Helper()
		b, _ := json.Marshal(api.Heartbeat{Version: "v", Certificate: held})
		rec := httptest.NewRecorder()
		routes.ServeHTTP(rec, httptest.NewRequest("POST", api.HeartbeatPath, bytes.NewReader(b)))
		if rec.Code != http.StatusNoContent {
			t.Fatalf("heartbeat: %d %s", rec.Code, rec.Body)
		}
	}
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
