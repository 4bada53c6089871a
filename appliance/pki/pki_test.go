package pki

import (
	"crypto/x509"
	"net"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/cameleer/cameleer/internal/testkit/testutil"
)

func set(ip string) Set {
	return Set{
		Authorities: []Authority{{Name: "ca", CommonName: "test-ca"}},
		Certs: []Cert{
			{Name: "server", CA: "ca", CommonName: "kube-apiserver", Server: true, DNSNames: []string{"localhost"}, IPs: []net.IP{net.ParseIP(ip).To4()}},
			{Name: "admin", CA: "ca", CommonName: "admin", Organization: []string{"system:masters"}, Client: true},
		},
		ServiceAccountKey: "sa",
	}
}

func TestEnsureWritesOnceAndVerifies(t *testing.T) {
	dir := t.TempDir()
	now := time.Now()
	wrote, err := Ensure(dir, set("10.0.0.1"), now)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(wrote, []string{"ca", "server", "admin", "sa"}) {
		t.Errorf("first run wrote %v", wrote)
	}
	ca := testutil.ReadCert(t, filepath.Join(dir, "ca.crt"))
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	srv := testutil.ReadCert(t, filepath.Join(dir, "server.crt"))
	if _, err := srv.Verify(x509.VerifyOptions{Roots: pool, DNSName: "localhost"}); err != nil {
		t.Errorf("server certificate does not verify: %v", err)
	}
	adm := testutil.ReadCert(t, filepath.Join(dir, "admin.crt"))
	if _, err := adm.Verify(x509.VerifyOptions{Roots: pool, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Errorf("client certificate does not verify: %v", err)
	}
	if fi, _ := os.Stat(filepath.Join(dir, "admin.key")); fi.Mode().Perm() != 0o600 {
		t.Errorf("key mode %v", fi.Mode())
	}
	wrote, err = Ensure(dir, set("10.0.0.1"), now)
	if err != nil || len(wrote) != 0 {
		t.Errorf("second run wrote %v, %v; want nothing", wrote, err)
	}
}

func TestEnsureRenews(t *testing.T) {
	dir := t.TempDir()
	now := time.Now()
	if _, err := Ensure(dir, set("10.0.0.1"), now); err != nil {
		t.Fatal(err)
	}
	keyBefore, _ := os.ReadFile(filepath.Join(dir, "server.key"))
	// A new node IP changes the server certificate only, and keeps its key.
	wrote, err := Ensure(dir, set("10.0.0.2"), now)
	if err != nil || !slices.Equal(wrote, []string{"server"}) {
		t.Fatalf("IP change wrote %v, %v", wrote, err)
	}
	keyAfter, _ := os.ReadFile(filepath.Join(dir, "server.key"))
	if string(keyBefore) != string(keyAfter) {
		t.Error("renewal replaced the key")
	}
	if ip := testutil.ReadCert(t, filepath.Join(dir, "server.crt")).IPAddresses[0].String(); ip != "10.0.0.2" {
		t.Errorf("server IP %s", ip)
	}
	// Close to expiry, leaves are renewed and the CA is kept.
	later := now.Add(LeafLifetime - RenewBefore + time.Hour)
	wrote, err = Ensure(dir, set("10.0.0.2"), later)
	if err != nil || !slices.Equal(wrote, []string{"server", "admin"}) {
		t.Fatalf("near expiry wrote %v, %v", wrote, err)
	}
}

func TestEnsureRejectsDamagedFiles(t *testing.T) {
	dir := t.TempDir()
	if _, err := Ensure(dir, set("10.0.0.1"), time.Now()); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "admin.crt"), []byte("garbage"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Ensure(dir, set("10.0.0.1"), time.Now()); err == nil {
		t.Fatal("a damaged certificate was accepted")
	}
}
