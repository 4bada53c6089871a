package tunnelclient

import (
	"context"
	"crypto/ecdsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cameleer/cameleer/api"
	"github.com/cameleer/cameleer/internal/certs"
)

// pair is a key and a self-signed certificate for it, as PEM.
func pair(t *testing.T) (*ecdsa.PrivateKey, string) {
	t.Helper()
	key, err := certs.NewKey()
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{Subject: pkix.Name{CommonName: "r"}, NotBefore: time.Now(), NotAfter: time.Now().Add(time.Hour)}
	c, err := certs.Sign(tmpl, key.Public(), tmpl, key)
	if err != nil {
		t.Fatal(err)
	}
	return key, string(certs.CertPEM(c))
}

// TestStoreCrash: a renewal killed at any point between its writes leaves a
// key and certificate that belong together once the identity is loaded
// again: the old pair, or the new one.
func TestStoreCrash(t *testing.T) {
	write := func(t *testing.T, path, content string) {
		t.Helper()
		if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	keyPEM := func(t *testing.T, k *ecdsa.PrivateKey) string {
		b, err := certs.KeyPEM(k)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	for _, tc := range []struct {
		name string
		// crash leaves the files a renewal killed at that point leaves.
		crash   func(t *testing.T, id Identity, newKey, newCert string)
		wantNew bool
	}{
		{"after the new key", func(t *testing.T, id Identity, newKey, _ string) {
			write(t, id.path("client.key.new"), newKey)
		}, false},
		{"after both new files", func(t *testing.T, id Identity, newKey, newCert string) {
			write(t, id.path("client.key.new"), newKey)
			write(t, id.path("client.crt.new"), newCert)
		}, true},
		{"after the key moved", func(t *testing.T, id Identity, newKey, newCert string) {
			write(t, id.path("client.key"), newKey)
			write(t, id.path("client.crt.new"), newCert)
		}, true},
		{"a directory where the new certificate goes", func(t *testing.T, id Identity, newKey, _ string) {
			write(t, id.path("client.key.new"), newKey)
			if err := os.MkdirAll(filepath.Join(id.path("client.crt.new"), "x"), 0o700); err != nil {
				t.Fatal(err)
			}
		}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			id := Identity{Dir: t.TempDir(), RunnerID: "r", Tenant: "t", Name: "n", URL: "https://cp"}
			oldKey, oldCert := pair(t)
			if err := id.store(oldKey, api.EnrollResponse{Certificate: oldCert, CA: oldCert}); err != nil {
				t.Fatal(err)
			}
			newKey, newCert := pair(t)
			tc.crash(t, id, keyPEM(t, newKey), newCert)
			if _, err := LoadIdentity(id.Dir); err != nil {
				t.Fatal(err)
			}
			got, err := os.ReadFile(id.path("client.crt"))
			if err != nil {
				t.Fatal(err)
			}
			want := oldCert
			if tc.wantNew {
				want = newCert
			}
			if string(got) != want {
				t.Errorf("client.crt is the %s certificate", map[bool]string{true: "old", false: "new"}[tc.wantNew])
			}
			if _, err := tls.LoadX509KeyPair(id.path("client.crt"), id.path("client.key")); err != nil {
				t.Errorf("key and certificate: %v", err)
			}
		})
	}
}

// TestRedeemKeepsADamagedIdentity: a registration that cannot be read is
// not overwritten by a new one unasked (it may be worth repairing; a new
// one would be a second runner).
func TestRedeemKeepsADamagedIdentity(t *testing.T) {
	dataDir := t.TempDir()
	ident := IdentityDir(dataDir)
	if err := os.MkdirAll(ident, 0o700); err != nil {
		t.Fatal(err)
	}
	damaged := []byte(`{"runnerId": "ab`)
	if err := os.WriteFile(filepath.Join(ident, "runner.json"), damaged, 0o600); err != nil {
		t.Fatal(err)
	}
	tok, err := api.NewToken([32]byte{1}, "https://127.0.0.1:1")
	if err != nil {
		t.Fatal(err)
	}
	_, err = Redeem(context.Background(), dataDir, tok.String(), "", "edge")
	if err == nil || !strings.Contains(err.Error(), "cannot be read") || !strings.Contains(err.Error(), "remove "+ident) {
		t.Errorf("redeem over a damaged identity: %v", err)
	}
	if b, _ := os.ReadFile(filepath.Join(ident, "runner.json")); string(b) != string(damaged) {
		t.Errorf("runner.json is now %q", b)
	}
}

// TestStoreDropsAStaleNewCertificate: a client.crt.new left by a store that
// could not settle is not paired with the next store's key when that store
// is cut short after writing the key.
func TestStoreDropsAStaleNewCertificate(t *testing.T) {
	id := Identity{Dir: t.TempDir(), RunnerID: "r", Tenant: "t", Name: "n", URL: "https://cp"}
	oldKey, oldCert := pair(t)
	if err := id.store(oldKey, api.EnrollResponse{Certificate: oldCert, CA: oldCert}); err != nil {
		t.Fatal(err)
	}
	_, staleCert := pair(t)
	os.WriteFile(id.path("client.crt.new"), []byte(staleCert), 0o644)
	// The next store gets as far as its key, then the disk is full: ca.crt
	// cannot be written.
	newKey, newCert := pair(t)
	os.Remove(id.path("ca.crt"))
	if err := os.MkdirAll(filepath.Join(id.path("ca.crt"), "x"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := id.store(newKey, api.EnrollResponse{Certificate: newCert, CA: newCert}); err == nil {
		t.Fatal("store with ca.crt blocked succeeded")
	}
	os.RemoveAll(id.path("ca.crt"))
	os.WriteFile(id.path("ca.crt"), []byte(oldCert), 0o644)
	if _, err := LoadIdentity(id.Dir); err != nil {
		t.Fatalf("load: %v", err)
	}
	if got, _ := os.ReadFile(id.path("client.crt")); string(got) != oldCert {
		t.Error("client.crt is not the one the store started from")
	}
}
